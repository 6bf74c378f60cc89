"""The alert store (SQLAlchemy; SQLite by default, PostgreSQL in production): the one
face other modules use for alert records.

Three tables and an outbox:

- ``alerts``: each alert's current state (``rows.py``);
- ``alert_history`` and ``alert_chain``: every change of every alert, append-only, as a
  hash chain (``history.py`` defines and checks it, ``historywrite.py`` appends to it
  under the chain lock). :meth:`AlertStore.verify` walks the chain and replays it
  against ``alerts``;
- ``alert_outbox``: what each output (MQTT, InfluxDB, each notifier) still has to
  deliver, written in the same transaction as the change (``outbox.py``).

Changes come from the rule engine (``changes.py``) and from people and the escalation
timer (``actions.py``); ``queries.py`` reads. The names callers need with the store
(its rows, filters, errors and results) are handed on here.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from sitewatch.core.db import Base, make_engine
from sitewatch.domains.alertrecords import actions, outbox, queries
from sitewatch.domains.alertrecords import changes as engine_changes
from sitewatch.domains.alertrecords.actions import AlertError
from sitewatch.domains.alertrecords.changes import REFUSALS, Refused
from sitewatch.domains.alertrecords.history import GENESIS, ChainHead, HistoryRow, VerifyReport
from sitewatch.domains.alertrecords.model import AlertEvent, Change, OpenAlert
from sitewatch.domains.alertrecords.outbox import OutboxRow, Outgoing, Router
from sitewatch.domains.alertrecords.queries import AlertFilter
from sitewatch.domains.alertrecords.rows import AlertRow

__all__ = [
    "REFUSALS",
    "TABLES",
    "AlertError",
    "AlertFilter",
    "AlertRow",
    "AlertStore",
    "Outgoing",
    "Refused",
    "Router",
]

TABLES = [AlertRow.__table__, HistoryRow.__table__, ChainHead.__table__, OutboxRow.__table__]


def _default_router(event: AlertEvent) -> list[str]:
    return []


class AlertStore:
    def __init__(self, url: str, router: Router = _default_router) -> None:
        self.engine = make_engine(url)
        self.router = router

    def create_schema(self) -> None:
        Base.metadata.create_all(self.engine, tables=TABLES)  # type: ignore[arg-type]
        for index in AlertRow.__table__.indexes:  # type: ignore[attr-defined]  # added later
            index.create(self.engine, checkfirst=True)
        with Session(self.engine) as s, s.begin():
            if s.get(ChainHead, 1) is None:
                s.add(ChainHead(id=1, n=0, hash=GENESIS, touched_at=0))

    def dispose(self) -> None:
        self.engine.dispose()

    # -- changes from the engine (changes.py) -----------------------------------------
    def apply(self, changes: Sequence[Change], now: int) -> list[Outgoing]:
        """Record the engine's changes in one transaction; returns what to deliver."""
        return engine_changes.apply(self.engine, self.router, changes, now)

    def apply_each(
        self, changes: Sequence[Change], now: int
    ) -> tuple[list[Outgoing], list[Refused]]:
        """Like :meth:`apply`, but each change in a savepoint of its own: one the database
        refuses for good (:data:`REFUSALS`) is left out, and so are the later changes of
        its alert; the others are stored. For a batch :meth:`apply` could not store: one
        bad change must not hold back every other."""
        return engine_changes.apply_each(self.engine, self.router, changes, now)

    # -- people and escalation (actions.py) -------------------------------------------
    def acknowledge(
        self, alert_id: str, by: str, comment: str, now: int
    ) -> tuple[AlertEvent, list[Outgoing]]:
        return actions.acknowledge(self.engine, self.router, alert_id, by, comment, now)

    def resolve(
        self, alert_id: str, by: str, comment: str, now: int
    ) -> tuple[AlertEvent, list[Outgoing]]:
        """Resolve by hand (e.g. a sensor removed). If its condition still holds, the
        alert service raises a new alert."""
        return actions.resolve(self.engine, self.router, alert_id, by, comment, now)

    def escalate_due(
        self, now: int, after_s: dict[str, float | None]
    ) -> tuple[list[AlertEvent], list[Outgoing]]:
        """Open alerts still unacknowledged past their time go from site to county."""
        return actions.escalate_due(self.engine, self.router, now, after_s)

    # -- reading (queries.py) ---------------------------------------------------------
    def open_alerts(self) -> list[OpenAlert]:
        return queries.open_alerts(self.engine)

    def open_alert(self, site: str, device: str, group: str) -> OpenAlert | None:
        """The open alert of one condition (site, device, group), if there is one."""
        return queries.open_alert(self.engine, site, device, group)

    def head(self) -> int:
        return queries.head(self.engine)

    def resolved_by_people(self, after_n: int) -> tuple[int, list[str]]:
        """Alerts resolved by someone other than the service since history entry
        ``after_n``, and the newest entry number."""
        return queries.resolved_by_people(self.engine, after_n)

    def get(self, alert_id: str) -> AlertRow | None:
        return queries.get(self.engine, alert_id)

    def list_alerts(
        self,
        *,
        site: str | None = None,
        state: str | None = None,
        severity: str | None = None,
        limit: int = 100,
    ) -> list[AlertRow]:
        rows, _ = self.find(AlertFilter(site=site, state=state, severity=severity), limit=limit)
        return rows

    def find(
        self, f: AlertFilter, *, offset: int = 0, limit: int = 100
    ) -> tuple[list[AlertRow], int]:
        """Alerts matching ``f``, newest first, and how many match in all."""
        return queries.find(self.engine, f, offset=offset, limit=limit)

    def history(self, alert_id: str | None = None) -> list[HistoryRow]:
        return queries.history(self.engine, alert_id)

    def verify(self) -> VerifyReport:
        """Walk the history chain and replay it against the ``alerts`` table."""
        return queries.verify(self.engine)

    # -- the outbox (outbox.py) -------------------------------------------------------
    def pending(self, exclude: set[int], limit: int = 1000) -> list[Outgoing]:
        return outbox.pending(self.engine, exclude, limit)

    def delivered(self, ids: Sequence[int]) -> None:
        outbox.delivered(self.engine, ids)

    def attempt_failed(self, outbox_id: int, error: str, *, permanent: bool) -> None:
        outbox.attempt_failed(self.engine, outbox_id, error, permanent=permanent)

    def outbox_counts(self) -> dict[str, tuple[int, int]]:
        """Per target: (waiting, failed for good)."""
        return outbox.counts(self.engine)

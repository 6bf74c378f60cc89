"""Changes made outside the rule engine: a person acknowledging or resolving an alert,
and the escalation (site to county) of an alert nobody acknowledged in time."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sitewatch.domains.alertrecords import outbox
from sitewatch.domains.alertrecords.historywrite import append, lock_chain
from sitewatch.domains.alertrecords.model import AlertEvent, EventKind, Level, State
from sitewatch.domains.alertrecords.outbox import Outgoing, Router
from sitewatch.domains.alertrecords.rows import SYSTEM_ACTOR, AlertRow


class AlertError(ValueError):
    """A request about an alert that cannot be done (unknown id, already acknowledged)."""


def _by_person(
    engine: Engine,
    router: Router,
    alert_id: str,
    by: str,
    now: int,
    event: EventKind,
    change: Callable[[AlertRow], None],
) -> tuple[AlertEvent, list[Outgoing]]:
    with Session(engine) as s, s.begin():
        head = lock_chain(s, now)
        mark = outbox.last_id(s)
        row = s.get(AlertRow, alert_id)
        if row is None:
            raise AlertError(f"no alert {alert_id!r}")
        change(row)
        row.updated_at = now
        ev = append(s, head, row, event, now, by, router)
        return ev, outbox.added_since(s, mark)


def acknowledge(
    engine: Engine, router: Router, alert_id: str, by: str, comment: str, now: int
) -> tuple[AlertEvent, list[Outgoing]]:
    def ack(row: AlertRow) -> None:
        if row.acked_at is not None:
            raise AlertError(
                f"alert {alert_id} was acknowledged by {row.acked_by} at {row.acked_at}"
            )
        row.acked_at, row.acked_by, row.ack_comment = now, by, comment

    return _by_person(engine, router, alert_id, by, now, EventKind.ACKNOWLEDGED, ack)


def resolve(
    engine: Engine, router: Router, alert_id: str, by: str, comment: str, now: int
) -> tuple[AlertEvent, list[Outgoing]]:
    """Resolve by hand (e.g. a sensor removed). If its condition still holds, the
    alert service raises a new alert."""

    def resolve(row: AlertRow) -> None:
        if row.state == State.RESOLVED.value:
            raise AlertError(f"alert {alert_id} is already resolved")
        row.state, row.resolved_at = State.RESOLVED.value, now
        row.resolved_by, row.resolve_comment = by, comment

    return _by_person(engine, router, alert_id, by, now, EventKind.RESOLVED, resolve)


def escalate_due(
    engine: Engine, router: Router, now: int, after_s: dict[str, float | None]
) -> tuple[list[AlertEvent], list[Outgoing]]:
    """Open alerts still unacknowledged past their time go from site to county."""
    conds = []
    for severity, seconds in after_s.items():
        if seconds is not None:
            conds.append((severity, now - int(seconds * 1000)))
    if not conds:
        return [], []
    with Session(engine) as s:
        due = [
            row_id
            for sev, before in conds
            for row_id in s.scalars(
                select(AlertRow.id).where(
                    AlertRow.state != State.RESOLVED.value,
                    AlertRow.level == Level.SITE.value,
                    AlertRow.acked_at.is_(None),
                    AlertRow.severity == sev,
                    AlertRow.raised_at <= before,
                )
            )
        ]
    if not due:
        return [], []
    events: list[AlertEvent] = []
    with Session(engine) as s, s.begin():
        head = lock_chain(s, now)
        mark = outbox.last_id(s)
        for row_id in due:
            row = s.get(AlertRow, row_id)
            # re-checked under the lock: someone may have acknowledged it meanwhile
            if (
                row is None
                or row.acked_at is not None
                or row.level != Level.SITE.value
                or row.state == State.RESOLVED.value
            ):
                continue
            row.level, row.updated_at = Level.COUNTY.value, now
            events.append(append(s, head, row, EventKind.ESCALATED, now, SYSTEM_ACTOR, router))
        return events, outbox.added_since(s, mark)

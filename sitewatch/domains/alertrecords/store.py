"""The alert store (SQLAlchemy; SQLite by default, PostgreSQL in production).

Three tables and an outbox:

- ``alerts``: each alert's current state (one row per alert; at most one open alert per
  site, device and condition, enforced by a partial unique index);
- ``alert_history`` and ``alert_chain``: every change of every alert, append-only, as a
  hash chain (see ``history.py``). :meth:`AlertStore.verify` walks the chain and replays
  it against ``alerts``;
- ``alert_outbox``: what each output (MQTT, InfluxDB, each notifier) still has to
  deliver, written in the same transaction as the change: an alert is never committed
  without its notifications, and none is lost by a crash.

Every writer - the alert service, ``sitewatch alerts ack`` from another process, the API
later - appends under the chain lock: the first statement of each transaction updates the
``alert_chain`` row, which serialises writers on SQLite (write lock) and PostgreSQL (row
lock) alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from sitewatch.core.db import Base, count_rows, make_engine
from sitewatch.domains.alertrecords.history import (
    GENESIS,
    ChainHead,
    HistoryRow,
    VerifyReport,
    entry_hash,
    walk_chain,
)
from sitewatch.domains.alertrecords.model import (
    AlertEvent,
    Change,
    EventKind,
    Level,
    OpenAlert,
    State,
    event_encoder,
)

SYSTEM_ACTOR = "sitewatch"


class AlertRow(Base):
    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    profile: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    group: Mapped[str] = mapped_column("rule_group", String(64))
    severity: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    late: Mapped[bool] = mapped_column(Boolean)
    title: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(Text)  # JSON: a number, bool, string or null
    limit: Mapped[str] = mapped_column("limit_value", Text)
    raised_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    cleared_at: Mapped[int | None] = mapped_column(BigInteger)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)
    acked_at: Mapped[int | None] = mapped_column(BigInteger)
    acked_by: Mapped[str | None] = mapped_column(String(64))
    ack_comment: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolve_comment: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index(
            "alerts_one_open",
            "site",
            "device",
            "rule_group",
            unique=True,
            sqlite_where=text("state != 'resolved'"),
            postgresql_where=text("state != 'resolved'"),
        ),
        Index("alerts_state", "state", "level"),
        Index("alerts_site_raised", "site", "raised_at"),
        Index("alerts_raised", "raised_at", "id"),  # the county-wide list, newest first
    )


class OutboxRow(Base):
    __tablename__ = "alert_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: set when the target refused it for good (a bad request): kept for the operator
    failed: Mapped[bool] = mapped_column(Boolean, default=False)

    # ids are never reused (SQLite would reuse a deleted rowid): the dispatcher tells a
    # delivered row from a new one by its id
    __table_args__ = ({"sqlite_autoincrement": True},)


TABLES = [AlertRow.__table__, HistoryRow.__table__, ChainHead.__table__, OutboxRow.__table__]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An outbox row to deliver."""

    id: int
    target: str
    payload: bytes


#: which outputs want an event (MQTT, InfluxDB, the notifiers that match its filters)
Router = Callable[[AlertEvent], list[str]]

#: what the database refuses for good, whenever it is tried: a change that breaks a
#: constraint (a second open alert for one condition, an id already used) or does not fit
#: a column. Not an outage (OperationalError): retrying such a change can never succeed.
REFUSALS = (IntegrityError, DataError)


@dataclass(frozen=True, slots=True)
class Refused:
    """A change :meth:`AlertStore.apply_each` left out, and why."""

    change: Change
    reason: str
    #: False for a later change of an alert whose earlier change was refused
    first: bool = True


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts to list; ``sites`` None means every site."""

    sites: Collection[str] | None = None
    site: str | None = None
    state: str | None = None  # a State, or "open" (not resolved)
    severity: str | None = None
    level: str | None = None
    since: int | None = None  # raised at or after (ms)
    until: int | None = None  # raised before (ms)


class AlertError(ValueError):
    """A request about an alert that cannot be done (unknown id, already acknowledged)."""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def to_event(row: AlertRow, event: EventKind, at: int, actor: str) -> AlertEvent:
    return AlertEvent(
        event=event,
        at=at,
        actor=actor,
        id=row.id,
        site=row.site,
        gateway=row.gateway,
        device=row.device,
        profile=row.profile,
        rule=row.rule,
        group=row.group,
        severity=row.severity,  # type: ignore[arg-type]
        level=Level(row.level),
        state=State(row.state),
        late=row.late,
        title=row.title,
        value=json.loads(row.value),
        limit=json.loads(row.limit),
        raised_at=row.raised_at,
        cleared_at=row.cleared_at,
        resolved_at=row.resolved_at,
        acked_at=row.acked_at,
        acked_by=row.acked_by,
        ack_comment=row.ack_comment,
        resolved_by=row.resolved_by,
        resolve_comment=row.resolve_comment,
    )


def _mirror(row: AlertRow) -> tuple[Any, ...]:
    """The fields of a row that its history must reproduce."""
    e = to_event(row, EventKind.RAISED, 0, "")
    return _state_of(e)


def _state_of(e: AlertEvent) -> tuple[Any, ...]:
    return (
        e.site,
        e.gateway,
        e.device,
        e.profile,
        e.rule,
        e.group,
        e.severity,
        e.level,
        e.state,
        e.late,
        e.title,
        e.value,
        e.limit,
        e.raised_at,
        e.cleared_at,
        e.resolved_at,
        e.acked_at,
        e.acked_by,
        e.ack_comment,
        e.resolved_by,
        e.resolve_comment,
    )


def _open_alert(r: AlertRow) -> OpenAlert:
    return OpenAlert(
        r.id,
        r.site,
        r.gateway,
        r.device,
        r.profile,
        r.group,
        r.severity,
        State(r.state),
        r.raised_at,
        r.cleared_at,
    )


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

    # -- the chain --------------------------------------------------------------------
    @staticmethod
    def _lock(s: Session, now: int) -> ChainHead:
        # an UPDATE first: SQLite takes its write lock, PostgreSQL locks the row
        s.execute(update(ChainHead).where(ChainHead.id == 1).values(touched_at=now))
        head = s.get(ChainHead, 1, populate_existing=True)
        if head is None:
            raise RuntimeError("alert_chain has no head row: run create_schema()")
        return head

    def _append(
        self, s: Session, head: ChainHead, row: AlertRow, event: EventKind, at: int, actor: str
    ) -> AlertEvent:
        ev = to_event(row, event, at, actor)
        data = event_encoder.encode(ev)
        text_data = data.decode()
        n = head.n + 1
        h = entry_hash(n, row.id, at, event.value, actor, text_data, head.hash)
        s.add(
            HistoryRow(
                n=n,
                alert_id=row.id,
                at=at,
                event=event.value,
                actor=actor,
                data=text_data,
                prev_hash=head.hash,
                hash=h,
            )
        )
        head.n, head.hash = n, h
        for target in self.router(ev):
            s.add(OutboxRow(target=target, payload=data, attempts=0, failed=False))
        return ev

    def _outgoing(self, s: Session, since_id: int) -> list[Outgoing]:
        s.flush()
        rows = s.execute(
            select(OutboxRow.id, OutboxRow.target, OutboxRow.payload)
            .where(OutboxRow.id > since_id)
            .order_by(OutboxRow.id)
        )
        return [Outgoing(i, t, p) for i, t, p in rows]

    @staticmethod
    def _max_outbox(s: Session) -> int:
        return int(s.scalar(select(OutboxRow.id).order_by(OutboxRow.id.desc()).limit(1)) or 0)

    # -- changes from the engine ------------------------------------------------------
    def apply(self, changes: Sequence[Change], now: int) -> list[Outgoing]:
        """Record the engine's changes in one transaction; returns what to deliver."""
        if not changes:
            return []
        with Session(self.engine) as s, s.begin():
            head = self._lock(s, now)
            mark = self._max_outbox(s)
            for c in changes:
                row = self._change_row(s, c)
                if row is not None:
                    self._append(s, head, row, c.event, c.at, SYSTEM_ACTOR)
            return self._outgoing(s, mark)

    def apply_each(
        self, changes: Sequence[Change], now: int
    ) -> tuple[list[Outgoing], list[Refused]]:
        """Like :meth:`apply`, but each change in a savepoint of its own: one the database
        refuses for good (:data:`REFUSALS`) is left out, and so are the later changes of
        its alert; the others are stored. For a batch :meth:`apply` could not store: one
        bad change must not hold back every other."""
        if not changes:
            return [], []
        refused: list[Refused] = []
        left_out: set[str] = set()
        with Session(self.engine) as s, s.begin():
            head = self._lock(s, now)
            mark = self._max_outbox(s)
            for c in changes:
                if c.alert_id in left_out:
                    refused.append(
                        Refused(c, "an earlier change of this alert was refused", first=False)
                    )
                    continue
                try:
                    with s.begin_nested():
                        row = self._change_row(s, c)
                        if row is not None:
                            self._append(s, head, row, c.event, c.at, SYSTEM_ACTOR)
                        s.flush()
                except REFUSALS as exc:
                    left_out.add(c.alert_id)
                    refused.append(Refused(c, str(exc.orig).strip()))
                    # the chain head as the savepoint left it
                    s.expire(head)
            return self._outgoing(s, mark), refused

    @staticmethod
    def _change_row(s: Session, c: Change) -> AlertRow | None:
        if c.event in (EventKind.RAISED, EventKind.LATE):
            late = c.event is EventKind.LATE
            row = AlertRow(
                id=c.alert_id,
                site=c.site,
                gateway=c.gateway,
                device=c.device,
                profile=c.profile,
                rule=c.rule,
                group=c.group,
                severity=c.severity,
                level=Level.SITE.value,
                state=(State.RESOLVED if late else State.ACTIVE).value,
                late=late,
                title=c.title,
                value=_json(c.value),
                limit=_json(c.limit),
                raised_at=c.at,
                updated_at=c.at,
                cleared_at=None,
                resolved_at=c.at if late else None,
                acked_at=None,
                acked_by=None,
                ack_comment=None,
                resolved_by=None,
                resolve_comment=None,
            )
            s.add(row)
            return row
        found = s.get(AlertRow, c.alert_id)
        if found is None or found.state == State.RESOLVED.value:
            return None  # resolved meanwhile by an operator: nothing left to change
        row = found
        row.updated_at = c.at
        if c.event is EventKind.ESCALATED:
            row.severity, row.rule, row.title = c.severity, c.rule, c.title
            row.value, row.limit = _json(c.value), _json(c.limit)
        elif c.event is EventKind.REACTIVATED:
            row.state, row.cleared_at = State.ACTIVE.value, None
            row.value, row.limit = _json(c.value), _json(c.limit)
        elif c.event is EventKind.CLEARED:
            row.state, row.cleared_at = State.CLEARING.value, c.at
        elif c.event is EventKind.RESOLVED:
            row.state, row.resolved_at = State.RESOLVED.value, c.at
            row.resolved_by = SYSTEM_ACTOR
        return row

    # -- people -----------------------------------------------------------------------
    def _by_person(
        self, alert_id: str, by: str, now: int, event: EventKind, change: Callable[[AlertRow], None]
    ) -> tuple[AlertEvent, list[Outgoing]]:
        with Session(self.engine) as s, s.begin():
            head = self._lock(s, now)
            mark = self._max_outbox(s)
            row = s.get(AlertRow, alert_id)
            if row is None:
                raise AlertError(f"no alert {alert_id!r}")
            change(row)
            row.updated_at = now
            ev = self._append(s, head, row, event, now, by)
            return ev, self._outgoing(s, mark)

    def acknowledge(
        self, alert_id: str, by: str, comment: str, now: int
    ) -> tuple[AlertEvent, list[Outgoing]]:
        def ack(row: AlertRow) -> None:
            if row.acked_at is not None:
                raise AlertError(
                    f"alert {alert_id} was acknowledged by {row.acked_by} at {row.acked_at}"
                )
            row.acked_at, row.acked_by, row.ack_comment = now, by, comment

        return self._by_person(alert_id, by, now, EventKind.ACKNOWLEDGED, ack)

    def resolve(
        self, alert_id: str, by: str, comment: str, now: int
    ) -> tuple[AlertEvent, list[Outgoing]]:
        """Resolve by hand (e.g. a sensor removed). If its condition still holds, the
        alert service raises a new alert."""

        def resolve(row: AlertRow) -> None:
            if row.state == State.RESOLVED.value:
                raise AlertError(f"alert {alert_id} is already resolved")
            row.state, row.resolved_at = State.RESOLVED.value, now
            row.resolved_by, row.resolve_comment = by, comment

        return self._by_person(alert_id, by, now, EventKind.RESOLVED, resolve)

    def escalate_due(
        self, now: int, after_s: dict[str, float | None]
    ) -> tuple[list[AlertEvent], list[Outgoing]]:
        """Open alerts still unacknowledged past their time go from site to county."""
        conds = []
        for severity, seconds in after_s.items():
            if seconds is not None:
                conds.append((severity, now - int(seconds * 1000)))
        if not conds:
            return [], []
        with Session(self.engine) as s:
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
        with Session(self.engine) as s, s.begin():
            head = self._lock(s, now)
            mark = self._max_outbox(s)
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
                events.append(self._append(s, head, row, EventKind.ESCALATED, now, SYSTEM_ACTOR))
            return events, self._outgoing(s, mark)

    # -- reading ----------------------------------------------------------------------
    def open_alerts(self) -> list[OpenAlert]:
        with Session(self.engine) as s:
            rows = s.scalars(select(AlertRow).where(AlertRow.state != State.RESOLVED.value))
            return [_open_alert(r) for r in rows]

    def open_alert(self, site: str, device: str, group: str) -> OpenAlert | None:
        """The open alert of one condition (site, device, group), if there is one."""
        with Session(self.engine) as s:
            r = s.scalar(
                select(AlertRow).where(
                    AlertRow.site == site,
                    AlertRow.device == device,
                    AlertRow.group == group,
                    AlertRow.state != State.RESOLVED.value,
                )
            )
            return None if r is None else _open_alert(r)

    def head(self) -> int:
        with Session(self.engine) as s:
            return int(s.scalar(select(ChainHead.n).where(ChainHead.id == 1)) or 0)

    def resolved_by_people(self, after_n: int) -> tuple[int, list[str]]:
        """Alerts resolved by someone other than the service since history entry
        ``after_n``, and the newest entry number."""
        with Session(self.engine) as s:
            rows = s.execute(
                select(HistoryRow.n, HistoryRow.alert_id, HistoryRow.event, HistoryRow.actor)
                .where(HistoryRow.n > after_n)
                .order_by(HistoryRow.n)
            ).all()
        ids = [
            a for _, a, e, actor in rows if e == EventKind.RESOLVED.value and actor != SYSTEM_ACTOR
        ]
        return (rows[-1][0] if rows else after_n), ids

    def get(self, alert_id: str) -> AlertRow | None:
        with Session(self.engine) as s:
            return s.get(AlertRow, alert_id)

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
        q = select(AlertRow)
        if f.sites is not None:
            q = q.where(AlertRow.site.in_(sorted(f.sites)))
        if f.site:
            q = q.where(AlertRow.site == f.site)
        if f.state == "open":
            q = q.where(AlertRow.state != State.RESOLVED.value)
        elif f.state:
            q = q.where(AlertRow.state == f.state)
        if f.severity:
            q = q.where(AlertRow.severity == f.severity)
        if f.level:
            q = q.where(AlertRow.level == f.level)
        if f.since is not None:
            q = q.where(AlertRow.raised_at >= f.since)
        if f.until is not None:
            q = q.where(AlertRow.raised_at < f.until)
        with Session(self.engine) as s:
            total = count_rows(s, q)
            rows = s.scalars(
                q.order_by(AlertRow.raised_at.desc(), AlertRow.id.desc())
                .offset(offset)
                .limit(limit)
            )
            return list(rows), total

    def history(self, alert_id: str | None = None) -> list[HistoryRow]:
        q = select(HistoryRow).order_by(HistoryRow.n)
        if alert_id:
            q = q.where(HistoryRow.alert_id == alert_id)
        with Session(self.engine) as s:
            return list(s.scalars(q))

    # -- outbox -----------------------------------------------------------------------
    def pending(self, exclude: set[int], limit: int = 1000) -> list[Outgoing]:
        with Session(self.engine) as s:
            rows = s.execute(
                select(OutboxRow.id, OutboxRow.target, OutboxRow.payload)
                .where(OutboxRow.failed.is_(False))
                .order_by(OutboxRow.id)
                .limit(limit + len(exclude))
            )
            return [Outgoing(i, t, p) for i, t, p in rows if i not in exclude][:limit]

    def delivered(self, ids: Sequence[int]) -> None:
        if ids:
            with Session(self.engine) as s, s.begin():
                s.execute(delete(OutboxRow).where(OutboxRow.id.in_(list(ids))))

    def attempt_failed(self, outbox_id: int, error: str, *, permanent: bool) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id == outbox_id)
                .values(attempts=OutboxRow.attempts + 1, last_error=error[:2000], failed=permanent)
            )

    def outbox_counts(self) -> dict[str, tuple[int, int]]:
        """Per target: (waiting, failed for good)."""
        out: dict[str, tuple[int, int]] = {}
        with Session(self.engine) as s:
            for target, failed in s.execute(select(OutboxRow.target, OutboxRow.failed)):
                w, f = out.get(target, (0, 0))
                out[target] = (w + (not failed), f + bool(failed))
        return out

    # -- verification -----------------------------------------------------------------
    def verify(self) -> VerifyReport:
        """Walk the history chain and replay it against the ``alerts`` table."""
        with Session(self.engine) as s:
            chain = walk_chain(s)
            rows = {r.id: r for r in s.scalars(select(AlertRow))}
        problems = list(chain.problems)
        for alert_id, row in rows.items():
            seen = chain.last.get(alert_id)
            if seen is None:
                problems.append(f"alert {alert_id}: no history")
            elif _mirror(row) != _state_of(seen):
                problems.append(f"alert {alert_id}: row differs from its history")
        for alert_id in chain.last.keys() - rows.keys():
            problems.append(f"alert {alert_id}: in history, missing from alerts")
        return VerifyReport(chain.entries, len(rows), problems)

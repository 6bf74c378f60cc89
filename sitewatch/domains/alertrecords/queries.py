"""Reading the alert records: open alerts (the service takes them over at start), lists
by filter for people, the history, and the verification of the history against the
``alerts`` table."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from sitewatch.core.db import count_rows
from sitewatch.domains.alertrecords.history import ChainHead, HistoryRow, VerifyReport, walk_chain
from sitewatch.domains.alertrecords.model import EventKind, OpenAlert, State
from sitewatch.domains.alertrecords.rows import (
    SYSTEM_ACTOR,
    AlertRow,
    event_state,
    row_state,
    to_open_alert,
)


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


def open_alerts(engine: Engine) -> list[OpenAlert]:
    with Session(engine) as s:
        rows = s.scalars(select(AlertRow).where(AlertRow.state != State.RESOLVED.value))
        return [to_open_alert(r) for r in rows]


def open_alert(engine: Engine, site: str, device: str, group: str) -> OpenAlert | None:
    """The open alert of one condition (site, device, group), if there is one."""
    with Session(engine) as s:
        r = s.scalar(
            select(AlertRow).where(
                AlertRow.site == site,
                AlertRow.device == device,
                AlertRow.group == group,
                AlertRow.state != State.RESOLVED.value,
            )
        )
        return None if r is None else to_open_alert(r)


def head(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(ChainHead.n).where(ChainHead.id == 1)) or 0)


def resolved_by_people(engine: Engine, after_n: int) -> tuple[int, list[str]]:
    """Alerts resolved by someone other than the service since history entry
    ``after_n``, and the newest entry number."""
    with Session(engine) as s:
        rows = s.execute(
            select(HistoryRow.n, HistoryRow.alert_id, HistoryRow.event, HistoryRow.actor)
            .where(HistoryRow.n > after_n)
            .order_by(HistoryRow.n)
        ).all()
    ids = [a for _, a, e, actor in rows if e == EventKind.RESOLVED.value and actor != SYSTEM_ACTOR]
    return (rows[-1][0] if rows else after_n), ids


def get(engine: Engine, alert_id: str) -> AlertRow | None:
    with Session(engine) as s:
        return s.get(AlertRow, alert_id)


def find(
    engine: Engine, f: AlertFilter, *, offset: int = 0, limit: int = 100
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
    with Session(engine) as s:
        total = count_rows(s, q)
        rows = s.scalars(
            q.order_by(AlertRow.raised_at.desc(), AlertRow.id.desc()).offset(offset).limit(limit)
        )
        return list(rows), total


def history(engine: Engine, alert_id: str | None = None) -> list[HistoryRow]:
    q = select(HistoryRow).order_by(HistoryRow.n)
    if alert_id:
        q = q.where(HistoryRow.alert_id == alert_id)
    with Session(engine) as s:
        return list(s.scalars(q))


def verify(engine: Engine) -> VerifyReport:
    """Walk the history chain and replay it against the ``alerts`` table."""
    with Session(engine) as s:
        chain = walk_chain(s)
        rows = {r.id: r for r in s.scalars(select(AlertRow))}
    problems = list(chain.problems)
    for alert_id, row in rows.items():
        seen = chain.last.get(alert_id)
        if seen is None:
            problems.append(f"alert {alert_id}: no history")
        elif row_state(row) != event_state(seen):
            problems.append(f"alert {alert_id}: row differs from its history")
    for alert_id in chain.last.keys() - rows.keys():
        problems.append(f"alert {alert_id}: in history, missing from alerts")
    return VerifyReport(chain.entries, len(rows), problems)

"""What the API and ``sitewatch attendance`` show, read from the ledger and the worker
registry with the site's policy: who is on site, headcount, hours, day-labour sheets."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from sitewatch.domains.attendance.hours import WorkerDay, worker_days
from sitewatch.domains.attendance.ledger import Ledger, LedgerRow
from sitewatch.domains.attendance.policy import AttendancePolicy
from sitewatch.domains.attendance.sheets import DayLabourSheet, build_sheets, days_between
from sitewatch.domains.attendance.sitepolicy import PolicyRow, get_policy
from sitewatch.domains.attendance.watch import SiteInfo
from sitewatch.domains.attendance.workers import WorkerInfo, Workers
from sitewatch.domains.registry import SiteRow

UNREGISTERED = "(unregistered)"


@dataclass(slots=True)
class SiteDays:
    """A site's worker-days over a range of attendance days."""

    site: str
    policy: AttendancePolicy
    workers: dict[str, WorkerInfo]
    days: dict[tuple[str, date], WorkerDay]


class DayRangeError(ValueError):
    pass


def day_range(
    policy: AttendancePolicy,
    first: date | None,
    last: date | None,
    now_ms: int,
    max_days: int | None = None,
) -> tuple[date, date]:
    """The attendance days asked for: ``last`` defaults to today at the site (its
    policy's day, not the calendar's), ``first`` to ``last``; both inclusive."""
    last = last or policy.day_of(now_ms)
    first = first or last
    if first > last:
        raise DayRangeError(f"from {first} is after to {last}")
    days = (last - first).days + 1
    if max_days is not None and days > max_days:
        raise DayRangeError(f"{days} days asked for, at most {max_days}: ask for a shorter range")
    return first, last


def site_infos(s: Session) -> dict[str, SiteInfo]:
    """Every site's policy, plan and workers, for the attendance alerts."""
    policies = {
        r.site: AttendancePolicy.model_validate(r.policy) for r in s.scalars(select(PolicyRow))
    }
    plans = {r.id: r.planned_headcount for r in s.scalars(select(SiteRow))}
    workers = Workers(s).all_infos()
    return {
        site: SiteInfo(
            policies.get(site, AttendancePolicy()), plans.get(site), workers.get(site, {})
        )
        for site in set(policies) | set(plans) | set(workers)
    }


def todays_gate_events(s: Session, infos: dict[str, SiteInfo], now_ms: int) -> list[LedgerRow]:
    """Every site's gate events of its current attendance day (to restore the alerts'
    view of who is on site after a restart)."""
    ledger = Ledger(s)
    out: list[LedgerRow] = []
    for site in ledger.sites():
        policy = infos[site].policy if site in infos else AttendancePolicy()
        start, end = policy.day_bounds(policy.day_of(now_ms))
        out += ledger.rows(site, start, end, limit=None)
    return out


def site_days(s: Session, site: str, first: date, last: date, now_ms: int) -> SiteDays:
    policy = get_policy(s, site)
    start, _ = policy.day_bounds(first)
    _, end = policy.day_bounds(last)
    events = Ledger(s).events(site, start, end)
    return SiteDays(site, policy, Workers(s).infos(site), worker_days(events, policy, now_ms))


@dataclass(frozen=True, slots=True)
class OnSite:
    worker: str
    name: str | None
    team: str
    subcontractor: str
    since: int


def on_site_now(s: Session, site: str, now_ms: int) -> list[OnSite]:
    today = get_policy(s, site).day_of(now_ms)
    sd = site_days(s, site, today, today, now_ms)
    out = []
    for (worker, _), wd in sd.days.items():
        if wd.on_site:
            info = sd.workers.get(worker)
            out.append(
                OnSite(
                    worker,
                    info.name if info else None,
                    info.team if info else UNREGISTERED,
                    info.subcontractor if info else "",
                    wd.sessions[-1].start,
                )
            )
    return sorted(out, key=lambda o: (o.team, o.worker))


@dataclass(slots=True)
class Headcount:
    day: date
    #: workers who came (had a session) that day
    came: int = 0
    on_site_now: int = 0
    by_team: dict[str, int] = field(default_factory=dict)
    by_subcontractor: dict[str, int] = field(default_factory=dict)
    unregistered: int = 0


def headcounts(s: Session, site: str, first: date, last: date, now_ms: int) -> list[Headcount]:
    sd = site_days(s, site, first, last, now_ms)
    out = {d: Headcount(d) for d in days_between(first, last)}
    teams: dict[date, Counter[str]] = {d: Counter() for d in out}
    subs: dict[date, Counter[str]] = {d: Counter() for d in out}
    for (worker, day), wd in sd.days.items():
        if day not in out or not wd.sessions:
            continue
        h = out[day]
        h.came += 1
        h.on_site_now += wd.on_site
        info = sd.workers.get(worker)
        if info is None:
            h.unregistered += 1
            teams[day][UNREGISTERED] += 1
            continue
        teams[day][info.team] += 1
        subs[day][info.subcontractor or "-"] += 1
    for d, h in out.items():
        h.by_team = dict(sorted(teams[d].items()))
        h.by_subcontractor = dict(sorted(subs[d].items()))
    return list(out.values())


def hours(
    s: Session, site: str, first: date, last: date, now_ms: int, worker: str | None = None
) -> list[WorkerDay]:
    sd = site_days(s, site, first, last, now_ms)
    return [
        wd
        for (w, d), wd in sd.days.items()
        if first <= d <= last and (worker is None or w == worker)
    ]


def sheets(
    s: Session, site: str, first: date, last: date, now_ms: int, team: str | None = None
) -> list[DayLabourSheet]:
    sd = site_days(s, site, first, last, now_ms)
    row = s.get(SiteRow, site)
    return build_sheets(
        site,
        row.name if row is not None else site,
        sd.days,
        sd.workers,
        first,
        last,
        sd.policy.hours_per_day,
        team,
    )

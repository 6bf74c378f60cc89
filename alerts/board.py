"""The dashboard feed: what Grafana shows that no device sends, as InfluxDB line protocol.

Every ``board_interval_s`` the alert service writes (docs/alerts.md, "Dashboard feed"):

- ``limits``: the limit each rule of each device applies now (day/night schedules, the
  site's clock, overrides), so a chart can draw it next to the readings;
- ``site_summary``: per site, what the registry says of it and what the service knows
  now: open alerts, gateways offline, workers on site;
- ``attendance_team``: credited hours per team and attendance day, computed by the
  day-labour sheets' own code (``sitewatch.domains.attendance.sheets``).

The line builders are pure. :func:`read_store` is the one blocking read they need (the
registry, which open alerts went to the county, the sites' worker-days); the service
runs it in a worker thread, and formats the bulk of the lines there too
(:func:`bulk_lines`: a county's limits run to tens of thousands of points), from a
snapshot of the engine's limits taken on the event loop. Timestamps are ms, the
precision every SiteWatch write uses.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.engine import AlertEngine, RuleLimit
from sitewatch.core.lineprotocol import LineProtocolError, format_line
from sitewatch.domains.alertrecords.model import SEVERITY_RANK, Level, State
from sitewatch.domains.alertrecords.store import AlertRow
from sitewatch.domains.attendance import reports
from sitewatch.domains.attendance.ledger import Ledger
from sitewatch.domains.attendance.sheets import SheetRow, Totals, build_sheets, days_between
from sitewatch.domains.attendance.sitepolicy import get_policy
from sitewatch.domains.attendance.watch import AttendanceWatch
from sitewatch.domains.attendance.workers import WorkerInfo, WorkerRow
from sitewatch.domains.registry import Registry, SiteRow

log = logging.getLogger("sitewatch.alerts.board")

FieldValue = float | int | str


@dataclass(frozen=True, slots=True)
class SiteFacts:
    """What the registry says of a site."""

    name: str
    county: str
    latitude: float
    longitude: float
    planned_headcount: int | None


@dataclass(frozen=True, slots=True)
class TeamDay:
    """A team's figures for one attendance day, as its day-labour sheet has them."""

    site: str
    team: str
    day: date
    #: the attendance day's start (ms): the point's time, the same at every rewrite
    start_ms: int
    hours: Decimal
    #: workers with a row on the sheet that day (who came through a gate)
    workers: int


@dataclass(frozen=True, slots=True)
class StoreView:
    """What one round of the feed reads from the store."""

    sites: Mapping[str, SiteFacts] = field(default_factory=dict)
    gateways: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: ids of the open alerts that went to the county bureau (the engine has no levels)
    county_alerts: frozenset[str] = frozenset()
    teams: tuple[TeamDay, ...] = ()
    #: each attendance site's current attendance day: its team hours are written up to it
    today: Mapping[str, date] = field(default_factory=dict)


# -- line builders (pure) ---------------------------------------------------------------


def _line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], ts: int
) -> list[str]:
    """One line, as a list of none or one. An empty tag value is left out (InfluxDB
    reads a missing tag as ""); a value line protocol cannot carry is logged and
    skipped, never fatal: the rest of the feed goes out."""
    try:
        return [format_line(measurement, {k: v for k, v in tags.items() if v}, fields, ts)]
    except LineProtocolError as exc:
        log.warning("dashboard feed: %s point %s skipped: %s", measurement, dict(tags), exc)
        return []


def limit_lines(limits: Iterable[RuleLimit], now_ms: int) -> list[str]:
    """``limits``: one point per device and rule with a numeric limit now
    (:meth:`AlertEngine.limits`)."""
    out: list[str] = []
    for lim in limits:
        out += _line(
            "limits",
            {
                "device": lim.device,
                "field": lim.field,
                "gateway": lim.gateway,
                "profile": lim.profile,
                "rule": lim.rule,
                "site": lim.site,
            },
            {"value": lim.value},
            now_ms,
        )
    return out


def site_summary_lines(
    engine: AlertEngine, watch: AttendanceWatch, view: StoreView, now_ms: int
) -> list[str]:
    """``site_summary``: one point per registered site and per site the engine knows."""
    open_by_site: dict[str, Counter[str]] = defaultdict(Counter)
    for a in engine.open_alerts():
        counts = open_by_site[a.site]
        counts[a.severity] += 1
        counts["total"] += 1
        counts["county"] += a.id in view.county_alerts
    gateways: dict[str, set[str]] = {site: set(g) for site, g in view.gateways.items()}
    for site, gateway in engine.gateways():
        gateways.setdefault(site, set()).add(gateway)
    out: list[str] = []
    for site in sorted(set(view.sites) | engine.sites()):
        facts = view.sites.get(site)
        counts = open_by_site.get(site, Counter())
        gws = gateways.get(site, set())
        fields: dict[str, FieldValue] = {
            "name": facts.name if facts else site,
            "county": facts.county if facts else "",
        }
        if facts is not None:
            fields["latitude"] = float(facts.latitude)
            fields["longitude"] = float(facts.longitude)
        fields.update(
            open_alarm=counts["alarm"],
            open_warning=counts["warning"],
            open_county=counts["county"],
            open_total=counts["total"],
            worst=max((rank for sev, rank in SEVERITY_RANK.items() if counts[sev]), default=0),
            gateways=len(gws),
            gateways_offline=sum(1 for g in gws if engine.gateway_offline(site, g)),
            on_site=watch.on_site(site),
        )
        if facts is not None and facts.planned_headcount is not None:
            fields["planned_headcount"] = int(facts.planned_headcount)
        out += _line("site_summary", {"site": site}, fields, now_ms)
    return out


def team_lines(teams: Iterable[TeamDay]) -> list[str]:
    """``attendance_team``: one point per site, team and attendance day, at the day's
    start, so that a rewrite of the day replaces its point."""
    out: list[str] = []
    for t in teams:
        # a team is free text: line protocol cannot end a tag in a backslash
        team = t.team.replace("\n", " ").rstrip("\\")
        out += _line(
            "attendance_team",
            {"site": t.site, "team": team},
            {"hours": float(t.hours), "workers": t.workers, "day": t.day.isoformat()},
            t.start_ms,
        )
    return out


def bulk_lines(limits: Iterable[RuleLimit], teams: Iterable[TeamDay], now_ms: int) -> list[str]:
    """The many lines of a round, ``limits`` and ``attendance_team``, from snapshots:
    made in a worker thread, off the event loop."""
    return limit_lines(limits, now_ms) + team_lines(teams)


# -- team hours (the sheets' arithmetic) -----------------------------------------------


def team_days(sd: reports.SiteDays, first: date, last: date) -> list[TeamDay]:
    """Each team's hours and workers per attendance day ``first``..``last``: the rows of
    the day-labour sheets, summed as a one-day sheet totals them. Workers not in the
    registry are on no sheet; here they are one more team, ``(unregistered)``, as the
    headcounts show them."""
    workers = dict(sd.workers)
    for worker, _ in sd.days:
        if worker not in workers:
            workers[worker] = WorkerInfo(
                worker, "", reports.UNREGISTERED, False, "", "", Decimal(0), None, None
            )
    out: list[TeamDay] = []
    for sheet in build_sheets(
        sd.site, sd.site, sd.days, workers, first, last, sd.policy.hours_per_day
    ):
        rows: dict[date, list[SheetRow]] = {d: [] for d in days_between(first, last)}
        for row in sheet.rows:
            rows[row.day].append(row)
        for day, day_rows in rows.items():
            totals = Totals()
            for row in day_rows:
                totals.add(row)
            out.append(
                TeamDay(
                    sd.site,
                    sheet.team,
                    day,
                    sd.policy.day_bounds(day)[0],
                    totals.hours,
                    len(day_rows),
                )
            )
    return out


# -- the store (blocking) -----------------------------------------------------------------


def read_store(s: Session, written: Mapping[str, date], now_ms: int, board_days: int) -> StoreView:
    """Everything a round needs from the store. ``written``: per site, the attendance
    day the last successful round wrote as today. A site's team hours are read from
    that day (the day just ended, once more: its forgotten exits are now closed at
    shift end) or, for a site not written yet, from ``board_days`` days back, to today.
    Only sites with ledger entries or registered workers have team hours."""
    sites = {
        r.id: SiteFacts(r.name, r.county, r.latitude, r.longitude, r.planned_headcount)
        for r in s.scalars(select(SiteRow))
    }
    gateways: dict[str, set[str]] = defaultdict(set)
    for g in Registry(s).all_gateways():
        gateways[g.site].add(g.id)
    county = frozenset(
        s.scalars(
            select(AlertRow.id).where(
                AlertRow.state != State.RESOLVED.value, AlertRow.level == Level.COUNTY.value
            )
        )
    )
    with_workers = s.scalars(select(WorkerRow.site).where(WorkerRow.active.is_(True)).distinct())
    teams: list[TeamDay] = []
    today: dict[str, date] = {}
    for site in sorted(set(Ledger(s).sites()) | set(with_workers)):
        day = get_policy(s, site).day_of(now_ms)
        first = min(written.get(site, day - timedelta(days=board_days)), day)
        teams += team_days(reports.site_days(s, site, first, day, now_ms), first, day)
        today[site] = day
    return StoreView(
        sites, {site: frozenset(g) for site, g in gateways.items()}, county, tuple(teams), today
    )


class Outage:
    """Says once that something started failing and once that it works again, instead
    of at every round."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.down = False

    def failed(self, reason: object, then: str) -> None:
        if not self.down:
            log.warning("dashboard feed: %s failed (%s); %s", self.what, reason, then)
            self.down = True

    def ok(self) -> None:
        if self.down:
            log.info("dashboard feed: %s works again", self.what)
            self.down = False

"""Attendance alerts: gate events and the registry in, derived readings out. Pure logic.

The alert service feeds every gate event here. Per worker the watch keeps the events of
the current attendance day and reads them with the same rules as the sheets
(``sitewatch.domains.attendance.hours``); when what it derives changes, it returns a reading of
the derived profile ``attendance_worker`` (device = the worker) or ``attendance_site``
(device ``HEADCOUNT``), which the alert engine evaluates like any device's readings, so
these alerts have the same lifecycle, overrides and outputs as every other:

- ``unregistered``: a worker not in the site's registry is on site (or swiped out
  without being on site: raised and cleared at once). Only for sites that keep a worker
  registry: on a site with none, every worker would be "unknown";
- ``training_lapsed`` / ``certificate_lapsed``: on site with it expired;
- ``limit_pct``: time on site this attendance day as a share of ``daily_limit_h``,
  while on site;
- ``headcount_pct``: workers on site as a share of the site's planned headcount.

:meth:`tick` advances time: hours on site grow and a day that ends closes the sessions
left open. It re-reads every worker on site, so it runs at most once a minute (the
derived profiles' sample interval) however often it is called. Events of an earlier
attendance day are history (the sheets use them) and raise nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sitewatch.core import contract
from sitewatch.domains.attendance.hours import GateEvent, worker_day
from sitewatch.domains.attendance.policy import AttendancePolicy
from sitewatch.domains.attendance.workers import WorkerInfo

#: how often :meth:`AttendanceWatch.tick` re-derives everyone
TICK_MS = 60_000
WORKER_PROFILE = "attendance_worker"
SITE_PROFILE = "attendance_site"
SITE_DEVICE = "HEADCOUNT"


@dataclass(frozen=True, slots=True)
class SiteInfo:
    policy: AttendancePolicy = field(default_factory=AttendancePolicy)
    planned_headcount: int | None = None
    workers: Mapping[str, WorkerInfo] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Derived:
    """A reading of a derived profile, for the alert engine."""

    site: str
    gateway: str
    device: str
    profile: str
    values: dict[str, Any]


@dataclass(slots=True)
class _Worker:
    gateway: str
    day: date
    events: list[GateEvent] = field(default_factory=list)
    seen: set[tuple[str, int]] = field(default_factory=set)
    on_site: bool = False
    reported: dict[str, Any] | None = None


_CLEAR = {
    "unregistered": False,
    "training_lapsed": False,
    "certificate_lapsed": False,
    "limit_pct": 0.0,
}


class AttendanceWatch:
    def __init__(self, sites: Mapping[str, SiteInfo] | None = None) -> None:
        self.sites: dict[str, SiteInfo] = dict(sites or {})
        self._workers: dict[tuple[str, str], _Worker] = {}
        self._headcount: dict[str, tuple[str, int, float | None]] = {}  # gateway, n, pct
        #: workers on site per site, kept as each worker's state changes
        self._on_site: Counter[str] = Counter()
        self._ticked_ms: int | None = None

    def site(self, site: str) -> SiteInfo:
        return self.sites.get(site) or SiteInfo()

    def update_sites(self, sites: Mapping[str, SiteInfo], now_ms: int) -> list[Derived]:
        """New registry content (workers, policies, plans): re-derive everyone."""
        self.sites = dict(sites)
        return self.tick(now_ms, force=True)

    # -- input ------------------------------------------------------------------------
    def observe(
        self, site: str, gateway: str, items: Iterable[contract.AttendanceItem], now_ms: int
    ) -> list[Derived]:
        policy = self.site(site).policy
        today = policy.day_of(now_ms)
        touched: dict[str, _Worker] = {}
        out: list[Derived] = []
        for i in items:
            w = self._add(site, gateway, i, policy, today)
            if w is not None:
                touched[i.worker] = w
        for worker, w in touched.items():
            out += self._derive(site, worker, w, now_ms, swiped=True)
        out += self._headcount_change(site, gateway)
        return out

    def restore(
        self, events: Iterable[tuple[str, str, contract.AttendanceItem]], now_ms: int
    ) -> list[Derived]:
        """Today's gate events at start, as (site, gateway, event) from the ledger: all
        taken in before anyone is derived, so only what holds now is. Observed one by
        one, every moment of the day already over (the headcount above the plan this
        morning, an unknown worker who has left) was raised, and cleared, again at each
        restart of the alert service."""
        days: dict[str, tuple[AttendancePolicy, date]] = {}
        for site, gateway, i in events:
            if site not in days:
                policy = self.site(site).policy
                days[site] = policy, policy.day_of(now_ms)
            self._add(site, gateway, i, *days[site])
        return self.tick(now_ms, force=True)

    def tick(self, now_ms: int, *, force: bool = False) -> list[Derived]:
        if not force and self._ticked_ms is not None and now_ms - self._ticked_ms < TICK_MS:
            return []
        self._ticked_ms = now_ms
        out: list[Derived] = []
        sites: dict[str, str] = {}  # a gateway of each, for a headcount not seen yet
        for (site, worker), w in list(self._workers.items()):
            today = self.site(site).policy.day_of(now_ms)
            if w.day != today:  # the day is over: what was open is closed
                w.day, w.events, w.seen = today, [], set()
            out += self._derive(site, worker, w, now_ms, swiped=False)
            sites.setdefault(site, w.gateway)
            if not w.events and not w.on_site and w.reported == _CLEAR:
                del self._workers[(site, worker)]  # nothing to remember
        for site in sites.keys() | self._headcount.keys():
            gateway = self._headcount[site][0] if site in self._headcount else sites[site]
            out += self._headcount_change(site, gateway)
        return out

    def _add(
        self,
        site: str,
        gateway: str,
        i: contract.AttendanceItem,
        policy: AttendancePolicy,
        today: date,
    ) -> _Worker | None:
        """Record one gate event of ``today``; None if it is not one (or a resend)."""
        if policy.day_of(i.ts) != today:
            return None  # an earlier day's event (a backlog): history, not an alert
        w = self._worker(site, i.worker, gateway, today)
        if (i.device, i.seq) in w.seen:
            return None  # a resend
        w.seen.add((i.device, i.seq))
        w.events.append(GateEvent(i.ts, i.worker, i.direction, i.device, i.seq))
        w.gateway = gateway
        return w

    # -- derivation ---------------------------------------------------------------------
    def _worker(self, site: str, worker: str, gateway: str, today: date) -> _Worker:
        w = self._workers.get((site, worker))
        if w is None:
            w = self._workers[(site, worker)] = _Worker(gateway, today)
        elif w.day != today:
            w.day, w.events, w.seen = today, [], set()
        return w

    def _derive(
        self, site: str, worker: str, w: _Worker, now_ms: int, *, swiped: bool
    ) -> list[Derived]:
        info = self.site(site)
        wd = worker_day(worker, w.day, w.events, info.policy, now_ms)
        if wd.on_site != w.on_site:
            self._on_site[site] += 1 if wd.on_site else -1
            w.on_site = wd.on_site
        member = info.workers.get(worker)
        unknown = member is None and bool(info.workers)
        values = dict(_CLEAR)
        if wd.on_site:
            lapsed = member.lapsed(w.day) if member is not None else []
            values = {
                "unregistered": unknown,
                "training_lapsed": "training" in lapsed,
                "certificate_lapsed": "certificate" in lapsed,
                "limit_pct": round(wd.credited_ms / (info.policy.daily_limit_h * 36_000), 0),
            }
        out: list[Derived] = []
        if swiped and unknown and not wd.on_site:
            # an unknown worker swiped out without being on site: seen at the gate all
            # the same; raised, and cleared at once
            out.append(
                Derived(site, w.gateway, worker, WORKER_PROFILE, {**_CLEAR, "unregistered": True})
            )
            w.reported = None
        if values != w.reported:
            out.append(Derived(site, w.gateway, worker, WORKER_PROFILE, values))
            w.reported = values
        return out

    def _headcount_change(self, site: str, gateway: str) -> list[Derived]:
        n = self._on_site[site]
        plan = self.site(site).planned_headcount
        pct = round(n / plan * 100, 1) if plan else None
        before = self._headcount.get(site)
        if before is not None and before[1:] == (n, pct):
            return []
        self._headcount[site] = (gateway, n, pct)
        if pct is None:
            return []
        return [
            Derived(site, gateway, SITE_DEVICE, SITE_PROFILE, {"on_site": n, "headcount_pct": pct})
        ]

    def on_site(self, site: str) -> int:
        return self._on_site[site]

"""The alert engine: readings and gateway status in, alert changes out. Pure logic, no I/O.

Per device it keeps the rule evaluators (``alerts.rules``) and, per condition
(a rule group, or a rule), at most one open alert. An alert is

- **raised** once when a rule of its group becomes active (not once per reading),
- **escalated** when a more severe rule of the group becomes active (warning -> alarm),
- **cleared** when no rule of the group is active any more; it is **resolved** once it
  stayed clear for ``hold_s`` (checked by :meth:`AlertEngine.tick`), or **reactivated** -
  the same alert - if the condition returns within the hold time.

Readings are deduplicated by (site, device, seq): a batch delivered three times is
evaluated once. A reading older than the newest one already evaluated for its device is
*late* (a gateway draining its backlog): it goes through a second, separate set of
evaluators so it can never clear or re-raise a live alert; when that late series shows a
condition that no live alert covered, the engine records it as a ``late`` alert (born
resolved: it is history, not something to act on now).

Time: rule conditions use device timestamps; silence is measured from when readings
arrive (a backlog drained after a restart must not look like live data from the past),
and the hold time and gateway grace time on the caller's clock (``now_ms``).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.rules.evaluate import EVALUATORS, Evaluator, Silent, Verdict
from alerts.seqset import SeqSet
from sitewatch.core.profiles.model import Limit, OfflineRule, Rule, WindowAggregate, WindowRule
from sitewatch.domains.alertrecords.model import (
    SEVERITY_RANK,
    Change,
    EventKind,
    OpenAlert,
    State,
)
from sitewatch.domains.rulebook import RuleBook

GATEWAY_PROFILE = "gateway"

#: how a window rule's aggregate is named in an alert's title
_AGGREGATE_LABEL = {
    WindowAggregate.ENERGY: "Leq",
    WindowAggregate.MEAN: "mean",
    WindowAggregate.MAX: "max",
    WindowAggregate.MIN: "min",
}


@dataclass(frozen=True, slots=True)
class RuleLimit:
    """The limit one rule of one device applies at a given moment."""

    site: str
    gateway: str
    device: str
    profile: str
    rule: str
    field: str
    value: float


@dataclass(slots=True)
class _Run:
    rule: Rule
    evaluator: Evaluator
    group: str
    silent: bool


@dataclass(slots=True)
class _Device:
    site: str
    gateway: str
    device: str
    profile: str
    runs: list[_Run]
    silent: list[_Run]
    utc_offset_h: float
    sample_interval_s: float
    seqs: SeqSet = field(default_factory=SeqSet)
    watermark: int = -1
    late_runs: list[_Run] | None = None
    #: per group: the active rules and their last verdicts
    active: dict[str, dict[str, tuple[Rule, Verdict]]] = field(default_factory=dict)
    late_active: dict[str, dict[str, tuple[Rule, Verdict]]] = field(default_factory=dict)
    open: dict[str, OpenAlert] = field(default_factory=dict)


@dataclass(slots=True)
class _Gateway:
    boot: int = -1
    offline_since: int | None = None


@dataclass
class EngineStats:
    readings: int = 0
    duplicates: int = 0
    late: int = 0
    unknown_profile: int = 0
    stale_wills: int = 0
    changes: int = 0


def _new_id() -> str:
    return uuid.uuid4().hex


class AlertEngine:
    def __init__(
        self, book: RuleBook, *, hold_s: float, new_id: Callable[[], str] = _new_id
    ) -> None:
        self.book = book
        self.hold_ms = int(hold_s * 1000)
        self.new_id = new_id
        self.stats = EngineStats()
        self._devices: dict[tuple[str, str], _Device] = {}
        self._gateways: dict[tuple[str, str], _Gateway] = {}
        self._by_id: dict[str, tuple[_Device, str]] = {}

    # -- state ------------------------------------------------------------------------
    def _runs(self, rules: Iterable[Rule], utc: float, interval: float) -> list[_Run]:
        return [
            _Run(r, EVALUATORS[r.kind](r, utc, interval), r.condition_key, r.kind == "silent")
            for r in rules
            if r.kind in EVALUATORS
        ]

    def _device(self, site: str, gateway: str, device: str, profile: str) -> _Device | None:
        dev = self._devices.get((site, device))
        if dev is not None and dev.profile == profile:
            if dev.gateway != gateway:
                dev.gateway = gateway  # the device moved to another gateway of the site
            return dev
        p = self.book.profiles.get(profile)
        if p is None:
            self.stats.unknown_profile += 1
            return None
        utc = self.book.utc_offset_h(site)
        runs = self._runs(self.book.rules_for(site, device, profile), utc, p.sample_interval_s)
        new = _Device(
            site,
            gateway,
            device,
            profile,
            runs,
            [r for r in runs if r.silent],
            utc,
            p.sample_interval_s,
        )
        if dev is not None:  # its profile changed: start over, keep its open alerts
            new.open = dev.open
            for group in new.open:
                self._by_id[new.open[group].id] = (new, group)
        self._devices[(site, device)] = new
        return new

    def restore(self, alerts: Iterable[OpenAlert]) -> int:
        """Take over alerts that were open when the service stopped."""
        n = 0
        for a in alerts:
            dev = self._device(a.site, a.gateway, a.device, a.profile)
            if dev is None:
                continue
            before = dev.open.get(a.group)
            if before is not None and before.id != a.id:
                self._by_id.pop(before.id, None)
            dev.open[a.group] = a
            self._by_id[a.id] = (dev, a.group)
            n += 1
        return n

    def refused(self, alert_id: str, stored: OpenAlert | None) -> bool:
        """The store refused to raise ``alert_id``: its condition already has an open alert
        there (``stored``: left by another writer, or an earlier run of the service), or
        none could be written. Track ``stored`` in its place, so the engine and the store
        agree again: later readings clear, reactivate or escalate the stored alert. False
        if the engine no longer tracks ``alert_id`` (it moved on: nothing to change)."""
        found = self._by_id.get(alert_id)
        if found is None:
            return False
        dev, group = found
        self.forget(alert_id)
        if stored is not None and (stored.site, stored.device, stored.group) == (
            dev.site,
            dev.device,
            group,
        ):
            self.restore([stored])
        return True

    def forget(self, alert_id: str) -> None:
        """An alert resolved by someone else (an operator): stop tracking it."""
        found = self._by_id.pop(alert_id, None)
        if found is not None:
            dev, group = found
            if group in dev.open and dev.open[group].id == alert_id:
                del dev.open[group]
                # forget the active rules too: if the condition still holds, the next
                # verdict is a change and raises a new alert
                dev.active.pop(group, None)

    def open_alerts(self) -> list[OpenAlert]:
        return [a for dev in self._devices.values() for a in dev.open.values()]

    # -- read-only views (the dashboard feed) -------------------------------------------
    def limits(self, now_ms: int) -> Iterator[RuleLimit]:
        """The numeric limit each rule that compares a field applies at ``now_ms``, per
        device, as its evaluator sees it (schedule, site clock, overrides). A rule with
        no limit at that hour (a night-only schedule by day) or a non-numeric one
        (``== true``) is left out, and so are derived devices (one per worker on site:
        their limit is the site's daily limit, the same for all)."""
        for dev in self._devices.values():
            if self.book.profiles[dev.profile].derived:
                continue
            for run in dev.runs:
                if not isinstance(run.rule, Limit):
                    continue
                limit = run.evaluator.limit_at(now_ms)
                if isinstance(limit, int | float) and not isinstance(limit, bool):
                    yield RuleLimit(
                        dev.site,
                        dev.gateway,
                        dev.device,
                        dev.profile,
                        run.rule.id,
                        run.rule.field,
                        float(limit),
                    )

    def sites(self) -> set[str]:
        """Every site the engine has seen a device or a gateway of."""
        return {site for site, _ in self._devices} | {site for site, _ in self._gateways}

    def gateways(self) -> set[tuple[str, str]]:
        """Every (site, gateway) the engine knows, by a status or by its devices."""
        known = set(self._gateways)
        known.update((d.site, d.gateway) for d in self._devices.values() if d.gateway)
        return known

    # -- readings ---------------------------------------------------------------------
    def observe(
        self,
        site: str,
        gateway: str,
        device: str,
        profile: str,
        ts: int,
        seq: int,
        values: Mapping[str, Any],
        now_ms: int,
    ) -> list[Change]:
        dev = self._device(site, gateway, device, profile)
        if dev is None:
            return []
        if not dev.seqs.add(seq):
            self.stats.duplicates += 1
            return []
        self.stats.readings += 1
        changes: list[Change] = []
        if ts < dev.watermark:
            self.stats.late += 1
            self._observe_late(dev, ts, values, changes)
            return changes
        dev.watermark = ts
        touched: set[str] = set()
        active, opened = dev.active, dev.open
        for run in dev.runs:
            # silence counts from when readings arrive, the rest from device time
            verdict = run.evaluator.observe(now_ms if run.silent else ts, values)
            if verdict is None:
                continue
            # reconcile only what may need it: a change, or a group with an open alert
            # (an inactive verdict of a group with no active rule changes nothing)
            group = run.group
            if verdict.active or group in active:
                if self._note(active, group, run.rule, verdict) or group in opened:
                    touched.add(group)
            elif group in opened:
                touched.add(group)
        for group in touched:
            self._reconcile(dev, group, ts, changes)
        self.stats.changes += len(changes)
        return changes

    @staticmethod
    def _note(
        table: dict[str, dict[str, tuple[Rule, Verdict]]],
        group_key: str,
        rule: Rule,
        verdict: Verdict,
    ) -> bool:
        """Record a verdict; True if the group's set of active rules changed."""
        group = table.get(group_key)
        if verdict.active:
            if group is None:
                table[group_key] = {rule.id: (rule, verdict)}
                return True
            new = rule.id not in group
            group[rule.id] = (rule, verdict)
            return new
        if group is not None and rule.id in group:
            del group[rule.id]
            if not group:
                del table[group_key]
            return True
        return False

    def _new_alert(
        self, dev: _Device, group: str, severity: str, state: State, at: int
    ) -> OpenAlert:
        return OpenAlert(
            self.new_id(),
            dev.site,
            dev.gateway,
            dev.device,
            dev.profile,
            group,
            severity,
            state,
            at,
        )

    def _reconcile(self, dev: _Device, group: str, at: int, changes: list[Change]) -> None:
        """Bring the group's alert in line with its active rules."""
        active = dev.active.get(group)
        alert = dev.open.get(group)
        if active:
            rule, verdict = max(active.values(), key=lambda rv: SEVERITY_RANK[rv[0].severity])
            if alert is None:
                alert = self._new_alert(dev, group, rule.severity, State.ACTIVE, at)
                dev.open[group] = alert
                self._by_id[alert.id] = (dev, group)
                changes.append(self._change(EventKind.RAISED, alert, at, rule, verdict))
                return
            if alert.state is State.CLEARING:
                alert.state, alert.cleared_at = State.ACTIVE, None
                changes.append(self._change(EventKind.REACTIVATED, alert, at, rule, verdict))
            if SEVERITY_RANK[rule.severity] > SEVERITY_RANK[alert.severity]:
                alert.severity = rule.severity
                changes.append(self._change(EventKind.ESCALATED, alert, at, rule, verdict))
        elif alert is not None and alert.state is State.ACTIVE:
            alert.state, alert.cleared_at = State.CLEARING, at
            changes.append(self._change(EventKind.CLEARED, alert, at))

    def _change(
        self,
        event: EventKind,
        a: OpenAlert,
        at: int,
        rule: Rule | None = None,
        verdict: Verdict | None = None,
        late: bool = False,
    ) -> Change:
        c = Change(event, a.id, at, a.site, a.gateway, a.device, a.profile, a.group, late=late)
        if rule is not None and verdict is not None:
            c.rule, c.severity, c.title = rule.id, rule.severity.value, rule.title or rule.id
            c.value, c.limit = verdict.value, verdict.limit
            if isinstance(rule, WindowRule) and verdict.covered_s is not None:
                c.title = f"{c.title} ({self._window_text(a.profile, rule, verdict)})"
        return c

    def _window_text(self, profile: str, rule: WindowRule, verdict: Verdict) -> str:
        """What a window rule judged, and over how much of its window: ``Leq 72.3 dB(A)
        over 14 of 20 min`` (covered time rounded down, never overstated)."""
        p = self.book.profiles.get(profile)
        spec = p.fields.get(rule.field) if p is not None else None
        unit = f" {spec.unit}" if spec is not None and spec.unit else ""
        label = _AGGREGATE_LABEL[rule.aggregate]
        value = verdict.value
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        covered = verdict.covered_s or 0.0
        if rule.window_s >= 120 and rule.window_s % 60 == 0:
            span = f"{math.floor(covered / 60 + 1e-9)} of {int(rule.window_s // 60)} min"
        else:
            span = f"{math.floor(covered + 1e-9)} of {rule.window_s:g} s"
        return f"{label} {shown}{unit} over {span}"

    def _observe_late(
        self, dev: _Device, ts: int, values: Mapping[str, Any], changes: list[Change]
    ) -> None:
        if dev.late_runs is None:
            rules = [r.rule for r in dev.runs if not r.silent]
            dev.late_runs = self._runs(rules, dev.utc_offset_h, dev.sample_interval_s)
        began: set[str] = set()
        for run in dev.late_runs:
            verdict = run.evaluator.observe(ts, values)
            if verdict is None:
                continue
            was = run.group in dev.late_active
            self._note(dev.late_active, run.group, run.rule, verdict)
            if not was and run.group in dev.late_active:
                began.add(run.group)
        for group in began:
            live = dev.open.get(group)
            if live is not None and live.raised_at <= ts:
                continue  # the live alert already covers this time
            rule, verdict = max(
                dev.late_active[group].values(), key=lambda rv: SEVERITY_RANK[rv[0].severity]
            )
            record = self._new_alert(dev, group, rule.severity, State.RESOLVED, ts)
            changes.append(self._change(EventKind.LATE, record, ts, rule, verdict, late=True))
        self.stats.changes += len(changes)

    # -- gateway status ---------------------------------------------------------------
    def status(self, site: str, gateway: str, state: str, boot: int, now_ms: int) -> list[Change]:
        """A gateway's retained status or Last Will. A will from an older boot than the
        one already seen comes from a session that was replaced: ignored."""
        gw = self._gateways.setdefault((site, gateway), _Gateway())
        if boot < gw.boot:
            self.stats.stale_wills += 1
            return []
        gw.boot = boot
        if state == "offline":
            if gw.offline_since is None:
                gw.offline_since = now_ms
            return []
        if gw.offline_since is not None:
            # back online: its devices get a full silence interval to report again
            for dev in self._devices.values():
                if (dev.site, dev.gateway) == (site, gateway):
                    for run in dev.silent:
                        assert isinstance(run.evaluator, Silent)
                        run.evaluator.restart(now_ms)
        gw.offline_since = None
        changes: list[Change] = []
        self._offline(site, gateway, None, now_ms, changes)
        self.stats.changes += len(changes)
        return changes

    def _offline(
        self, site: str, gateway: str, offline_s: float | None, now_ms: int, changes: list[Change]
    ) -> None:
        """The gateway's ``offline`` rules, given how long it has been offline."""
        dev = self._device(site, gateway, gateway, GATEWAY_PROFILE)
        if dev is None:
            return
        for rule in self.book.rules_for(site, gateway, GATEWAY_PROFILE):
            if isinstance(rule, OfflineRule):
                active = offline_s is not None and offline_s >= rule.grace_s
                verdict = Verdict(active, round(offline_s or 0.0, 1), rule.grace_s)
                self._note(dev.active, rule.condition_key, rule, verdict)
                self._reconcile(dev, rule.condition_key, now_ms, changes)

    def gateway_offline(self, site: str, gateway: str) -> bool:
        gw = self._gateways.get((site, gateway))
        return gw is not None and gw.offline_since is not None

    # -- clock ------------------------------------------------------------------------
    def tick(self, now_ms: int) -> list[Change]:
        """Time-driven changes: gateways offline past their grace time, silent devices,
        alerts clear for the hold time."""
        changes: list[Change] = []
        for (site, gateway), gw in self._gateways.items():
            if gw.offline_since is not None:
                self._offline(site, gateway, (now_ms - gw.offline_since) / 1000, now_ms, changes)
        for dev in self._devices.values():
            if not dev.silent or self.gateway_offline(dev.site, dev.gateway):
                continue  # a gateway offline is one alert, not one per device behind it
            for run in dev.silent:
                assert isinstance(run.evaluator, Silent)
                verdict = run.evaluator.check(now_ms)
                if verdict is not None and self._note(dev.active, run.group, run.rule, verdict):
                    self._reconcile(dev, run.group, now_ms, changes)
        for dev in self._devices.values():
            for group, alert in list(dev.open.items()):
                if (
                    alert.state is State.CLEARING
                    and alert.cleared_at is not None
                    and now_ms - alert.cleared_at >= self.hold_ms
                ):
                    del dev.open[group]
                    self._by_id.pop(alert.id, None)
                    alert.state = State.RESOLVED
                    changes.append(self._change(EventKind.RESOLVED, alert, now_ms))
        self.stats.changes += len(changes)
        return changes

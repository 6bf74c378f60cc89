"""The alert lifecycle and rule book, as pure logic (no servers)."""

from __future__ import annotations

import itertools

import pytest

from alerts.engine import AlertEngine
from alerts.seqset import SeqSet
from sitewatch.core.profiles import load_profiles
from sitewatch.core.settings import ConfigError
from sitewatch.domains.alertrecords.model import Change, EventKind, State
from sitewatch.domains.rulebook import Override, RuleBook

PROFILES = load_profiles()
T0 = 1_780_000_000_000  # a fixed instant; rules below do not depend on the hour


def engine(*overrides: Override, hold_s: float = 10) -> AlertEngine:
    counter = itertools.count(1)
    return AlertEngine(
        RuleBook(PROFILES, list(overrides)), hold_s=hold_s, new_id=lambda: f"A{next(counter)}"
    )


def crane(e: AlertEngine, seq: int, t_s: float, **values: float) -> list[Change]:
    ts = T0 + int(t_s * 1000)
    return e.observe("S1", "GW1", "TC1", "tower_crane", ts, seq, values, ts)


def events(changes: list[Change]) -> list[tuple[str, str, str]]:
    return [(c.event.value, c.group, c.severity) for c in changes]


def test_raised_once_escalated_cleared_and_resolved_after_hold() -> None:
    e = engine()
    assert crane(e, 1, 0, load_pct=50) == []
    assert events(crane(e, 2, 1, load_pct=92)) == [("raised", "load", "warning")]
    assert crane(e, 3, 2, load_pct=93) == []  # once per condition, not per reading
    assert events(crane(e, 4, 3, load_pct=104)) == [("escalated", "load", "alarm")]
    assert crane(e, 5, 4, load_pct=97) == []  # inside the alarm's hysteresis
    assert crane(e, 6, 5, load_pct=91) == []  # no de-escalation: still one alert
    assert events(crane(e, 7, 6, load_pct=80)) == [("cleared", "load", "")]
    assert e.tick(T0 + 15_000) == []  # hold time (10 s) not over
    assert events(crane(e, 8, 8, load_pct=95)) == [("reactivated", "load", "warning")]
    assert events(crane(e, 9, 9, load_pct=60)) == [("cleared", "load", "")]
    resolved = e.tick(T0 + 19_000)
    assert events(resolved) == [("resolved", "load", "")]
    assert {c.alert_id for c in resolved} == {"A1"}
    assert events(crane(e, 10, 30, load_pct=101)) == [("raised", "load", "alarm")]


def test_duplicate_deliveries_raise_nothing_twice() -> None:
    e = engine()
    batch = [(1, 0, 50.0), (2, 1, 120.0), (3, 2, 120.0)]
    first = [c for s, t, v in batch for c in crane(e, s, t, load_pct=v)]
    again = [c for _ in range(2) for s, t, v in batch for c in crane(e, s, t, load_pct=v)]
    assert events(first) == [("raised", "load", "alarm")]
    assert again == []
    assert e.stats.duplicates == 6


def test_late_readings_never_touch_the_live_alert_but_leave_a_late_record() -> None:
    e = engine()
    assert events(crane(e, 100, 100, load_pct=120)) == [("raised", "load", "alarm")]
    # a backlog from before: normal, then an overload the live alert does not cover
    assert crane(e, 10, 10, load_pct=40) == []  # would have cleared a live alert
    late = crane(e, 11, 11, load_pct=130)
    assert [(c.event, c.late, c.value) for c in late] == [(EventKind.LATE, True, 130.0)]
    assert crane(e, 12, 12, load_pct=131) == []  # one record per late episode
    assert e.open_alerts()[0].state is State.ACTIVE  # the live alert is untouched
    assert crane(e, 101, 101, load_pct=40)[0].event is EventKind.CLEARED


def test_late_condition_covered_by_the_live_alert_makes_no_record() -> None:
    e = engine()
    crane(e, 1, 0, load_pct=120)
    crane(e, 5, 5, load_pct=120)
    assert crane(e, 3, 3, load_pct=125) == []  # after the live alert was raised


def test_sustained_wind_and_guarded_door_rule() -> None:
    e = engine()
    assert crane(e, 1, 0, wind_ms=12) == []
    assert crane(e, 2, 2, wind_ms=12) == []
    assert events(crane(e, 3, 3, wind_ms=12)) == [("raised", "wind_alarm", "alarm")]
    ts = T0
    hoist = [
        e.observe("S1", "GW1", "H1", "construction_hoist", ts + i, i, v, ts + i)
        for i, v in enumerate(
            [
                {"door_closed": False, "speed_ms": 0.0},
                {"door_closed": False, "speed_ms": -0.8},
                {"door_closed": False, "speed_ms": 0.9},
            ]
        )
    ]
    assert [events(h) for h in hoist] == [[], [("raised", "door_open_moving", "alarm")], []]


def test_device_silent_and_back() -> None:
    e = engine(Override(rule="silent", profile="tower_crane", set={"intervals": 3}))
    crane(e, 1, 0, load_pct=10)
    assert e.tick(T0 + 2_000) == []
    assert events(e.tick(T0 + 3_500)) == [("raised", "silent", "warning")]
    assert e.tick(T0 + 5_000) == []
    assert events(crane(e, 2, 6, load_pct=10)) == [("cleared", "silent", "")]


def test_gateway_offline_after_grace_ignores_old_wills_and_suppresses_silence() -> None:
    e = engine(
        Override(rule="offline", set={"grace_s": 5}),
        Override(rule="silent", profile="tower_crane", set={"intervals": 3}),
    )
    crane(e, 1, 0, load_pct=10)
    assert e.status("S1", "GW1", "online", 7, T0) == []
    assert e.status("S1", "GW1", "offline", 6, T0 + 100) == []  # a will from boot 6
    crane(e, 2, 9.9, load_pct=10)
    assert e.tick(T0 + 10_000) == []  # ... was ignored: the gateway is online
    assert e.stats.stale_wills == 1
    e.status("S1", "GW1", "offline", 7, T0 + 10_000)
    assert e.tick(T0 + 14_000) == []  # grace; the crane's silence is not an alert
    raised = e.tick(T0 + 15_000)
    assert [(c.event, c.device, c.group) for c in raised] == [(EventKind.RAISED, "GW1", "offline")]
    assert e.tick(T0 + 20_000) == []  # once
    back = e.status("S1", "GW1", "online", 8, T0 + 21_000)
    assert [(c.event, c.group) for c in back] == [(EventKind.CLEARED, "offline")]
    # its devices get a full interval to report again before they count as silent
    assert e.tick(T0 + 23_000) == []
    assert [c.group for c in e.tick(T0 + 24_500)] == ["silent"]


def test_restored_open_alert_clears_and_is_not_raised_again() -> None:
    e = engine()
    crane(e, 1, 0, load_pct=120)
    opened = e.open_alerts()
    e2 = engine()
    assert e2.restore(opened) == 1
    assert crane(e2, 2, 1, load_pct=120) == []  # redelivered after a restart
    assert events(crane(e2, 3, 2, load_pct=10)) == [("cleared", "load", "")]


def test_forgotten_alert_is_raised_again_if_its_condition_holds() -> None:
    e = engine()
    alert_id = crane(e, 1, 0, load_pct=120)[0].alert_id
    e.forget(alert_id)  # resolved by an operator while the crane is still overloaded
    again = crane(e, 2, 1, load_pct=120)
    assert events(again) == [("raised", "load", "alarm")] and again[0].alert_id != alert_id


def test_an_alert_the_store_refused_gives_way_to_the_stored_one() -> None:
    """The store would not take A1 (its condition already had an open alert there, A9):
    the engine drives A9 from then on; with nothing stored, A1 is forgotten and a
    condition that still holds raises again."""
    from sitewatch.domains.alertrecords.model import OpenAlert

    e = engine()
    assert [c.alert_id for c in crane(e, 1, 0, load_pct=120)] == ["A1"]
    stored = OpenAlert(
        "A9", "S1", "GW1", "TC1", "tower_crane", "load", "warning", State.ACTIVE, T0 - 60_000
    )
    assert e.refused("A1", stored)
    assert [a.id for a in e.open_alerts()] == ["A9"]
    assert not e.refused("A1", stored)  # no longer tracked: nothing to do
    assert [(c.event.value, c.alert_id) for c in crane(e, 2, 1, load_pct=120)] == [
        ("escalated", "A9")
    ]  # the stored warning, now an alarm
    assert [(c.event.value, c.alert_id) for c in crane(e, 3, 2, load_pct=10)] == [("cleared", "A9")]
    assert [(c.event.value, c.alert_id) for c in crane(e, 4, 3, load_pct=120)] == [
        ("reactivated", "A9")
    ]
    # a refusal with nothing stored for the condition
    e2 = engine()
    crane(e2, 1, 0, load_pct=120)
    assert e2.refused("A1", None) and e2.open_alerts() == []
    assert [(c.event.value, c.alert_id) for c in crane(e2, 2, 1, load_pct=120)] == [
        ("raised", "A2")
    ]


def noise(e: AlertEngine, seq: int, t_s: float, dba: float) -> list[Change]:
    """The noise Leq alert's changes (not the night Lmax one's)."""
    ts = T0 + int(t_s * 1000)
    return [
        c
        for c in e.observe("S1", "GW1", "ENV1", "environment", ts, seq, {"noise_dba": dba}, ts)
        if c.group == "noise_leq"
    ]


#: the noise limit the same at every hour, so the test does not depend on the clock
FLAT_LEQ = Override(rule="noise_leq", set={"value": 55})


def test_a_window_alert_says_how_much_of_its_window_it_saw() -> None:
    e = engine(FLAT_LEQ)
    assert noise(e, 1, 0, 95) == []  # one reading of a 20 min window: not judged
    quiet = [c for i in range(2, 86) for c in noise(e, i, (i - 1) * 10, 72)]
    assert quiet == []  # 840 s covered: 14 of 20 min, still under 75 %
    raised = [c for i in range(86, 92) for c in noise(e, i, (i - 1) * 10, 72)]
    assert events(raised) == [("raised", "noise_leq", "alarm")]
    c = raised[0]
    assert c.value is not None and c.value > 55
    assert c.title == (
        f"Noise Leq over 20 min above the day/night limit "
        f"(Leq {c.value:.1f} dB(A) over 15 of 20 min)"
    )
    # an hourly PM10 mean names its own unit and aggregate
    e2 = engine()
    pm = [
        c
        for i in range(400)
        for c in e2.observe(
            "S1", "GW1", "ENV1", "environment", T0 + i * 10_000, i, {"pm10": 120.0}, T0 + i * 10_000
        )
    ]
    assert [c.title for c in pm] == [
        "PM10 hourly mean above 80 µg/m³ (mean 120.0 µg/m³ over 45 of 60 min)"
    ]


def test_an_uncovered_window_neither_raises_nor_clears_a_taken_over_alert() -> None:
    e = engine(FLAT_LEQ)
    for i in range(1, 122):
        noise(e, i, i * 10, 80)
    opened = [a for a in e.open_alerts() if a.group == "noise_leq"]
    assert len(opened) == 1
    e2 = engine(FLAT_LEQ)  # the service restarted: its window starts empty
    e2.restore(opened)
    # quiet again, but 14 min of readings are not 75 % of the window: the alert stays
    assert [c for i in range(200, 285) for c in noise(e2, i, i * 10, 40)] == []
    assert [a.state for a in e2.open_alerts() if a.group == "noise_leq"] == [State.ACTIVE]
    cleared = [c for i in range(285, 300) for c in noise(e2, i, i * 10, 40)]
    assert events(cleared) == [("cleared", "noise_leq", "")]  # once covered, judged


def test_overrides_by_site_and_device_take_precedence() -> None:
    book = RuleBook(
        PROFILES,
        [
            Override(site="S1", device="TC1", rule="load_alarm", set={"value": 95}),
            Override(rule="load_alarm", set={"value": 105}),
            Override(site="S1", rule="load_alarm", set={"value": 102}),
            Override(site="S2", rule="load_warning", enabled=False),
        ],
    )

    def limit(site: str, device: str) -> object:
        rules = book.rules_for(site, device, "tower_crane")
        return next(r for r in rules if r.id == "load_alarm").value  # type: ignore[union-attr]

    assert (limit("S1", "TC1"), limit("S1", "TC2"), limit("S3", "TC1")) == (95, 102, 105)
    assert "load_warning" not in {r.id for r in book.rules_for("S2", "X", "tower_crane")}
    night = RuleBook(PROFILES, [Override(site="S1", rule="noise_leq", set={"value": 60})])
    leq = next(r for r in night.rules_for("S1", "E", "environment") if r.id == "noise_leq")
    assert leq.value == 60 and leq.schedule is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (Override(rule="no_such_rule"), "key rule: no profile has a rule 'no_such_rule'"),
        (Override(rule="load_alarm", set={"value": 999}), "key set"),
        (Override(rule="load_alarm", set={"valeu": 95}), "key set.valeu"),
        (Override(rule="load_alarm", set={"kind": "rate"}), "key set.kind cannot be overridden"),
        (Override(rule="wind_alarm", set={"for_s": -1}), "key set.for_s"),
        (Override(profile="crane", rule="load_alarm"), "key profile: no profile 'crane'"),
    ],
)
def test_bad_overrides_fail_at_start_naming_the_key(override: Override, message: str) -> None:
    with pytest.raises(ConfigError, match="overrides\\[0\\]") as info:
        RuleBook(PROFILES, [override])
    assert message in str(info.value)


def test_seqset() -> None:
    s = SeqSet(max_ranges=3)
    assert [s.add(x) for x in (5, 6, 7, 7, 3, 4, 4, 10, 12, 11, 20)] == [
        True,
        True,
        True,
        False,
        True,
        True,
        False,
        True,
        True,
        True,
        True,
    ]
    assert (s.starts, s.ends) == ([3, 10, 20], [7, 12, 20])
    for x in (30, 40, 50):
        s.add(x)
    assert s.add(2) is False  # below the forgotten ranges: counted as seen
    assert len(s.starts) <= 3


def test_alert_settings_refuse_duplicate_or_reserved_notifier_names() -> None:
    from sitewatch.core.settings import load_settings
    from sitewatch.domains.alertrecords.settings import AlertSettings

    hook = {"kind": "webhook", "url": "http://127.0.0.1:9/x"}
    with pytest.raises(ConfigError, match=r"notifiers\.1\.name: 'ops' is taken"):
        load_settings(
            AlertSettings, None, notifiers=[{**hook, "name": "ops"}, {**hook, "name": "ops"}]
        )
    with pytest.raises(ConfigError, match="'mqtt' is taken"):
        load_settings(AlertSettings, None, notifiers=[{**hook, "name": "mqtt"}])
    with pytest.raises(ConfigError, match="key hold_s"):
        load_settings(AlertSettings, None, hold_s=-1)
    with pytest.raises(ConfigError, match=r"key overrides\.0\.sett"):
        load_settings(AlertSettings, None, overrides=[{"rule": "x", "sett": {}}])

"""Rule evaluation on fixture series (no servers): every kind, with its edges."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from alerts.rules.evaluate import (
    EVALUATORS,
    Evaluator,
    Verdict,
    compile_schedule,
    local_day,
    schedule_limit,
)
from sitewatch.core.profiles import load_profiles

PROFILES = load_profiles()
CN = dt.timezone(dt.timedelta(hours=8))


def at(day: int, hh: int, mm: int = 0, ss: int = 0) -> int:
    """ms of a site-local (UTC+8) time in January 2026."""
    return int(dt.datetime(2026, 1, day, hh, mm, ss, tzinfo=CN).timestamp() * 1000)


def rule(profile: str, rule_id: str) -> Evaluator:
    p = PROFILES[profile]
    r = next(x for x in p.rules if x.id == rule_id)
    return EVALUATORS[r.kind](r, 8.0, p.sample_interval_s)


def run(ev: Evaluator, series: list[tuple[int, dict[str, object]]]) -> list[Verdict | None]:
    return [ev.observe(ts, reading) for ts, reading in series]


def active(verdicts: list[Verdict | None]) -> list[bool | None]:
    return [None if v is None else v.active for v in verdicts]


def test_every_shipped_rule_has_an_evaluator() -> None:
    for p in PROFILES.values():
        for r in p.rules:
            assert r.kind in EVALUATORS or r.kind == "offline", (p.profile, r.id)


def test_threshold_with_hysteresis() -> None:
    ev = rule("tower_crane", "load_alarm")  # >= 100, hysteresis 5
    loads = [95, 100, 99, 96, 95.5, 94.9, 99, 100]
    v = run(ev, [(at(1, 10, 0, i), {"load_pct": x}) for i, x in enumerate(loads)])
    assert active(v) == [False, True, True, True, True, False, False, True]
    assert v[1] == Verdict(True, 100, 100.0)


def test_threshold_sustained_for_a_duration() -> None:
    ev = rule("tower_crane", "wind_alarm")  # >= 10.8 for 3 s, hysteresis 1
    winds = [(0, 11), (1, 12), (2, 11.5), (3, 11), (4, 10.5), (5, 9.7), (6, 11)]
    v = run(ev, [(at(1, 10, 0, s), {"wind_ms": w}) for s, w in winds])
    assert active(v) == [False, False, False, True, True, False, False]


def test_threshold_absent_field_and_when_guard() -> None:
    ev = rule("construction_hoist", "door_open_moving")  # door open while speed > 0.05
    v = run(
        ev,
        [
            (at(1, 10), {"door_closed": False, "speed_ms": 0.0}),  # open but standing: fine
            (at(1, 10, 0, 1), {"door_closed": False, "speed_ms": 0.8}),  # moving: alarm
            (at(1, 10, 0, 2), {"door_closed": True, "speed_ms": 0.8}),
            (at(1, 10, 0, 3), {"speed_ms": 0.8}),  # no door field: n/a
            (at(1, 10, 0, 4), {"door_closed": False}),  # no speed field: n/a
        ],
    )
    assert active(v) == [False, True, False, None, None]


def test_noise_leq_is_an_energy_mean_not_an_arithmetic_one() -> None:
    ev = rule("environment", "noise_leq")  # 20-min Leq > 70 day / > 55 night
    # 18 minutes at 60 dB(A) and 2 at 80 dB(A), one reading every 10 s (the whole window
    # covered, so it is judged)
    series = [(at(1, 10, 0, 0) + i * 10_000, {"noise_dba": 60.0}) for i in range(108)]
    series += [(at(1, 10, 18, 0) + i * 10_000, {"noise_dba": 80.0}) for i in range(12)]
    v = run(ev, series)[-1]
    assert v is not None
    arithmetic = (60 * 108 + 80 * 12) / 120
    leq = 10 * math.log10((108 * 10**6 + 12 * 10**8) / 120)
    assert arithmetic == pytest.approx(62.0, abs=0.01)  # would stay under the 70 limit
    assert leq == pytest.approx(70.37, abs=0.01)
    assert v.value == pytest.approx(leq) and leq > 70 and v.active


def test_day_and_night_limits_switch_at_22_and_06_local_time() -> None:
    schedule = next(r for r in PROFILES["environment"].rules if r.id == "noise_leq").schedule
    assert schedule is not None
    slots = compile_schedule(schedule)
    assert schedule_limit(slots, at(1, 21, 59, 59), 8) == 70
    assert schedule_limit(slots, at(1, 22, 0, 0), 8) == 55
    assert schedule_limit(slots, at(2, 5, 59, 59), 8) == 55
    assert schedule_limit(slots, at(2, 6, 0, 0), 8) == 70
    ev = rule("environment", "noise_night_lmax")  # > 70 only at night
    v = run(
        ev,
        [
            (at(1, 21, 59), {"noise_dba": 72}),
            (at(1, 22, 1), {"noise_dba": 72}),
            (at(2, 6, 0), {"noise_dba": 72}),
        ],
    )
    assert active(v) == [None, True, None]  # no night limit by day: not applicable


def test_window_mean_over_its_window_only() -> None:
    ev = rule("environment", "tsp_5min")  # 5-min mean > 800
    series = [
        (at(1, 10, 0, 0) + i * 10_000, {"tsp": 900.0 if i < 30 else 500.0}) for i in range(62)
    ]
    v = run(ev, series)
    assert v[29] is not None and v[29].active  # five minutes at 900
    assert v[-1] is not None and not v[-1].active  # the 900s have left the window
    assert v[-1].value == pytest.approx(500.0)


def leq_series(
    start: int,
    seconds: int,
    step_s: int = 10,
    dba: float = 80.0,
) -> list[tuple[int, dict[str, object]]]:
    return [(start + i * step_s * 1000, {"noise_dba": dba}) for i in range(seconds // step_s)]


def test_one_reading_in_a_20_minute_window_is_not_judged() -> None:
    ev = rule("environment", "noise_leq")  # 20 min, min_coverage 0.75
    assert run(ev, [(at(1, 23, 0, 0), {"noise_dba": 95.0})]) == [None]  # night: > 55
    assert not ev.active


def test_a_window_is_judged_once_covered() -> None:
    ev = rule("environment", "noise_leq")
    v = run(ev, leq_series(at(1, 23), 15 * 60 + 10))  # 91 readings 10 s apart: 900 s
    assert all(x is None for x in v[:-1])  # 890 s of 1200 < 75 %
    last = v[-1]
    assert last is not None and last.active and last.covered_s == 900.0
    assert last.value == pytest.approx(80.0)


def test_a_gap_is_not_covered_and_the_window_waits() -> None:
    ev = rule("environment", "noise_leq")
    before = run(ev, leq_series(at(1, 23), 20 * 60))  # a full window: judged
    assert before[-1] is not None and before[-1].active
    # the monitor is silent for 10 min; its first reading back covers only 10 s of the
    # gap: 10 min of old readings + 10 s is under 15 min: not judged, neither raises nor
    # clears (the evaluator stays active)
    back = at(1, 23, 30)
    assert ev.observe(back, {"noise_dba": 40.0}) is None and ev.active
    # the gap stays in the window, uncovered, until it slides out: judged again once at
    # most 5 of the 20 min are the gap's, 14 min 50 s after the monitor came back
    series = leq_series(back + 10_000, 20 * 60, dba=40.0)
    after = run(ev, series)
    first = next(i for i, x in enumerate(after) if x is not None)
    assert series[first][0] == at(1, 23, 44, 50)
    judged = after[first]
    assert judged is not None and judged.covered_s == 900.0
    assert not judged.active and not ev.active  # quiet again: it clears only now


def test_max_gap_counts_only_up_to_the_sample_interval() -> None:
    ev = rule("environment", "tsp_5min")  # 300 s, profile sample interval 10 s
    # one reading a minute: each covers 10 s of its minute, never 75 %
    v = run(ev, [(at(1, 10) + i * 60_000, {"tsp": 900.0}) for i in range(10)])
    assert v == [None] * 10


def test_a_restart_starts_with_an_empty_window() -> None:
    first = rule("environment", "noise_leq")
    run(first, leq_series(at(1, 23), 20 * 60))
    assert first.active
    again = rule("environment", "noise_leq")  # the service restarted: a new evaluator
    v = run(again, leq_series(at(1, 23, 20), 14 * 60))
    assert v == [None] * len(v)  # 14 min of readings after the restart: still waiting
    v = run(again, leq_series(at(1, 23, 34), 2 * 60))
    assert v[-1] is not None and v[-1].active


def test_min_coverage_zero_judges_from_the_first_reading() -> None:
    r = next(x for x in PROFILES["environment"].rules if x.id == "noise_leq")
    ev = EVALUATORS["window"](r.model_copy(update={"min_coverage": 0.0}), 8.0, 10.0)
    v = ev.observe(at(1, 23), {"noise_dba": 95.0})
    assert v is not None and v.active and v.covered_s == 0.0


def test_rate_per_day() -> None:
    ev = rule("foundation_pit", "displacement_rate")  # >= 3 mm/d
    series = [(at(1, 0) + h * 3_600_000, {"displacement_mm": 10 + h * 0.1}) for h in range(25)]
    v = run(ev, series)
    assert v[3] is None  # three hours say nothing about a day
    assert v[-1] is not None and v[-1].value == pytest.approx(2.4) and not v[-1].active
    ev = rule("foundation_pit", "displacement_rate")
    series = [(at(1, 0) + h * 3_600_000, {"displacement_mm": 10 + h * 0.15}) for h in range(25)]
    assert run(ev, series)[-1] == Verdict(True, pytest.approx(3.6), 3.0)  # type: ignore[arg-type]


def test_rate_three_days_running() -> None:
    ev = rule("foundation_pit", "displacement_rate_trend")  # >= 1.5 mm/d, 3 days running
    daily = [1.6, 1.7, 1.6, 1.4, 1.6, 1.6, 1.6]  # change during each local day
    level, series = 5.0, []
    for d, change in enumerate(daily):
        for h in (0, 12):
            series.append((at(1 + d, h), {"displacement_mm": level + change * h / 24}))
        level += change
    series.append((at(1 + len(daily), 0), {"displacement_mm": level}))
    got = {local_day(ts, 8): v for (ts, _), v in zip(series, run(ev, series), strict=True)}
    first = local_day(at(1, 0), 8)
    # day 4 (index 3) had 1.4: the days after it need three good days again
    verdicts = [got[first + d] for d in range(len(daily) + 1)]
    assert [None if v is None else v.active for v in verdicts] == [
        None,
        None,
        None,
        True,
        False,
        False,
        False,
        True,
    ]


def test_cumulative_from_first_reading_and_from_a_number() -> None:
    ev = rule("gateway", "spool_drops")  # dropped > 0 since the first reading
    assert active(run(ev, [(1, {"dropped": 5}), (2, {"dropped": 5}), (3, {"dropped": 6})])) == [
        False,
        False,
        True,
    ]
    ev = rule("foundation_pit", "groundwater_change")  # change from 0 >= 1000
    assert active(run(ev, [(1, {"groundwater_mm": 999}), (2, {"groundwater_mm": 1000})])) == [
        False,
        True,
    ]


def test_count_per_local_day() -> None:
    ev = rule("environment", "pm10_exceedances")  # pm10 > 150 in 30 readings a day
    series = [(at(1, 8) + i * 60_000, {"pm10": 200 if i % 2 == 0 else 50}) for i in range(60)]
    v = run(ev, series)
    assert v[57] is not None and v[57].value == 29 and not v[57].active
    assert v[58] is not None and v[58].value == 30 and v[58].active
    # the count restarts at local midnight (16:00 UTC)
    assert active(run(ev, [(at(2, 0, 1), {"pm10": 200})])) == [False]


def test_silent_after_n_intervals() -> None:
    ev = rule("tower_crane", "silent")  # 30 intervals of 1 s
    assert isinstance(ev, EVALUATORS["silent"])
    assert ev.check(at(1, 10)) is None  # never heard from: nothing to say yet
    ev.observe(at(1, 10), {"load_t": 1})
    assert ev.check(at(1, 10, 0, 30)) == Verdict(False, 30.0, 30.0)
    assert ev.check(at(1, 10, 0, 31)) == Verdict(True, 31.0, 30.0)
    ev.observe(at(1, 10, 0, 32), {"load_t": 1})
    assert not ev.active

"""The attendance rules for messy swipes, with hours computed by hand (pure logic).

Default policy: UTC+8, attendance day from 04:00, shift 07:00-18:00, duplicate window
60 s, 8 hours per day-equivalent.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from sitewatch.domains.attendance.hours import Flag, GateEvent, worker_day, worker_days
from sitewatch.domains.attendance.policy import AttendancePolicy
from sitewatch.domains.attendance.sheets import build_sheets
from sitewatch.domains.attendance.workers import WorkerInfo

P = AttendancePolicy()
D = date(2026, 11, 2)
LATER = 2_000_000_000_000  # long after: every day is over


def at(day: date, hhmmss: str, offset_h: float = 8) -> int:
    """UTC ms of a site-local time on a calendar date."""
    parts = [int(p) for p in hhmmss.split(":")] + [0]
    local = datetime(day.year, day.month, day.day, parts[0], parts[1], parts[2], tzinfo=UTC)
    return int((local - timedelta(hours=offset_h)).timestamp() * 1000)


def ev(day: date, hhmm: str, direction: str, gate: str = "GATE01") -> GateEvent:
    return GateEvent(at(day, hhmm), "W1", direction, gate)  # type: ignore[arg-type]


def minutes(
    *events: GateEvent, now: int = LATER, policy: AttendancePolicy = P, day: date = D
) -> int:
    return worker_day("W1", day, events, policy, now).minutes


def test_a_normal_day_with_lunch_out() -> None:
    # 07:00-12:00 = 300 min, 13:00-17:30 = 270 min
    wd = worker_day(
        "W1",
        D,
        [ev(D, "07:00", "in"), ev(D, "12:00", "out"), ev(D, "13:00", "in"), ev(D, "17:30", "out")],
        P,
        LATER,
    )
    assert wd.minutes == 570
    assert wd.flags == []
    assert wd.first_in == at(D, "07:00") and wd.last_out == at(D, "17:30")


def test_duplicate_swipes_within_a_minute_count_once() -> None:
    wd = worker_day(
        "W1",
        D,
        [
            ev(D, "07:00:00", "in"),
            ev(D, "07:00:40", "in"),
            ev(D, "17:00:00", "out"),
            ev(D, "17:00:59", "out"),
        ],
        P,
        LATER,
    )
    assert wd.minutes == 600  # 07:00:00-17:00:00, the second swipes ignored
    assert wd.noted == {Flag.DUPLICATE: 2}


def test_a_second_entry_after_the_window_keeps_the_session() -> None:
    # 07:01:30 is 90 s later: not a duplicate, but the worker is on site already
    wd = worker_day(
        "W1",
        D,
        [ev(D, "07:00", "in"), ev(D, "07:01:30", "in", "GATE02"), ev(D, "17:00", "out")],
        P,
        LATER,
    )
    assert wd.minutes == 600
    assert wd.noted == {Flag.ENTRY_WHILE_ON_SITE: 1}


def test_exit_without_entry_is_credited_from_the_shift_start() -> None:
    assert minutes(ev(D, "17:00", "out")) == 600  # 07:00-17:00
    wd = worker_day("W1", D, [ev(D, "17:00", "out")], P, LATER)
    assert wd.flags == [Flag.EXIT_WITHOUT_ENTRY]


def test_exit_without_entry_before_the_shift_starts_credits_nothing() -> None:
    wd = worker_day("W1", D, [ev(D, "06:30", "out")], P, LATER)
    assert wd.minutes == 0 and wd.flags == [Flag.EXIT_WITHOUT_ENTRY]


def test_forgotten_entry_after_lunch_counts_from_the_lunch_exit() -> None:
    # 07:00-12:00 = 300; the 17:00 exit has no entry: from the previous swipe 12:00 = 300
    assert minutes(ev(D, "07:00", "in"), ev(D, "12:00", "out"), ev(D, "17:00", "out")) == 600


def test_entry_without_exit_is_closed_at_the_shift_end_once_the_day_is_over() -> None:
    wd = worker_day("W1", D, [ev(D, "07:30", "in")], P, LATER)
    assert wd.minutes == 630  # 07:30-18:00
    assert wd.flags == [Flag.NO_EXIT] and not wd.on_site


def test_entry_after_the_shift_end_without_exit_credits_nothing() -> None:
    assert minutes(ev(D, "19:00", "in")) == 0


def test_while_the_day_is_open_the_worker_is_on_site_and_counts_up_to_now() -> None:
    wd = worker_day("W1", D, [ev(D, "07:30", "in")], P, at(D, "10:00"))
    assert wd.on_site and wd.minutes == 150 and wd.flags == [Flag.OPEN]
    # still on site after the shift end, before the next attendance day: overtime counts
    wd = worker_day("W1", D, [ev(D, "07:30", "in")], P, at(D + timedelta(days=1), "01:00"))
    assert wd.on_site and wd.minutes == 1050  # 07:30 -> 01:00


def test_several_gates_merge_into_one_timeline() -> None:
    # in at gate 1, out at gate 2; back in at gate 2, out at gate 1: 300 + 250 minutes
    assert (
        minutes(
            ev(D, "07:00", "in", "GATE01"),
            ev(D, "12:00", "out", "GATE02"),
            ev(D, "12:55", "in", "GATE02"),
            ev(D, "17:05", "out", "GATE01"),
        )
        == 550
    )


def test_a_shift_past_midnight_stays_on_the_day_it_began() -> None:
    nxt = D + timedelta(days=1)
    days = worker_days(
        [
            ev(D, "19:00", "in"),
            ev(nxt, "01:30", "out"),
            ev(nxt, "07:00", "in"),
            ev(nxt, "08:00", "out"),
        ],
        P,
        LATER,
    )
    assert {d: wd.minutes for (_, d), wd in days.items()} == {D: 390, nxt: 60}


def test_a_night_crew_policy_closes_a_forgotten_exit_at_its_shift_end() -> None:
    night = AttendancePolicy(day_start="12:00", shift_start="20:00", shift_end="06:00")
    nxt = D + timedelta(days=1)
    # 20:10 -> 06:00 next morning = 590 minutes, on the day the shift began
    days = worker_days([ev(D, "20:10", "in")], night, LATER)
    assert [(d, wd.minutes) for (_, d), wd in days.items()] == [(D, 590)]
    # an exit at 05:00 with no entry: from the shift start 20:00 = 540 minutes
    days = worker_days([ev(nxt, "05:00", "out")], night, LATER)
    assert [(d, wd.minutes) for (_, d), wd in days.items()] == [(D, 540)]


def test_an_entry_without_exit_does_not_run_into_the_next_day() -> None:
    nxt = D + timedelta(days=1)
    days = worker_days(
        [ev(D, "07:00", "in"), ev(nxt, "07:00", "in"), ev(nxt, "17:00", "out")], P, LATER
    )
    assert {d: (wd.minutes, wd.flags) for (_, d), wd in days.items()} == {
        D: (660, [Flag.NO_EXIT]),
        nxt: (600, []),
    }


def test_minutes_are_rounded_down_once_per_day_not_per_session() -> None:
    # 59 min 59.999 s -> 59; two sessions of 30.5 min -> 61, not 60
    assert (
        minutes(GateEvent(at(D, "07:00"), "W1", "in"), GateEvent(at(D, "08:00") - 1, "W1", "out"))
        == 59
    )
    assert (
        minutes(
            ev(D, "07:00:00", "in"),
            ev(D, "07:30:30", "out"),
            ev(D, "08:00:00", "in"),
            ev(D, "08:30:30", "out"),
        )
        == 61
    )


def test_the_attendance_day_starts_at_day_start_local_time() -> None:
    assert P.day_of(at(D, "04:00")) == D
    assert P.day_of(at(D, "03:59")) == D - timedelta(days=1)
    assert P.day_bounds(D) == (at(D, "04:00"), at(D + timedelta(days=1), "04:00"))
    assert P.shift_bounds(D) == (at(D, "07:00"), at(D, "18:00"))


def test_day_start_inside_the_shift_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match="day_start 05:00 falls inside the shift"):
        AttendancePolicy(day_start="05:00", shift_start="20:00", shift_end="06:00")
    with pytest.raises(ValidationError, match="day_start"):
        AttendancePolicy(day_start="25:00")
    with pytest.raises(ValidationError, match="extra"):
        AttendancePolicy(shift_stat="07:00")  # type: ignore[call-arg]


def _info(worker: str, team: str, rate: str) -> WorkerInfo:
    return WorkerInfo(
        worker, f"name {worker}", team, False, "Sub A", "rebar", Decimal(rate), None, None
    )


def test_sheet_rows_are_checkable_by_hand() -> None:
    events = [
        GateEvent(at(D, "07:00"), "W1", "in"),
        GateEvent(at(D, "12:00"), "W1", "out"),
        GateEvent(at(D, "13:00"), "W1", "in"),
        GateEvent(at(D, "17:30"), "W1", "out"),
        GateEvent(at(D, "07:00"), "W2", "in"),
        GateEvent(at(D, "12:00"), "W2", "out"),
        GateEvent(at(D, "12:55"), "W2", "in"),
        GateEvent(at(D, "17:05"), "W2", "out"),
        GateEvent(at(D, "07:00"), "W9", "in"),
    ]  # W9 is not registered: on no sheet
    days = worker_days(events, P, LATER)
    workers = {"W1": _info("W1", "rebar", "350"), "W2": _info("W2", "rebar", "320")}
    [sheet] = build_sheets("S1", "Site one", days, workers, D, D, P.hours_per_day)
    r1, r2 = sheet.rows
    # W1: 570 min = 9.50 h; 570/480 = 1.1875 -> 1.19 day-eq; 1.19 * 350 = 416.50
    assert (r1.minutes, r1.hours, r1.day_equivalents, r1.amount) == (
        570,
        Decimal("9.50"),
        Decimal("1.19"),
        Decimal("416.50"),
    )
    # W2: 550 min = 9.1666 -> 9.17 h; 550/480 = 1.1458 -> 1.15; 1.15 * 320 = 368.00
    assert (r2.minutes, r2.hours, r2.day_equivalents, r2.amount) == (
        550,
        Decimal("9.17"),
        Decimal("1.15"),
        Decimal("368.00"),
    )
    t = sheet.totals
    assert (t.minutes, t.hours, t.day_equivalents, t.amount) == (
        1120,
        Decimal("18.67"),
        Decimal("2.34"),
        Decimal("784.50"),
    )

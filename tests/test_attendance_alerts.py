"""Attendance alerts: gate events through the watch and the alert engine (pure logic)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from alerts.engine import AlertEngine
from sitewatch.core import contract
from sitewatch.core.profiles import load_profiles
from sitewatch.domains.alertrecords.model import Change
from sitewatch.domains.attendance.policy import AttendancePolicy
from sitewatch.domains.attendance.watch import AttendanceWatch, Derived, SiteInfo
from sitewatch.domains.attendance.workers import WorkerInfo
from sitewatch.domains.rulebook import RuleBook

D = date(2026, 11, 2)
BOOK = RuleBook(load_profiles(), [])


def at(hhmm: str, day: date = D) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    local = datetime(day.year, day.month, day.day, h, m, tzinfo=UTC)
    return int((local - timedelta(hours=8)).timestamp() * 1000)


def worker(wid: str, *, training: date | None = None, cert: date | None = None) -> WorkerInfo:
    return WorkerInfo(
        wid, f"name {wid}", "rebar", False, "Sub", "rebar", Decimal(300), training, cert
    )


class Gate:
    """A site with a gate, the watch and the engine, as the alert service wires them."""

    def __init__(self, info: SiteInfo) -> None:
        self.watch = AttendanceWatch({"S1": info})
        self.engine = AlertEngine(BOOK, hold_s=300)
        self.seq = 0
        self.gate_seq = 0

    def feed(self, derived: list[Derived], now: int) -> list[tuple[str, str, str]]:
        changes: list[Change] = []
        for d in derived:
            self.seq += 1
            changes += self.engine.observe(
                d.site, d.gateway, d.device, d.profile, now, self.seq, d.values, now
            )
        return [(c.event.value, c.device, c.group) for c in changes]

    def swipe(
        self, wid: str, direction: str, hhmm: str, *, seq: int | None = None, now: int | None = None
    ) -> list[tuple[str, str, str]]:
        if seq is None:
            self.gate_seq += 1
        item = contract.AttendanceItem(
            device="GATE01",
            ts=at(hhmm),
            seq=seq or self.gate_seq,
            worker=wid,
            direction=direction,  # type: ignore[arg-type]
            method="face",
        )
        t = now or at(hhmm)
        return self.feed(self.watch.observe("S1", "GW1", [item], t), t)

    def tick(self, now: int) -> list[tuple[str, str, str]]:
        return self.feed(self.watch.tick(now), now)


REGISTRY = {"W1": worker("W1"), "W2": worker("W2"), "W3": worker("W3")}


def test_an_unregistered_worker_raises_an_alarm_while_on_site() -> None:
    g = Gate(SiteInfo(workers=REGISTRY))
    assert g.swipe("W1", "in", "07:00") == []
    assert g.swipe("X9", "in", "07:05") == [("raised", "X9", "unregistered_worker")]
    assert g.swipe("X9", "in", "07:05", seq=2) == []  # the same event resent: nothing
    assert g.swipe("X9", "out", "08:00") == [("cleared", "X9", "unregistered_worker")]


def test_an_unregistered_worker_swiping_out_only_is_reported_and_cleared() -> None:
    g = Gate(SiteInfo(workers=REGISTRY))
    assert g.swipe("X9", "out", "17:00") == [
        ("raised", "X9", "unregistered_worker"),
        ("cleared", "X9", "unregistered_worker"),
    ]


def test_a_site_without_a_worker_registry_raises_no_unregistered_alerts() -> None:
    g = Gate(SiteInfo())
    assert g.swipe("X9", "in", "07:00") == []


def test_lapsed_training_and_certificate_are_alarms_while_on_site() -> None:
    g = Gate(
        SiteInfo(
            workers={
                **REGISTRY,
                "W4": worker("W4", training=D - timedelta(days=1)),
                "W5": worker("W5", cert=D - timedelta(days=30)),
            }
        )
    )
    assert g.swipe("W4", "in", "07:00") == [("raised", "W4", "training_lapsed")]
    assert g.swipe("W5", "in", "07:00") == [("raised", "W5", "certificate_lapsed")]
    assert g.swipe("W4", "out", "12:00") == [("cleared", "W4", "training_lapsed")]
    # valid until the end of its expiry day: not lapsed on that day
    g2 = Gate(SiteInfo(workers={"W6": worker("W6", training=D)}))
    assert g2.swipe("W6", "in", "07:00") == []


def test_on_site_beyond_the_daily_limit_raises_a_warning_cleared_on_exit() -> None:
    g = Gate(SiteInfo(policy=AttendancePolicy(daily_limit_h=2), workers=REGISTRY))
    assert g.swipe("W1", "in", "07:00") == []
    assert g.tick(at("08:59")) == []
    assert g.tick(at("09:01")) == [("raised", "W1", "over_daily_limit")]
    assert g.swipe("W1", "out", "09:30") == [("cleared", "W1", "over_daily_limit")]
    # the time counts across sessions: 30 more minutes after lunch is over again
    assert g.swipe("W1", "in", "13:00") == [("reactivated", "W1", "over_daily_limit")]


def test_headcount_above_the_plan_raises_a_warning_until_it_drops() -> None:
    g = Gate(SiteInfo(planned_headcount=2, workers=REGISTRY))
    assert g.swipe("W1", "in", "07:00") == []
    assert g.swipe("W2", "in", "07:01") == []
    assert g.swipe("W3", "in", "07:02") == [("raised", "HEADCOUNT", "headcount_over_plan")]
    assert g.swipe("W2", "out", "12:00") == [("cleared", "HEADCOUNT", "headcount_over_plan")]


def test_the_end_of_the_attendance_day_clears_what_was_left_open() -> None:
    g = Gate(SiteInfo(workers={"W4": worker("W4", training=D - timedelta(days=1))}))
    assert g.swipe("W4", "in", "07:00") == [("raised", "W4", "training_lapsed")]
    assert g.tick(at("18:00")) == []  # still on site
    # 20:00, 13 hours on site: over the 12-hour limit, and still there at 03:59
    assert g.tick(at("20:00")) == [("raised", "W4", "over_daily_limit")]
    assert g.tick(at("03:59", D + timedelta(days=1))) == []
    # 04:00: a new attendance day; the forgotten exit is closed at the shift end
    assert sorted(g.tick(at("04:00", D + timedelta(days=1)))) == [
        ("cleared", "W4", "over_daily_limit"),
        ("cleared", "W4", "training_lapsed"),
    ]


def test_gate_events_of_an_earlier_day_raise_nothing() -> None:
    g = Gate(SiteInfo(workers=REGISTRY))
    assert g.swipe("X9", "in", "07:00", now=at("09:00", D + timedelta(days=1))) == []


def test_a_restart_restores_the_day_and_raises_only_what_holds_now() -> None:
    """At start the alert service reads today's gate events from the ledger. Observed
    one by one, each moment of the day that was over - the headcount above the plan this
    morning, an unknown worker who has left - was raised and cleared again at every
    restart (new alerts, notified). Restored at once, only what holds now is derived."""
    g = Gate(SiteInfo(planned_headcount=2, workers=REGISTRY))
    day = [
        ("W1", "in", "07:00"),
        ("W2", "in", "07:01"),
        ("W3", "in", "07:02"),
        ("X9", "in", "07:03"),
        ("X9", "out", "08:00"),
        ("W2", "out", "12:00"),
        ("W3", "out", "12:30"),
        ("X8", "in", "13:00"),
    ]
    events = [
        (
            "S1",
            "GW1",
            contract.AttendanceItem(
                device="GATE01", ts=at(hhmm), seq=n, worker=wid, direction=direction, method="face"
            ),
        )  # type: ignore[arg-type]
        for n, (wid, direction, hhmm) in enumerate(day, start=1)
    ]
    now = at("14:00")
    derived = g.watch.restore(events, now)
    assert g.feed(derived, now) == [("raised", "X8", "unregistered_worker")]
    assert {d.gateway for d in derived} == {"GW1"}  # the headcount's too
    assert g.watch.on_site("S1") == 2
    # and the watch goes on from there: one more in is over the plan
    assert g.swipe("W2", "in", "14:05", seq=99) == [("raised", "HEADCOUNT", "headcount_over_plan")]

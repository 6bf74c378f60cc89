"""The gateway's timeline under wall-clock steps (edge/clock.py; no servers).

The clocks are plain counters the test moves: ``wall`` is what the gateway's wall
clock reads, ``mono`` its monotonic clock, ``true`` the real time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.clock import ClockPolicy, GatewayClock
from sitewatch.core.devicetime import DeviceClock

T0 = 1_765_000_000_000  # ms


@dataclass
class Clocks:
    true: int = T0  # ms
    wall_error: int = 0  # ms the wall clock is off
    mono: int = 5_000  # ms

    def wall_ns(self) -> int:
        return (self.true + self.wall_error) * 1_000_000

    def mono_ns(self) -> int:
        return self.mono * 1_000_000

    def tick(self, ms: int) -> None:
        self.true += ms
        self.mono += ms


def _clock(c: Clocks, **policy: float) -> GatewayClock:
    return GatewayClock(ClockPolicy(**policy), wall=c.wall_ns, mono=c.mono_ns)


def _run(g: GatewayClock, c: Clocks, seconds: int, every_ms: int = 1000) -> list[int]:
    out = []
    for _ in range(seconds * 1000 // every_ms):
        c.tick(every_ms)
        out.append(g.now_ms())
    return out


def test_a_right_clock_is_used_as_it_is() -> None:
    c = Clocks()
    g = _clock(c)
    stamps = _run(g, c, 10)
    assert stamps == [int(T0 + 1000 * (i + 1)) for i in range(10)]
    assert (g.steps, g.corrected) == (0, 0)


def test_a_step_back_never_runs_the_timeline_back_and_it_meets_the_clock_again() -> None:
    c = Clocks()
    g = _clock(c)
    before = _run(g, c, 5)
    c.wall_error = -20_000  # stepped back 20 s
    after = _run(g, c, 60)
    stamps = before + after
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert g.steps == 1
    # half speed: 20 s ahead is made up in 40 s; then it is the wall clock again
    assert after[-1] == int(c.true - 20_000)
    assert after[0] > before[-1]
    assert 15 <= g.corrected <= 40  # the readings stamped more than 2 s off the clock


def test_a_short_step_forward_never_reaches_a_timestamp() -> None:
    c = Clocks()
    g = _clock(c)
    _run(g, c, 5)
    c.wall_error = 330_000  # 330 s ahead for 3 s, then right again
    during = _run(g, c, 3)
    c.wall_error = 0
    after = _run(g, c, 5)
    assert max(during + after) <= c.true
    assert all(abs(t - (T0 + 6000 + 1000 * i)) <= 1 for i, t in enumerate(during))
    assert after[-1] == int(c.true)
    assert g.steps == 2
    assert g.corrected == 3


def test_a_step_forward_that_holds_is_followed_after_confirm_s() -> None:
    c = Clocks(wall_error=-3_600_000)  # booted an hour slow; NTP then sets it right
    g = _clock(c, confirm_s=10)
    _run(g, c, 2)
    c.wall_error = 0
    held = _run(g, c, 12)
    assert held[-1] == int(c.true)
    assert sum(1 for t in held if t < c.true - 3_000_000) in (9, 10)


def test_the_platforms_clock_confirms_a_step_forward_at_once() -> None:
    c = Clocks(wall_error=-3_600_000)
    g = _clock(c)
    c.tick(1000)
    g.observe_platform(int(c.true) - 80)  # an ack, 80 ms in transit
    assert g.offset_s() is not None and abs(g.offset_s() + 3600) < 0.2  # type: ignore[operator]
    # the wall clock is an hour off: the timeline follows the platform's clock
    assert abs(g.now_ms() - c.true) <= 100
    c.wall_error = 0  # and when NTP sets the wall clock right, that agrees
    c.tick(1000)
    assert g.now_ms() == int(c.true)
    assert abs(g.offset_s()) < 0.2  # type: ignore[arg-type]


def test_the_platform_estimate_takes_the_fastest_ack_and_ignores_wall_steps() -> None:
    c = Clocks()
    g = _clock(c)
    for transit in (900, 120, 400):
        c.tick(1000)
        g.observe_platform(int(c.true) - transit)
    c.wall_error = -5_000  # the wall clock steps: the platform estimate does not move
    off = g.offset_s()
    assert off is not None and abs(off + 5.0 - 0.12) < 0.01


def test_a_wall_clock_timestamp_is_moved_by_the_correction_now() -> None:
    c = Clocks()
    g = _clock(c)
    _run(g, c, 2)
    c.wall_error = -20_000
    c.tick(1000)
    sampled = int(c.true + c.wall_error) - 5  # a frame the wall clock stamped 5 ms ago
    assert g.map_ms(sampled) == int(c.true) - 5 - 500  # half speed since the step
    assert g.corrected == 1


def test_the_timeline_starts_past_the_last_reading_after_a_restart() -> None:
    c = Clocks(wall_error=-20_000)  # stepped back 20 s while the agent was stopped
    g = GatewayClock(ClockPolicy(), wall=c.wall_ns, mono=c.mono_ns, floor_ms=int(T0))
    stamps = _run(g, c, 50)
    assert stamps[0] > T0
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert stamps[-1] == int(c.true - 20_000)


# (advance in ms, wall-clock error in ms from then on)
_steps = st.lists(
    st.tuples(st.integers(1, 5_000), st.integers(-600_000, 600_000)), min_size=1, max_size=40
)


@settings(max_examples=300, deadline=None)
@given(_steps, st.integers(0, 600_000))
def test_timestamps_never_repeat_and_the_error_is_bounded(
    steps: list[tuple[int, int]], floor_back: int
) -> None:
    """Whatever the wall clock does, each device's timestamps strictly increase, a
    timestamp is never further ahead of real time than the wall clock ever was, and
    once the wall clock is right again the timeline meets it within a bounded time."""
    c = Clocks()
    floor = int(c.true) + floor_back  # the last reading before a restart
    g = GatewayClock(ClockPolicy(), wall=c.wall_ns, mono=c.mono_ns, floor_ms=floor)
    devices = DeviceClock()
    devices.record("D", floor)
    stamps, worst_ahead = [], max(0, floor_back)
    for advance, error in steps:
        c.tick(advance)
        c.wall_error = error
        worst_ahead = max(worst_ahead, error)
        stamps.append(devices.stamp("D", g.now_ms()))
        assert stamps[-1] <= c.true + worst_ahead + len(stamps)
    assert stamps[0] > floor
    assert all(b > a for a, b in itertools.pairwise(stamps))
    c.wall_error = 0
    ahead = max(0, stamps[-1] - c.true)
    # running at half speed, it is back on the wall clock after twice the lead, and a
    # step forward is followed confirm_s after it is first seen at the latest
    c.tick(1)
    g.now_ms()
    c.tick(int(2 * ahead) + 10_001)
    assert g.now_ms() == int(c.true)

"""The gateway's time: what the agent stamps the readings it samples with.

Three clocks meet at a gateway (docs/wire-contract.md#time):

- **device time**: a timestamp a device reports itself (an HJ 212 monitor's
  ``DataTime``, a terminal's event time). Kept as it is: it is the sample time.
- **gateway time**: the gateway's wall clock, for readings the agent samples (polled
  devices, cameras, its own health). This module.
- **ingest time**: the platform's clock. Ingest refuses items too far ahead of it
  (``ts_future``), and says what it is in every ack (``now``).

A wall clock steps: NTP corrects it, an operator sets it, a dead RTC battery restarts
it at some old date. Followed blindly, a step back makes a device's next readings land
on timestamps its earlier readings already have (InfluxDB keeps one point per series
and timestamp: the earlier reading is lost), and a short step forward stamps readings
minutes in the future, where ingest refuses them. So the agent stamps with a
*timeline* that runs on the monotonic clock and is steered towards a *reference*:

- the reference is the wall clock, or the platform's clock as measured from the acks
  when the wall clock disagrees with it by more than ``agree_s``;
- the timeline never runs backwards: when it is ahead of the reference (a step back),
  it runs slow, at ``1 - slew`` of real time, until it meets the reference;
- when it is behind (a step forward), it catches up at once if the platform's clock
  confirms the new time, or once the step has held for ``confirm_s`` (a step that is
  undone within that time is never seen in a timestamp);
- every reading stamped more than ``agree_s`` away from the wall clock is counted as
  corrected, and every step of the wall clock (against the monotonic clock) as a step.

The platform's clock is measured against the *monotonic* clock: each ack gives a lower
bound of ``platform - monotonic`` (the ack's transit time only makes it smaller), and
the largest of the recent ones is the estimate, so a step of the wall clock does not
disturb it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("sitewatch.edge.clock")

Now = Callable[[], int]  # nanoseconds


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    #: a wall clock this far from the monotonic clock's advance is a step
    step_s: float = 1.0
    #: a wall clock within this of the platform's clock is right
    agree_s: float = 2.0
    #: a step forward that the platform cannot confirm is followed after this long
    confirm_s: float = 10.0
    #: how much slower than real time the timeline runs while it is ahead (0 < slew < 1)
    slew: float = 0.5
    #: platform measurements older than this are forgotten
    platform_max_age_s: float = 600.0


class GatewayClock:
    """The agent's timeline (see the module's doc). Not thread-safe: one event loop."""

    def __init__(
        self,
        policy: ClockPolicy | None = None,
        *,
        wall: Now = time.time_ns,
        mono: Now = time.monotonic_ns,
        floor_ms: int = 0,
    ) -> None:
        self.policy = policy or ClockPolicy()
        self._wall = wall
        self._mono = mono
        p = self.policy  # in µs, as the timeline counts (read on every timestamp)
        self._step_us = p.step_s * 1e6
        self._agree_us = p.agree_s * 1e6
        self._confirm_us = p.confirm_s * 1e6
        # all in integer microseconds: a float of nanoseconds since 1970 is not exact
        m, w = mono() // 1000, wall() // 1000
        #: where the timeline stands (µs since the epoch) at monotonic time ``_at``
        self._t, self._at = w, m
        self._last_wall = w
        self._ahead_since: int | None = None
        #: (monotonic µs when measured, platform minus monotonic in µs)
        self._platform: deque[tuple[int, int]] = deque(maxlen=32)
        #: wall-clock steps seen (against the monotonic clock)
        self.steps = 0
        #: readings stamped more than agree_s away from the wall clock
        self.corrected = 0
        self.start_after(floor_ms)

    def start_after(self, floor_ms: int) -> None:
        """Put the timeline past ``floor_ms`` (the newest timestamp the gateway ever gave
        a reading) if it is not already."""
        t, w = self._advance()
        floor = (floor_ms + 1) * 1000
        if floor > t:
            log.warning(
                "gateway clock is %.1f s behind the last timestamp given (the "
                "clock stepped back while the agent was stopped, or a lost spool "
                "resumes at the counters' reservation, up to 5 s ahead): the "
                "timeline starts there and runs slow until the clock meets it",
                (floor - w) / 1e6,
            )
            self._t = floor

    # -- the platform's clock --------------------------------------------------------
    def observe_platform(self, platform_ms: int) -> None:
        """An ack said the platform's clock reads ``platform_ms`` (just received)."""
        m = self._mono() // 1000
        self._platform.append((m, platform_ms * 1000 - m))

    def _platform_now(self, m: int) -> int | None:
        horizon = m - self.policy.platform_max_age_s * 1e6
        while self._platform and self._platform[0][0] < horizon:
            self._platform.popleft()
        if not self._platform:
            return None
        return m + max(d for _, d in self._platform)

    def offset_s(self) -> float | None:
        """Wall clock minus the platform's clock, in seconds; None before any ack."""
        m, w = self._mono() // 1000, self._wall() // 1000
        p = self._platform_now(m)
        return None if p is None else (w - p) / 1e6

    # -- the timeline ----------------------------------------------------------------
    def now_ms(self) -> int:
        """Advance the timeline to now and return it: the timestamp for a reading the
        gateway takes now."""
        t, w = self._advance()
        if abs(t - w) > self._agree_us:
            self.corrected += 1
        return t // 1000

    def map_ms(self, wall_ms: int) -> int:
        """The timeline's timestamp for something the wall clock stamped ``wall_ms`` a
        moment ago (a camera frame, stamped by its reader thread)."""
        t, w = self._advance()
        self._count(t - w)
        return wall_ms + (t - w) // 1000

    def _count(self, correction_us: int) -> None:
        if abs(correction_us) > self._agree_us:
            self.corrected += 1

    def correction_s(self) -> float:
        """Timeline minus wall clock now, in seconds (0 while the wall clock is right)."""
        t, w = self._advance()
        return (t - w) / 1e6

    def _advance(self) -> tuple[int, int]:
        """(timeline, wall clock) now, in µs."""
        m, w = self._mono() // 1000, self._wall() // 1000
        dt = m - self._at
        if dt < 0:
            dt = 0
        jump = w - (self._last_wall + dt)
        if abs(jump) > self._step_us:
            self.steps += 1
            log.warning(
                "gateway clock stepped %+.3f s; readings keep a timeline that "
                "never runs back (docs/wire-contract.md#time)",
                jump / 1e6,
            )
        self._last_wall = w
        platform = self._platform_now(m) if self._platform else None
        if platform is not None and abs(w - platform) > self._agree_us:
            target, confirmed = platform, True
        else:
            target, confirmed = w, platform is not None
        base = self._t + dt
        error = target - base
        if error > self._agree_us and not confirmed:
            # behind by a step forward nobody confirms: wait for it to hold
            if self._ahead_since is None:
                self._ahead_since = m
            t = target if m - self._ahead_since >= self._confirm_us else base
        elif error >= 0:
            self._ahead_since = None
            t = target
        else:
            self._ahead_since = None
            t = base + max(error, -int(self.policy.slew * dt))
        self._t, self._at = t, m
        return t, w

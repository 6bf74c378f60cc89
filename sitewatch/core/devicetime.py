"""Strictly increasing reading timestamps per device.

InfluxDB identifies a point by its series and timestamp: two readings of one device in
the same millisecond (a driver or simulator catching up after an event-loop stall, a
clock stepping back) would overwrite each other and a seq would silently vanish. Every
producer of readings (the edge agent, the fleet simulator) moves such a timestamp 1 ms
past the device's previous one, and counts it.
"""

from __future__ import annotations


class DeviceClock:
    __slots__ = ("_last", "adjusted")

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        #: timestamps that were moved past the device's previous one
        self.adjusted = 0

    def next(self, device: str, ts_ms: int) -> int:
        """The timestamp to give ``device``'s next reading taken at ``ts_ms``; call
        :meth:`record` once the reading is actually taken."""
        last = self._last.get(device, -1)
        if ts_ms <= last:
            self.adjusted += 1
            return last + 1
        return ts_ms

    def record(self, device: str, ts_ms: int) -> None:
        self._last[device] = ts_ms

    def seed(self, device: str, last_ts_ms: int) -> None:
        """``device``'s last reading had ``last_ts_ms`` (e.g. before a restart): the next
        one is stamped past it."""
        self._last[device] = max(self._last.get(device, -1), last_ts_ms)

    def stamp(self, device: str, ts_ms: int) -> int:
        """:meth:`next` and :meth:`record` in one, for producers that never refuse."""
        ts = self.next(device, ts_ms)
        self._last[device] = ts
        return ts

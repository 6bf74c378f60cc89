"""From gate events to sessions and hours: the rules for the messy cases. Pure logic.

Per worker, the events of one attendance day (from every gate of the site, merged and
ordered by time) are read in order (docs/attendance.md, "Rules"):

- **duplicate swipe**: the same direction again within ``duplicate_window_s`` of the
  previous accepted swipe (a face scanned twice, the outer and inner gate) is ignored;
- **in** while off site opens a session; **in** while on site (a second gate, a missed
  exit and a re-entry) is noted and the session goes on;
- **out** while on site closes the session;
- **exit without entry**: an **out** while off site is credited from the later of the
  shift start and the worker's previous accepted swipe that day (0 if neither is before
  it), and flagged;
- **entry without exit**: a session still open when the attendance day is over is
  closed at the shift end (0 if the entry came after it), and flagged; while the day
  is not over the worker is *on site now* and the session counts up to ``now``.

Credited time is the sum of the sessions, in whole minutes (rounded down once per
worker-day, not per session).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Literal

from sitewatch.domains.attendance.policy import MINUTE_MS, AttendancePolicy

Direction = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class GateEvent:
    ts: int
    worker: str
    direction: Direction
    device: str = ""
    seq: int = 0


class Flag(StrEnum):
    DUPLICATE = "duplicate"
    ENTRY_WHILE_ON_SITE = "entry_while_on_site"
    EXIT_WITHOUT_ENTRY = "exit_without_entry"
    NO_EXIT = "no_exit"
    OPEN = "open"


@dataclass(frozen=True, slots=True)
class Session:
    start: int
    end: int
    #: EXIT_WITHOUT_ENTRY (start assumed), NO_EXIT (end assumed), OPEN (on site now)
    flag: Flag | None = None

    @property
    def ms(self) -> int:
        return self.end - self.start


@dataclass(slots=True)
class WorkerDay:
    worker: str
    day: date
    sessions: list[Session] = field(default_factory=list)
    #: how many swipes each rule ignored or noted (DUPLICATE, ENTRY_WHILE_ON_SITE)
    noted: dict[Flag, int] = field(default_factory=dict)
    first_in: int | None = None
    last_out: int | None = None
    swipes: int = 0

    @property
    def credited_ms(self) -> int:
        return sum(s.ms for s in self.sessions)

    @property
    def minutes(self) -> int:
        return self.credited_ms // MINUTE_MS

    @property
    def on_site(self) -> bool:
        return bool(self.sessions) and self.sessions[-1].flag is Flag.OPEN

    @property
    def flags(self) -> list[Flag]:
        """Every rule that applied this day, for the sheet's remarks column."""
        seen = {s.flag for s in self.sessions if s.flag is not None} | set(self.noted)
        return [f for f in Flag if f in seen]


def _sort_key(e: GateEvent) -> tuple[int, str, int]:
    return (e.ts, e.device, e.seq)


def worker_day(
    worker: str, day: date, events: Iterable[GateEvent], policy: AttendancePolicy, now_ms: int
) -> WorkerDay:
    """One worker's sessions on one attendance day from that day's events."""
    out = WorkerDay(worker, day)
    shift_start, shift_end = policy.shift_bounds(day)
    _, day_end = policy.day_bounds(day)
    window = policy.duplicate_window_s * 1000
    prev: GateEvent | None = None  # the previous accepted swipe
    open_since: int | None = None
    for e in sorted(events, key=_sort_key):
        out.swipes += 1
        if prev is not None and e.direction == prev.direction and e.ts - prev.ts < window:
            out.noted[Flag.DUPLICATE] = out.noted.get(Flag.DUPLICATE, 0) + 1
            continue
        if e.direction == "in":
            if open_since is None:
                open_since = e.ts
                if out.first_in is None:
                    out.first_in = e.ts
            else:
                out.noted[Flag.ENTRY_WHILE_ON_SITE] = out.noted.get(Flag.ENTRY_WHILE_ON_SITE, 0) + 1
        elif open_since is not None:
            out.sessions.append(Session(open_since, e.ts))
            open_since = None
            out.last_out = e.ts
        else:
            start = max(shift_start, prev.ts if prev is not None else shift_start)
            out.sessions.append(Session(min(start, e.ts), e.ts, Flag.EXIT_WITHOUT_ENTRY))
            out.last_out = e.ts
        prev = e
    if open_since is not None:
        if now_ms < day_end:
            out.sessions.append(Session(open_since, max(open_since, now_ms), Flag.OPEN))
        else:
            out.sessions.append(Session(open_since, max(open_since, shift_end), Flag.NO_EXIT))
    return out


def worker_days(
    events: Iterable[GateEvent], policy: AttendancePolicy, now_ms: int
) -> dict[tuple[str, date], WorkerDay]:
    """Every (worker, attendance day) the events touch."""
    grouped: dict[tuple[str, date], list[GateEvent]] = defaultdict(list)
    day_of = policy.day_of
    for e in events:
        grouped[(e.worker, day_of(e.ts))].append(e)
    return {
        key: worker_day(key[0], key[1], evs, policy, now_ms) for key, evs in sorted(grouped.items())
    }


def on_site(days: Iterable[WorkerDay]) -> list[WorkerDay]:
    """The worker-days with a session open now."""
    return [d for d in days if d.on_site]

"""Evaluate one profile rule for one device, reading by reading.

Each rule kind is a small class with the state it needs (window samples, first reading,
pending start...), all registered in :data:`EVALUATORS`. ``observe`` takes a reading and
returns a :class:`Verdict` (is the condition active now, the value that was compared and
the limit), or None when the rule does not apply to this reading (its field is absent,
its ``when`` guard or its time-of-day schedule does not hold). Rules are data: nothing
here evaluates strings as code.

Times are device timestamps (ms since the epoch, UTC); time-of-day limits and per-day
periods use the site's local time (``utc_offset_h``, China +8).
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import msgspec

from sitewatch.core.profiles.model import (
    Condition,
    CountRule,
    CumulativeRule,
    Op,
    RateRule,
    SilentRule,
    ThresholdRule,
    TimeOfDay,
    WindowAggregate,
    WindowRule,
)

Reading = Mapping[str, Any]

_OPS: dict[Op, Callable[[Any, Any], bool]] = {
    Op.GE: operator.ge,
    Op.GT: operator.gt,
    Op.LE: operator.le,
    Op.LT: operator.lt,
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
}


class Verdict(msgspec.Struct, frozen=True, gc=False):
    """A rule's answer to one reading (a C struct: one is made per rule and reading)."""

    active: bool
    value: float | bool | str
    limit: float | bool | str
    #: window rules: the seconds of the window its readings covered
    covered_s: float | None = None


def local_minutes(ts_ms: int, utc_offset_h: float) -> int:
    """Minutes since local midnight."""
    return int(((ts_ms / 60_000) + utc_offset_h * 60) % 1440)


def local_day(ts_ms: int, utc_offset_h: float) -> int:
    """Days since the epoch in local time (a per-day period's key)."""
    return math.floor((ts_ms / 3_600_000 + utc_offset_h) / 24)


def _hhmm(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


#: a schedule slot in minutes since local midnight: (from, to, limit)
Slot = tuple[int, int, float]


def compile_schedule(schedule: tuple[TimeOfDay, ...]) -> tuple[Slot, ...]:
    return tuple((_hhmm(s.from_), _hhmm(s.to), s.value) for s in schedule)


def schedule_limit(slots: tuple[Slot, ...], ts_ms: int, utc_offset_h: float) -> float | None:
    """The limit in force at ``ts_ms`` local time; ``from`` is inclusive, ``to`` not."""
    now = local_minutes(ts_ms, utc_offset_h)
    for start, end, value in slots:
        if (start <= now < end) if start < end else (now >= start or now < end):
            return value
    return None


def holds(cond: Condition, reading: Reading) -> bool | None:
    """Does ``field op value`` hold? None if the reading lacks the field."""
    if cond.field not in reading:
        return None
    return bool(_OPS[cond.op](reading[cond.field], cond.value))


def _past_hysteresis(op: Op, value: float, limit: float, hysteresis: float) -> bool:
    """Has an active condition cleared, i.e. is the value back by the hysteresis?"""
    if op in (Op.GE, Op.GT):
        return value < limit - hysteresis if hysteresis else not _OPS[op](value, limit)
    if op in (Op.LE, Op.LT):
        return value > limit + hysteresis if hysteresis else not _OPS[op](value, limit)
    return not _OPS[op](value, limit)


class Evaluator:
    kind: ClassVar[str]

    def __init__(self, rule: Any, utc_offset_h: float, sample_interval_s: float) -> None:
        self.rule = rule
        self.utc_offset_h = utc_offset_h
        self.sample_interval_s = sample_interval_s
        self.active = False
        schedule = getattr(rule, "schedule", None)
        self._slots = compile_schedule(schedule) if schedule is not None else None
        self._value: float | bool | str | None = getattr(rule, "value", None)
        op = getattr(rule, "op", None)
        self._op: Callable[[Any, Any], bool] | None = _OPS[op] if op is not None else None

    def observe(self, ts_ms: int, reading: Reading) -> Verdict | None:
        raise NotImplementedError

    def limit_at(self, ts_ms: int) -> float | bool | str | None:
        if self._slots is not None:
            return schedule_limit(self._slots, ts_ms, self.utc_offset_h)
        return self._value

    def _compare(self, value: Any, limit: Any, hysteresis: float) -> bool:
        if self.active:
            self.active = not _past_hysteresis(self.rule.op, value, limit, hysteresis)
        else:
            assert self._op is not None
            self.active = self._op(value, limit)
        return self.active


class Threshold(Evaluator):
    kind = "threshold"
    rule: ThresholdRule

    def __init__(self, rule: Any, utc_offset_h: float, sample_interval_s: float) -> None:
        super().__init__(rule, utc_offset_h, sample_interval_s)
        self._since: int | None = None  # when the raw condition started to hold
        # read per reading: kept as plain attributes
        self._field: str = rule.field
        self._when = rule.when
        self._hysteresis: float = rule.hysteresis
        self._for_ms: float = rule.for_s * 1000

    def observe(self, ts_ms: int, reading: Reading) -> Verdict | None:
        value = reading.get(self._field)
        if value is None:
            return None
        limit = self._value if self._slots is None else self.limit_at(ts_ms)
        if limit is None:
            return None  # no limit at this hour
        if self._when:
            guards = [holds(c, reading) for c in self._when]
            if None in guards:
                return None  # not applicable: a guard field is missing
            if not all(guards):
                self.active, self._since = False, None
                return Verdict(False, value, limit)
        if not self._compare(value, limit, self._hysteresis):
            self._since = None
            return Verdict(False, value, limit)
        if self._since is None:
            self._since = ts_ms
        return Verdict(ts_ms - self._since >= self._for_ms, value, limit)


class Window(Evaluator):
    """Aggregate over a sliding window of device time. Mean and energy mean keep running
    sums (O(1) per reading: a 20-minute window of 1 s readings is 1,200 samples);
    max and min scan the window.

    A window is judged only once its readings cover ``min_coverage`` of it. A reading
    covers the time since the reading before it, at most ``max_gap_s`` (default: the
    profile's sample interval): the rest of a longer gap is not covered, and the first
    reading after a start covers nothing (there is no reading before it to measure from).
    Below its coverage the window is not judged: ``observe`` returns None, so it neither
    raises nor clears."""

    kind = "window"
    rule: WindowRule
    #: running sums are recomputed from the samples this often, against rounding drift
    RESUM_EVERY = 10_000

    def __init__(self, rule: Any, utc_offset_h: float, sample_interval_s: float) -> None:
        super().__init__(rule, utc_offset_h, sample_interval_s)
        #: (device time, value, ms covered by this reading)
        self._samples: deque[tuple[int, float, int]] = deque()
        energy = rule.aggregate is WindowAggregate.ENERGY
        self._term: Callable[[float], float] = (
            (lambda v: 10 ** (v / 10)) if energy else (lambda v: v)
        )
        self._sum = 0.0
        self._terms: deque[float] = deque()
        self._updates = 0
        self._window_ms = int(rule.window_s * 1000)
        gap_s = rule.max_gap_s if rule.max_gap_s is not None else sample_interval_s
        self._max_gap_ms = int(min(gap_s, rule.window_s) * 1000)
        self._covered_ms = 0  # the sum of the samples' coverage
        self._last_ts: int | None = None

    def aggregate(self) -> float:
        agg = self.rule.aggregate
        if agg is WindowAggregate.MEAN:
            return self._sum / len(self._terms)
        if agg is WindowAggregate.ENERGY:  # Leq: the energy average of sound levels
            return 10 * math.log10(max(self._sum, 1e-300) / len(self._terms))
        values = [v for _, v, _ in self._samples]
        return max(values) if agg is WindowAggregate.MAX else min(values)

    def covered_s(self) -> float:
        """Seconds of the window (the ``window_s`` up to the newest reading) covered."""
        if not self._samples:
            return 0.0
        t0, _, c0 = self._samples[0]
        horizon = self._samples[-1][0] - self._window_ms
        # only the oldest reading's stretch can begin before the window does
        outside = max(0, horizon - (t0 - c0))
        return (self._covered_ms - outside) / 1000

    def observe(self, ts_ms: int, reading: Reading) -> Verdict | None:
        r = self.rule
        if r.field not in reading:
            return None
        v = float(reading[r.field])
        term = self._term(v)
        last = self._last_ts
        covers = 0 if last is None else min(max(ts_ms - last, 0), self._max_gap_ms)
        self._last_ts = ts_ms if last is None else max(ts_ms, last)
        self._samples.append((ts_ms, v, covers))
        self._covered_ms += covers
        self._terms.append(term)
        self._sum += term
        horizon = ts_ms - self._window_ms
        while self._samples and self._samples[0][0] <= horizon:
            self._covered_ms -= self._samples.popleft()[2]
            self._sum -= self._terms.popleft()
        self._updates += 1
        if self._updates >= self.RESUM_EVERY:
            self._sum, self._updates = math.fsum(self._terms), 0
        limit = self.limit_at(ts_ms)
        if limit is None:
            self.active = False
            return None
        covered = self.covered_s()
        if covered < r.min_coverage * r.window_s - 1e-9:
            return None  # barely seen: not judged, whatever the aggregate says
        value = self.aggregate()
        return Verdict(
            self._compare(value, limit, r.hysteresis), round(value, 6), limit, round(covered, 3)
        )


class Rate(Evaluator):
    """Change per ``per_s`` over the last ``per_s``; with ``consecutive`` N, the change
    of each of the last N local days must meet the limit."""

    kind = "rate"
    rule: RateRule

    def __init__(self, rule: Any, utc_offset_h: float, sample_interval_s: float) -> None:
        super().__init__(rule, utc_offset_h, sample_interval_s)
        self._samples: deque[tuple[int, float]] = deque()
        self._day_first: dict[int, float] = {}
        self._day_last: dict[int, float] = {}

    def observe(self, ts_ms: int, reading: Reading) -> Verdict | None:
        r = self.rule
        if r.field not in reading:
            return None
        v = float(reading[r.field])
        self._samples.append((ts_ms, v))
        horizon = ts_ms - r.per_s * 1000
        while len(self._samples) > 1 and self._samples[1][0] <= horizon:
            self._samples.popleft()
        day = local_day(ts_ms, self.utc_offset_h)
        self._day_first.setdefault(day, v)
        self._day_last[day] = v
        limit = self.limit_at(ts_ms)
        assert isinstance(limit, float | int)
        if r.consecutive > 1:
            days = [day - k for k in range(1, r.consecutive + 1)]  # full days before today
            if not all(d in self._day_first and d + 1 in self._day_first for d in days):
                return None
            # a day's change: first reading of the next day minus first reading of the day
            changes = [self._day_first[d + 1] - self._day_first[d] for d in days]
            self.active = all(_OPS[r.op](c, limit) for c in changes)
            for old in [d for d in self._day_first if d < day - r.consecutive - 1]:
                self._day_first.pop(old)
                self._day_last.pop(old, None)
            return Verdict(self.active, round(min(changes), 6), limit)
        t0, v0 = self._samples[0]
        span_ms = ts_ms - t0
        min_span_s = r.min_span_s if r.min_span_s is not None else r.per_s / 4
        if span_ms < min_span_s * 1000:  # too short to say anything about a daily rate
            return None
        rate = (v - v0) / span_ms * r.per_s * 1000
        self.active = bool(_OPS[r.op](rate, limit))
        return Verdict(self.active, round(rate, 6), limit)


class Cumulative(Evaluator):
    kind = "cumulative"
    rule: CumulativeRule

    def __init__(self, rule: Any, utc_offset_h: float, sample_interval_s: float) -> None:
        super().__init__(rule, utc_offset_h, sample_interval_s)
        self._baseline: float | None = None if rule.baseline == "first" else float(rule.baseline)

    def observe(self, ts_ms: int, reading: Reading) -> Verdict | None:
        r = self.rule
        if r.field not in reading:
            return None
        v = float(reading[r.field])
        if self._baseline is None:
            self._baseline = v
        change = v - self._baseline
        limit = self.limit_at(ts_ms)
        self.active = bool(_OPS[r.op](change, limit))
        return Verdict(self.active, round(change, 6), limit if limit is not None else 0)


class Count(Evaluator):
    """Readings meeting a condition per period (per local day when ``per_s`` is a day)."""

    kind = "count"
    rule: CountRule

    def __init__(self, rule: Any, utc_offset_h: float, sample_interval_s: float) -> None:
        super().__init__(rule, utc_offset_h, sample_interval_s)
        self._hits: deque[int] = deque()

    def observe(self, ts_ms: int, reading: Reading) -> Verdict | None:
        r = self.rule
        hit = holds(r.condition, reading)
        if hit is None:
            return None
        if r.per_s == 86400:
            today = local_day(ts_ms, self.utc_offset_h)
            while self._hits and local_day(self._hits[0], self.utc_offset_h) != today:
                self._hits.popleft()
        else:
            while self._hits and self._hits[0] <= ts_ms - r.per_s * 1000:
                self._hits.popleft()
        if hit:
            self._hits.append(ts_ms)
        self.active = len(self._hits) >= r.count
        return Verdict(self.active, len(self._hits), r.count)


class Silent(Evaluator):
    """Evaluated on a clock, not on readings: ``check(now)`` after ``observe`` of each."""

    kind = "silent"
    rule: SilentRule

    def __init__(self, rule: Any, utc_offset_h: float, sample_interval_s: float) -> None:
        super().__init__(rule, utc_offset_h, sample_interval_s)
        self.last_ms: int | None = None
        self._heard = Verdict(False, 0.0, rule.intervals * sample_interval_s)

    def observe(self, ts_ms: int, reading: Reading) -> Verdict | None:
        self.restart(ts_ms)
        return self._heard

    def restart(self, ts_ms: int) -> None:
        """Count silence from ``ts_ms`` (a reading, or its gateway coming back)."""
        self.last_ms = max(ts_ms, self.last_ms or 0)
        self.active = False

    def check(self, now_ms: int) -> Verdict | None:
        if self.last_ms is None:
            return None
        silent_s = (now_ms - self.last_ms) / 1000
        limit = self.rule.intervals * self.sample_interval_s
        self.active = silent_s > limit
        return Verdict(self.active, round(silent_s, 3), limit)


#: Every rule kind evaluated on readings, in one visible place (``offline`` comes from
#: gateway status messages and is handled with the alert lifecycle).
EVALUATORS: dict[str, type[Evaluator]] = {
    "threshold": Threshold,
    "window": Window,
    "rate": Rate,
    "cumulative": Cumulative,
    "count": Count,
    "silent": Silent,
}

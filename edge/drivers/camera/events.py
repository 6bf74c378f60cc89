"""Per-frame observations in, one event per occurrence out.

Every analysed frame, each analytic says for each of its zones how many people (or
whether smoke) it sees there: an :class:`Observation`, with a count of 0 when there is
nothing. The :class:`Debouncer` keeps one state per camera, event type and zone:

- an *occurrence* (``intrusion``, ``no_helmet``, ``no_vest``, ``fire_smoke``) starts when
  it has been seen in every analysed frame for ``on_s``, and is
  reported once, with its count, confidence and the frame that decided it (for the
  snapshot); it is over when nothing has been seen for ``off_s`` (shorter gaps do not
  split it), reported once with a count of 0 and no snapshot;
- ``person_count`` is reported when a count different from the last one reported has
  held for ``on_s``.

Times are seconds (the frame's time). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.drivers.camera.people import Box
from sitewatch.core.contract import CameraEvent, DetectionMethod

Method = DetectionMethod


@dataclass(frozen=True, slots=True)
class Observation:
    event: CameraEvent
    zone: str | None
    count: int
    confidence: float = 1.0
    #: what was found, drawn on the snapshot
    boxes: tuple[Box, ...] = ()
    method: Method = "classical"


@dataclass(frozen=True, slots=True)
class Event:
    """An occurrence began (``count`` > 0) or ended (``count`` 0), or a new count."""

    event: CameraEvent
    zone: str | None
    count: int
    at: float
    confidence: float | None = None
    method: Method | None = None
    #: the observation that decided a start: its boxes go on the snapshot
    seen: Observation | None = None

    @property
    def starts(self) -> bool:
        return self.count > 0 and self.event != "person_count"


@dataclass
class _State:
    active: bool = False
    since: float | None = None  # first seen in the current run (not yet active)
    last_seen: float | None = None
    reported: int | None = None  # person_count: the last count reported
    candidate: int | None = None
    best: Observation | None = None


@dataclass(frozen=True, slots=True)
class DebounceConfig:
    #: seconds something must be seen before it is an event
    on_s: float = 1.0
    #: seconds without it before the occurrence is over
    off_s: float = 3.0

    def __post_init__(self) -> None:
        if self.on_s < 0 or self.off_s <= 0:
            raise ValueError("on_s must be >= 0 and off_s > 0")


class Debouncer:
    def __init__(self, config: DebounceConfig | None = None) -> None:
        self.config = config or DebounceConfig()
        self._states: dict[tuple[str, str | None], _State] = {}

    def update(self, observations: list[Observation], at: float) -> list[Event]:
        out: list[Event] = []
        for ob in observations:
            key = (ob.event, ob.zone)
            st = self._states.setdefault(key, _State())
            if ob.event == "person_count":
                ev = self._count(st, ob, at)
            else:
                ev = self._occurrence(st, ob, at)
            if ev is not None:
                out.append(ev)
        return out

    def open(self) -> list[tuple[str, str | None]]:
        """The occurrences under way (event, zone)."""
        return [k for k, st in self._states.items() if st.active and k[0] != "person_count"]

    def close_all(self, at: float) -> list[Event]:
        """The camera stopped seeing (offline, covered): every open occurrence ends."""
        out = []
        for (event, zone), st in self._states.items():
            if st.active and event != "person_count":
                out.append(Event(event, zone, 0, at))  # type: ignore[arg-type]
            st.active, st.since, st.last_seen, st.best = False, None, None, None
        return out

    def _occurrence(self, st: _State, ob: Observation, at: float) -> Event | None:
        c = self.config
        if ob.count > 0:
            if st.since is None:
                st.since, st.best = at, None
            st.last_seen = at
            if st.best is None or ob.count >= st.best.count:
                st.best = ob
            if not st.active and at - st.since >= c.on_s:
                st.active = True
                best = st.best
                return Event(ob.event, ob.zone, best.count, at, best.confidence, best.method, best)
            return None
        if not st.active:  # seen, then not: on_s counts continuous presence only
            st.since, st.last_seen, st.best = None, None, None
            return None
        if st.last_seen is not None and at - st.last_seen < c.off_s:
            return None
        st.active, st.since, st.last_seen, st.best = False, None, None, None
        return Event(ob.event, ob.zone, 0, at)

    def _count(self, st: _State, ob: Observation, at: float) -> Event | None:
        # a new count, or the first frame after close_all (offline, covered) forgot when
        # this one was first seen: its on_s starts now
        if ob.count != st.candidate or st.since is None:
            st.candidate, st.since = ob.count, at
        assert st.since is not None
        if ob.count != st.reported and at - st.since >= self.config.on_s:
            st.reported = ob.count
            return Event(ob.event, ob.zone, ob.count, at, ob.confidence, ob.method, ob)
        return None

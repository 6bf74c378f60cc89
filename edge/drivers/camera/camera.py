"""One camera's analysis: frames in; events (with their snapshots) and status changes
out. No I/O: the camera driver reads the frames and hands on what comes out.

Per analysed frame every configured analytic observes (sharing the people found and any
model's detections), the debouncer turns observations into events, each event that
starts gets a snapshot, and the health watch says whether the picture is frozen or the
lens covered. While the camera is offline, frozen or covered it sees nothing, so every
occurrence under way ends then. The first analysed frame ends every occurrence a stop may
have left open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.drivers.camera.analytics import Analytic, FrameContext
from edge.drivers.camera.events import DebounceConfig, Debouncer, Event, Observation
from edge.drivers.camera.health import CameraHealth, Change, HealthConfig
from edge.drivers.camera.people import PeopleConfig, PeopleDetector
from edge.drivers.camera.snapshot import SnapshotConfig, draw, encode
from edge.drivers.camera.yolo import OnnxDetector
from edge.drivers.camera.zones import Zone


@dataclass(frozen=True, slots=True)
class Snapshot:
    jpeg: bytes
    sha256: str


@dataclass(frozen=True, slots=True)
class Outcome:
    events: list[tuple[Event, Snapshot | None]] = field(default_factory=list)
    health: list[Change] = field(default_factory=list)
    #: people in the picture in this frame (None: not looked for)
    people: int | None = None
    #: what the analytics saw in this frame, before debouncing
    observations: list[Observation] = field(default_factory=list)


class CameraAnalysis:
    def __init__(
        self,
        camera: str,
        zones: Sequence[Zone],
        analytics: Sequence[Analytic],
        *,
        debounce: DebounceConfig | None = None,
        health: HealthConfig | None = None,
        snapshot: SnapshotConfig | None = None,
        people: PeopleConfig | None = None,
        models: dict[Path, OnnxDetector] | None = None,
    ) -> None:
        self.camera = camera
        self.zones = list(zones)
        self.analytics = list(analytics)
        self.debouncer = Debouncer(debounce)
        self.health = CameraHealth(health or HealthConfig())
        self.snapshot = snapshot or SnapshotConfig()
        self.people = PeopleDetector(people or PeopleConfig())
        #: the analytics' models by file, loaded once by the caller
        #: (:func:`edge.drivers.camera.driver.build_analysis`)
        self.models: dict[Path, OnnxDetector] = dict(models or {})
        missing = {m.path for a in self.analytics for m in a.models()} - set(self.models)
        if missing:
            raise ValueError(f"models not loaded: {', '.join(map(str, sorted(missing)))}")
        self.frames = 0

    def check_frame_size(self, width: int, height: int) -> None:
        outside = [z.name for z in self.zones if not z.fits(width, height)]
        if outside:
            raise ValueError(
                f"zone(s) {', '.join(outside)} reach outside the camera's {width}x{height} picture"
            )

    def analyse(self, frame: Any, at: float) -> Outcome:
        if self.frames == 0:
            self.check_frame_size(frame.shape[1], frame.shape[0])
        self.frames += 1
        health = self.health.frame(at, frame)
        if self.health.problems():  # frozen or covered: what it shows is not the site
            return Outcome(self._with_snapshots(self.debouncer.close_all(at), frame), health)
        ctx = FrameContext(frame, at, self.people, self.models)
        observations = [ob for a in self.analytics for ob in a.observe(ctx)]
        events = self.debouncer.update(observations, at)
        if self.frames == 1:
            events = self._nothing_open(observations, at) + events
        people = len(ctx.people) if ctx.people_looked_for else None
        return Outcome(self._with_snapshots(events, frame), health, people, observations)

    @staticmethod
    def _nothing_open(observations: list[Observation], at: float) -> list[Event]:
        """At the first frame, an end item (count 0) for every event and zone watched:
        an occurrence left open when the camera's driver or the gateway stopped ends,
        instead of keeping its alert raised. Where nothing was open it changes nothing."""
        keys = dict.fromkeys(
            (ob.event, ob.zone) for ob in observations if ob.event != "person_count"
        )
        return [Event(event, zone, 0, at) for event, zone in keys]

    def tick(self, at: float) -> Outcome:
        """No frame came: the camera may be offline."""
        health = self.health.tick(at)
        events = self.debouncer.close_all(at) if health else []
        return Outcome([(e, None) for e in events], health)

    def _with_snapshots(
        self, events: list[Event], frame: Any
    ) -> list[tuple[Event, Snapshot | None]]:
        out: list[tuple[Event, Snapshot | None]] = []
        for ev in events:
            snap = None
            if ev.starts:
                jpeg, digest = encode(draw(frame, ev, self.zones, self.camera), self.snapshot)
                snap = Snapshot(jpeg, digest)
            out.append((ev, snap))
        return out

"""``camera``: a site camera read with OpenCV (RTSP/HTTP stream, video file or local
device) and analysed at the edge: intrusion into zones, people count, hard hats, smoke.

What goes out: each event once per occurrence (with a JPEG snapshot, zones and
detections drawn) on the camera channel, and the camera's status (online, frozen,
covered, frames analysed per second, people in view) as ``camera`` readings every
interval and at once when it changes (profile ``camera_status``; its measurement is
not the events' ``camera``). See docs/camera.md for the options.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge.drivers.base import Driver, Sink
from edge.drivers.camera.analytics import ANALYTICS, Analytic, ModelOptions
from edge.drivers.camera.camera import CameraAnalysis, Outcome
from edge.drivers.camera.events import DebounceConfig
from edge.drivers.camera.health import HealthConfig, Problem
from edge.drivers.camera.people import PeopleConfig
from edge.drivers.camera.snapshot import SnapshotConfig
from edge.drivers.camera.source import Frame, FrameSource, VideoSource, capture_target
from edge.drivers.camera.yolo import OnnxDetector
from edge.drivers.camera.zones import Zone
from sitewatch.core.ids import IDENT_PATTERN
from sitewatch.core.profiles import Profile

log = logging.getLogger("sitewatch.edge.camera")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZoneOptions(_Strict):
    name: str = Field(pattern=IDENT_PATTERN)
    #: corners in the picture's pixels, at least three
    polygon: list[tuple[float, float]] = Field(min_length=3)


class EventOptions(_Strict):
    #: seen this long, in every analysed frame, before it is an event
    on_s: float = Field(default=1.0, ge=0, le=600)
    #: gone this long before the occurrence is over
    off_s: float = Field(default=3.0, gt=0, le=3600)


class HealthOptions(_Strict):
    offline_s: float = Field(default=30.0, gt=0)
    frozen_s: float = Field(default=60.0, gt=0)
    covered_s: float = Field(default=20.0, gt=0)


class SnapshotOptions(_Strict):
    max_width: int = Field(default=1280, ge=160, le=7680)
    quality: int = Field(default=80, ge=1, le=100)


class CameraOptions(_Strict):
    #: rtsp://..., http://..., a video file's path, or device:N
    source: str = Field(min_length=1)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        capture_target(value)  # device:N must name a number
        return value

    #: frames analysed per second
    analysis_fps: float = Field(default=2.0, gt=0, le=30)
    #: files: played at their frame rate, or as fast as the analysis goes
    pace: Literal["realtime", "fast"] = "realtime"
    #: files: start again at the end
    loop: bool = False
    #: seconds between tries to open a source that failed or ended
    reconnect_s: float = Field(default=5.0, gt=0, le=3600)
    zones: list[ZoneOptions] = Field(default_factory=list)
    #: analytic name -> its options (see edge.drivers.camera.analytics.ANALYTICS)
    analytics: dict[str, dict[str, Any]] = Field(min_length=1)
    events: EventOptions = EventOptions()
    health: HealthOptions = HealthOptions()
    snapshot: SnapshotOptions = SnapshotOptions()


def build_analytics(options: CameraOptions, zones: list[Zone]) -> list[Analytic]:
    """The configured analytics; errors name the key (``analytics.helmet.model.path``)."""
    out = []
    for name, raw in options.analytics.items():
        cls = ANALYTICS.get(name)
        if cls is None:
            raise ValueError(
                f"analytics.{name}: unknown analytic; available: {', '.join(sorted(ANALYTICS))}"
            )
        try:
            opts = cls.Options.model_validate(raw)
        except ValidationError as exc:
            errs = "; ".join(
                f"analytics.{name}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(errs) from None
        try:
            out.append(cls(opts, zones))
        except (OSError, ValueError) as exc:
            raise ValueError(f"analytics.{name}: {exc}") from None
    return out


def build_analysis(camera: str, options: CameraOptions) -> CameraAnalysis:
    names = [z.name for z in options.zones]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"zones: names must be unique; repeated: {', '.join(dup)}")
    try:
        zones = [Zone(z.name, tuple(z.polygon)) for z in options.zones]
    except ValueError as exc:
        raise ValueError(f"zones: {exc}") from None
    analytics = build_analytics(options, zones)
    models: dict[Path, OnnxDetector] = {}
    seen: dict[Path, tuple[str, ModelOptions]] = {}
    for name, analytic in zip(options.analytics, analytics, strict=True):
        for m in analytic.models():
            if m.path in seen:
                other, first = seen[m.path]
                if m != first:  # one file is run once per frame: one class map, layout
                    raise ValueError(
                        f"analytics.{name}.model: {m.path} is also "
                        f"analytics.{other}.model, with other settings; give "
                        "both the same classes, layout, size and thresholds"
                    )
                continue
            seen[m.path] = (name, m)
            try:
                models[m.path] = m.load()
            except (OSError, ValueError) as exc:
                raise ValueError(f"analytics.{name}.model.path: {exc}") from None
            log.info("camera %s: model %s (%s)", camera, m.path, name)
    h, e, s = options.health, options.events, options.snapshot
    try:
        return CameraAnalysis(
            camera,
            zones,
            analytics,
            debounce=DebounceConfig(e.on_s, e.off_s),
            health=HealthConfig(offline_s=h.offline_s, frozen_s=h.frozen_s, covered_s=h.covered_s),
            snapshot=SnapshotConfig(s.max_width, s.quality),
            # a person is reported once seen in 2 analysed frames: keep them long enough
            # to be seen twice at a slow analysis rate
            people=PeopleConfig(keep_s=max(1.0, 2.5 / options.analysis_fps)),
            models=models,
        )
    except ValueError as exc:
        raise ValueError(f"analytics: {exc}") from None


class CameraDriver(Driver):
    Options = CameraOptions

    def __init__(
        self, device_id: str, profile: Profile, interval_s: float, options: BaseModel
    ) -> None:
        super().__init__(device_id, profile, interval_s, options)
        if profile.profile != "camera_status":
            raise ValueError(
                f"the camera driver reports the 'camera_status' profile, not {profile.profile!r}"
            )
        assert isinstance(options, CameraOptions)
        self.opts = options
        self.analysis = build_analysis(device_id, options)
        self.frames = 0
        self.events = 0
        self._last_at: float | None = None
        self._last_mono = 0.0
        self._people: int | None = None

    def now(self) -> float:
        """The camera's clock: the last frame's time, moved on by the time since it."""
        if self._last_at is None:
            return time.time()
        return self._last_at + (time.monotonic() - self._last_mono)

    def open_source(self) -> FrameSource:
        """Where the frames come from (tests give their own source here)."""
        o = self.opts
        return VideoSource(
            o.source, o.analysis_fps, o.pace, o.loop, stall_s=max(5.0, o.health.offline_s)
        )

    async def run(self, sink: Sink) -> None:
        o = self.opts
        source = self.open_source()
        tick = min(1.0, o.health.offline_s / 4)
        reading: asyncio.Future[Frame | None] | None = None
        status_due = time.monotonic() + self.interval_s
        counted, counted_at = 0, self.now()
        retry_at = 0.0
        try:
            while True:
                if reading is None and time.monotonic() >= retry_at:
                    reading = asyncio.ensure_future(asyncio.to_thread(source.next))
                if reading is not None:
                    await asyncio.wait({reading}, timeout=tick)
                else:
                    await asyncio.sleep(min(tick, max(0.0, retry_at - time.monotonic())))
                if reading is not None and reading.done():
                    got, reading = reading.result(), None
                    if got is None:
                        retry_at = time.monotonic() + o.reconnect_s
                        log.info(
                            "camera %s: no frame from %s; trying again in %.0fs",
                            self.device_id,
                            o.source,
                            o.reconnect_s,
                        )
                    else:
                        at, frame = got
                        self._last_at, self._last_mono = at, time.monotonic()
                        outcome = await asyncio.to_thread(self.analysis.analyse, frame, at)
                        self.frames += 1
                        if outcome.people is not None:
                            self._people = outcome.people
                        await self._hand_on(sink, outcome)
                        if self.frames == 1:
                            status_due = 0  # the first status as soon as there is a picture
                if reading is None or not reading.done():
                    outcome = self.analysis.tick(self.now())
                    await self._hand_on(sink, outcome)
                if time.monotonic() >= status_due and (self.frames or self._problems()):
                    now = self.now()
                    fps = (self.frames - counted) / max(now - counted_at, 1e-3)
                    counted, counted_at = self.frames, now
                    self._status(sink, round(fps, 2))
                    status_due = time.monotonic() + self.interval_s
        finally:
            # the source's own lock (a file) or reader thread (a stream) makes this safe
            # while a worker thread is in next(): it returns None soon after
            source.close()

    @staticmethod
    def _stamp(sink: Sink, at: float) -> int:
        """The gateway's time for ``at``: the video source's clock (the wall clock, or a
        file's own time at pace fast) moved onto the gateway's timeline."""
        return sink.gateway_ms(int(at * 1000))

    def _problems(self) -> set[Problem]:
        return self.analysis.health.problems()

    def _status(self, sink: Sink, fps: float | None = None) -> None:
        problems = self._problems()
        values: dict[str, float | int | bool | str] = {
            "online": Problem.OFFLINE not in problems,
            "frozen": Problem.FROZEN in problems,
            "covered": Problem.COVERED in problems,
        }
        if fps is not None:
            values["fps"] = min(fps, 240.0)
        if self._people is not None and Problem.OFFLINE not in problems:
            values["people"] = self._people
        sink.emit(values, self._stamp(sink, self.now()))

    async def _hand_on(self, sink: Sink, outcome: Outcome) -> None:
        for ev, snap in outcome.events:
            self.events += 1
            await sink.emit_camera(
                ev.event,
                ev.zone,
                ev.count,
                ev.confidence,
                ev.method,
                (snap.jpeg, snap.sha256) if snap else None,
                self._stamp(sink, ev.at),
            )
        for change in outcome.health:
            log.warning(
                "camera %s: %s %s",
                self.device_id,
                change.problem.value,
                "began" if change.started else "is over",
            )
        if outcome.health:
            self._status(sink)


__all__ = ["CameraDriver", "CameraOptions"]

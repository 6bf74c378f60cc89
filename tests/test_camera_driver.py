"""The camera driver end to end: a generated video file read by the real edge agent,
events and snapshots through real Mosquitto into real ingest (InfluxDB, SQLite, the
snapshot store); and the camera's status within its configured times."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import RunningAgent, RunningIngest, one_device_settings, wait_for
from sqlalchemy import create_engine, select

from edge.config import DeviceConfig
from edge.drivers.base import Values
from edge.drivers.camera.driver import CameraDriver, CameraOptions
from simulators.camera_video import SWING_ZONE, Scene, site_scene
from sitewatch.core.contract import CameraEvent, DetectionMethod
from sitewatch.core.influx import InfluxClient
from sitewatch.core.profiles import load_profiles
from sitewatch.domains.snapshots import SnapshotRow
from sitewatch.programs.localstack import InfluxServer, MosquittoServer

ANALYTICS: dict[str, dict[str, Any]] = {"intrusion": {}, "helmet": {}, "person_count": {}}


def camera_device(video: Path, **options: Any) -> DeviceConfig:
    return DeviceConfig(
        id="CAM01",
        driver="camera",
        profile="camera_status",
        interval_s=1,
        options={
            "source": str(video),
            "pace": "fast",
            "analysis_fps": 2,
            "zones": [{"name": "crane-swing", "polygon": SWING_ZONE}],
            "analytics": ANALYTICS,
            **options,
        },
    )


async def test_events_and_their_snapshots_reach_ingest_and_verify_by_hash(
    mosquitto: MosquittoServer,
    influxdb: InfluxServer,
    prefix: str,
    unique: str,
    tmp_path: Path,
    influx_client: InfluxClient,
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    agent_factory: Callable[..., RunningAgent],
) -> None:
    video = site_scene(frames=300).write(tmp_path / "site.avi")
    central = tmp_path / "central-snapshots"
    db = f"sqlite:///{tmp_path / 'sitewatch.db'}"
    await start_ingest(snapshots_dir=central, database_url=db)
    # the file plays once (30 s of video, analysed as fast as it goes); then the camera
    # is gone: offline after 2 s, which ends the occurrences still open
    device = camera_device(video, reconnect_s=3600, health={"offline_s": 2})
    settings = one_device_settings(mosquitto, prefix, tmp_path / "edge", device)
    running = agent_factory(settings)

    async def events() -> list[dict[str, Any]]:
        return await influx_client.series(
            "SELECT * FROM camera WHERE time > now() - 1d ORDER BY time"
        )

    async def ended() -> bool:  # an intrusion's start, then its end
        counts = [r["count"] for r in await events() if r["event"] == "intrusion"]
        # (InfluxDB 1.x keeps each field of a point apart: a query while the point is
        # being written can see its seq before its count, once in a loaded suite run)
        return any(n is not None and n > 0 for n in counts) and counts[-1] == 0

    await wait_for(ended, timeout=90, what="the intrusion's end in InfluxDB")
    rows = await events()
    intrusion = [r for r in rows if r["event"] == "intrusion"]
    # the first frame ends whatever a stop left open; then one occurrence (P1..P3, then
    # P5, keep the zone occupied): one start, one end, not one item per analysed frame
    assert [(r["zone"], r["count"] > 0) for r in intrusion] == [
        ("crane-swing", False),
        ("crane-swing", True),
        ("crane-swing", False),
    ]
    start = intrusion[1]
    assert start["method"] == "classical" and 0 < start["confidence"] <= 1
    assert start["snapshot"] and intrusion[2]["snapshot"] is None
    bare = [r for r in rows if r["event"] == "no_helmet" and r["count"]]
    assert bare and all(r["zone"] == "crane-swing" for r in bare)
    counts = [r["count"] for r in rows if r["event"] == "person_count"]
    assert counts and max(counts) >= 3

    # every snapshot named by an event is at ingest, under its SHA-256, for the site
    named = {r["snapshot"] for r in rows if r["snapshot"]}
    assert len(named) == len([r for r in rows if r["snapshot"]]) >= 2
    await wait_for(
        lambda: all(any(central.glob(f"*/{h}.jpg")) for h in named),
        timeout=10,
        what="the snapshots stored centrally",
    )
    for h in named:
        (path,) = central.glob(f"*/{h}.jpg")
        data = path.read_bytes()
        assert data[:3] == b"\xff\xd8\xff" and hashlib.sha256(data).hexdigest() == h
        picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert picture.shape == (720, 1280, 3)
    engine = create_engine(db)
    with engine.connect() as c:
        stored = c.execute(select(SnapshotRow.sha256, SnapshotRow.site, SnapshotRow.source)).all()
    engine.dispose()
    assert {(h, "S1", "gateway:GW1") for h in named} <= set(stored)

    # the status: online while it played, then offline
    status = await influx_client.series(
        "SELECT online, people FROM camera_status WHERE time > now() - 1d ORDER BY time"
    )
    assert status[0]["online"] is True and status[-1]["online"] is False
    # the gateway forgets a snapshot once ingest has the batch that names it
    await wait_for(
        lambda: not any((tmp_path / "edge" / "snapshots").glob("*/*.jpg")),
        timeout=10,
        what="the edge's snapshots removed after the ack",
    )
    agent = running.agent
    assert agent.snapshots_sent >= len(named) and agent.snapshots_failed == 0
    exported = {
        m.name: m.samples[0].value
        for m in agent.metrics.collect()
        if m.name.startswith("sitewatch_edge_snapshots")
    }
    assert exported == {
        "sitewatch_edge_snapshots_sent": agent.snapshots_sent,
        "sitewatch_edge_snapshots_failed": 0,
    }
    await running.stop()


class Recorder:
    """A sink that keeps what the driver hands on, with the wall time it came."""

    def __init__(self) -> None:
        self.status: list[tuple[float, int, Values]] = []
        self.events: list[tuple[CameraEvent, int]] = []

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def gateway_ms(self, wall_ms: int) -> int:
        return wall_ms

    def emit(self, values: Values, ts_ms: int) -> bool:
        self.status.append((time.monotonic(), ts_ms, values))
        return True

    def emit_attendance(self, worker: str, direction: str, method: str, ts_ms: int) -> bool:
        raise AssertionError("a camera has no gate events")

    async def emit_camera(
        self,
        event: CameraEvent,
        zone: str | None,
        count: int,
        confidence: float | None,
        method: DetectionMethod | None,
        snapshot: tuple[bytes, str] | None,
        ts_ms: int,
    ) -> bool:
        self.events.append((event, count))
        return True

    async def durable(self) -> bool:
        return True

    def first(self, key: str, value: bool) -> tuple[float, int] | None:
        return next(((mono, ts) for mono, ts, v in self.status if v.get(key) is value), None)


def troubled_video(path: Path) -> Path:
    """4 s of a live picture, 4 s of one frozen picture, 4 s of a covered lens (black),
    at 10 frames/s."""
    live = Scene(frames=40)
    frozen = live.frame(39)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (1280, 720))
    for i in range(40):
        out.write(live.frame(i))
    for _ in range(40):
        out.write(frozen)
    for _ in range(40):
        out.write(np.zeros((720, 1280, 3), np.uint8))
    out.release()
    return path


async def test_a_frozen_covered_or_vanished_camera_reports_within_its_configured_time(
    tmp_path: Path,
) -> None:
    video = troubled_video(tmp_path / "trouble.avi")
    options = CameraOptions.model_validate(
        {
            "source": str(video),
            "pace": "fast",
            "analysis_fps": 5,
            "reconnect_s": 0.5,
            "analytics": {"smoke": {}},
            "health": {"frozen_s": 1.5, "covered_s": 1.5, "offline_s": 2.0},
        }
    )
    profile = load_profiles(None).of_devices()["camera_status"]
    driver = CameraDriver("CAM01", profile, 3600, options)
    sink = Recorder()
    task = asyncio.create_task(driver.run(sink))
    try:
        await wait_for(
            lambda: sink.first("covered", True) is not None, timeout=30, what="covered reported"
        )
        start = driver.analysis.health.config  # the configured times
        t0 = sink.status[0][1]  # the first status: the video's first frame
        frozen = sink.first("frozen", True)
        covered = sink.first("covered", True)
        assert frozen is not None and covered is not None
        # frozen from 3.9 s of video (its last live frame), reported 1.5 s later (+ one
        # analysed frame); covered from 8.0 s, 1.5 s later
        assert 3.9 + start.frozen_s <= (frozen[1] - t0) / 1000 <= 3.9 + start.frozen_s + 0.45
        assert 8.0 + start.covered_s <= (covered[1] - t0) / 1000 <= 8.0 + start.covered_s + 0.45
        # a file that ended (not looping) is a camera that vanished: offline within
        # offline_s of its last analysed frame (the clock goes on from that frame)
        await wait_for(
            lambda: sink.first("online", False) is not None, timeout=20, what="offline reported"
        )
        offline = sink.first("online", False)
        assert offline is not None
        last_frame = 11.8  # analysed at 5 frames/s: 0.0, 0.2, ... 11.8
        assert last_frame + 2.0 <= (offline[1] - t0) / 1000 <= last_frame + 2.0 + 1.5
        assert driver.frames == 60  # played once, not again
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class StallingStream:
    """A live stream that gives frames for a while, then stalls: ``next`` blocks (as
    OpenCV's read does on a dead RTSP connection) until the source is closed."""

    def __init__(self, frames: int, fps: float) -> None:
        self.scene = Scene(frames=frames)
        self.left, self.fps = frames, fps
        self.closed = threading.Event()
        self.last_at = 0.0

    def next(self) -> tuple[float, Any] | None:
        if self.left == 0:
            self.closed.wait()
            return None
        self.left -= 1
        time.sleep(1 / self.fps)
        self.last_at = time.time()
        return self.last_at, self.scene.frame(self.left)

    def close(self) -> None:
        self.closed.set()


async def test_a_stream_that_stalls_is_offline_within_offline_s(tmp_path: Path) -> None:
    options = CameraOptions.model_validate(
        {
            "source": "rtsp://camera.invalid/stream",
            "analysis_fps": 5,
            "analytics": {"smoke": {}},
            "health": {"offline_s": 1.5},
        }
    )
    profile = load_profiles(None).of_devices()["camera_status"]
    driver = CameraDriver("CAM01", profile, 3600, options)
    stream = StallingStream(frames=10, fps=5)
    driver.open_source = lambda: stream  # type: ignore[method-assign]
    sink = Recorder()
    task = asyncio.create_task(driver.run(sink))
    try:
        await wait_for(
            lambda: sink.first("online", False) is not None, timeout=15, what="offline reported"
        )
        offline = sink.first("online", False)
        assert offline is not None and sink.status[0][2]["online"] is True
        late = offline[1] / 1000 - stream.last_at
        assert 1.5 <= late <= 1.5 + 0.6, late  # offline_s after the last frame (+ a tick)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert stream.closed.is_set()  # the driver closed its source, freeing the reader


def test_a_local_camera_source_must_name_a_number() -> None:
    with pytest.raises(ValueError, match="a local camera is device:N"):
        CameraOptions.model_validate({"source": "device:front", "analytics": {"smoke": {}}})
    assert (
        CameraOptions.model_validate({"source": "device:0", "analytics": {"smoke": {}}}).source
        == "device:0"
    )

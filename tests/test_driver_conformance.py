"""The suite every device driver must pass, as tests/test_profiles.py is for profiles.

Parametrized over every name in the driver registry (edge/drivers/__init__.py): a driver
that is registered without a case in :data:`CASES` fails here, by name. Each case gives
a valid config, a real peer to start and take away (the Modbus device simulator, the
HJ 212 monitor simulator, the attendance terminal over HTTP, a generated video file) and
the profile its readings belong to. For every driver:

1. it starts, hands readings to a recording sink and stops within a bound, leaving no
   task running;
2. an unknown option key and an invalid value are refused at build time (the agent's
   ``build_drivers``) with an error naming the key;
3. every reading validates against its profile with the decoder ingest applies
   (``contract.TelemetryCodec``; gate and camera events with the contract's own);
4. a peer that disappears is reported the way the driver documents it;
5. garbage from the peer (bytes that are not the protocol, a peer that closes in the
   middle of a message) raises nothing out of the driver: it is counted and the driver
   goes on serving the real peer.

No broker is needed: the sink is the interface the agent gives drivers (base.Sink).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import msgspec
import pytest
from conftest import wait_for, wait_listening

from edge.config import DeviceConfig, EdgeSettings
from edge.devices import build_drivers
from edge.drivers import DRIVERS, Driver, Values
from edge.drivers.camera.driver import CameraDriver
from edge.drivers.hj212 import Hj212Driver
from edge.drivers.hj212 import protocol as hj212
from edge.drivers.http_push import HttpPushDriver
from edge.drivers.modbus_tcp import ModbusTcpDriver
from simulators.attendance_terminal import Terminal
from simulators.camera_video import Scene
from simulators.hj212_monitor import run_monitor
from simulators.modbus_device import ModbusDevice
from sitewatch.core import contract
from sitewatch.core.contract import CameraEvent, DetectionMethod
from sitewatch.core.profiles import load_profiles
from sitewatch.core.settings import ConfigError
from sitewatch.programs.localstack import free_port

PROFILES = load_profiles()
#: what ingest decodes a telemetry item with: the profile's fields, types and ranges
CODEC = contract.TelemetryCodec(PROFILES)
#: a driver stops (cancelled) within this, with everything it started
STOP_BOUND_S = 5.0
UNKNOWN_KEY = "no_such_option"
#: this project's source (sitewatch/, bench/, ...): the code whose exceptions count here
SOURCE = str(Path(__file__).resolve().parent.parent) + os.sep


class RecordingSink:
    """What the agent gives a driver (base.Sink), keeping what it is handed."""

    def __init__(self) -> None:
        self.readings: list[tuple[Values, int]] = []
        self.gates: list[tuple[str, str, str, int]] = []
        self.camera: list[dict[str, Any]] = []

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def gateway_ms(self, wall_ms: int) -> int:
        return wall_ms

    def emit(self, values: Values, ts_ms: int) -> bool:
        self.readings.append((dict(values), ts_ms))
        return True

    def emit_attendance(self, worker: str, direction: str, method: str, ts_ms: int) -> bool:
        self.gates.append((worker, direction, method, ts_ms))
        return True

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
        item: dict[str, Any] = {"event": event, "count": count, "ts": ts_ms}
        if zone is not None:
            item["zone"] = zone
        if confidence is not None:
            item["confidence"] = confidence
        if method is not None:
            item["method"] = method
        if snapshot is not None:
            item["snapshot"] = snapshot[1]
        self.camera.append(item)
        return True

    async def durable(self) -> bool:
        return True

    def produced(self) -> int:
        return len(self.readings) + len(self.gates) + len(self.camera)


def build(case: Case, options: dict[str, Any], tmp_path: Path) -> Driver:
    """The driver as the agent builds it from its config (options validated there)."""
    settings = EdgeSettings(
        site="S1",
        gateway="GW1",
        state_dir=tmp_path / "edge",
        devices=[
            DeviceConfig(
                id=case.device,
                driver=case.name,
                profile=case.profile,
                interval_s=case.interval_s,
                options=options,
            )
        ],
    )
    (driver,) = build_drivers(settings, PROFILES)
    return driver


class Running:
    """A driver's ``run`` as the agent runs it: a task, cancelled to stop."""

    def __init__(self, case: Case, driver: Driver, sink: RecordingSink) -> None:
        self.case, self.driver, self.sink = case, driver, sink
        case.runs.append(self)  # stopped at the end of a test that failed before its stop
        self.before = asyncio.all_tasks()
        # an exception out of a driver's own callbacks (a listener's connection handler)
        # does not end ``run``: the event loop's handler gets it; keep those
        loop = asyncio.get_running_loop()
        self.escaped: list[dict[str, Any]] = []
        self._handler = loop.get_exception_handler()

        def record(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            self.escaped.append(context)
            loop.default_exception_handler(context)

        loop.set_exception_handler(record)
        self.task = asyncio.create_task(driver.run(sink), name=f"device-{driver.device_id}")

    def ours(self) -> list[str]:
        """What escaped from this project's code into the event loop."""
        out = []
        for context in self.escaped:
            exc = context.get("exception")
            files = [f.filename for f in traceback.extract_tb(exc.__traceback__)] if exc else []
            if exc is None or any(f.startswith(SOURCE) and ".venv" not in f for f in files):
                out.append(f"{context.get('message')}: {exc!r}")
        return out

    def alive(self) -> bool:
        """True while it runs; an exception that escaped ``run`` (or into the event
        loop from the driver's callbacks) fails the test here."""
        if self.task.done():
            exc = None if self.task.cancelled() else self.task.exception()
            where = "".join(traceback.format_exception(exc)) if exc else "cancelled"
            pytest.fail(f"{type(self.driver).__name__}.run ended: {exc!r}\n{where}")
        assert not self.ours(), self.ours()
        return True

    async def stop(self) -> float:
        """Cancel it; it must end cancelled (no exception) within the bound, and leave
        no task of its own behind. Returns how long that took."""
        self.alive()
        began = time.monotonic()
        self.task.cancel()
        done, _ = await asyncio.wait({self.task}, timeout=STOP_BOUND_S)
        assert done, f"{type(self.driver).__name__} did not stop within {STOP_BOUND_S}s"
        assert self.task.cancelled(), f"run ended with {self.task.exception()!r}"
        me = asyncio.current_task()

        def left() -> set[asyncio.Task[Any]]:
            mine = asyncio.all_tasks() - self.before - self.case.peer_tasks()
            return {t for t in mine if t is not me and not t.done()}

        await wait_for(
            lambda: not left(),
            timeout=max(0.1, STOP_BOUND_S - (time.monotonic() - began)),
            what=lambda: f"no task left running after the stop (left: {left()})",
        )
        took = time.monotonic() - began
        asyncio.get_running_loop().set_exception_handler(self._handler)
        assert not self.ours(), self.ours()
        return took


class Case(ABC):
    """One driver's conformance case: its config, its peer, its profile."""

    name: ClassVar[str]
    device: ClassVar[str]
    profile: ClassVar[str]
    interval_s: ClassVar[float | None] = None
    #: an option key and a value the driver must refuse
    bad_value: ClassVar[tuple[str, Any]]
    #: how the driver reports a peer that went away (its documentation says so)
    offline: ClassVar[str]

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.runs: list[Running] = []

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """A valid ``devices[].options`` for this driver."""

    async def start_peer(self) -> None:
        """Start the device (or whatever the driver reads) the driver talks to."""
        return None

    async def close(self) -> None:
        """Take down whatever the case still runs."""
        return None

    def peer_tasks(self) -> set[asyncio.Task[Any]]:
        """The tasks of the peer (not the driver's) the case runs now."""
        return set()

    @abstractmethod
    async def produce(self, run: Running) -> None:
        """Have the peer give readings; return once the sink holds some."""

    @abstractmethod
    async def peer_gone(self, run: Running, caplog: pytest.LogCaptureFixture) -> None:
        """Take the peer away; wait for the driver's documented offline signal."""

    @abstractmethod
    async def garbage(self, run: Running) -> None:
        """Start a run with garbage from the peer; wait until it is counted and the
        driver serves the real peer again."""

    async def stopped(self, driver: Driver) -> None:
        """What a stopped driver must have let go (a listening port)."""
        return None


def _silent_rule(profile: str) -> Any:
    rules = [r for r in PROFILES[profile].rules if r.kind == "silent"]
    assert rules, f"profile {profile!r} has no 'silent' rule: a quiet device goes unreported"
    return rules[0]


async def _port_closed(port: int) -> None:
    async def refused() -> bool:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return True
        w.close()
        return False

    await wait_for(refused, timeout=STOP_BOUND_S, what=f"port {port} closed after the stop")


class SimulatedCase(Case):
    name = "simulated"
    device = "TC01"
    profile = "tower_crane"
    interval_s = 0.05
    bad_value = ("utc_offset_h", 99)
    offline = (
        "no peer: the device is played by the signal model in the driver itself, so it "
        "never goes away; the documented behaviour is a reading every interval, always"
    )

    def options(self) -> dict[str, Any]:
        return {"seed": 3}

    async def produce(self, run: Running) -> None:
        await wait_for(lambda: run.alive() and len(run.sink.readings) >= 3, what="3 readings")

    async def peer_gone(self, run: Running, caplog: pytest.LogCaptureFixture) -> None:
        await self.produce(run)
        n = len(run.sink.readings)
        await wait_for(
            lambda: run.alive() and len(run.sink.readings) >= n + 3,
            timeout=5,
            what="readings going on every interval",
        )

    async def garbage(self, run: Running) -> None:
        pytest.skip("simulated: no peer, so nothing foreign can reach the driver")


class ModbusCase(Case):
    name = "modbus_tcp"
    device = "TC01"
    profile = "tower_crane"
    interval_s = 0.2
    bad_value = ("port", 0)
    offline = (
        "no reading while the device does not answer within timeout_s; each failed poll "
        "is counted (failures) and the outage logged once, naming the device"
    )
    timeout_s = 0.5

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.port = free_port()
        self.peer: asyncio.Task[None] | None = None
        self.fake: asyncio.Server | None = None

    def options(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "unit": 1, "timeout_s": self.timeout_s}

    async def start_peer(self) -> None:
        device = ModbusDevice(PROFILES[self.profile], port=self.port, unit=1)
        self.peer = asyncio.create_task(device.run(interval_s=0.1))
        await wait_listening(self.port, server=self.peer, what="the Modbus device")

    def peer_tasks(self) -> set[asyncio.Task[Any]]:
        if self.peer is None:
            return set()
        # the device's task and the pymodbus server's own
        return {t for t in asyncio.all_tasks() if t is self.peer or "Modbus" in repr(t)}

    async def close(self) -> None:
        if self.peer is not None:
            self.peer.cancel()
            await asyncio.gather(self.peer, return_exceptions=True)
            self.peer = None
        if self.fake is not None:
            self.fake.close()
            await self.fake.wait_closed()
            self.fake = None

    async def produce(self, run: Running) -> None:
        await wait_for(lambda: run.alive() and len(run.sink.readings) >= 2, what="2 readings")

    async def peer_gone(self, run: Running, caplog: pytest.LogCaptureFixture) -> None:
        driver = run.driver
        assert isinstance(driver, ModbusTcpDriver)
        await self.produce(run)
        assert driver.failures == 0
        gone_at = time.monotonic()
        await self.close()
        bound = self.timeout_s + 2 * (self.interval_s or 0) + 1.0
        await wait_for(
            lambda: run.alive() and driver.failures >= 1, timeout=bound, what="a failed poll"
        )
        assert time.monotonic() - gone_at <= bound
        n, failed = len(run.sink.readings), driver.failures
        # two more polls fail, and no reading came out of them
        await wait_for(
            lambda: run.alive() and driver.failures >= failed + 2,
            timeout=2 * bound,
            what="the polls that follow failing too",
        )
        assert len(run.sink.readings) == n
        told = [
            r
            for r in caplog.records
            if r.levelno == logging.WARNING and self.device in r.getMessage()
        ]
        assert len(told) == 1, "the outage is logged once, naming the device"

    async def garbage(self, run: Running) -> None:
        driver = run.driver
        assert isinstance(driver, ModbusTcpDriver)
        answers = [
            b"HTTP/1.1 400 Bad Request\r\n\r\nnot modbus at all",  # not the protocol
            b"\x00\x01\x00\x00\x00\x09\x01\x03",  # half a response, then closed
            b"\x00\x01\x00\x00\x00\x03\x01\x03\xff\xff\xff\xff",  # a frame that lies
        ]
        served = 0

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal served
            with contextlib.suppress(ConnectionError):
                await reader.read(260)
                writer.write(answers[served % len(answers)])
                served += 1
                await writer.drain()
            writer.close()

        self.fake = await asyncio.start_server(answer, "127.0.0.1", self.port)
        await wait_for(
            lambda: run.alive() and served >= len(answers) and driver.failures >= len(answers),
            timeout=10,
            what="every kind of garbage answered and counted as a failed poll",
        )
        assert run.sink.readings == []
        self.fake.close()
        await self.fake.wait_closed()
        self.fake = None
        await self.start_peer()  # the real device on the same port: the driver goes on
        await self.produce(run)


MN = "ZHGD0001CONFORM0000000001"


class Hj212Case(Case):
    name = "hj212"
    device = "ENV01"
    profile = "environment"
    bad_value = ("mn", "")
    offline = (
        "a monitor connects and pushes: when it goes away the driver has no more "
        "readings of it and keeps listening; the profile's 'silent' rule reports it"
    )

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.port = free_port()

    def options(self) -> dict[str, Any]:
        return {"mn": MN, "host": "127.0.0.1", "port": self.port, "password": "123456"}

    async def listening(self, run: Running) -> None:
        await wait_listening(self.port, server=run.task, what="the HJ 212 listener")

    async def monitor(self, count: int, seed: int = 1) -> None:
        stats = await run_monitor(
            "127.0.0.1", self.port, mn=MN, count=count, interval_s=0.02, seed=seed
        )
        assert stats.acked == count

    async def produce(self, run: Running) -> None:
        await self.listening(run)
        await self.monitor(3)  # every frame acknowledged: every reading handed on
        assert run.alive() and len(run.sink.readings) >= 3

    async def peer_gone(self, run: Running, caplog: pytest.LogCaptureFixture) -> None:
        driver = run.driver
        assert isinstance(driver, Hj212Driver)
        await self.produce(run)  # the monitor has sent its frames and hung up
        n = len(run.sink.readings)
        # a frame of another MN is taken after the monitor left: the listener runs, and
        # nothing of the gone monitor came meanwhile
        unknown = driver.listener.counters["unknown_mn"]
        _, w = await asyncio.open_connection("127.0.0.1", self.port)
        w.write(_hj212_frame(mn="OTHER0001"))
        await w.drain()
        await wait_for(
            lambda: run.alive() and driver.listener.counters["unknown_mn"] > unknown,
            what="the other MN's frame counted",
        )
        w.close()
        assert len(run.sink.readings) == n
        rule = _silent_rule(self.profile)
        assert rule.intervals * PROFILES[self.profile].sample_interval_s > 0
        await self.monitor(1, seed=2)  # the monitor comes back: served again
        assert len(run.sink.readings) == n + 1

    async def garbage(self, run: Running) -> None:
        driver = run.driver
        assert isinstance(driver, Hj212Driver)
        await self.listening(run)
        counters = driver.listener.counters
        frame = _hj212_frame()
        _, w = await asyncio.open_connection("127.0.0.1", self.port)
        bad_crc = frame[:-6] + (b"0000" if frame[-6:-2] != b"0000" else b"FFFF") + b"\r\n"
        w.write(b"\x00\xff\xfeGET / HTTP/1.1\r\n\r\n" + bad_crc)
        w.write(frame[: len(frame) // 2])  # half a frame, then the peer hangs up
        await w.drain()
        w.close()
        await wait_for(
            lambda: run.alive() and counters["garbage_bytes"] > 0 and counters["bad_crc"] > 0,
            what=lambda: f"the garbage and the bad CRC counted ({dict(counters)})",
        )
        assert run.sink.readings == []
        await self.monitor(2)  # and a real monitor is served
        assert len(run.sink.readings) == 2

    async def stopped(self, driver: Driver) -> None:
        await _port_closed(self.port)


def _hj212_frame(mn: str = MN) -> bytes:
    return hj212.data_frame(
        qn="20240601120000000",
        st="39",
        pw="123456",
        mn=mn,
        flag=5,
        data_time="20240601120000",
        factors={"a34004": 35.2},
    )


TOKEN = "conformance-token-0001"


class HttpPushCase(Case):
    name = "http_push"
    device = "GATE01"
    profile = "attendance_gate"
    bad_value = ("token", "short")
    offline = (
        "a terminal connects and posts: when it goes away the driver has no more events "
        "of it and keeps listening; the profile's 'silent' rule reports it"
    )

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.port = free_port()
        self.terminal = Terminal(
            f"http://127.0.0.1:{self.port}/v1/push/{self.device}",
            TOKEN,
            ["W000001", "W000002", "W000003"],
        )

    def options(self) -> dict[str, Any]:
        return {"token": TOKEN, "kind": "attendance", "host": "127.0.0.1", "port": self.port}

    async def send(self, n: int) -> None:
        self.terminal.swipe(n)
        async with httpx.AsyncClient(timeout=5) as client:
            assert await self.terminal.send(client) == 202

    async def produce(self, run: Running) -> None:
        await wait_listening(self.port, server=run.task, what="the HTTP push listener")
        await self.send(3)  # answered 202 only once every event is handed on
        assert run.alive() and len(run.sink.gates) >= 3

    async def peer_gone(self, run: Running, caplog: pytest.LogCaptureFixture) -> None:
        driver = run.driver
        assert isinstance(driver, HttpPushDriver)
        await self.produce(run)  # the terminal sent and closed its connection
        n = len(run.sink.gates)
        async with httpx.AsyncClient(timeout=5) as client:  # someone else is answered
            r = await client.post(f"http://127.0.0.1:{self.port}/v1/push/NOBODY", json={})
        assert r.status_code == 401
        assert run.alive() and len(run.sink.gates) == n
        _silent_rule(self.profile)
        await self.send(1)  # the terminal comes back: served again
        assert len(run.sink.gates) == n + 1

    async def garbage(self, run: Running) -> None:
        driver = run.driver
        assert isinstance(driver, HttpPushDriver)
        await wait_listening(self.port, server=run.task, what="the HTTP push listener")
        counters = driver.listener.counters
        r, w = await asyncio.open_connection("127.0.0.1", self.port)
        w.write(b"\x16\x03\x01\x02\x00garbage, not HTTP\r\n\r\n")
        await w.drain()
        answer = await asyncio.wait_for(r.read(), 5)
        w.close()
        assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
        # a request that ends in the middle of its body: the peer hangs up
        r, w = await asyncio.open_connection("127.0.0.1", self.port)
        w.write(
            f"POST /v1/push/{self.device} HTTP/1.1\r\nhost: x\r\n"
            f"authorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\n"
            "content-length: 200\r\n\r\n".encode()
            + b'{"worker": "W0'
        )
        await w.drain()
        w.close()
        assert await asyncio.wait_for(r.read(), 5) == b""  # nothing answered, closed
        await wait_for(
            lambda: run.alive() and counters["bad_http"] >= 1,
            what=lambda: f"the garbage counted ({dict(counters)})",
        )
        assert run.sink.gates == []
        await self.send(2)  # and a real terminal is served
        assert len(run.sink.gates) == 2

    async def stopped(self, driver: Driver) -> None:
        await _port_closed(self.port)


class CameraCase(Case):
    name = "camera"
    device = "CAM01"
    profile = "camera_status"
    interval_s = 0.5
    bad_value = ("analysis_fps", 0)
    offline = "a status reading with online = false within health.offline_s of the last frame"
    offline_s = 1.0
    #: the video: 2 s at 10 frames/s, played in real time and not looped
    frames = 20

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.video = tmp_path / "camera.avi"

    def options(self) -> dict[str, Any]:
        return {
            "source": str(self.video),
            "pace": "realtime",
            "analysis_fps": 5,
            "reconnect_s": 0.2,
            "analytics": {"smoke": {}, "person_count": {}},
            "health": {"offline_s": self.offline_s},
        }

    async def start_peer(self) -> None:
        await asyncio.to_thread(Scene(frames=self.frames).write, self.video)

    def online(self, run: Running, value: bool) -> list[int]:
        return [ts for v, ts in run.sink.readings if v.get("online") is value]

    async def produce(self, run: Running) -> None:
        await wait_for(
            lambda: run.alive() and len(self.online(run, True)) >= 2,
            timeout=10,
            what="two online status readings",
        )

    async def peer_gone(self, run: Running, caplog: pytest.LogCaptureFixture) -> None:
        driver = run.driver
        assert isinstance(driver, CameraDriver)
        await self.produce(run)
        # the file ends (it is not looped): the camera is gone
        await wait_for(
            lambda: run.alive() and self.online(run, False),
            timeout=self.frames / 10 + self.offline_s + 5,
            what="the camera reported offline",
        )
        assert driver._last_at is not None
        late = self.online(run, False)[0] / 1000 - driver._last_at
        assert self.offline_s <= late <= self.offline_s + 1.0, late

    async def garbage(self, run: Running) -> None:
        driver = run.driver
        assert isinstance(driver, CameraDriver)
        await wait_for(
            lambda: run.alive() and self.online(run, False),
            timeout=self.offline_s + 5,
            what="a source that is no video reported offline",
        )
        assert driver.frames == 0
        # then a real video at the same source, but cut in the middle of a frame (3/4
        # of it): what it holds is played, then the camera is gone again
        good = self.tmp_path / "good.avi"
        await asyncio.to_thread(Scene(frames=self.frames).write, good)
        data = good.read_bytes()
        good.write_bytes(data[: len(data) * 3 // 4 + 777])
        os.replace(good, self.video)
        await self.produce(run)
        back = len(run.sink.readings)
        await wait_for(
            lambda: run.alive() and self.online(run, False)[-1] > run.sink.readings[back - 1][1],
            timeout=self.frames / 10 + self.offline_s + 5,
            what="the cut video reported offline once it ended",
        )
        assert 0 < driver.frames < self.frames * 5 // 10  # not the whole video

    async def garbage_peer(self) -> None:
        self.video.write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage " + os.urandom(4096))


CASES: dict[str, type[Case]] = {
    c.name: c for c in (SimulatedCase, ModbusCase, Hj212Case, HttpPushCase, CameraCase)
}


@pytest.fixture(params=sorted(DRIVERS))
async def case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Case]:
    name: str = request.param
    cls = CASES.get(name)
    if cls is None:
        pytest.fail(
            f"driver {name!r} is registered but has no conformance case: "
            "add one to tests/test_driver_conformance.py"
        )
    c = cls(tmp_path)
    try:
        yield c
    finally:
        for run in c.runs:
            run.task.cancel()
        await asyncio.gather(*(run.task for run in c.runs), return_exceptions=True)
        await c.close()


def test_every_case_is_a_registered_driver() -> None:
    assert set(CASES) <= set(DRIVERS), set(CASES) - set(DRIVERS)
    for name, cls in CASES.items():
        assert cls.offline, f"{name}: say how a peer that went away is reported"


async def test_starts_produces_and_stops(case: Case, tmp_path: Path) -> None:
    await case.start_peer()
    driver = build(case, case.options(), tmp_path)
    assert type(driver) is DRIVERS[case.name]
    run = Running(case, driver, RecordingSink())
    await case.produce(run)
    took = await run.stop()
    assert took <= STOP_BOUND_S
    await case.stopped(driver)


@pytest.mark.parametrize("which", ["unknown key", "invalid value"])
async def test_config_errors_name_the_key(case: Case, tmp_path: Path, which: str) -> None:
    # built in the event loop, as the agent builds them (the Modbus client needs one)
    build(case, case.options(), tmp_path)  # the valid config builds
    if which == "unknown key":
        key, options = UNKNOWN_KEY, {**case.options(), UNKNOWN_KEY: 1}
    else:
        key, value = case.bad_value
        assert key in DRIVERS[case.name].Options.model_fields, key
        options = {**case.options(), key: value}
    with pytest.raises(ConfigError) as refused:
        build(case, options, tmp_path)
    text = str(refused.value)
    assert re.search(
        rf"devices\[0\] \({case.device}\)\.options: (.*; )?{re.escape(key)}: ", text
    ), text


def _validate(case: Case, sink: RecordingSink) -> int:
    """Each reading decoded as ingest decodes it; the number checked."""
    for seq, (values, ts) in enumerate(sink.readings, 1):
        raw = {"device": case.device, "profile": case.profile, "ts": ts, "seq": seq}
        item = CODEC.item_decoder.decode(msgspec.json.encode({**raw, "values": values}))
        assert CODEC.item_by_class[type(item)] == case.profile
    for seq, (worker, direction, method, ts) in enumerate(sink.gates, 1):
        contract.attendance_item_decoder.decode(
            msgspec.json.encode(
                {
                    "device": case.device,
                    "ts": ts,
                    "seq": seq,
                    "worker": worker,
                    "direction": direction,
                    "method": method,
                }
            )
        )
    for seq, event in enumerate(sink.camera, 1):
        contract.camera_item_decoder.decode(
            msgspec.json.encode({"device": case.device, "seq": seq, **event})
        )
    return sink.produced()


async def test_readings_validate_against_their_profile(case: Case, tmp_path: Path) -> None:
    await case.start_peer()
    run = Running(case, build(case, case.options(), tmp_path), RecordingSink())
    await case.produce(run)
    await run.stop()
    assert _validate(case, run.sink) >= 1


async def test_a_peer_that_disappears_is_reported(
    case: Case, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await case.start_peer()
    run = Running(case, build(case, case.options(), tmp_path), RecordingSink())
    await case.peer_gone(run, caplog)
    await run.stop()
    _validate(case, run.sink)


async def test_garbage_from_the_peer_raises_nothing(case: Case, tmp_path: Path) -> None:
    if isinstance(case, CameraCase):
        await case.garbage_peer()
    run = Running(case, build(case, case.options(), tmp_path), RecordingSink())
    await case.garbage(run)
    await run.stop()
    _validate(case, run.sink)


async def test_a_camera_that_comes_back_after_offline_goes_on(tmp_path: Path) -> None:
    """The camera's peer can come back: frames slower than ``health.offline_s`` make it
    go offline between frames and back at each frame, people count unchanged (0). The
    driver reports both and goes on to the end of the video (it used to fail on the
    first frame after an offline: the count's debouncer lost its start time)."""
    case = CameraCase(tmp_path)
    await case.start_peer()
    options = {
        **case.options(),
        "analysis_fps": 2,  # a frame every 0.5 s
        "analytics": {"person_count": {}},
        "health": {"offline_s": 0.3},
    }
    run = Running(case, build(case, options, tmp_path), RecordingSink())
    try:
        driver = run.driver
        assert isinstance(driver, CameraDriver)
        # the file plays 2 s: 4 analysed frames, each after an offline
        await wait_for(
            lambda: run.alive() and driver.frames >= 4,
            timeout=10,
            what=lambda: f"the video played to its end ({driver.frames} frames)",
        )
        online = [v["online"] for v, _ in run.sink.readings]
        assert False in online and True in online[online.index(False) :], online
        await run.stop()
    finally:
        for r in case.runs:
            r.task.cancel()
        await asyncio.gather(*(r.task for r in case.runs), return_exceptions=True)
    _validate(case, run.sink)

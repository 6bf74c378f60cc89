"""Fixtures: real Mosquitto, InfluxDB and PostgreSQL on free loopback ports.

Servers are started by the suite and stopped after it. Session-wide servers are shared
and every test gets its own topic prefix and InfluxDB database (as aiomqtt's suite uses
a unique topic per test); tests that kill or restart a server get their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest
import yaml

from alerts.service import AlertService
from edge.agent import Agent
from edge.config import DeviceConfig, EdgeSettings, PublishSettings
from ingest.config import IngestSettings
from ingest.service import Ingest
from sitewatch.core.influx import InfluxClient, InfluxSettings
from sitewatch.core.mqtt import MqttSettings
from sitewatch.domains.alertrecords.model import AlertEvent, EventKind, Level, State
from sitewatch.domains.alertrecords.settings import AlertSettings
from sitewatch.programs.localstack import InfluxServer, MosquittoServer, PostgresServer

Server = TypeVar("Server", MosquittoServer, InfluxServer, PostgresServer)


def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    yield from running(MosquittoServer(tmp_path_factory.mktemp("mosquitto")))


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    yield from running(InfluxServer(tmp_path_factory.mktemp("influxdb")))


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    yield from running(PostgresServer(tmp_path_factory.mktemp("postgres")))


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[MosquittoServer]:
    """A broker of this test's own, for tests that kill or restart it."""
    yield from running(MosquittoServer(tmp_path / "mosquitto"))


@pytest.fixture
def own_influxdb(tmp_path: Path) -> Iterator[InfluxServer]:
    """An InfluxDB of this test's own, for tests that stop or stall it."""
    yield from running(InfluxServer(tmp_path / "influxdb"))


@pytest.fixture
def unique() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def prefix(unique: str) -> str:
    return f"test/{unique}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[str]:
    """The relational store, once on SQLite and once on a database of its own in the
    suite's real PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sitewatch.db'}"
        return
    from sqlalchemy import create_engine, text

    postgres: PostgresServer = request.getfixturevalue("postgres")
    admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{unique}"'))
    admin.dispose()
    yield postgres.url.rsplit("/", 1)[0] + f"/{unique}"


def mqtt_settings(server: MosquittoServer, prefix: str) -> MqttSettings:
    return MqttSettings(host=server.host, port=server.port, topic_prefix=prefix)


def ingest_settings(
    mq: MosquittoServer, influx: InfluxServer, prefix: str, db: str, database_url: str, **extra: Any
) -> IngestSettings:
    return IngestSettings(
        # a broker with accounts: the test passes MqttSettings with ingest's credentials
        mqtt=extra.pop("mqtt", None) or mqtt_settings(mq, prefix),
        influx=InfluxSettings(url=influx.url, database=db),
        database_url=database_url,
        client_id=f"ingest-{db}",
        flush_interval_s=0.05,
        stats_interval_s=3600,
        **extra,
    )


class RunningIngest:
    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.service: Ingest | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Ingest:
        self.service = Ingest(self.settings)
        self.task = asyncio.create_task(self.service.run())
        await wait_for(
            lambda: self.service is not None and self.service.connected.is_set(),
            timeout=15,
            what="ingest connected",
        )
        return self.service

    async def stop(self) -> None:
        if self.service is not None and self.task is not None:
            self.service.stop()
            await asyncio.wait_for(self.task, 20)
            self.task = None

    async def kill(self) -> None:
        """Abrupt stop: nothing drained, nothing acknowledged that was not yet."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None


@pytest.fixture
async def start_ingest(
    mosquitto: MosquittoServer,
    influxdb: InfluxServer,
    prefix: str,
    unique: str,
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[RunningIngest]]]:
    running: list[RunningIngest] = []

    async def start(**extra: Any) -> RunningIngest:
        mq = extra.pop("mqtt_server", mosquitto)
        influx = extra.pop("influx_server", influxdb)
        db_url = extra.pop("database_url", f"sqlite:///{tmp_path / 'sitewatch.db'}")
        settings = ingest_settings(mq, influx, prefix, unique, db_url, **extra)
        r = RunningIngest(settings)
        await r.start()
        running.append(r)
        return r

    yield start
    for r in running:
        await r.kill()


class RunningAlerts:
    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings
        self.service = AlertService(settings)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> AlertService:
        self.task = asyncio.create_task(self.service.run())
        await wait_for(self.service.connected.is_set, timeout=15, what="alerts connected")
        return self.service

    async def stop(self) -> None:
        if self.task is not None:
            self.service.stop()
            await asyncio.wait_for(self.task, 20)
            self.task = None


@pytest.fixture
async def start_alerts(
    mosquitto: MosquittoServer,
    influxdb: InfluxServer,
    prefix: str,
    unique: str,
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[RunningAlerts]]]:
    """The alert service in this process, on the test's prefix and InfluxDB database."""
    running: list[RunningAlerts] = []

    async def start(**extra: Any) -> RunningAlerts:
        settings = AlertSettings(
            mqtt=mqtt_settings(extra.pop("mqtt_server", mosquitto), prefix),
            influx=InfluxSettings(url=influxdb.url, database=unique),
            database_url=extra.pop("database_url", f"sqlite:///{tmp_path / 'alerts.db'}"),
            client_id=f"alerts-{unique}",
            tick_s=0.2,
            stats_interval_s=3600,
            **extra,
        )
        r = RunningAlerts(settings)
        await r.start()
        running.append(r)
        return r

    yield start
    for r in running:
        if r.task is not None:
            r.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await r.task


@pytest.fixture
async def influx_client(influxdb: InfluxServer, unique: str) -> AsyncIterator[InfluxClient]:
    client = InfluxClient(InfluxSettings(url=influxdb.url, database=unique))
    await client.ensure_database()
    yield client
    await client.aclose()


async def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str | Callable[[], str] = "condition",
) -> Any:
    """Poll a sync or async predicate until it is truthy; fail with ``what`` (a text, or
    a function giving one, for a report of the state at the time of failure)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    text = what() if callable(what) else what
    pytest.fail(f"timed out after {timeout}s waiting for {text} (last: {last!r})")


async def wait_listening(
    port: int,
    *,
    host: str = "127.0.0.1",
    timeout: float = 15,
    server: asyncio.Task[Any] | None = None,
    what: str = "server",
) -> None:
    """Wait until a TCP server started in the test answers on ``port`` (a connection is
    accepted, then closed without a byte): instead of sleeping and hoping it is up.
    Fails at once, with its exception, if the ``server`` task ended meanwhile."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if server is not None and server.done():
            pytest.fail(
                f"{what} ended before it listened on {host}:{port}: "
                f"{server.exception() if not server.cancelled() else 'cancelled'}"
            )
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
        except (OSError, TimeoutError) as exc:
            last = exc
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    pytest.fail(f"{what} did not listen on {host}:{port} within {timeout}s ({last!r})")


def count_ticks(service: AlertService) -> list[int]:
    """Record the time of every tick of the alert service's engine, from now on: a test
    can then wait until the service has ticked past a moment (a grace time, a silence
    interval) instead of sleeping for it. A tick's changes are committed before the
    next tick starts."""
    ticks: list[int] = []
    tick = service.engine.tick

    def counted(now: int) -> Any:
        changes = tick(now)
        ticks.append(now)
        return changes

    service.engine.tick = counted  # type: ignore[method-assign]
    return ticks


async def seqs_by_device(client: InfluxClient, measurement: str = "/.*/") -> dict[str, list[int]]:
    rows = await client.series(f'SELECT "seq" FROM {measurement} GROUP BY "device"')
    out: dict[str, list[int]] = {}
    for row in rows:
        out.setdefault(row["device"], []).append(int(row["seq"]))
    return {k: sorted(v) for k, v in out.items()}


# -- edge agents in-process --------------------------------------------------------

DEVICES = [
    DeviceConfig(id="TC01", driver="simulated", profile="tower_crane", interval_s=0.02),
    DeviceConfig(id="ENV01", driver="simulated", profile="environment", interval_s=0.05),
    DeviceConfig(id="PIT01", driver="simulated", profile="foundation_pit", interval_s=0.1),
]


def edge_settings(server: MosquittoServer, prefix: str, state: Path) -> EdgeSettings:
    return EdgeSettings(
        site="S1",
        gateway="GW1",
        state_dir=state,
        mqtt=MqttSettings(host=server.host, port=server.port, topic_prefix=prefix),
        publish=PublishSettings(
            max_batch_items=50,
            max_batch_delay_s=0.2,
            ack_timeout_s=2,
            backlog_batches_per_s=50,
            health_interval_s=1,
        ),
        devices=DEVICES,
    )


def one_device_settings(
    server: MosquittoServer, prefix: str, state: Path, device: DeviceConfig
) -> EdgeSettings:
    """An agent with one (pushing) device and no health readings in the way."""
    return EdgeSettings(
        site="S1",
        gateway="GW1",
        state_dir=state,
        mqtt=MqttSettings(host=server.host, port=server.port, topic_prefix=prefix),
        publish=PublishSettings(max_batch_delay_s=0.2, health_interval_s=3600),
        devices=[device],
    )


class RunningAgent:
    def __init__(self, settings: EdgeSettings) -> None:
        self.agent = Agent(settings)
        self.task = asyncio.create_task(self.agent.run())

    async def stop(self) -> dict[str, int]:
        self.agent.stop()
        await asyncio.wait_for(self.task, 20)
        return self.agent.spool.last_seqs()


@pytest.fixture
async def agent_factory() -> AsyncIterator[Callable[[EdgeSettings], RunningAgent]]:
    started: list[RunningAgent] = []

    def start(settings: EdgeSettings) -> RunningAgent:
        r = RunningAgent(settings)
        started.append(r)
        return r

    yield start
    for r in started:
        if not r.task.done():
            r.task.cancel()


def expected(last: dict[str, int]) -> dict[str, list[int]]:
    return {device: list(range(1, n + 1)) for device, n in last.items()}


async def assert_seqs_exactly_once(
    client: InfluxClient, last: dict[str, int], timeout: float = 20
) -> None:
    """Wait until InfluxDB holds seq 1..N for every device, each once; else say what differs."""
    want = expected(last)
    deadline = asyncio.get_running_loop().time() + timeout
    got: dict[str, list[int]] = {}
    while asyncio.get_running_loop().time() < deadline:
        got = await seqs_by_device(client)
        if got == want:
            return
        await asyncio.sleep(0.2)
    report = {
        d: {
            "missing": sorted(set(w) - set(got.get(d, [])))[:20],
            "unexpected": sorted(set(got.get(d, [])) - set(w))[:20],
            "duplicates": len(got.get(d, [])) - len(set(got.get(d, []))),
        }
        for d, w in want.items()
    }
    pytest.fail(f"seq invariant broken: {report}")


def now_ms() -> int:
    return int(time.time() * 1000)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def started_api(config: dict[str, Any], folder: Path, *, ready: str = "/health") -> Iterator[str]:
    """A real ``sitewatch api`` process with ``config`` (its ``port`` on 127.0.0.1), its
    configuration and log in ``folder``; yields its base URL once ``ready`` answers 200
    and stops it afterwards."""
    conf = folder / "api.yaml"
    conf.write_text(yaml.safe_dump(config))
    log = folder / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "sitewatch"), "api", "-c", str(conf)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{config['port']}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + ready, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def make_event(**changes: Any) -> AlertEvent:
    """An alert event to build messages from: a crane's moment alarm, with ``changes``."""
    event = AlertEvent(
        event=EventKind.RAISED,
        at=1714543385000,  # 2024-05-01 06:03:05 UTC
        actor="sitewatch",
        id="A-SITE01-0001",
        site="SITE01",
        gateway="GW01",
        device="TC01",
        profile="tower_crane",
        rule="moment_alarm",
        group="moment",
        severity="alarm",
        level=Level.SITE,
        state=State.ACTIVE,
        late=False,
        title="Moment overload",
        value=104.5,
        limit=100.0,
        raised_at=1714543385000,
    )
    return msgspec.structs.replace(event, **changes)

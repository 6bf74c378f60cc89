"""Fixtures: real Mosquitto, InfluxDB and PostgreSQL on free loopback ports.

Servers are started by the suite and stopped after it. Session-wide servers are shared
and every test gets its own topic prefix and InfluxDB database (as aiomqtt's suite uses
a unique topic per test); tests that kill or restart a server get their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sitewatch.ingest.config import IngestSettings
from sitewatch.ingest.service import Ingest

from sitewatch.influx import InfluxClient, InfluxSettings
from sitewatch.localstack import InfluxServer, MosquittoServer, PostgresServer
from sitewatch.mqtt import MqttSettings


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    server = InfluxServer(tmp_path_factory.mktemp("influxdb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[MosquittoServer]:
    """A broker of this test's own, for tests that kill or restart it."""
    server = MosquittoServer(tmp_path / "mosquitto")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def unique() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def prefix(unique: str) -> str:
    return f"test/{unique}"


def mqtt_settings(server: MosquittoServer, prefix: str) -> MqttSettings:
    return MqttSettings(host=server.host, port=server.port, topic_prefix=prefix)


def ingest_settings(mq: MosquittoServer, influx: InfluxServer, prefix: str, db: str,
                    database_url: str, **extra: Any) -> IngestSettings:
    return IngestSettings(
        mqtt=mqtt_settings(mq, prefix),
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
        await wait_for(lambda: self.service is not None and self.service.connected.is_set(),
                       timeout=15, what="ingest connected")
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
    mosquitto: MosquittoServer, influxdb: InfluxServer, prefix: str, unique: str,
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[RunningIngest]]]:
    running: list[RunningIngest] = []

    async def start(**extra: Any) -> RunningIngest:
        mq = extra.pop("mqtt_server", mosquitto)
        db_url = extra.pop("database_url", f"sqlite:///{tmp_path / 'sitewatch.db'}")
        settings = ingest_settings(mq, influxdb, prefix, unique, db_url, **extra)
        r = RunningIngest(settings)
        await r.start()
        running.append(r)
        return r

    yield start
    for r in running:
        await r.kill()


@pytest.fixture
async def influx_client(influxdb: InfluxServer, unique: str) -> AsyncIterator[InfluxClient]:
    client = InfluxClient(InfluxSettings(url=influxdb.url, database=unique))
    await client.ensure_database()
    yield client
    await client.aclose()


async def wait_for(predicate: Callable[[], Any], *, timeout: float = 10.0,
                   interval: float = 0.05, what: str = "condition") -> Any:
    """Poll a sync or async predicate until it is truthy; fail with ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


async def seqs_by_device(client: InfluxClient, measurement: str = "/.*/") -> dict[str, list[int]]:
    rows = await client.series(f'SELECT "seq" FROM {measurement} GROUP BY "device"')
    out: dict[str, list[int]] = {}
    for row in rows:
        out.setdefault(row["device"], []).append(int(row["seq"]))
    return {k: sorted(v) for k, v in out.items()}


def now_ms() -> int:
    return int(time.time() * 1000)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False

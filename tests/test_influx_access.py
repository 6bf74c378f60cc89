"""InfluxDB that refuses the installation, not the data: a token or password it does not
accept (401), or a database that is not there (404). Every reading is held (in ingest,
the broker and the gateways' spools), nothing is dead-lettered, the error says what to
fix, and once it is fixed each reading is stored exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from conftest import (
    RunningAgent,
    RunningIngest,
    assert_seqs_exactly_once,
    edge_settings,
    ingest_settings,
    wait_for,
)
from pydantic import SecretStr

from edge.config import EdgeSettings
from sitewatch.core.influx import InfluxAccessError, InfluxClient, InfluxSettings
from sitewatch.programs.localstack import InfluxServer, MosquittoServer

pytestmark = pytest.mark.integration

ADMIN, PASSWORD = "admin", "the-right-password-0123456789"


@pytest.fixture
async def influx_with_auth(tmp_path: Path) -> AsyncIterator[InfluxServer]:
    server = InfluxServer(tmp_path / "influx-auth", auth_enabled=True)
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            # the first user of an InfluxDB 1.x with auth on may be created without one
            r = await http.post(
                "/query",
                data={"q": f"CREATE USER {ADMIN} WITH PASSWORD '{PASSWORD}' WITH ALL PRIVILEGES"},
            )
            assert r.status_code == 200, r.text
        yield server
    finally:
        server.stop()


async def test_a_refused_token_is_an_access_error_that_names_what_to_fix(
    influx_with_auth: InfluxServer,
) -> None:
    line = b"m,device=D1 v=1 1700000000000\n"
    settings = InfluxSettings(
        url=influx_with_auth.url, database="sitewatch", token=SecretStr("sitewatch-dev-token")
    )
    async with InfluxClient(settings) as client:
        with pytest.raises(InfluxAccessError) as refused:
            await client.write(line)
    assert refused.value.status == 401
    assert "INFLUX_TOKEN" in str(refused.value)
    settings = InfluxSettings(
        url=influx_with_auth.url, database="nowhere", username=ADMIN, password=SecretStr(PASSWORD)
    )
    async with InfluxClient(settings) as client:
        with pytest.raises(InfluxAccessError) as missing:
            await client.write(line)
    assert missing.value.status == 404
    assert "'nowhere' not found" in str(missing.value)


async def _held_then_stored(
    ingest: RunningIngest,
    running: RunningAgent,
    fix: Callable[[], Awaitable[RunningIngest]],
    client: InfluxClient,
) -> None:
    service = ingest.service
    assert service is not None
    # a positive marker: ingest has had its writes refused at least twice
    await wait_for(
        lambda: service.stats.write_access_errors >= 2,
        timeout=30,
        what=lambda: f"access errors: {service.stats.summary()}",
    )
    assert service.stats.items_stored == 0
    assert not service.stats.rejected, service.stats.rejected  # nothing dead-lettered
    assert running.agent.spool.depth() > 0  # the gateway still holds its readings
    fixed = await fix()
    assert fixed.service is not None
    await wait_for(
        lambda: fixed.service is not None and fixed.service.stats.items_stored > 0,
        timeout=30,
        what="stored after the fix",
    )
    last = await running.stop()
    await assert_seqs_exactly_once(client, last, timeout=40)
    assert not fixed.service.stats.rejected, fixed.service.stats.rejected


async def test_a_missing_database_holds_every_reading_until_it_exists(
    mosquitto: MosquittoServer,
    influxdb: InfluxServer,
    prefix: str,
    unique: str,
    tmp_path: Path,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    settings = ingest_settings(
        mosquitto, influxdb, prefix, unique, f"sqlite:///{tmp_path / 'sitewatch.db'}"
    )
    settings.influx.create_database = False
    ingest = RunningIngest(settings)
    await ingest.start()
    client = InfluxClient(InfluxSettings(url=influxdb.url, database=unique))
    try:
        running = agent_factory(edge_settings(mosquitto, prefix, tmp_path / "edge"))

        async def create_database() -> RunningIngest:
            await client.ensure_database()
            return ingest

        await _held_then_stored(ingest, running, create_database, client)
    finally:
        await ingest.stop()
        await client.aclose()


async def test_a_wrong_password_holds_every_reading_until_ingest_has_the_right_one(
    mosquitto: MosquittoServer,
    influx_with_auth: InfluxServer,
    prefix: str,
    unique: str,
    tmp_path: Path,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    right = InfluxSettings(
        url=influx_with_auth.url, database=unique, username=ADMIN, password=SecretStr(PASSWORD)
    )
    client = InfluxClient(right)
    await client.ensure_database()
    db = f"sqlite:///{tmp_path / 'sitewatch.db'}"
    wrong = ingest_settings(mosquitto, influx_with_auth, prefix, unique, db)
    wrong.influx = InfluxSettings(
        url=influx_with_auth.url,
        database=unique,
        username=ADMIN,
        password=SecretStr("an-old-password"),
        create_database=False,
    )
    first = RunningIngest(wrong)
    await first.start()
    second: RunningIngest | None = None
    try:
        running = agent_factory(edge_settings(mosquitto, prefix, tmp_path / "edge"))

        async def restart_with_the_right_password() -> RunningIngest:
            nonlocal second
            await first.kill()  # what it held was never acknowledged: the broker resends
            fixed = ingest_settings(mosquitto, influx_with_auth, prefix, unique, db)
            fixed.influx = right
            second = RunningIngest(fixed)
            await second.start()
            return second

        await _held_then_stored(first, running, restart_with_the_right_password, client)
    finally:
        await first.kill()
        if second is not None:
            await second.stop()
        await client.aclose()

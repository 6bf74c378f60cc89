"""Simulated site -> edge -> Mosquitto -> ingest -> InfluxDB, with the seq invariant:
for every device the seq values stored are exactly 1..N, each once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from conftest import RunningIngest, seqs_by_device, wait_for
from sitewatch.edge.agent import Agent
from sitewatch.edge.config import DeviceConfig, EdgeSettings, PublishSettings

from sitewatch.influx import InfluxClient
from sitewatch.localstack import InfluxServer, MosquittoServer
from sitewatch.mqtt import MqttSettings

pytestmark = pytest.mark.integration

DEVICES = [
    DeviceConfig(id="TC01", driver="simulated", profile="tower_crane", interval_s=0.02),
    DeviceConfig(id="ENV01", driver="simulated", profile="environment", interval_s=0.05),
    DeviceConfig(id="PIT01", driver="simulated", profile="foundation_pit", interval_s=0.1),
]


def edge_settings(server: MosquittoServer, prefix: str, state: Path) -> EdgeSettings:
    return EdgeSettings(
        site="S1", gateway="GW1", state_dir=state,
        mqtt=MqttSettings(host=server.host, port=server.port, topic_prefix=prefix),
        publish=PublishSettings(max_batch_items=50, max_batch_delay_s=0.2, ack_timeout_s=2,
                                backlog_batches_per_s=50, health_interval_s=1),
        devices=DEVICES,
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


async def test_gateway_with_three_devices_stores_every_seq_once(
    start_ingest: Callable[..., Awaitable[RunningIngest]], mosquitto: MosquittoServer,
    prefix: str, influx_client: InfluxClient, tmp_path: Path,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    await start_ingest()
    running = agent_factory(edge_settings(mosquitto, prefix, tmp_path / "edge"))
    await asyncio.sleep(4)
    last = await running.stop()
    assert last["TC01"] > 100 and set(last) == {"TC01", "ENV01", "PIT01", "GW1"}
    await assert_seqs_exactly_once(influx_client, last)


async def assert_seqs_exactly_once(client: InfluxClient, last: dict[str, int],
                                   timeout: float = 20) -> None:
    """Wait until InfluxDB holds seq 1..N for every device, each once; else say what differs."""
    want = expected(last)
    deadline = asyncio.get_running_loop().time() + timeout
    got: dict[str, list[int]] = {}
    while asyncio.get_running_loop().time() < deadline:
        got = await seqs_by_device(client)
        if got == want:
            return
        await asyncio.sleep(0.2)
    report = {d: {"missing": sorted(set(w) - set(got.get(d, [])))[:20],
                  "unexpected": sorted(set(got.get(d, [])) - set(w))[:20],
                  "duplicates": len(got.get(d, [])) - len(set(got.get(d, [])))}
              for d, w in want.items()}
    pytest.fail(f"seq invariant broken: {report}")


async def test_ingest_killed_and_restarted_while_gateway_publishes_loses_nothing(
    mosquitto: MosquittoServer, influxdb: InfluxServer, prefix: str, unique: str,
    influx_client: InfluxClient, tmp_path: Path,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    env = {
        **os.environ,
        "SITEWATCH_INGEST_MQTT__PORT": str(mosquitto.port),
        "SITEWATCH_INGEST_MQTT__TOPIC_PREFIX": prefix,
        "SITEWATCH_INGEST_INFLUX__URL": influxdb.url,
        "SITEWATCH_INGEST_INFLUX__DATABASE": unique,
        "SITEWATCH_INGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'dl.db'}",
        "SITEWATCH_INGEST_CLIENT_ID": f"ingest-{unique}",
        "SITEWATCH_INGEST_FLUSH_INTERVAL_S": "0.05",
    }

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "sitewatch.cli", "ingest"], env=env,
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "ingest.log", "ab"))

    ingest = spawn()
    try:
        await wait_for(lambda: b"connected" in (tmp_path / "ingest.log").read_bytes(),
                       timeout=20, what="ingest subprocess connected")
        running = agent_factory(edge_settings(mosquitto, prefix, tmp_path / "edge"))
        await asyncio.sleep(2)
        ingest.send_signal(signal.SIGKILL)  # a crash: nothing drained, nothing said
        ingest.wait(10)
        stored_at_kill = sum(map(len, (await seqs_by_device(influx_client)).values()))
        await asyncio.sleep(3)  # the gateway keeps publishing; the broker queues for ingest
        ingest = spawn()
        await asyncio.sleep(3)
        last = await running.stop()
        await assert_seqs_exactly_once(influx_client, last)
        assert stored_at_kill > 0
        assert sum(last.values()) > stored_at_kill + 100, "the gap was really refilled"
    finally:
        ingest.kill()
        ingest.wait(10)

"""Simulated site -> edge -> Mosquitto -> ingest -> InfluxDB, with the seq invariant:
for every device the seq values stored are exactly 1..N, each once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import (
    RunningAgent,
    RunningIngest,
    assert_seqs_exactly_once,
    edge_settings,
    seqs_by_device,
    wait_for,
)

from edge.config import EdgeSettings
from sitewatch.core.influx import InfluxClient
from sitewatch.programs.localstack import InfluxServer, MosquittoServer

pytestmark = pytest.mark.integration


async def test_gateway_with_three_devices_stores_every_seq_once(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
    tmp_path: Path,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    await start_ingest()
    running = agent_factory(edge_settings(mosquitto, prefix, tmp_path / "edge"))
    # as long as the gateway takes to give out 100 seqs and one of each device, not 4 s
    await wait_for(
        lambda: (
            running.agent.spool.last_seqs().get("TC01", 0) > 100
            and set(running.agent.spool.last_seqs()) >= {"TC01", "ENV01", "PIT01", "GW1"}
            and running.agent.batches_acked > 0
        ),
        timeout=30,
        what=lambda: f"readings given out: {running.agent.spool.last_seqs()}",
    )
    last = await running.stop()
    assert last["TC01"] > 100 and set(last) == {"TC01", "ENV01", "PIT01", "GW1"}
    await assert_seqs_exactly_once(influx_client, last)


async def test_ingest_killed_and_restarted_while_gateway_publishes_loses_nothing(
    mosquitto: MosquittoServer,
    influxdb: InfluxServer,
    prefix: str,
    unique: str,
    influx_client: InfluxClient,
    tmp_path: Path,
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
        return subprocess.Popen(
            [sys.executable, "-m", "sitewatch.programs.cli", "ingest"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "ingest.log", "ab"),
        )

    ingest = spawn()
    try:
        await wait_for(
            lambda: b"connected" in (tmp_path / "ingest.log").read_bytes(),
            timeout=20,
            what="ingest subprocess connected",
        )
        running = agent_factory(edge_settings(mosquitto, prefix, tmp_path / "edge"))
        await wait_for(
            lambda: running.agent.batches_acked > 3,
            timeout=30,
            what="batches acknowledged before the crash",
        )
        ingest.send_signal(signal.SIGKILL)  # a crash: nothing drained, nothing said
        ingest.wait(10)
        stored_at_kill = sum(map(len, (await seqs_by_device(influx_client)).values()))
        await asyncio.sleep(3)  # the gateway keeps publishing; the broker queues for ingest
        acked = running.agent.batches_acked
        ingest = spawn()
        # the new ingest acknowledges, and the gateway has given out 100 readings more
        # than were stored at the kill
        await wait_for(
            lambda: (
                running.agent.batches_acked > acked + 3
                and sum(running.agent.spool.last_seqs().values()) > stored_at_kill + 100
            ),
            timeout=60,
            what="the restarted ingest acknowledging",
        )
        last = await running.stop()
        await assert_seqs_exactly_once(influx_client, last)
        assert stored_at_kill > 0
        assert sum(last.values()) > stored_at_kill + 100, "the gap was really refilled"
    finally:
        ingest.kill()
        ingest.wait(10)

"""Outages the gateway must ride out without losing or duplicating a reading.

The outage lasts ``SITEWATCH_TEST_OUTAGE_S`` seconds (default 8, to keep the suite fast;
run with e.g. 240 to see minutes-long outages).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from conftest import (
    RunningAgent,
    RunningIngest,
    assert_seqs_exactly_once,
    edge_settings,
    seqs_by_device,
    wait_for,
)

from edge.config import EdgeSettings, PublishSettings, SpoolSettings
from sitewatch.core import contract
from sitewatch.core.influx import InfluxClient, InfluxSettings
from sitewatch.programs.localstack import InfluxServer, MosquittoServer

pytestmark = pytest.mark.integration
OUTAGE_S = float(os.environ.get("SITEWATCH_TEST_OUTAGE_S", "8"))


async def _latest_ts(client: InfluxClient, device: str) -> int:
    rows = await client.series(f"SELECT last(seq) FROM /.*/ WHERE device = '{device}'")
    return max((int(r["time"]) for r in rows), default=0)


async def test_ingest_down_spool_grows_then_drains_and_live_data_comes_first(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
    tmp_path: Path,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    ingest = await start_ingest()
    settings = edge_settings(mosquitto, prefix, tmp_path / "edge")
    running = agent_factory(settings)
    await wait_for(
        lambda: running.agent.batches_acked > 3,
        timeout=30,
        what="batches acknowledged before the outage",
    )
    await ingest.kill()
    depth_at_stop = running.agent.spool.readings_waiting()
    await asyncio.sleep(OUTAGE_S)
    # the outage lasts until the devices have produced that much (the nominal rate is
    # 80 readings a second): a busy machine makes it longer, not the check false
    await wait_for(
        lambda: running.agent.spool.readings_waiting() > depth_at_stop + 50 * OUTAGE_S,
        timeout=60,
        what="readings piling up in the spool",
    )
    grown = running.agent.spool.readings_waiting()
    assert grown > depth_at_stop + 50 * OUTAGE_S, "readings pile up in the spool"
    back = int(time.time() * 1000)
    t0 = time.monotonic()
    await start_ingest()
    # a reading taken after ingest came back is stored within seconds, backlog or not
    await wait_for(
        lambda: _newer(influx_client, "TC01", back), timeout=15, what="a live reading stored"
    )
    live_latency = time.monotonic() - t0
    await wait_for(
        lambda: running.agent.spool.readings_waiting() < 200, timeout=60, what="the backlog drained"
    )
    last = await running.stop()
    await assert_seqs_exactly_once(influx_client, last, timeout=30)
    print(
        f"outage {OUTAGE_S:.0f}s: spool grew to {grown} readings; live data stored "
        f"{live_latency:.1f}s after ingest returned"
    )
    assert live_latency < 10


async def _newer(client: InfluxClient, device: str, after_ms: int) -> bool:
    return await _latest_ts(client, device) >= after_ms


async def test_influxdb_down_nothing_acked_nothing_lost(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    own_influxdb: InfluxServer,
    prefix: str,
    unique: str,
    tmp_path: Path,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    ingest = (await start_ingest(influx_server=own_influxdb)).service
    assert ingest is not None
    influx = InfluxClient(InfluxSettings(url=own_influxdb.url, database=unique))
    running = agent_factory(edge_settings(mosquitto, prefix, tmp_path / "edge"))
    await wait_for(
        lambda: running.agent.batches_acked > 3,
        timeout=30,
        what="batches acknowledged before the outage",
    )
    own_influxdb.stop()
    # a write has failed: what was written before it has been acked
    await wait_for(
        lambda: ingest.stats.write_retries > 0, timeout=30, what="ingest's first failed write"
    )
    await asyncio.sleep(1)  # the ack of what was written last reaches the gateway
    acked = running.agent.batches_acked
    retries = ingest.stats.write_retries
    await asyncio.sleep(OUTAGE_S)
    # ingest has really tried again during the outage, and batches wait
    await wait_for(
        lambda: ingest.stats.write_retries >= retries + 2 and running.agent.spool.depth() > 5,
        timeout=60,
        what="ingest retrying while batches wait",
    )
    assert running.agent.batches_acked == acked, "nothing is acked while InfluxDB is down"
    assert running.agent.spool.depth() > 5
    own_influxdb.restart()
    await wait_for(
        lambda: running.agent.spool.depth() < 5,
        timeout=60,
        what="spool drained after InfluxDB returned",
    )
    last = await running.stop()
    await assert_seqs_exactly_once(influx, last, timeout=30)
    await influx.aclose()


@pytest.mark.parametrize("policy", ["drop_oldest", "refuse_newest"])
async def test_spool_limit_applies_the_documented_policy(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
    tmp_path: Path,
    policy: str,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    base = edge_settings(mosquitto, prefix, tmp_path / "edge")
    settings = base.model_copy(
        update={
            "spool": SpoolSettings(max_bytes=64 * 1024, policy=policy),  # type: ignore[arg-type]
            "publish": PublishSettings(
                max_batch_items=50,
                max_batch_delay_s=0.2,
                ack_timeout_s=2,
                status_interval_s=0.5,
                health_interval_s=3600,
            ),
            "devices": base.devices[:1],  # TC01 every 20 ms
        }
    )
    running = agent_factory(settings)  # no ingest yet: nothing is acknowledged
    await wait_for(
        lambda: running.agent.spool.dropped > 100, timeout=60, what="the spool overflowing"
    )
    status = await wait_for(
        lambda: _status(mosquitto, f"{prefix}/S1/GW1/status"),
        timeout=10,
        what="status reporting drops",
    )
    assert status.dropped > 100
    await start_ingest()
    await wait_for(lambda: running.agent.spool.depth() == 0, timeout=60, what="drained")
    dropped = running.agent.spool.dropped
    last = await running.stop()
    stored = (await seqs_by_device(influx_client))["TC01"]
    if policy == "refuse_newest":
        # refused readings never got a seq: what was stored is exactly 1..N
        assert stored == list(range(1, last["TC01"] + 1))
        assert running.agent.spool.dropped == dropped
    else:
        # the oldest were dropped: what was stored is exactly the newest k..N
        assert stored == list(range(stored[0], last["TC01"] + 1))
        assert stored[0] - 1 == dropped, "every dropped reading is counted"


def _status(server: MosquittoServer, topic: str) -> contract.Status | None:
    r = subprocess.run(
        [
            "mosquitto_sub",
            "-h",
            server.host,
            "-p",
            str(server.port),
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            "2",
        ],
        capture_output=True,
        timeout=10,
    )
    if r.returncode != 0 or not r.stdout:
        return None
    status = msgspec.json.decode(r.stdout.strip(), type=contract.Status)
    return status if status.dropped > 100 else None

"""The gateway's wall clock steps while the agent runs, and while it is stopped: real
agent, Mosquitto, ingest and InfluxDB; invariant I (per device, seq 1..N exactly once in
InfluxDB) holds and the correction is reported (docs/wire-contract.md#time).

The agent is given a wall clock the test can step (``Agent(wall_clock=...)``); ingest,
InfluxDB and the broker keep the machine's real clock, as the platform would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from conftest import (
    RunningAlerts,
    RunningIngest,
    assert_seqs_exactly_once,
    edge_settings,
    wait_for,
)
from test_alerts_e2e import AlertListener

from edge.agent import Agent
from sitewatch.core.influx import InfluxClient
from sitewatch.domains.deadletters import DeadLetterStore
from sitewatch.programs.localstack import MosquittoServer

pytestmark = pytest.mark.integration


class SteppedClock:
    """The machine's clock plus an offset the test sets."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> int:
        return time.time_ns() + int(self.offset_s * 1e9)


class AgentRun:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.task = asyncio.create_task(agent.run())

    async def stop(self) -> dict[str, int]:
        self.agent.stop()
        await asyncio.wait_for(self.task, 20)
        return self.agent.spool.last_seqs()


async def _gateway_health(client: InfluxClient) -> dict[str, float]:
    rows = await client.series(
        'SELECT last("clock_corrected") AS corrected, '
        'last("clock_offset_s") AS off, last("clock_steps") AS steps '
        'FROM "gateway"'
    )
    return (
        {k: float(v) for k, v in rows[0].items() if k != "time" and isinstance(v, int | float)}
        if rows
        else {}
    )


async def test_clock_back_20s_with_a_restart_keeps_every_reading_and_reports_it(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    start_alerts: Callable[..., Awaitable[RunningAlerts]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
    tmp_path: Path,
) -> None:
    await start_ingest()
    await start_alerts()
    wall = SteppedClock()
    settings = edge_settings(mosquitto, prefix, tmp_path / "edge")
    async with AlertListener(mosquitto, prefix) as alerts:
        first = AgentRun(Agent(settings, wall_clock=wall))
        await asyncio.sleep(3)
        await first.stop()
        wall.offset_s = -20.0  # stepped back while the agent was stopped
        second = AgentRun(Agent(settings, wall_clock=wall))
        # devices read every 20-100 ms: without a timeline that starts past the last
        # reading, many of the next 20 s of readings would land on taken timestamps
        clock = second.agent.clock
        await wait_for(
            lambda: clock.corrected > 100,
            timeout=30,
            what=lambda: f"readings stamped off the wall clock ({clock.corrected})",
        )
        await wait_for(
            lambda: alerts.kinds("GW1", "clock_behind") == ["raised"],
            timeout=15,
            what="the gateway clock alert",
        )
        await wait_for(
            lambda: _corrected_reported(influx_client),
            timeout=15,
            what="a health reading with readings stamped off the wall clock",
        )
        last = await second.stop()
    await assert_seqs_exactly_once(influx_client, last)
    health = await _gateway_health(influx_client)
    print(
        f"clock back 20 s + restart: {sum(last.values())} readings, "
        f"{clock.corrected} stamped off the wall clock, offset {clock.offset_s():+.2f} s, "
        f"health {health}"
    )
    assert clock.corrected > 100
    assert health["corrected"] > 0
    assert -20.5 < health["off"] < -19.5


async def test_a_short_step_forward_stores_every_reading_at_its_time(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
    tmp_path: Path,
) -> None:
    ingest = await start_ingest()
    wall = SteppedClock()
    settings = edge_settings(mosquitto, prefix, tmp_path / "edge")
    run = AgentRun(Agent(settings, wall_clock=wall))
    clock = run.agent.clock
    await wait_for(
        lambda: run.agent.batches_acked > 3, timeout=30, what="batches acknowledged before the step"
    )
    wall.offset_s = 330.0  # past ingest's max_future_s (300 s), for a few seconds
    await asyncio.sleep(3)
    await wait_for(lambda: clock.steps == 1, timeout=30, what="the step forward seen")
    wall.offset_s = 0.0
    await wait_for(
        lambda: clock.steps == 2 and clock.corrected > 0, timeout=30, what="the step back seen"
    )
    acked = run.agent.batches_acked
    await wait_for(
        lambda: run.agent.batches_acked > acked + 3,
        timeout=30,
        what="batches acknowledged after the step back",
    )
    last = await run.stop()
    await assert_seqs_exactly_once(influx_client, last)
    rows = DeadLetterStore(ingest.settings.database_url).recent(1000)
    newest = await influx_client.series('SELECT last("seq") FROM /.*/')
    print(
        f"330 s forward for 3 s: {sum(last.values())} readings, {clock.steps} steps, "
        f"{clock.corrected} corrected, {len(rows)} dead letters"
    )
    assert not rows, [r.reason for r in rows]
    assert clock.steps == 2
    assert clock.corrected > 0
    # nothing was stamped in the future
    assert max(int(r["time"]) for r in newest) <= time.time_ns() // 1_000_000


async def _corrected_reported(client: InfluxClient) -> bool:
    return (await _gateway_health(client)).get("corrected", 0) > 0

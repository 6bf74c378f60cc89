"""Faults the platform must ride out: a broker killed mid-stream, a gateway killed (its
Last Will), and an InfluxDB that stops answering (bounded work, nothing lost)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
import yaml
from conftest import (
    RunningAgent,
    RunningIngest,
    assert_seqs_exactly_once,
    edge_settings,
    now_ms,
    seqs_by_device,
    wait_for,
)

from edge.config import EdgeSettings
from sitewatch.core import contract, mqtt
from sitewatch.core.influx import InfluxClient, InfluxSettings
from sitewatch.programs.localstack import InfluxServer, MosquittoServer

pytestmark = pytest.mark.integration


async def test_broker_killed_mid_stream_loses_nothing(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    own_mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
    tmp_path: Path,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    await start_ingest(mqtt_server=own_mosquitto)
    running = agent_factory(edge_settings(own_mosquitto, prefix, tmp_path / "edge"))
    await wait_for(
        lambda: running.agent.batches_acked > 3,
        timeout=30,
        what="batches acknowledged before the kill",
    )
    own_mosquitto.kill()  # SIGKILL: its in-memory queues and unsaved session state are gone
    await asyncio.sleep(2)  # devices keep producing into the spool
    own_mosquitto.restart()
    await wait_for(lambda: running.agent.connected.is_set(), timeout=30, what="edge reconnected")
    acked = running.agent.batches_acked
    await wait_for(
        lambda: running.agent.batches_acked > acked + 3,
        timeout=30,
        what="batches acknowledged through the restarted broker",
    )
    last = await running.stop()
    await assert_seqs_exactly_once(influx_client, last, timeout=40)


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
            "-v",
        ],
        capture_output=True,
        timeout=10,
    )
    if r.returncode != 0 or not r.stdout:
        return None
    payload = r.stdout.split(b" ", 1)[1].strip()
    return msgspec.json.decode(payload, type=contract.Status)


async def test_last_will_carries_boot_and_a_restart_counts_up(
    own_mosquitto: MosquittoServer,
    prefix: str,
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "edge.yaml"
    settings = edge_settings(own_mosquitto, prefix, tmp_path / "state")
    cfg.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    topic = f"{prefix}/S1/GW1/status"

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "sitewatch.programs.cli", "edge", "-c", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("SITEWATCH_")},
        )

    edge = spawn()
    try:
        first = await wait_for(
            lambda: _online(own_mosquitto, topic), timeout=20, what="online status"
        )
        edge.send_signal(signal.SIGKILL)  # power cut: only the broker can speak for it now
        edge.wait(10)
        will = await wait_for(
            lambda: _state(own_mosquitto, topic, "offline"), timeout=20, what="Last Will"
        )
        assert will.boot == first.boot
        edge = spawn()
        second = await wait_for(
            lambda: _online(own_mosquitto, topic), timeout=20, what="online again"
        )
        assert second.boot == first.boot + 1
        edge.send_signal(signal.SIGTERM)  # a clean stop says offline itself
        assert edge.wait(20) == 0
        bye = await wait_for(
            lambda: _state(own_mosquitto, topic, "offline"), timeout=10, what="clean offline status"
        )
        assert bye.boot == second.boot
    finally:
        edge.kill()
        edge.wait(10)


def _online(server: MosquittoServer, topic: str) -> contract.Status | None:
    return _state(server, topic, "online")


def _state(server: MosquittoServer, topic: str, state: str) -> contract.Status | None:
    s = _status(server, topic)
    return s if s is not None and s.state == state else None


async def test_stalled_influxdb_bounds_work_and_loses_nothing(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    own_influxdb: InfluxServer,
    prefix: str,
    unique: str,
) -> None:
    receive_maximum, chunk_points, per_message = 20, 500, 50
    running = await start_ingest(
        influx_server=own_influxdb,
        receive_maximum=receive_maximum,
        write_batch_points=chunk_points,
        max_concurrent_writes=1,
    )
    assert running.service is not None and own_influxdb.proc is not None
    stats = running.service.stats
    influx = InfluxClient(InfluxSettings(url=own_influxdb.url, database=unique))
    os.kill(own_influxdb.proc.pid, signal.SIGSTOP)  # answers nothing, refuses nothing
    try:
        settings = mqtt.MqttSettings(host=mosquitto.host, port=mosquitto.port, topic_prefix=prefix)
        messages = 400
        async with mqtt.Client(settings, client_id=f"pub-{unique}") as pub:
            for b in range(1, messages + 1):
                items = [
                    contract.TelemetryItem(
                        device=f"D{d}",
                        profile="electrical",
                        ts=now_ms() - 10_000 + b,
                        seq=b,
                        values={"current_a": 1.5},
                    )
                    for d in range(per_message)
                ]
                await pub.publish(
                    f"{prefix}/S1/GW1/telemetry",
                    contract.encode(
                        contract.TelemetryBatchOut(v=1, batch=b, sent=now_ms(), items=items)
                    ),
                )
        # taken in: one chunk being written, one being filled, and what the broker may
        # have in flight to ingest (receive maximum); the rest waits at the broker. Not
        # a fixed wait (a slow machine would pass it having taken little): ingest has
        # taken the two chunks' worth that make it wait for the stalled write, and then
        # nothing more for a second
        full = 2 * (chunk_points // per_message)
        await wait_for(
            lambda: stats.messages >= full,
            timeout=30,
            what=lambda: (
                f"ingest took {stats.messages} of the {full} messages that fill two chunks"
            ),
        )
        await _settled(lambda: stats.messages, quiet_s=1.0, timeout=30)
        bound = 2 * (chunk_points // per_message + 1) + receive_maximum
        assert stats.messages <= bound, f"took {stats.messages} messages, bound {bound}"
        assert stats.items_stored == 0
    finally:
        os.kill(own_influxdb.proc.pid, signal.SIGCONT)
    seqs = await wait_for(
        lambda: _all_stored(influx, per_message, messages),
        timeout=60,
        what="everything stored after InfluxDB came back",
    )
    assert all(v == list(range(1, messages + 1)) for v in seqs.values())
    await influx.aclose()


async def _settled(value: Callable[[], int], *, quiet_s: float, timeout: float) -> None:
    """Wait until ``value`` has not changed for ``quiet_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, since = value(), loop.time()
    while loop.time() < deadline:
        await asyncio.sleep(0.05)
        now = value()
        if now != last:
            last, since = now, loop.time()
        elif loop.time() - since >= quiet_s:
            return
    raise AssertionError(f"still changing after {timeout}s (last {last})")


async def _all_stored(client: InfluxClient, devices: int, n: int) -> dict[str, list[int]] | None:
    try:
        seqs = await seqs_by_device(client)
    except Exception:
        return None
    ok = len(seqs) == devices and all(len(v) == n for v in seqs.values())
    return seqs if ok else None


async def test_dead_letter_store_outage_holds_the_ack_and_loses_nothing(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    unique: str,
    tmp_path: Path,
) -> None:
    import json

    from sitewatch.domains.deadletters import DeadLetterStore
    from sitewatch.programs.localstack import PostgresServer

    pg = PostgresServer(tmp_path / "pg")
    pg.start()
    try:
        running = await start_ingest(database_url=pg.url)
        assert running.service is not None
        acks: list[bytes] = []
        settings = mqtt.MqttSettings(host=mosquitto.host, port=mosquitto.port, topic_prefix=prefix)
        async with mqtt.Client(settings, client_id=f"acks-{unique}") as listener:
            await listener.subscribe(f"{prefix}/+/+/ack")

            async def collect() -> None:
                async for m in listener.messages():
                    acks.append(m.payload)

            task = asyncio.create_task(collect())
            pg.stop()  # the relational store goes away
            bad = {
                "v": 1,
                "batch": 5,
                "sent": now_ms(),
                "items": [
                    {
                        "device": "bad id",
                        "profile": "tower_crane",
                        "ts": now_ms(),
                        "seq": 1,
                        "values": {},
                    }
                ],
            }
            async with mqtt.Client(settings, client_id=f"pub-{unique}") as pub:
                await pub.publish(f"{prefix}/S1/GW1/telemetry", json.dumps(bad).encode())
            await wait_for(
                lambda: running.service and running.service.stats.dead_letter_retries,
                timeout=20,
                what="dead-letter retries",
            )
            assert acks == [], "no ack while the dead letter is not stored"
            pg.restart()
            await wait_for(lambda: acks, timeout=60, what="ack after the store came back")
            task.cancel()
        store = DeadLetterStore(pg.url)
        assert store.counts_by_reason() == {"bad_identifier": 1}
        store.dispose()
    finally:
        pg.close()


async def test_agent_killed_mid_stream_restarts_without_reusing_a_seq(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
    tmp_path: Path,
) -> None:
    import sqlite3

    await start_ingest()
    cfg = tmp_path / "edge.yaml"
    settings = edge_settings(mosquitto, prefix, tmp_path / "state")
    cfg.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITEWATCH_")}

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "sitewatch.programs.cli", "edge", "-c", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )

    async def tc01_stored() -> int:
        return max((await seqs_by_device(influx_client)).get("TC01", [0]))

    edge = spawn()
    try:
        # mid-stream: once readings are being stored, not after a guessed 3 s
        await wait_for(
            lambda: _above(tc01_stored(), 50), timeout=30, what="the first run's readings stored"
        )
        edge.send_signal(signal.SIGKILL)  # mid-stream: readings in flight, batches unacked
        edge.wait(10)
        edge = spawn()
        # the second run stores readings past the first's
        first = await tc01_stored()
        await wait_for(
            lambda: _above(tc01_stored(), max(first, 100) + 50),
            timeout=30,
            what="the second run's readings stored",
        )
        edge.send_signal(signal.SIGTERM)  # clean stop: drains what is spooled
        assert edge.wait(30) == 0
    finally:
        edge.kill()
        edge.wait(10)
    with sqlite3.connect(tmp_path / "state" / "spool.sqlite") as db:
        last = {
            name[4:]: int(v)
            for name, v in db.execute("SELECT name, value FROM counters WHERE name LIKE 'seq:%'")
        }
        assert db.execute("SELECT value FROM counters WHERE name='boot'").fetchone()[0] == 2
    assert last["TC01"] > 100
    await assert_seqs_exactly_once(influx_client, last, timeout=30)


async def _above(value: Awaitable[int], floor: int) -> bool:
    return await value > floor

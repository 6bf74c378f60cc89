"""The HJ 212 listener driver against real TCP peers (the shared vectors, a simulator)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from conftest import (
    RunningAgent,
    RunningIngest,
    assert_seqs_exactly_once,
    one_device_settings,
    wait_for,
    wait_listening,
)
from test_hj212 import field_vectors, vectors

from edge.config import DeviceConfig, EdgeSettings
from edge.drivers.base import Values
from edge.drivers.hj212 import Hj212Driver, Hj212Options
from simulators.hj212_monitor import run_monitor
from sitewatch.core.influx import InfluxClient
from sitewatch.core.profiles import load_profiles
from sitewatch.programs.localstack import MosquittoServer, free_port

MN = "ZHGD0001SITE00000000001A"


class CollectingSink:
    def __init__(self, accept: bool = True) -> None:
        self.readings: list[tuple[Values, int]] = []
        self.accept = accept

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def emit(self, values: Values, ts_ms: int) -> bool:
        if self.accept:
            self.readings.append((values, ts_ms))
        return self.accept

    async def durable(self) -> bool:
        return True


@pytest.fixture
async def driver() -> AsyncIterator[tuple[Hj212Driver, CollectingSink, int]]:
    port = free_port()
    d = Hj212Driver(
        "ENV01",
        load_profiles()["environment"],
        60,
        Hj212Options(mn=MN, host="127.0.0.1", port=port, password="123456"),
    )
    sink = CollectingSink()
    task = asyncio.create_task(d.run(sink))
    await wait_listening(port, server=task, what="the HJ 212 listener")
    yield d, sink, port
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _send(port: int, data: bytes, expect_reply: bool) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.readline(), 2 if expect_reply else 0.3)
    except TimeoutError:
        return b""
    finally:
        writer.close()


async def test_vector_stored_and_acknowledged(
    driver: tuple[Hj212Driver, CollectingSink, int],
) -> None:
    _, sink, port = driver
    reply = await _send(port, vectors()[1], expect_reply=True)
    assert reply == vectors()[2], "the CN=9014 ack of the shared vectors, byte for byte"
    values, ts = sink.readings[0]
    assert values == {
        "pm25": 35.2,
        "pm10": 78.0,
        "tsp": 156.0,
        "noise_dba": 62.5,
        "temp_c": 26.4,
        "rh_pct": 58.0,
        "pressure_kpa": 101.32,
        "wind_ms": 3.6,
        "wind_dir_deg": 135.0,
    }
    assert ts == 1717214400000  # 2024-06-01 12:00 in UTC+8


async def test_garbage_and_bad_crc_do_not_stop_the_listener(
    driver: tuple[Hj212Driver, CollectingSink, int],
) -> None:
    d, sink, port = driver
    bad_crc = vectors()[1].replace(b"78.0", b"79.0")
    r1, w1 = await asyncio.open_connection("127.0.0.1", port)
    w1.write(b"\x00\xffHELLO" + bad_crc + b"##12garbage\r\n")
    await w1.drain()
    # another monitor is served meanwhile
    assert await _send(port, vectors()[1], expect_reply=True) == vectors()[2]
    # and the noisy connection itself still works
    w1.write(vectors()[1])
    await w1.drain()
    assert await asyncio.wait_for(r1.readline(), 2) == vectors()[2]
    w1.close()
    c = d.listener.counters
    assert c["bad_crc"] == 1 and c["bad_frame"] == 1 and c["garbage_bytes"] >= 7
    assert c["acks"] == 2 and len(sink.readings) == 2


async def test_unknown_mn_wrong_password_and_no_ack_wanted(
    driver: tuple[Hj212Driver, CollectingSink, int],
) -> None:
    from edge.drivers.hj212 import protocol as hj212

    d, sink, port = driver
    other = vectors()[1].decode()[6:-6].replace(MN, "SOMEONE-ELSE")
    assert await _send(port, hj212.build_frame(other), expect_reply=False) == b""
    wrong_pw = vectors()[1].decode()[6:-6].replace("PW=123456", "PW=000000")
    assert await _send(port, hj212.build_frame(wrong_pw), expect_reply=False) == b""
    no_ack = vectors()[1].decode()[6:-6].replace("Flag=5", "Flag=4")
    assert await _send(port, hj212.build_frame(no_ack), expect_reply=False) == b""
    c = d.listener.counters
    assert c["unknown_mn"] == 1 and c["bad_password"] == 1 and len(sink.readings) == 1


async def test_no_ack_when_the_spool_refuses(tmp_path: Path) -> None:
    port = free_port()
    d = Hj212Driver(
        "ENV01",
        load_profiles()["environment"],
        60,
        Hj212Options(mn=MN, host="127.0.0.1", port=port),
    )
    task = asyncio.create_task(d.run(CollectingSink(accept=False)))
    await wait_listening(port, server=task, what="the HJ 212 listener")
    try:
        assert await _send(port, vectors()[1], expect_reply=False) == b""
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_simulated_monitor(driver: tuple[Hj212Driver, CollectingSink, int]) -> None:
    _, sink, port = driver
    stats = await run_monitor("127.0.0.1", port, mn=MN, count=5, interval_s=0.01)
    assert stats.acked == 5 and stats.resent == 0
    assert len(sink.readings) == 5
    assert len({ts for _, ts in sink.readings}) == 5
    assert all(set(v) >= {"pm10", "noise_dba", "tsp"} for v, _ in sink.readings)


async def test_field_packets_through_the_listener(
    driver: tuple[Hj212Driver, CollectingSink, int],
) -> None:
    """What field monitors send, over a real socket: no QN and no Flag (stored, no ack),
    QN and Flag=5 (stored, acknowledged with the vector), Flag=5 without QN (stored, no
    ack: counted), minute data without Flag; DataTime's milliseconds kept; a bad CRC
    refused and counted while the connection carries on."""
    d, sink, port = driver
    v = field_vectors()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            v["field-no-qn-no-flag-ms"]
            + v["field-bad-crc"]
            + v["field-no-qn-flag5"]
            + v["field-minute-no-flag"]
        )
        await writer.drain()
        await wait_for(lambda: len(sink.readings) == 3, what="three readings")
        writer.write(v["field-qn-ack-ms"])
        await writer.drain()
        # the only reply on this connection: the other packets got none
        assert await asyncio.wait_for(reader.readline(), 2) == v["field-ack"]
    finally:
        writer.close()
    assert sink.readings == [
        ({"pm25": 35.2, "pm10": 78.0, "noise_dba": 62.5}, 1717214400123),
        ({"pm10": 81.0}, 1717214410500),
        ({"pm10": 79.1, "noise_dba": 61.7}, 1717214400000),
        ({"pm10": 80.5, "noise_dba": 63.0}, 1717214405250),
    ]
    c = d.listener.counters
    assert (c["bad_crc"], c["no_qn_no_ack"], c["acks"], c["readings"]) == (1, 1, 1, 4)


async def test_values_that_are_not_numbers_are_counted(
    driver: tuple[Hj212Driver, CollectingSink, int],
) -> None:
    from edge.drivers.hj212 import protocol as hj212

    d, sink, port = driver
    seg = (
        f"QN=20240601120000000;ST=39;CN=2011;PW=123456;MN={MN};Flag=5;"
        "CP=&&DataTime=20240601120000;a34002-Rtd=nan;a34004-Rtd=1e999;LA-Rtd=1_0;"
        "a34001-Rtd=;a01001-Rtd=-3.5&&"
    )
    assert await _send(port, hj212.build_frame(seg), expect_reply=True)
    assert sink.readings == [({"temp_c": -3.5}, 1717214400000)]
    assert d.listener.counters["bad_value"] == 4


def test_driver_options_are_checked() -> None:
    prof = load_profiles()
    with pytest.raises(ValueError, match="not a field"):
        Hj212Driver("E", prof["environment"], 1, Hj212Options(mn="M", factors={"x": "nope"}))
    with pytest.raises(ValueError, match="no hj212 factor map"):
        Hj212Driver("C", prof["tower_crane"], 1, Hj212Options(mn="M"))


@pytest.mark.integration
async def test_monitor_to_influxdb_through_a_real_agent(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
    tmp_path: Path,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    await start_ingest()
    port = free_port()
    running = agent_factory(
        one_device_settings(
            mosquitto,
            prefix,
            tmp_path / "edge",
            DeviceConfig(
                id="ENV01",
                driver="hj212",
                profile="environment",
                options={"mn": MN, "host": "127.0.0.1", "port": port},
            ),
        )
    )
    await wait_for(lambda: running.agent.connected.is_set(), what="agent connected")
    stats = await run_monitor("127.0.0.1", port, mn=MN, count=8, interval_s=0.05)
    assert stats.acked == 8
    last = await running.stop()
    assert last == {"ENV01": 8}
    await assert_seqs_exactly_once(influx_client, last)
    rows = await influx_client.series('SELECT "pm10", "noise_dba" FROM environment')
    assert len(rows) == 8 and all(r["pm10"] > 0 and r["noise_dba"] > 0 for r in rows)


def test_listener_property_any_bytes_then_a_good_frame() -> None:
    """Arbitrary bytes (and the field packets cut anywhere) on one connection never stop
    the real listener: each time, a good frame sent afterwards, on a new connection, is
    stored and acknowledged, and no error escapes to the event loop."""
    import socket
    import threading

    from hypothesis import given, settings
    from hypothesis import strategies as st

    port = free_port()
    loop = asyncio.new_event_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    sink = CollectingSink()
    d = Hj212Driver(
        "ENV01",
        load_profiles()["environment"],
        60,
        Hj212Options(mn=MN, host="127.0.0.1", port=port, password="123456"),
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> asyncio.Task[None]:
        task = asyncio.create_task(d.run(sink))
        await wait_listening(port, server=task, what="the HJ 212 listener")
        return task

    task = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    field = b"".join(field_vectors().values())

    @settings(max_examples=150, deadline=None)
    @given(st.binary(max_size=500) | st.integers(0, len(field)).map(lambda n: field[:n]))
    def check(data: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(data)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(vectors()[1])
            assert s.makefile("rb").readline() == vectors()[2]
        assert errors == []

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    try:
        check()
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert d.listener.counters["acks"] >= 150

"""The HTTP push driver against a real HTTP client: auth, validation, durability."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    RunningAgent,
    RunningIngest,
    assert_seqs_exactly_once,
    one_device_settings,
    wait_for,
    wait_listening,
)

from edge.config import DeviceConfig, EdgeSettings
from edge.drivers.base import Values
from edge.drivers.http_push import HttpPushDriver, HttpPushListener, HttpPushOptions
from simulators.attendance_terminal import Terminal
from sitewatch.core.influx import InfluxClient
from sitewatch.core.profiles import load_profiles
from sitewatch.programs.localstack import MosquittoServer, free_port

TOKEN = "gate-01-secret-token"
PROFILES = load_profiles()


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.accept = True

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def emit(self, values: Values, ts_ms: int) -> bool:
        self.events.append(("reading", values, ts_ms))
        return self.accept

    def emit_attendance(self, worker: str, direction: str, method: str, ts_ms: int) -> bool:
        self.events.append(("gate", worker, direction, method, ts_ms))
        return self.accept

    async def emit_camera(self, *a: object) -> bool:
        return False

    async def durable(self) -> bool:
        return True


@pytest.fixture
async def gate() -> AsyncIterator[tuple[Sink, str, HttpPushDriver]]:
    port = free_port()
    sink = Sink()
    gate = HttpPushDriver(
        "GATE01",
        PROFILES["attendance_gate"],
        60,
        HttpPushOptions(token=TOKEN, host="127.0.0.1", port=port),
    )
    meter = HttpPushDriver(
        "EL01",
        PROFILES["electrical"],
        60,
        HttpPushOptions(token="meter-secret-token", kind="telemetry", host="127.0.0.1", port=port),
    )
    tasks = [asyncio.create_task(gate.run(sink)), asyncio.create_task(meter.run(sink))]
    # the two share one listener: it listens once the first has attached, and by then
    # the second has started (attaching before it awaits anything)
    await wait_listening(port, what="the HTTP push listener")
    yield sink, f"http://127.0.0.1:{port}", gate
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVENT = {"worker": "W000123", "direction": "in", "method": "face", "ts": 1763900000000}


async def test_events_accepted_after_they_are_durable(
    gate: tuple[Sink, str, HttpPushDriver],
) -> None:
    sink, base, _ = gate
    async with httpx.AsyncClient(base_url=base) as c:
        r = await c.post("/v1/push/GATE01", json=EVENT, headers=AUTH)
        assert (r.status_code, r.json()) == (202, {"accepted": 1})
        r = await c.post(
            "/v1/push/GATE01",
            json={"events": [EVENT, {**EVENT, "ts": None, "direction": "out"}]},
            headers=AUTH,
        )  # same keep-alive connection
        assert r.json() == {"accepted": 2}
        r = await c.post(
            "/v1/push/EL01",
            json={"values": {"residual_ma": 12, "voltage_v": 230}},
            headers={"Authorization": "Bearer meter-secret-token"},
        )
        assert r.status_code == 202
    assert sink.events[0] == ("gate", "W000123", "in", "face", 1763900000000)
    assert sink.events[2][4] > 1763900000000  # no ts: the gateway's clock
    assert sink.events[3][:2] == ("reading", {"residual_ma": 12.0, "voltage_v": 230.0})


@pytest.mark.parametrize(
    "path, body, headers, status, code",
    [
        ("/v1/push/GATE01", EVENT, {}, 401, "unauthorized"),
        (
            "/v1/push/GATE01",
            EVENT,
            {"Authorization": "Bearer wrong-token-wrong"},
            401,
            "unauthorized",
        ),
        (
            "/v1/push/GATE01",
            EVENT,
            {"Authorization": "Bearer meter-secret-token"},
            401,
            "unauthorized",
        ),
        ("/v1/push/NOPE", EVENT, AUTH, 401, "unauthorized"),
        ("/v1/push/GATE01", {**EVENT, "worker": "W 1"}, AUTH, 422, "invalid_event"),
        ("/v1/push/GATE01", {**EVENT, "direction": "up"}, AUTH, 422, "invalid_event"),
        ("/v1/push/GATE01", {**EVENT, "extra": 1}, AUTH, 422, "invalid_event"),
        ("/v1/push/GATE01", {"events": []}, AUTH, 422, "bad_request"),
        (
            "/v1/push/EL01",
            {"values": {"residual_ma": -5}},
            {"Authorization": "Bearer meter-secret-token"},
            422,
            "invalid_event",
        ),
        (
            "/v1/push/EL01",
            {"values": {"colour": 1}},
            {"Authorization": "Bearer meter-secret-token"},
            422,
            "invalid_event",
        ),
        ("/elsewhere", EVENT, AUTH, 404, "not_found"),
    ],
)
async def test_refusals_are_specific(
    gate: tuple[Sink, str, HttpPushDriver],
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    sink, base, driver = gate
    async with httpx.AsyncClient(base_url=base) as c:
        r = await c.post(path, json=body, headers=headers)
    assert r.status_code == status and r.json()["error"] == code and r.json()["message"]
    assert sink.events == []
    assert driver.listener.counters[code] == 1


async def test_other_refusals(gate: tuple[Sink, str, HttpPushDriver]) -> None:
    sink, base, _ = gate
    async with httpx.AsyncClient(base_url=base) as c:
        assert (await c.get("/v1/push/GATE01", headers=AUTH)).status_code == 405
        r = await c.post("/v1/push/GATE01", content=b"x" * 300_000, headers=AUTH)
        assert r.status_code == 413
    async with httpx.AsyncClient(base_url=base) as c:
        r = await c.post("/v1/push/GATE01", content=b"{not json", headers=AUTH)
        assert r.status_code == 422 and r.json()["error"] == "bad_json"
        r = await c.post(
            "/v1/push/GATE01",
            content=b"a=b",
            headers={**AUTH, "content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 415
        sink.accept = False
        r = await c.post("/v1/push/GATE01", json=EVENT, headers=AUTH)
        assert r.status_code == 507 and r.json()["error"] == "spool_refused"


async def test_an_idle_connection_is_closed_quietly(
    gate: tuple[Sink, str, HttpPushDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A terminal's idle keep-alive connection is closed after the idle time, counted,
    with no unhandled error; the listener goes on serving."""
    _, base, _ = gate
    monkeypatch.setattr(HttpPushListener, "idle_timeout_s", 0.3)
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the gateway
    writer.close()
    listener = HttpPushListener.shared(host, int(port))
    assert listener.counters["idle_closed"] == 1 and not errors
    async with httpx.AsyncClient(base_url=base) as c:
        r = await c.post("/v1/push/GATE01", json=EVENT, headers=AUTH)
        assert r.status_code == 202


def test_token_must_be_long() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        HttpPushOptions(token="short")


@pytest.mark.integration
async def test_terminal_to_influxdb_through_a_real_agent(
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
                id="GATE01",
                driver="http_push",
                profile="attendance_gate",
                options={"token": TOKEN, "host": "127.0.0.1", "port": port},
            ),
        )
    )
    await wait_for(lambda: running.agent.connected.is_set(), what="agent connected")
    terminal = Terminal(
        f"http://127.0.0.1:{port}/v1/push/GATE01", TOKEN, workers=[f"W{i:06d}" for i in range(20)]
    )
    terminal.swipe(45)
    async with httpx.AsyncClient() as c:
        assert await terminal.send(c) == 202
    assert terminal.accepted == 45
    last = await running.stop()
    assert last == {"GATE01": 45}
    await assert_seqs_exactly_once(influx_client, last)
    rows = await influx_client.series("SELECT * FROM attendance")
    assert {r["direction"] for r in rows} <= {"in", "out"} and len(rows) == 45


async def test_what_the_properties_found(gate: tuple[Sink, str, HttpPushDriver]) -> None:
    """Found by tests/test_http_push_properties.py: JSON nested thousands deep made the
    decoder raise RecursionError (the connection died unanswered), a key given twice was
    silently the last one, HEAD made h11 refuse our body (an unhandled error), a request
    that is not HTTP was closed unanswered."""
    sink, base, driver = gate
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    async with httpx.AsyncClient(base_url=base) as c:
        r = await c.post("/v1/push/GATE01", content=b"[" * 50_000 + b"]" * 50_000, headers=AUTH)
        assert (r.status_code, r.json()["error"]) == (422, "too_deep")
        r = await c.post(
            "/v1/push/GATE01",
            headers=AUTH,
            content=(b'{"worker":"W000123","direction":"in","method":"face","direction":"out"}'),
        )
        assert (r.status_code, r.json()["error"]) == (422, "duplicate_key")
        assert "'direction'" in r.json()["message"]
        r = await c.post(
            "/v1/push/GATE01",
            headers=AUTH,
            content=b'{"worker":"W000123","direction":"in\\u001b[2J","method":"face"}',
        )
        assert (r.status_code, r.json()["error"]) == (422, "control_character")
        assert (await c.head("/v1/push/GATE01", headers=AUTH)).status_code == 405
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"HELLO GATEWAY\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ") and b'"error": "bad_http"' in answer
    assert sink.events == [] and not errors
    assert driver.listener.counters["bad_http"] == 1

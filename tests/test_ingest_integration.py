"""Ingest against real Mosquitto and InfluxDB, fed by a client we did not write."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from conftest import RunningIngest, now_ms, seqs_by_device, wait_for

from sitewatch.core import contract, mqtt
from sitewatch.core.influx import InfluxClient
from sitewatch.domains.deadletters import DeadLetterStore
from sitewatch.programs.localstack import MosquittoServer

pytestmark = pytest.mark.integration


def mosquitto_pub(
    server: MosquittoServer, topic: str, payload: bytes, *, retain: bool = False
) -> None:
    subprocess.run(
        [
            "mosquitto_pub",
            "-h",
            server.host,
            "-p",
            str(server.port),
            "-q",
            "1",
            "-t",
            topic,
            "-s",
            *(["-r"] if retain else []),
        ],
        input=payload,
        check=True,
        timeout=10,
    )


def retained(server: MosquittoServer, topic: str) -> bytes:
    """The retained message of ``topic``, as mosquitto_sub reads it."""
    return subprocess.run(
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
            "5",
        ],
        capture_output=True,
        check=True,
        timeout=10,
    ).stdout


class AckListener:
    def __init__(self, server: MosquittoServer, prefix: str) -> None:
        self.client = mqtt.Client(
            mqtt.MqttSettings(host=server.host, port=server.port, topic_prefix=prefix),
            client_id=f"acks-{id(self)}",
        )
        self.prefix = prefix
        self.acks: list[contract.AckEntry] = []
        #: the refused items the acks named, and each ack message as raw JSON
        self.refused: list[contract.Refused] = []
        self.raw: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AckListener:
        await self.client.connect()
        await self.client.subscribe(f"{self.prefix}/+/+/ack")
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        async for m in self.client.messages():
            ack = contract.ack_decoder.decode(m.payload)
            self.acks.extend(ack.acks)
            self.refused.extend(ack.refused)
            self.raw.append(json.loads(m.payload))

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await self.client.disconnect()

    def for_batch(self, batch: int) -> contract.AckEntry | None:
        return next((a for a in self.acks if a.batch == batch), None)


def item(seq: int, **over: Any) -> dict[str, Any]:
    # whole seconds minus seq: items made in successive milliseconds never share a
    # timestamp (now_ms() - seq did when the clock ticked between two items, and InfluxDB
    # kept one point of the two)
    base: dict[str, Any] = {
        "device": "TC01",
        "profile": "tower_crane",
        "ts": now_ms() // 1000 * 1000 - seq,
        "seq": seq,
        "values": {"load_t": 3, "wind_ms": 6.1},
    }
    base.update(over)
    return base


def batch(n: int, *items: dict[str, Any]) -> bytes:
    return json.dumps(
        {"v": 1, "batch": n, "sent": now_ms(), "items": list(items)}, allow_nan=True
    ).encode()


async def test_mosquitto_pub_batch_is_stored_and_acked(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
) -> None:
    await start_ingest()
    async with AckListener(mosquitto, prefix) as acks:
        mosquitto_pub(mosquitto, f"{prefix}/S1/GW1/telemetry", batch(1, item(1), item(2)))
        await wait_for(lambda: acks.for_batch(1), what="ack of batch 1")
    assert acks.for_batch(1) == contract.AckEntry(batch=1, stored=2, rejected=0)
    assert await seqs_by_device(influx_client) == {"TC01": [1, 2]}
    rows = await influx_client.series("SELECT * FROM tower_crane")
    assert rows[0]["site"] == "S1" and rows[0]["gateway"] == "GW1"
    assert isinstance(rows[0]["load_t"], int | float)


MALFORMED = [
    ("bad_identifier", item(10, device="TC,01")),
    ("bad_identifier", item(11, device="TC 01")),
    ("unknown_profile", item(12, profile="submarine")),
    ("undeclared_field", item(13, values={"load_t": 1, "colour": 3})),
    ("non_finite", item(14, values={"load_t": float("nan")})),
    ("ts_future", item(15, ts=now_ms() + 3_600_000)),
    ("out_of_range", item(16, values={"wind_ms": 500})),
]


async def test_malformed_items_dead_lettered_good_items_stored(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
) -> None:
    running = await start_ingest()
    good = [item(1), item(2), item(3)]
    payload = batch(7, good[0], *(m[1] for m in MALFORMED), good[1], good[2])
    async with AckListener(mosquitto, prefix) as acks:
        mosquitto_pub(mosquitto, f"{prefix}/S1/GW1/telemetry", payload)
        mosquitto_pub(mosquitto, f"{prefix}/S1/GW1/telemetry", b'{"v":1,"batch":8, broken')
        mosquitto_pub(mosquitto, f"{prefix}/S1/GW1/telemetry", b"\x00\x01binary")
        await wait_for(lambda: acks.for_batch(7) and acks.for_batch(8), what="acks 7 and 8")
        assert acks.for_batch(7) == contract.AckEntry(batch=7, stored=3, rejected=len(MALFORMED))
        assert acks.for_batch(8) == contract.AckEntry(batch=8, stored=0, rejected=1)
    assert await seqs_by_device(influx_client) == {"TC01": [1, 2, 3]}
    assert running.service is not None
    stats = running.service.stats
    await wait_for(lambda: stats.items_rejected == len(MALFORMED) + 2, what="reject counters")
    store = DeadLetterStore(running.settings.database_url)
    rows = store.recent(100)
    by_seq = {r.seq: r.reason for r in rows if r.batch == 7}
    assert by_seq == {m[1]["seq"]: m[0] for m in MALFORMED}
    whole = [r for r in rows if r.batch != 7]
    assert sorted(r.reason for r in whole) == ["bad_json", "bad_json"]
    assert all(r.topic == f"{prefix}/S1/GW1/telemetry" and r.detail for r in rows)
    counts = store.counts_by_reason()
    assert counts["bad_identifier"] == 2 and counts["bad_json"] == 2
    assert stats.rejected["non_finite"] == 1
    store.dispose()


async def test_bad_topic_and_status(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
) -> None:
    running = await start_ingest()
    mosquitto_pub(mosquitto, f"{prefix}/S 1/GW1/telemetry", batch(1, item(1)))
    status = {"state": "online", "ts": now_ms(), "boot": 3, "agent": "x", "queued": 4}
    mosquitto_pub(mosquitto, f"{prefix}/S1/GW1/status", json.dumps(status).encode())
    assert running.service is not None
    await wait_for(
        lambda: running.service and running.service.stats.rejected["bad_topic"] == 1,
        what="bad topic counted",
    )
    rows = await wait_for(
        lambda: influx_client.series("SELECT * FROM gateway_status"), what="status stored"
    )
    assert rows[0]["boot"] == 3 and rows[0]["state"] == "online"


async def test_dead_letters_in_postgres(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    postgres: Any,
    unique: str,
) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{unique}"'))
    admin.dispose()
    url = postgres.url.rsplit("/", 1)[0] + f"/{unique}"
    running = await start_ingest(database_url=url)
    async with AckListener(mosquitto, prefix) as acks:
        mosquitto_pub(
            mosquitto, f"{prefix}/S1/GW1/telemetry", batch(3, item(1), item(2, device="bad id"))
        )
        await wait_for(lambda: acks.for_batch(3), what="ack")
    store = DeadLetterStore(url)
    assert store.counts_by_reason() == {"bad_identifier": 1}
    assert store.recent(1)[0].payload.startswith(b"{")
    store.dispose()
    assert running.settings.database_url == url


async def test_ack_names_each_refused_item_with_its_reason(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
) -> None:
    """What a vendor's gateway sees on its ack topic: each refused item of a batch with
    its seq, device, reason code and a short detail, next to the counts."""
    await start_ingest()
    good = [item(1), item(2), item(3)]
    payload = batch(7, good[0], *(m[1] for m in MALFORMED), good[1], good[2])
    many = batch(
        9,
        *(
            item(100 + i, values={"wind_ms": 500})
            for i in range(contract.MAX_REFUSED_PER_BATCH + 5)
        ),
    )
    async with AckListener(mosquitto, prefix) as acks:
        mosquitto_pub(mosquitto, f"{prefix}/S1/GW1/telemetry", payload)
        mosquitto_pub(mosquitto, f"{prefix}/S1/GW1/telemetry", b'{"v":1,"batch":8, broken')
        mosquitto_pub(mosquitto, f"{prefix}/S1/GW1/telemetry", many)
        await wait_for(
            lambda: acks.for_batch(7) and acks.for_batch(8) and acks.for_batch(9),
            what="acks 7, 8 and 9",
        )
    assert acks.for_batch(7) == contract.AckEntry(batch=7, stored=3, rejected=len(MALFORMED))
    raw = [r for msg in acks.raw for r in msg.get("refused", [])]
    named = {(r["seq"], r["device"]): r["reason"] for r in raw if r["batch"] == 7}
    assert named == {(m[1]["seq"], m[1]["device"]): m[0] for m in MALFORMED}
    assert all(r["detail"] and len(r["detail"]) <= contract.MAX_REFUSED_DETAIL for r in raw)
    undeclared = next(r for r in raw if r["batch"] == 7 and r["reason"] == "undeclared_field")
    assert "colour" in undeclared["detail"]
    # a whole message refused: named without device or seq
    [whole] = [r for r in raw if r["batch"] == 8]
    assert whole["reason"] == "bad_json" and "device" not in whole and "seq" not in whole
    # bounded: at most MAX_REFUSED_PER_BATCH named, the count says how many there were
    assert acks.for_batch(9) == contract.AckEntry(
        batch=9, stored=0, rejected=contract.MAX_REFUSED_PER_BATCH + 5
    )
    nine = [r for r in raw if r["batch"] == 9]
    assert len(nine) == contract.MAX_REFUSED_PER_BATCH
    assert {r["reason"] for r in nine} == {"out_of_range"}
    assert all(len(msg.get("refused", [])) <= contract.MAX_REFUSED_PER_ACK for msg in acks.raw)
    # a good batch's ack names nothing
    assert await seqs_by_device(influx_client) == {"TC01": [1, 2, 3]}


class OldAckEntry(msgspec.Struct, forbid_unknown_fields=True):
    """An ack entry as agents before the ``refused`` list read it."""

    batch: int
    stored: int
    rejected: int


class OldAck(msgspec.Struct):
    acks: list[OldAckEntry]
    now: int | None = None


def test_older_agents_read_an_ack_that_names_refused_items() -> None:
    """The list is at the top of the ack, which agents have always read leniently; an
    entry with a key the agent does not know is read too (agents before this change
    refused such an entry, which is why the list is not in the entries)."""
    ack = contract.Ack(
        acks=[contract.AckEntry(batch=7, stored=1, rejected=1)],
        now=5,
        refused=[
            contract.Refused(batch=7, reason="out_of_range", detail="x", device="TC01", seq=3)
        ],
    )
    old = msgspec.json.decode(contract.encode(ack), type=OldAck)
    assert old.acks == [OldAckEntry(batch=7, stored=1, rejected=1)]
    newer_entry = b'{"acks":[{"batch":7,"stored":1,"rejected":0,"later":1}],"now":5}'
    assert contract.ack_decoder.decode(newer_entry).acks[0].batch == 7


async def test_late_will_is_a_point_in_the_past(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
) -> None:
    """A will of the gateway's old session published after its new session's `online`
    (docs/wire-contract.md, a late will): the retained message reads offline, but ingest
    keeps each status at its own ts, so the newest status in InfluxDB stays online."""
    await start_ingest()
    topic = f"{prefix}/S1/GW1/status"
    opened = now_ms() - 60_000  # the old session's will was set when it connected
    online = {"state": "online", "ts": now_ms(), "boot": 3, "agent": "x", "queued": 0}
    will = {**online, "state": "offline", "ts": opened}
    mosquitto_pub(mosquitto, topic, json.dumps(online).encode(), retain=True)
    mosquitto_pub(mosquitto, topic, json.dumps(will).encode(), retain=True)
    rows = await wait_for(
        lambda: _two(influx_client.series("SELECT state, boot FROM gateway_status")),
        what="both statuses stored",
    )
    assert [r["state"] for r in rows] == ["offline", "online"]  # in time order
    [last] = await influx_client.series("SELECT last(state) FROM gateway_status")
    assert last["last"] == "online"
    assert json.loads(retained(mosquitto, topic))["state"] == "offline", (
        "what the contract warns of: the message received last is the will"
    )


async def _two(rows: Awaitable[list[dict[str, Any]]]) -> list[dict[str, Any]] | None:
    got = await rows
    return got if len(got) == 2 else None

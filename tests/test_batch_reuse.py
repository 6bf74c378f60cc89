"""A reused batch number, as a vendor's gateway would send it with mosquitto_pub against
real Mosquitto, InfluxDB and the SQL store (SQLite and PostgreSQL): the same content
again is a resend, other content under a known number is refused as batch_reused, also
after ingest restarted."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from conftest import RunningIngest, now_ms, seqs_by_device, wait_for
from test_ingest_integration import AckListener, item, mosquitto_pub

from sitewatch.core import contract
from sitewatch.core.influx import InfluxClient
from sitewatch.domains.deadletters import DeadLetterStore
from sitewatch.programs.localstack import MosquittoServer

pytestmark = pytest.mark.integration


def send(
    server: MosquittoServer, topic: str, n: int, items: list[dict[str, Any]], **dumps: Any
) -> None:
    mosquitto_pub(
        server,
        topic,
        json.dumps({"v": 1, "batch": n, "sent": now_ms(), "items": items}, **dumps).encode(),
    )


def entries(acks: AckListener, n: int) -> list[contract.AckEntry]:
    return [a for a in acks.acks if a.batch == n]


def named(acks: AckListener, n: int) -> list[dict[str, Any]]:
    return [r for m in acks.raw for r in m.get("refused", []) if r["batch"] == n]


async def test_reused_batch_number_is_refused_resend_is_not(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
    database_url: str,
) -> None:
    topic = f"{prefix}/S1/GW1/telemetry"
    first = [item(1), item(2)]
    mixed = [item(10), item(11, values={"wind_ms": 500})]  # one bad item: the slow path
    running = await start_ingest(database_url=database_url)
    async with AckListener(mosquitto, prefix) as acks:
        send(mosquitto, topic, 5, first)
        send(mosquitto, topic, 6, mixed)
        await wait_for(lambda: entries(acks, 5) and entries(acks, 6), what="acks 5 and 6")
        # the same content again, written differently (spacing, key order, a later
        # `sent`): a resend, stored again harmlessly and acked as before
        send(mosquitto, topic, 5, [dict(reversed(i.items())) for i in first], indent=1)
        send(mosquitto, topic, 6, mixed)
        await wait_for(
            lambda: len(entries(acks, 5)) == 2 and len(entries(acks, 6)) == 2,
            what="acks of the resends",
        )
        assert entries(acks, 5) == [contract.AckEntry(batch=5, stored=2, rejected=0)] * 2
        assert entries(acks, 6) == [contract.AckEntry(batch=6, stored=1, rejected=1)] * 2
        assert [r["reason"] for r in named(acks, 6)] == ["out_of_range"] * 2
        # other content under batch 5: refused whole, acked with stored 0 and the reason
        send(mosquitto, topic, 5, [item(3)])
        await wait_for(lambda: len(entries(acks, 5)) == 3, what="ack of the reused number")
        assert entries(acks, 5)[2] == contract.AckEntry(batch=5, stored=0, rejected=1)
        [reused] = named(acks, 5)
        assert reused["reason"] == "batch_reused" and "device" not in reused
    assert await seqs_by_device(influx_client) == {"TC01": [1, 2, 10]}
    await running.stop()

    # a restarted ingest remembers (the digests are in the SQL store)
    running = await start_ingest(database_url=database_url)
    async with AckListener(mosquitto, prefix) as acks:
        send(mosquitto, topic, 5, [item(4)])
        send(mosquitto, topic, 5, first)
        send(mosquitto, topic, 7, [item(5)])  # a new number
        await wait_for(
            lambda: len(entries(acks, 5)) == 2 and entries(acks, 7), what="acks after the restart"
        )
        assert entries(acks, 5) == [
            contract.AckEntry(batch=5, stored=0, rejected=1),
            contract.AckEntry(batch=5, stored=2, rejected=0),
        ]
        assert [r["reason"] for r in named(acks, 5)] == ["batch_reused"]
        assert entries(acks, 7) == [contract.AckEntry(batch=7, stored=1, rejected=0)]
    assert await seqs_by_device(influx_client) == {"TC01": [1, 2, 5, 10]}
    assert running.service is not None
    assert running.service.stats.batches_resent == 1
    store = DeadLetterStore(database_url)
    rows = [r for r in store.recent(100) if r.reason == "batch_reused"]
    assert len(rows) == 2 and all(r.batch == 5 and r.payload.startswith(b"{") for r in rows)
    store.dispose()
    await running.stop()


async def test_same_number_on_another_gateway_is_its_own(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
) -> None:
    await start_ingest()
    async with AckListener(mosquitto, prefix) as acks:
        send(mosquitto, f"{prefix}/S1/GW1/telemetry", 1, [item(1)])
        send(mosquitto, f"{prefix}/S1/GW2/telemetry", 1, [item(2, device="TC02")])
        send(
            mosquitto,
            f"{prefix}/S2/GW1/attendance",
            1,
            [
                {
                    "device": "GATE01",
                    "ts": now_ms(),
                    "seq": 1,
                    "worker": "W1",
                    "direction": "in",
                    "method": "card",
                }
            ],
        )
        await wait_for(lambda: len(entries(acks, 1)) == 3, what="three acks of batch 1")
    assert all(e.stored == 1 for e in entries(acks, 1))
    assert named(acks, 1) == []

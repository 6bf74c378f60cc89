"""A gateway's hostile or buggy message costs that message, never the services.

Against real Mosquitto and InfluxDB: ingest and the alert service take a payload nested
tens of thousands of levels deep (which made both parsers raise RecursionError and the
process die, again after every restart as the broker redelivered it), ambiguous JSON,
and a message whose handling raises; each is dead-lettered with its reason or counted,
and the good batches after it are stored once and still raise their alert.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    RunningAlerts,
    RunningIngest,
    ingest_settings,
    now_ms,
    seqs_by_device,
    wait_for,
)
from prometheus_client import generate_latest
from test_alerts_e2e import AlertListener
from test_ingest_integration import AckListener, mosquitto_pub

from ingest.intake import build_decoder
from ingest.service import Ingest
from sitewatch.core import contract
from sitewatch.core.decode import BatchDecoder, Decoded
from sitewatch.core.influx import InfluxClient
from sitewatch.core.profiles import load_profiles
from sitewatch.core.topics import GatewayChannel
from sitewatch.domains.deadletters import DeadLetterStore
from sitewatch.programs.localstack import InfluxServer, MosquittoServer

pytestmark = pytest.mark.integration

DEPTH = 50_000  # 100 kB: under the contract's 256 KiB, far past any recursion limit


def deep(batch: int) -> bytes:
    return b'{"v":1,"batch":%d,"sent":1,"items":[' % batch + b"[" * DEPTH + b"]" * DEPTH + b"]}"


def item(seq: int, device: str = "TC01", **values: Any) -> dict[str, Any]:
    return {
        "device": device,
        "profile": "tower_crane",
        "ts": now_ms() // 1000 * 1000 - seq,
        "seq": seq,
        "values": values or {"load_t": 3.0},
    }


def batch(n: int, *items: dict[str, Any]) -> bytes:
    return json.dumps({"v": 1, "batch": n, "sent": now_ms(), "items": list(items)}).encode()


async def test_deep_and_ambiguous_payloads_are_dead_lettered_and_both_services_go_on(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    start_alerts: Callable[..., Awaitable[RunningAlerts]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
) -> None:
    running = await start_ingest()
    alerts = await start_alerts(hold_s=60)
    topic = f"{prefix}/S1/GW1/telemetry"
    repeated = b'{"v":1,"batch":4,"batch":5,"sent":1,"items":[%s]}' % json.dumps(item(40)).encode()
    async with AckListener(mosquitto, prefix) as acks, AlertListener(mosquitto, prefix) as raised:
        mosquitto_pub(mosquitto, topic, deep(1))
        mosquitto_pub(mosquitto, f"{prefix}/S1/GW1/status", b"[" * DEPTH + b"]" * DEPTH)
        mosquitto_pub(mosquitto, topic, repeated)
        mosquitto_pub(
            mosquitto,
            topic,
            batch(2, item(1), item(2, device="TC01\n"), item(3, operator="Li\nWei")),
        )
        mosquitto_pub(mosquitto, topic, batch(3, item(4), item(5, device="TC9", load_pct=120.0)))
        await wait_for(lambda: all(acks.for_batch(n) for n in (1, 2, 3)), what="acks")
        await wait_for(
            lambda: raised.kinds("TC9", "load") == ["raised"],
            what="the alert of the good batch after the hostile ones",
        )
    assert acks.for_batch(1) == contract.AckEntry(batch=1, stored=0, rejected=1)
    assert acks.for_batch(2) == contract.AckEntry(batch=2, stored=1, rejected=2)
    assert acks.for_batch(3) == contract.AckEntry(batch=3, stored=2, rejected=0)
    # a repeated batch number is not acked under either number
    assert acks.for_batch(4) is None and acks.for_batch(5) is None
    assert await seqs_by_device(influx_client) == {"TC01": [1, 4], "TC9": [5]}

    assert running.service is not None and running.task is not None
    assert not running.task.done() and alerts.task is not None and not alerts.task.done()
    rows = DeadLetterStore(running.settings.database_url).recent(100)
    got = sorted(((r.reason, r.batch, r.seq) for r in rows), key=repr)
    assert got == sorted(
        [
            ("bad_identifier", 2, 2),
            ("control_character", 2, 3),
            ("duplicate_key", None, None),
            ("too_deep", 1, None),
            ("too_deep", None, None),
        ],
        key=repr,
    )
    assert running.service.stats.rejected["too_deep"] == 2
    assert not running.service.stats.internal_errors
    assert alerts.service.skipped >= 4 and not alerts.service.internal_errors
    await alerts.stop()


class FailingDecoder(BatchDecoder):
    """A decoder with a bug: any payload holding ``boom`` makes it raise."""

    def decode(
        self, channel: GatewayChannel, site: str, gateway: str, payload: bytes, now_ms: int
    ) -> Decoded:
        if b"boom" in payload:
            raise ZeroDivisionError("division by zero")
        return super().decode(channel, site, gateway, payload, now_ms)

    def items(self, channel: GatewayChannel, payload: bytes, now_ms: int) -> tuple[list[Any], int]:
        if b"boom" in payload:
            raise ZeroDivisionError("division by zero")
        return super().items(channel, payload, now_ms)


async def test_an_exception_handling_one_message_is_an_internal_error_dead_letter(
    start_alerts: Callable[..., Awaitable[RunningAlerts]],
    mosquitto: MosquittoServer,
    influxdb: InfluxServer,
    prefix: str,
    unique: str,
    tmp_path: Path,
    influx_client: InfluxClient,
) -> None:
    settings = ingest_settings(
        mosquitto, influxdb, prefix, unique, f"sqlite:///{tmp_path / 'sitewatch.db'}"
    )
    window = build_decoder(settings).window
    codec = contract.TelemetryCodec(load_profiles(settings.profiles_dir))
    ingest = Ingest(settings, decoder=FailingDecoder(codec, window))
    task = asyncio.create_task(ingest.run())
    alerts = await start_alerts(hold_s=60)
    # the alert service's decoder is a public part of it: the same bug there
    alerts.service.decoder = FailingDecoder(alerts.service.codec, alerts.service.decoder.window)
    try:
        await wait_for(ingest.connected.is_set, timeout=15, what="ingest connected")
        topic = f"{prefix}/S1/GW1/telemetry"
        bad = batch(9, item(1, operator="boom"))
        async with (
            AckListener(mosquitto, prefix) as acks,
            AlertListener(mosquitto, prefix) as raised,
        ):
            mosquitto_pub(mosquitto, topic, bad)
            mosquitto_pub(
                mosquitto, topic, batch(10, item(2), item(3, device="TC9", load_pct=120.0))
            )
            await wait_for(lambda: acks.for_batch(9) and acks.for_batch(10), what="acks")
            await wait_for(lambda: raised.kinds("TC9", "load") == ["raised"], what="alert")
        assert acks.for_batch(9) == contract.AckEntry(batch=9, stored=0, rejected=1)
        assert acks.for_batch(10) == contract.AckEntry(batch=10, stored=2, rejected=0)
        assert await seqs_by_device(influx_client) == {"TC01": [2], "TC9": [3]}
        assert not task.done()
        rows = DeadLetterStore(settings.database_url).recent(10)
        assert [(r.reason, r.batch, r.site, r.gateway) for r in rows] == [
            ("internal_error", 9, "S1", "GW1")
        ]
        assert rows[0].detail == "ZeroDivisionError: division by zero"
        assert rows[0].payload == bad  # whole, to replay once fixed
        assert ingest.stats.internal_errors == {"ZeroDivisionError": 1}
        assert alerts.service.internal_errors == {"ZeroDivisionError": 1}
        exported = generate_latest(ingest.registry).decode()
        assert (
            'sitewatch_ingest_internal_errors_total{exception="ZeroDivisionError"} 1.0' in exported
        )
        exported = generate_latest(alerts.service.registry).decode()
        assert (
            'sitewatch_alerts_internal_errors_total{exception="ZeroDivisionError"} 1.0' in exported
        )
    finally:
        ingest.stop()
        await asyncio.wait_for(task, 20)
        await alerts.stop()

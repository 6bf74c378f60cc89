"""``sitewatch ingest``: MQTT in, validation, InfluxDB and dead-letter store out, acks back.

Reads like aiomqtt's own loop: connect with a persistent session, subscribe, consume in
a TaskGroup with the pipeline's flush timer; on a lost connection everything taken but
not finished is dropped (the broker redelivers it: it was never PUBACKed) and we
reconnect with jittered exponential backoff.

No message can stop the loop: handling one that raises anything (a bug: the decoder's
own refusals are dead letters with their reason) is caught at the message boundary
(``ingest.intake``), counted, logged with topic and size, and the message
dead-lettered as ``internal_error`` and PUBACKed. Otherwise the broker would redeliver it
to the persistent session after every restart, and ingest would die on it again and again.

A camera snapshot carries no batch to ack: it is stored (file fsynced, row committed) by
the consumer before its Work enters the pipeline, so its PUBACK, in order with the
others, means it is kept, or dead-lettered with its reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ingest.acked import AckedBatches
from ingest.config import IngestSettings
from ingest.intake import Intake
from ingest.metrics import IngestCollector, TimedInflux, WriteTimes
from ingest.pipeline import WritePipeline
from ingest.stats import IngestStats
from sitewatch.core import mqtt
from sitewatch.core.backoff import Backoff
from sitewatch.core.db import make_engine
from sitewatch.core.decode import (
    BatchDecoder,
)
from sitewatch.core.influx import InfluxClient
from sitewatch.core.metrics import MetricsEndpoint, new_registry, serve_metrics
from sitewatch.core.signals import stop_on_signals
from sitewatch.core.subscriber import GatewaySession
from sitewatch.core.topics import (
    GatewayChannel,
    gateway_topic,
)
from sitewatch.domains.attendance.ledger import LedgerWriter
from sitewatch.domains.deadletters import DeadLetterStore
from sitewatch.domains.snapshots import create_schema as create_snapshot_schema

log = logging.getLogger("sitewatch.ingest")

SUBSCRIBED = (
    GatewayChannel.TELEMETRY,
    GatewayChannel.ATTENDANCE,
    GatewayChannel.CAMERA,
    GatewayChannel.STATUS,
    GatewayChannel.SNAPSHOT,
)


class Ingest:
    def __init__(
        self,
        settings: IngestSettings,
        *,
        stats: IngestStats | None = None,
        decoder: BatchDecoder | None = None,
    ) -> None:
        self.settings = settings
        self.stats = stats or IngestStats()
        self.prefix = settings.mqtt.topic_prefix
        self.dead_letters = DeadLetterStore(settings.database_url)
        self.ledger = LedgerWriter(settings.database_url)
        self.snapshot_rows = make_engine(settings.database_url)
        self.acked = AckedBatches(self.dead_letters.engine)
        self.intake = Intake(
            settings,
            stats=self.stats,
            decoder=decoder,
            acked=self.acked,
            snapshot_rows=self.snapshot_rows,
        )
        self._stop = asyncio.Event()
        self.session = GatewaySession(
            settings,
            client_id=settings.client_id,
            channels=SUBSCRIBED,
            max_inflight=1000,
            stop=self._stop,
            log=log,
            name="ingest",
        )
        self.connected = self.session.connected
        # what the metrics report besides the stats: the session's client, the messages
        # taken from it and not yet PUBACKed, the times of InfluxDB writes
        self.in_flight = 0
        self.write_times = WriteTimes()
        self.registry = new_registry("ingest")
        self.registry.register(IngestCollector(self))
        self.metrics_endpoint: MetricsEndpoint | None = None

    @property
    def client(self) -> mqtt.Client | None:
        return self.session.client

    def stop(self) -> None:
        self._stop.set()

    # -- main loop -----------------------------------------------------------------
    async def run(self) -> None:
        s = self.settings
        async with serve_metrics(s.metrics, self.registry, service="ingest") as endpoint:
            self.metrics_endpoint = endpoint
            self.dead_letters.create_schema()
            self.ledger.create_schema()
            self.acked.create_schema()
            create_snapshot_schema(self.snapshot_rows)
            async with TimedInflux(s.influx, self.write_times) as influx:
                await self._wait_influx(influx)
                stats_task = asyncio.create_task(self._log_stats(), name="stats")
                try:
                    await mqtt.reconnecting(
                        lambda: self._session(influx), self._stop, self.connected.clear
                    )
                finally:
                    stats_task.cancel()
                    log.info("ingest stopped: %s", self.stats.summary())
                    self.dead_letters.dispose()
                    self.ledger.dispose()
                    self.snapshot_rows.dispose()

    async def _wait_influx(self, influx: InfluxClient) -> None:
        backoff = Backoff(0.2, 10)
        while True:
            try:
                await influx.ensure_database()
                return
            except Exception as exc:
                delay = backoff.next_delay()
                log.warning(
                    "InfluxDB at %s not ready (%s); retrying in %.1fs",
                    self.settings.influx.url,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _session(self, influx: InfluxClient) -> None:
        await self.session.run(lambda client: self._begin(client, influx))

    def _begin(self, client: mqtt.Client, influx: InfluxClient) -> _Consumer:
        """The write pipeline of a new session, acking through its client."""
        s = self.settings

        async def publish_ack(site: str, gateway: str, payload: bytes) -> None:
            topic = gateway_topic(self.prefix, site, gateway, GatewayChannel.ACK)
            fut = client.publish_nowait(topic, payload, qos=1)
            fut.add_done_callback(_ignore_result)

        def puback(message: mqtt.Message) -> None:
            client.ack(message)
            self.in_flight -= 1

        pipeline = WritePipeline(
            influx=influx,
            dead_letters=self.dead_letters,
            ledger=self.ledger,
            publish_ack=publish_ack,
            puback=puback,
            stats=self.stats,
            batch_points=s.write_batch_points,
            flush_interval_s=s.flush_interval_s,
            max_concurrent_writes=s.max_concurrent_writes,
            acked=self.acked,
        )
        # what the previous session had taken is redelivered, not PUBACKed
        self.in_flight = 0
        return _Consumer(lambda: self._consume(client, pipeline), pipeline)

    async def _consume(self, client: mqtt.Client, pipeline: WritePipeline) -> None:
        stats, take = self.stats, self.intake.take_guarded
        async for message in client.messages():
            stats.messages += 1
            self.in_flight += 1
            work = await take(message, int(time.time() * 1000))
            stats.items_received += work.items
            await pipeline.put(work)

    async def _log_stats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_interval_s)
            log.info("ingest: %s", self.stats.summary())


class _Consumer:
    """One session's work: its messages into the pipeline, with the flush timer. A lost
    connection cancels the writes under way (the broker redelivers what they held)."""

    def __init__(
        self, take: Callable[[], Coroutine[Any, Any, None]], pipeline: WritePipeline
    ) -> None:
        self.take, self.pipeline = take, pipeline

    async def consume(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.take(), name="consume")
                tg.create_task(self.pipeline.run_timer(), name="flush-timer")
        except* mqtt.MqttError as eg:
            self.pipeline.cancel()
            raise eg.exceptions[0] from None

    async def drain(self) -> None:
        await self.pipeline.drain()


def _ignore_result(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.debug("ack publish not confirmed: %s", fut.exception())


async def run_ingest(settings: IngestSettings) -> None:
    ingest = Ingest(settings)
    stop_on_signals(ingest.stop)
    await ingest.run()

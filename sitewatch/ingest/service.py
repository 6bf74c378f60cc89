"""``sitewatch ingest``: MQTT in, validation, InfluxDB and dead-letter store out, acks back.

Reads like aiomqtt's own loop: connect with a persistent session, subscribe, consume in
a TaskGroup with the pipeline's flush timer; on a lost connection everything taken but
not finished is dropped (the broker redelivers it: it was never PUBACKed) and we
reconnect with jittered exponential backoff.

No message can stop the loop: handling one that raises anything (a bug: the decoder's
own refusals are dead letters with their reason) is caught at the message boundary,
counted, logged with topic and size, and the message dead-lettered as ``internal_error``
and PUBACKed. Otherwise the broker would redeliver it to the persistent session after
every restart, and ingest would die on it again and again.

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

from sqlalchemy.exc import SQLAlchemyError

from sitewatch.core import contract, mqtt
from sitewatch.core.backoff import Backoff
from sitewatch.core.db import make_engine
from sitewatch.core.decode import (
    BatchDecoder,
    Decoded,
    Rejected,
    TimeWindow,
    decode_status,
    recover_batch,
    status_line,
)
from sitewatch.core.influx import InfluxClient
from sitewatch.core.metrics import MetricsEndpoint, new_registry, serve_metrics
from sitewatch.core.profiles import load_profiles
from sitewatch.core.reasons import Reason
from sitewatch.core.signals import stop_on_signals
from sitewatch.core.subscriber import GatewaySession
from sitewatch.core.topics import (
    BATCH_CHANNELS,
    GatewayChannel,
    GatewayTopic,
    TopicError,
    gateway_topic,
    parse_gateway_topic,
)
from sitewatch.domains.attendance.ledger import LedgerWriter
from sitewatch.domains.deadletters import DeadLetterStore
from sitewatch.domains.snapshots import (
    SHA256_RE,
    Refusal,
    SnapshotError,
    SnapshotStore,
    store_snapshot,
)
from sitewatch.domains.snapshots import create_schema as create_snapshot_schema
from sitewatch.ingest.acked import AckedBatches, Miss
from sitewatch.ingest.config import IngestSettings
from sitewatch.ingest.metrics import IngestCollector, TimedInflux, WriteTimes
from sitewatch.ingest.pipeline import Work, WritePipeline
from sitewatch.ingest.stats import IngestStats

log = logging.getLogger("sitewatch.ingest")

SUBSCRIBED = (
    GatewayChannel.TELEMETRY,
    GatewayChannel.ATTENDANCE,
    GatewayChannel.CAMERA,
    GatewayChannel.STATUS,
    GatewayChannel.SNAPSHOT,
)
#: how much of a message refused whole the dead-letter store keeps
MAX_COPY = 64 * 1024
SNAPSHOT_REASONS = {
    Refusal.EMPTY: Reason.EMPTY_SNAPSHOT,
    Refusal.TOO_LARGE: Reason.TOO_LARGE,
    Refusal.UNSUPPORTED_MEDIA_TYPE: Reason.UNSUPPORTED_MEDIA_TYPE,
    Refusal.HASH_MISMATCH: Reason.SNAPSHOT_HASH_MISMATCH,
}


def build_decoder(settings: IngestSettings) -> BatchDecoder:
    return BatchDecoder(
        contract.TelemetryCodec(load_profiles(settings.profiles_dir)),
        TimeWindow(
            max_future_ms=int(settings.max_future_s * 1000),
            retention_ms=int(settings.retention_days * 86400 * 1000),
        ),
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
        self.decoder = decoder or build_decoder(settings)
        self.prefix = settings.mqtt.topic_prefix
        self.dead_letters = DeadLetterStore(settings.database_url)
        self.ledger = LedgerWriter(settings.database_url)
        self.snapshots = SnapshotStore(settings.snapshots_dir)
        self.snapshot_rows = make_engine(settings.database_url)
        self.acked = AckedBatches(self.dead_letters.engine)
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

    # -- message -> work -----------------------------------------------------------
    async def take_guarded(self, message: mqtt.Message, now_ms: int) -> Work:
        """:meth:`take`, with the message boundary no exception crosses."""
        try:
            return await self.take(message, now_ms)
        except Exception as exc:
            return self.internal_error(message, exc)

    def internal_error(self, message: mqtt.Message, exc: Exception) -> Work:
        """The work of a message whose handling raised: dead-lettered whole (up to the
        contract's largest payload, to replay once fixed) and its batch acked."""
        kind = type(exc).__name__
        self.stats.internal_errors[kind] += 1
        log.error(
            "ingest: handling the message on %r (%d bytes) raised %s; dead-lettered "
            "as internal_error",
            message.topic,
            len(message.payload),
            kind,
            exc_info=exc,
        )
        site = gateway = None
        batch = None
        try:
            t = parse_gateway_topic(self.prefix, message.topic)
            site, gateway = t.site, t.gateway
            if t.channel in BATCH_CHANNELS:
                batch = recover_batch(message.payload)
        except TopicError:
            pass
        detail = f"{kind}: {exc}"
        return Work(
            message,
            message.topic,
            site,
            gateway,
            batch,
            0,
            [],
            [
                Rejected(
                    Reason.INTERNAL_ERROR, detail, message.payload[: contract.MAX_PAYLOAD_BYTES]
                )
            ],
        )

    async def take(self, message: mqtt.Message, now_ms: int) -> Work:
        """What one message becomes; a snapshot is stored first (in a worker thread)."""
        try:
            t = parse_gateway_topic(self.prefix, message.topic)
        except TopicError as exc:
            return Work(
                message,
                message.topic,
                None,
                None,
                None,
                0,
                [],
                [Rejected(Reason.BAD_TOPIC, str(exc), message.payload[:MAX_COPY])],
            )
        if t.channel is GatewayChannel.SNAPSHOT:
            return await self._store_snapshot(message, t)
        work = self.to_work(message, t, now_ms)
        if work.digest is not None and work.batch is not None:
            work = await self._reused(work, t, now_ms)
        return work

    async def _reused(self, work: Work, t: GatewayTopic, now_ms: int) -> Work:
        """The work itself, unless its batch number was taken before with other content:
        then the whole message is refused as ``batch_reused`` (and acked with stored 0,
        the reason named in the ack), so no ack of that number is ever ambiguous."""
        assert work.digest is not None and work.batch is not None
        key = (t.site, t.gateway, work.batch)
        known = self.acked.cached(key)
        if isinstance(known, Miss):
            try:
                known = await asyncio.to_thread(self.acked.fetch, key, now_ms)
            except SQLAlchemyError as exc:
                # the SQL store is down: the batch goes on unchecked (its ack waits for
                # the store anyway, in the pipeline); holding it here would stop every
                # message behind it
                self.stats.acked_batches_retries += 1
                log.warning(
                    "reading acked batches failed (%s): batch %d of %s/%s taken "
                    "without the reuse check",
                    type(exc).__name__,
                    work.batch,
                    t.site,
                    t.gateway,
                )
                return work
        if known is None:
            self.acked.claim(key, work.digest)
            return work
        if known == work.digest:
            self.stats.batches_resent += 1
            return work
        log.info(
            "batch %d of %s/%s reused with other content: refused", work.batch, t.site, t.gateway
        )
        return Work(
            work.message,
            work.topic,
            t.site,
            t.gateway,
            work.batch,
            work.items,
            [],
            [
                Rejected(
                    Reason.BATCH_REUSED,
                    f"batch {work.batch} was acknowledged before with other "
                    "content; batch numbers are never reused",
                    work.message.payload[: contract.MAX_PAYLOAD_BYTES]
                    if work.message is not None
                    else b"",
                )
            ],
        )

    def to_work(self, message: mqtt.Message, t: GatewayTopic, now_ms: int) -> Work:
        if t.channel in BATCH_CHANNELS:
            d: Decoded = self.decoder.decode(t.channel, t.site, t.gateway, message.payload, now_ms)
            return Work(
                message,
                message.topic,
                t.site,
                t.gateway,
                d.batch,
                d.items,
                d.lines,
                d.rejected,
                gate_events=d.gate_events,
                digest=d.digest,
            )
        if t.channel is GatewayChannel.STATUS:
            self.stats.statuses += 1
            if not message.payload:  # a retained status being cleared
                return Work(message, message.topic, t.site, t.gateway, None, 0, [], [])
            status = decode_status(message.payload)
            if isinstance(status, Rejected):
                return Work(message, message.topic, t.site, t.gateway, None, 0, [], [status])
            return Work(
                message,
                message.topic,
                t.site,
                t.gateway,
                None,
                0,
                [status_line(status, t.site, t.gateway)],
                [],
            )
        return Work(
            message,
            message.topic,
            t.site,
            t.gateway,
            None,
            0,
            [],
            [
                Rejected(
                    Reason.BAD_TOPIC,
                    f"ingest does not take {t.channel.value}",
                    message.payload[:MAX_COPY],
                )
            ],
        )

    async def _store_snapshot(self, message: mqtt.Message, t: GatewayTopic) -> Work:
        """Store the picture for its site (whether the site is registered or not: the API
        decides who sees it), retrying while the disk or the database fails: its PUBACK,
        and every later one, waits. Bad bytes are dead-lettered, never retried."""

        def work(*rejected: Rejected) -> Work:
            return Work(message, message.topic, t.site, t.gateway, None, 0, [], list(rejected))

        sha256 = t.snapshot or ""
        if not SHA256_RE.fullmatch(sha256):
            return work(
                Rejected(
                    Reason.BAD_TOPIC,
                    f"snapshot topic ends in {sha256[:80]!r}, not a lowercase hex SHA-256",
                    message.payload[:MAX_COPY],
                )
            )
        backoff = Backoff()
        while True:
            try:
                stored = await asyncio.to_thread(
                    store_snapshot,
                    self.snapshots,
                    self.snapshot_rows,
                    site=t.site,
                    source=f"gateway:{t.gateway}",
                    data=message.payload,
                    expected_sha256=sha256,
                    max_bytes=self.settings.max_snapshot_bytes,
                )
                break
            except SnapshotError as exc:
                log.info("snapshot %s refused: %s", message.topic, exc)
                return work(
                    Rejected(SNAPSHOT_REASONS[exc.code], str(exc), message.payload[:MAX_COPY])
                )
            except (OSError, SQLAlchemyError) as exc:
                self.stats.snapshot_store_retries += 1
                delay = backoff.next_delay()
                log.warning(
                    "storing snapshot %s failed (%s: %s); retrying in %.1fs",
                    message.topic,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
        if stored.created:
            self.stats.snapshots_stored += 1
        else:
            self.stats.snapshots_resent += 1
        return work()

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
        stats = self.stats
        async for message in client.messages():
            stats.messages += 1
            self.in_flight += 1
            work = await self.take_guarded(message, int(time.time() * 1000))
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

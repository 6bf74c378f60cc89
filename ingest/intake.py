"""What one message of a gateway becomes in ingest: a :class:`Work` for the write pipeline
(lines, refused items, the batch to ack), decoded against the profiles; a reused batch
number refused; a camera snapshot stored (file fsynced, row committed) before its Work
goes on. No exception crosses :meth:`Intake.take_guarded`: a message whose handling
raises is dead-lettered whole as ``internal_error`` and its batch acked."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ingest.acked import AckedBatches, Miss
from ingest.config import IngestSettings
from ingest.pipeline import Work
from ingest.stats import IngestStats
from sitewatch.core import contract, mqtt
from sitewatch.core.backoff import Backoff
from sitewatch.core.decode import (
    BatchDecoder,
    Decoded,
    Rejected,
    TimeWindow,
    decode_status,
    recover_batch,
)
from sitewatch.core.points import status_line
from sitewatch.core.profiles import load_profiles
from sitewatch.core.reasons import Reason
from sitewatch.core.topics import (
    BATCH_CHANNELS,
    GatewayChannel,
    GatewayTopic,
    TopicError,
    parse_gateway_topic,
)
from sitewatch.domains.snapshots import (
    SHA256_RE,
    Refusal,
    SnapshotError,
    SnapshotStore,
    store_snapshot,
)

log = logging.getLogger("sitewatch.ingest")

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


class Intake:
    def __init__(
        self,
        settings: IngestSettings,
        *,
        stats: IngestStats,
        decoder: BatchDecoder | None,
        acked: AckedBatches,
        snapshot_rows: Engine,
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.decoder = decoder or build_decoder(settings)
        self.prefix = settings.mqtt.topic_prefix
        self.acked = acked
        self.snapshots = SnapshotStore(settings.snapshots_dir)
        self.snapshot_rows = snapshot_rows

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

"""The write path: chunks of points to InfluxDB, then dead letters, acks and PUBACKs.

Each MQTT message becomes one :class:`Work`. Works are gathered into chunks of about
``write_batch_points`` points (a batch is never split) and written by at most
``max_concurrent_writes`` writers. When every writer is busy, :meth:`put` waits: the
consumer stops reading, the broker stops sending once ``receive_maximum`` messages are
unacknowledged. Nothing queues without bound.

A chunk is *finished* in the order chunks were made: its gate events are appended to
the attendance ledger (the record of truth wages are paid from) and its dead letters
committed, then the ack of every batch in it is published to its gateway, then the MQTT messages
are PUBACKed (MQTT wants PUBACKs in order of receipt). Only then may a gateway forget a
batch, and only then will the broker not redeliver it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from ingest.acked import Acked, AckedBatches
from ingest.stats import IngestStats
from sitewatch.core import contract
from sitewatch.core.backoff import Backoff
from sitewatch.core.decode import Rejected
from sitewatch.core.influx import (
    InfluxAccessError,
    InfluxClient,
    PermanentWriteError,
    RetryableWriteError,
)
from sitewatch.core.mqtt import Message
from sitewatch.core.reasons import Reason
from sitewatch.domains.attendance.ledger import GateBatch, LedgerWriter
from sitewatch.domains.deadletters import DeadLetterStore, NewDeadLetter, printable

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("sitewatch.ingest.pipeline")

#: what the dead-letter store raises for rows it will never take (a constraint, a value
#: that does not fit): retrying them would hold every ack behind them for ever
_ROW_REFUSED = (DataError, IntegrityError)


def _now_ms() -> int:
    return int(time.time() * 1000)


def refusal(batch: int, r: Rejected) -> contract.Refused:
    """How a refused item is named in its batch's ack: bounded, and without control
    characters (the contract's JSON has none)."""
    return contract.Refused(
        batch=batch,
        reason=r.reason.value,
        detail=printable(r.detail, contract.MAX_REFUSED_DETAIL) or "",
        device=printable(r.device, 64),
        seq=r.seq if r.seq is not None and 0 <= r.seq < 2**63 else None,
    )


@dataclass(slots=True)
class Work:
    message: Message | None
    topic: str
    site: str | None
    gateway: str | None
    batch: int | None
    items: int
    lines: list[str]
    rejected: list[Rejected]
    stored: int = 0
    #: valid gate events of an attendance batch (for the ledger)
    gate_events: list[contract.AttendanceItem] = field(default_factory=list)
    #: digest of the batch's content, remembered under its number once it is acked
    digest: bytes | None = None


@dataclass
class _Chunk:
    works: list[Work] = field(default_factory=list)
    points: int = 0


PublishAck = Callable[[str, str, bytes], Awaitable[None]]
Puback = Callable[[Message], None]


class WritePipeline:
    def __init__(
        self,
        *,
        influx: InfluxClient,
        dead_letters: DeadLetterStore,
        ledger: LedgerWriter,
        publish_ack: PublishAck,
        puback: Puback,
        stats: IngestStats,
        batch_points: int,
        flush_interval_s: float,
        max_concurrent_writes: int,
        acked: AckedBatches | None = None,
    ) -> None:
        self._acked = acked
        self._influx = influx
        self._dead_letters = dead_letters
        self._ledger = ledger
        self._publish_ack = publish_ack
        self._puback = puback
        self._stats = stats
        self._batch_points = batch_points
        self._flush_interval_s = flush_interval_s
        self._writers = asyncio.Semaphore(max_concurrent_writes)
        self._chunk = _Chunk()
        self._chunk_started = 0.0
        self._last_finish: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None

    async def put(self, work: Work) -> None:
        if self._failure is not None:
            raise self._failure
        if not self._chunk.works:
            self._chunk_started = asyncio.get_running_loop().time()
        self._chunk.works.append(work)
        self._chunk.points += len(work.lines)
        if self._chunk.points >= self._batch_points:
            await self.flush()

    async def run_timer(self) -> None:
        """Flush a partial chunk once it is ``flush_interval_s`` old."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._flush_interval_s / 2)
            if self._failure is not None:
                raise self._failure
            if self._chunk.works and loop.time() - self._chunk_started >= self._flush_interval_s:
                await self.flush()

    async def flush(self) -> None:
        if not self._chunk.works:
            return
        chunk, self._chunk = self._chunk, _Chunk()
        await self._writers.acquire()  # backpressure: waits while all writers are busy
        previous = self._last_finish
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._last_finish = done
        task = asyncio.create_task(
            self._write_and_finish(chunk, previous, done), name="influx-write"
        )
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._failure = task.exception()
            log.error("write pipeline failed: %r", self._failure)

    async def drain(self) -> None:
        """Write and finish everything taken so far (used at shutdown)."""
        await self.flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def cancel(self) -> None:
        for t in list(self._tasks):
            t.cancel()

    async def _write_and_finish(
        self, chunk: _Chunk, previous: asyncio.Future[None] | None, done: asyncio.Future[None]
    ) -> None:
        try:
            try:
                await self._write_chunk(chunk)
            finally:
                self._writers.release()
            if previous is not None:
                await previous
            await self._finish(chunk)
            done.set_result(None)
        except BaseException as exc:
            if not done.done():
                done.set_exception(exc)
                done.exception()  # mark retrieved; the task's failure is reported instead
            raise

    async def _write_chunk(self, chunk: _Chunk) -> None:
        lines = [ln for w in chunk.works for ln in w.lines]
        if not lines:
            return
        try:
            await self._write_retrying(lines)
            for w in chunk.works:
                w.stored = len(w.lines)
        except PermanentWriteError:
            # find the points InfluxDB refuses; rewriting the others is idempotent
            for w in chunk.works:
                await self._write_bisect(w, w.lines)

    async def _write_retrying(self, lines: list[str]) -> None:
        body = ("\n".join(lines) + "\n").encode()
        backoff = Backoff()
        while True:
            try:
                await self._influx.write(body)
                self._stats.writes += 1
                return
            except InfluxAccessError as exc:
                self._stats.write_access_errors += 1
                delay = backoff.next_delay()
                log.error(
                    "InfluxDB write refused, %s; holding %d points (the gateways keep "
                    "theirs) and retrying in %.1fs",
                    exc,
                    len(lines),
                    delay,
                )
                await asyncio.sleep(delay)
            except RetryableWriteError as exc:
                self._stats.write_retries += 1
                delay = backoff.next_delay()
                log.warning(
                    "InfluxDB write failed (%s); retrying in %.1fs, holding %d points",
                    exc,
                    delay,
                    len(lines),
                )
                await asyncio.sleep(delay)

    async def _write_bisect(self, work: Work, lines: list[str]) -> None:
        if not lines:
            return
        try:
            await self._write_retrying(lines)
            work.stored += len(lines)
        except PermanentWriteError as exc:
            if len(lines) == 1:
                work.rejected.append(Rejected(Reason.INFLUX_REJECTED, str(exc), lines[0].encode()))
                return
            mid = len(lines) // 2
            await self._write_bisect(work, lines[:mid])
            await self._write_bisect(work, lines[mid:])

    async def _store_dead_letters(self, rows: list[NewDeadLetter], *, each: bool = False) -> None:
        """Insert, retrying while the store is down: the acks wait, nothing is dropped.
        Rows the store refuses for good (or that make it raise anything but an outage)
        are stored one by one; a row refused even alone is logged and counted, so that
        it cannot hold every later ack for ever."""
        backoff = Backoff()
        while True:
            try:
                await asyncio.to_thread(self._dead_letters.add_many, rows)
                return
            except SQLAlchemyError as exc:
                if not isinstance(exc, _ROW_REFUSED):
                    self._stats.dead_letter_retries += 1
                    delay = backoff.next_delay()
                    log.warning(
                        "dead-letter store failed (%s); retrying in %.1fs, holding %d rows",
                        type(exc).__name__,
                        delay,
                        len(rows),
                    )
                    await asyncio.sleep(delay)
                    continue
                refusal: Exception = exc
            except Exception as exc:  # not the database's: a bug, or a value it cannot take
                refusal = exc
            if not each:
                for row in rows:
                    await self._store_dead_letters([row], each=True)
                return
            self._stats.dead_letters_refused += 1
            r = rows[0]
            log.error(
                "dead-letter store refused the row of %s (reason %s, device %r, "
                "%d bytes): %s: %s; not kept",
                r.topic,
                r.reason,
                r.device,
                len(r.payload),
                type(refusal).__name__,
                refusal,
            )
            return

    async def _remember_acked(self, store: AckedBatches, rows: list[Acked]) -> None:
        """Remember what was acked under each number, retrying while the store is down:
        the acks wait (a reused number must never be acknowledged as the first)."""

        def retried() -> None:
            self._stats.acked_batches_retries += 1

        await self._until_stored("acked batches store", len(rows), retried, store.store, rows)

    async def _append_gate_events(self, batches: list[GateBatch]) -> None:
        """Append to the ledger, retrying while the store is down: the acks wait."""

        def retried() -> None:
            self._stats.ledger_retries += 1

        def append() -> int:
            return self._ledger.append(batches, _now_ms())

        added = await self._until_stored("attendance ledger", len(batches), retried, append)
        total = sum(len(b.items) for b in batches)
        self._stats.gate_events_appended += added
        self._stats.gate_events_resent += total - added

    @staticmethod
    async def _until_stored(
        what: str,
        held: int,
        retried: Callable[[], None],
        call: Callable[P, R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """``call`` in a worker thread until the SQL store takes it: each failure is
        counted (``retried``) and logged, and the batches held wait with jittered backoff."""
        backoff = Backoff()
        while True:
            try:
                return await asyncio.to_thread(call, *args, **kwargs)
            except SQLAlchemyError as exc:
                retried()
                delay = backoff.next_delay()
                log.warning(
                    "%s failed (%s); retrying in %.1fs, holding %d batches",
                    what,
                    type(exc).__name__,
                    delay,
                    held,
                )
                await asyncio.sleep(delay)

    async def _finish(self, chunk: _Chunk) -> None:
        gates = [
            GateBatch(w.site, w.gateway, w.gate_events)
            for w in chunk.works
            if w.gate_events and w.site is not None and w.gateway is not None
        ]
        if gates:
            await self._append_gate_events(gates)
        rows = [
            NewDeadLetter(
                w.topic,
                w.site,
                w.gateway,
                w.batch,
                r.device,
                r.seq,
                r.reason.value,
                r.detail,
                r.payload,
            )
            for w in chunk.works
            for r in w.rejected
        ]
        if rows:
            await self._store_dead_letters(rows)
        if self._acked is not None:
            done = [
                Acked(w.site, w.gateway, w.batch, w.digest)
                for w in chunk.works
                if w.digest is not None
                and w.batch is not None
                and w.site is not None
                and w.gateway is not None
            ]
            if done:
                await self._remember_acked(self._acked, done)
        acks: dict[tuple[str, str], list[contract.AckEntry]] = defaultdict(list)
        refused: dict[tuple[str, str], list[contract.Refused]] = defaultdict(list)
        for w in chunk.works:
            if w.items:  # batch items only, not status messages
                self._stats.items_stored += w.stored
            for r in w.rejected:
                self._stats.rejected[r.reason.value] += 1
            if w.batch is not None and w.site is not None and w.gateway is not None:
                acks[(w.site, w.gateway)].append(
                    contract.AckEntry(
                        batch=w.batch,
                        stored=min(w.stored, contract.MAX_ITEMS),
                        rejected=min(len(w.rejected), contract.MAX_ITEMS),
                    )
                )
                named = refused[(w.site, w.gateway)]
                room = contract.MAX_REFUSED_PER_ACK - len(named)
                named.extend(
                    refusal(w.batch, r)
                    for r in w.rejected[: min(room, contract.MAX_REFUSED_PER_BATCH)]
                )
        for (site, gateway), entries in acks.items():
            try:
                ack = contract.Ack(
                    acks=entries, now=time.time_ns() // 1_000_000, refused=refused[(site, gateway)]
                )
                await self._publish_ack(site, gateway, contract.encode(ack))
            except Exception:
                # the PUBACKs still go out; the gateway sends the batch again, and the
                # resend is harmless
                self._stats.ack_errors += 1
                log.exception(
                    "ack of batches %s to %s/%s failed", [e.batch for e in entries], site, gateway
                )
                continue
            self._stats.acks_published += len(entries)
        for w in chunk.works:
            if w.message is not None:
                self._puback(w.message)

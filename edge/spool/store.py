"""The spool itself (:class:`Spool`): it takes readings in within its bounds, gives out
their numbers (seqs, batch numbers, boots), commits batches with their counters, hands
out what is due to send and forgets what is acknowledged, dropped or expired.

Each commit is ONE transaction: the batches' payloads, as they will be sent, the counters
they use and the deletions waiting for a write, fsynced before anything is sent. Before a
commit would go past the counters file's reservations (:mod:`edge.counters`),
the file is moved ahead first. Readings not yet committed when the power goes were never
sent nor acknowledged to a device; their seqs are given out again. Data older than
``max_age_s`` is dropped (counted). A batch dropped while in flight may still be stored
by ingest: when its ack comes, its readings are taken off the count again, so the count
is what was really lost.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from edge.counters import (
    CounterFile,
    CounterFileError,
    DirectEpisode,
    DirectFlag,
    Reserved,
)
from edge.spool.batches import (
    PendingBatch,
    PendingReading,
    SpooledBatch,
    batch_payload,
)
from edge.spool.bounds import SpoolBounds, SpoolLimits
from edge.spool.file import (
    UPSERT,
    UPSERT_MAX,
    SpoolUnavailable,
    is_corrupt,
    open_database,
    rollback,
)
from edge.spool.ledger import BatchLedger
from edge.spool.resume import clear_flag, open_flag, resume

log = logging.getLogger("sitewatch.edge.spool")


class SpoolWriteError(Exception):
    """The spool could not store data (disk full, I/O error); the data was not kept."""


class Spool(SpoolBounds):
    def __init__(
        self,
        path: Path,
        limits: SpoolLimits | None = None,
        counters: Path | None = None,
        direct_flag: Path | None = None,
    ) -> None:
        """Open (or create) the spool. Raises :class:`SpoolUnavailable` when the disk
        cannot be used now; a corrupt file is moved aside and a new spool started."""
        super().__init__(limits)
        self.path = path
        self._wlock = threading.Lock()  # the writing connection
        self._rlock = threading.Lock()  # the reading connection
        self._file = CounterFile(counters or path.with_name("counters.json"))
        self._flag = DirectFlag(direct_flag or path.with_name("direct.flag"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            reserved = self._file.load()
            self._flag.read()
        except (OSError, CounterFileError) as exc:
            raise SpoolUnavailable(str(exc)) from exc
        self._db, moved = open_database(path, self._file)
        #: corrupt spool files moved aside: by this open (0 or 1), and ever (kept in the
        #: counters file)
        self.resets = moved
        self.resets_ever = reserved.resets + moved
        try:
            self._reader = sqlite3.connect(path, check_same_thread=False)
            numbers = resume(self._db, path, self._file, self._flag, reserved)
            #: which batches are held, sent when, and deleted with the next write
            self._ledger = BatchLedger()
            self.bytes_used = self._ledger.load(self._db)
        except sqlite3.Error as exc:
            self._db.close()
            if is_corrupt(exc):  # found reading it: next open moves it aside
                raise SpoolUnavailable(f"spool unreadable: {exc}") from exc
            raise SpoolUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except CounterFileError as exc:
            self._db.close()
            raise SpoolUnavailable(str(exc)) from exc
        self._seq, self._ts, self._seq_floor = numbers.seq, numbers.ts, numbers.seq_floor
        self._batch, self._boot = numbers.batch, numbers.boot
        self.dropped = self._dropped_saved = numbers.dropped
        self._committed_seq = dict(self._seq)
        self._committed_ts = dict(self._ts)
        open_flag(self._flag)
        #: monotonic time of the last transaction written (commit or sync)
        self.last_write = 0.0
        #: batches were sent outside the spool (their readings held, not yet committed)
        self._direct_unstored = False
        #: readings not sent outside the spool because direct.flag could not be written
        self.direct_flag_errors = 0

    def close(self) -> None:
        try:
            self.sync()
            if not self._direct_unstored:
                clear_flag(self._flag)
                r = self._file.value
                if not r.clean:
                    self._file.store(
                        Reserved(
                            r.boot,
                            r.resets,
                            r.batch_floor,
                            r.batch,
                            dict(r.seq),
                            dict(r.ts),
                            clean=True,
                        )
                    )
        except (SpoolWriteError, CounterFileError):
            pass  # counted and logged; what was not deleted is sent again next time
        with self._wlock, self._rlock:
            self._db.close()
            self._reader.close()

    # -- counters ------------------------------------------------------------------
    def next_boot(self) -> int:
        """Count this start of the agent (carried in status and Last Will). Raises
        :class:`SpoolUnavailable` if it cannot be stored."""
        with self._wlock:
            boot = max(self._boot, self._file.value.boot) + 1
            try:
                r = self._file.value
                self._file.store(
                    Reserved(
                        boot, r.resets, r.batch_floor, r.batch, dict(r.seq), dict(r.ts), clean=False
                    )
                )
                self._db.execute(UPSERT, ("boot", boot))
            except (sqlite3.Error, CounterFileError) as exc:
                raise SpoolUnavailable(f"cannot count the boot: {exc}") from exc
            self._boot = boot
            return boot

    def peek_seq(self, device: str) -> int:
        """The seq the next reading of ``device`` will get."""
        return max(self._seq.get(device, 0), self._seq_floor) + 1

    def next_seq(self, device: str) -> int:
        """Give out the next seq of ``device``; it is persisted with the batch that
        carries the reading."""
        seq = self.peek_seq(device)
        self._seq[device] = seq
        return seq

    def direct_batch_number(self, device: str, seq: int, ts: int) -> int | None:
        """A batch number for a batch sent outside the spool (the gateway's health while
        the disk is full) of ``device``'s reading ``seq`` at ``ts``, never given again:
        taken below the counters file's reservation, which a restart after a stop that
        was not clean resumes above. The reading's seq and timestamp are first recorded
        in direct.flag (in place, fsynced), which a restart resumes the device above
        until the reading is committed. None when the reservation is used up, a commit
        is under way, or the flag could not be written (then nothing may be sent)."""
        if not self._wlock.acquire(blocking=False):  # a commit under way: not now
            return None
        try:
            if self._batch + 1 > self._file.value.batch:
                return None
            ep = self._flag.episode
            if ep is not None and ep.device != device:
                return None
            try:
                self._flag.write(
                    DirectEpisode(
                        device, max(seq, ep.seq if ep else 0), max(ts, ep.ts if ep else -1)
                    )
                )
            except CounterFileError as exc:
                self.direct_flag_errors += 1
                (log.error if self.direct_flag_errors == 1 else log.debug)(
                    "spool: %s; the reading is held, not sent outside the spool", exc
                )
                return None
            self._batch += 1
            self._direct_unstored = True
            return self._batch
        finally:
            self._wlock.release()

    def direct_stored(self) -> None:
        """The readings of the batches sent outside the spool are committed now: the
        episode in direct.flag is closed (in place)."""
        self._direct_unstored = False
        clear_flag(self._flag)

    def give_seq(self, device: str, seq: int) -> None:
        """Give out ``seq``, which :meth:`peek_seq` said is ``device``'s next."""
        self._seq[device] = seq

    def last_seqs(self) -> dict[str, int]:
        """The last seq given out per device."""
        return dict(self._seq)

    def last_timestamps(self) -> dict[str, int]:
        """Per device, the timestamp every later reading must be stamped past: the last
        one committed (or, after a lost spool, the reserved ceiling)."""
        return dict(self._ts)

    def next_batch_number(self) -> int:
        return self._batch + 1

    # -- commits ----------------------------------------------------------------------
    def commit(
        self, groups: Sequence[tuple[str, Sequence[PendingReading]]], sent_ms: int
    ) -> list[SpooledBatch]:
        """Make one batch of each group of readings (one channel each) and commit them
        all, with their counters and the pending deletions, in one fsynced transaction.
        On failure every reading is dropped (counted) and SpoolWriteError raised."""
        return self.commit_batches([PendingBatch.of(c, rs) for c, rs in groups if rs], sent_ms)

    def commit_batches(
        self, pending: Sequence[PendingBatch], sent_ms: int, keep: bool = False
    ) -> list[SpooledBatch]:
        """:meth:`commit` of batches gathered as their readings were taken. With
        ``keep``, a failure drops nothing: the caller keeps the readings (and their
        space) to try again."""
        pending = [p for p in pending if p.bodies]
        if not pending:
            return []
        n_readings = sum(len(p.bodies) for p in pending)
        body_bytes = sum(p.size for p in pending)
        seq: dict[str, int] = {}
        ts: dict[str, int] = {}
        for p in pending:
            for d, s in p.seq.items():
                if s > seq.get(d, 0):
                    seq[d] = s
            for d, t in p.ts.items():
                if t > ts.get(d, -1):
                    ts[d] = t
        with self._wlock:
            if self.disk_refusing():
                if not keep:
                    self._failed(n_readings, body_bytes, None)
                raise SpoolWriteError("disk full or failing; not tried again yet")
            first = self._batch + 1
            built = [
                SpooledBatch(
                    first + i,
                    p.channel,
                    len(p.bodies),
                    batch_payload(first + i, sent_ms, p.bodies),
                    p.created,
                )
                for i, p in enumerate(pending)
            ]
            last = first + len(pending) - 1
            with self._lock:
                deletes = sorted(self._ledger.to_delete)
                dropped = self.dropped
            try:
                self._reserve(last, seq, ts)
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT INTO batches (batch, channel, items, payload, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(b.batch, b.channel, b.items, b.payload, b.created) for b in built],
                )
                self._write_counters(last, seq, ts, dropped, deletes)
                self._db.execute("COMMIT")
            except (sqlite3.Error, CounterFileError) as exc:
                rollback(self._db)
                self._failed(0 if keep else n_readings, 0 if keep else body_bytes, exc)
                raise SpoolWriteError(str(exc)) from exc
            self._batch = last
            self._committed_seq.update(seq)
            self._committed_ts.update(ts)
            for d, t in ts.items():
                if t > self._ts.get(d, -1):
                    self._ts[d] = t
            with self._lock:
                self._ledger.to_delete.difference_update(deletes)
                self._dropped_saved = dropped
                self._ledger.add(built)
                self.bytes_used += sum(len(b.payload) for b in built) - body_bytes
            self.last_write = time.monotonic()
            self._write_ok()
        return built

    def _reserve(self, batch: int, seq: dict[str, int], ts: dict[str, int]) -> None:
        if self._file.value.covers(batch, seq, ts):
            return
        # every device moves ahead together: one write serves them all for a while
        all_seq = {**self._committed_seq, **seq}
        all_ts = {**self._committed_ts, **ts}
        self._file.reserve(self._batch, batch, all_seq, all_ts)

    def _write_counters(
        self, batch: int, seq: dict[str, int], ts: dict[str, int], dropped: int, deletes: list[int]
    ) -> None:
        rows = [("batch", batch), ("dropped", dropped)]
        rows += [(f"seq:{d}", s) for d, s in seq.items()]
        self._db.executemany(UPSERT, rows[:2])
        self._db.executemany(UPSERT_MAX, rows[2:] + [(f"ts:{d}", t) for d, t in ts.items()])
        if deletes:
            self._db.executemany("DELETE FROM batches WHERE batch=?", [(b,) for b in deletes])

    def sync(self) -> None:
        """Persist the deletions and the drop count that wait for a commit (called a
        second or so after them when no batch comes; at close)."""
        with self._wlock:
            with self._lock:
                deletes = sorted(self._ledger.to_delete)
                dropped = self.dropped
            if not deletes and dropped == self._dropped_saved:
                return
            if self.disk_refusing():
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(UPSERT, ("dropped", dropped))
                if deletes:
                    self._db.executemany(
                        "DELETE FROM batches WHERE batch=?", [(b,) for b in deletes]
                    )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                rollback(self._db)
                self._failed(0, 0, exc)
                raise SpoolWriteError(str(exc)) from exc
            with self._lock:
                self._ledger.to_delete.difference_update(deletes)
                self._dropped_saved = dropped
            self.last_write = time.monotonic()
            self._write_ok()

    def needs_sync(self) -> bool:
        return bool(self._ledger.to_delete) or self.dropped != self._dropped_saved

    # -- sending, acks ---------------------------------------------------------------
    def mark_sent(self, batches: list[int], when: float | None = None) -> None:
        sent_at = when or time.time()
        with self._lock:
            self._ledger.mark_sent(batches, sent_at)

    def forget_sent(self) -> None:
        """After a reconnect nothing sent before counts: everything pending is due."""
        with self._lock:
            self._ledger.forget_sent()

    def due(self, ack_timeout_s: float, limit: int, now: float | None = None) -> list[SpooledBatch]:
        """Batches never sent, or whose ack is overdue: oldest first.

        The wait doubles with every attempt (ack_timeout_s, 2x, 4x ... up to 16x), so a
        long outage of ingest does not pile up copies of every batch at the broker.
        """
        now = now or time.time()
        with self._lock:
            entries = self._ledger.due(ack_timeout_s, limit, now)
        if not entries:
            return []
        with self._rlock:
            marks = ",".join("?" * len(entries))
            payloads = {
                int(b): bytes(p)
                for b, p in self._reader.execute(
                    f"SELECT batch, payload FROM batches WHERE batch IN ({marks})",
                    [b for b, _ in entries],
                )
            }
        return [
            SpooledBatch(b, e.channel, e.items, payloads[b], e.created)
            for b, e in entries
            if b in payloads
        ]

    def acknowledge(self, batches: list[int]) -> int:
        """Ingest stored these batches: they go (deleted with the next commit)."""
        with self._lock:
            removed, delivered, freed = self._ledger.acknowledge(batches)
            self.bytes_used -= freed
        if delivered:
            self.count_dropped(-delivered, "dropped while in flight, but stored after all")
        return removed

    # -- bounds ------------------------------------------------------------------------
    def expire(self, now: float | None = None) -> int:
        """Drop batches older than ``max_age_s``; return the readings dropped."""
        cutoff = (now or time.time()) - self.limits.max_age_s
        with self._lock:
            dropped, freed = self._ledger.expire(cutoff)
            self.bytes_used -= freed
        self.count_dropped(dropped, f"older than max_age_s={self.limits.max_age_s:g}")
        return dropped

    def _drop_oldest(self, need: int) -> None:
        with self._lock:
            dropped, freed = self._ledger.drop_oldest(need)
            self.bytes_used -= freed
        self.count_dropped(dropped, "spool full, dropping the oldest data")

    # -- state -------------------------------------------------------------------------
    def depth(self) -> int:
        """Batches waiting for acknowledgement."""
        return len(self._ledger.batches)

    def readings_waiting(self) -> int:
        return self._ledger.items

    def oldest_age_s(self, now: float | None = None) -> float:
        with self._lock:
            oldest = min((e.created for e in self._ledger.batches.values()), default=None)
        return 0.0 if oldest is None else max(0.0, (now or time.time()) - oldest)

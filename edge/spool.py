"""The gateway's on-disk spool: every reading is kept until ingest acknowledges it.

Durability: SQLite in WAL mode with ``synchronous=FULL`` — every commit fsyncs the WAL,
so a reading whose commit returned survives a power cut. (``NORMAL`` would only fsync at
checkpoints and lose the last commits on power loss; a flat append-only file with our
own fsync would need its own crash recovery, which SQLite already has.) Readings that
arrive together share one commit (group commit), done in a worker thread so that the
agent's event loop never waits on the disk.

Two tables: ``readings`` holds committed readings not yet in a batch; ``batches`` holds
batches built from them (in one transaction that also deletes the readings). Batch
numbers and per-device seq counters live in ``counters`` and are committed in the same
transaction as the data that uses them, so no number is ever used twice.

Bounds: ``max_bytes`` and ``max_age_s``. When a new reading does not fit, the policy
decides: ``drop_oldest`` deletes the oldest batches (then readings) to make room;
``refuse_newest`` does not take the reading (it gets no seq, so stored seqs stay
contiguous). Data older than ``max_age_s`` is deleted. Every dropped reading is counted,
in a counter that survives restarts. A batch dropped while it was in flight may still be
stored by ingest: when its ack comes, its readings are taken off the count again, so the
count is what was really lost.

A disk-full error refuses the readings at hand (counted, logged once per episode) and
the agent carries on. A spool file that SQLite cannot read is moved aside
(``spool.sqlite.corrupt-<time>``) and a new one started; its counters start from the
wall clock in milliseconds, above any number used before, so none is reused.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

log = logging.getLogger("sitewatch.edge.spool")

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    channel  TEXT    NOT NULL,
    device   TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    body     BLOB    NOT NULL,        -- the contract item, encoded
    created  REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    batch    INTEGER PRIMARY KEY,
    channel  TEXT    NOT NULL,
    items    INTEGER NOT NULL,
    payload  BLOB    NOT NULL,
    created  REAL    NOT NULL,        -- when its oldest reading was spooled
    sent_at  REAL,                    -- last time it was published; NULL: not yet
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,           -- 'batch', 'boot', 'dropped', 'seq:<device>'
    value INTEGER NOT NULL
);
"""


class FullPolicy(StrEnum):
    DROP_OLDEST = "drop_oldest"
    REFUSE_NEWEST = "refuse_newest"


@dataclass(frozen=True)
class SpoolLimits:
    max_bytes: int = 512 * 1024 * 1024
    max_age_s: float = 30 * 86400
    policy: FullPolicy = FullPolicy.DROP_OLDEST


@dataclass(frozen=True, slots=True)
class PendingReading:
    channel: str
    device: str
    seq: int
    body: bytes


@dataclass(frozen=True, slots=True)
class SpooledReading:
    id: int
    channel: str
    body: bytes
    created: float


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    batch: int
    channel: str
    items: int
    payload: bytes
    created: float


class SpoolWriteError(Exception):
    """The spool could not store data (disk full, I/O error); the data was not kept."""


def _is_full(exc: sqlite3.Error) -> bool:
    return "full" in str(exc).lower() or getattr(exc, "sqlite_errorcode", 0) == 13


class Spool:
    #: in-flight batches remembered after a drop, waiting for a late ack
    MAX_IN_FLIGHT_DROPS = 10_000

    def __init__(self, path: Path, limits: SpoolLimits | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.limits = limits or SpoolLimits()
        self._lock = threading.Lock()
        self.resets = 0
        self._db = self._open()
        self._seq: dict[str, int] = {}
        for name, value in self._db.execute(
                "SELECT name, value FROM counters WHERE name LIKE 'seq:%'"):
            self._seq[name[4:]] = int(value)
        self._batch = self._counter("batch")
        self._floor = self._counter("seq_floor")  # set when a corrupt spool was replaced
        self.dropped = self._counter("dropped")
        self.bytes_used = int(self._db.execute(
            "SELECT coalesce((SELECT sum(length(payload)) FROM batches), 0)"
            " + coalesce((SELECT sum(length(body)) FROM readings), 0)").fetchone()[0])
        self._disk_full = False
        #: batches dropped while in flight (sent, not acknowledged): batch -> readings
        self._dropped_in_flight: dict[int, int] = {}

    # -- opening, corruption ---------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        row = db.execute("PRAGMA quick_check").fetchone()
        if row is None or row[0] != "ok":
            db.close()
            raise sqlite3.DatabaseError(f"quick_check: {row[0] if row else 'no answer'}")
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error("spool %s is unreadable (%s): moved to %s, starting a new spool; "
                      "its unsent data is lost, counters restart from the clock",
                      self.path, exc, aside)
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    p.rename(Path(str(aside) + suffix))
            db = self._connect()
            clock = int(time.time() * 1000)
            db.execute("INSERT OR REPLACE INTO counters VALUES ('batch', ?)", (clock,))
            db.execute("INSERT OR REPLACE INTO counters VALUES ('seq_floor', ?)", (clock,))
            self.resets += 1
            return db

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- counters --------------------------------------------------------------------
    def next_boot(self) -> int:
        """Count this start of the agent (carried in status and Last Will)."""
        with self._lock:
            boot = self._counter("boot") + 1
            self._db.execute("INSERT OR REPLACE INTO counters VALUES ('boot', ?)", (boot,))
            return boot

    def peek_seq(self, device: str) -> int:
        """The seq the next reading of ``device`` will get."""
        return max(self._seq.get(device, 0), self._floor) + 1

    def next_seq(self, device: str) -> int:
        """Reserve the next seq of ``device``; it is persisted with the reading that uses it."""
        seq = self.peek_seq(device)
        self._seq[device] = seq
        return seq

    def last_seqs(self) -> dict[str, int]:
        """The last seq handed out per device."""
        return dict(self._seq)

    def next_batch_number(self) -> int:
        return self._batch + 1

    # -- readings ----------------------------------------------------------------------
    def admit(self, size: int) -> bool:
        """May a reading of ``size`` bytes be spooled? Applies the full policy and, if
        yes, reserves the space (the reading must then go to :meth:`add_readings`)."""
        if self._disk_full:
            self._count_dropped(1, "disk full")
            return False
        if self.bytes_used + size > self.limits.max_bytes:
            if self.limits.policy is FullPolicy.REFUSE_NEWEST:
                self._count_dropped(1, "spool full, refusing the newest reading")
                return False
            self._drop_oldest(self.bytes_used + size - self.limits.max_bytes)
        self.bytes_used += size
        return True

    def add_readings(self, readings: list[PendingReading]) -> list[SpooledReading]:
        """Commit readings and their seq counters in one fsynced transaction."""
        if not readings:
            return []
        now = time.time()
        seqs: dict[str, int] = {}
        for r in readings:
            seqs[r.device] = max(seqs.get(r.device, 0), r.seq)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                ids = []
                for r in readings:
                    cur = self._db.execute(
                        "INSERT INTO readings (channel, device, seq, body, created) "
                        "VALUES (?, ?, ?, ?, ?)", (r.channel, r.device, r.seq, r.body, now))
                    ids.append(int(cur.lastrowid or 0))
                self._db.executemany(
                    "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE "
                    "SET value = max(value, excluded.value)",
                    [(f"seq:{d}", s) for d, s in seqs.items()])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self.bytes_used -= sum(len(r.body) for r in readings)  # the reservations
                self._write_failed(exc, len(readings))
                raise SpoolWriteError(str(exc)) from exc
        if self._disk_full:
            log.warning("spool writes work again")
            self._disk_full = False
        return [SpooledReading(i, r.channel, r.body, now) for i, r in zip(ids, readings,
                                                                           strict=True)]

    def unbatched(self) -> list[SpooledReading]:
        """Committed readings not yet in a batch (after a restart), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, channel, body, created FROM readings ORDER BY id").fetchall()
        return [SpooledReading(int(i), c, bytes(b), float(t)) for i, c, b, t in rows]

    def make_batch(self, channel: str, readings: list[SpooledReading],
                   sent_ms: int) -> SpooledBatch | None:
        """Move readings into a new batch (one transaction); None if they were dropped."""
        ids = [r.id for r in readings]
        with self._lock:
            marks = ",".join("?" * len(ids))
            present = {int(i) for (i,) in self._db.execute(
                f"SELECT id FROM readings WHERE id IN ({marks})", ids)}
            kept = [r for r in readings if r.id in present]
            if not kept:
                return None
            number = self._batch + 1
            payload = (b'{"v":1,"batch":%d,"sent":%d,"items":[' % (number, sent_ms)
                       + b",".join(r.body for r in kept) + b"]}")
            created = min(r.created for r in kept)
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO batches (batch, channel, items, payload, created) "
                    "VALUES (?, ?, ?, ?, ?)", (number, channel, len(kept), payload, created))
                self._db.execute("INSERT OR REPLACE INTO counters VALUES ('batch', ?)",
                                 (number,))
                self._db.executemany("DELETE FROM readings WHERE id=?",
                                     [(r.id,) for r in kept])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self._write_failed(exc, 0)
                raise SpoolWriteError(str(exc)) from exc
            self._batch = number
        self.bytes_used += len(payload) - sum(len(r.body) for r in kept)
        return SpooledBatch(number, channel, len(kept), payload, created)

    # -- batches -------------------------------------------------------------------------
    def mark_sent(self, batches: list[int], when: float | None = None) -> None:
        if not batches:
            return
        with self._lock:
            self._db.executemany(
                "UPDATE batches SET sent_at=?, attempts=attempts+1 WHERE batch=?",
                [(when or time.time(), b) for b in batches])

    def forget_sent(self) -> None:
        """After a reconnect nothing sent before counts: everything pending is due."""
        with self._lock:
            self._db.execute("UPDATE batches SET sent_at=NULL")

    def due(self, ack_timeout_s: float, limit: int,
            now: float | None = None) -> list[SpooledBatch]:
        """Batches never sent, or whose ack is overdue: oldest first.

        The wait doubles with every attempt (ack_timeout_s, 2x, 4x ... up to 16x), so a
        long outage of ingest does not pile up copies of every batch at the broker.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT batch, channel, items, payload, created FROM batches "
                "WHERE sent_at IS NULL "
                "OR sent_at + ? * min(1 << max(attempts - 1, 0), 16) < ? "
                "ORDER BY batch LIMIT ?",
                (ack_timeout_s, now or time.time(), limit)).fetchall()
        return [SpooledBatch(int(b), c, int(n), bytes(p), float(t)) for b, c, n, p, t in rows]

    def acknowledge(self, batches: list[int]) -> int:
        if not batches:
            return 0
        with self._lock:
            marks = ",".join("?" * len(batches))
            freed = self._db.execute(
                f"SELECT coalesce(sum(length(payload)), 0) FROM batches WHERE batch IN ({marks})",
                batches).fetchone()[0]
            cur = self._db.execute(f"DELETE FROM batches WHERE batch IN ({marks})", batches)
        self.bytes_used -= int(freed)
        delivered = sum(self._dropped_in_flight.pop(b, 0) for b in batches)
        if delivered:
            self._count_dropped(-delivered, "dropped while in flight, but stored after all")
        return int(cur.rowcount)

    # -- bounds ----------------------------------------------------------------------------
    def expire(self, now: float | None = None) -> int:
        """Drop data older than ``max_age_s``; return the readings dropped."""
        cutoff = (now or time.time()) - self.limits.max_age_s
        with self._lock:
            n_b, bytes_b = self._db.execute(
                "SELECT coalesce(sum(items), 0), coalesce(sum(length(payload)), 0) "
                "FROM batches WHERE created < ?", (cutoff,)).fetchone()
            n_r, bytes_r = self._db.execute(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM readings "
                "WHERE created < ?", (cutoff,)).fetchone()
            if not (n_b or n_r):
                return 0
            self._db.execute("DELETE FROM batches WHERE created < ?", (cutoff,))
            self._db.execute("DELETE FROM readings WHERE created < ?", (cutoff,))
        self.bytes_used -= int(bytes_b) + int(bytes_r)
        self._count_dropped(int(n_b) + int(n_r),
                            f"older than max_age_s={self.limits.max_age_s:g}")
        return int(n_b) + int(n_r)

    def _drop_oldest(self, need: int) -> None:
        freed = dropped = 0
        with self._lock:
            while freed < need:
                row = self._db.execute(
                    "SELECT batch, items, length(payload), sent_at FROM batches "
                    "ORDER BY batch LIMIT 1").fetchone()
                if row is not None:
                    self._db.execute("DELETE FROM batches WHERE batch=?", (row[0],))
                    freed, dropped = freed + int(row[2]), dropped + int(row[1])
                    if row[3] is not None:
                        self._note_in_flight(int(row[0]), int(row[1]))
                    continue
                row = self._db.execute(
                    "SELECT id, length(body) FROM readings ORDER BY id LIMIT 1").fetchone()
                if row is None:
                    break
                self._db.execute("DELETE FROM readings WHERE id=?", (row[0],))
                freed, dropped = freed + int(row[1]), dropped + 1
        self.bytes_used -= freed
        self._count_dropped(dropped, "spool full, dropping the oldest data")

    def _note_in_flight(self, batch: int, items: int) -> None:
        self._dropped_in_flight[batch] = items
        if len(self._dropped_in_flight) > self.MAX_IN_FLIGHT_DROPS:  # acks that never came
            del self._dropped_in_flight[next(iter(self._dropped_in_flight))]

    def _count_dropped(self, n: int, why: str) -> None:
        """Add ``n`` (negative: readings found delivered after all) to the count."""
        if n == 0:
            return
        first = self.dropped == 0
        self.dropped += n
        with self._lock:
            try:
                self._db.execute("INSERT OR REPLACE INTO counters VALUES ('dropped', ?)",
                                 (self.dropped,))
            except sqlite3.Error:
                pass  # the count stays in memory; the disk is the problem being reported
        (log.warning if first else log.debug)("spool dropped %d reading(s): %s (%d in all)",
                                              n, why, self.dropped)

    def _write_failed(self, exc: sqlite3.Error, readings: int) -> None:
        if _is_full(exc):
            if not self._disk_full:
                log.error("spool: disk full (%s); refusing new readings until there is room",
                          exc)
            self._disk_full = True
        else:
            log.error("spool write failed: %s", exc)
        self.dropped += readings

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def retry_disk(self) -> None:
        """Let the next reading try the disk again (called periodically)."""
        self._disk_full = False

    # -- state -----------------------------------------------------------------------------
    def depth(self) -> int:
        """Batches waiting for acknowledgement."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM batches").fetchone()[0])

    def readings_waiting(self) -> int:
        with self._lock:
            return int(self._db.execute(
                "SELECT coalesce((SELECT sum(items) FROM batches), 0)"
                " + (SELECT count(*) FROM readings)").fetchone()[0])

    def oldest_age_s(self, now: float | None = None) -> float:
        with self._lock:
            row = self._db.execute(
                "SELECT min(t) FROM (SELECT min(created) AS t FROM batches "
                "UNION ALL SELECT min(created) FROM readings)").fetchone()
        return 0.0 if row[0] is None else max(0.0, (now or time.time()) - float(row[0]))

    @property
    def used_pct(self) -> float:
        return min(100.0, self.bytes_used / self.limits.max_bytes * 100.0)

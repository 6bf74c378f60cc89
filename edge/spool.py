"""The gateway's on-disk spool: every batch is kept until ingest acknowledges it.

SQLite in WAL mode with ``synchronous=FULL``: a committed append survives a power cut
(the WAL is fsynced at every commit). Batch numbers and per-device seq counters live in
the same database and are committed in the same transaction as the batch that uses
them, so a number is never reused after a crash, and none is persisted for data that
was not kept either.

A batch leaves the spool only on an ``ack`` from ingest (never on a broker PUBACK).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch    INTEGER PRIMARY KEY,
    channel  TEXT    NOT NULL,
    items    INTEGER NOT NULL,
    payload  BLOB    NOT NULL,
    created  REAL    NOT NULL,
    sent_at  REAL,               -- last time it was published; NULL: not yet
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,      -- 'batch', 'boot', 'seq:<device>'
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    batch: int
    channel: str
    items: int
    payload: bytes
    created: float


class Spool:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._seq: dict[str, int] = {}
        for name, value in self._db.execute(
                "SELECT name, value FROM counters WHERE name LIKE 'seq:%'"):
            self._seq[name[4:]] = int(value)
        self._batch = self._counter("batch")

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def next_boot(self) -> int:
        """Count this start of the agent (carried in status and Last Will)."""
        with self._lock:
            boot = self._counter("boot") + 1
            self._db.execute("INSERT OR REPLACE INTO counters VALUES ('boot', ?)", (boot,))
            return boot

    def next_seq(self, device: str) -> int:
        """Reserve the next seq of ``device``; it is persisted by the append that uses it."""
        seq = self._seq.get(device, 0) + 1
        self._seq[device] = seq
        return seq

    def last_seqs(self) -> dict[str, int]:
        """The last seq handed out per device."""
        return dict(self._seq)

    def next_batch_number(self) -> int:
        return self._batch + 1

    def append(self, batch: int, channel: str, items: int, payload: bytes,
               seqs: dict[str, int]) -> SpooledBatch:
        """Commit a batch together with the counters it used (one fsynced transaction)."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO batches (batch, channel, items, payload, created) "
                    "VALUES (?, ?, ?, ?, ?)", (batch, channel, items, payload, now))
                self._db.execute("INSERT OR REPLACE INTO counters VALUES ('batch', ?)",
                                 (batch,))
                self._db.executemany(
                    "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE "
                    "SET value = max(value, excluded.value)",
                    [(f"seq:{d}", s) for d, s in seqs.items()])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._batch = batch
        return SpooledBatch(batch, channel, items, payload, now)

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

    def due(self, ack_timeout_s: float, limit: int, now: float | None = None) -> list[SpooledBatch]:
        """Batches never sent, or sent longer ago than the ack timeout: oldest first."""
        cutoff = (now or time.time()) - ack_timeout_s
        with self._lock:
            rows = self._db.execute(
                "SELECT batch, channel, items, payload, created FROM batches "
                "WHERE sent_at IS NULL OR sent_at < ? ORDER BY batch LIMIT ?",
                (cutoff, limit)).fetchall()
        return [SpooledBatch(int(b), c, int(n), bytes(p), float(t)) for b, c, n, p, t in rows]

    def acknowledge(self, batches: list[int]) -> int:
        with self._lock:
            cur = self._db.executemany("DELETE FROM batches WHERE batch=?",
                                       [(b,) for b in batches])
            return int(cur.rowcount)

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM batches").fetchone()[0])

    def oldest_age_s(self, now: float | None = None) -> float:
        with self._lock:
            row = self._db.execute("SELECT min(created) FROM batches").fetchone()
        return 0.0 if row[0] is None else max(0.0, (now or time.time()) - float(row[0]))

"""The gateway's on-disk spool: every batch is kept until ingest acknowledges it.

The unit of work is the batch. The agent gathers a channel's readings in memory until a
batch is full, ``publish.max_batch_delay_s`` has passed, or a driver waits for them
(``durable``: its device is acknowledged only after the commit); the batch is then
committed in ONE transaction — its payload, as it will be sent, and the counters it uses
— and only then published. Durability: SQLite in WAL mode with ``synchronous=FULL``, so
a commit that returned survives a power cut. (A flat append-only file with our own fsync
would need its own crash recovery, which SQLite already has.) Batches due together
share one commit; commits run in a worker thread, never on the agent's event loop.

What is only bookkeeping lives in memory and is rebuilt at start: which batches were
sent when and how often (after a restart everything is due again, which is always
safe), and the deletions of acknowledged, dropped and expired batches, which ride on the
next commit (or a ``sync`` a second later). A deletion lost in a crash means a batch
sent again; ingest stores it once.

Counters (``counters`` table): each device's last ``seq`` and last reading timestamp,
the batch and boot counters and the count of dropped readings, committed with the batch
that uses them; a restart resumes from them exactly. Before a commit would go past them,
the reservation file (:mod:`sitewatch.edge.counters`) is moved ahead, so a spool that is
lost resumes above anything ever sent. Readings not yet committed when the power goes
were never sent nor acknowledged to a device; their seqs are given out again.

Bounds: ``max_bytes`` and ``max_age_s``. When a new reading does not fit, the policy
decides: ``drop_oldest`` drops the oldest batches to make room; ``refuse_newest`` does
not take the reading (it gets no seq, so stored seqs stay contiguous). Data older than
``max_age_s`` is dropped. Every dropped reading is counted, in a counter that survives
restarts. A batch dropped while in flight may still be stored by ingest: when its ack
comes, its readings are taken off the count again, so the count is what was really lost.

Faults. A commit that fails (disk full, I/O error) drops its batches' readings, counted,
and the disk is left alone for :data:`Spool.RETRY_S` (readings are refused, counted),
then tried again. At start, only a file the database itself calls corrupt
(``SQLITE_CORRUPT``, ``SQLITE_NOTADB``, a failed ``quick_check``) is moved aside
(``spool.sqlite.corrupt-<time>``, kept) and a new one started; any other error (disk
full, I/O error, permissions) raises :class:`SpoolUnavailable` and the spool is left
as it is: the agent waits and tries again.
"""

from __future__ import annotations

import heapq
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sitewatch.edge.counters import (
    SEQ_AHEAD,
    CounterFile,
    CounterFileError,
    DirectEpisode,
    DirectFlag,
    Reserved,
)

log = logging.getLogger("sitewatch.edge.spool")

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch    INTEGER PRIMARY KEY,
    channel  TEXT    NOT NULL,
    items    INTEGER NOT NULL,
    payload  BLOB    NOT NULL,        -- as published
    created  REAL    NOT NULL         -- when its oldest reading was taken
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,           -- 'batch', 'boot', 'dropped', 'seq:<device>', 'ts:<device>'
    value INTEGER NOT NULL
);
"""

_UPSERT_MAX = (
    "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE "
    "SET value = max(value, excluded.value)"
)
_UPSERT = "INSERT OR REPLACE INTO counters VALUES (?, ?)"
#: batches of the earlier schema's unbatched readings, at the upgrade
_MIGRATION_ITEMS = 50


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
    """A reading taken (admitted, seq given) and not yet committed."""

    channel: str
    device: str
    seq: int
    ts: int
    body: bytes  # the contract item, encoded
    created: float  # wall clock when it was taken


@dataclass(slots=True)
class PendingBatch:
    """A channel's readings taken (admitted, seq given) for one batch, not yet committed:
    what :meth:`Spool.commit_batches` needs of them, gathered as they are taken."""

    channel: str
    bodies: list[bytes] = field(default_factory=list)  # the contract items, encoded
    seq: dict[str, int] = field(default_factory=dict)  # per device, its highest seq here
    ts: dict[str, int] = field(default_factory=dict)  # per device, its latest timestamp
    created: float = 0.0  # wall clock when its first reading was taken
    size: int = 0  # bytes of the bodies

    def add(self, device: str, seq: int, ts: int, body: bytes, created: float) -> None:
        if not self.bodies:
            self.created = created
        self.bodies.append(body)
        self.size += len(body)
        if seq > self.seq.get(device, 0):
            self.seq[device] = seq
        if ts > self.ts.get(device, -1):
            self.ts[device] = ts

    @classmethod
    def of(cls, channel: str, readings: Sequence[PendingReading]) -> PendingBatch:
        b = cls(channel)
        for r in readings:
            b.add(r.device, r.seq, r.ts, r.body, r.created)
        b.created = min((r.created for r in readings), default=0.0)
        return b


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    batch: int
    channel: str
    items: int
    payload: bytes
    created: float


@dataclass(slots=True)
class _Entry:
    channel: str
    items: int
    size: int
    created: float
    attempts: int = 0
    version: int = 0  # bumped on every send: older entries of the due heaps are stale


class SpoolWriteError(Exception):
    """The spool could not store data (disk full, I/O error); the data was not kept."""


class SpoolUnavailable(Exception):
    """The spool cannot be opened now (disk full, I/O error, permissions); it is not
    corrupt and was left as it is: try again later."""


_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def is_corrupt(exc: sqlite3.Error) -> bool:
    """Does the database itself say the file is damaged (not: cannot be read now)?"""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _CORRUPT


def _is_full(exc: Exception) -> bool:
    code = getattr(exc, "sqlite_errorcode", 0) or 0
    return (
        code & 0xFF == sqlite3.SQLITE_FULL or "full" in str(exc).lower() or "No space" in str(exc)
    )


class _CorruptSpool(Exception):
    pass


def batch_payload(number: int, sent_ms: int, bodies: Sequence[bytes]) -> bytes:
    return b'{"v":1,"batch":%d,"sent":%d,"items":[' % (number, sent_ms) + b",".join(bodies) + b"]}"


class Spool:
    #: in-flight batches remembered after a drop, waiting for a late ack
    MAX_IN_FLIGHT_DROPS = 10_000
    #: after a failed write, the disk is left alone this long
    RETRY_S = 2.0

    def __init__(
        self,
        path: Path,
        limits: SpoolLimits | None = None,
        counters: Path | None = None,
        direct_flag: Path | None = None,
    ) -> None:
        """Open (or create) the spool. Raises :class:`SpoolUnavailable` when the disk
        cannot be used now; a corrupt file is moved aside and a new spool started."""
        self.path = path
        self.limits = limits or SpoolLimits()
        self._lock = threading.Lock()  # the bookkeeping below
        self._wlock = threading.Lock()  # the writing connection
        self._rlock = threading.Lock()  # the reading connection
        self._file = CounterFile(counters or path.with_name("counters.json"))
        self._flag = DirectFlag(direct_flag or path.with_name("direct.flag"))
        #: corrupt spool files moved aside: by this open (0 or 1), and ever (kept in the
        #: counters file)
        self.resets = 0
        self.resets_ever = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            reserved = self._file.load()
            self._flag.read()
        except (OSError, CounterFileError) as exc:
            raise SpoolUnavailable(str(exc)) from exc
        self.resets_ever = reserved.resets
        try:
            self._db = self._connect()
        except _CorruptSpool as exc:
            self._move_aside(str(exc))
            try:
                self._db = self._connect()
            except (_CorruptSpool, sqlite3.Error) as err:
                raise SpoolUnavailable(f"cannot start a new spool: {err}") from err
        except sqlite3.Error as exc:
            raise SpoolUnavailable(f"{type(exc).__name__}: {exc}") from exc
        try:
            self._reader = sqlite3.connect(path, check_same_thread=False)
            self._load(reserved)
        except sqlite3.Error as exc:
            self._db.close()
            if is_corrupt(exc):  # found reading it: next open moves it aside
                raise SpoolUnavailable(f"spool unreadable: {exc}") from exc
            raise SpoolUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except CounterFileError as exc:
            self._db.close()
            raise SpoolUnavailable(str(exc)) from exc
        self._open_flag()
        self._disk_full = False
        self._retry_at = 0.0
        #: monotonic time of the last transaction written (commit or sync)
        self.last_write = 0.0
        #: batches were sent outside the spool (their readings held, not yet committed)
        self._direct_unstored = False
        #: readings not sent outside the spool because direct.flag could not be written
        self.direct_flag_errors = 0
        #: failed writes (commits, syncs) since start
        self.write_errors = 0
        #: readings refused since start (counted in ``dropped`` too): they got no seq
        self.refused = 0
        #: batches dropped while in flight (sent, not acknowledged): batch -> readings
        self._dropped_in_flight: dict[int, int] = {}

    # -- opening, corruption -------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            if is_corrupt(exc):
                raise _CorruptSpool(str(exc)) from exc
            raise
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            row = db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise _CorruptSpool(f"quick_check: {row[0] if row else 'no answer'}")
            db.executescript(SCHEMA)
            self._migrate(db)
        except sqlite3.Error as exc:
            db.close()
            if is_corrupt(exc):
                raise _CorruptSpool(f"{exc}") from exc
            raise
        except _CorruptSpool:
            db.close()
            raise
        return db

    def _move_aside(self, why: str) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
        log.error(
            "spool %s is corrupt (%s): moved to %s and kept; a new spool is "
            "started. Its unsent data is lost; seq, batch and timestamps resume "
            "above everything ever sent (counters file %s)",
            self.path,
            why,
            aside,
            self._file.path,
        )
        try:
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    p.rename(Path(str(aside) + suffix))
            r = self._file.value
            self._file.store(
                Reserved(
                    r.boot, r.resets + 1, r.batch_floor, r.batch, dict(r.seq), dict(r.ts), r.clean
                )
            )
        except (OSError, CounterFileError) as exc:
            raise SpoolUnavailable(f"cannot move the corrupt spool aside: {exc}") from exc
        self.resets += 1
        self.resets_ever += 1

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        """Spools of the earlier schema: their committed, unbatched readings become
        batches (their seqs are in ``counters`` already)."""
        if db.execute("SELECT 1 FROM sqlite_master WHERE name='readings'").fetchone() is None:
            return
        rows = db.execute("SELECT channel, body, created FROM readings ORDER BY id").fetchall()
        db.execute("BEGIN IMMEDIATE")
        number = int(
            (db.execute("SELECT value FROM counters WHERE name='batch'").fetchone() or (0,))[0]
        )
        by_channel: dict[str, list[tuple[bytes, float]]] = {}
        for channel, body, created in rows:
            by_channel.setdefault(str(channel), []).append((bytes(body), float(created)))
        for channel, items in by_channel.items():
            for i in range(0, len(items), _MIGRATION_ITEMS):
                chunk = items[i : i + _MIGRATION_ITEMS]
                number += 1
                db.execute(
                    "INSERT INTO batches (batch, channel, items, payload, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        number,
                        channel,
                        len(chunk),
                        batch_payload(number, int(time.time() * 1000), [b for b, _ in chunk]),
                        chunk[0][1],
                    ),
                )
        db.execute(_UPSERT, ("batch", number))
        db.execute("DROP TABLE readings")
        db.execute("COMMIT")
        log.info("spool: %d unbatched reading(s) of the earlier schema became batches", len(rows))

    def _load(self, reserved: Reserved) -> None:
        counters = {str(n): int(v) for n, v in self._db.execute("SELECT name, value FROM counters")}
        self._seq = {n[4:]: v for n, v in counters.items() if n.startswith("seq:")}
        self._ts = {n[3:]: v for n, v in counters.items() if n.startswith("ts:")}
        self._batch = counters.get("batch", 0)
        self._boot = counters.get("boot", 0)
        self.dropped = counters.get("dropped", 0)
        self._dropped_saved = self.dropped
        self._seq_floor = counters.get("seq_floor", 0)
        fresh = not counters
        stale = not fresh and self._batch < reserved.batch_floor
        if fresh or stale:
            if stale:
                log.error(
                    "spool %s is older than the counters file (batch %d < %d): "
                    "numbers resume above the counters file's reservations",
                    self.path,
                    self._batch,
                    reserved.batch_floor,
                )
            self._resume_above(reserved)
        if not reserved.clean and self._batch < reserved.batch:
            # the last run did not stop cleanly: batches it sent straight away (health
            # readings while the disk was full) may have numbers above the spool's
            log.info(
                "spool: the last run did not stop cleanly; batch numbers resume "
                "above the reserved %d",
                reserved.batch,
            )
            self._batch = reserved.batch
            # kept in the spool at once: a clean stop before the next commit must not
            # fall back below it
            self._db.execute(_UPSERT_MAX, ("batch", self._batch))
        self._resume_above_direct(reserved)
        self._committed_seq = dict(self._seq)
        self._committed_ts = dict(self._ts)
        self._batches: dict[int, _Entry] = {}
        self._items = 0
        self.bytes_used = 0
        for b, ch, n, size, created in self._db.execute(
            "SELECT batch, channel, items, length(payload), created FROM batches ORDER BY batch"
        ):
            self._batches[int(b)] = _Entry(str(ch), int(n), int(size), float(created))
            self._items += int(n)
            self.bytes_used += int(size)
        self._unsent: dict[int, None] = dict.fromkeys(self._batches)
        #: sent batches by backoff factor (1, 2, 4, 8, 16): (sent_at, batch, version);
        #: within one factor the due order is the send order, whatever the timeout
        self._heaps: dict[int, list[tuple[float, int, int]]] = {f: [] for f in (1, 2, 4, 8, 16)}
        self._to_delete: set[int] = set()

    def _resume_above(self, r: Reserved) -> None:
        """The spool was lost (or is stale): resume above everything ever reserved, and
        keep that in the spool. Raises sqlite3.Error if it cannot be written."""
        if self._file.damaged and not r.seq:  # no record at all: the clock is above
            clock = int(time.time() * 1000)
            log.error(
                "no counters to resume from: seq and batch numbers restart from the clock (%d)",
                clock,
            )
            r = Reserved(r.boot, r.resets, 0, clock, {}, {})
            self._seq_floor = clock
        self._batch = max(self._batch, r.batch)
        self._boot = max(self._boot, r.boot)
        for d, s in r.seq.items():
            self._seq[d] = max(self._seq.get(d, 0), s)
        for d, t in r.ts.items():
            self._ts[d] = max(self._ts.get(d, -1), t)
        # kept in this spool at once: a device that sends nothing before the next
        # restart must not fall back below the reservation
        rows = [("batch", self._batch), ("boot", self._boot), ("seq_floor", self._seq_floor)]
        rows += [(f"seq:{d}", v) for d, v in self._seq.items()]
        rows += [(f"ts:{d}", v) for d, v in self._ts.items()]
        self._raise_counters(rows)

    def _raise_counters(self, rows: list[tuple[str, int]]) -> None:
        """Raise these counters (never lower them) in one transaction of their own."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(_UPSERT_MAX, rows)
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._rollback()
            raise

    def _resume_above_direct(self, reserved: Reserved) -> None:
        """The last run sent readings outside the spool and stopped before they were
        committed (direct.flag is open): their device resumes above the flag's seq and
        timestamp, kept in the spool at once (a gap, never a reuse). A damaged flag
        (torn write): every device resumes SEQ_AHEAD above the counters file's
        reservations. The counters file is moved ahead first when it does not cover
        that. Raises sqlite3.Error or CounterFileError if it cannot be written."""
        ep, rows = self._flag.episode, []
        if ep is not None:
            log.warning(
                "spool: the last run sent %s's readings up to seq %d outside the "
                "spool and stopped before storing them; its seqs resume above "
                "(a gap, never a reuse)",
                ep.device,
                ep.seq,
            )
            self._seq[ep.device] = max(self._seq.get(ep.device, 0), ep.seq)
            self._ts[ep.device] = max(self._ts.get(ep.device, -1), ep.ts)
            rows = [
                (f"seq:{ep.device}", self._seq[ep.device]),
                (f"ts:{ep.device}", self._ts[ep.device]),
            ]
        elif self._flag.damaged:
            for d in {*self._seq, *reserved.seq}:
                self._seq[d] = max(self._seq.get(d, 0), reserved.seq.get(d, 0)) + SEQ_AHEAD
                rows.append((f"seq:{d}", self._seq[d]))
            for d, t in reserved.ts.items():
                self._ts[d] = max(self._ts.get(d, -1), t)
                rows.append((f"ts:{d}", self._ts[d]))
        if not rows:
            return
        # the counters file too, before the flag is cleared: a spool lost later must
        # not fall back below it
        self._file.reserve(self._batch, self._batch, dict(self._seq), dict(self._ts))
        self._raise_counters(rows)

    def _open_flag(self) -> None:
        """Create direct.flag if it is not there, and clear what the last run left in
        it (now kept in the spool). A failure is logged: the flag is tried again at the
        next start, and nothing is sent outside the spool without it."""
        try:
            if self._flag.damaged:
                self._flag.ready = False  # written anew, whole
            self._flag.prepare()
            if self._flag.episode is not None:
                self._flag.write(None)
        except CounterFileError as exc:
            log.error(
                "spool: %s; the gateway's health is not sent outside the spool "
                "while the disk is full",
                exc,
            )

    def _clear_flag(self) -> None:
        """Every reading sent outside the spool is committed: close the episode."""
        if self._flag.episode is None:
            return
        try:
            self._flag.write(None)
        except CounterFileError as exc:  # left open: the next start leaves a gap
            log.warning("spool: %s; left open (the next start resumes above it)", exc)

    def close(self) -> None:
        try:
            self.sync()
            if not self._direct_unstored:
                self._clear_flag()
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
                self._db.execute(_UPSERT, ("boot", boot))
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
        self._clear_flag()

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

    # -- taking readings -----------------------------------------------------------
    def admit(self, size: int, hold: bool = False) -> bool:
        """May a reading of ``size`` bytes be taken? Applies the full policy and, if
        yes, reserves the space (the reading must then go to :meth:`commit`, or its
        space be given back with :meth:`release`). While the disk fails readings are
        refused, unless ``hold`` (the caller keeps them in memory until it works)."""
        if self.disk_refusing() and not hold:
            self.refused += 1
            self.count_dropped(1, "disk full or failing")
            return False
        if self.bytes_used + size > self.limits.max_bytes:
            if self.limits.policy is FullPolicy.REFUSE_NEWEST:
                self.refused += 1
                self.count_dropped(1, "spool full, refusing the newest reading")
                return False
            self._drop_oldest(self.bytes_used + size - self.limits.max_bytes)
        with self._lock:
            self.bytes_used += size
        return True

    def release(self, size: int) -> None:
        """Give back the space of readings admitted that will not be committed."""
        with self._lock:
            self.bytes_used -= size

    def disk_refusing(self) -> bool:
        """A write failed less than RETRY_S ago: new data is refused until then."""
        return self._disk_full and time.monotonic() < self._retry_at

    @property
    def disk_full(self) -> bool:
        """The last write failed (disk full or I/O error)."""
        return self._disk_full

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
                deletes = sorted(self._to_delete)
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
                self._rollback()
                self._failed(0 if keep else n_readings, 0 if keep else body_bytes, exc)
                raise SpoolWriteError(str(exc)) from exc
            self._batch = last
            self._committed_seq.update(seq)
            self._committed_ts.update(ts)
            for d, t in ts.items():
                if t > self._ts.get(d, -1):
                    self._ts[d] = t
            with self._lock:
                self._to_delete.difference_update(deletes)
                self._dropped_saved = dropped
                for b in built:
                    self._batches[b.batch] = _Entry(b.channel, b.items, len(b.payload), b.created)
                    self._unsent[b.batch] = None
                    self._items += b.items
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
        self._db.executemany(_UPSERT, rows[:2])
        self._db.executemany(_UPSERT_MAX, rows[2:] + [(f"ts:{d}", t) for d, t in ts.items()])
        if deletes:
            self._db.executemany("DELETE FROM batches WHERE batch=?", [(b,) for b in deletes])

    def sync(self) -> None:
        """Persist the deletions and the drop count that wait for a commit (called a
        second or so after them when no batch comes; at close)."""
        with self._wlock:
            with self._lock:
                deletes = sorted(self._to_delete)
                dropped = self.dropped
            if not deletes and dropped == self._dropped_saved:
                return
            if self.disk_refusing():
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(_UPSERT, ("dropped", dropped))
                if deletes:
                    self._db.executemany(
                        "DELETE FROM batches WHERE batch=?", [(b,) for b in deletes]
                    )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self._failed(0, 0, exc)
                raise SpoolWriteError(str(exc)) from exc
            with self._lock:
                self._to_delete.difference_update(deletes)
                self._dropped_saved = dropped
            self.last_write = time.monotonic()
            self._write_ok()

    def needs_sync(self) -> bool:
        return bool(self._to_delete) or self.dropped != self._dropped_saved

    def _failed(self, readings: int, size: int, exc: Exception | None) -> None:
        """A write failed (``exc``; None: refused without trying): drop its readings."""
        if exc is not None:
            self.write_errors += 1
            if not self._disk_full:
                why = "disk full" if _is_full(exc) else "I/O error"
                log.error(
                    "spool: %s (%s); dropping the readings at hand and refusing "
                    "new ones (counted), trying the disk again every %gs",
                    why,
                    exc,
                    self.RETRY_S,
                )
            self._disk_full = True
            self._retry_at = time.monotonic() + self.RETRY_S
        with self._lock:
            self.bytes_used -= size
        if readings:
            self.count_dropped(readings, "not stored: disk full or failing")

    def _write_ok(self) -> None:
        if self._disk_full:
            log.warning("spool writes work again")
            self._disk_full = False

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    # -- sending, acks ---------------------------------------------------------------
    def mark_sent(self, batches: list[int], when: float | None = None) -> None:
        sent_at = when or time.time()
        with self._lock:
            for b in batches:
                e = self._batches.get(b)
                if e is None:
                    continue
                e.attempts += 1
                e.version += 1
                self._unsent.pop(b, None)
                heapq.heappush(self._heaps[min(1 << (e.attempts - 1), 16)], (sent_at, b, e.version))

    def forget_sent(self) -> None:
        """After a reconnect nothing sent before counts: everything pending is due."""
        with self._lock:
            for e in self._batches.values():
                e.version += 1
            self._unsent = dict.fromkeys(sorted(self._batches))
            for h in self._heaps.values():
                h.clear()

    def due(self, ack_timeout_s: float, limit: int, now: float | None = None) -> list[SpooledBatch]:
        """Batches never sent, or whose ack is overdue: oldest first.

        The wait doubles with every attempt (ack_timeout_s, 2x, 4x ... up to 16x), so a
        long outage of ingest does not pile up copies of every batch at the broker.
        """
        now = now or time.time()
        picked: list[int] = []
        with self._lock:
            for b in self._unsent:
                if len(picked) >= limit:
                    break
                picked.append(b)
            for factor, heap in self._heaps.items():
                keep: list[tuple[float, int, int]] = []
                while heap and len(keep) < limit:
                    sent_at, b, version = heap[0]
                    if sent_at + ack_timeout_s * factor >= now:
                        break
                    heapq.heappop(heap)
                    e = self._batches.get(b)
                    if e is not None and e.version == version:
                        keep.append((sent_at, b, version))
                for item in keep:
                    heapq.heappush(heap, item)
                picked += [b for _, b, _ in keep]
            picked = sorted(picked)[:limit]
            entries = [(b, self._batches[b]) for b in picked]
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
        removed = delivered = 0
        with self._lock:
            for b in batches:
                e = self._forget(b)
                if e is not None:
                    removed += 1
                delivered += self._dropped_in_flight.pop(b, 0)
        if delivered:
            self.count_dropped(-delivered, "dropped while in flight, but stored after all")
        return removed

    def _forget(self, batch: int) -> _Entry | None:
        """Take a batch out of the bookkeeping (lock held); its row goes at the next
        commit."""
        e = self._batches.pop(batch, None)
        if e is None:
            return None
        self._unsent.pop(batch, None)
        self._items -= e.items
        self.bytes_used -= e.size
        self._to_delete.add(batch)
        return e

    # -- bounds ------------------------------------------------------------------------
    def expire(self, now: float | None = None) -> int:
        """Drop batches older than ``max_age_s``; return the readings dropped."""
        cutoff = (now or time.time()) - self.limits.max_age_s
        dropped = 0
        with self._lock:
            for b in [b for b, e in self._batches.items() if e.created < cutoff]:
                e = self._forget(b)
                if e is not None:
                    dropped += e.items
                    if e.attempts:
                        self._note_in_flight(b, e.items)
        self.count_dropped(dropped, f"older than max_age_s={self.limits.max_age_s:g}")
        return dropped

    def _drop_oldest(self, need: int) -> None:
        freed = dropped = 0
        with self._lock:
            while freed < need and self._batches:
                b = next(iter(self._batches))
                e = self._forget(b)
                assert e is not None
                freed, dropped = freed + e.size, dropped + e.items
                if e.attempts:
                    self._note_in_flight(b, e.items)
        self.count_dropped(dropped, "spool full, dropping the oldest data")

    def _note_in_flight(self, batch: int, items: int) -> None:
        self._dropped_in_flight[batch] = items
        if len(self._dropped_in_flight) > self.MAX_IN_FLIGHT_DROPS:  # acks that never came
            del self._dropped_in_flight[next(iter(self._dropped_in_flight))]

    def count_dropped(self, n: int, why: str) -> None:
        """Add ``n`` (negative: readings found delivered after all) to the count; it is
        persisted with the next commit or sync."""
        if n == 0:
            return
        with self._lock:
            first = self.dropped == 0
            self.dropped += n
        (log.warning if first else log.debug)(
            "spool dropped %d reading(s): %s (%d in all)", n, why, self.dropped
        )

    # -- state -------------------------------------------------------------------------
    def depth(self) -> int:
        """Batches waiting for acknowledgement."""
        return len(self._batches)

    def readings_waiting(self) -> int:
        return self._items

    def oldest_age_s(self, now: float | None = None) -> float:
        with self._lock:
            oldest = min((e.created for e in self._batches.values()), default=None)
        return 0.0 if oldest is None else max(0.0, (now or time.time()) - oldest)

    @property
    def used_pct(self) -> float:
        return min(100.0, self.bytes_used / self.limits.max_bytes * 100.0)

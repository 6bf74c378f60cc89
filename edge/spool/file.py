"""The spool's SQLite file: opening it (WAL, ``synchronous=FULL``), its schema, the
integrity check, moving a file the database calls corrupt aside, and the upgrade of a
spool of the earlier schema.

Only a file the database itself calls corrupt (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``, a
failed ``quick_check``) is moved aside (``spool.sqlite.corrupt-<time>``, kept) and a new
one started; any other error (disk full, I/O error, permissions) raises
:class:`SpoolUnavailable` and the file is left as it is.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from edge.counters import CounterFile, CounterFileError, Reserved
from edge.spool.batches import batch_payload

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

UPSERT_MAX = (
    "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE "
    "SET value = max(value, excluded.value)"
)
UPSERT = "INSERT OR REPLACE INTO counters VALUES (?, ?)"
#: batches of the earlier schema's unbatched readings, at the upgrade
_MIGRATION_ITEMS = 50


class SpoolUnavailable(Exception):
    """The spool cannot be opened now (disk full, I/O error, permissions); it is not
    corrupt and was left as it is: try again later."""


_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def is_corrupt(exc: sqlite3.Error) -> bool:
    """Does the database itself say the file is damaged (not: cannot be read now)?"""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _CORRUPT


def is_full(exc: Exception) -> bool:
    code = getattr(exc, "sqlite_errorcode", 0) or 0
    return (
        code & 0xFF == sqlite3.SQLITE_FULL or "full" in str(exc).lower() or "No space" in str(exc)
    )


class _CorruptSpool(Exception):
    pass


def open_database(path: Path, counters: CounterFile) -> tuple[sqlite3.Connection, int]:
    """The writing connection to the spool at ``path``, and the corrupt files moved
    aside to open it (0 or 1; counted in ``counters`` too). Raises
    :class:`SpoolUnavailable` when the file cannot be used now."""
    try:
        return _connect(path), 0
    except _CorruptSpool as exc:
        _move_aside(path, counters, str(exc))
        try:
            return _connect(path), 1
        except (_CorruptSpool, sqlite3.Error) as err:
            raise SpoolUnavailable(f"cannot start a new spool: {err}") from err
    except sqlite3.Error as exc:
        raise SpoolUnavailable(f"{type(exc).__name__}: {exc}") from exc


def rollback(db: sqlite3.Connection) -> None:
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _connect(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
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
        _migrate(db)
    except sqlite3.Error as exc:
        db.close()
        if is_corrupt(exc):
            raise _CorruptSpool(f"{exc}") from exc
        raise
    except _CorruptSpool:
        db.close()
        raise
    return db


def _move_aside(path: Path, counters: CounterFile, why: str) -> None:
    aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    log.error(
        "spool %s is corrupt (%s): moved to %s and kept; a new spool is "
        "started. Its unsent data is lost; seq, batch and timestamps resume "
        "above everything ever sent (counters file %s)",
        path,
        why,
        aside,
        counters.path,
    )
    try:
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(path) + suffix)
            if p.exists():
                p.rename(Path(str(aside) + suffix))
        r = counters.value
        counters.store(
            Reserved(r.boot, r.resets + 1, r.batch_floor, r.batch, dict(r.seq), dict(r.ts), r.clean)
        )
    except (OSError, CounterFileError) as exc:
        raise SpoolUnavailable(f"cannot move the corrupt spool aside: {exc}") from exc


def _migrate(db: sqlite3.Connection) -> None:
    """Spools of the earlier schema: their committed, unbatched readings become
    batches (their seqs are in ``counters`` already)."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='readings'").fetchone() is None:
        return
    rows = db.execute("SELECT channel, body, created FROM readings ORDER BY id").fetchall()
    db.execute("BEGIN IMMEDIATE")
    row = db.execute("SELECT value FROM counters WHERE name='batch'").fetchone()
    number = int((row or (0,))[0])
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
    db.execute(UPSERT, ("batch", number))
    db.execute("DROP TABLE readings")
    db.execute("COMMIT")
    log.info("spool: %d unbatched reading(s) of the earlier schema became batches", len(rows))

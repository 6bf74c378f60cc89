"""Where the spool's numbers resume when it opens: each device's last ``seq`` and
timestamp, the batch and boot counters and the count of dropped readings, read from the
spool's ``counters`` table and never below anything ever sent.

A spool that starts empty (lost, moved aside as corrupt) or older than the counters file
(:mod:`edge.counters`) resumes above the file's reservations; after a stop that
was not clean, batch numbers resume above the reserved ones (batches may have been sent
outside the spool); a device whose readings were sent outside the spool and not stored
(direct.flag open) resumes above them. What is raised is kept in the spool at once. Also
direct.flag's episode: made ready at open, closed once its readings are stored.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from edge.counters import (
    SEQ_AHEAD,
    CounterFile,
    CounterFileError,
    DirectFlag,
    Reserved,
)
from edge.spool.file import UPSERT_MAX, rollback

log = logging.getLogger("sitewatch.edge.spool")


@dataclass
class Resumed:
    """The numbers a spool resumes from."""

    seq: dict[str, int]  # per device, the last seq given
    ts: dict[str, int]  # per device, the timestamp every later reading is stamped past
    batch: int  # the last batch number given
    boot: int
    dropped: int  # readings dropped, ever
    seq_floor: int  # every device's seqs resume above this (a spool with no record)


def resume(
    db: sqlite3.Connection, path: Path, file: CounterFile, flag: DirectFlag, reserved: Reserved
) -> Resumed:
    """The numbers of the spool ``db`` (at ``path``), raised where the counters file
    ``file`` (its value: ``reserved``) or direct.flag say more may have been sent.
    Raises sqlite3.Error or CounterFileError if what is raised cannot be written."""
    counters = {str(n): int(v) for n, v in db.execute("SELECT name, value FROM counters")}
    n = Resumed(
        seq={k[4:]: v for k, v in counters.items() if k.startswith("seq:")},
        ts={k[3:]: v for k, v in counters.items() if k.startswith("ts:")},
        batch=counters.get("batch", 0),
        boot=counters.get("boot", 0),
        dropped=counters.get("dropped", 0),
        seq_floor=counters.get("seq_floor", 0),
    )
    fresh = not counters
    stale = not fresh and n.batch < reserved.batch_floor
    if fresh or stale:
        if stale:
            log.error(
                "spool %s is older than the counters file (batch %d < %d): "
                "numbers resume above the counters file's reservations",
                path,
                n.batch,
                reserved.batch_floor,
            )
        _resume_above(db, file, n, reserved)
    if not reserved.clean and n.batch < reserved.batch:
        # the last run did not stop cleanly: batches it sent straight away (health
        # readings while the disk was full) may have numbers above the spool's
        log.info(
            "spool: the last run did not stop cleanly; batch numbers resume above the reserved %d",
            reserved.batch,
        )
        n.batch = reserved.batch
        # kept in the spool at once: a clean stop before the next commit must not
        # fall back below it
        db.execute(UPSERT_MAX, ("batch", n.batch))
    _resume_above_direct(db, file, flag, n, reserved)
    return n


def _resume_above(db: sqlite3.Connection, file: CounterFile, n: Resumed, r: Reserved) -> None:
    """The spool was lost (or is stale): resume above everything ever reserved, and
    keep that in the spool. Raises sqlite3.Error if it cannot be written."""
    if file.damaged and not r.seq:  # no record at all: the clock is above
        clock = int(time.time() * 1000)
        log.error(
            "no counters to resume from: seq and batch numbers restart from the clock (%d)",
            clock,
        )
        r = Reserved(r.boot, r.resets, 0, clock, {}, {})
        n.seq_floor = clock
    n.batch = max(n.batch, r.batch)
    n.boot = max(n.boot, r.boot)
    for d, s in r.seq.items():
        n.seq[d] = max(n.seq.get(d, 0), s)
    for d, t in r.ts.items():
        n.ts[d] = max(n.ts.get(d, -1), t)
    # kept in this spool at once: a device that sends nothing before the next
    # restart must not fall back below the reservation
    rows = [("batch", n.batch), ("boot", n.boot), ("seq_floor", n.seq_floor)]
    rows += [(f"seq:{d}", v) for d, v in n.seq.items()]
    rows += [(f"ts:{d}", v) for d, v in n.ts.items()]
    _raise_counters(db, rows)


def _raise_counters(db: sqlite3.Connection, rows: list[tuple[str, int]]) -> None:
    """Raise these counters (never lower them) in one transaction of their own."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany(UPSERT_MAX, rows)
        db.execute("COMMIT")
    except sqlite3.Error:
        rollback(db)
        raise


def _resume_above_direct(
    db: sqlite3.Connection, file: CounterFile, flag: DirectFlag, n: Resumed, reserved: Reserved
) -> None:
    """The last run sent readings outside the spool and stopped before they were
    committed (direct.flag is open): their device resumes above the flag's seq and
    timestamp, kept in the spool at once (a gap, never a reuse). A damaged flag
    (torn write): every device resumes SEQ_AHEAD above the counters file's
    reservations. The counters file is moved ahead first when it does not cover
    that. Raises sqlite3.Error or CounterFileError if it cannot be written."""
    ep, rows = flag.episode, []
    if ep is not None:
        log.warning(
            "spool: the last run sent %s's readings up to seq %d outside the "
            "spool and stopped before storing them; its seqs resume above "
            "(a gap, never a reuse)",
            ep.device,
            ep.seq,
        )
        n.seq[ep.device] = max(n.seq.get(ep.device, 0), ep.seq)
        n.ts[ep.device] = max(n.ts.get(ep.device, -1), ep.ts)
        rows = [
            (f"seq:{ep.device}", n.seq[ep.device]),
            (f"ts:{ep.device}", n.ts[ep.device]),
        ]
    elif flag.damaged:
        for d in {*n.seq, *reserved.seq}:
            n.seq[d] = max(n.seq.get(d, 0), reserved.seq.get(d, 0)) + SEQ_AHEAD
            rows.append((f"seq:{d}", n.seq[d]))
        for d, t in reserved.ts.items():
            n.ts[d] = max(n.ts.get(d, -1), t)
            rows.append((f"ts:{d}", n.ts[d]))
    if not rows:
        return
    # the counters file too, before the flag is cleared: a spool lost later must
    # not fall back below it
    file.reserve(n.batch, n.batch, dict(n.seq), dict(n.ts))
    _raise_counters(db, rows)


def open_flag(flag: DirectFlag) -> None:
    """Create direct.flag if it is not there, and clear what the last run left in
    it (now kept in the spool). A failure is logged: the flag is tried again at the
    next start, and nothing is sent outside the spool without it."""
    try:
        if flag.damaged:
            flag.ready = False  # written anew, whole
        flag.prepare()
        if flag.episode is not None:
            flag.write(None)
    except CounterFileError as exc:
        log.error(
            "spool: %s; the gateway's health is not sent outside the spool while the disk is full",
            exc,
        )


def clear_flag(flag: DirectFlag) -> None:
    """Every reading sent outside the spool is committed: close the episode."""
    if flag.episode is None:
        return
    try:
        flag.write(None)
    except CounterFileError as exc:  # left open: the next start leaves a gap
        log.warning("spool: %s; left open (the next start resumes above it)", exc)

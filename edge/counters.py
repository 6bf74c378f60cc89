"""The gateway's counters that must outlive its spool: a small fsynced reservation file.

The spool commits each device's last ``seq`` and reading timestamp, the batch counter and
the boot counter with every batch (``counters`` table of ``spool.sqlite``): that is where
a restart resumes, exactly, so stored seqs stay contiguous. But a spool can be lost — its
file moved aside as corrupt, deleted, or restored from an older copy. So, before a batch
commit would put a number above what this file allows, the spool first raises the file's
ceilings well ahead (:data:`SEQ_AHEAD`, :data:`BATCH_AHEAD`, :data:`TS_AHEAD_MS`): every
seq, batch number and timestamp ever committed (and so ever sent) is at most the file's
ceiling. A spool that starts empty, or older than the file, resumes above the ceilings:
a gap, never a reuse. The file is rewritten about every :data:`TS_AHEAD_MS` of readings
while data flows, whole and atomically (temporary file, fsync, rename, fsync of the
folder), so it is either the old or the new one after a power cut.

``state_dir/counters.json``::

    {"v": 1, "boot": 17, "resets": 0, "batch_floor": 1041, "batch": 11041,
     "seq": {"TC01": 15712}, "ts": {"TC01": 1763900005000}}

``clean`` is false from an agent's start until its clean stop: after a crash, or a stop
while the disk was full, batch numbers resume above ``batch`` (the health readings the
agent sent straight away while the disk was full had numbers the spool never stored).
Their seqs and timestamps are covered by :class:`DirectFlag` (``state_dir/direct.flag``,
overwritten in place before each such send, so it works on a full disk): a start that
finds it open resumes the gateway's seq and timestamp above it — a documented gap in the
gateway's seqs, never a reuse — and a crash without one leaves every seq 1..N.
``batch_floor`` is the last batch committed when the file was written: a spool whose
batch counter is below it is older than the file (a restored copy) and is not trusted.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from sitewatch.core.durable import replace_file

log = logging.getLogger("sitewatch.edge.counters")

#: seqs reserved ahead per device (the largest gap a lost spool leaves)
SEQ_AHEAD = 10_000
#: batch numbers reserved ahead
BATCH_AHEAD = 10_000
#: timestamps reserved ahead per device, ms (after a lost spool, a device's readings of
#: up to this long are stamped just past the ceiling)
TS_AHEAD_MS = 5_000


class CounterFileError(Exception):
    """The counters file could not be read or written (I/O error, disk full)."""


@dataclass
class Reserved:
    """What the counters file holds."""

    boot: int = 0
    resets: int = 0
    batch_floor: int = 0
    batch: int = 0
    seq: dict[str, int] = field(default_factory=dict)
    ts: dict[str, int] = field(default_factory=dict)
    #: the last agent to use the spool stopped cleanly (False from its start until its
    #: clean stop): after any other stop, batch numbers resume above ``batch``
    clean: bool = True

    def covers(self, batch: int, seq: dict[str, int], ts: dict[str, int]) -> bool:
        return (
            batch <= self.batch
            and all(s <= self.seq.get(d, 0) for d, s in seq.items())
            and all(t <= self.ts.get(d, -1) for d, t in ts.items())
        )


class CounterFile:
    """``counters.json``: read at start, rewritten (atomically, fsynced) to reserve."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.value = Reserved()
        #: the file was there but unreadable as counters (moved aside): numbers restart
        #: from the clock when the spool is lost too
        self.damaged = False

    def load(self) -> Reserved:
        """Read the file (absent: all zero). Raises CounterFileError on an I/O error; a
        file that is not valid counters is moved aside and reported (``damaged``)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self.value
        except OSError as exc:
            raise CounterFileError(f"cannot read {self.path}: {exc}") from exc
        try:
            d = json.loads(raw)
            self.value = Reserved(
                boot=int(d["boot"]),
                resets=int(d.get("resets", 0)),
                batch_floor=int(d.get("batch_floor", 0)),
                batch=int(d["batch"]),
                seq={str(k): int(v) for k, v in d["seq"].items()},
                ts={str(k): int(v) for k, v in d["ts"].items()},
                clean=bool(d.get("clean", True)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = self.path.with_name(self.path.name + ".damaged")
            log.error("counters file %s is damaged (%s): moved to %s", self.path, exc, aside)
            try:
                self.path.rename(aside)
            except OSError as err:
                raise CounterFileError(f"cannot move {self.path} aside: {err}") from err
            self.damaged = True
        return self.value

    def store(self, value: Reserved) -> None:
        """Write ``value`` whole: temporary file, fsync, rename, fsync of the folder."""
        data = json.dumps(
            {
                "v": 1,
                "boot": value.boot,
                "resets": value.resets,
                "batch_floor": value.batch_floor,
                "batch": value.batch,
                "seq": value.seq,
                "ts": value.ts,
                "clean": value.clean,
            },
            separators=(",", ":"),
        ).encode()
        try:
            replace_file(self.path, lambda f: f.write(data), mode=0o644)
        except OSError as exc:
            raise CounterFileError(f"cannot write {self.path}: {exc}") from exc
        self.value = value

    def reserve(
        self, batch_floor: int, batch: int, seq: dict[str, int], ts: dict[str, int]
    ) -> bool:
        """Make the file cover ``batch`` and every device's ``seq`` and ``ts`` (pass the
        highest values in use for every device known). Writes only when something is not
        covered yet, then with every ceiling moved ahead. True if it wrote."""
        cur = self.value
        if cur.covers(batch, seq, ts):
            return False
        new_seq = dict(cur.seq)
        for d, s in seq.items():
            new_seq[d] = max(new_seq.get(d, 0), s + SEQ_AHEAD)
        new_ts = dict(cur.ts)
        for d, t in ts.items():
            new_ts[d] = max(new_ts.get(d, -1), t + TS_AHEAD_MS)
        self.store(
            Reserved(
                boot=cur.boot,
                resets=cur.resets,
                batch_floor=max(cur.batch_floor, batch_floor),
                batch=max(cur.batch, batch + BATCH_AHEAD),
                seq=new_seq,
                ts=new_ts,
                clean=cur.clean,
            )
        )
        return True


#: size of ``direct.flag``: one record, always rewritten whole in place
FLAG_SIZE = 256


@dataclass(frozen=True)
class DirectEpisode:
    """What ``direct.flag`` records of an open episode: the gateway's device, and the
    highest seq and timestamp it handed to a reading sent outside the spool."""

    device: str
    seq: int
    ts: int


class DirectFlag:
    """``state_dir/direct.flag``: a record of readings sent outside the spool.

    While the disk is full the agent publishes the gateway's health readings at once,
    outside the spool; their seqs are not committed until the disk works. Before each
    such publish the flag is overwritten IN PLACE (``pwrite`` of its whole fixed size
    at offset 0, then ``fsync``) with the reading's device, seq and timestamp: the file's
    blocks were allocated when it was created, so this needs no free space and works on
    a full disk. A spool that opens with the flag open resumes that device's seq and
    timestamp above the record (a gap, never a reuse) and then clears it; so does the
    agent once the held readings are committed. The record carries a CRC: one that does
    not match (a torn write) is reported as :attr:`damaged` and the spool resumes every
    device above the counters file's reservations.

    The file is created (temporary file, fsync, rename, fsync of the folder) by
    :meth:`prepare` while the disk works; if it is missing, nothing is sent outside the
    spool.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        #: what the file says now (None: closed)
        self.episode: DirectEpisode | None = None
        #: the file is there, whole
        self.ready = False
        #: the file's record did not check out (torn write): treat as open, unknown
        self.damaged = False

    @staticmethod
    def _record(episode: DirectEpisode | None) -> bytes:
        if episode is None:
            body = b'{"open":false}'
        else:
            body = json.dumps(
                {"open": True, "device": episode.device, "seq": episode.seq, "ts": episode.ts},
                separators=(",", ":"),
            ).encode()
        line = b"%08x %s" % (zlib.crc32(body), body)
        if len(line) >= FLAG_SIZE:
            raise CounterFileError(f"record too long for {FLAG_SIZE} bytes")
        return line.ljust(FLAG_SIZE - 1) + b"\n"

    def read(self) -> DirectEpisode | None:
        """Read the file: the open episode, or None (closed or absent). Sets ``ready``
        and ``damaged``; raises CounterFileError on an I/O error."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self.ready = self.damaged = False
            self.episode = None
            return None
        except OSError as exc:
            raise CounterFileError(f"cannot read {self.path}: {exc}") from exc
        self.ready, self.damaged, self.episode = len(raw) == FLAG_SIZE, False, None
        try:
            crc, body = raw.rstrip().split(b" ", 1)
            if int(crc, 16) != zlib.crc32(body):
                raise ValueError("CRC does not match")
            d = json.loads(body)
            if d["open"]:
                self.episode = DirectEpisode(str(d["device"]), int(d["seq"]), int(d["ts"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error(
                "%s is damaged (%s): every device resumes above the counters file's reservations",
                self.path,
                exc,
            )
            self.damaged = True
            self.ready = False
        return self.episode

    def prepare(self) -> None:
        """Create the file, closed, if it is not there whole (temporary file, fsync,
        rename, fsync of the folder). Raises CounterFileError."""
        if self.ready:
            return
        data = self._record(None)
        try:
            replace_file(self.path, lambda f: f.write(data), mode=0o644)
        except OSError as exc:
            raise CounterFileError(f"cannot create {self.path}: {exc}") from exc
        self.ready, self.damaged, self.episode = True, False, None

    def write(self, episode: DirectEpisode | None) -> None:
        """Record ``episode`` (None: closed) in place: pwrite of the whole record over
        the file's own blocks, then fsync; no new block is needed. Raises
        CounterFileError (the file then says what it said, or is torn: ``read`` tells)."""
        if not self.ready:
            raise CounterFileError(f"{self.path} is not there (it is created while the disk works)")
        data = self._record(episode)
        try:
            fd = os.open(self.path, os.O_WRONLY)
            try:
                if os.pwrite(fd, data, 0) != len(data):
                    raise OSError("short write")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise CounterFileError(f"cannot write {self.path} in place: {exc}") from exc
        self.episode = episode

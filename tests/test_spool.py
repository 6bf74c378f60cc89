"""The spool on its own: durability of counters, bounds, policies, disk faults, corruption."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from edge.counters import FLAG_SIZE, SEQ_AHEAD, DirectEpisode, DirectFlag
from edge.spool import (
    FullPolicy,
    PendingReading,
    Spool,
    SpoolLimits,
    SpoolUnavailable,
    SpoolWriteError,
)


def reading(device: str, seq: int, size: int = 100, ts: int | None = None) -> PendingReading:
    return PendingReading(
        "telemetry", device, seq, seq if ts is None else ts, b"x" * size, time.time()
    )


def put(s: Spool, device: str, n: int, size: int = 100) -> list[int]:
    """``n`` readings of ``device``, one batch each."""
    batches = []
    for _ in range(n):
        assert s.admit(size)
        seq = s.next_seq(device)
        (b,) = s.commit([("telemetry", [reading(device, seq, size)])], 1)
        batches.append(b.batch)
    return batches


def test_counters_survive_reopen_and_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    s = Spool(path)
    assert s.next_boot() == 1
    rs = [reading("D1", s.next_seq("D1")) for _ in range(2)]
    (b,) = s.commit([("telemetry", rs)], 123)
    assert b.batch == 1 and b.items == 2
    assert b.payload.startswith(b'{"v":1,"batch":1,"sent":123,"items":[')
    s.next_seq("D1")  # given but never committed: never sent, so may be given again
    put(s, "D2", 1)  # committed when the "power" goes
    s.close()
    s = Spool(path)
    assert s.next_boot() == 2
    assert s.next_seq("D1") == 3 and s.next_seq("D2") == 2
    assert s.next_batch_number() == 3
    assert s.depth() == 2 and s.readings_waiting() == 3
    assert s.last_timestamps() == {"D1": 2, "D2": 1}


def test_due_ack_and_resend(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool.sqlite")
    assert put(s, "D", 3) == [1, 2, 3]
    assert [b.batch for b in s.due(30, 10)] == [1, 2, 3]
    s.mark_sent([1, 2], when=1000.0)
    assert [b.batch for b in s.due(30, 10, now=1010.0)] == [3]
    assert [b.batch for b in s.due(30, 10, now=1031.0)] == [1, 2, 3]
    s.mark_sent([1], when=1031.0)  # second attempt: waits 2 x 30 s
    assert [b.batch for b in s.due(30, 10, now=1080.0)] == [2, 3]
    assert [b.batch for b in s.due(30, 10, now=1092.0)] == [1, 2, 3]
    for _ in range(10):
        s.mark_sent([1], when=2000.0)
    assert [b.batch for b in s.due(30, 10, now=2000.0 + 16 * 30 - 1)] == [2, 3]
    assert [b.batch for b in s.due(30, 10, now=2000.0 + 16 * 30 + 1)] == [1, 2, 3]
    assert s.acknowledge([1, 3, 99]) == 2
    s.mark_sent([2], when=2000.0)
    s.forget_sent()
    assert [b.batch for b in s.due(30, 1, now=2000.0)] == [2]
    assert s.depth() == 1 and s.readings_waiting() == 1
    s.close()
    s = Spool(tmp_path / "spool.sqlite")  # the acks' deletions reached the disk
    assert [b.batch for b in s.due(30, 10)] == [2]


def test_one_commit_per_batch_carries_the_deletions_of_acked_batches(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    s = Spool(path)
    put(s, "D", 2)
    s.acknowledge([1])
    assert s.needs_sync()
    put(s, "D", 1)  # this commit deletes batch 1 too
    assert not s.needs_sync()
    with sqlite3.connect(path) as db:
        assert [b for (b,) in db.execute("SELECT batch FROM batches ORDER BY batch")] == [2, 3]
    s.acknowledge([2])
    s.sync()  # no commit came: the housekeeping's sync deletes it
    with sqlite3.connect(path) as db:
        assert [b for (b,) in db.execute("SELECT batch FROM batches")] == [3]
    s.close()


def test_drop_oldest_makes_room_and_counts(tmp_path: Path) -> None:
    s = Spool(
        tmp_path / "spool.sqlite", SpoolLimits(max_bytes=64 * 1024, policy=FullPolicy.DROP_OLDEST)
    )
    put(s, "D", 60, size=1000)  # 60 batches of ~1 KiB each
    put(s, "D", 10, size=1000)  # do not fit: the oldest batches go
    assert s.dropped > 0
    assert s.bytes_used <= 64 * 1024
    remaining = [b.batch for b in s.due(0, 1000)]
    assert remaining == list(range(1 + s.dropped, 71)), "exactly the oldest were dropped"
    s.close()
    assert Spool(tmp_path / "spool.sqlite").dropped == s.dropped, "the count survives"


def test_a_batch_dropped_in_flight_and_then_acknowledged_is_not_counted_lost(
    tmp_path: Path,
) -> None:
    s = Spool(
        tmp_path / "spool.sqlite", SpoolLimits(max_bytes=64 * 1024, policy=FullPolicy.DROP_OLDEST)
    )
    put(s, "D", 60, size=1000)
    s.mark_sent([1, 2, 3])  # in flight: ingest may store them yet
    put(s, "D", 10, size=1000)  # the oldest batches go, 1-3 among them
    dropped = s.dropped
    assert dropped > 3
    assert s.acknowledge([1, 2]) == 0  # nothing left to delete, but they were stored
    assert s.dropped == dropped - 2
    assert s.acknowledge([4]) == 0 and s.dropped == dropped - 2  # 4 was never sent
    s.close()
    assert Spool(tmp_path / "spool.sqlite").dropped == dropped - 2, "the count survives"


def test_refuse_newest_keeps_old_data_and_gives_no_seq(tmp_path: Path) -> None:
    s = Spool(
        tmp_path / "spool.sqlite", SpoolLimits(max_bytes=64 * 1024, policy=FullPolicy.REFUSE_NEWEST)
    )
    put(s, "D", 60, size=1000)
    assert not s.admit(10_000)
    assert s.dropped == 1 and s.depth() == 60
    assert s.peek_seq("D") == 61, "a refused reading takes no seq"


def test_age_bound(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool.sqlite", SpoolLimits(max_age_s=60))
    put(s, "D", 5)
    assert s.expire(now=time.time() + 30) == 0
    assert s.expire(now=time.time() + 61) == 5
    assert s.depth() == 0 and s.readings_waiting() == 0 and s.dropped == 5
    assert s.bytes_used == 0


class QuickRetrySpool(Spool):
    RETRY_S = 0.05


def test_write_error_drops_counted_refuses_for_a_while_and_the_agent_can_go_on(
    tmp_path: Path,
) -> None:
    s = QuickRetrySpool(tmp_path / "spool.sqlite")
    put(s, "D", 1)
    s._db.execute("PRAGMA max_page_count=1")  # the smallest disk there is
    assert s.admit(50_000)
    with pytest.raises(SpoolWriteError):
        s.commit([("telemetry", [reading("D", s.next_seq("D"), 50_000)])], 1)
    assert s.dropped == 1 and s.write_errors == 1 and s.disk_full
    assert not s.admit(10), "disk full: refused (counted) until tried again"
    assert s.dropped == 2
    s._db.execute("PRAGMA max_page_count=1000000")
    time.sleep(0.06)
    put(s, "D", 1)
    assert not s.disk_full and s.depth() == 2
    s.close()
    assert Spool(tmp_path / "spool.sqlite").next_seq("D") == 4, "no seq reused"


def test_corrupt_spool_is_moved_aside_and_numbers_are_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    s = Spool(path)
    s.next_boot()
    put(s, "D", 5)
    s.close()
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    for extra in ("-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)
    s = Spool(path)
    assert s.resets == 1 and s.resets_ever == 1
    (aside,) = tmp_path.glob("spool.sqlite.corrupt-*")
    assert aside.read_bytes() == garbage, "kept as it was"
    assert s.next_seq("D") > 5 and s.next_batch_number() > 5
    assert s.last_timestamps()["D"] >= 5, "the next reading is stamped past any sent"
    assert s.next_boot() == 2
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    s.close()
    assert Spool(path).resets_ever == 1, "the count survives in the counters file"


def test_a_healthy_spool_that_cannot_be_opened_now_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    s = Spool(path)
    put(s, "D", 3)
    s.close()
    Path(str(path) + "-wal").mkdir()  # the database cannot be opened: not corrupt
    with pytest.raises(SpoolUnavailable):
        Spool(path)
    assert not list(tmp_path.glob("*.corrupt-*")), "never moved aside"
    Path(str(path) + "-wal").rmdir()
    s = Spool(path)
    assert s.resets == 0 and s.depth() == 3 and s.next_seq("D") == 4


def test_a_lost_or_restored_spool_resumes_above_everything_ever_committed(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    s = Spool(path)
    put(s, "D", 3)
    s.close()
    shutil.copy(path, tmp_path / "old.sqlite")  # an operator's copy
    s = Spool(path)
    for minute in (1, 1, 2):  # seqs 4-6, batches 4-6; the reservation moves on twice
        seq = s.next_seq("D")
        s.commit([("telemetry", [reading("D", seq, ts=minute * 60_000 + seq)])], 1)
    s.close()
    for extra in ("", "-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)
    shutil.copy(tmp_path / "old.sqlite", path)  # restored: older than the last reservation
    s = Spool(path)
    assert s.next_seq("D") > 6 and s.next_batch_number() > 6
    assert s.last_timestamps()["D"] > 120_006
    s.close()
    for extra in ("", "-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)
    s = Spool(path)  # deleted: a fresh spool, the counters file still there
    assert s.next_seq("D") > 6 and s.next_batch_number() > 6


def crash(s: Spool) -> None:
    """kill -9: nothing of memory reaches the disk."""
    s._db.close()
    s._reader.close()


def direct(s: Spool, device: str, ts: int) -> tuple[PendingReading, int | None]:
    """A reading of ``device`` held in memory and sent outside the spool."""
    assert s.admit(100, hold=True)
    seq = s.next_seq(device)
    return reading(device, seq, ts=ts), s.direct_batch_number(device, seq, ts)


def test_a_reading_sent_outside_the_spool_keeps_its_seq_and_timestamp_after_a_crash(
    tmp_path: Path,
) -> None:
    path, flag = tmp_path / "spool.sqlite", DirectFlag(tmp_path / "direct.flag")
    s = Spool(path)
    s.next_boot()
    put(s, "GW", 2)
    put(s, "D", 2)
    assert (tmp_path / "direct.flag").stat().st_size == FLAG_SIZE
    assert flag.read() is None
    _, n1 = direct(s, "GW", 5_000)
    _, n2 = direct(s, "GW", 6_000)
    assert n1 is not None and n2 == n1 + 1
    assert flag.read() == DirectEpisode("GW", 4, 6_000), "recorded before it was sent"
    crash(s)
    s = Spool(path)
    assert s.peek_seq("GW") == 5, "above the seqs sent outside the spool: a gap"
    assert s.last_timestamps()["GW"] >= 6_000, "and stamped past them"
    assert s.peek_seq("D") == 3, "other devices go on exactly"
    assert s.next_batch_number() > n2
    assert flag.read() is None, "kept in the spool, then cleared"
    crash(s)
    assert Spool(path).peek_seq("GW") == 5, "the gap was kept in the spool"


def test_a_stop_with_the_readings_still_held_leaves_the_flag_open(tmp_path: Path) -> None:
    path, flag = tmp_path / "spool.sqlite", DirectFlag(tmp_path / "direct.flag")
    s = Spool(path)
    put(s, "GW", 1)
    held, _ = direct(s, "GW", 9_000)
    s.release(len(held.body))  # the disk still refused them at the stop: dropped
    s.close()
    assert flag.read() == DirectEpisode("GW", 2, 9_000)
    assert Spool(path).peek_seq("GW") == 3


def test_the_flag_is_cleared_once_the_held_readings_are_committed(tmp_path: Path) -> None:
    path, flag = tmp_path / "spool.sqlite", DirectFlag(tmp_path / "direct.flag")
    s = Spool(path)
    put(s, "GW", 1)
    held, n = direct(s, "GW", 9_000)
    assert n is not None and flag.read() is not None
    s.commit([("telemetry", [held])], 1)
    s.direct_stored()
    assert flag.read() is None
    crash(s)
    assert Spool(path).peek_seq("GW") == 3, "no gap when everything was stored"


def test_nothing_is_sent_outside_the_spool_when_the_flag_cannot_be_written(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool.sqlite")
    put(s, "D", 1)  # batch numbers reserved
    (tmp_path / "direct.flag").unlink()
    (tmp_path / "direct.flag").mkdir()  # cannot be written in place
    _, n = direct(s, "GW", 1_000)
    assert n is None and s.direct_flag_errors == 1
    s.close()


def test_a_torn_flag_resumes_every_device_above_the_reservations(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    s = Spool(path)
    put(s, "GW", 2)
    put(s, "D", 2)
    s.close()
    raw = bytearray((tmp_path / "direct.flag").read_bytes())
    raw[20:30] = b"#" * 10
    (tmp_path / "direct.flag").write_bytes(bytes(raw))
    s = Spool(path)
    assert s.peek_seq("GW") > 2 + SEQ_AHEAD and s.peek_seq("D") > 2 + SEQ_AHEAD
    assert DirectFlag(tmp_path / "direct.flag").read() is None, "written anew"
    s.close()

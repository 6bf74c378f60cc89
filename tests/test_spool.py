"""The spool on its own: durability of counters, bounds, policies, corruption."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sitewatch.edge.spool import FullPolicy, PendingReading, Spool, SpoolLimits, SpoolWriteError


def put(s: Spool, device: str, n: int, size: int = 100) -> list[int]:
    seqs = []
    for _ in range(n):
        assert s.admit(size)
        seq = s.next_seq(device)
        seqs.append(seq)
        s.add_readings([PendingReading("telemetry", device, seq, b"x" * size)])
    return seqs


def batch_all(s: Spool) -> list[int]:
    out = []
    for r in s.unbatched():
        b = s.make_batch("telemetry", [r], 1)
        assert b is not None
        out.append(b.batch)
    return out


def test_counters_survive_reopen_and_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    s = Spool(path)
    assert s.next_boot() == 1
    put(s, "D1", 2)
    b = s.make_batch("telemetry", s.unbatched(), 123)
    assert b is not None and b.batch == 1 and b.items == 2
    assert b.payload.startswith(b'{"v":1,"batch":1,"sent":123,"items":[')
    s.next_seq("D1")  # reserved but never spooled: not persisted, so may be handed out again
    put(s, "D2", 1)   # committed but not batched when the "power" goes
    s.close()
    s = Spool(path)
    assert s.next_boot() == 2
    assert s.next_seq("D1") == 3 and s.next_seq("D2") == 2
    assert s.next_batch_number() == 2
    assert s.depth() == 1 and len(s.unbatched()) == 1


def test_due_ack_and_resend(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool.sqlite")
    put(s, "D", 3)
    assert batch_all(s) == [1, 2, 3]
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


def test_drop_oldest_makes_room_and_counts(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool.sqlite",
              SpoolLimits(max_bytes=64 * 1024, policy=FullPolicy.DROP_OLDEST))
    put(s, "D", 60, size=1000)
    batch_all(s)                      # 60 batches of ~1 KiB each
    put(s, "D", 10, size=1000)        # does not fit: the oldest batches go
    assert s.dropped > 0
    assert s.bytes_used <= 64 * 1024
    remaining = [b.batch for b in s.due(0, 1000)]
    assert remaining == list(range(1 + s.dropped, 61)), "exactly the oldest were dropped"
    s.close()
    assert Spool(tmp_path / "spool.sqlite").dropped == s.dropped, "the count survives"


def test_a_batch_dropped_in_flight_and_then_acknowledged_is_not_counted_lost(
        tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool.sqlite",
              SpoolLimits(max_bytes=64 * 1024, policy=FullPolicy.DROP_OLDEST))
    put(s, "D", 60, size=1000)
    batch_all(s)
    s.mark_sent([1, 2, 3])            # in flight: ingest may store them yet
    put(s, "D", 10, size=1000)        # the oldest batches go, 1-3 among them
    dropped = s.dropped
    assert dropped > 3
    assert s.acknowledge([1, 2]) == 0  # nothing left to delete, but they were stored
    assert s.dropped == dropped - 2
    assert s.acknowledge([4]) == 0 and s.dropped == dropped - 2  # 4 was never sent
    s.close()
    assert Spool(tmp_path / "spool.sqlite").dropped == dropped - 2, "the count survives"


def test_refuse_newest_keeps_old_data_and_gives_no_seq(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool.sqlite",
              SpoolLimits(max_bytes=64 * 1024, policy=FullPolicy.REFUSE_NEWEST))
    put(s, "D", 60, size=1000)
    assert not s.admit(10_000)
    assert s.dropped == 1 and len(s.unbatched()) == 60
    assert s.peek_seq("D") == 61, "a refused reading takes no seq"


def test_age_bound(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool.sqlite", SpoolLimits(max_age_s=60))
    put(s, "D", 3)
    batch_all(s)
    put(s, "D", 2)
    import time
    assert s.expire(now=time.time() + 30) == 0
    assert s.expire(now=time.time() + 61) == 5
    assert s.depth() == 0 and s.readings_waiting() == 0 and s.dropped == 5
    assert s.bytes_used == 0


def test_write_error_refuses_and_the_agent_can_go_on(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool.sqlite")
    s._db.execute("PRAGMA max_page_count=1")  # the smallest disk there is
    with pytest.raises(SpoolWriteError):
        s.add_readings([PendingReading("telemetry", "D", 1, b"x" * 50_000)])
    assert s.dropped == 1
    assert not s.admit(10), "disk full: refuse until retried"
    s._db.execute("PRAGMA max_page_count=1000000")
    s.retry_disk()
    put(s, "D", 1)
    assert len(s.unbatched()) == 1


def test_corrupt_spool_is_moved_aside_and_numbers_are_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    s = Spool(path)
    put(s, "D", 5)
    batch_all(s)
    s.close()
    path.write_bytes(b"this is not a database" * 100)
    for extra in ("-wal", "-shm"):
        p = Path(str(path) + extra)
        if p.exists():
            p.unlink()
    s = Spool(path)
    assert s.resets == 1
    assert list(tmp_path.glob("spool.sqlite.corrupt-*"))
    assert s.next_seq("D") > 5 and s.next_batch_number() > 5
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"

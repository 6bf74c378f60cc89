from pathlib import Path

from sitewatch.edge.spool import Spool


def test_counters_survive_reopen_and_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    s = Spool(path)
    assert s.next_boot() == 1
    seqs = {"D1": s.next_seq("D1")}
    seqs["D1"] = s.next_seq("D1")
    b = s.append(s.next_batch_number(), "telemetry", 2, b"{}", seqs)
    assert b.batch == 1
    s.next_seq("D1")  # reserved but never spooled: not persisted, so may be reused
    s.close()
    s = Spool(path)
    assert s.next_boot() == 2
    assert s.next_seq("D1") == 3
    assert s.next_batch_number() == 2
    assert s.depth() == 1


def test_due_ack_and_resend(tmp_path: Path) -> None:
    s = Spool(tmp_path / "spool.sqlite")
    for n in (1, 2, 3):
        s.append(n, "telemetry", 1, f"{n}".encode(), {"D": n})
    assert [b.batch for b in s.due(30, 10)] == [1, 2, 3]
    s.mark_sent([1, 2], when=1000.0)
    assert [b.batch for b in s.due(30, 10, now=1010.0)] == [3]
    assert [b.batch for b in s.due(30, 10, now=1031.0)] == [1, 2, 3]
    assert s.acknowledge([1, 3, 99]) == 2
    assert [b.batch for b in s.due(30, 10, now=1031.0)] == [2]
    s.mark_sent([2], when=2000.0)
    s.forget_sent()
    assert [b.batch for b in s.due(30, 1, now=2000.0)] == [2]
    assert s.depth() == 1 and s.oldest_age_s() >= 0

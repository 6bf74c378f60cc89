"""The spool's promises under any sequence of work and faults (hypothesis state machine).

Random takes, commits, sends, acks, drops (a small spool with ``drop_oldest``), clean
restarts, crashes (kill -9: nothing of memory reaches the disk) and lost spools (the
file gone), and the gateway's readings sent outside the spool while held (as while the
disk is full). Always: no seq of a device and no batch number is ever committed twice or
given to two readings sent, and a device's committed seqs only grow. In the end, after everything left is acknowledged,
every committed reading was acknowledged, or counted as dropped, or lost with a lost
spool — each exactly one of these.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from edge.spool import FullPolicy, PendingReading, Spool, SpooledBatch, SpoolLimits

DEVICES = ("A", "B", "GW")
LIMITS = SpoolLimits(max_bytes=64 * 1024, policy=FullPolicy.DROP_OLDEST)


class SpoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="sw-spool-prop-"))
        self.path = self.dir / "spool.sqlite"
        self.spool = Spool(self.path, LIMITS)
        self.spool.next_boot()  # as the agent does: a stop not clean is then known
        self.pending: list[PendingReading] = []
        self.committed: dict[int, list[tuple[str, int]]] = {}  # batch -> its readings
        self.seen_seq: set[tuple[str, int]] = set()
        self.last_seq: dict[str, int] = {}
        self.acked: set[tuple[str, int]] = set()
        self.lost: set[tuple[str, int]] = set()
        self.sent: set[int] = set()  # sent in this session (acks come on this link)
        self.dropped_before = 0  # counted by spools that were lost since
        self.direct_seq: dict[tuple[str, int], bytes] = {}  # sent outside the spool
        self.direct_batches: set[int] = set()
        #: a reading sent outside the spool was given up uncommitted in this run: the
        #: agent says direct_stored() only when every such reading is committed, so not
        #: before the next start (which resumes above the flag)
        self.direct_given_up = False

    def teardown(self) -> None:
        self.spool.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(device=st.sampled_from(DEVICES), size=st.integers(50, 4000))
    def take(self, device: str, size: int) -> None:
        assert self.spool.admit(size)
        seq = self.spool.next_seq(device)
        self.pending.append(PendingReading("telemetry", device, seq, seq, b"x" * size, time.time()))

    @rule(size=st.integers(50, 400))
    def direct(self, size: int) -> None:
        """A gateway reading held in memory and also sent at once outside the spool."""
        seq = self.spool.peek_seq("GW")
        body = b"d%d-" % seq + b"x" * size
        assert self.spool.admit(len(body), hold=True)
        self.spool.give_seq("GW", seq)
        self.pending.append(PendingReading("telemetry", "GW", seq, seq, body, time.time()))
        number = self.spool.direct_batch_number("GW", seq, seq)
        if number is None:  # the reservation is used up: held only
            return
        assert number not in self.direct_batches and number not in self.committed
        assert ("GW", seq) not in self.direct_seq, "a seq sent twice"
        self.direct_batches.add(number)
        self.direct_seq[("GW", seq)] = body

    @precondition(lambda self: bool(self.pending))
    @rule(parts=st.integers(1, 3))
    def commit(self, parts: int) -> None:
        step = max(1, len(self.pending) // parts)
        groups = [
            ("telemetry", self.pending[i : i + step]) for i in range(0, len(self.pending), step)
        ]
        batches = self.spool.commit(groups, 1)
        self.pending = []
        if not self.direct_given_up:
            self.spool.direct_stored()  # nothing held any more
        for b, (_, rs) in zip(batches, groups, strict=True):
            assert b.batch not in self.committed, f"batch {b.batch} reused"
            assert b.batch not in self.direct_batches, f"batch {b.batch} sent outside"
            self.committed[b.batch] = [(r.device, r.seq) for r in rs]
            for r in rs:
                key = (r.device, r.seq)
                assert key not in self.seen_seq, f"seq {key} committed twice"
                assert r.seq > self.last_seq.get(r.device, 0), f"{key} not increasing"
                sent = self.direct_seq.get(key)
                assert sent is None or sent == r.body, f"{key} sent with another reading"
                self.seen_seq.add(key)
                self.last_seq[r.device] = r.seq

    @rule(limit=st.integers(1, 10))
    def send(self, limit: int) -> None:
        due = self.spool.due(30, limit)
        self.spool.mark_sent([b.batch for b in due])
        self.sent.update(b.batch for b in due)

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        batch = data.draw(st.sampled_from(sorted(self.sent)))
        self._ack([batch])

    def _ack(self, batches: list[int]) -> None:
        self.spool.acknowledge(batches)
        for b in batches:
            self.acked.update(self.committed[b])
            self.sent.discard(b)

    @rule()
    def sync(self) -> None:
        self.spool.sync()

    def _reopen(self) -> None:
        self.direct_given_up = False
        self.spool = Spool(self.path, LIMITS)
        self.spool.next_boot()
        self.pending = []  # never committed: never sent; their seqs may come again
        self.sent = set()  # the old link's acks are gone with it
        for d in DEVICES:  # what was given out but not committed may be given again,
            assert self.spool.peek_seq(d) > max(  # unless it was sent outside the spool
                (s for dev, s in self.seen_seq | set(self.direct_seq) if dev == d), default=0
            )

    @rule()
    def restart(self) -> None:
        for r in self.pending:
            self.spool.release(len(r.body))
        self.spool.close()
        self._reopen()

    @rule()
    def crash(self) -> None:
        self.spool._db.close()  # kill -9: nothing of memory reaches the disk
        self.spool._reader.close()
        self._reopen()

    @rule()
    def lose_spool(self) -> None:
        for b in self.everything():
            self.lost.update(self.committed[b.batch])
        self.spool.close()
        self.dropped_before += self.spool.dropped
        for extra in ("", "-wal", "-shm"):
            Path(str(self.path) + extra).unlink(missing_ok=True)
        self._reopen()

    def everything(self) -> list[SpooledBatch]:
        return self.spool.due(0, 1_000_000, now=time.time() + 1)

    @invariant()
    def bytes_are_accounted(self) -> None:
        assert self.spool.bytes_used >= 0
        everything = self.everything()
        assert self.spool.depth() == len(everything)
        assert self.spool.readings_waiting() == sum(b.items for b in everything)

    def check_the_end(self) -> None:
        for r in self.pending:
            self.spool.release(len(r.body))
            if (r.device, r.seq) in self.direct_seq:
                self.direct_given_up = True
        self.pending = []
        left = self.everything()
        self._ack([b.batch for b in left])
        committed = {k for rs in self.committed.values() for k in rs}
        acked, lost = self.acked & committed, self.lost - self.acked
        dropped = committed - acked - lost
        assert len(dropped) == self.spool.dropped + self.dropped_before, (
            f"{len(dropped)} readings neither acked nor lost, "
            f"{self.spool.dropped} + {self.dropped_before} counted"
        )


class Run(SpoolMachine):
    @rule()
    def the_end(self) -> None:  # the final accounting, at any point of a run
        self.check_the_end()


Run.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_spool_keeps_its_promises = Run.TestCase

"""What a batch is on its way through the spool: readings taken and not yet committed
(one by one, or gathered per channel as they are taken), a batch as committed and
published, and its payload as the wire contract has it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


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


def batch_payload(number: int, sent_ms: int, bodies: Sequence[bytes]) -> bytes:
    return b'{"v":1,"batch":%d,"sent":%d,"items":[' % (number, sent_ms) + b",".join(bodies) + b"]}"

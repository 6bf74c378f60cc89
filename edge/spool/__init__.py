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
the reservation file (:mod:`edge.counters`) is moved ahead, so a spool that is
lost resumes above anything ever sent.

Bounds: ``max_bytes`` and ``max_age_s``, with a full policy; every dropped reading is
counted. Faults: a failed commit drops its readings (counted) and the disk is left alone
for a while; at start, only a file the database itself calls corrupt is moved aside (and
kept) and a new one started; any other error raises :class:`SpoolUnavailable` and the
spool is left as it is: the agent waits and tries again.

The parts: ``store`` the :class:`Spool` itself (numbers, commits, acks), ``bounds`` its
limits, full policy and disk faults, ``ledger`` the in-memory bookkeeping of its batches,
``file`` the SQLite file (opening, schema, integrity, quarantine, upgrade), ``resume``
where its numbers resume at start, ``batches`` the batch on its way. This face names what
the rest of the gateway uses.
"""

from __future__ import annotations

from edge.spool.batches import (
    PendingBatch,
    PendingReading,
    SpooledBatch,
    batch_payload,
)
from edge.spool.bounds import FullPolicy, SpoolLimits
from edge.spool.file import SpoolUnavailable, is_corrupt
from edge.spool.store import Spool, SpoolWriteError

__all__ = [
    "FullPolicy",
    "PendingBatch",
    "PendingReading",
    "Spool",
    "SpoolLimits",
    "SpoolUnavailable",
    "SpoolWriteError",
    "SpooledBatch",
    "batch_payload",
    "is_corrupt",
]

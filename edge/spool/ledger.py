"""The spool's bookkeeping of its batches, in memory and rebuilt at start: which are
held, which were never sent and which were sent when and how often (a sent batch is due
again when its ack is overdue), the deletions of acknowledged, dropped and expired
batches waiting for the next write, and the batches dropped while in flight.

After a restart everything held is due again, which is always safe. The ledger is not
thread-safe: :class:`~edge.spool.store.Spool` calls it with its lock held and
keeps the byte and drop counts.
"""

from __future__ import annotations

import heapq
import sqlite3
from dataclasses import dataclass

from edge.spool.batches import SpooledBatch


@dataclass(slots=True)
class Entry:
    channel: str
    items: int
    size: int
    created: float
    attempts: int = 0
    version: int = 0  # bumped on every send: older entries of the due heaps are stale


class BatchLedger:
    #: in-flight batches remembered after a drop, waiting for a late ack
    MAX_IN_FLIGHT_DROPS = 10_000

    def __init__(self) -> None:
        #: every batch held, oldest first
        self.batches: dict[int, Entry] = {}
        #: readings in the batches held
        self.items = 0
        #: batches never sent (since the last reconnection), in order
        self.unsent: dict[int, None] = {}
        #: sent batches by backoff factor (1, 2, 4, 8, 16): (sent_at, batch, version);
        #: within one factor the due order is the send order, whatever the timeout
        self.heaps: dict[int, list[tuple[float, int, int]]] = {f: [] for f in (1, 2, 4, 8, 16)}
        #: batches gone whose rows are deleted with the next write
        self.to_delete: set[int] = set()
        #: batches dropped while in flight (sent, not acknowledged): batch -> readings
        self.dropped_in_flight: dict[int, int] = {}

    def load(self, db: sqlite3.Connection) -> int:
        """Every batch of the spool file, none sent yet; returns their bytes."""
        size_all = 0
        for b, ch, n, size, created in db.execute(
            "SELECT batch, channel, items, length(payload), created FROM batches ORDER BY batch"
        ):
            self.batches[int(b)] = Entry(str(ch), int(n), int(size), float(created))
            self.items += int(n)
            size_all += int(size)
        self.unsent = dict.fromkeys(self.batches)
        return size_all

    def add(self, built: list[SpooledBatch]) -> None:
        """Batches just committed, never sent."""
        for b in built:
            self.batches[b.batch] = Entry(b.channel, b.items, len(b.payload), b.created)
            self.unsent[b.batch] = None
            self.items += b.items

    def mark_sent(self, batches: list[int], sent_at: float) -> None:
        for b in batches:
            e = self.batches.get(b)
            if e is None:
                continue
            e.attempts += 1
            e.version += 1
            self.unsent.pop(b, None)
            heapq.heappush(self.heaps[min(1 << (e.attempts - 1), 16)], (sent_at, b, e.version))

    def forget_sent(self) -> None:
        """After a reconnect nothing sent before counts: everything held is due."""
        for e in self.batches.values():
            e.version += 1
        self.unsent = dict.fromkeys(sorted(self.batches))
        for h in self.heaps.values():
            h.clear()

    def due(self, ack_timeout_s: float, limit: int, now: float) -> list[tuple[int, Entry]]:
        """Batches never sent, or whose ack is overdue (``ack_timeout_s`` times 1, 2, 4,
        8 or 16 after their send, by attempt): at most ``limit``, oldest first."""
        picked: list[int] = []
        for b in self.unsent:
            if len(picked) >= limit:
                break
            picked.append(b)
        for factor, heap in self.heaps.items():
            keep: list[tuple[float, int, int]] = []
            while heap and len(keep) < limit:
                sent_at, b, version = heap[0]
                if sent_at + ack_timeout_s * factor >= now:
                    break
                heapq.heappop(heap)
                e = self.batches.get(b)
                if e is not None and e.version == version:
                    keep.append((sent_at, b, version))
            for item in keep:
                heapq.heappush(heap, item)
            picked += [b for _, b, _ in keep]
        picked = sorted(picked)[:limit]
        return [(b, self.batches[b]) for b in picked]

    def acknowledge(self, batches: list[int]) -> tuple[int, int, int]:
        """Ingest stored these batches: they go. Returns the batches removed, the
        readings of batches dropped in flight that were delivered after all, and the
        bytes freed."""
        removed = delivered = freed = 0
        for b in batches:
            e = self._forget(b)
            if e is not None:
                removed += 1
                freed += e.size
            delivered += self.dropped_in_flight.pop(b, 0)
        return removed, delivered, freed

    def expire(self, cutoff: float) -> tuple[int, int]:
        """Drop batches taken before ``cutoff``; returns the readings dropped and the
        bytes freed."""
        dropped = freed = 0
        for b in [b for b, e in self.batches.items() if e.created < cutoff]:
            e = self._forget(b)
            if e is not None:
                dropped += e.items
                freed += e.size
                if e.attempts:
                    self._note_in_flight(b, e.items)
        return dropped, freed

    def drop_oldest(self, need: int) -> tuple[int, int]:
        """Drop the oldest batches until ``need`` bytes are freed (or none is left);
        returns the readings dropped and the bytes freed."""
        freed = dropped = 0
        while freed < need and self.batches:
            b = next(iter(self.batches))
            e = self._forget(b)
            assert e is not None
            freed, dropped = freed + e.size, dropped + e.items
            if e.attempts:
                self._note_in_flight(b, e.items)
        return dropped, freed

    def _forget(self, batch: int) -> Entry | None:
        """Take a batch out of the bookkeeping; its row goes at the next write."""
        e = self.batches.pop(batch, None)
        if e is None:
            return None
        self.unsent.pop(batch, None)
        self.items -= e.items
        self.to_delete.add(batch)
        return e

    def _note_in_flight(self, batch: int, items: int) -> None:
        self.dropped_in_flight[batch] = items
        if len(self.dropped_in_flight) > self.MAX_IN_FLIGHT_DROPS:  # acks that never came
            del self.dropped_in_flight[next(iter(self.dropped_in_flight))]

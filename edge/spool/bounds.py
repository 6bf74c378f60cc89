"""The spool's bounds and its disk's faults: whether a reading may be taken, by the
limits (``max_bytes``) and the full policy, and the count of every reading lost.

When a new reading does not fit, the policy decides: ``drop_oldest`` drops the oldest
batches to make room; ``refuse_newest`` does not take the reading (it gets no seq, so
stored seqs stay contiguous). Every dropped reading is counted, in a counter the spool
keeps across restarts. A write that fails (disk full, I/O error) drops its readings,
counted, and the disk is left alone for :data:`SpoolBounds.RETRY_S` (readings are
refused, counted), then tried again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from edge.spool.file import is_full

log = logging.getLogger("sitewatch.edge.spool")


class FullPolicy(StrEnum):
    DROP_OLDEST = "drop_oldest"
    REFUSE_NEWEST = "refuse_newest"


@dataclass(frozen=True)
class SpoolLimits:
    max_bytes: int = 512 * 1024 * 1024
    max_age_s: float = 30 * 86400
    policy: FullPolicy = FullPolicy.DROP_OLDEST


class SpoolBounds:
    """What :class:`~edge.spool.store.Spool` takes in: the space used, the
    drops, the disk's state. Its subclass holds the batches and drops the oldest."""

    #: after a failed write, the disk is left alone this long
    RETRY_S = 2.0

    def __init__(self, limits: SpoolLimits | None) -> None:
        self.limits = limits or SpoolLimits()
        self._lock = threading.Lock()  # the counts here and the spool's bookkeeping
        #: bytes of the batches held and of the readings admitted, not yet committed
        self.bytes_used = 0
        #: readings lost (negative changes: found delivered after all)
        self.dropped = 0
        self._disk_full = False
        self._retry_at = 0.0
        #: failed writes (commits, syncs) since start
        self.write_errors = 0
        #: readings refused since start (counted in ``dropped`` too): they got no seq
        self.refused = 0

    def admit(self, size: int, hold: bool = False) -> bool:
        """May a reading of ``size`` bytes be taken? Applies the full policy and, if
        yes, reserves the space (the reading must then go to :meth:`commit`, or its
        space be given back with :meth:`release`). While the disk fails readings are
        refused, unless ``hold`` (the caller keeps them in memory until it works)."""
        if self.disk_refusing() and not hold:
            self.refused += 1
            self.count_dropped(1, "disk full or failing")
            return False
        if self.bytes_used + size > self.limits.max_bytes:
            if self.limits.policy is FullPolicy.REFUSE_NEWEST:
                self.refused += 1
                self.count_dropped(1, "spool full, refusing the newest reading")
                return False
            self._drop_oldest(self.bytes_used + size - self.limits.max_bytes)
        with self._lock:
            self.bytes_used += size
        return True

    def release(self, size: int) -> None:
        """Give back the space of readings admitted that will not be committed."""
        with self._lock:
            self.bytes_used -= size

    def disk_refusing(self) -> bool:
        """A write failed less than RETRY_S ago: new data is refused until then."""
        return self._disk_full and time.monotonic() < self._retry_at

    @property
    def disk_full(self) -> bool:
        """The last write failed (disk full or I/O error)."""
        return self._disk_full

    def _drop_oldest(self, need: int) -> None:
        """Drop the oldest batches until ``need`` bytes are freed (counted)."""
        raise NotImplementedError

    def _failed(self, readings: int, size: int, exc: Exception | None) -> None:
        """A write failed (``exc``; None: refused without trying): drop its readings."""
        if exc is not None:
            self.write_errors += 1
            if not self._disk_full:
                why = "disk full" if is_full(exc) else "I/O error"
                log.error(
                    "spool: %s (%s); dropping the readings at hand and refusing "
                    "new ones (counted), trying the disk again every %gs",
                    why,
                    exc,
                    self.RETRY_S,
                )
            self._disk_full = True
            self._retry_at = time.monotonic() + self.RETRY_S
        with self._lock:
            self.bytes_used -= size
        if readings:
            self.count_dropped(readings, "not stored: disk full or failing")

    def _write_ok(self) -> None:
        if self._disk_full:
            log.warning("spool writes work again")
            self._disk_full = False

    def count_dropped(self, n: int, why: str) -> None:
        """Add ``n`` (negative: readings found delivered after all) to the count; it is
        persisted with the next commit or sync."""
        if n == 0:
            return
        with self._lock:
            first = self.dropped == 0
            self.dropped += n
        (log.warning if first else log.debug)(
            "spool dropped %d reading(s): %s (%d in all)", n, why, self.dropped
        )

    @property
    def used_pct(self) -> float:
        return min(100.0, self.bytes_used / self.limits.max_bytes * 100.0)

"""Which content ingest acknowledged under each batch number, to refuse a reused one.

A gateway's batch number names one batch for ever (docs/wire-contract.md): the ack
refers to it. Ingest keeps, per ``(site, gateway, batch)``, a digest of the content it
took under that number. The same content again is a resend (stored again, harmlessly,
and acked again); other content under a known number is refused whole as
``batch_reused``, so that no ack is ever ambiguous.

The digests are kept in the SQL store (table ``acked_batches``) for
:data:`HORIZON_MS` after their batch was last acknowledged, so a restart of ingest
forgets nothing, and in memory for the numbers seen lately: per gateway the highest
number taken (a larger one is new without asking the database) and the newest
:data:`CACHE_SIZE` digests. Only a number at or below its gateway's highest (a resend,
a backlog after an outage) not in memory costs a query.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import BigInteger, Engine, LargeBinary, String, delete, func, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from sitewatch.core.db import Base

#: how long after its last ack a batch's content is remembered: longer than a gateway
#: keeps resending an unacknowledged batch after an outage of the broker or of ingest
HORIZON_MS = 7 * 86400 * 1000
#: digests kept in memory (about 200 bytes each)
CACHE_SIZE = 100_000
#: how often rows past the horizon are deleted
PRUNE_EVERY_MS = 3600 * 1000
#: core.decode.content_digest's length
DIGEST_BYTES = 16

Key = tuple[str, str, int]

#: remember a batch's digest, or refresh when it was last acknowledged (SQLite and
#: PostgreSQL both read this ON CONFLICT)
_UPSERT = text(
    "INSERT INTO acked_batches (site, gateway, batch, digest, acked_ms) "
    "VALUES (:site, :gateway, :batch, :digest, :acked_ms) "
    "ON CONFLICT (site, gateway, batch) DO UPDATE SET acked_ms = excluded.acked_ms"
)


class AckedBatch(Base):
    __tablename__ = "acked_batches"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(DIGEST_BYTES))
    #: when the batch was last acknowledged, ms since the epoch
    acked_ms: Mapped[int] = mapped_column(BigInteger, index=True)


@dataclass(frozen=True, slots=True)
class Acked:
    site: str
    gateway: str
    batch: int
    digest: bytes


class Miss:
    """Not in memory: ask the database."""


MISS = Miss()


class AckedBatches:
    def __init__(
        self, engine: Engine, *, horizon_ms: int = HORIZON_MS, cache_size: int = CACHE_SIZE
    ) -> None:
        self.engine = engine
        self.horizon_ms = horizon_ms
        self.cache_size = cache_size
        self._cache: OrderedDict[Key, bytes] = OrderedDict()
        self._top: dict[tuple[str, str], int] = {}
        self._pruned_ms = 0

    def create_schema(self) -> None:
        Base.metadata.create_all(self.engine, tables=[AckedBatch.__table__])  # type: ignore[list-item]

    # -- the consumer's side (one message at a time) -----------------------------------
    def cached(self, key: Key) -> bytes | Miss | None:
        """The digest taken under ``key``, None if the number is new, MISS if only the
        database can tell."""
        d = self._cache.get(key)
        if d is not None:
            self._cache.move_to_end(key)
            return d
        top = self._top.get(key[:2])
        if top is not None and key[2] > top:
            return None
        return MISS

    def fetch(self, key: Key, now_ms: int) -> bytes | None:
        """Ask the database (in a worker thread): the digest remembered under ``key``."""
        site, gateway, batch = key
        with Session(self.engine) as s:
            d = s.scalar(
                select(AckedBatch.digest).where(
                    AckedBatch.site == site,
                    AckedBatch.gateway == gateway,
                    AckedBatch.batch == batch,
                    AckedBatch.acked_ms >= now_ms - self.horizon_ms,
                )
            )
            if key[:2] not in self._top:
                top = s.scalar(
                    select(func.max(AckedBatch.batch)).where(
                        AckedBatch.site == site, AckedBatch.gateway == gateway
                    )
                )
                self._top.setdefault(key[:2], -1 if top is None else int(top))
        if d is not None:
            self._remember(key, bytes(d))
        return None if d is None else bytes(d)

    def claim(self, key: Key, content: bytes) -> None:
        """``content`` is taken under ``key`` (it is persisted when acknowledged)."""
        self._remember(key, content)
        gw = key[:2]
        if key[2] > self._top.get(gw, -1):
            self._top[gw] = key[2]

    def _remember(self, key: Key, content: bytes) -> None:
        self._cache[key] = content
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    # -- the pipeline's side (before the acks go out) ----------------------------------
    def store(self, rows: Sequence[Acked], now_ms: int | None = None) -> None:
        """Remember the content of acknowledged batches (a resend's row is refreshed),
        and now and then forget those past the horizon."""
        if not rows:
            return
        now = int(time.time() * 1000) if now_ms is None else now_ms
        # one row per batch (a resend may be in the same chunk as its first sending)
        values = list(
            {
                (r.site, r.gateway, r.batch): {
                    "site": r.site,
                    "gateway": r.gateway,
                    "batch": r.batch,
                    "digest": r.digest,
                    "acked_ms": now,
                }
                for r in rows
            }.values()
        )
        with Session(self.engine) as s, s.begin():
            # one plain statement, executemany: the dialect-specific insert construct
            # cost about 45 us a row, this a third of that (a row per batch acked)
            s.execute(_UPSERT, values)
            if now - self._pruned_ms >= PRUNE_EVERY_MS:
                s.execute(delete(AckedBatch).where(AckedBatch.acked_ms < now - self.horizon_ms))
                self._pruned_ms = now

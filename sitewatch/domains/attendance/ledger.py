"""The attendance ledger: every gate event, once, in an append-only hash chain per site.

It is the record of truth that wages are paid from. Ingest appends a batch's events
before it acknowledges the batch to the gateway, so an event the gateway has forgotten
is always here. An event is identified by (site, device, seq): a resent batch appends
nothing. Each site's entries are numbered 1, 2, ... and chained
(``sitewatch.core.hashchain``); ``attendance_chain`` holds each site's head, and appending
locks it, so two writers cannot fork a chain. :meth:`Ledger.verify` (``sitewatch
attendance verify``) recomputes every hash.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import (
    BigInteger,
    Index,
    Select,
    String,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from sitewatch.core import contract
from sitewatch.core.db import Base, count_rows, make_engine
from sitewatch.core.hashchain import GENESIS, ChainCheck, link_hash
from sitewatch.domains.attendance.hours import GateEvent
from sitewatch.domains.registry import Page


class LedgerRow(Base):
    __tablename__ = "attendance_ledger"
    __table_args__ = (
        UniqueConstraint("site", "device", "seq", name="uq_attendance_event"),
        Index("ix_attendance_site_ts", "site", "ts"),
        Index("ix_attendance_site_worker_ts", "site", "worker", "ts"),
    )

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    gateway: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[int] = mapped_column(BigInteger)
    worker: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(String(16))
    #: when ingest stored it (ms since the epoch)
    stored_at: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    def item(self) -> contract.AttendanceItem:
        return contract.AttendanceItem(
            device=self.device,
            ts=self.ts,
            seq=self.seq,
            worker=self.worker,
            direction=self.direction,  # type: ignore[arg-type]
            method=self.method,  # type: ignore[arg-type]
        )

    def event(self) -> GateEvent:
        return GateEvent(
            self.ts,
            self.worker,
            self.direction,  # type: ignore[arg-type]
            self.device,
            self.seq,
        )


class LedgerHead(Base):
    __tablename__ = "attendance_chain"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    touched_at: Mapped[int] = mapped_column(BigInteger)


TABLES = [LedgerRow.__table__, LedgerHead.__table__]


def row_hash(
    site: str,
    n: int,
    gateway: str,
    device: str,
    seq: int,
    ts: int,
    worker: str,
    direction: str,
    method: str,
    stored_at: int,
    prev_hash: str,
) -> str:
    return link_hash(
        [site, n, gateway, device, seq, ts, worker, direction, method, stored_at, prev_hash]
    )


def _recompute(r: LedgerRow) -> str:
    return row_hash(
        r.site,
        r.n,
        r.gateway,
        r.device,
        r.seq,
        r.ts,
        r.worker,
        r.direction,
        r.method,
        r.stored_at,
        r.prev_hash,
    )


@dataclass
class LedgerReport:
    site: str
    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Ledger:
    def __init__(self, session: Session) -> None:
        self.s = session

    def _lock(self, site: str, now: int) -> LedgerHead:
        # an UPDATE first: SQLite takes its write lock, PostgreSQL locks the row
        done = self.s.execute(
            update(LedgerHead).where(LedgerHead.site == site).values(touched_at=now)
        )
        if done.rowcount == 0:  # type: ignore[attr-defined]
            self.s.add(LedgerHead(site=site, n=0, hash=GENESIS, touched_at=now))
            self.s.flush()  # a concurrent first append fails here on the primary key
        head = self.s.get(LedgerHead, site, populate_existing=True)
        assert head is not None
        return head

    def append(
        self, site: str, gateway: str, items: Sequence[contract.AttendanceItem], now: int
    ) -> int:
        """Append the events not yet in the ledger; how many were new. The caller
        commits."""
        if not items:
            return 0
        head = self._lock(site, now)
        # what the ledger has already, per gate within the batch's seq range: a range
        # scan of the unique index (a tuple IN list of 500 pairs was planned as a scan of
        # the site's rows on PostgreSQL)
        spans: dict[str, tuple[int, int]] = {}
        for i in items:
            lo, hi = spans.get(i.device, (i.seq, i.seq))
            spans[i.device] = (min(lo, i.seq), max(hi, i.seq))
        seen: set[tuple[str, int]] = set()
        for device, (lo, hi) in spans.items():
            seen.update(
                (device, q)
                for q in self.s.scalars(
                    select(LedgerRow.seq).where(
                        LedgerRow.site == site,
                        LedgerRow.device == device,
                        LedgerRow.seq.between(lo, hi),
                    )
                )
            )
        added = 0
        n, prev = head.n, head.hash
        for i in items:
            key = (i.device, i.seq)
            if key in seen:
                continue
            seen.add(key)
            n += 1
            h = row_hash(
                site, n, gateway, i.device, i.seq, i.ts, i.worker, i.direction, i.method, now, prev
            )
            self.s.add(
                LedgerRow(
                    site=site,
                    n=n,
                    gateway=gateway,
                    device=i.device,
                    seq=i.seq,
                    ts=i.ts,
                    worker=i.worker,
                    direction=i.direction,
                    method=i.method,
                    stored_at=now,
                    prev_hash=prev,
                    hash=h,
                )
            )
            prev = h
            added += 1
        head.n, head.hash = n, prev
        self.s.flush()
        return added

    def events(
        self, site: str, start_ms: int, end_ms: int, worker: str | None = None
    ) -> list[GateEvent]:
        """Gate events with ``start_ms <= ts < end_ms``, in time order."""
        q = select(
            LedgerRow.ts, LedgerRow.worker, LedgerRow.direction, LedgerRow.device, LedgerRow.seq
        ).where(LedgerRow.site == site, LedgerRow.ts >= start_ms, LedgerRow.ts < end_ms)
        if worker is not None:
            q = q.where(LedgerRow.worker == worker)
        return [
            GateEvent(ts, w, d, dev, seq)  # type: ignore[arg-type]
            for ts, w, d, dev, seq in self.s.execute(q.order_by(LedgerRow.ts))
        ]

    def _query(
        self, site: str, start_ms: int, end_ms: int, worker: str | None
    ) -> Select[LedgerRow]:
        q = select(LedgerRow).where(
            LedgerRow.site == site, LedgerRow.ts >= start_ms, LedgerRow.ts < end_ms
        )
        return q if worker is None else q.where(LedgerRow.worker == worker)

    def rows(
        self,
        site: str,
        start_ms: int,
        end_ms: int,
        *,
        offset: int = 0,
        limit: int | None = 100,
        worker: str | None = None,
    ) -> list[LedgerRow]:
        """Entries in time order; ``limit`` None: all of them."""
        q = self._query(site, start_ms, end_ms, worker)
        return list(
            self.s.scalars(q.order_by(LedgerRow.ts, LedgerRow.n).offset(offset).limit(limit))
        )

    def page(
        self,
        site: str,
        start_ms: int,
        end_ms: int,
        *,
        offset: int = 0,
        limit: int = 100,
        worker: str | None = None,
    ) -> Page[LedgerRow]:
        """A page of :meth:`rows`, with how many there are in all."""
        total = count_rows(self.s, self._query(site, start_ms, end_ms, worker))
        return Page(
            self.rows(site, start_ms, end_ms, offset=offset, limit=limit, worker=worker), total
        )

    def sites(self) -> list[str]:
        return list(self.s.scalars(select(LedgerHead.site).order_by(LedgerHead.site)))

    def verify(self, site: str) -> LedgerReport:
        """Recompute every hash of a site's chain, check numbering, links and head."""
        check = ChainCheck("entry")
        for r in _walk(self.s, site):
            check.entry(r.n, r.prev_hash, r.hash, _recompute(r))
        head = self.s.get(LedgerHead, site)
        check.head((head.n, head.hash) if head is not None else None, "attendance_chain")
        return LedgerReport(site, check.entries, check.problems)


@dataclass(frozen=True, slots=True)
class GateBatch:
    """One message's valid gate events, as ingest appends them."""

    site: str
    gateway: str
    items: Sequence[contract.AttendanceItem]


class LedgerWriter:
    """Ingest's side: appends whole chunks of batches in one transaction."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    def create_schema(self) -> None:
        Base.metadata.create_all(self.engine, tables=TABLES)  # type: ignore[arg-type]

    def append(self, batches: Sequence[GateBatch], now: int) -> int:
        """Append every batch's new events; how many were new (the rest were resends)."""
        with Session(self.engine) as s, s.begin():
            ledger = Ledger(s)
            # heads locked in one order: two writers cannot deadlock
            return sum(
                ledger.append(b.site, b.gateway, b.items, now)
                for b in sorted(batches, key=lambda b: b.site)
            )

    def dispose(self) -> None:
        self.engine.dispose()


def _walk(s: Session, site: str) -> Iterator[LedgerRow]:
    q = select(LedgerRow).where(LedgerRow.site == site).order_by(LedgerRow.n)
    yield from s.scalars(q.execution_options(yield_per=1000))

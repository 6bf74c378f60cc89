"""The worker registry of each site (real-name registration).

A worker is registered once per site with the team and subcontractor they work for,
their trade, day rate, training and certificate expiry and ID-card number; the number
is kept only as a keyed hash and a masked form (``sitewatch.domains.attendance.idcard``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Index,
    Numeric,
    String,
    Text,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from sitewatch.core.db import Base, count_rows
from sitewatch.domains.registry import Page


class WorkerRow(Base):
    __tablename__ = "workers"
    __table_args__ = (
        Index("ix_workers_site_team", "site", "team"),
        Index("ix_workers_id_hash", "id_hash"),
    )

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    team: Mapped[str] = mapped_column(String(128))
    team_lead: Mapped[bool] = mapped_column(Boolean, default=False)
    subcontractor: Mapped[str] = mapped_column(String(256), default="")
    trade: Mapped[str] = mapped_column(String(64), default="")
    day_rate: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    training_expires: Mapped[date | None] = mapped_column(Date)
    certificate_expires: Mapped[date | None] = mapped_column(Date)
    #: HMAC-SHA256 of the ID-card number under the configured key; never the number
    id_hash: Mapped[str | None] = mapped_column(String(64))
    id_masked: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What sheets, headcounts and alerts need of a worker."""

    id: str
    name: str
    team: str
    team_lead: bool
    subcontractor: str
    trade: str
    day_rate: Decimal
    training_expires: date | None
    certificate_expires: date | None

    @classmethod
    def of(cls, row: WorkerRow) -> WorkerInfo:
        return cls(
            row.id,
            row.name,
            row.team,
            row.team_lead,
            row.subcontractor,
            row.trade,
            Decimal(row.day_rate),
            row.training_expires,
            row.certificate_expires,
        )

    def lapsed(self, day: date) -> list[str]:
        """What has expired by ``day``: "training", "certificate"."""
        out = []
        if self.training_expires is not None and self.training_expires < day:
            out.append("training")
        if self.certificate_expires is not None and self.certificate_expires < day:
            out.append("certificate")
        return out


class Workers:
    def __init__(self, session: Session) -> None:
        self.s = session

    def page(
        self, site: str, *, team: str | None = None, offset: int = 0, limit: int = 100
    ) -> Page[WorkerRow]:
        q = select(WorkerRow).where(WorkerRow.site == site)
        if team is not None:
            q = q.where(WorkerRow.team == team)
        total = count_rows(self.s, q)
        rows = self.s.scalars(q.order_by(WorkerRow.id).offset(offset).limit(limit))
        return Page(list(rows), total)

    def get(self, site: str, worker: str) -> WorkerRow | None:
        return self.s.get(WorkerRow, (site, worker))

    def infos(self, site: str) -> dict[str, WorkerInfo]:
        """Every active worker of a site."""
        rows = self.s.scalars(
            select(WorkerRow).where(WorkerRow.site == site, WorkerRow.active.is_(True))
        )
        return {r.id: WorkerInfo.of(r) for r in rows}

    def all_infos(self) -> dict[str, dict[str, WorkerInfo]]:
        out: dict[str, dict[str, WorkerInfo]] = {}
        for r in self.s.scalars(select(WorkerRow).where(WorkerRow.active.is_(True))):
            out.setdefault(r.site, {})[r.id] = WorkerInfo.of(r)
        return out

    def same_person(self, id_hash: str) -> Sequence[WorkerRow]:
        return list(self.s.scalars(select(WorkerRow).where(WorkerRow.id_hash == id_hash)))

    def put_many(self, rows: Iterable[WorkerRow]) -> tuple[int, int]:
        """Create or replace workers (an import); (created, updated)."""
        created = updated = 0
        for row in rows:
            old = self.s.get(WorkerRow, (row.site, row.id))
            if old is None:
                self.s.add(row)
                created += 1
                continue
            for col in WorkerRow.__table__.columns.keys():
                if col not in ("site", "id"):
                    setattr(old, col, getattr(row, col))
            updated += 1
        self.s.flush()
        return created, updated

"""Dead-letter store: every refused message or item, with topic, payload, reason and time.

Operators browse it with ``sitewatch deadletters`` (and the API, later). Rows are only
ever inserted; nothing in SiteWatch deletes them (an operator may prune old ones).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from sitewatch.core.db import Base, count_rows, make_engine
from sitewatch.core.lineprotocol import CONTROL


def printable(text: str | None, limit: int) -> str | None:
    """A text column's value as it is stored: control characters written as escapes
    (PostgreSQL refuses NUL in text, and a gateway chose these strings), cut to
    ``limit`` characters."""
    if text is None:
        return None
    if CONTROL.search(text):
        text = CONTROL.sub(lambda m: repr(m.group())[1:-1], text)
    return text[:limit]


class DeadLetter(Base):
    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    topic: Mapped[str] = mapped_column(Text)
    site: Mapped[str | None] = mapped_column(String(64), index=True)
    gateway: Mapped[str | None] = mapped_column(String(64))
    batch: Mapped[int | None] = mapped_column(BigInteger)
    device: Mapped[str | None] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


@dataclass(frozen=True, slots=True)
class NewDeadLetter:
    topic: str
    site: str | None
    gateway: str | None
    batch: int | None
    device: str | None
    seq: int | None
    reason: str
    detail: str
    payload: bytes


class DeadLetterStore:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    def create_schema(self) -> None:
        Base.metadata.create_all(self.engine, tables=[DeadLetter.__table__])  # type: ignore[list-item]

    def add_many(self, rows: Sequence[NewDeadLetter]) -> None:
        if not rows:
            return
        now = datetime.now(UTC)
        with Session(self.engine) as s, s.begin():
            s.add_all(
                DeadLetter(
                    received_at=now,
                    topic=printable(r.topic, 65535),
                    site=printable(r.site, 64),
                    gateway=printable(r.gateway, 64),
                    batch=r.batch,
                    device=printable(r.device, 64),
                    seq=r.seq,
                    reason=r.reason,
                    detail=printable(r.detail, 2000),
                    payload=r.payload,
                )
                for r in rows
            )

    def recent(
        self, limit: int = 50, reason: str | None = None, site: str | None = None
    ) -> list[DeadLetter]:
        return self.find(limit=limit, reason=reason, site=site)[0]

    def find(
        self,
        *,
        offset: int = 0,
        limit: int = 50,
        reason: str | None = None,
        site: str | None = None,
        sites: Collection[str] | None = None,
    ) -> tuple[list[DeadLetter], int]:
        """Newest first, and how many match; ``sites`` None: every site (rows whose
        site could not be read from the topic are shown only then)."""
        q = select(DeadLetter)
        if reason:
            q = q.where(DeadLetter.reason == reason)
        if site:
            q = q.where(DeadLetter.site == site)
        if sites is not None:
            q = q.where(DeadLetter.site.in_(sorted(sites)))
        with Session(self.engine) as s:
            total = count_rows(s, q)
            rows = s.scalars(q.order_by(DeadLetter.id.desc()).offset(offset).limit(limit))
            return list(rows), total

    def counts_by_reason(self) -> dict[str, int]:
        with Session(self.engine) as s:
            rows = s.execute(select(DeadLetter.reason, func.count()).group_by(DeadLetter.reason))
            return {reason: int(n) for reason, n in rows}

    def dispose(self) -> None:
        self.engine.dispose()

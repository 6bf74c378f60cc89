"""The alert history: an append-only hash chain, and its verification.

Entry *n* holds an alert's full state after one change (the :class:`AlertEvent` JSON),
who made it, the hash of entry *n-1* and its own SHA-256 over all of that, so altering
or removing any entry breaks the chain; ``alert_chain`` holds the head (last *n* and
hash) so that removing the newest entries is seen too. Appending is the store's job
(under the chain lock); this module defines the rows and checks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
from sqlalchemy import BigInteger, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from sitewatch.core.db import Base
from sitewatch.core.hashchain import GENESIS, ChainCheck, link_hash
from sitewatch.domains.alertrecords.model import AlertEvent, event_decoder

__all__ = ["GENESIS", "ChainHead", "HistoryRow", "VerifyReport", "entry_hash", "walk_chain"]


class HistoryRow(Base):
    __tablename__ = "alert_history"

    n: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    alert_id: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ChainHead(Base):
    __tablename__ = "alert_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    touched_at: Mapped[int] = mapped_column(BigInteger)


def entry_hash(
    n: int, alert_id: str, at: int, event: str, actor: str, data: str, prev_hash: str
) -> str:
    return link_hash([n, alert_id, at, event, actor, data, prev_hash])


@dataclass
class VerifyReport:
    entries: int
    alerts: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class ChainWalk:
    entries: int = 0
    #: each alert's state after its newest entry
    last: dict[str, AlertEvent] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def walk_chain(s: Session) -> ChainWalk:
    """Recompute every hash, check numbering, links and the head."""
    out = ChainWalk()
    check = ChainCheck()
    for h in s.scalars(select(HistoryRow).order_by(HistoryRow.n)).yield_per(1000):
        check.entry(
            h.n,
            h.prev_hash,
            h.hash,
            entry_hash(h.n, h.alert_id, h.at, h.event, h.actor, h.data, h.prev_hash),
        )
        try:
            ev: AlertEvent = event_decoder.decode(h.data)
            if ev.id != h.alert_id or ev.event.value != h.event:
                check.problems.append(f"entry {h.n}: data names another alert or event")
            out.last[ev.id] = ev
        except msgspec.DecodeError as exc:  # ValidationError is one too
            check.problems.append(f"entry {h.n}: data unreadable ({exc})")
    head = s.get(ChainHead, 1)
    if head is None:
        check.problems.append("alert_chain head row missing")
    else:
        check.head((head.n, head.hash), "alert_chain")
    out.entries, out.problems = check.entries, check.problems
    return out

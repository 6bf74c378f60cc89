"""The ``alert_outbox``: what each output (MQTT, InfluxDB, each notifier) still has to
deliver. Rows are written in the transaction of the change they announce (an alert is
never committed without its notifications, and none is lost by a crash); the dispatcher
reads them, deletes what was delivered and marks what failed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Boolean, Engine, Integer, LargeBinary, String, Text, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from sitewatch.core.db import Base
from sitewatch.domains.alertrecords.model import AlertEvent


class OutboxRow(Base):
    __tablename__ = "alert_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: set when the target refused it for good (a bad request): kept for the operator
    failed: Mapped[bool] = mapped_column(Boolean, default=False)

    # ids are never reused (SQLite would reuse a deleted rowid): the dispatcher tells a
    # delivered row from a new one by its id
    __table_args__ = ({"sqlite_autoincrement": True},)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An outbox row to deliver."""

    id: int
    target: str
    payload: bytes


#: which outputs want an event (MQTT, InfluxDB, the notifiers that match its filters)
Router = Callable[[AlertEvent], list[str]]


# -- in a writer's transaction ----------------------------------------------------------
def last_id(s: Session) -> int:
    """The newest row's id: the rows a transaction adds come after it."""
    return int(s.scalar(select(OutboxRow.id).order_by(OutboxRow.id.desc()).limit(1)) or 0)


def added_since(s: Session, since_id: int) -> list[Outgoing]:
    """The rows after ``since_id`` (:func:`last_id` at the transaction's start)."""
    s.flush()
    rows = s.execute(
        select(OutboxRow.id, OutboxRow.target, OutboxRow.payload)
        .where(OutboxRow.id > since_id)
        .order_by(OutboxRow.id)
    )
    return [Outgoing(i, t, p) for i, t, p in rows]


# -- the dispatcher -------------------------------------------------------------------
def pending(engine: Engine, exclude: set[int], limit: int = 1000) -> list[Outgoing]:
    with Session(engine) as s:
        rows = s.execute(
            select(OutboxRow.id, OutboxRow.target, OutboxRow.payload)
            .where(OutboxRow.failed.is_(False))
            .order_by(OutboxRow.id)
            .limit(limit + len(exclude))
        )
        return [Outgoing(i, t, p) for i, t, p in rows if i not in exclude][:limit]


def delivered(engine: Engine, ids: Sequence[int]) -> None:
    if ids:
        with Session(engine) as s, s.begin():
            s.execute(delete(OutboxRow).where(OutboxRow.id.in_(list(ids))))


def attempt_failed(engine: Engine, outbox_id: int, error: str, *, permanent: bool) -> None:
    with Session(engine) as s, s.begin():
        s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == outbox_id)
            .values(attempts=OutboxRow.attempts + 1, last_error=error[:2000], failed=permanent)
        )


def counts(engine: Engine) -> dict[str, tuple[int, int]]:
    """Per target: (waiting, failed for good)."""
    out: dict[str, tuple[int, int]] = {}
    with Session(engine) as s:
        for target, failed in s.execute(select(OutboxRow.target, OutboxRow.failed)):
            w, f = out.get(target, (0, 0))
            out[target] = (w + (not failed), f + bool(failed))
    return out

"""Writing the alert history: every writer (the alert service, ``sitewatch alerts ack``
from another process, the API) appends under the chain lock. The first statement of each
transaction updates the ``alert_chain`` row, which serialises writers on SQLite (write
lock) and PostgreSQL (row lock) alike; each entry's outbox rows are added with it.
(``history.py`` defines the rows and checks them.)"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from sitewatch.domains.alertrecords.history import ChainHead, HistoryRow, entry_hash
from sitewatch.domains.alertrecords.model import AlertEvent, EventKind, event_encoder
from sitewatch.domains.alertrecords.outbox import OutboxRow, Router
from sitewatch.domains.alertrecords.rows import AlertRow, to_event


def lock_chain(s: Session, now: int) -> ChainHead:
    """The chain's head, locked for this transaction."""
    # an UPDATE first: SQLite takes its write lock, PostgreSQL locks the row
    s.execute(update(ChainHead).where(ChainHead.id == 1).values(touched_at=now))
    head = s.get(ChainHead, 1, populate_existing=True)
    if head is None:
        raise RuntimeError("alert_chain has no head row: run create_schema()")
    return head


def append(
    s: Session,
    head: ChainHead,
    row: AlertRow,
    event: EventKind,
    at: int,
    actor: str,
    router: Router,
) -> AlertEvent:
    """The row's state after a change as the next history entry, and an outbox row for
    each output ``router`` names; returns the change as an event."""
    ev = to_event(row, event, at, actor)
    data = event_encoder.encode(ev)
    text_data = data.decode()
    n = head.n + 1
    h = entry_hash(n, row.id, at, event.value, actor, text_data, head.hash)
    s.add(
        HistoryRow(
            n=n,
            alert_id=row.id,
            at=at,
            event=event.value,
            actor=actor,
            data=text_data,
            prev_hash=head.hash,
            hash=h,
        )
    )
    head.n, head.hash = n, h
    for target in router(ev):
        s.add(OutboxRow(target=target, payload=data, attempts=0, failed=False))
    return ev

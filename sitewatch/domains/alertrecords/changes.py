"""The rule engine's changes recorded: each :class:`Change` (raised, escalated,
reactivated, cleared, resolved, late) applied to its alert's row and appended to the
history with its outbox rows, all in one transaction; or each in a savepoint of its own,
when one the database refuses must not hold back the others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from sitewatch.domains.alertrecords import outbox
from sitewatch.domains.alertrecords.historywrite import append, lock_chain
from sitewatch.domains.alertrecords.model import Change, EventKind, Level, State
from sitewatch.domains.alertrecords.outbox import Outgoing, Router
from sitewatch.domains.alertrecords.rows import SYSTEM_ACTOR, AlertRow, json_text

#: what the database refuses for good, whenever it is tried: a change that breaks a
#: constraint (a second open alert for one condition, an id already used) or does not fit
#: a column. Not an outage (OperationalError): retrying such a change can never succeed.
REFUSALS = (IntegrityError, DataError)


@dataclass(frozen=True, slots=True)
class Refused:
    """A change :meth:`AlertStore.apply_each` left out, and why."""

    change: Change
    reason: str
    #: False for a later change of an alert whose earlier change was refused
    first: bool = True


def apply(engine: Engine, router: Router, changes: Sequence[Change], now: int) -> list[Outgoing]:
    """Record the engine's changes in one transaction; returns what to deliver."""
    if not changes:
        return []
    with Session(engine) as s, s.begin():
        head = lock_chain(s, now)
        mark = outbox.last_id(s)
        for c in changes:
            row = _change_row(s, c)
            if row is not None:
                append(s, head, row, c.event, c.at, SYSTEM_ACTOR, router)
        return outbox.added_since(s, mark)


def apply_each(
    engine: Engine, router: Router, changes: Sequence[Change], now: int
) -> tuple[list[Outgoing], list[Refused]]:
    """Like :func:`apply`, but each change in a savepoint of its own: one the database
    refuses for good (:data:`REFUSALS`) is left out, and so are the later changes of
    its alert; the others are stored. For a batch :func:`apply` could not store: one
    bad change must not hold back every other."""
    if not changes:
        return [], []
    refused: list[Refused] = []
    left_out: set[str] = set()
    with Session(engine) as s, s.begin():
        head = lock_chain(s, now)
        mark = outbox.last_id(s)
        for c in changes:
            if c.alert_id in left_out:
                refused.append(
                    Refused(c, "an earlier change of this alert was refused", first=False)
                )
                continue
            try:
                with s.begin_nested():
                    row = _change_row(s, c)
                    if row is not None:
                        append(s, head, row, c.event, c.at, SYSTEM_ACTOR, router)
                    s.flush()
            except REFUSALS as exc:
                left_out.add(c.alert_id)
                refused.append(Refused(c, str(exc.orig).strip()))
                # the chain head as the savepoint left it
                s.expire(head)
        return outbox.added_since(s, mark), refused


def _change_row(s: Session, c: Change) -> AlertRow | None:
    if c.event in (EventKind.RAISED, EventKind.LATE):
        late = c.event is EventKind.LATE
        row = AlertRow(
            id=c.alert_id,
            site=c.site,
            gateway=c.gateway,
            device=c.device,
            profile=c.profile,
            rule=c.rule,
            group=c.group,
            severity=c.severity,
            level=Level.SITE.value,
            state=(State.RESOLVED if late else State.ACTIVE).value,
            late=late,
            title=c.title,
            value=json_text(c.value),
            limit=json_text(c.limit),
            raised_at=c.at,
            updated_at=c.at,
            cleared_at=None,
            resolved_at=c.at if late else None,
            acked_at=None,
            acked_by=None,
            ack_comment=None,
            resolved_by=None,
            resolve_comment=None,
        )
        s.add(row)
        return row
    found = s.get(AlertRow, c.alert_id)
    if found is None or found.state == State.RESOLVED.value:
        return None  # resolved meanwhile by an operator: nothing left to change
    row = found
    row.updated_at = c.at
    if c.event is EventKind.ESCALATED:
        row.severity, row.rule, row.title = c.severity, c.rule, c.title
        row.value, row.limit = json_text(c.value), json_text(c.limit)
    elif c.event is EventKind.REACTIVATED:
        row.state, row.cleared_at = State.ACTIVE.value, None
        row.value, row.limit = json_text(c.value), json_text(c.limit)
    elif c.event is EventKind.CLEARED:
        row.state, row.cleared_at = State.CLEARING.value, c.at
    elif c.event is EventKind.RESOLVED:
        row.state, row.resolved_at = State.RESOLVED.value, c.at
        row.resolved_by = SYSTEM_ACTOR
    return row

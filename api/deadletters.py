"""The dead-letter store: what ingest refused, with the reason; and counts per reason.

A ``vendor`` key (bound to one gateway) sees only its gateway's dead letters: its
``site``/``gateway`` filters are forced to its own, and asking for another site or
gateway answers an empty page, not an error (nothing tells it what exists elsewhere)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Security
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from api.auth import authorized
from api.deps import PageDep, StateDep
from api.errors import responses
from api.pages import Page
from sitewatch.core.db import count_rows
from sitewatch.core.reasons import Reason
from sitewatch.domains.accounts import Principal, Scope
from sitewatch.domains.deadletters import DeadLetter as DeadLetterRow

router = APIRouter(tags=["dead letters"])

DeadLetterReader = Annotated[Principal, Security(authorized, scopes=[Scope.DEADLETTERS_READ])]
Ident = Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")
Q = TypeVar("Q", bound=Select[*tuple[Any, ...]])


def epoch_ms(at: datetime) -> int:
    """ms since the epoch of a stored time (SQLite gives it back without its zone: UTC,
    as it was written)."""
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)


def _where(q: Q, p: Principal, site: str | None, gateway: str | None) -> Q | None:
    """The caller's filters on ``q``; None: nothing can match (a vendor asking for
    another site or gateway than its own)."""
    if p.gateway is not None:  # a vendor key: its own gateway of its one site only
        own_site = next(iter(p.sites), None)
        if own_site is None or site not in (None, own_site) or gateway not in (None, p.gateway):
            return None
        site, gateway = own_site, p.gateway
    if site:
        q = q.where(DeadLetterRow.site == site)
    if gateway:
        q = q.where(DeadLetterRow.gateway == gateway)
    sites = p.visible_sites()
    if sites is not None:  # rows whose site could not be read are shown to all-sites only
        q = q.where(DeadLetterRow.site.in_(sorted(sites)))
    return q


class DeadLetter(BaseModel):
    id: int
    #: when ingest refused it: ms since the epoch (UTC), as every time the API gives
    received_at: int
    topic: str
    site: str | None
    gateway: str | None
    batch: int | None
    device: str | None
    seq: int | None
    reason: str
    detail: str
    #: the refused bytes, base64 (they may not be text)
    payload_b64: str
    payload_size: int


@router.get(
    "/deadletters",
    response_model=Page[DeadLetter],
    responses=responses(401, 403, 422, 429),
    summary="refused messages and items, newest first",
)
def list_dead_letters(
    p: DeadLetterReader,
    state: StateDep,
    page: PageDep,
    reason: Reason | None = None,
    site: Annotated[str | None, Ident] = None,
    gateway: Annotated[str | None, Ident] = None,
) -> Page[DeadLetter]:
    q = _where(select(DeadLetterRow), p, site, gateway)
    if q is None:
        return Page(items=[], total=0, offset=page.offset, limit=page.limit)
    if reason:
        q = q.where(DeadLetterRow.reason == reason.value)
    with Session(state.dead_letters.engine) as s:
        total = count_rows(s, q)
        rows = list(
            s.scalars(q.order_by(DeadLetterRow.id.desc()).offset(page.offset).limit(page.limit))
        )
    return Page(
        items=[
            DeadLetter(
                id=r.id,
                received_at=epoch_ms(r.received_at),
                topic=r.topic,
                site=r.site,
                gateway=r.gateway,
                batch=r.batch,
                device=r.device,
                seq=r.seq,
                reason=r.reason,
                detail=r.detail,
                payload_b64=base64.b64encode(r.payload[:65536]).decode(),
                payload_size=len(r.payload),
            )
            for r in rows
        ],
        total=total,
        offset=page.offset,
        limit=page.limit,
    )


@router.get(
    "/deadletters/reasons",
    response_model=dict[str, int],
    responses=responses(401, 403, 429),
    summary="how many dead letters per reason",
)
def dead_letter_reasons(p: DeadLetterReader, state: StateDep) -> dict[str, int]:
    if p.gateway is None and p.visible_sites() is None:
        return state.dead_letters.counts_by_reason()
    q = _where(select(DeadLetterRow.reason, func.count()), p, None, None)
    if q is None:
        return {}
    with Session(state.dead_letters.engine) as s:
        return {reason: int(n) for reason, n in s.execute(q.group_by(DeadLetterRow.reason))}

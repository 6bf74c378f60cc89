"""The dead-letter store: what ingest refused, with the reason; and counts per reason."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Security
from pydantic import BaseModel

from sitewatch.accounts import Principal, Scope
from sitewatch.api.auth import authorized
from sitewatch.api.deps import PageDep, StateDep
from sitewatch.api.errors import responses
from sitewatch.api.pages import Page
from sitewatch.ingest.reasons import Reason

router = APIRouter(tags=["dead letters"])

DeadLetterReader = Annotated[Principal, Security(authorized, scopes=[Scope.DEADLETTERS_READ])]


class DeadLetter(BaseModel):
    id: int
    received_at: datetime
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


@router.get("/deadletters", response_model=Page[DeadLetter],
            responses=responses(401, 403, 422, 429),
            summary="refused messages and items, newest first")
def list_dead_letters(p: DeadLetterReader, state: StateDep, page: PageDep,
                      reason: Reason | None = None,
                      site: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
                      = None) -> Page[DeadLetter]:
    rows, total = state.dead_letters.find(offset=page.offset, limit=page.limit,
                                          reason=reason.value if reason else None,
                                          site=site, sites=p.visible_sites())
    return Page(items=[DeadLetter(
        id=r.id, received_at=r.received_at, topic=r.topic, site=r.site, gateway=r.gateway,
        batch=r.batch, device=r.device, seq=r.seq, reason=r.reason, detail=r.detail,
        payload_b64=base64.b64encode(r.payload[:65536]).decode(),
        payload_size=len(r.payload)) for r in rows],
        total=total, offset=page.offset, limit=page.limit)


@router.get("/deadletters/reasons", response_model=dict[str, int],
            responses=responses(401, 403, 429), summary="how many dead letters per reason")
def dead_letter_reasons(p: DeadLetterReader, state: StateDep) -> dict[str, int]:
    return state.dead_letters.counts_by_reason()

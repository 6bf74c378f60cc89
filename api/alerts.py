"""Alerts: list and filter, one alert with its history, acknowledge and resolve.

Acknowledging and resolving go through the alert store like ``sitewatch alerts ack``:
each is a hash-chained history entry, and the change is delivered to the alert outputs
(MQTT, InfluxDB, notifiers) by the alert service's dispatcher. Site officers act on their
own sites' alerts; an alert escalated to the county bureau is acknowledged by a county
supervisor (scope ``alerts:ack_county``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Security
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Reader, authorized
from api.deps import IsoDatetime, PageDep, StateDep
from api.errors import Conflict, Forbidden, NotFound, responses
from api.pages import Page
from sitewatch.domains.accounts import Principal, Scope
from sitewatch.domains.alertrecords.model import Level
from sitewatch.domains.alertrecords.store import AlertError, AlertFilter, AlertRow

router = APIRouter(tags=["alerts"])

AlertId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
StateFilter = Literal["open", "active", "clearing", "resolved"]
Severity = Literal["info", "warning", "alarm"]


class Alert(BaseModel):
    id: str
    site: str
    gateway: str
    device: str
    profile: str
    rule: str
    group: str
    severity: str
    level: str
    state: str
    late: bool
    title: str
    value: Any
    limit: Any
    raised_at: int
    updated_at: int
    cleared_at: int | None
    resolved_at: int | None
    acked_at: int | None
    acked_by: str | None
    ack_comment: str | None
    resolved_by: str | None
    resolve_comment: str | None


class HistoryEntry(BaseModel):
    n: int
    event: str
    at: int
    actor: str
    state: dict[str, Any]
    prev_hash: str
    hash: str


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no true -> 1, "5" -> 5

    comment: str = Field(default="", max_length=2000)


#: the body of an acknowledgement or resolution: optional, as is its comment
ActionBody = Annotated[Action | None, Body(description='`{"comment": "..."}`, or no body')]


def _alert(row: AlertRow) -> Alert:
    d = {c: getattr(row, c) for c in Alert.model_fields if c not in ("value", "limit")}
    return Alert(**d, value=json.loads(row.value), limit=json.loads(row.limit))


def _ms(t: datetime | None) -> int | None:
    return int(t.timestamp() * 1000) if t is not None else None


@router.get(
    "/alerts",
    response_model=Page[Alert],
    responses=responses(401, 403, 422, 429),
    summary="alerts of the sites the caller may see, newest first",
)
def list_alerts(
    p: Reader,
    state: StateDep,
    page: PageDep,
    site: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None,
    severity: Severity | None = None,
    state_: Annotated[StateFilter | None, Query(alias="state")] = None,
    level: Level | None = None,
    since: Annotated[IsoDatetime | None, Query(description="raised at or after")] = None,
    until: Annotated[IsoDatetime | None, Query(description="raised before")] = None,
) -> Page[Alert]:
    if site is not None and not p.may_see(site):
        return Page(items=[], total=0, offset=page.offset, limit=page.limit)
    f = AlertFilter(
        sites=p.visible_sites(),
        site=site,
        state=state_,
        severity=severity,
        level=level.value if level else None,
        since=_ms(since),
        until=_ms(until),
    )
    rows, total = state.alerts.find(f, offset=page.offset, limit=page.limit)
    return Page(items=[_alert(r) for r in rows], total=total, offset=page.offset, limit=page.limit)


def _visible(p: Principal, state: StateDep, alert_id: str) -> AlertRow:
    row = state.alerts.get(alert_id)
    if row is None or not p.may_see(row.site):
        raise NotFound(f"no alert {alert_id}")
    return row


@router.get(
    "/alerts/{alert_id}", response_model=Alert, responses=responses(401, 403, 404, 422, 429)
)
def get_alert(alert_id: AlertId, p: Reader, state: StateDep) -> Alert:
    return _alert(_visible(p, state, alert_id))


@router.get(
    "/alerts/{alert_id}/history",
    response_model=list[HistoryEntry],
    responses=responses(401, 403, 404, 422, 429),
    summary="every change of the alert, as kept in the hash-chained history",
)
def alert_history(alert_id: AlertId, p: Reader, state: StateDep) -> list[HistoryEntry]:
    _visible(p, state, alert_id)
    return [
        HistoryEntry(
            n=h.n,
            event=h.event,
            at=h.at,
            actor=h.actor,
            state=json.loads(h.data),
            prev_hash=h.prev_hash,
            hash=h.hash,
        )
        for h in state.alerts.history(alert_id)
    ]


@router.post(
    "/alerts/{alert_id}/ack",
    response_model=Alert,
    responses=responses(400, 401, 403, 404, 409, 422, 429),
    summary="acknowledge: who and when are recorded, with the comment",
)
async def acknowledge(
    alert_id: AlertId,
    state: StateDep,
    p: Annotated[Principal, Security(authorized, scopes=[Scope.READ])],
    body: ActionBody = None,
) -> Alert:
    row = _visible(p, state, alert_id)
    need = Scope.ALERTS_ACK_COUNTY if row.level == Level.COUNTY.value else Scope.ALERTS_ACK
    if need not in p.scopes and Scope.ADMIN not in p.scopes:
        where = (
            "escalated to the county bureau" if need is Scope.ALERTS_ACK_COUNTY else "at site level"
        )
        raise Forbidden(
            f"this alert is {where}: acknowledging it needs scope {need}",
            {"missing_scopes": [need.value]},
        )
    return await _act(state, alert_id, p, body, state.alerts.acknowledge)


@router.post(
    "/alerts/{alert_id}/resolve",
    response_model=Alert,
    responses=responses(400, 401, 403, 404, 409, 422, 429),
    summary="resolve by hand (if the condition still holds, a new alert is raised)",
)
async def resolve(
    alert_id: AlertId,
    state: StateDep,
    p: Annotated[Principal, Security(authorized, scopes=[Scope.ALERTS_RESOLVE])],
    body: ActionBody = None,
) -> Alert:
    _visible(p, state, alert_id)
    return await _act(state, alert_id, p, body, state.alerts.resolve)


async def _act(
    state: StateDep,
    alert_id: str,
    p: Principal,
    body: Action | None,
    action: Callable[[str, str, str, int], object],
) -> Alert:
    comment = body.comment if body is not None else ""
    try:
        await asyncio.to_thread(action, alert_id, p.name, comment, int(time.time() * 1000))
    except AlertError as exc:
        raise Conflict(str(exc)) from None
    return _alert(_visible(p, state, alert_id))

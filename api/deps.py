"""Dependencies shared by the slices, as ``Annotated`` aliases."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from pydantic import BeforeValidator
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.config import ApiSettings
from api.errors import Unavailable
from api.ratelimit import RateLimiter
from sitewatch.core.ids import IDENT_PATTERN
from sitewatch.core.influx import InfluxClient, InfluxError
from sitewatch.core.profiles import ProfileSet
from sitewatch.domains.alertrecords.store import AlertStore
from sitewatch.domains.deadletters import DeadLetterStore
from sitewatch.domains.snapshots import SnapshotStore


@dataclass
class AppState:
    settings: ApiSettings
    influx: InfluxClient
    engine: Engine
    sessions: sessionmaker[Session]
    profiles: ProfileSet
    alerts: AlertStore
    dead_letters: DeadLetterStore
    snapshots: SnapshotStore
    limiter: RateLimiter
    login_limiter: RateLimiter


async def get_state(request: Request) -> AppState:  # async: no thread-pool hop
    state: AppState = request.app.state.sitewatch
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    """A session per request; handlers that change something commit before answering
    (so a failed commit is their error response, not a lost change after a 2xx)."""
    with state.sessions() as s:
        yield s


SessionDep = Annotated[Session, Depends(get_session)]


async def influx_rows(state: AppState, q: str) -> list[dict[str, Any]]:
    """The rows of an InfluxQL query; InfluxDB down or failing is a 503."""
    try:
        return await state.influx.series(q)
    except InfluxError as exc:
        raise Unavailable("InfluxDB query failed", str(exc)) from None


SiteId = Annotated[str, Path(pattern=IDENT_PATTERN, description="site identifier")]
DeviceId = Annotated[str, Path(pattern=IDENT_PATTERN, description="device identifier")]
GatewayId = Annotated[str, Path(pattern=IDENT_PATTERN, description="gateway identifier")]


def _iso_only(value: object) -> object:
    """Only ISO 8601 text: pydantic would also take "0.5" as Unix seconds."""
    if isinstance(value, str) and not _ISO_RE.match(value):
        raise ValueError("an ISO 8601 date-time, e.g. 2026-11-24T08:00:00+08:00")
    return value


_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
IsoDatetime = Annotated[datetime, BeforeValidator(_iso_only)]


@dataclass(frozen=True, slots=True)
class PageParams:
    offset: int
    limit: int


async def page_params(
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> PageParams:
    return PageParams(offset, limit)


PageDep = Annotated[PageParams, Depends(page_params)]

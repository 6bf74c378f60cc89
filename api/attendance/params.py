"""What the attendance routes share: the ISO date they accept, the attendance days a
request covers (``from``/``to``, resolved against the site's policy and clock, at most
:data:`MAX_DAYS`), the team and worker filters, and the clock itself."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import Depends, Query
from pydantic import BeforeValidator, Field
from sqlalchemy.orm import Session

from api.errors import BadRequest
from sitewatch.core.ids import IDENT_PATTERN
from sitewatch.domains.attendance.reports import DayRangeError, day_range
from sitewatch.domains.attendance.sitepolicy import get_policy

#: the longest range of attendance days one request covers
MAX_DAYS = 62


def _iso_date(value: object) -> object:
    """Only ``YYYY-MM-DD``: pydantic would also take 20260101 as Unix seconds."""
    if not isinstance(value, str | date) or (
        isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)
    ):
        raise ValueError("an ISO date, e.g. 2026-11-02")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date), Field(strict=False)]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class DayParams:
    first: date | None
    last: date | None

    def resolve(self, session: Session, site: str) -> tuple[date, date]:
        try:
            return day_range(get_policy(session, site), self.first, self.last, now_ms(), MAX_DAYS)
        except DayRangeError as exc:
            raise BadRequest(str(exc)) from None


async def day_params(
    first: Annotated[
        IsoDate | None, Query(alias="from", description=("first attendance day; default: `to`"))
    ] = None,
    last: Annotated[
        IsoDate | None,
        Query(
            alias="to", description=("last attendance day, inclusive; default: today at the site")
        ),
    ] = None,
) -> DayParams:
    return DayParams(first, last)


DaysDep = Annotated[DayParams, Depends(day_params)]
TeamQuery = Annotated[str | None, Query(max_length=128)]
WorkerQuery = Annotated[str | None, Query(pattern=IDENT_PATTERN)]

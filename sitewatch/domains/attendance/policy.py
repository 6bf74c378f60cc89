"""A site's attendance rules: its attendance day, its shift, and the limits that
hours, sheets and attendance alerts use (docs/attendance.md, "Rules").

Times are site-local ``HH:MM``. The *attendance day* D runs from ``day_start`` on D to
``day_start`` on D+1; every gate event belongs to the day it falls in, and a session to
the day of its entry, so a night crew's shift past midnight stays on the day it began.
``day_start`` must not fall inside the shift (between ``shift_start`` and ``shift_end``).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

LocalTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]

MINUTE_MS = 60_000
DAY_MS = 86_400_000
_EPOCH = date(1970, 1, 1)


@lru_cache(maxsize=256)  # day_of runs per gate event: parse each setting once
def _minutes(hhmm: str) -> int:
    m = re.fullmatch(r"(\d\d):(\d\d)", hhmm)
    assert m is not None  # the field pattern checked it
    return int(m[1]) * 60 + int(m[2])


class AttendancePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the site's offset from UTC (China: 8)
    utc_offset_h: float = Field(default=8.0, ge=-12, le=14)
    #: when one attendance day ends and the next begins
    day_start: LocalTime = "04:00"
    #: the shift: an exit without an entry is credited from ``shift_start``, an entry
    #: without an exit up to ``shift_end`` (``shift_end`` before ``shift_start``: the
    #: next calendar day)
    shift_start: LocalTime = "07:00"
    shift_end: LocalTime = "18:00"
    #: a second swipe in the same direction within this time is the same swipe
    duplicate_window_s: int = Field(default=60, ge=0, le=3600)
    #: hours that make one day-equivalent (工日) on a day-labour sheet
    hours_per_day: Decimal = Field(default=Decimal(8), gt=0, le=24, decimal_places=2)
    #: on site longer than this in one attendance day raises an alert
    daily_limit_h: float = Field(default=12.0, gt=0, le=24)

    @model_validator(mode="after")
    def _day_start_outside_shift(self) -> Self:
        if self.shift_end_offset_min <= self.shift_start_offset_min:
            raise ValueError(
                f"day_start {self.day_start} falls inside the shift {self.shift_start}-"
                f"{self.shift_end}: move day_start to a time no one works, so that a "
                "shift is never split between two attendance days"
            )
        return self

    # -- the day and the shift as offsets from the day's start --------------------------
    @property
    def shift_start_offset_min(self) -> int:
        return (_minutes(self.shift_start) - _minutes(self.day_start)) % 1440

    @property
    def shift_end_offset_min(self) -> int:
        """In 1..1440: a shift ending exactly at ``day_start`` ends with the day."""
        return (_minutes(self.shift_end) - _minutes(self.day_start) - 1) % 1440 + 1

    @property
    def _day_origin_ms(self) -> int:
        """UTC ms of day 1970-01-01's start."""
        return round(_minutes(self.day_start) * MINUTE_MS - self.utc_offset_h * 3_600_000)

    def day_of(self, ts_ms: int) -> date:
        """The attendance day a moment belongs to."""
        return _EPOCH + timedelta(days=(ts_ms - self._day_origin_ms) // DAY_MS)

    def day_bounds(self, day: date) -> tuple[int, int]:
        """UTC ms of the day's start and end (the next day's start)."""
        start = self._day_origin_ms + (day - _EPOCH).days * DAY_MS
        return start, start + DAY_MS

    def shift_bounds(self, day: date) -> tuple[int, int]:
        start, _ = self.day_bounds(day)
        return (
            start + self.shift_start_offset_min * MINUTE_MS,
            start + self.shift_end_offset_min * MINUTE_MS,
        )

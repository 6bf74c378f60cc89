"""Day-labour sheets as the API answers them: the JSON models, or a CSV or XLSX file
download (``sitewatch.domains.attendance.export``, the same files as ``sitewatch
attendance sheet``). The route is in :mod:`api.attendance.ledger`."""

from __future__ import annotations

import re
from datetime import date
from typing import Literal
from urllib.parse import quote

from fastapi import Response
from pydantic import BaseModel

from sitewatch.domains.attendance.export import sheets_csv, sheets_xlsx
from sitewatch.domains.attendance.sheets import DayLabourSheet

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"
SheetFormat = Literal["json", "csv", "xlsx"]


class SheetLine(BaseModel):
    day: date
    worker: str
    name: str
    trade: str
    minutes: int
    hours: str
    day_equivalents: str
    day_rate: str
    amount: str
    remarks: list[str]


class SheetTotals(BaseModel):
    minutes: int
    hours: str
    day_equivalents: str
    amount: str


class Sheet(BaseModel):
    site: str
    site_name: str
    team: str
    leads: list[str]
    subcontractors: list[str]
    first_day: date
    last_day: date
    hours_per_day: str
    rows: list[SheetLine]
    totals: SheetTotals


def sheets_answer(
    found: list[DayLabourSheet], format: SheetFormat, name: str
) -> list[Sheet] | Response:
    """The sheets as JSON, or as a download named ``name`` (with its extension)."""
    if format == "json":
        return [_sheet(sh) for sh in found]
    if format == "csv":
        return _download(sheets_csv(found), CSV, name)
    return _download(sheets_xlsx(found), XLSX, name)


def _sheet(sh: DayLabourSheet) -> Sheet:
    t = sh.totals
    return Sheet(
        site=sh.site,
        site_name=sh.site_name,
        team=sh.team,
        leads=sh.leads,
        subcontractors=sh.subcontractors,
        first_day=sh.first_day,
        last_day=sh.last_day,
        hours_per_day=str(sh.hours_per_day),
        rows=[
            SheetLine(
                day=r.day,
                worker=r.worker,
                name=r.name,
                trade=r.trade,
                minutes=r.minutes,
                hours=str(r.hours),
                day_equivalents=str(r.day_equivalents),
                day_rate=str(r.day_rate),
                amount=str(r.amount),
                remarks=list(r.remarks),
            )
            for r in sh.rows
        ],
        totals=SheetTotals(
            minutes=t.minutes,
            hours=str(t.hours),
            day_equivalents=str(t.day_equivalents),
            amount=str(t.amount),
        ),
    )


def _download(data: bytes, media_type: str, filename: str) -> Response:
    """A file download; the name in ASCII for old clients and in UTF-8 (RFC 6266) for
    team names in Chinese."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    disposition = f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename)}"
    return Response(data, media_type=media_type, headers={"Content-Disposition": disposition})

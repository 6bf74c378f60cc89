"""A site's gate-event ledger over HTTP and what is derived from it: the events, who is
on site now, headcount, hours, day-labour sheets (their answers in
:mod:`api.attendance.sheets`) and the check of the ledger's hash chain. Figures
come from ``sitewatch.domains.attendance.reports``, the same code as ``sitewatch
attendance``."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Response
from pydantic import BaseModel

from api.attendance.params import DaysDep, TeamQuery, WorkerQuery, now_ms
from api.attendance.sheets import XLSX, Sheet, SheetFormat, sheets_answer
from api.deps import PageDep, SessionDep
from api.errors import responses
from api.pages import Page
from api.siteaccess import ReadSite
from sitewatch.domains.attendance import reports
from sitewatch.domains.attendance.hours import WorkerDay
from sitewatch.domains.attendance.ledger import Ledger
from sitewatch.domains.attendance.sheets import hours_of
from sitewatch.domains.attendance.sitepolicy import get_policy

router = APIRouter(tags=["attendance"])


class GateEntry(BaseModel):
    n: int
    ts: int
    device: str
    seq: int
    worker: str
    direction: str
    method: str
    gateway: str
    hash: str


class OnSite(BaseModel):
    worker: str
    name: str | None
    team: str
    subcontractor: str
    since: int


class Headcount(BaseModel):
    day: date
    came: int
    on_site_now: int
    by_team: dict[str, int]
    by_subcontractor: dict[str, int]
    unregistered: int


class SessionOut(BaseModel):
    start: int
    end: int
    #: exit_without_entry (start assumed), no_exit (end assumed), open (on site now)
    flag: str | None


class WorkerHours(BaseModel):
    worker: str
    day: date
    minutes: int
    #: minutes / 60, rounded half-up to 0.01, as on the sheet
    hours: str
    sessions: list[SessionOut]
    #: every rule that applied (the sheet's remarks)
    flags: list[str]
    #: swipes a rule ignored or noted, by rule
    noted: dict[str, int]
    first_in: int | None
    last_out: int | None
    on_site: bool
    swipes: int


class ChainReport(BaseModel):
    site: str
    entries: int
    ok: bool
    problems: list[str]


def _hours(wd: WorkerDay) -> WorkerHours:
    return WorkerHours(
        worker=wd.worker,
        day=wd.day,
        minutes=wd.minutes,
        hours=str(hours_of(wd.minutes)),
        sessions=[
            SessionOut(start=x.start, end=x.end, flag=x.flag.value if x.flag else None)
            for x in wd.sessions
        ],
        flags=[f.value for f in wd.flags],
        noted={f.value: n for f, n in wd.noted.items()},
        first_in=wd.first_in,
        last_out=wd.last_out,
        on_site=wd.on_site,
        swipes=wd.swipes,
    )


@router.get(
    "/sites/{site}/attendance/events",
    response_model=Page[GateEntry],
    responses=responses(400, 401, 403, 404, 422, 429),
    summary="gate events of the ledger, in time order",
)
def list_events(
    access: ReadSite, session: SessionDep, page: PageDep, days: DaysDep, worker: WorkerQuery = None
) -> Page[GateEntry]:
    site = access.id
    first, last = days.resolve(session, site)
    policy = get_policy(session, site)
    start, end = policy.day_bounds(first)[0], policy.day_bounds(last)[1]
    rows = Ledger(session).page(
        site, start, end, offset=page.offset, limit=page.limit, worker=worker
    )
    return Page(
        items=[GateEntry.model_validate(r, from_attributes=True) for r in rows.items],
        total=rows.total,
        offset=page.offset,
        limit=page.limit,
    )


@router.get(
    "/sites/{site}/attendance/on-site",
    response_model=list[OnSite],
    responses=responses(401, 403, 404, 422, 429),
    summary="who is on site now",
)
def on_site(access: ReadSite, session: SessionDep) -> list[OnSite]:
    site = access.id
    return [
        OnSite(
            worker=o.worker, name=o.name, team=o.team, subcontractor=o.subcontractor, since=o.since
        )
        for o in reports.on_site_now(session, site, now_ms())
    ]


@router.get(
    "/sites/{site}/attendance/headcount",
    response_model=list[Headcount],
    responses=responses(400, 401, 403, 404, 422, 429),
    summary="per attendance day: who came, by team and subcontractor",
)
def headcount(access: ReadSite, session: SessionDep, days: DaysDep) -> list[Headcount]:
    site = access.id
    first, last = days.resolve(session, site)
    return [
        Headcount(
            day=h.day,
            came=h.came,
            on_site_now=h.on_site_now,
            by_team=h.by_team,
            by_subcontractor=h.by_subcontractor,
            unregistered=h.unregistered,
        )
        for h in reports.headcounts(session, site, first, last, now_ms())
    ]


@router.get(
    "/sites/{site}/attendance/hours",
    response_model=list[WorkerHours],
    responses=responses(400, 401, 403, 404, 422, 429),
    summary="per worker and attendance day: sessions and credited minutes",
)
def worker_hours(
    access: ReadSite, session: SessionDep, days: DaysDep, worker: WorkerQuery = None
) -> list[WorkerHours]:
    site = access.id
    first, last = days.resolve(session, site)
    return [_hours(wd) for wd in reports.hours(session, site, first, last, now_ms(), worker)]


@router.get(
    "/sites/{site}/attendance/sheets",
    response_model=list[Sheet],
    responses={
        **responses(400, 401, 403, 404, 422, 429),
        200: {
            "content": {"application/json": {}, "text/csv": {}, XLSX: {}},
            "description": "the sheets as JSON, or a CSV or XLSX download",
        },
    },
    summary="day-labour sheets, one per team, as JSON, CSV or XLSX",
)
def labour_sheets(
    access: ReadSite,
    session: SessionDep,
    days: DaysDep,
    team: TeamQuery = None,
    format: SheetFormat = "json",
) -> list[Sheet] | Response:
    site = access.id
    first, last = days.resolve(session, site)
    found = reports.sheets(session, site, first, last, now_ms(), team)
    return sheets_answer(found, format, f"daylabour-{site}-{team or 'all'}-{first}-{last}.{format}")


@router.get(
    "/sites/{site}/attendance/verify",
    response_model=ChainReport,
    responses=responses(401, 403, 404, 422, 429),
    summary="recompute every hash of the site's ledger chain",
)
def verify(access: ReadSite, session: SessionDep) -> ChainReport:
    site = access.id
    report = Ledger(session).verify(site)
    return ChainReport(site=site, entries=report.entries, ok=report.ok, problems=report.problems)

"""Real-name attendance of a site: its worker registry, its gate-event ledger, and what
is derived from them (who is on site, headcount, hours, day-labour sheets).

Every route is under ``/sites/{site}`` and takes its site through
:mod:`sitewatch.api.siteaccess` (404 for a site that does not exist or the caller may not
see). Read with ``read``; the registry and the site's attendance policy are changed with
``workers:write`` (site officers of the site, admins). ID-card
numbers come in (a PUT, an import) and are hashed with ``attendance.id_hash_key`` at
once; no answer carries one, nor its hash: only the masked form. Figures come from
``sitewatch.domains.attendance.reports``, the same code as ``sitewatch attendance``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, File, Path, Query, Response, UploadFile
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from sitewatch.api.deps import PageDep, SessionDep, StateDep
from sitewatch.api.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UnsupportedMediaType,
    responses,
)
from sitewatch.api.pages import Page
from sitewatch.api.siteaccess import ReadSite, WorkersSite
from sitewatch.core.ids import IDENT_PATTERN
from sitewatch.domains.attendance import idcard, reports
from sitewatch.domains.attendance.export import sheets_csv, sheets_xlsx
from sitewatch.domains.attendance.hours import WorkerDay
from sitewatch.domains.attendance.ledger import Ledger
from sitewatch.domains.attendance.policy import AttendancePolicy
from sitewatch.domains.attendance.registration import (
    import_workers,
    keep_id_numbers,
    policy_problems,
    same_person,
    same_person_message,
)
from sitewatch.domains.attendance.reports import DayRangeError, day_range
from sitewatch.domains.attendance.sheets import CENT, DayLabourSheet, hours_of
from sitewatch.domains.attendance.sitepolicy import get_policy, put_policy
from sitewatch.domains.attendance.workers import WorkerInfo, WorkerRow, Workers

router = APIRouter(tags=["attendance"])

#: the longest range of attendance days one request covers
MAX_DAYS = 62
WorkerId = Annotated[str, Path(pattern=IDENT_PATTERN, description="worker identifier")]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"


def _iso_date(value: object) -> object:
    """Only ``YYYY-MM-DD``: pydantic would also take 20260101 as Unix seconds."""
    if not isinstance(value, str | date) or (
        isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)
    ):
        raise ValueError("an ISO date, e.g. 2026-11-02")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date), Field(strict=False)]
#: a day rate: a decimal string or a number, at most 2 decimal places (Numeric(10, 2))
Money = Annotated[
    Decimal,
    Field(strict=False, ge=0, le=Decimal("99999999.99"), decimal_places=2, allow_inf_nan=False),
    AfterValidator(lambda d: d.quantize(CENT)),
]


# -- models ----------------------------------------------------------------------------
class WorkerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no true -> 1, "5" -> 5

    name: str = Field(min_length=1, max_length=100)
    team: str = Field(min_length=1, max_length=128)
    team_lead: bool = False
    subcontractor: str = Field(default="", max_length=256)
    trade: str = Field(default="", max_length=64)
    day_rate: Money
    training_expires: IsoDate | None = None
    certificate_expires: IsoDate | None = None
    #: checked (GB 11643), then kept only hashed and masked; omitted: the one on file
    id_number: str | None = Field(default=None, max_length=32)
    #: inactive workers are on no sheet and in no headcount by team
    active: bool = True


class Worker(BaseModel):
    site: str
    id: str
    name: str
    team: str
    team_lead: bool
    subcontractor: str
    trade: str
    day_rate: str
    training_expires: date | None
    certificate_expires: date | None
    #: the ID-card number as people recognise it (first 3, last 4); never the number
    id_masked: str | None
    active: bool
    updated_at: int
    #: what has expired by today at the site: "training", "certificate"
    lapsed: list[str]


class ImportCounts(BaseModel):
    created: int
    updated: int


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


class ChainReport(BaseModel):
    site: str
    entries: int
    ok: bool
    problems: list[str]


# -- shared steps ----------------------------------------------------------------------
def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class DayParams:
    first: date | None
    last: date | None

    def resolve(self, session: Session, site: str) -> tuple[date, date]:
        try:
            return day_range(get_policy(session, site), self.first, self.last, _now_ms(), MAX_DAYS)
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


def _id_key(state: StateDep) -> str:
    key = state.settings.id_hash_key
    if key is None:
        raise Unavailable(
            "attendance.id_hash_key is not configured: ID-card numbers "
            "cannot be hashed (docs/attendance.md, ID-card numbers)"
        )
    return key


def _worker(row: WorkerRow, today: date) -> Worker:
    return Worker(
        site=row.site,
        id=row.id,
        name=row.name,
        team=row.team,
        team_lead=row.team_lead,
        subcontractor=row.subcontractor,
        trade=row.trade,
        day_rate=str(Decimal(row.day_rate)),
        training_expires=row.training_expires,
        certificate_expires=row.certificate_expires,
        id_masked=row.id_masked,
        active=row.active,
        updated_at=row.updated_at,
        lapsed=WorkerInfo.of(row).lapsed(today),
    )


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


# -- workers ---------------------------------------------------------------------------
@router.get(
    "/sites/{site}/workers",
    response_model=Page[Worker],
    responses=responses(401, 403, 404, 422, 429),
)
def list_workers(
    access: ReadSite, session: SessionDep, page: PageDep, team: TeamQuery = None
) -> Page[Worker]:
    site = access.id
    today = get_policy(session, site).day_of(_now_ms())
    found = Workers(session).page(site, team=team, offset=page.offset, limit=page.limit)
    return Page(
        items=[_worker(r, today) for r in found.items],
        total=found.total,
        offset=page.offset,
        limit=page.limit,
    )


@router.get(
    "/sites/{site}/workers/{worker}",
    response_model=Worker,
    responses=responses(401, 403, 404, 422, 429),
)
def get_worker(access: ReadSite, worker: WorkerId, session: SessionDep) -> Worker:
    site = access.id
    row = Workers(session).get(site, worker)
    if row is None:
        raise NotFound(f"no worker {worker} at site {site}")
    return _worker(row, get_policy(session, site).day_of(_now_ms()))


@router.put(
    "/sites/{site}/workers/{worker}",
    response_model=Worker,
    responses={
        **responses(400, 401, 403, 404, 409, 422, 429, 503),
        201: {"model": Worker, "description": "registered"},
    },
    summary="register or change a worker; the ID-card number is kept hashed",
)
def put_worker(
    access: WorkersSite,
    worker: WorkerId,
    body: WorkerIn,
    session: SessionDep,
    state: StateDep,
    response: Response,
) -> Worker:
    site = access.id
    id_hash = id_masked = None
    if body.id_number is not None:
        try:
            number = idcard.check(body.id_number)
        except idcard.IdCardError as exc:  # its message never holds the number
            raise BadRequest(f"id_number: {exc}") from None
        id_hash, id_masked = idcard.keyed_hash(number, _id_key(state)), idcard.mask(number)
    row = WorkerRow(
        site=site,
        id=worker,
        id_hash=id_hash,
        id_masked=id_masked,
        updated_at=_now_ms(),
        **body.model_dump(exclude={"id_number"}),
    )
    keep_id_numbers(session, [row])
    created, _ = Workers(session).put_many([row])
    clashes = same_person(session, site, [worker])
    if clashes:
        session.rollback()
        raise Conflict(same_person_message(clashes[0]), {"workers": clashes[0]})
    session.commit()
    if created:
        response.status_code = 201
    saved = Workers(session).get(site, worker)
    assert saved is not None
    return _worker(saved, get_policy(session, site).day_of(_now_ms()))


@router.post(
    "/sites/{site}/workers/import",
    response_model=ImportCounts,
    responses=responses(400, 401, 403, 404, 413, 415, 422, 429, 503),
    summary="import a worker list (.csv or .xlsx), all or nothing",
)
def import_worker_list(
    access: WorkersSite, file: Annotated[UploadFile, File()], session: SessionDep, state: StateDep
) -> ImportCounts:
    site = access.id
    limit = state.settings.attendance.max_import_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"larger than {limit} bytes")
    try:
        done = import_workers(
            session, data, file.filename or "", site=site, id_key=_id_key(state), now_ms=_now_ms()
        )
    except ValueError as exc:  # not .csv or .xlsx
        raise UnsupportedMediaType(str(exc)) from None
    if done.errors:
        raise BadRequest(
            f"{len(done.errors)} error(s) in the worker list; nothing imported",
            [{"row": e.row, "column": e.column, "message": e.message} for e in done.errors],
        )
    session.commit()
    return ImportCounts(created=done.created, updated=done.updated)


# -- policy ----------------------------------------------------------------------------
@router.get(
    "/sites/{site}/attendance/policy",
    response_model=AttendancePolicy,
    responses=responses(401, 403, 404, 422, 429),
)
def read_policy(access: ReadSite, session: SessionDep) -> AttendancePolicy:
    return get_policy(session, access.id)


@router.put(
    "/sites/{site}/attendance/policy",
    response_model=AttendancePolicy,
    responses=responses(400, 401, 403, 404, 422, 429),
    summary="replace the site's attendance policy (keys left out take defaults)",
)
def write_policy(
    access: WorkersSite, body: Annotated[dict[str, Any], Body()], session: SessionDep
) -> AttendancePolicy:
    # a dict, not the model: a wrong key is a 400 naming it, as sitewatch attendance says
    site = access.id
    try:
        policy = AttendancePolicy.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(
            f"invalid attendance policy: {policy_problems(exc)}",
            [
                {"key": ".".join(str(x) for x in e["loc"]) or None, "message": e["msg"]}
                for e in exc.errors()
            ],
        ) from None
    put_policy(session, site, policy, _now_ms())
    session.commit()
    return policy


# -- the ledger and what is derived from it ---------------------------------------------
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
        for o in reports.on_site_now(session, site, _now_ms())
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
        for h in reports.headcounts(session, site, first, last, _now_ms())
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
    return [_hours(wd) for wd in reports.hours(session, site, first, last, _now_ms(), worker)]


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
    format: Literal["json", "csv", "xlsx"] = "json",
) -> list[Sheet] | Response:
    site = access.id
    first, last = days.resolve(session, site)
    found = reports.sheets(session, site, first, last, _now_ms(), team)
    if format == "json":
        return [_sheet(sh) for sh in found]
    name = f"daylabour-{site}-{team or 'all'}-{first}-{last}.{format}"
    if format == "csv":
        return _download(sheets_csv(found), CSV, name)
    return _download(sheets_xlsx(found), XLSX, name)


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

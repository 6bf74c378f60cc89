"""The worker registry of a site over HTTP: list and read workers, register or change
one (``PUT``), import a worker list (.csv or .xlsx) all or nothing. ID-card numbers are
hashed with ``attendance.id_hash_key`` as they come in; answers carry only the masked
form. Writing goes through ``sitewatch.domains.attendance.registration``, as
``sitewatch attendance import`` does."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, File, Path, Response, UploadFile
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.attendance.params import IsoDate, TeamQuery, now_ms
from api.deps import PageDep, SessionDep, StateDep
from api.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UnsupportedMediaType,
    responses,
)
from api.pages import Page
from api.siteaccess import ReadSite, WorkersSite
from sitewatch.core.ids import IDENT_PATTERN
from sitewatch.domains.attendance import idcard
from sitewatch.domains.attendance.registration import (
    import_workers,
    keep_id_numbers,
    same_person,
    same_person_message,
)
from sitewatch.domains.attendance.sheets import CENT
from sitewatch.domains.attendance.sitepolicy import get_policy
from sitewatch.domains.attendance.workers import WorkerInfo, WorkerRow, Workers

router = APIRouter(tags=["attendance"])

WorkerId = Annotated[str, Path(pattern=IDENT_PATTERN, description="worker identifier")]
#: a day rate: a decimal string or a number, at most 2 decimal places (Numeric(10, 2))
Money = Annotated[
    Decimal,
    Field(strict=False, ge=0, le=Decimal("99999999.99"), decimal_places=2, allow_inf_nan=False),
    AfterValidator(lambda d: d.quantize(CENT)),
]


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


@router.get(
    "/sites/{site}/workers",
    response_model=Page[Worker],
    responses=responses(401, 403, 404, 422, 429),
)
def list_workers(
    access: ReadSite, session: SessionDep, page: PageDep, team: TeamQuery = None
) -> Page[Worker]:
    site = access.id
    today = get_policy(session, site).day_of(now_ms())
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
    return _worker(row, get_policy(session, site).day_of(now_ms()))


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
        updated_at=now_ms(),
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
    return _worker(saved, get_policy(session, site).day_of(now_ms()))


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
            session, data, file.filename or "", site=site, id_key=_id_key(state), now_ms=now_ms()
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

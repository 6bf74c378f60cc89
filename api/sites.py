"""Sites, their gateways and devices: read by whoever may see the site, provisioned by admins.

The registration rule (docs/api.md#devices): a device need not be registered for its
readings to be stored. The devices of a site are the registry's and those InfluxDB has a
reading of in the last 30 days (as ``latest`` finds them); the second kind is listed with
the profile and gateway of its latest reading and ``registered: false`` until an admin
registers it (``PUT /sites/{site}/devices/{device}``)."""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api import broker
from api.auth import Admin, Reader
from api.deps import DeviceId, PageDep, SessionDep, StateDep
from api.errors import BadRequest, Conflict, NotFound, responses
from api.pages import Page
from api.readings import Reading, latest_readings
from api.siteaccess import AdminSite, ReadSite
from sitewatch.core.ids import IDENT_PATTERN
from sitewatch.core.settings import ConfigError
from sitewatch.domains.brokeraccounts.brokerauth import gateway_username, hash_password
from sitewatch.domains.registry import DeviceRow, GatewayRow, Registry, RegistryError, SiteRow
from sitewatch.domains.rulebook import Override, RuleBook

router = APIRouter(tags=["sites"])

Ident = Field(pattern=IDENT_PATTERN, min_length=1, max_length=64)
ProjectType = Literal[
    "building", "road", "bridge", "water", "municipal", "village_infrastructure", "other"
]


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no true -> 1, "5" -> 5

    id: str = Ident
    name: str = Field(min_length=1, max_length=200)
    county: str = Field(min_length=1, max_length=128)
    town: str = Field(default="", max_length=128)
    project_type: ProjectType
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    planned_headcount: int | None = Field(default=None, ge=0, le=100_000)


class Site(SiteIn):
    created_at: int


class GatewayIn(BaseModel):
    """The body of ``POST /sites/{site}/gateways`` (docs/api.md#provisioning-a-gateway)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # no true -> 1, "5" -> 5

    #: the gateway's id, unique within the site: 1-64 of ``A-Z a-z 0-9 _ -``
    id: str = Ident
    #: free text for operators (where the box is, who installed it)
    description: str = Field(default="", max_length=500)


class Gateway(BaseModel):
    site: str
    id: str
    description: str
    mqtt_username: str
    created_at: int


class GatewayCredentials(Gateway):
    """Returned once, when the gateway is provisioned: the password is not kept."""

    mqtt_password: str
    #: ``publish``: ``{p}/{site}/{gateway}/telemetry|status|attendance|camera|snapshot/+``
    #: (one topic per ``|`` alternative; ``+``: a snapshot's SHA-256); ``subscribe``: the
    #: gateway's ack topic ``{p}/{site}/{gateway}/ack``
    topics: dict[str, str]


class RuleOverride(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no true -> 1, "5" -> 5

    enabled: bool = True
    #: rule parameters to change (e.g. ``value``, ``hysteresis``, ``for_s``)
    set: dict[str, float | int | bool | str] = Field(default_factory=dict)


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no true -> 1, "5" -> 5

    gateway: str = Ident
    profile: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=200)
    #: per-device rule overrides, by rule id
    overrides: dict[str, RuleOverride] = Field(default_factory=dict)


class Device(DeviceIn):
    site: str
    id: str
    #: the gateway of a registered device; of an unregistered one, its latest reading's
    gateway: str
    #: false: seen in readings (the last 30 days) but not registered; ``profile`` and
    #: ``gateway`` are then those of its latest reading, ``name`` and ``overrides`` empty
    registered: bool = True
    #: when it was registered (ms); None for an unregistered device
    created_at: int | None


def _site(row: SiteRow) -> Site:
    return Site.model_validate(row, from_attributes=True)


def _gateway(row: GatewayRow) -> Gateway:
    return Gateway.model_validate(row, from_attributes=True)


def _device(row: DeviceRow) -> Device:
    return Device(
        site=row.site,
        id=row.id,
        gateway=row.gateway,
        profile=row.profile,
        name=row.name,
        created_at=row.created_at,
        overrides={k: RuleOverride.model_validate(v) for k, v in (row.overrides or {}).items()},
    )


def _unregistered(r: Reading) -> Device:
    return Device(
        site=r.site,
        id=r.device,
        gateway=r.gateway or "",
        profile=r.profile,
        registered=False,
        created_at=None,
    )


async def _seen(state: StateDep, site: str, device: str | None) -> dict[str, Reading]:
    """The devices with a reading of the last 30 days, each with its latest (of any
    profile)."""
    latest: dict[str, Reading] = {}
    for r in await latest_readings(state, site, device):
        if r.device not in latest or r.ts > latest[r.device].ts:
            latest[r.device] = r
    return latest


def _registry_error(exc: RegistryError) -> Exception:
    return (NotFound if exc.code == "not_found" else Conflict)(str(exc))


# -- sites ----------------------------------------------------------------------------
@router.get(
    "/sites",
    response_model=Page[Site],
    responses=responses(401, 403, 422, 429),
    summary="sites the caller may see, for the county map",
)
def list_sites(
    p: Reader,
    session: SessionDep,
    page: PageDep,
    county: str | None = Query(default=None, max_length=128),
    project_type: ProjectType | None = None,
) -> Page[Site]:
    found = Registry(session).sites(
        allowed=p.visible_sites(),
        county=county,
        project_type=project_type,
        offset=page.offset,
        limit=page.limit,
    )
    return Page(
        items=[_site(r) for r in found.items],
        total=found.total,
        offset=page.offset,
        limit=page.limit,
    )


@router.get("/sites/{site}", response_model=Site, responses=responses(401, 403, 404, 429))
def get_site(site: ReadSite) -> Site:
    return _site(site.row)


@router.post(
    "/sites",
    response_model=Site,
    status_code=201,
    responses=responses(400, 401, 403, 409, 422, 429),
)
def create_site(body: SiteIn, p: Admin, session: SessionDep, response: Response) -> Site:
    try:
        row = Registry(session).add_site(
            SiteRow(**body.model_dump(), created_at=int(time.time() * 1000))
        )
    except RegistryError as exc:
        raise _registry_error(exc) from None
    session.commit()
    response.headers["Location"] = f"/sites/{row.id}"
    return _site(row)


# -- gateways -------------------------------------------------------------------------
@router.get(
    "/sites/{site}/gateways",
    response_model=Page[Gateway],
    responses=responses(401, 403, 404, 422, 429),
)
def list_gateways(site: ReadSite, session: SessionDep, page: PageDep) -> Page[Gateway]:
    found = Registry(session).gateway_page(site.id, offset=page.offset, limit=page.limit)
    return Page(
        items=[_gateway(g) for g in found.items],
        total=found.total,
        offset=page.offset,
        limit=page.limit,
    )


@router.post(
    "/sites/{site}/gateways",
    response_model=GatewayCredentials,
    status_code=201,
    responses=responses(400, 401, 403, 404, 409, 422, 429),
    summary="provision a gateway: creates its MQTT account and ACL",
)
def create_gateway(
    access: AdminSite, body: GatewayIn, session: SessionDep, state: StateDep
) -> GatewayCredentials:
    site = access.id
    password = secrets.token_urlsafe(24)
    row = GatewayRow(
        site=site,
        id=body.id,
        description=body.description,
        mqtt_username=gateway_username(site, body.id),
        mqtt_password_hash=hash_password(password),
        created_at=int(time.time() * 1000),
    )
    try:
        Registry(session).add_gateway(row)
    except RegistryError as exc:
        raise _registry_error(exc) from None
    broker.check(state.settings.broker, session)  # 409 rather than cut anybody off
    session.commit()
    broker.sync(state.settings.broker, session)
    prefix = state.settings.broker.topic_prefix
    base = f"{prefix}/{site}/{body.id}"
    return GatewayCredentials(
        **_gateway(row).model_dump(),
        mqtt_password=password,
        topics={
            "publish": f"{base}/telemetry|status|attendance|camera|snapshot/+",
            "subscribe": f"{base}/ack",
        },
    )


# -- devices --------------------------------------------------------------------------
@router.get(
    "/sites/{site}/devices",
    response_model=Page[Device],
    responses=responses(401, 403, 404, 422, 429, 503),
    summary="the site's devices: registered ones, and those seen in readings (registered: false)",
)
async def list_devices(
    site: ReadSite, session: SessionDep, state: StateDep, page: PageDep
) -> Page[Device]:
    seen = await _seen(state, site.id, None)
    devices = {d.id: _device(d) for d in Registry(session).all_devices(site.id)}
    for device, reading in seen.items():
        devices.setdefault(device, _unregistered(reading))
    ordered = [devices[k] for k in sorted(devices)]
    return Page(
        items=ordered[page.offset : page.offset + page.limit],
        total=len(ordered),
        offset=page.offset,
        limit=page.limit,
    )


@router.get(
    "/sites/{site}/devices/{device}",
    response_model=Device,
    responses=responses(401, 403, 404, 429, 503),
)
async def get_device(
    site: ReadSite, device: DeviceId, session: SessionDep, state: StateDep
) -> Device:
    row = Registry(session).device(site.id, device)
    if row is not None:
        return _device(row)
    seen = await _seen(state, site.id, device)
    if device not in seen:
        raise NotFound(f"no device {device} at site {site.id}")
    return _unregistered(seen[device])


@router.put(
    "/sites/{site}/devices/{device}",
    response_model=Device,
    responses={
        **responses(400, 401, 403, 404, 422, 429),
        201: {"model": Device, "description": "created"},
    },
    summary="register or change a device: its gateway, profile and rule overrides",
)
def put_device(
    access: AdminSite,
    device: DeviceId,
    body: DeviceIn,
    session: SessionDep,
    state: StateDep,
    response: Response,
) -> Device:
    site = access.id
    profile = state.profiles.get(body.profile)
    if profile is None:
        raise BadRequest(f"unknown profile {body.profile!r}", {"profiles": sorted(state.profiles)})
    rule_ids = {r.id for r in profile.rules}
    unknown = sorted(set(body.overrides) - rule_ids)
    if unknown:
        raise BadRequest(
            f"profile {body.profile} has no rule {', '.join(unknown)}", {"rules": sorted(rule_ids)}
        )
    overrides: dict[str, Any] = {k: v.model_dump() for k, v in body.overrides.items()}
    try:  # the same check the alert service makes of its configured overrides
        RuleBook(
            state.profiles,
            [
                Override(site=site, device=device, profile=body.profile, rule=rule, **o)
                for rule, o in overrides.items()
            ],
            {},
            8.0,
        )
    except (ConfigError, ValidationError) as exc:
        raise BadRequest(f"invalid rule override: {exc}") from None
    try:
        row, created = Registry(session).put_device(
            DeviceRow(
                site=site,
                id=device,
                gateway=body.gateway,
                profile=body.profile,
                name=body.name,
                overrides=overrides,
                created_at=int(time.time() * 1000),
            )
        )
    except RegistryError as exc:
        raise _registry_error(exc) from None
    session.commit()
    if created:
        response.status_code = 201
    return _device(row)

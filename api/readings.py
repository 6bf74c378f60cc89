"""Readings: the latest of each device, and a device's history (InfluxQL, bounded)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import DeviceId, IsoDatetime, SessionDep, StateDep, influx_rows
from api.errors import BadRequest, NotFound, Unavailable, responses
from api.siteaccess import ReadSite
from sitewatch.core.influx import InfluxError
from sitewatch.domains.registry import Registry

router = APIRouter(tags=["readings"])

TAGS = ("site", "gateway", "device")
#: the latest time InfluxDB can store (int64 nanoseconds), in ms
MAX_TIME_MS = 9_223_372_036_854
Aggregate = Literal["mean", "max", "min", "last", "first", "count", "sum"]


class Reading(BaseModel):
    site: str
    gateway: str | None
    device: str
    profile: str
    ts: int
    seq: int | None
    values: dict[str, float | int | bool | str | None]


class Point(BaseModel):
    ts: int
    values: dict[str, float | int | bool | str | None]


class History(BaseModel):
    site: str
    device: str
    profile: str
    start: int
    end: int
    every_s: int | None
    aggregate: Aggregate | None
    fields: list[str]
    points: list[Point]
    #: raw history only: more points exist in the range than were returned
    truncated: bool


def _row_to_reading(row: dict[str, Any]) -> Reading:
    values = {
        k: v
        for k, v in row.items()
        if k not in TAGS and k not in ("time", "seq", "_measurement") and v is not None
    }
    return Reading(
        site=row["site"],
        gateway=row.get("gateway"),
        device=row["device"],
        profile=row["_measurement"],
        ts=int(row["time"]),
        seq=row.get("seq"),
        values=values,
    )


async def latest_readings(state: StateDep, site: str, device: str | None) -> list[Reading]:
    """The latest reading of each device of ``site`` (or of ``device``) in the last 30
    days, one per device and profile, by device."""
    # site and device match [A-Za-z0-9_-]{1,64} (checked by the path): safe in a literal
    measurements = ",".join(f'"{name}"' for name in sorted(state.profiles))
    where = f"\"site\" = '{site}'" + (f" AND \"device\" = '{device}'" if device else "")
    q = (
        f"SELECT * FROM {measurements} WHERE {where} AND time > now() - 30d "
        f'GROUP BY "device" ORDER BY time DESC LIMIT 1'
    )
    try:
        rows = await state.influx.series(q)
    except InfluxError as exc:
        if "database not found" in str(exc):  # nothing was ever stored yet
            return []
        raise Unavailable("InfluxDB query failed", str(exc)) from None
    for row in rows:
        row["site"] = site
    return sorted((_row_to_reading(r) for r in rows), key=lambda r: r.device)


@router.get(
    "/sites/{site}/latest",
    response_model=list[Reading],
    responses=responses(401, 403, 404, 429, 503),
    summary="latest reading of every device of a site (last 30 days)",
)
async def site_latest(site: ReadSite, state: StateDep) -> list[Reading]:
    return await latest_readings(state, site.id, None)


@router.get(
    "/sites/{site}/devices/{device}/latest",
    response_model=Reading,
    responses=responses(401, 403, 404, 429, 503),
)
async def device_latest(site: ReadSite, device: DeviceId, state: StateDep) -> Reading:
    found = await latest_readings(state, site.id, device)
    if not found:
        raise NotFound(f"no reading from device {device} of site {site.id} in the last 30 days")
    return found[0]


@router.get(
    "/sites/{site}/devices/{device}/history",
    response_model=History,
    responses=responses(400, 401, 403, 404, 422, 429, 503),
    summary="a device's readings over a time range, raw or aggregated per interval",
)
async def device_history(
    access: ReadSite,
    device: DeviceId,
    state: StateDep,
    session: SessionDep,
    start: Annotated[IsoDatetime, Query(description="ISO 8601, inclusive")],
    end: Annotated[
        IsoDatetime | None, Query(description="ISO 8601, exclusive; default now")
    ] = None,
    fields: Annotated[
        str | None, Query(max_length=2000, description="comma-separated; default all")
    ] = None,
    every_s: Annotated[
        int | None, Query(ge=1, le=31 * 86400, description="aggregate per interval")
    ] = None,
    aggregate: Aggregate | None = None,
    profile: Annotated[
        str | None,
        Query(
            max_length=64,
            description=("the device's profile; needed only for a device not in the registry"),
        ),
    ] = None,
) -> History:
    site = access.id
    registered = Registry(session).device(site, device)
    name = registered.profile if registered is not None else profile
    if name is None:
        raise NotFound(f"device {device} of site {site} is not registered; give its profile")
    prof = state.profiles.get(name)
    if prof is None:
        raise BadRequest(f"unknown profile {name!r}")
    known = prof.fields
    chosen = [f.strip() for f in fields.split(",") if f.strip()] if fields else list(known)
    bad = [f for f in chosen if f not in known]
    if bad or not chosen:
        raise BadRequest(
            f"profile {name} has no field {', '.join(bad) or '(none given)'}",
            {"fields": sorted(known)},
        )
    start_ms = int(start.timestamp() * 1000)
    end_ms = int(end.timestamp() * 1000) if end is not None else int(time.time() * 1000)
    if end_ms <= start_ms:
        raise BadRequest("end must be after start")
    if start_ms < 0 or end_ms > MAX_TIME_MS:  # InfluxDB's range: int64 ns from 1970 on
        raise BadRequest("start and end must lie between 1970-01-01 and 2262-04-11")
    if (every_s is None) != (aggregate is None):
        raise BadRequest("every_s and aggregate go together: both or neither")
    limit = state.settings.max_points
    where = (
        f"\"site\" = '{site}' AND \"device\" = '{device}' "
        f"AND time >= {start_ms}ms AND time < {end_ms}ms"
    )
    if every_s is not None and aggregate is not None:
        buckets = -(-(end_ms - start_ms) // (every_s * 1000))
        if buckets > limit:
            raise BadRequest(
                f"{buckets} intervals asked for; at most {limit}: use a longer "
                "every_s or a shorter range",
                {"max_points": limit, "min_every_s": -(-(end_ms - start_ms) // (limit * 1000))},
            )
        numeric = [
            f
            for f in chosen
            if known[f].type.value in ("float", "int") or aggregate in ("last", "first", "count")
        ]
        if not numeric:
            raise BadRequest(f"{aggregate} needs numeric fields")
        cols = ", ".join(f'{aggregate}("{f}") AS "{f}"' for f in numeric)
        q = f'SELECT {cols} FROM "{name}" WHERE {where} GROUP BY time({every_s}s) fill(none)'
        chosen = numeric
    else:
        cols = ", ".join(f'"{f}"' for f in chosen)
        q = f'SELECT {cols} FROM "{name}" WHERE {where} ORDER BY time ASC LIMIT {limit + 1}'
    rows = await influx_rows(state, q)
    truncated = len(rows) > limit
    points = [Point(ts=int(r["time"]), values={f: r.get(f) for f in chosen}) for r in rows[:limit]]
    return History(
        site=site,
        device=device,
        profile=name,
        start=start_ms,
        end=end_ms,
        every_s=every_s,
        aggregate=aggregate,
        fields=chosen,
        points=points,
        truncated=truncated,
    )

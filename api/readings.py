"""Latest readings per device (history and aggregation come with the API issue)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from sitewatch.api.deps import DeviceId, SiteId, StateDep
from sitewatch.api.errors import NotFound, Unavailable
from sitewatch.influx import InfluxError

router = APIRouter(tags=["readings"])

TAGS = ("site", "gateway", "device")


class Reading(BaseModel):
    site: str
    gateway: str | None
    device: str
    profile: str
    ts: int
    seq: int | None
    values: dict[str, float | int | bool | str | None]


def _row_to_reading(row: dict[str, Any]) -> Reading:
    values = {k: v for k, v in row.items()
              if k not in TAGS and k not in ("time", "seq", "_measurement") and v is not None}
    return Reading(site=row["site"], gateway=row.get("gateway"), device=row["device"],
                   profile=row["_measurement"], ts=int(row["time"]), seq=row.get("seq"),
                   values=values)


async def _latest(state: StateDep, site: str, device: str | None) -> list[Reading]:
    # site and device match [A-Za-z0-9_-]{1,64} (checked by the path): safe in a literal
    measurements = ",".join(f'"{name}"' for name in sorted(state.profiles))
    where = f"\"site\" = '{site}'" + (f" AND \"device\" = '{device}'" if device else "")
    q = (f"SELECT * FROM {measurements} WHERE {where} AND time > now() - 30d "
         f'GROUP BY "device" ORDER BY time DESC LIMIT 1')
    try:
        rows = await state.influx.series(q)
    except InfluxError as exc:
        raise Unavailable("InfluxDB query failed", str(exc)) from None
    for row in rows:
        row["site"] = site
    return sorted((_row_to_reading(r) for r in rows), key=lambda r: r.device)


@router.get("/sites/{site}/latest", response_model=list[Reading],
            summary="latest reading of every device of a site (last 30 days)")
async def site_latest(site: SiteId, state: StateDep) -> list[Reading]:
    return await _latest(state, site, None)


@router.get("/sites/{site}/devices/{device}/latest", response_model=Reading,
            responses={404: {"description": "no reading from this device in 30 days"}})
async def device_latest(site: SiteId, device: DeviceId, state: StateDep) -> Reading:
    found = await _latest(state, site, device)
    if not found:
        raise NotFound(f"no reading from device {device} of site {site} in the last 30 days")
    return found[0]

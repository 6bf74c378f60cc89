"""Camera events of a site (the edge analytics' intrusion, no hard hat, smoke, counts),
newest first, each with the address of its snapshot."""

from __future__ import annotations

import time
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query
from pydantic import BaseModel

from sitewatch.api.auth import Reader, require_site
from sitewatch.api.deps import DeviceId, IsoDatetime, SiteId, StateDep
from sitewatch.api.errors import BadRequest, Unavailable, responses
from sitewatch.contract import CameraEvent, DetectionMethod
from sitewatch.influx import InfluxError

router = APIRouter(tags=["camera"])


class CameraEventOut(BaseModel):
    device: str
    gateway: str | None
    ts: int
    seq: int | None
    event: CameraEvent
    zone: str | None
    #: people involved (1 for smoke); 0: the occurrence is over
    count: int | None
    confidence: float | None
    #: "model" or "classical" (a heuristic, no model configured)
    method: DetectionMethod | None
    snapshot: str | None
    #: where the API serves the snapshot
    snapshot_url: str | None


def _event(site: str, row: dict[str, Any]) -> CameraEventOut:
    snap = row.get("snapshot")
    return CameraEventOut(
        device=row["device"], gateway=row.get("gateway"), ts=int(row["time"]),
        seq=row.get("seq"), event=row["event"], zone=row.get("zone"), count=row.get("count"),
        confidence=row.get("confidence"), method=row.get("method"), snapshot=snap,
        snapshot_url=f"/sites/{site}/snapshots/{snap}" if snap else None)


@router.get("/sites/{site}/camera-events", response_model=list[CameraEventOut],
            responses=responses(400, 401, 403, 404, 422, 429, 503),
            summary="a site's camera events over a time range, newest first")
async def camera_events(
    site: SiteId, p: Reader, state: StateDep,
    start: Annotated[IsoDatetime | None, Query(description="ISO 8601; default 1 day ago")]
    = None,
    end: Annotated[IsoDatetime | None, Query(description="ISO 8601, exclusive; default now")]
    = None,
    device: DeviceId | None = None,
    event: CameraEvent | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CameraEventOut]:
    require_site(p, site)
    now = int(time.time() * 1000)
    end_ms = int(end.timestamp() * 1000) if end is not None else now + 1
    start_ms = int(start.timestamp() * 1000) if start is not None else end_ms - 86_400_000
    if end_ms <= start_ms:
        raise BadRequest("end must be after start")
    # site and device match [A-Za-z0-9_-]{1,64}, event is one of the contract's: safe
    where = [f"\"site\" = '{site}'", f"time >= {start_ms}ms", f"time < {end_ms}ms"]
    if device is not None:
        where.append(f"\"device\" = '{device}'")
    if event is not None:
        assert event in get_args(CameraEvent)
        where.append(f"\"event\" = '{event}'")
    q = f"SELECT * FROM \"camera\" WHERE {' AND '.join(where)} ORDER BY time DESC LIMIT {limit}"
    try:
        rows = await state.influx.series(q)
    except InfluxError as exc:
        raise Unavailable("InfluxDB query failed", str(exc)) from None
    return [_event(site, r) for r in rows]

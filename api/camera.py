"""Camera events of a site (the edge analytics' intrusion, no hard hat, smoke, counts),
newest first, each with the address of its snapshot; paginated like every list."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import DeviceId, IsoDatetime, PageDep, StateDep, influx_rows
from api.errors import BadRequest, responses
from api.pages import Page
from api.siteaccess import ReadSite
from sitewatch.core.contract import CameraEvent, DetectionMethod

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
        device=row["device"],
        gateway=row.get("gateway"),
        ts=int(row["time"]),
        seq=row.get("seq"),
        event=row["event"],
        zone=row.get("zone"),
        count=row.get("count"),
        confidence=row.get("confidence"),
        method=row.get("method"),
        snapshot=snap,
        snapshot_url=f"/sites/{site}/snapshots/{snap}" if snap else None,
    )


@router.get(
    "/sites/{site}/camera-events",
    response_model=Page[CameraEventOut],
    responses=responses(400, 401, 403, 404, 422, 429, 503),
    summary="a site's camera events over a time range, newest first (paginated)",
)
async def camera_events(
    site: ReadSite,
    state: StateDep,
    page: PageDep,
    start: Annotated[IsoDatetime | None, Query(description="ISO 8601; default 1 day ago")] = None,
    end: Annotated[
        IsoDatetime | None, Query(description="ISO 8601, exclusive; default now")
    ] = None,
    device: DeviceId | None = None,
    event: CameraEvent | None = None,
) -> Page[CameraEventOut]:
    now = int(time.time() * 1000)
    end_ms = int(end.timestamp() * 1000) if end is not None else now + 1
    start_ms = int(start.timestamp() * 1000) if start is not None else end_ms - 86_400_000
    if end_ms <= start_ms:
        raise BadRequest("end must be after start")
    # site and device match [A-Za-z0-9_-]{1,64}, event is one of the contract's: safe
    where = [f"\"site\" = '{site.id}'", f"time >= {start_ms}ms", f"time < {end_ms}ms"]
    if device is not None:
        where.append(f"\"device\" = '{device}'")
    if event is not None:
        assert event in get_args(CameraEvent)
        where.append(f"\"event\" = '{event}'")
    match = " AND ".join(where)
    # every camera item has a seq: counting it counts the events
    rows, counted = await asyncio.gather(
        influx_rows(
            state,
            f'SELECT * FROM "camera" WHERE {match} ORDER BY time DESC '
            f"LIMIT {page.limit} OFFSET {page.offset}",
        ),
        influx_rows(state, f'SELECT count("seq") FROM "camera" WHERE {match}'),
    )
    total = int(counted[0]["count"]) if counted else 0
    return Page(
        items=[_event(site.id, r) for r in rows], total=total, offset=page.offset, limit=page.limit
    )

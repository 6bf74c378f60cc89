"""Camera snapshots and photos: stored by SHA-256, served with their content type.

``POST /sites/{site}/snapshots`` takes a JPEG or PNG as the raw request body (a phone
photo of a problem, say) and answers with its SHA-256; ``GET
/sites/{site}/snapshots/{sha256}`` serves it. A snapshot belongs to a site: it is served
only to those who may see that site.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel

from api.deps import SessionDep, StateDep
from api.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    responses,
)
from api.siteaccess import ReadSite, SnapshotsSite
from sitewatch.domains.snapshots import Refusal, SnapshotError, SnapshotRow, store_snapshot

router = APIRouter(tags=["snapshots"])

Sha256 = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="lowercase hex SHA-256")]


class SnapshotInfo(BaseModel):
    site: str
    sha256: str
    media_type: str
    size: int
    source: str
    created_at: int
    created: bool


@router.post(
    "/sites/{site}/snapshots",
    response_model=SnapshotInfo,
    status_code=201,
    responses={
        **responses(400, 401, 403, 404, 413, 415, 429),
        200: {"model": SnapshotInfo, "description": "already stored"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
    summary="store a JPEG or PNG (the raw body) for a site",
)
async def upload(
    access: SnapshotsSite, request: Request, state: StateDep, response: Response
) -> SnapshotInfo:
    site, p = access.id, access.principal
    limit = state.settings.max_snapshot_bytes
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(f"larger than {limit} bytes")
    try:
        stored = await asyncio.to_thread(
            store_snapshot,
            state.snapshots,
            state.engine,
            site=site,
            source=p.name,
            data=bytes(data),
            max_bytes=limit,
        )
    except SnapshotError as exc:
        if exc.code is Refusal.EMPTY:
            raise BadRequest("empty body: send the image bytes") from None
        if exc.code is Refusal.TOO_LARGE:
            raise PayloadTooLarge(f"larger than {limit} bytes") from None
        raise UnsupportedMediaType(str(exc)) from None
    if not stored.created:
        response.status_code = 200
    response.headers["Location"] = f"/sites/{site}/snapshots/{stored.sha256}"
    return SnapshotInfo.model_validate(stored, from_attributes=True)


@router.get(
    "/sites/{site}/snapshots/{sha256}",
    response_class=FileResponse,
    responses={
        **responses(401, 403, 404, 422, 429),
        200: {"content": {"image/jpeg": {}, "image/png": {}}, "description": "the image"},
    },
)
def get_snapshot(
    site: ReadSite, sha256: Sha256, state: StateDep, session: SessionDep
) -> FileResponse:
    row = session.get(SnapshotRow, (site.id, sha256))
    snap = state.snapshots.get(sha256) if row is not None else None
    if snap is None:
        raise NotFound(f"no snapshot {sha256} at site {site.id}")
    return FileResponse(
        snap.path,
        media_type=snap.media_type,
        headers={"ETag": f'"{sha256}"', "Cache-Control": "private, max-age=31536000, immutable"},
    )

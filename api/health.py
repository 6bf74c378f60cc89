"""``/health`` (is the API process up) and ``/ready`` (can it serve: every dependency)."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import StateDep
from sitewatch import __version__

router = APIRouter(tags=["health"])


class Check(BaseModel):
    ok: bool
    latency_ms: float
    error: str | None = None


class Health(BaseModel):
    status: str
    version: str


class Readiness(BaseModel):
    status: str
    version: str
    checks: dict[str, Check]


@router.get("/health", response_model=Health, summary="liveness: the API process answers")
async def health() -> Health:
    return Health(status="ok", version=__version__)


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a dependency is down"}},
    summary="readiness: InfluxDB, the database and the snapshot folder, each checked",
)
async def ready(state: StateDep) -> JSONResponse:
    async def influx() -> Check:
        t = time.perf_counter()
        ok = await state.influx.ping()
        return Check(
            ok=ok,
            latency_ms=(time.perf_counter() - t) * 1000,
            error=None if ok else f"no answer from {state.settings.influx.url}",
        )

    def database() -> Check:
        t = time.perf_counter()
        try:
            with state.engine.connect() as c:
                c.execute(text("SELECT 1"))
            return Check(ok=True, latency_ms=(time.perf_counter() - t) * 1000)
        except Exception as exc:
            return Check(
                ok=False, latency_ms=(time.perf_counter() - t) * 1000, error=type(exc).__name__
            )

    def snapshots() -> Check:
        t = time.perf_counter()
        d = state.snapshots.dir
        try:
            d.mkdir(parents=True, exist_ok=True)
            probe = d / ".ready-probe"
            probe.write_bytes(b"")
            probe.unlink()
            return Check(ok=True, latency_ms=(time.perf_counter() - t) * 1000)
        except OSError as exc:
            return Check(
                ok=False, latency_ms=(time.perf_counter() - t) * 1000, error=f"{d}: {exc.strerror}"
            )

    db, snaps = await asyncio.gather(asyncio.to_thread(database), asyncio.to_thread(snapshots))
    checks = {"influxdb": await influx(), "database": db, "snapshots": snaps}
    ok = all(c.ok for c in checks.values())
    body = Readiness(status="ok" if ok else "degraded", version=__version__, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

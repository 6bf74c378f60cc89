"""``/health``: the API and every dependency it needs, each with its own state."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from sitewatch import __version__
from sitewatch.api.deps import StateDep

router = APIRouter(tags=["health"])


class Check(BaseModel):
    ok: bool
    latency_ms: float
    error: str | None = None


class Health(BaseModel):
    status: str
    version: str
    checks: dict[str, Check]


@router.get("/health", response_model=Health,
            responses={503: {"model": Health, "description": "a dependency is down"}})
async def health(state: StateDep) -> JSONResponse:
    async def influx() -> Check:
        t = time.perf_counter()
        ok = await state.influx.ping()
        return Check(ok=ok, latency_ms=(time.perf_counter() - t) * 1000,
                     error=None if ok else f"no answer from {state.settings.influx.url}")

    def database() -> Check:
        t = time.perf_counter()
        try:
            with state.engine.connect() as c:
                c.execute(text("SELECT 1"))
            return Check(ok=True, latency_ms=(time.perf_counter() - t) * 1000)
        except Exception as exc:
            return Check(ok=False, latency_ms=(time.perf_counter() - t) * 1000,
                         error=type(exc).__name__)

    checks = {"influxdb": await influx(), "database": await asyncio.to_thread(database)}
    ok = all(c.ok for c in checks.values())
    body = Health(status="ok" if ok else "degraded", version=__version__, checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

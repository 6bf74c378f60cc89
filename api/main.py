"""The FastAPI application: slices mounted in one place, state built in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from sitewatch import __version__
from sitewatch.api import errors, health, readings
from sitewatch.api.config import ApiSettings
from sitewatch.api.deps import AppState
from sitewatch.db import make_engine
from sitewatch.influx import InfluxClient
from sitewatch.profiles import load_profiles


def create_app(settings: ApiSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        influx = InfluxClient(settings.influx)
        engine = make_engine(settings.database_url)
        app.state.sitewatch = AppState(settings, influx, engine,
                                       load_profiles(settings.profiles_dir))
        try:
            yield
        finally:
            await influx.aclose()
            engine.dispose()

    app = FastAPI(title="SiteWatch API", version=__version__, lifespan=lifespan,
                  description="Sites, devices and readings of the SiteWatch platform.")
    errors.install(app)
    app.include_router(health.router)
    app.include_router(readings.router)
    return app


def serve(settings: ApiSettings) -> None:
    load_profiles(settings.profiles_dir)  # fail at start-up, not on the first request
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level.lower())

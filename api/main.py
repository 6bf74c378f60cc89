"""The FastAPI application: slices mounted in one place, state built in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI
from sqlalchemy.orm import sessionmaker

from api import (
    alerts,
    attendance,
    auth,
    broker,
    controlchars,
    deadletters,
    docs,
    errors,
    health,
    metrics,
    readings,
    sites,
)
from api import camera as camera_routes
from api import snapshots as snapshot_routes
from api.config import ApiSettings
from api.deps import AppState
from api.ratelimit import RateLimiter
from sitewatch import __version__
from sitewatch.core.db import make_engine
from sitewatch.core.influx import InfluxClient
from sitewatch.core.profiles import load_profiles
from sitewatch.domains import snapshots
from sitewatch.domains.alertrecords.model import AlertEvent
from sitewatch.domains.alertrecords.store import AlertStore, Router
from sitewatch.domains.deadletters import DeadLetterStore
from sitewatch.domains.schema import create_tables

#: every slice, in the order the OpenAPI page shows them
ROUTERS = (
    health.router,
    auth.router,
    sites.router,
    broker.router,
    readings.router,
    alerts.router,
    camera_routes.router,
    snapshot_routes.router,
    deadletters.router,
    attendance.router,
)

DESCRIPTION = """Sites, gateways, devices, readings, alerts, camera events and snapshots, dead
letters and the real-name attendance (workers, gate events, hours, day-labour sheets) of
the SiteWatch platform. Log in at `/auth/token` (OAuth2 password flow) for a bearer token,
or send an API key as `X-API-Key`. Errors always have the shape
`{"error": {"code", "message", "detail"}}`."""


def alert_router(settings: ApiSettings) -> Router:
    """Acknowledgements made here go to the outputs the alert service delivers to."""
    if settings.alerts_config is None:

        def fixed(event: AlertEvent) -> list[str]:
            return ["mqtt", "influx"]

        return fixed
    from sitewatch.core.settings import load_settings
    from sitewatch.domains.alertrecords.routing import router_for
    from sitewatch.domains.alertrecords.settings import AlertSettings

    return router_for(load_settings(AlertSettings, settings.alerts_config))


def create_app(settings: ApiSettings) -> FastAPI:
    profiles = load_profiles(settings.profiles_dir)
    route = alert_router(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        influx = InfluxClient(settings.influx)
        engine = make_engine(settings.database_url)
        alert_store = AlertStore(settings.database_url, route)
        dead_letters = DeadLetterStore(settings.database_url)
        # every table (the API may be the first to start), the alert chain's head row too
        create_tables(engine)
        alert_store.create_schema()
        rl = settings.rate_limit
        app.state.sitewatch = AppState(
            settings,
            influx,
            engine,
            sessionmaker(engine, expire_on_commit=False),
            profiles,
            alert_store,
            dead_letters,
            snapshots.SnapshotStore(settings.snapshots_dir),
            RateLimiter(rl.per_s, rl.burst),
            RateLimiter(rl.login_per_min / 60, rl.login_per_min),
        )
        try:
            yield
        finally:
            await influx.aclose()
            alert_store.dispose()
            dead_letters.dispose()
            engine.dispose()

    # the control-character check runs first on every route, /metrics included
    app = FastAPI(
        title="SiteWatch API",
        version=__version__,
        lifespan=lifespan,
        description=DESCRIPTION,
        dependencies=[Depends(controlchars.refuse_control_characters)],
        docs_url=None,  # served with the platform's own copies of their scripts (docs.py)
        redoc_url=None,
    )
    docs.install(app, title=app.title)
    errors.install(app)
    registry = metrics.install(app)  # GET /metrics, request counts and latency by route
    controlchars.count_refusals(app, registry)
    for router in ROUTERS:
        app.include_router(router)
    _document_profiles(app, sorted(profiles))
    return app


def _document_profiles(app: FastAPI, names: list[str]) -> None:
    """The profiles are data loaded at start: list them in the schema where a profile
    name is asked for, so clients (and schema-driven tests) know the valid values."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            device_in = schema["components"]["schemas"].get("DeviceIn", {})
            if "profile" in device_in.get("properties", {}):
                device_in["properties"]["profile"]["enum"] = names
            for item in schema["paths"].values():
                for op in item.values():
                    for param in op.get("parameters", []):
                        if param["name"] == "profile" and param["in"] == "query":
                            param["schema"] = {
                                "anyOf": [{"type": "string", "enum": names}, {"type": "null"}]
                            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def serve(settings: ApiSettings) -> None:
    app = create_app(settings)  # profiles and the alert config fail here, at start-up
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower())

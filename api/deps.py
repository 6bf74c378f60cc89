"""Dependencies shared by the slices, as ``Annotated`` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy import Engine

from sitewatch.api.config import ApiSettings
from sitewatch.ids import IDENT_PATTERN
from sitewatch.influx import InfluxClient
from sitewatch.profiles import ProfileSet


@dataclass
class AppState:
    settings: ApiSettings
    influx: InfluxClient
    engine: Engine
    profiles: ProfileSet


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.sitewatch
    return state


StateDep = Annotated[AppState, Depends(get_state)]
SiteId = Annotated[str, Path(pattern=IDENT_PATTERN, description="site identifier")]
DeviceId = Annotated[str, Path(pattern=IDENT_PATTERN, description="device identifier")]

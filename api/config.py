"""API configuration (``SITEWATCH_API_*`` or ``sitewatch api --config api.yaml``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sitewatch.influx import InfluxSettings
from sitewatch.settings import ServiceSettings


class ApiSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="SITEWATCH_API_", extra="forbid", env_nested_delimiter="__"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    influx: InfluxSettings = InfluxSettings()
    #: the same relational store ingest writes (dead letters; alerts and more later)
    database_url: str = "sqlite:///sitewatch.db"
    profiles_dir: Path | None = None
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

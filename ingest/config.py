"""Ingest configuration (``SITEWATCH_INGEST_*`` or a YAML file; see docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from sitewatch.core.subscriber import SubscriberSettings


class IngestSettings(SubscriberSettings):
    model_config = SettingsConfigDict(
        env_prefix="SITEWATCH_INGEST_", extra="forbid", env_nested_delimiter="__"
    )

    client_id: str = Field(default="sitewatch-ingest", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    #: points per InfluxDB write (a batch is never split across writes)
    write_batch_points: int = Field(default=5000, ge=1, le=100_000)
    #: a partial write goes out after this long
    flush_interval_s: float = Field(default=0.2, gt=0, le=60)
    #: writes in flight at once; when all are busy ingest stops taking messages
    max_concurrent_writes: int = Field(default=2, ge=1, le=16)
    #: readings older than this go to the dead-letter store, not to InfluxDB
    retention_days: float = Field(default=730, gt=0)
    #: readings further ahead of ingest's clock than this are dead-lettered
    max_future_s: float = Field(default=300, ge=0)
    #: camera snapshots, stored by their SHA-256: the API's ``snapshots_dir`` (it serves them)
    snapshots_dir: Path = Path("snapshots")
    #: larger snapshot messages are dead-lettered (``too_large``); the API's limit too
    max_snapshot_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

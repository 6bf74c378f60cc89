"""Edge agent configuration (``sitewatch edge --config gateway.yaml``, ``SITEWATCH_EDGE_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import SettingsConfigDict

from edge.clock import ClockPolicy
from sitewatch.core.ids import IDENT_PATTERN
from sitewatch.core.metrics import MetricsSettings
from sitewatch.core.mqtt import MqttSettings
from sitewatch.core.settings import ServiceSettings


class DeviceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=IDENT_PATTERN)
    driver: str
    profile: str = Field(pattern=IDENT_PATTERN)
    #: seconds between samples of a polled device; default: the profile's interval
    interval_s: float | None = Field(default=None, gt=0, le=86400)
    #: the driver's own settings, validated by the driver at start-up
    options: dict[str, Any] = Field(default_factory=dict)


class PublishSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: items per batch (the contract allows up to 5000)
    max_batch_items: int = Field(default=50, ge=1, le=5000)
    #: a partial batch is sent after this long
    max_batch_delay_s: float = Field(default=1.0, gt=0, le=3600)
    #: a batch not acknowledged by ingest within this time is sent again; the wait
    #: doubles with each attempt, up to 16 times this
    ack_timeout_s: float = Field(default=30.0, gt=0)
    #: resent (backlog) batches per second at most, so live data keeps flowing
    backlog_batches_per_s: float = Field(default=20.0, gt=0)
    status_interval_s: float = Field(default=30.0, gt=0)
    #: how often the agent reports its own health as a ``gateway`` reading
    health_interval_s: float = Field(default=30.0, gt=0)
    #: on a clean stop, wait this long for ingest to acknowledge what is spooled
    drain_timeout_s: float = Field(default=5.0, ge=0)


class SpoolSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: bytes of readings and batches the spool may hold
    max_bytes: int = Field(default=512 * 1024 * 1024, ge=64 * 1024)
    #: data older than this is dropped (counted): it would be refused by ingest anyway
    max_age_s: float = Field(default=30 * 86400, gt=0)
    #: when full: drop the oldest data to make room, or refuse the newest readings
    policy: Literal["drop_oldest", "refuse_newest"] = "drop_oldest"
    #: readings arriving within this time share one commit (one fsync)
    commit_interval_s: float = Field(default=0.02, ge=0, le=1)


class ClockSettings(BaseModel):
    """How the agent's timeline absorbs wall-clock steps (edge/clock.py,
    docs/wire-contract.md#time)."""

    model_config = ConfigDict(extra="forbid")

    #: a wall clock this far off the monotonic clock's advance is counted as a step
    step_s: float = Field(default=1.0, gt=0, le=3600)
    #: a wall clock within this of ingest's clock is right; readings stamped further
    #: from the wall clock are counted as corrected
    agree_s: float = Field(default=2.0, gt=0, le=3600)
    #: a step forward that ingest's clock cannot confirm is followed after this long
    confirm_s: float = Field(default=10.0, ge=0, le=86400)
    #: after a step back the timeline runs this much slower than real time (0.5: half
    #: speed) until the wall clock meets it
    slew: float = Field(default=0.5, gt=0, lt=1)

    def policy(self) -> ClockPolicy:
        return ClockPolicy(
            step_s=self.step_s, agree_s=self.agree_s, confirm_s=self.confirm_s, slew=self.slew
        )


class EdgeSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="SITEWATCH_EDGE_", extra="forbid", env_nested_delimiter="__"
    )

    site: str = Field(pattern=IDENT_PATTERN)
    gateway: str = Field(pattern=IDENT_PATTERN)
    #: spool and counters live here; must survive reboots
    state_dir: Path
    mqtt: MqttSettings = MqttSettings()
    publish: PublishSettings = PublishSettings()
    spool: SpoolSettings = SpoolSettings()
    clock: ClockSettings = ClockSettings()
    devices: list[DeviceConfig] = Field(min_length=1)
    profiles_dir: Path | None = None
    #: Prometheus ``/metrics`` (docs/metrics.md)
    metrics: MetricsSettings = MetricsSettings()
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @model_validator(mode="after")
    def _unique_devices(self) -> EdgeSettings:
        ids = [d.id for d in self.devices]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"device ids must be unique; repeated: {', '.join(dup)}")
        if self.gateway in ids:
            raise ValueError(
                f"device id {self.gateway!r} is the gateway's own id "
                "(the agent reports its health under it)"
            )
        return self

"""Alert service configuration (``SITEWATCH_ALERTS_*`` or a YAML file; docs/alerts.md)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from sitewatch.core.ids import Ident
from sitewatch.core.subscriber import SubscriberSettings
from sitewatch.domains.notifications import NotifierConfig
from sitewatch.domains.rulebook import Override, SiteRules

#: outputs every alert change goes to; notifier names must differ from these
BUILTIN_OUTPUTS = ("mqtt", "influx")


class EscalateAfter(BaseModel):
    """Seconds an alert may stay unacknowledged at site level before it goes to the
    county bureau, per severity; null: never."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warning: float | None = Field(default=4 * 3600, gt=0)
    alarm: float | None = Field(default=15 * 60, gt=0)


class CameraSettings(BaseModel):
    """Camera alerts (docs/alerts.md, "Camera alerts")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: zones whose name matches one of these glob patterns (case-insensitive) are crane
    #: swing areas: an intrusion there while a crane of the site slews is an alarm
    crane_swing_zones: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = (
        "crane-swing*",
        "crane_swing*",
    )
    #: a crane slews at a reading whose slew_deg differs from its previous one by this much
    slew_min_deg: float = Field(default=1.0, gt=0, le=180)
    #: a crane counts as slewing for this long after the last reading that showed it
    slew_window_s: float = Field(default=60, gt=0, le=3600)


class AlertSettings(SubscriberSettings):
    model_config = SettingsConfigDict(
        env_prefix="SITEWATCH_ALERTS_", extra="forbid", env_nested_delimiter="__"
    )

    client_id: str = Field(default="sitewatch-alerts", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    #: an alert whose condition stayed clear this long is resolved
    hold_s: float = Field(default=300, ge=0, le=86400)
    escalate_after_s: EscalateAfter = EscalateAfter()
    #: how often time-driven rules run (silence, gateway offline, hold time, escalation)
    tick_s: float = Field(default=1.0, gt=0, le=60)
    #: the site clock for day/night limits and per-day periods where ``sites`` says nothing
    default_utc_offset_h: float = Field(default=8.0, ge=-12, le=14)
    sites: dict[Ident, SiteRules] = Field(default_factory=dict)
    #: per-site / per-device rule changes (docs/alerts.md)
    overrides: list[Override] = Field(default_factory=list)
    notifiers: list[NotifierConfig] = Field(default_factory=list)
    #: write alert changes to InfluxDB's ``alerts`` measurement (for Grafana)
    influx_enabled: bool = True
    #: longest wait between delivery attempts of one output
    max_retry_delay_s: float = Field(default=300, gt=0)
    #: how often the worker registry, attendance policies and planned headcounts are
    #: re-read for the attendance alerts (docs/attendance.md)
    attendance_refresh_s: float = Field(default=60, ge=1, le=3600)
    #: how often the dashboard feed (limits, site summaries, team hours) is written to
    #: InfluxDB (docs/alerts.md, "Dashboard feed"); 0: not at all
    board_interval_s: float = Field(default=60, ge=0, le=3600)
    #: attendance days before today whose team hours are written again at start
    board_days: int = Field(default=7, ge=0, le=62)
    camera: CameraSettings = CameraSettings()

    @field_validator("board_interval_s")
    @classmethod
    def _board_interval(cls, v: float) -> float:
        if 0 < v < 1:
            raise ValueError("must be 0 (no dashboard feed) or from 1 to 3600")
        return v

    @model_validator(mode="after")
    def _notifier_names(self) -> Self:
        seen = set(BUILTIN_OUTPUTS)
        for i, n in enumerate(self.notifiers):
            if n.name in seen:
                raise ValueError(
                    f"notifiers.{i}.name: {n.name!r} is taken (names must be "
                    f"unique and not {' or '.join(BUILTIN_OUTPUTS)})"
                )
            seen.add(n.name)
        return self

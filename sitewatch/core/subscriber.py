"""The settings every service that consumes the gateways' stream shares (ingest, alerts):
the broker, InfluxDB, the relational store, the device profiles, the MQTT session."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from sitewatch.core.influx import InfluxSettings
from sitewatch.core.metrics import MetricsSettings
from sitewatch.core.mqtt import MqttSettings
from sitewatch.core.settings import ServiceSettings


class SubscriberSettings(ServiceSettings):
    """What every service that consumes the gateways' stream has (ingest, alerts)."""

    mqtt: MqttSettings = MqttSettings()
    influx: InfluxSettings = InfluxSettings()
    #: SQLAlchemy URL of the relational store (dead letters, alerts, attendance ledger)
    database_url: str = "sqlite:///sitewatch.db"
    profiles_dir: Path | None = None
    #: how long the broker keeps our session (and queues for it) while we are down
    session_expiry_s: int = Field(default=7 * 86400, ge=60)
    #: MQTT 5 receive maximum: unacknowledged messages the broker may have in flight to us
    receive_maximum: int = Field(default=1000, ge=1, le=65535)
    stats_interval_s: float = Field(default=30, gt=0)
    #: Prometheus ``/metrics`` (docs/metrics.md)
    metrics: MetricsSettings = MetricsSettings()
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

"""API configuration (``SITEWATCH_API_*`` or ``sitewatch api --config api.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from sitewatch.core.influx import InfluxSettings
from sitewatch.core.settings import ServiceSettings
from sitewatch.domains.attendance.idcard import DEV_ID_KEY

#: the secret used in development when none is set; refused in production
DEV_SECRET = "sitewatch-development-secret-not-for-production"


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: signs the JWTs; at least 32 characters; required in production
    secret_key: SecretStr | None = None
    token_ttl_s: int = Field(default=3600, ge=60, le=7 * 86400)

    @field_validator("secret_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        return None if v == "" else v  # ``KEY=`` in an environment file: not set


class AttendanceSettings(BaseModel):
    """Real-name attendance: the worker registry keeps ID-card numbers only as an HMAC
    under this key (``sitewatch.domains.attendance.idcard``), so the key is kept out of the
    database."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the HMAC key of ID-card numbers; at least 32 characters; the same key for the API
    #: and ``sitewatch attendance import`` (``SITEWATCH_ATTENDANCE_ID_HASH_KEY``), or the
    #: hashes of one person differ. Changing it makes every stored hash useless.
    id_hash_key: SecretStr | None = None
    #: largest worker list (.csv, .xlsx) an import takes
    max_import_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)

    @field_validator("id_hash_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        return None if v == "" else v


class RateLimitSettings(BaseModel):
    """A token bucket per caller (user, API key, or client address before log-in)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    per_s: float = Field(default=20.0, gt=0)
    burst: int = Field(default=60, ge=1)
    #: log-in attempts per minute per client address and per username
    login_per_min: int = Field(default=10, ge=1)


class ServiceAccount(BaseModel):
    """A non-gateway broker account (ingest, alerts, a display...), written with the
    gateways' into the broker's files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str
    role: str
    #: Mosquitto ``$7$`` hash (``sitewatch broker hash``)
    password_hash: str
    site: str | None = None


class BrokerFilesSettings(BaseModel):
    """Where provisioning a gateway writes Mosquitto's password and ACL files
    (docs/broker.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: folder of the broker's ``passwd`` and ``acl``; unset: a new gateway's credentials
    #: are kept in the registry only (``sitewatch broker`` can write the files later)
    dir: Path | None = None
    topic_prefix: str = "sitewatch/v1"
    #: the accounts besides the gateways': they are in the files the API writes
    service_accounts: list[ServiceAccount] = Field(default_factory=list)
    #: the broker's pid file: after writing, the API sends it SIGHUP to re-read the files
    #: (only where the broker runs on the same host; otherwise reload it yourself)
    pid_file: Path | None = None

    @model_validator(mode="after")
    def _accounts(self) -> Self:
        from sitewatch.domains.brokeraccounts.brokerauth import (
            Account,
            BrokerAuthError,
            check_acl_prefix,
        )

        try:
            check_acl_prefix(self.topic_prefix)
            for a in self.service_accounts:
                Account(a.username, a.password_hash, a.role, a.site)  # type: ignore[arg-type]
        except BrokerAuthError as exc:
            raise ValueError(str(exc)) from None
        return self


class ApiSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="SITEWATCH_API_", extra="forbid", env_nested_delimiter="__"
    )

    #: ``production`` refuses to start without a real secret key
    environment: Literal["development", "production"] = "production"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    influx: InfluxSettings = InfluxSettings()
    #: the relational store ingest and the alert service write (dead letters, alerts),
    #: and the registry and accounts
    database_url: str = "sqlite:///sitewatch.db"
    profiles_dir: Path | None = None
    #: the alert service's config file: acknowledgements made through the API go to the
    #: same outputs (MQTT, InfluxDB, notifiers); unset: MQTT and InfluxDB only
    alerts_config: Path | None = None
    #: camera snapshots and uploaded photos, stored by their SHA-256
    snapshots_dir: Path = Path("snapshots")
    max_snapshot_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    #: most points a history query returns (ask for a coarser interval beyond that)
    max_points: int = Field(default=10_000, ge=10, le=1_000_000)
    auth: AuthSettings = AuthSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    broker: BrokerFilesSettings = BrokerFilesSettings()
    attendance: AttendanceSettings = AttendanceSettings()
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @model_validator(mode="after")
    def _secret(self) -> Self:
        key = self.auth.secret_key
        if self.environment == "production":
            if key is None or key.get_secret_value() == DEV_SECRET:
                raise ValueError(
                    "auth.secret_key must be set in production (at least 32 "
                    "random characters, e.g. `openssl rand -hex 32`); "
                    "set environment: development to run without one"
                )
        if key is not None and len(key.get_secret_value()) < 32:
            raise ValueError("auth.secret_key: at least 32 characters")
        return self

    @model_validator(mode="after")
    def _id_key(self) -> Self:
        key = self.attendance.id_hash_key
        if key is None:
            return self  # production: refused where a number is hashed (see id_hash_key)
        if len(key.get_secret_value()) < 32:
            raise ValueError("attendance.id_hash_key: at least 32 characters")
        if self.environment == "production" and key.get_secret_value() == DEV_ID_KEY:
            raise ValueError(
                "attendance.id_hash_key: the development key is public; set "
                "a random one in production (e.g. `openssl rand -hex 32`)"
            )
        return self

    @property
    def secret_key(self) -> str:
        key = self.auth.secret_key
        return key.get_secret_value() if key is not None else DEV_SECRET

    @property
    def id_hash_key(self) -> str | None:
        """The key ID-card numbers are hashed with. None in production without one: the
        routes that hash a number refuse (503) rather than hash it with the public
        development key; the rest of the API does not need it, so it still starts."""
        key = self.attendance.id_hash_key
        if key is not None:
            return key.get_secret_value()
        return DEV_ID_KEY if self.environment == "development" else None

"""The registry: sites, their gateways and devices (SQLAlchemy; SQLite or PostgreSQL).

What the county supervises (a site: where it is, which county and town, what kind of
project), which gateway boxes each site has (with the hash of the gateway's MQTT
password, in Mosquitto's format, so the broker's password file can be rebuilt from here
at any time) and which devices each gateway reads (with their profile and per-device rule
overrides). The API provisions it; ``sitewatch broker`` writes the broker's files from it
(gateways' credentials: :mod:`sitewatch.domains.brokeraccounts.brokercreds`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from sitewatch.core.db import Base, count_rows


class SiteRow(Base):
    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    county: Mapped[str] = mapped_column(String(128), index=True)
    town: Mapped[str] = mapped_column(String(128), default="")
    #: building, road, water, village infrastructure...
    project_type: Mapped[str] = mapped_column(String(32))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    #: planned headcount (attendance alerts compare against it)
    planned_headcount: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)


class GatewayRow(Base):
    __tablename__ = "gateways"

    site: Mapped[str] = mapped_column(String(64), ForeignKey("sites.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    mqtt_username: Mapped[str] = mapped_column(String(160), unique=True)
    #: Mosquitto ``$7$`` hash; the password itself is shown once, when it is made
    mqtt_password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)


class DeviceRow(Base):
    __tablename__ = "devices"

    site: Mapped[str] = mapped_column(String(64), ForeignKey("sites.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(64))
    profile: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Text, default="")
    #: rule id -> {"enabled": bool, "set": {...}} as the alert service's overrides take
    overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[int] = mapped_column(BigInteger)


TABLES = [SiteRow.__table__, GatewayRow.__table__, DeviceRow.__table__]


class RegistryError(ValueError):
    """A registry change that cannot be made; ``code`` says which kind."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int


class Registry:
    def __init__(self, session: Session) -> None:
        self.s = session

    # -- sites ------------------------------------------------------------------------
    def sites(
        self,
        *,
        allowed: Collection[str] | None,
        county: str | None = None,
        project_type: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[SiteRow]:
        q = select(SiteRow)
        if allowed is not None:
            q = q.where(SiteRow.id.in_(list(allowed)))
        if county:
            q = q.where(SiteRow.county == county)
        if project_type:
            q = q.where(SiteRow.project_type == project_type)
        total = count_rows(self.s, q)
        rows = self.s.scalars(q.order_by(SiteRow.id).offset(offset).limit(limit))
        return Page(list(rows), total)

    def site(self, site: str) -> SiteRow | None:
        return self.s.get(SiteRow, site)

    def add_site(self, row: SiteRow) -> SiteRow:
        if self.s.get(SiteRow, row.id) is not None:
            raise RegistryError("conflict", f"site {row.id} exists")
        self.s.add(row)
        self._flush(f"site {row.id}")
        return row

    # -- gateways ---------------------------------------------------------------------
    def gateways(self, site: str) -> list[GatewayRow]:
        return list(
            self.s.scalars(
                select(GatewayRow).where(GatewayRow.site == site).order_by(GatewayRow.id)
            )
        )

    def gateway_page(self, site: str, *, offset: int = 0, limit: int = 100) -> Page[GatewayRow]:
        q = select(GatewayRow).where(GatewayRow.site == site)
        total = count_rows(self.s, q)
        rows = self.s.scalars(q.order_by(GatewayRow.id).offset(offset).limit(limit))
        return Page(list(rows), total)

    def all_gateways(self) -> Sequence[GatewayRow]:
        return list(self.s.scalars(select(GatewayRow).order_by(GatewayRow.site, GatewayRow.id)))

    def gateway(self, site: str, gateway: str) -> GatewayRow | None:
        return self.s.get(GatewayRow, (site, gateway))

    def add_gateway(self, row: GatewayRow) -> GatewayRow:
        if self.s.get(SiteRow, row.site) is None:
            raise RegistryError("not_found", f"no site {row.site}")
        if self.s.get(GatewayRow, (row.site, row.id)) is not None:
            raise RegistryError("conflict", f"gateway {row.id} of site {row.site} exists")
        self.s.add(row)
        self._flush(f"gateway {row.site}/{row.id}")
        return row

    # -- devices ----------------------------------------------------------------------
    def devices(self, site: str, *, offset: int = 0, limit: int = 100) -> Page[DeviceRow]:
        q = select(DeviceRow).where(DeviceRow.site == site)
        total = count_rows(self.s, q)
        rows = self.s.scalars(q.order_by(DeviceRow.id).offset(offset).limit(limit))
        return Page(list(rows), total)

    def all_devices(self, site: str) -> list[DeviceRow]:
        return list(
            self.s.scalars(select(DeviceRow).where(DeviceRow.site == site).order_by(DeviceRow.id))
        )

    def device(self, site: str, device: str) -> DeviceRow | None:
        return self.s.get(DeviceRow, (site, device))

    def put_device(self, row: DeviceRow) -> tuple[DeviceRow, bool]:
        """Create or replace a device; True if it was created."""
        if self.s.get(GatewayRow, (row.site, row.gateway)) is None:
            raise RegistryError("not_found", f"no gateway {row.gateway} at site {row.site}")
        old = self.s.get(DeviceRow, (row.site, row.id))
        if old is None:
            self.s.add(row)
            self._flush(f"device {row.site}/{row.id}")
            return row, True
        old.gateway, old.profile, old.name = row.gateway, row.profile, row.name
        old.overrides = row.overrides
        self._flush(f"device {row.site}/{row.id}")
        return old, False

    def device_overrides(self) -> list[tuple[DeviceRow, str, dict[str, Any]]]:
        """(device, rule id, {"enabled", "set"}) of every rule override set per device."""
        rows = self.s.scalars(select(DeviceRow).order_by(DeviceRow.site, DeviceRow.id))
        return [(d, rule, o) for d in rows for rule, o in sorted((d.overrides or {}).items())]

    def _flush(self, what: str) -> None:
        try:
            self.s.flush()
        except IntegrityError:
            self.s.rollback()
            raise RegistryError("conflict", f"{what} conflicts with an existing one") from None

"""Gateway MQTT credentials: the database is their one source of truth.

Every gateway's broker account is a registry gateway (``gateways.mqtt_password_hash``,
a Mosquitto ``$7$`` hash): the API provisions it there, and a gateway listed in an
operator's accounts file is *imported* there (:func:`import_gateways`) the first time the
files are written with the database; after that the database's credential is the one
that counts. The broker's files are always written from the database, so nothing that
writes them can forget a gateway another writer added.

A gateway's credential can be *rotated* (a new random password; the old one stops working
at the broker's next reload) and *revoked* (its account leaves the broker's files, so the
broker closes its connection on reload and refuses it from then on). Rotating a revoked
gateway admits it again with the new password. The last change, who made it and when are
kept in ``gateway_mqtt`` (:class:`GatewayMqttRow`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from sitewatch.core.db import Base
from sitewatch.domains.brokeraccounts.brokerauth import (
    Account,
    Role,
    gateway_username,
    hash_password,
    new_password,
)
from sitewatch.domains.registry import GatewayRow, Registry


class Change(StrEnum):
    IMPORTED = "imported"  # from an accounts file
    ROTATED = "rotated"
    REVOKED = "revoked"


class GatewayMqttRow(Base):
    """The last change of a gateway's MQTT credential (none: as provisioned)."""

    __tablename__ = "gateway_mqtt"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: no account in the broker's files while revoked
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    change: Mapped[str] = mapped_column(String(16))
    #: who: ``user:alice``, ``key:ab12cd34`` (API), ``cli:root`` (``sitewatch broker``)
    changed_by: Mapped[str] = mapped_column(String(160))
    changed_at: Mapped[int] = mapped_column(BigInteger)  # ms since the epoch


TABLES = [GatewayMqttRow.__table__]


class CredentialError(ValueError):
    """A gateway that is not there, or an import that cannot be made."""


def _gateway(session: Session, site: str, gateway: str) -> GatewayRow:
    row = Registry(session).gateway(site, gateway)
    if row is None:
        raise CredentialError(f"no gateway {gateway} at site {site}")
    return row


def _record(session: Session, site: str, gateway: str, change: Change, by: str) -> None:
    row = session.get(GatewayMqttRow, (site, gateway))
    if row is None:
        row = GatewayMqttRow(site=site, gateway=gateway)
        session.add(row)
    row.revoked = change is Change.REVOKED
    row.change, row.changed_by = change.value, by
    row.changed_at = int(time.time() * 1000)


def status(session: Session, site: str, gateway: str) -> GatewayMqttRow | None:
    """The gateway's last credential change; None if it has none (as provisioned)."""
    _gateway(session, site, gateway)
    return session.get(GatewayMqttRow, (site, gateway))


def rotate(session: Session, site: str, gateway: str, *, by: str) -> str:
    """A new password for the gateway (returned once, only its hash is kept); the old one
    stops working when the broker reloads. A revoked gateway is admitted again."""
    row = _gateway(session, site, gateway)
    password = new_password()
    row.mqtt_password_hash = hash_password(password)
    _record(session, site, gateway, Change.ROTATED, by)
    session.flush()
    return password


def revoke(session: Session, site: str, gateway: str, *, by: str) -> bool:
    """Take the gateway's account out of the broker's files; False if it already was."""
    _gateway(session, site, gateway)
    current = session.get(GatewayMqttRow, (site, gateway))
    if current is not None and current.revoked:
        return False
    _record(session, site, gateway, Change.REVOKED, by)
    session.flush()
    return True


def revoked(session: Session) -> set[tuple[str, str]]:
    return {
        (r.site, r.gateway)
        for r in session.scalars(select(GatewayMqttRow).where(GatewayMqttRow.revoked.is_(True)))
    }


def gateway_accounts(session: Session) -> list[Account]:
    """The broker account of every gateway that is not revoked."""
    out = revoked(session)
    return [
        Account(g.mqtt_username, g.mqtt_password_hash, Role.GATEWAY, g.site, g.id)
        for g in Registry(session).all_gateways()
        if (g.site, g.id) not in out
    ]


def gateway_usernames(session: Session) -> set[str]:
    """Every gateway's account name, revoked ones too."""
    return {g.mqtt_username for g in Registry(session).all_gateways()}


@dataclass
class Imported:
    #: gateways of the accounts file added to the database now
    added: list[str] = field(default_factory=list)
    #: gateways the database had already: its credential (and revocation) stands
    kept: list[str] = field(default_factory=list)


def import_gateways(session: Session, accounts: Iterable[Account], *, by: str) -> Imported:
    """Put the accounts file's gateways that the database does not have yet into it, with
    the file's password hash. The site must be registered. A gateway the database has
    keeps the database's credential, and stays revoked if it is."""
    result = Imported()
    reg = Registry(session)
    for a in accounts:
        if a.role is not Role.GATEWAY or a.site is None or a.gateway is None:
            continue
        if reg.gateway(a.site, a.gateway) is not None:
            result.kept.append(a.username)
            continue
        if reg.site(a.site) is None:
            raise CredentialError(
                f"gateway {a.username}: site {a.site} is not in the database, so the "
                f"gateway cannot be kept there; register the site first (POST /sites), or "
                f"write the files without --database-url"
            )
        reg.add_gateway(
            GatewayRow(
                site=a.site,
                id=a.gateway,
                description="imported from the accounts file",
                mqtt_username=gateway_username(a.site, a.gateway),
                mqtt_password_hash=a.password_hash,
                created_at=int(time.time() * 1000),
            )
        )
        _record(session, a.site, a.gateway, Change.IMPORTED, by)
        result.added.append(a.username)
    session.flush()
    return result

"""The broker's password and ACL files from the API, and a gateway's MQTT credential:
rotate it, revoke it, see its last change (docs/broker.md).

The files are written from the configured service accounts and the database's gateways
(:mod:`sitewatch.domains.brokeraccounts.brokercreds`), then Mosquitto is told to re-read
them. The API never drops an account it does not know: if the broker's current password
file holds one that is neither a service account of the configuration nor a gateway of the database
(an accounts-file gateway that was never imported), the change is refused with 409 and
nothing is written."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.orm import Session

from api.config import BrokerFilesSettings
from api.deps import GatewayId, SessionDep, StateDep
from api.errors import Conflict, NotFound, responses
from api.siteaccess import AdminSite
from sitewatch.domains.brokeraccounts import brokercreds
from sitewatch.domains.brokeraccounts.brokerauth import (
    Account,
    BrokerAuthError,
    gateway_username,
    password_file_users,
    reload_broker,
    write_broker_files,
)

log = logging.getLogger("sitewatch.api")
router = APIRouter(tags=["sites"])


class BrokerUpdate(StrEnum):
    #: ``broker.dir`` is unset: run ``sitewatch broker files --database-url …`` and reload
    NOT_CONFIGURED = "not_configured"
    #: the files were written; the broker was not signalled (no ``broker.pid_file``, or
    #: the signal failed): reload it yourself
    WRITTEN = "written"
    #: written and the broker told to re-read them (SIGHUP to ``broker.pid_file``)
    RELOADED = "reloaded"


def accounts(settings: BrokerFilesSettings, session: Session) -> list[Account]:
    """The service accounts of the configuration, then every gateway that is not
    revoked."""
    out = [
        Account(a.username, a.password_hash, a.role, a.site)  # type: ignore[arg-type]
        for a in settings.service_accounts
    ]
    return out + brokercreds.gateway_accounts(session)


def check(settings: BrokerFilesSettings, session: Session) -> None:
    """Refuse (409) a write that would cut off accounts the API does not know."""
    if settings.dir is None:
        return
    known = {a.username for a in settings.service_accounts}
    known |= brokercreds.gateway_usernames(session)
    unknown = sorted(password_file_users(settings.dir / "passwd") - known)
    if unknown:
        raise Conflict(
            f"the broker's password file has accounts the API does not know: "
            f"{', '.join(unknown)}; writing it would cut them off. Import the accounts file's "
            f"gateways into the database (sitewatch broker files --accounts … "
            f"--database-url …) and list the other accounts in broker.service_accounts; "
            f"nothing was changed",
            detail={"unknown_accounts": unknown},
        )


def sync(settings: BrokerFilesSettings, session: Session) -> BrokerUpdate:
    """Write the files if a folder is configured, then signal the broker if a pid file
    is. Call :func:`check` before committing the change."""
    if settings.dir is None:
        return BrokerUpdate.NOT_CONFIGURED
    files = write_broker_files(settings.dir, settings.topic_prefix, accounts(settings, session))
    log.info("broker files written: %s, %s", files.password_file, files.acl_file)
    if settings.pid_file is None:
        return BrokerUpdate.WRITTEN
    try:
        reload_broker(settings.pid_file)
    except (OSError, ValueError) as exc:
        log.warning("could not signal the broker to reload (%s): %s", settings.pid_file, exc)
        return BrokerUpdate.WRITTEN
    return BrokerUpdate.RELOADED


# -- a gateway's MQTT credential ----------------------------------------------------------


class MqttCredentialState(BaseModel):
    site: str
    gateway: str
    mqtt_username: str
    revoked: bool
    #: the last change (none: as provisioned), who made it and when (ms)
    change: Literal["imported", "rotated", "revoked"] | None
    changed_by: str | None
    changed_at: int | None


class MqttCredentialChange(MqttCredentialState):
    #: what became of the broker's files: ``reloaded`` means the change is in force
    broker: BrokerUpdate


class RotatedCredential(MqttCredentialChange):
    """Returned once: only the new password's hash is kept."""

    mqtt_password: str


def _state(session: Session, site: str, gateway: str) -> MqttCredentialState:
    try:
        row = brokercreds.status(session, site, gateway)
    except brokercreds.CredentialError as exc:
        raise NotFound(str(exc)) from None
    return MqttCredentialState(
        site=site,
        gateway=gateway,
        mqtt_username=gateway_username(site, gateway),
        revoked=bool(row and row.revoked),
        change=row.change if row else None,
        changed_by=row.changed_by if row else None,
        changed_at=row.changed_at if row else None,
    )


def _apply(state: StateDep, session: Session) -> BrokerUpdate:
    settings = state.settings.broker
    check(settings, session)
    session.commit()
    try:
        return sync(settings, session)
    except BrokerAuthError as exc:  # an account the files cannot hold: nothing written
        log.error("broker files not written: %s", exc)
        raise Conflict(f"the broker's files were not written: {exc}") from None


@router.get(
    "/sites/{site}/gateways/{gateway}/mqtt",
    response_model=MqttCredentialState,
    responses=responses(401, 403, 404, 429),
    summary="a gateway's MQTT account: revoked or not, its last change",
)
def get_mqtt(site: AdminSite, gateway: GatewayId, session: SessionDep) -> MqttCredentialState:
    return _state(session, site.id, gateway)


@router.post(
    "/sites/{site}/gateways/{gateway}/mqtt/rotate",
    response_model=RotatedCredential,
    responses=responses(401, 403, 404, 409, 429),
    summary="a new MQTT password for a gateway: the old one stops working",
)
def rotate_mqtt(
    access: AdminSite, gateway: GatewayId, session: SessionDep, state: StateDep
) -> RotatedCredential:
    site, p = access.id, access.principal
    try:
        password = brokercreds.rotate(session, site, gateway, by=p.name)
    except brokercreds.CredentialError as exc:
        raise NotFound(str(exc)) from None
    broker = _apply(state, session)
    log.warning(
        "gateway %s: MQTT password rotated by %s (broker: %s)",
        gateway_username(site, gateway),
        p.name,
        broker.value,
    )
    return RotatedCredential(
        **_state(session, site, gateway).model_dump(), broker=broker, mqtt_password=password
    )


@router.post(
    "/sites/{site}/gateways/{gateway}/mqtt/revoke",
    response_model=MqttCredentialChange,
    responses=responses(401, 403, 404, 409, 429),
    summary="revoke a gateway's MQTT account: disconnected and refused from now on",
)
def revoke_mqtt(
    access: AdminSite, gateway: GatewayId, session: SessionDep, state: StateDep
) -> MqttCredentialChange:
    site, p = access.id, access.principal
    try:
        changed = brokercreds.revoke(session, site, gateway, by=p.name)
    except brokercreds.CredentialError as exc:
        raise NotFound(str(exc)) from None
    broker = _apply(state, session)
    log.warning(
        "gateway %s: MQTT account revoked by %s%s (broker: %s)",
        gateway_username(site, gateway),
        p.name,
        "" if changed else " (already was)",
        broker.value,
    )
    return MqttCredentialChange(**_state(session, site, gateway).model_dump(), broker=broker)

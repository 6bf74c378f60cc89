"""People and machine clients of the API: users with a role, API keys, and their scopes.

Roles (what the county's rules call graded handling):

- ``county_supervisor``: reads every site; acknowledges alerts escalated to the county;
- ``site_officer``: reads and acts on (acknowledges, resolves, uploads photos for,
  registers the workers of) the sites listed for them, and nothing else;
- ``admin``: provisioning (sites, gateways, devices, users) and everything else;
- ``viewer``: reads the sites listed for them (or every site when none is listed);
- ``vendor``: an API key bound to one gateway (site and gateway) of a device vendor: reads
  that gateway's dead letters (why its items were refused), and nothing else.

A role grants scopes; a token asks for some of them (OAuth2 ``scope``) and gets only those
its role grants. Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106).
API keys are 256-bit random secrets; only their SHA-256 is stored (a fast hash is right
for a random secret: there is nothing to guess).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from sitewatch.core.db import Base


class Role(StrEnum):
    COUNTY_SUPERVISOR = "county_supervisor"
    SITE_OFFICER = "site_officer"
    ADMIN = "admin"
    VIEWER = "viewer"
    VENDOR = "vendor"


class Scope(StrEnum):
    READ = "read"  # sites, devices, readings, alerts, snapshots
    ALERTS_ACK = "alerts:ack"  # acknowledge alerts at site level
    ALERTS_ACK_COUNTY = "alerts:ack_county"  # acknowledge alerts escalated to the county
    ALERTS_RESOLVE = "alerts:resolve"
    SNAPSHOTS_WRITE = "snapshots:write"
    DEADLETTERS_READ = "deadletters:read"
    WORKERS_WRITE = "workers:write"  # the worker registry and the attendance policy
    ADMIN = "admin"  # provisioning: sites, gateways, devices, accounts


SCOPE_HELP: dict[str, str] = {
    Scope.READ: "read sites, devices, readings, alerts and snapshots",
    Scope.ALERTS_ACK: "acknowledge site-level alerts",
    Scope.ALERTS_ACK_COUNTY: "acknowledge alerts escalated to the county bureau",
    Scope.ALERTS_RESOLVE: "resolve alerts by hand",
    Scope.SNAPSHOTS_WRITE: "upload photos",
    Scope.DEADLETTERS_READ: "browse the dead-letter store",
    Scope.WORKERS_WRITE: "register workers (one or an import) and set a site's attendance policy",
    Scope.ADMIN: "provision sites, gateways, devices and accounts",
}

ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.VIEWER: frozenset({Scope.READ}),
    Role.SITE_OFFICER: frozenset(
        {
            Scope.READ,
            Scope.ALERTS_ACK,
            Scope.ALERTS_RESOLVE,
            Scope.SNAPSHOTS_WRITE,
            Scope.WORKERS_WRITE,
        }
    ),
    Role.COUNTY_SUPERVISOR: frozenset(
        {Scope.READ, Scope.ALERTS_ACK_COUNTY, Scope.DEADLETTERS_READ}
    ),
    Role.ADMIN: frozenset(Scope),
    #: what a gateway's vendor needs: its own dead letters (filtered to the gateway)
    Role.VENDOR: frozenset({Scope.DEADLETTERS_READ}),
}

#: roles that see every site whatever their site list says
ALL_SITES_ROLES = frozenset({Role.COUNTY_SUPERVISOR, Role.ADMIN})


class UserRow(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(32))
    sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)


class ApiKeyGatewayRow(Base):
    """The gateway a ``vendor`` key is bound to (a table of its own: the keys' table
    of an existing database stays as it is)."""

    __tablename__ = "api_key_gateways"

    key_id: Mapped[str] = mapped_column(String(16), ForeignKey("api_keys.id"), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(64))


TABLES = [UserRow.__table__, ApiKeyRow.__table__, ApiKeyGatewayRow.__table__]

API_KEY_PREFIX = "swk"
_hasher = PasswordHasher()
#: verified against when the user does not exist, so timing does not tell who exists
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user or an API key, with the scopes this request carries."""

    name: str  # "user:alice" or "key:ab12cd34"
    role: Role
    scopes: frozenset[Scope]
    sites: frozenset[str]
    #: a ``vendor`` key's gateway (of its one site); None for every other account
    gateway: str | None = None

    @property
    def all_sites(self) -> bool:
        return self.role in ALL_SITES_ROLES or (self.role is Role.VIEWER and not self.sites)

    def may_see(self, site: str) -> bool:
        return self.all_sites or site in self.sites

    def visible_sites(self) -> frozenset[str] | None:
        """None: every site."""
        return None if self.all_sites else self.sites


class AccountError(ValueError):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def _check_role(role: str, sites: Collection[str]) -> Role:
    try:
        r = Role(role)
    except ValueError:
        raise AccountError(f"unknown role {role!r}; one of {[x.value for x in Role]}") from None
    if r is Role.SITE_OFFICER and not sites:
        raise AccountError("a site officer needs at least one site")
    return r


def _check_vendor(s: Session, sites: Collection[str], gateway: str | None) -> None:
    if len(set(sites)) != 1 or not gateway:
        raise AccountError(
            "a vendor key is bound to one gateway: give one --site and its --gateway"
        )
    from sitewatch.domains.registry import GatewayRow

    site = next(iter(sites))
    if s.get(GatewayRow, (site, gateway)) is None:
        raise AccountError(f"no gateway {gateway} at site {site}; provision it first")


def add_user(
    s: Session, username: str, password: str, role: str, sites: Collection[str] = ()
) -> UserRow:
    if _check_role(role, sites) is Role.VENDOR:
        raise AccountError(
            "a vendor account is an API key bound to a gateway: "
            "add-key NAME --role vendor --site S --gateway G"
        )
    if len(password) < 12:
        raise AccountError("a password needs at least 12 characters")
    if s.get(UserRow, username) is not None:
        raise AccountError(f"user {username!r} exists")
    row = UserRow(
        username=username,
        password_hash=hash_password(password),
        role=role,
        sites=sorted(set(sites)),
        disabled=False,
        created_at=int(time.time()),
    )
    s.add(row)
    return row


def authenticate(s: Session, username: str, password: str) -> UserRow | None:
    row = s.get(UserRow, username)
    ok = check_password(row.password_hash if row else None, password)
    if not ok or row is None or row.disabled:
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        row.password_hash = hash_password(password)
    return row


def add_api_key(
    s: Session, name: str, role: str, sites: Collection[str] = (), gateway: str | None = None
) -> tuple[ApiKeyRow, str]:
    """A new key; the returned secret is shown once and never stored. A ``vendor`` key
    is bound to ``gateway`` of its one site, which must be provisioned."""
    r = _check_role(role, sites)
    if r is Role.VENDOR:
        _check_vendor(s, sites, gateway)
    elif gateway is not None:
        raise AccountError("only a vendor key is bound to a gateway")
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    row = ApiKeyRow(
        id=key_id,
        name=name,
        role=role,
        sites=sorted(set(sites)),
        secret_sha256=hashlib.sha256(secret.encode()).hexdigest(),
        revoked=False,
        created_at=int(time.time()),
    )
    s.add(row)
    if r is Role.VENDOR:
        assert gateway is not None
        s.flush()  # the key before its binding (the binding's foreign key)
        s.add(ApiKeyGatewayRow(key_id=key_id, site=row.sites[0], gateway=gateway))
    return row, f"{API_KEY_PREFIX}_{key_id}_{secret}"


def key_gateway(s: Session, key_id: str) -> str | None:
    """The gateway a vendor key is bound to (None: not bound)."""
    row = s.get(ApiKeyGatewayRow, key_id)
    return row.gateway if row is not None else None


def check_api_key(s: Session, presented: str) -> ApiKeyRow | None:
    prefix, _, rest = presented.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != API_KEY_PREFIX or not key_id or not secret:
        return None
    row = s.get(ApiKeyRow, key_id)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    if row is None or row.revoked or not hmac.compare_digest(row.secret_sha256, digest):
        return None
    return row


def list_users(s: Session) -> list[UserRow]:
    return list(s.scalars(select(UserRow).order_by(UserRow.username)))


def list_api_keys(s: Session) -> list[ApiKeyRow]:
    return list(s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)))


def principal_for(
    kind: str,
    name: str,
    role: str,
    sites: Collection[str],
    scopes: Collection[str] | None = None,
    gateway: str | None = None,
) -> Principal:
    """The principal for an account; ``scopes`` (asked for) narrowed to the role's. A
    vendor without its gateway binding gets no scope at all."""
    r = Role(role)
    granted = ROLE_SCOPES[r]
    if scopes is not None:
        granted = frozenset(sc for sc in granted if sc.value in set(scopes))
    if r is Role.VENDOR and gateway is None:
        granted = frozenset()
    return Principal(f"{kind}:{name}", r, granted, frozenset(sites), gateway)

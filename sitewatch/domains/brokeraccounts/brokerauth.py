"""Mosquitto accounts and topic rules: who may connect, and what each may publish and read.

Every client of the broker has an account of one :class:`Role`; the role decides its
topic rules. A gateway may publish only under its own ``{p}/{site}/{gateway}/…`` and read
only its own ``ack``, so a stolen or misconfigured gateway cannot speak for another one
or read anybody's data. Anonymous connections are refused.

The files are Mosquitto 2.0's own formats: a password file exactly as ``mosquitto_passwd``
writes it (``user:$7$iterations$salt$hash``, PBKDF2-HMAC-SHA512) and an ``acl_file``
with explicit ``user``/``topic`` rules per account. Both are rebuilt as a whole from the
list of accounts (never edited in place) and replaced atomically; Mosquitto re-reads
them on SIGHUP.

Account names: a service account is an identifier (``[A-Za-z0-9_-]{1,64}``); a gateway's
is ``{site}.{gateway}`` (:func:`gateway_username`). A dot is never part of an identifier,
so a gateway's name cannot be mistaken for another gateway's or for a service account.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from sitewatch.core.durable import replace_file
from sitewatch.core.ids import InvalidIdentifier, check_ident
from sitewatch.core.topics import DEFAULT_PREFIX, GatewayChannel

#: what ``mosquitto_passwd`` (2.0) uses: 12 random bytes of salt, 101 PBKDF2 iterations
SALT_BYTES = 12
DEFAULT_ITERATIONS = 101
GATEWAY_SEPARATOR = "."

PASSWORD_FILE_NAME = "passwd"
ACL_FILE_NAME = "acl"

_HASH_RE = re.compile(r"^\$7\$[1-9][0-9]{0,9}\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$")
# a prefix's levels: printable, no space, no wildcard, no ':' (kept out of every file)
_PREFIX_LEVEL_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


class BrokerAuthError(ValueError):
    """An account, identifier or prefix that cannot go into the broker's files."""


class Role(StrEnum):
    """What an account is for; each role has fixed topic rules (see :func:`render_acl`)."""

    #: one site gateway: publishes its own topics, reads its own ``ack``
    GATEWAY = "gateway"
    #: ``sitewatch ingest``: reads every gateway topic, publishes every ``ack``
    INGEST = "ingest"
    #: ``sitewatch alerts serve``: reads telemetry, attendance and status, publishes
    #: ``{p}/+/alerts``
    ALERTS = "alerts"
    #: a display, siren or county dashboard: reads alerts only (one site's if ``site`` is
    #: set, else every site's)
    MONITOR = "monitor"
    #: an operator's read-only view of everything under the prefix (``mosquitto_sub``)
    OBSERVER = "observer"
    #: ``sitewatch simulate``: publishes telemetry and status as *any* gateway. Demos and
    #: benchmarks only - never give it to a real site.
    FLEET = "fleet"
    #: a container health check: reads ``$SYS/broker/uptime`` only
    HEALTHCHECK = "healthcheck"


@dataclass(frozen=True)
class Account:
    """One broker account. Checked when made: an invalid one cannot exist."""

    username: str
    password_hash: str
    role: Role
    site: str | None = None
    gateway: str | None = None

    def __post_init__(self) -> None:
        try:
            role = Role(self.role)  # a plain string names a role too
        except ValueError:
            raise BrokerAuthError(
                f"account {self.username!r}: unknown role {self.role!r} "
                f"(one of {', '.join(r.value for r in Role)})"
            ) from None
        if role is not self.role:
            object.__setattr__(self, "role", role)
        if not _HASH_RE.fullmatch(self.password_hash):
            raise BrokerAuthError(
                f"account {self.username!r}: password_hash is not a Mosquitto $7$ hash "
                f"(make one with hash_password, `sitewatch broker hash` or mosquitto_passwd)"
            )
        if role is Role.GATEWAY:
            if self.site is None or self.gateway is None:
                raise BrokerAuthError(
                    f"account {self.username!r}: a gateway account needs site and gateway"
                )
            expected = gateway_username(self.site, self.gateway)
            if self.username != expected:
                raise BrokerAuthError(
                    f"account {self.username!r}: the account of gateway {self.gateway} of "
                    f"site {self.site} is named {expected!r}"
                )
            return
        _check_name("username", self.username)
        if self.gateway is not None:
            raise BrokerAuthError(
                f"account {self.username!r}: only a gateway account names a gateway"
            )
        if self.site is not None:
            if role is not Role.MONITOR:
                raise BrokerAuthError(
                    f"account {self.username!r}: only gateway and monitor accounts name a site"
                )
            _check_name("site", self.site)


def _check_name(kind: str, value: str) -> str:
    try:
        return check_ident(kind, value)
    except InvalidIdentifier as exc:
        raise BrokerAuthError(str(exc)) from None


def gateway_username(site: str, gateway: str) -> str:
    """The broker account of a gateway: ``{site}.{gateway}`` (``SITE01.GW01``)."""
    return f"{_check_name('site', site)}{GATEWAY_SEPARATOR}{_check_name('gateway', gateway)}"


def new_password(nbytes: int = 24) -> str:
    """A random password (URL-safe text, ``nbytes`` of entropy)."""
    return secrets.token_urlsafe(nbytes)


def hash_password(
    password: str, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
) -> str:
    """``$7$iterations$salt$hash``: PBKDF2-HMAC-SHA512 of the UTF-8 password, 64 bytes,
    salt and hash in padded base64 - the line ``mosquitto_passwd`` 2.0 writes after the
    ``user:``. Mosquitto 2.0 reads only 12-byte salts."""
    if not password:
        raise BrokerAuthError("empty password: Mosquitto would accept anybody who sends none")
    if salt is None:
        salt = os.urandom(SALT_BYTES)
    if len(salt) != SALT_BYTES:
        raise BrokerAuthError(f"salt must be {SALT_BYTES} bytes (Mosquitto 2.0 reads no other)")
    if not 1 <= iterations <= 9_999_999_999:
        raise BrokerAuthError(f"iterations must be at least 1, got {iterations}")
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, password_hash: str) -> bool:
    """True if ``password`` is the one hashed in a ``$7$`` hash."""
    if not password or _HASH_RE.fullmatch(password_hash) is None:
        return False
    _, _, iterations, salt, _ = password_hash.split("$")
    candidate = hash_password(password, salt=base64.b64decode(salt), iterations=int(iterations))
    return secrets.compare_digest(candidate, password_hash)


def check_acl_prefix(prefix: str) -> str:
    """The topic prefix, if it can go into ACL topic rules as it is."""
    levels = prefix.split("/")
    if (
        not prefix
        or prefix.startswith("$")
        or any(not _PREFIX_LEVEL_RE.fullmatch(level) for level in levels)
    ):
        raise BrokerAuthError(
            f"invalid topic prefix {prefix!r}: '/'-separated levels of A-Z a-z 0-9 _ - . "
            "(no empty level, no wildcard, no space, no leading '$')"
        )
    return prefix


_ROLE_ORDER = {role: i for i, role in enumerate(Role)}


def _checked(accounts: Iterable[Account]) -> list[Account]:
    """Accounts in a stable order (services first, then gateways by name); duplicates
    refused."""
    out: list[Account] = []
    seen: set[str] = set()
    for account in accounts:
        if not isinstance(account, Account):
            raise BrokerAuthError(f"not an Account: {account!r}")
        if account.username in seen:
            raise BrokerAuthError(f"duplicate account {account.username!r}")
        seen.add(account.username)
        out.append(account)
    return sorted(out, key=lambda a: (a.role is Role.GATEWAY, _ROLE_ORDER[a.role], a.username))


def render_password_file(accounts: Iterable[Account]) -> str:
    """Mosquitto's ``password_file``: ``username:$7$…`` lines, nothing else (no comments:
    ``mosquitto_passwd`` can still manage the file)."""
    return "".join(f"{a.username}:{a.password_hash}\n" for a in _checked(accounts))


def topic_rules(prefix: str, account: Account) -> list[tuple[str, str]]:
    """``(access, topic)`` pairs of an account, ``access`` being ``read`` or ``write``."""
    p = check_acl_prefix(prefix)
    every_gateway = f"{p}/+/+"
    role = account.role
    if role is Role.GATEWAY:
        own = f"{p}/{account.site}/{account.gateway}"
        return [
            ("write", f"{own}/{GatewayChannel.TELEMETRY}"),
            ("write", f"{own}/{GatewayChannel.STATUS}"),
            ("write", f"{own}/{GatewayChannel.ATTENDANCE}"),
            ("write", f"{own}/{GatewayChannel.CAMERA}"),
            ("write", f"{own}/{GatewayChannel.SNAPSHOT}/+"),
            ("read", f"{own}/{GatewayChannel.ACK}"),
        ]
    if role is Role.INGEST:
        return [
            ("read", f"{every_gateway}/{GatewayChannel.TELEMETRY}"),
            ("read", f"{every_gateway}/{GatewayChannel.STATUS}"),
            ("read", f"{every_gateway}/{GatewayChannel.ATTENDANCE}"),
            ("read", f"{every_gateway}/{GatewayChannel.CAMERA}"),
            ("read", f"{every_gateway}/{GatewayChannel.SNAPSHOT}/+"),
            ("write", f"{every_gateway}/{GatewayChannel.ACK}"),
        ]
    if role is Role.ALERTS:
        return [
            ("read", f"{every_gateway}/{GatewayChannel.TELEMETRY}"),
            ("read", f"{every_gateway}/{GatewayChannel.ATTENDANCE}"),
            ("read", f"{every_gateway}/{GatewayChannel.STATUS}"),
            ("read", f"{every_gateway}/{GatewayChannel.CAMERA}"),  # camera alerts
            ("write", f"{p}/+/alerts"),
        ]
    if role is Role.MONITOR:
        return [("read", f"{p}/{account.site or '+'}/alerts")]
    if role is Role.OBSERVER:
        return [("read", f"{p}/#")]
    if role is Role.FLEET:
        return [
            ("write", f"{every_gateway}/{GatewayChannel.TELEMETRY}"),
            ("write", f"{every_gateway}/{GatewayChannel.STATUS}"),
        ]
    if role is Role.HEALTHCHECK:
        return [("read", "$SYS/broker/uptime")]
    raise AssertionError(f"no topic rules for role {role}")  # pragma: no cover


def render_acl(prefix: str, accounts: Iterable[Account]) -> str:
    """Mosquitto's ``acl_file``: a ``user`` block of explicit ``topic`` rules per account.
    Anything not granted is refused (a publish is dropped, a subscription delivers
    nothing)."""
    check_acl_prefix(prefix)
    lines = [
        "# generated by sitewatch (sitewatch/domains/brokeraccounts/brokerauth.py): topic rules"
        " per account.",
        "# Rebuilt from the account list on every change; edits here are overwritten.",
        "# No rule applies to everybody, and anonymous clients are refused.",
    ]
    for account in _checked(accounts):
        where = ""
        if account.role is Role.GATEWAY:
            where = f" of site {account.site}, gateway {account.gateway}"
        elif account.site is not None:
            where = f" of site {account.site}"
        lines += ["", f"# {account.role.value}{where}", f"user {account.username}"]
        lines += [f"topic {access} {topic}" for access, topic in topic_rules(prefix, account)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BrokerFiles:
    password_file: Path
    acl_file: Path


def write_broker_files(
    directory: Path,
    prefix: str,
    accounts: Iterable[Account],
    *,
    owner: tuple[int, int] | None = None,
) -> BrokerFiles:
    """Write ``passwd`` and ``acl`` into ``directory``, each atomically (a temporary file
    in the same folder, fsynced, then renamed over the old one), both mode 0600.

    ``owner`` (uid, gid) gives both files to the broker's user - Mosquitto drops
    privileges before it reads them, and reads them again as that user on SIGHUP.
    Nothing is written if any account is invalid. Afterwards send the broker SIGHUP.
    """
    accounts = _checked(accounts)
    password_text = render_password_file(accounts)
    acl_text = render_acl(prefix, accounts)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = BrokerFiles(directory / PASSWORD_FILE_NAME, directory / ACL_FILE_NAME)
    replace_file(files.password_file, lambda f: f.write(password_text.encode()), owner=owner)
    replace_file(files.acl_file, lambda f: f.write(acl_text.encode()), owner=owner)
    return files


def password_file_users(path: Path) -> set[str]:
    """The account names of a password file (none if there is no file yet)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()
    return {line.split(":", 1)[0] for line in text.splitlines() if ":" in line}


def reload_broker(pid_file: Path) -> None:
    """SIGHUP to the broker whose pid is in ``pid_file``: Mosquitto re-reads its password
    and ACL files and checks every connected client against them again, closing the
    connections of accounts that are gone or whose password no longer matches (2.0's
    ``mosquitto_security_apply``). Raises OSError or ValueError if it cannot."""
    os.kill(int(Path(pid_file).read_text().strip()), signal.SIGHUP)


# -- the operator's accounts file (``sitewatch broker files --accounts FILE``) -------------


class AccountEntry(BaseModel):
    """One account of the accounts file. The password is never in the file: either the
    name of an environment variable holding it, or its ``$7$`` hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    #: a gateway's is ``{site}.{gateway}`` and may be left out
    username: str | None = None
    site: str | None = None
    gateway: str | None = None
    password_env: str | None = None
    password_hash: str | None = None


class AccountsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = DEFAULT_PREFIX
    accounts: list[AccountEntry]


def load_accounts(
    data: Any, environ: Mapping[str, str], *, source: str = "accounts file"
) -> tuple[str, list[Account]]:
    """The prefix and accounts of a parsed accounts file (YAML), passwords taken from
    ``environ``. Every problem is reported with the entry it is in."""
    try:
        parsed = AccountsFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise BrokerAuthError(f"{source}: {problems}") from None
    accounts: list[Account] = []
    for i, entry in enumerate(parsed.accounts):
        where = f"{source}: accounts[{i}]"
        try:
            accounts.append(_account_of(entry, environ))
        except BrokerAuthError as exc:
            raise BrokerAuthError(f"{where}: {exc}") from None
    _checked(accounts)  # duplicates
    return check_acl_prefix(parsed.prefix), accounts


def _account_of(entry: AccountEntry, environ: Mapping[str, str]) -> Account:
    username = entry.username
    if username is None:
        if entry.role is not Role.GATEWAY or entry.site is None or entry.gateway is None:
            raise BrokerAuthError("username missing (only a gateway's can be left out)")
        username = gateway_username(entry.site, entry.gateway)
    if (entry.password_env is None) == (entry.password_hash is None):
        raise BrokerAuthError(f"{username}: give password_env or password_hash (one of them)")
    if entry.password_env is not None:
        password = environ.get(entry.password_env, "")
        if not password:
            raise BrokerAuthError(
                f"{username}: environment variable {entry.password_env} is not set or empty"
            )
        password_hash = hash_password(password)
    else:
        assert entry.password_hash is not None
        password_hash = entry.password_hash
    return Account(username, password_hash, entry.role, entry.site, entry.gateway)

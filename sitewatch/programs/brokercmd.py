"""``sitewatch broker``: write Mosquitto's password and ACL files, hash a password, rotate
or revoke a gateway's MQTT password (docs/broker.md).

With ``--database-url`` the database is the source of every gateway's credential: the
accounts file's gateways are imported into it (the first time only), the change is made
there, and the files are written from the accounts file's other accounts and the
database's gateways - the same gateways the API writes.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from sitewatch.domains.brokeraccounts.brokerauth import (
    Account,
    BrokerAuthError,
    Role,
    hash_password,
    load_accounts,
    reload_broker,
    write_broker_files,
)

# the database and YAML are imported where used: building the command line stays quick

ACTIONS = ("files", "hash", "rotate", "revoke")


def add_arguments(br: argparse.ArgumentParser) -> None:
    br.add_argument(
        "action",
        choices=ACTIONS,
        help="files: write passwd and acl into --dir from --accounts (passwords "
        "from the environment variables it names) and, with "
        "--database-url, every gateway of the database; hash: a password "
        "from stdin as a Mosquitto $7$ hash, for the accounts file; "
        "rotate SITE GATEWAY: a new MQTT password for a gateway (printed "
        "once), then the files; revoke SITE GATEWAY: take its account out, "
        "then the files (both need --database-url)",
    )
    br.add_argument("site", nargs="?", default=None, help="rotate, revoke: the site")
    br.add_argument("gateway", nargs="?", default=None, help="rotate, revoke: the gateway")
    br.add_argument(
        "--accounts",
        type=Path,
        default=Path("accounts.yaml"),
        help="YAML: prefix and accounts (role, username or site/gateway, "
        "password_env or password_hash)",
    )
    br.add_argument(
        "--dir",
        type=Path,
        default=Path("."),
        help="where to write passwd and acl (Mosquitto's password_file, acl_file)",
    )
    br.add_argument("--prefix", default=None, help="topic prefix; default: the file's")
    br.add_argument(
        "--database-url",
        default=None,
        help="the database that keeps every gateway's credential (the API's); "
        "the accounts file's gateways are imported into it",
    )
    br.add_argument(
        "--owner",
        default=None,
        help="USER[:GROUP] to own the files: the user Mosquitto runs as "
        "(it reads them again on SIGHUP); needs root",
    )
    br.add_argument(
        "--pid-file",
        type=Path,
        default=None,
        help="the broker's pid file: send it SIGHUP after writing, so the change "
        "is in force (revoked gateways disconnected) at once",
    )
    br.add_argument(
        "--by", default=None, help="who makes the change, for the record (default: cli:$USER)"
    )


def run(args: argparse.Namespace) -> int:
    import yaml

    from sitewatch.domains.brokeraccounts.brokercreds import CredentialError

    where = f"sitewatch broker {args.action}"
    try:
        if args.action == "hash":
            return _hash(where)
        if args.action in ("rotate", "revoke") and not (
            args.site and args.gateway and args.database_url
        ):
            print(
                f"{where}: give SITE GATEWAY and --database-url (the gateways' credentials "
                f"are kept in the database)",
                file=sys.stderr,
            )
            return 2
        try:
            data = yaml.safe_load(args.accounts.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            print(f"{where}: cannot read {args.accounts}: {exc}", file=sys.stderr)
            return 2
        prefix, accounts = load_accounts(data, os.environ, source=str(args.accounts))
        owner = _owner(args.owner)
        if args.database_url:
            accounts, password = _with_database(args, accounts)
            if password is not None:  # in the database now: shown before anything can fail
                print(f"new MQTT password of {args.site}.{args.gateway} (shown once): {password}")
        files = write_broker_files(args.dir, args.prefix or prefix, accounts, owner=owner)
    except (BrokerAuthError, CredentialError, LookupError, PermissionError) as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 2
    gateways = sum(1 for a in accounts if a.gateway is not None)
    print(
        f"wrote {files.password_file} and {files.acl_file}: {len(accounts)} accounts "
        f"({gateways} gateways)"
    )
    return _reload(where, args.pid_file)


def _hash(where: str) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Reenter password: ") != password:
            print(f"{where}: the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    print(hash_password(password))
    return 0


def _with_database(
    args: argparse.Namespace, file_accounts: list[Account]
) -> tuple[list[Account], str | None]:
    """Import the file's gateways, make the change, commit; the accounts to write: the
    file's others and the database's gateways. Also the new password of a rotation."""
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

    from sitewatch.core.db import Base, make_engine
    from sitewatch.domains import registry
    from sitewatch.domains.brokeraccounts import brokercreds

    by = args.by or f"cli:{getpass.getuser()}"
    engine = make_engine(args.database_url)
    try:
        tables: list[Any] = [*registry.TABLES, *brokercreds.TABLES]
        Base.metadata.create_all(engine, tables=tables)
        with Session(engine) as session:
            imported = brokercreds.import_gateways(session, file_accounts, by=by)
            password = None
            if args.action == "rotate":
                password = brokercreds.rotate(session, args.site, args.gateway, by=by)
            elif args.action == "revoke":
                if not brokercreds.revoke(session, args.site, args.gateway, by=by):
                    print(f"{args.site}.{args.gateway} was revoked already")
            gateways = brokercreds.gateway_accounts(session)
            session.commit()
    except (SQLAlchemyError, registry.RegistryError) as exc:
        raise BrokerAuthError(f"the database {args.database_url}: {exc}") from None
    finally:
        engine.dispose()
    for name in imported.added:
        print(f"{name}: imported from the accounts file into the database")
    for name in imported.kept:
        print(
            f"{name}: the database's credential is used (the accounts file's password "
            f"counts only the first time; change it with `sitewatch broker rotate`)"
        )
    return [a for a in file_accounts if a.role is not Role.GATEWAY] + gateways, password


def _reload(where: str, pid_file: Path | None) -> int:
    if pid_file is None:
        print("a running broker applies them on SIGHUP (systemctl reload mosquitto)")
        return 0
    try:
        reload_broker(pid_file)
    except (OSError, ValueError) as exc:
        print(
            f"{where}: files written, but the broker could not be signalled "
            f"({pid_file}): {exc}; reload it yourself",
            file=sys.stderr,
        )
        return 1
    print(f"broker reloaded (SIGHUP to the pid in {pid_file})")
    return 0


def _owner(spec: str | None) -> tuple[int, int] | None:
    """``USER[:GROUP]`` by name or number; the group defaults to the user's."""
    import grp
    import pwd

    if not spec:
        return None
    user, _, group = spec.partition(":")
    if user.isdigit():
        uid, gid = int(user), int(user)
    else:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise LookupError(f"no user {user!r} on this machine") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    if group:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise LookupError(f"no group {group!r} on this machine") from None
    return uid, gid

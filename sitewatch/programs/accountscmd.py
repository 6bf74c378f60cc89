"""``sitewatch accounts``: the people and API keys of the API (docs/api.md). SQLAlchemy
and the accounts domain are imported when the command runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sitewatch.programs.commandline import add_command


def add_parser(subparsers: Any) -> None:
    acc = add_command(
        subparsers, "accounts", cmd_accounts, "people and API keys of the API (docs/api.md)"
    )
    acc.add_argument(
        "action",
        choices=["list", "add-user", "add-key", "disable-user", "revoke-key"],
        help="add-user NAME --role R [--site S ...] (password on stdin or "
        "asked for); add-key NAME --role R [--site S ...] (the key is "
        "printed once; a vendor key: --role vendor --site S --gateway G, "
        "reads that gateway's dead letters only); disable-user NAME; "
        "revoke-key KEY_ID",
    )
    acc.add_argument("name", nargs="?", default=None)
    acc.add_argument(
        "--role",
        default=None,
        choices=["county_supervisor", "site_officer", "admin", "viewer", "vendor"],
    )
    acc.add_argument("--site", action="append", help="a site the account may see, repeatable")
    acc.add_argument("--gateway", default=None, help="a vendor key's gateway (of its one --site)")
    acc.add_argument("--database-url", default="sqlite:///sitewatch.db")


def cmd_accounts(args: argparse.Namespace) -> int:
    import getpass

    from sqlalchemy.orm import Session

    from sitewatch.core.db import make_engine
    from sitewatch.domains import accounts
    from sitewatch.domains.schema import create_tables

    engine = make_engine(args.database_url)
    create_tables(engine)
    try:
        with Session(engine) as s:
            if args.action == "add-user":
                if not args.name or not args.role:
                    print("sitewatch accounts add-user: give NAME and --role", file=sys.stderr)
                    return 2
                password = (
                    sys.stdin.readline().rstrip("\n")
                    if not sys.stdin.isatty()
                    else getpass.getpass(f"password for {args.name}: ")
                )
                accounts.add_user(s, args.name, password, args.role, args.site or [])
                s.commit()
                print(f"user {args.name} ({args.role}) added")
            elif args.action == "add-key":
                if not args.name or not args.role:
                    print("sitewatch accounts add-key: give NAME and --role", file=sys.stderr)
                    return 2
                row, secret = accounts.add_api_key(
                    s, args.name, args.role, args.site or [], args.gateway
                )
                s.commit()
                bound = f", gateway {row.sites[0]}/{args.gateway}" if args.gateway else ""
                print(f"API key {row.id} ({args.role}{bound}) for {args.name}; shown once:")
                print(secret)
            elif args.action in ("disable-user", "revoke-key"):
                user = (
                    s.get(accounts.UserRow, args.name or "")
                    if args.action == "disable-user"
                    else None
                )
                key = (
                    s.get(accounts.ApiKeyRow, args.name or "")
                    if args.action == "revoke-key"
                    else None
                )
                if user is None and key is None:
                    print(f"sitewatch accounts {args.action}: no {args.name!r}", file=sys.stderr)
                    return 1
                if user is not None:
                    user.disabled = True
                if key is not None:
                    key.revoked = True
                s.commit()
                print(f"{args.name}: {'disabled' if args.action == 'disable-user' else 'revoked'}")
            else:
                for u in accounts.list_users(s):
                    state = " (disabled)" if u.disabled else ""
                    print(f"user {u.username:24} {u.role:18} {','.join(u.sites) or '-'}{state}")
                for k in accounts.list_api_keys(s):
                    state = " (revoked)" if k.revoked else ""
                    gw = accounts.key_gateway(s, k.id)
                    where = f"{k.sites[0]}/{gw}" if gw and k.sites else ",".join(k.sites)
                    print(f"key  {k.id:24} {k.role:18} {where or '-'} {k.name}{state}")
    except accounts.AccountError as exc:
        print(f"sitewatch accounts {args.action}: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0

"""``sitewatch dashboards generate|check|push`` (docs/dashboards.md).

Imports only the standard library at the top: ``sitewatch --help`` must not pay for the
dashboards or grafana-client."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

#: where ``push`` reads Grafana's service-account token and the InfluxDB token from
GRAFANA_TOKEN_ENV = "SITEWATCH_GRAFANA_TOKEN"
GRAFANA_PASSWORD_ENV = "SITEWATCH_GRAFANA_PASSWORD"
INFLUX_TOKEN_ENV = "SITEWATCH_INFLUX_TOKEN"


def add_parser(subparsers: Any) -> None:
    help_ = "Grafana dashboards: generate the provisioning files, check them, push them"
    p = subparsers.add_parser("dashboards", help=help_, description=help_)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    gen = actions.add_parser("generate", help="write json/ and provisioning/ from the code")
    gen.set_defaults(fn=cmd_generate)
    chk = actions.add_parser("check", help="exit 1 if the files differ from the code")
    chk.set_defaults(fn=cmd_check)
    for sp in (gen, chk):
        sp.add_argument(
            "--dir",
            type=Path,
            default=None,
            help="the dashboards folder (default: the one in the source tree)",
        )
        sp.add_argument(
            "--profiles",
            type=Path,
            default=None,
            help="device profiles folder (their rules give the drawn limits)",
        )

    push = actions.add_parser(
        "push",
        help="upload the dashboards (and the data source) to a running Grafana",
        description="Creates or updates the SiteWatch folder and every dashboard over "
        f"Grafana's HTTP API. Authenticates with ${GRAFANA_TOKEN_ENV} (a service "
        f"account token) or --user with ${GRAFANA_PASSWORD_ENV}.",
    )
    push.set_defaults(fn=cmd_push)
    push.add_argument("--url", required=True, help="Grafana, e.g. http://localhost:3000")
    push.add_argument(
        "--user", default=None, help=f"basic auth user (password from ${GRAFANA_PASSWORD_ENV})"
    )
    push.add_argument("--folder", default="SiteWatch")
    push.add_argument(
        "--influx-url",
        default=None,
        help="also create or update the InfluxDB data source with this URL "
        f"(as Grafana reaches it; token from ${INFLUX_TOKEN_ENV})",
    )
    push.add_argument("--influx-db", default="sitewatch")
    push.add_argument("--profiles", type=Path, default=None)
    push.add_argument("--timeout", type=float, default=10.0)


def _profiles(path: Path | None) -> Any:
    from sitewatch.core.profiles import load_profiles

    return load_profiles(path)


def cmd_generate(args: argparse.Namespace) -> int:
    from dashboards import files

    for path in files.write(args.dir or files.HOME, _profiles(args.profiles)):
        print(path)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from dashboards import files

    problems = files.check(args.dir or files.HOME, _profiles(args.profiles))
    for d in problems:
        print(f"{d.path}: {d.problem}", file=sys.stderr)
    if problems:
        print("run: sitewatch dashboards generate", file=sys.stderr)
    return 1 if problems else 0


def cmd_push(args: argparse.Namespace) -> int:
    from grafana_client.api import GrafanaApi
    from grafana_client.client import GrafanaException

    from dashboards.catalog import build_all
    from dashboards.grafana import datasource, push

    credential: str | tuple[str, str] | None
    if args.user:
        password = os.environ.get(GRAFANA_PASSWORD_ENV)
        if not password:
            print(
                f"sitewatch dashboards push: --user needs ${GRAFANA_PASSWORD_ENV}", file=sys.stderr
            )
            return 2
        credential = (args.user, password)
    else:
        credential = os.environ.get(GRAFANA_TOKEN_ENV)
        if not credential:
            print(
                f"sitewatch dashboards push: set ${GRAFANA_TOKEN_ENV} (a service account "
                f"token) or give --user with ${GRAFANA_PASSWORD_ENV}",
                file=sys.stderr,
            )
            return 2
    api = GrafanaApi.from_url(args.url, credential=credential, timeout=args.timeout)
    source = (
        datasource(
            url=args.influx_url, database=args.influx_db, token=os.environ.get(INFLUX_TOKEN_ENV, "")
        )
        if args.influx_url
        else None
    )
    try:
        result = push(
            api,
            list(build_all(_profiles(args.profiles)).values()),
            folder=args.folder,
            source=source,
        )
    except (GrafanaException, OSError) as exc:
        print(f"sitewatch dashboards push: {args.url}: {exc}", file=sys.stderr)
        return 1
    if result.datasource:
        print(f"data source {result.datasource}: created or updated")
    for uid in result.dashboards:
        print(f"dashboard {uid}: pushed to folder {result.folder_uid}")
    return 0

"""``sitewatch``: one command, a subcommand per part of the platform."""

from __future__ import annotations

import argparse
import sys

from sitewatch import __version__
from sitewatch.core.profiles import ProfileError
from sitewatch.core.settings import ConfigError
from sitewatch.programs import (
    accountscmd,
    alertscmd,
    deadletterscmd,
    democmd,
    profilescmd,
    servicecmd,
    simulatecmd,
)
from sitewatch.programs.commandline import add_command

# each command's module adds its parser; what a command needs beyond the standard
# library is imported when it runs, so that ``sitewatch --help`` stays quick


def cmd_broker(args: argparse.Namespace) -> int:
    """Mosquitto's password and ACL files, gateways' MQTT passwords (docs/broker.md)."""
    from sitewatch.programs.brokercmd import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sitewatch", description=__doc__)
    p.add_argument("--version", action="version", version=f"sitewatch {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    servicecmd.add_parsers(sub)  # ingest, edge, api
    simulatecmd.add_parser(sub)
    democmd.add_parser(sub)
    alertscmd.add_parser(sub)

    br = add_command(
        sub, "broker", cmd_broker, "Mosquitto's accounts: password and ACL files (docs/broker.md)"
    )
    from sitewatch.programs.brokercmd import add_arguments as broker_arguments

    broker_arguments(br)

    accountscmd.add_parser(sub)

    from sitewatch.programs.attendancecmd import add_parser as add_attendance

    add_attendance(sub)  # sitewatch attendance ACTION: its actions and handlers live there

    from dashboards.cli import add_parser as add_dashboards

    add_dashboards(sub)  # sitewatch dashboards generate|check|push

    from sitewatch.programs.backup.cli import add_parser as add_backup

    add_backup(sub)  # sitewatch backup create|restore|verify (docs/backup.md)

    from sitewatch.programs.deployenv import add_parser as add_deploy

    add_deploy(sub)  # sitewatch deploy env|check: a docker-compose installation's secrets

    profilescmd.add_parser(sub)
    deadletterscmd.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except (ConfigError, ProfileError) as exc:
        print(f"sitewatch {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

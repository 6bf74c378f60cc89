"""``sitewatch backup create|restore|verify`` (docs/backup.md).

This module imports only the standard library at the top: ``sitewatch --help`` must not
pay for SQLAlchemy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

CONFIG_HELP = (
    "the API's YAML configuration (environment variables SITEWATCH_API_* "
    "override it): the stores are its database_url, influx and snapshots_dir"
)


def add_parser(subparsers: Any) -> None:
    """``sitewatch backup ACTION …`` on ``sitewatch``'s subparsers
    (``argparse._SubParsersAction``, which has no public type)."""
    help_ = (
        "back up and restore InfluxDB, the SQL store, the snapshots and the "
        "operator's files (docs/backup.md)"
    )
    p = subparsers.add_parser("backup", help=help_, description=help_)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    c = actions.add_parser(
        "create",
        help="write a backup archive",
        description="write a backup archive (it holds the secrets of "
        "the files given with --include: keep it like them)",
    )
    c.set_defaults(fn=cmd_create)
    c.add_argument("--out", type=Path, required=True, help="the archive to write (.tar)")
    c.add_argument("--config", "-c", type=Path, default=None, help=CONFIG_HELP)
    c.add_argument(
        "--include",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="an operator file to keep too (.env, deploy/mosquitto/accounts.yaml, "
        "deploy/alerts.yaml), by its name; repeatable",
    )

    r = actions.add_parser(
        "restore",
        help="restore a backup into empty stores",
        description="check a backup, then restore it into empty stores "
        "(refused if any already holds data)",
    )
    r.set_defaults(fn=cmd_restore)
    r.add_argument("file", type=Path)
    r.add_argument("--config", "-c", type=Path, default=None, help=CONFIG_HELP)
    r.add_argument(
        "--config-out",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the backup's operator files here (mode 0600; never "
        "overwrites); without it they are listed, not written",
    )

    v = actions.add_parser("verify", help="check every member's SHA-256 and say what is inside")
    v.set_defaults(fn=cmd_verify)
    v.add_argument("file", type=Path)


def _settings(args: argparse.Namespace) -> Any:
    from api.config import ApiSettings
    from sitewatch.core.settings import load_settings

    return load_settings(ApiSettings, args.config)


def _fail(action: str, message: str) -> int:
    print(f"sitewatch backup {action}: {message}", file=sys.stderr)
    return 1


def cmd_create(args: argparse.Namespace) -> int:
    from sitewatch.programs.backup import BackupError
    from sitewatch.programs.backup.run import create

    settings = _settings(args)
    try:
        summary = create(settings, args.out, args.include)
    except BackupError as exc:
        return _fail("create", str(exc))
    print(f"{args.out}: written")
    print("\n".join(summary.lines()))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from sitewatch.programs.backup import BackupError
    from sitewatch.programs.backup.run import restore

    settings = _settings(args)
    try:
        summary = restore(settings, args.file, args.config_out)
    except BackupError as exc:
        return _fail("restore", str(exc))
    print(f"{args.file}: restored")
    print("\n".join(summary.lines()))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from sitewatch.programs.backup import BackupError
    from sitewatch.programs.backup.archive import ArchiveReader
    from sitewatch.programs.backup.run import contents

    try:
        with ArchiveReader(args.file) as archive:
            archive.verify()
            m = archive.manifest
            summary = contents(archive)
    except BackupError as exc:
        return _fail("verify", str(exc))
    print(
        f"{args.file}: intact, {len(archive.members)} members; sitewatch "
        f"{m.get('sitewatch_version')}, {m.get('sql_dialect')} store, InfluxDB database "
        f"{m.get('influx_database')}, made {_ms(int(m.get('created_at', 0)))}"
    )
    print("\n".join(_counts(summary)))
    return 0


def _counts(summary: Any) -> list[str]:
    return [line.rsplit(" (", 1)[0] if line.endswith(" s)") else line for line in summary.lines()]


def _ms(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")

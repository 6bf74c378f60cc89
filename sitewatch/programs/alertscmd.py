"""``sitewatch alerts``: run the alert service, and list, acknowledge, resolve and verify
the alerts it keeps (docs/alerts.md). The store and the service are imported when the
command runs."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from sitewatch.programs.commandline import add_command, ms_text, setup_logging


def add_parser(subparsers: Any) -> None:
    al = add_command(
        subparsers, "alerts", cmd_alerts, "the alert service, and the alerts it keeps", config=True
    )
    al.add_argument(
        "action",
        choices=["serve", "list", "history", "ack", "resolve", "verify"],
        help="serve: run the alert service; list/history: show alerts and their "
        "changes; ack/resolve ALERT_ID --by NAME [--comment TEXT]; verify: "
        "check the history chain (exit 1 if anything was altered)",
    )
    al.add_argument("alert_id", nargs="?", default=None)
    al.add_argument(
        "--database-url",
        default=None,
        help="default: database_url of --config, else sqlite:///sitewatch.db",
    )
    al.add_argument("--by", default=None, help="who acknowledges or resolves")
    al.add_argument("--comment", default="")
    al.add_argument("--site", default=None)
    al.add_argument("--state", default=None, help="open, active, clearing or resolved")
    al.add_argument("--severity", default=None)
    al.add_argument("--limit", type=int, default=50)


def _alert_settings(args: argparse.Namespace) -> Any:
    from sitewatch.core.settings import load_settings
    from sitewatch.domains.alertrecords.settings import AlertSettings

    overrides = {"database_url": args.database_url} if args.database_url else {}
    return load_settings(AlertSettings, args.config, **overrides)


def _profiles(directory: Path | None) -> Any:
    """The device profiles that word the alerts' values; None (plain numbers, with a
    note on stderr) if they cannot be loaded."""
    from sitewatch.core.profiles import ProfileError, load_profiles

    try:
        return load_profiles(directory)
    except ProfileError as exc:
        print(f"sitewatch alerts list: values without units: {exc}", file=sys.stderr)
        return None


def cmd_alerts(args: argparse.Namespace) -> int:
    import time

    from sitewatch.domains.alertrecords.store import AlertError, AlertStore
    from sitewatch.domains.alertrecords.wording import word_measurement

    settings = _alert_settings(args)
    if args.action == "serve":
        from alerts.service import run_alerts

        setup_logging(settings.log_level)
        asyncio.run(run_alerts(settings))
        return 0
    if args.action in ("ack", "resolve"):
        # the running service's routing (MQTT, InfluxDB, notifiers) for the outbox rows
        from sitewatch.domains.alertrecords.routing import router_for

        store = AlertStore(settings.database_url, router_for(settings))
    else:
        store = AlertStore(settings.database_url)
    store.create_schema()
    try:
        if args.action == "verify":
            report = store.verify()
            for problem in report.problems:
                print(f"TAMPERED: {problem}")
            state = "intact" if report.ok else f"{len(report.problems)} problem(s)"
            print(f"{report.entries} history entries, {report.alerts} alerts: {state}")
            return 0 if report.ok else 1
        if args.action in ("ack", "resolve"):
            if not args.alert_id or not args.by:
                print(f"sitewatch alerts {args.action}: give ALERT_ID and --by", file=sys.stderr)
                return 2
            now = int(time.time() * 1000)
            try:
                fn = store.acknowledge if args.action == "ack" else store.resolve
                ev, _ = fn(args.alert_id, args.by, args.comment, now)
            except AlertError as exc:
                print(f"sitewatch alerts {args.action}: {exc}", file=sys.stderr)
                return 1
            print(f"{ev.id} {ev.event.value} by {args.by}")
            return 0
        if args.action == "history":
            for h in store.history(args.alert_id):
                print(f"#{h.n} {ms_text(h.at)} {h.alert_id} {h.event} by {h.actor} hash={h.hash}")
            return 0
        profiles = _profiles(settings.profiles_dir)
        for row in store.list_alerts(
            site=args.site, state=args.state, severity=args.severity, limit=args.limit
        ):
            ack = f" acked by {row.acked_by}" if row.acked_by else ""
            late = " LATE" if row.late else ""
            words = word_measurement(
                profiles,
                profile=row.profile,
                rule=row.rule,
                value=json.loads(row.value),
                limit=json.loads(row.limit),
            )
            print(
                f"{row.id} {ms_text(row.raised_at)} {row.severity:7} {row.level:6} "
                f"{row.state:9} {row.site}/{row.device} {row.group}: {row.title} "
                f"({words.line()}){late}{ack}"
            )
        return 0
    finally:
        store.dispose()

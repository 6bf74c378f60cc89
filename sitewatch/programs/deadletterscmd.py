"""``sitewatch deadletters``: what ingest refused, with the reasons (the dead-letter
store is imported when the command runs)."""

from __future__ import annotations

import argparse
from typing import Any

from sitewatch.programs.commandline import add_command, ms_text


def add_parser(subparsers: Any) -> None:
    dl = add_command(
        subparsers, "deadletters", cmd_deadletters, "show refused messages and items with reasons"
    )
    dl.add_argument("--database-url", default="sqlite:///sitewatch.db")
    dl.add_argument("--limit", type=int, default=20)
    dl.add_argument("--reason", default=None)
    dl.add_argument("--site", default=None)
    dl.add_argument("--counts", action="store_true", help="counts by reason")


def cmd_deadletters(args: argparse.Namespace) -> int:
    from sitewatch.domains.deadletters import DeadLetterStore

    store = DeadLetterStore(args.database_url)
    store.create_schema()
    if args.counts:
        for reason, n in sorted(store.counts_by_reason().items()):
            print(f"{reason:22} {n}")
        return 0
    import datetime as dt

    for row in reversed(store.recent(args.limit, args.reason, args.site)):
        payload = row.payload[:200].decode("utf-8", "replace")
        # UTC (SQLite gives it back without its zone), and ms since the epoch as the API
        received = (
            row.received_at if row.received_at.tzinfo else row.received_at.replace(tzinfo=dt.UTC)
        )
        at = int(received.timestamp() * 1000)
        print(
            f"#{row.id} {ms_text(at)} ({at}) {row.reason} topic={row.topic} "
            f"batch={row.batch} device={row.device} seq={row.seq}\n    {row.detail}\n"
            f"    payload: {payload}"
        )
    return 0

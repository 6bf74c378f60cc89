"""``sitewatch attendance …``: the worker registry, the ledger and what is derived from
it, at the site office's terminal (docs/api.md, "Attendance", for the same over HTTP).

This module is the command line: each action and its arguments. The actions' bodies are
beside it: :mod:`.registry` (import, workers, policy), :mod:`.reports` (on-site,
headcount, hours, sheet, verify), :mod:`.simulate`, and what they share in
:mod:`.action`. Every one of them imports only the standard library at the top:
``sitewatch --help`` must not pay for SQLAlchemy.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from sitewatch.programs.attendancecmd.registry import (
    ID_KEY_ENV,
    cmd_import,
    cmd_policy,
    cmd_workers,
)
from sitewatch.programs.attendancecmd.reports import (
    cmd_headcount,
    cmd_hours,
    cmd_on_site,
    cmd_sheet,
    cmd_verify,
)
from sitewatch.programs.attendancecmd.simulate import GATE_TOKENS_ENV, cmd_simulate

Handler = Callable[[argparse.Namespace], int]


def add_parser(subparsers: Any) -> None:
    """``sitewatch attendance ACTION …`` with its actions, on ``sitewatch``'s
    subparsers (``argparse._SubParsersAction``, which has no public type)."""
    help_ = "workers, gate events, hours and day-labour sheets (docs/api.md, Attendance)"
    att = subparsers.add_parser("attendance", help=help_, description=help_)
    actions = att.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, fn: Handler, help_: str, *, site: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help_, description=help_)
        p.set_defaults(fn=fn)
        p.add_argument("--database-url", default="sqlite:///sitewatch.db")
        if site:
            p.add_argument("--site", required=True)
        return p

    def days(p: argparse.ArgumentParser, required: bool = False) -> None:
        p.add_argument(
            "--from",
            dest="first",
            type=date.fromisoformat,
            required=required,
            metavar="DAY",
            help="first attendance day, YYYY-MM-DD" + ("" if required else "; default: --to"),
        )
        p.add_argument(
            "--to",
            dest="last",
            type=date.fromisoformat,
            required=required,
            metavar="DAY",
            help="last attendance day (inclusive)"
            + ("" if required else "; default: today at the site"),
        )

    imp = action("import", cmd_import, "import a worker list (.csv or .xlsx), all or nothing")
    imp.add_argument("file", type=Path)
    imp.add_argument(
        "--id-key-file",
        type=Path,
        default=None,
        help=f"file holding the ID-number key (else ${ID_KEY_ENV}); the API's "
        "attendance.id_hash_key",
    )
    imp.add_argument(
        "--development",
        action="store_true",
        help="without a key, hash with the public development key",
    )

    w = action("workers", cmd_workers, "the registered workers")
    w.add_argument("--team", default=None)

    action("on-site", cmd_on_site, "who is on site now")
    days(action("headcount", cmd_headcount, "workers who came, per day, team and subcontractor"))

    h = action("hours", cmd_hours, "credited minutes and sessions per worker and day")
    days(h)
    h.add_argument("--worker", default=None)

    sh = action("sheet", cmd_sheet, "day-labour sheets (one per team)")
    days(sh, required=True)
    sh.add_argument("--team", default=None)
    sh.add_argument("--format", choices=["text", "csv", "xlsx"], default="text")
    sh.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="write to this file (needed for xlsx); default: standard output",
    )

    pol = action("policy", cmd_policy, "show the site's attendance policy, or change keys")
    pol.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a key (repeatable); the result is checked, then stored",
    )

    sim = actions.add_parser(
        "simulate",
        help="gate terminals of a simulated workforce: the past days, then "
        "today's swipes as they fall due, pushed to a gateway's http_push listener",
        description="Gate terminals of a simulated workforce (simulators."
        "attendance_days) pushing to a gateway's http_push listener. Tokens: "
        f"${GATE_TOKENS_ENV}=GATE01=token,GATE02=token.",
    )
    sim.set_defaults(fn=cmd_simulate)
    sim.add_argument("--url", required=True, help="the listener, e.g. http://127.0.0.1:8081")
    sim.add_argument("--workers", type=int, default=200)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--days-back", type=int, default=7)
    sim.add_argument(
        "--no-live", dest="live", action="store_false", help="deliver what is due and stop"
    )
    sim.add_argument(
        "--print-workers",
        action="store_true",
        help="print the workforce as a CSV worker list (for import) and stop",
    )

    v = action(
        "verify", cmd_verify, "check every hash of the ledger; exit 1 on any problem", site=False
    )
    v.add_argument("--site", default=None, help="default: every site")

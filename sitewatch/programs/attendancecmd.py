"""``sitewatch attendance …``: the worker registry, the ledger and what is derived from
it, at the site office's terminal (docs/api.md, "Attendance", for the same over HTTP).

Imports go through ``sitewatch.domains.attendance.registration``, as the API's do. This module
imports only the standard library at the top: ``sitewatch --help`` must not pay for
SQLAlchemy.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from sitewatch.domains.attendance.policy import AttendancePolicy
    from sitewatch.domains.attendance.sheets import DayLabourSheet

#: ``simulate``: each gate's bearer token, GATE01=token,GATE02=token
GATE_TOKENS_ENV = "SITEWATCH_ATTENDANCE_GATE_TOKENS"
#: where ``import`` reads the ID-number key from (the API: attendance.id_hash_key)
ID_KEY_ENV = "SITEWATCH_ATTENDANCE_ID_HASH_KEY"
MIN_KEY_CHARS = 32


# -- the command line ------------------------------------------------------------------

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
        description="Gate terminals of a simulated workforce (sitewatch.simulators."
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


@contextmanager
def _session(args: argparse.Namespace) -> Iterator[Session]:
    from sqlalchemy.orm import Session

    from sitewatch.core.db import make_engine
    from sitewatch.domains.schema import create_tables

    engine = make_engine(args.database_url)
    try:
        create_tables(engine)
        with Session(engine) as s:
            yield s
    finally:
        engine.dispose()


def _fail(args: argparse.Namespace, message: str, code: int = 1) -> int:
    print(f"sitewatch attendance {args.action}: {message}", file=sys.stderr)
    return code


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _id_key(args: argparse.Namespace) -> str | None:
    from sitewatch.domains.attendance.idcard import DEV_ID_KEY

    if args.id_key_file is not None:
        return args.id_key_file.read_text(encoding="utf-8").strip() or None
    return os.environ.get(ID_KEY_ENV) or (DEV_ID_KEY if args.development else None)


def cmd_import(args: argparse.Namespace) -> int:
    from sitewatch.domains.registry import Registry

    try:
        key = _id_key(args)
        data = args.file.read_bytes()
    except OSError as exc:
        return _fail(args, f"cannot read {exc.filename}: {exc.strerror}", 2)
    if key is None:
        return _fail(
            args,
            f"no ID-number key: set {ID_KEY_ENV} or give --id-key-file "
            "(the API's attendance.id_hash_key), or --development",
            2,
        )
    if len(key) < MIN_KEY_CHARS:
        return _fail(args, f"the ID-number key needs at least {MIN_KEY_CHARS} characters", 2)
    with _session(args) as s:
        if Registry(s).site(args.site) is None:
            return _fail(args, f"no site {args.site} in the registry")
        from sitewatch.domains.attendance.registration import import_workers

        try:
            done = import_workers(
                s, data, args.file.name, site=args.site, id_key=key, now_ms=_now_ms()
            )
        except ValueError as exc:
            return _fail(args, str(exc), 2)
        if done.errors:
            for e in done.errors:
                where = f"row {e.row}" + (f", {e.column}" if e.column else "")
                print(f"{where}: {e.message}", file=sys.stderr)
            return _fail(args, f"{len(done.errors)} error(s); nothing imported")
        s.commit()
    print(f"{args.site}: {done.created} workers added, {done.updated} updated")
    return 0


def cmd_workers(args: argparse.Namespace) -> int:
    from sitewatch.domains.attendance.sitepolicy import get_policy
    from sitewatch.domains.attendance.workers import WorkerInfo, Workers

    with _session(args) as s:
        today = get_policy(s, args.site).day_of(_now_ms())
        offset, total = 0, 1
        while offset < total:
            page = Workers(s).page(args.site, team=args.team, offset=offset, limit=500)
            for r in page.items:
                lapsed = ",".join(WorkerInfo.of(r).lapsed(today))
                flags = ("lead " if r.team_lead else "") + ("" if r.active else "inactive ")
                print(
                    f"{r.id:12} {r.name:10} {r.team:12} {r.trade or '-':8} "
                    f"{r.subcontractor or '-':16} {r.day_rate:>8} {r.id_masked or '-':18} "
                    f"{flags}{'LAPSED ' + lapsed if lapsed else ''}".rstrip()
                )
            offset, total = offset + len(page.items), page.total
            if not page.items:
                break
    return 0


def cmd_on_site(args: argparse.Namespace) -> int:
    from sitewatch.domains.attendance.reports import on_site_now
    from sitewatch.domains.attendance.sitepolicy import get_policy

    with _session(args) as s:
        clock = _clock(get_policy(s, args.site))
        people = on_site_now(s, args.site, _now_ms())
    for o in people:
        print(
            f"{o.worker:12} {o.name or '?':10} {o.team:12} {o.subcontractor or '-':16} "
            f"since {clock(o.since)}"
        )
    print(f"{len(people)} on site")
    return 0


def _clock(policy: AttendancePolicy) -> Callable[[int], str]:
    """Moments as the site office reads them: HH:MM at the site (its policy's offset)."""
    import datetime as dt

    zone = dt.timezone(dt.timedelta(hours=policy.utc_offset_h))
    return lambda ms: dt.datetime.fromtimestamp(ms / 1000, zone).strftime("%H:%M")


def _days(args: argparse.Namespace, s: Session) -> tuple[date, date]:
    from sitewatch.domains.attendance.reports import day_range
    from sitewatch.domains.attendance.sitepolicy import get_policy

    return day_range(get_policy(s, args.site), args.first, args.last, _now_ms())


def cmd_headcount(args: argparse.Namespace) -> int:
    from sitewatch.domains.attendance.reports import headcounts

    with _session(args) as s:
        try:
            first, last = _days(args, s)
        except ValueError as exc:  # DayRangeError: the days asked for
            return _fail(args, str(exc), 2)
        counts = headcounts(s, args.site, first, last, _now_ms())
    for h in counts:
        teams = ", ".join(f"{t} {n}" for t, n in h.by_team.items()) or "-"
        subs = ", ".join(f"{t} {n}" for t, n in h.by_subcontractor.items()) or "-"
        print(
            f"{h.day} came {h.came}, on site {h.on_site_now}, unregistered "
            f"{h.unregistered}; teams: {teams}; subcontractors: {subs}"
        )
    return 0


def cmd_hours(args: argparse.Namespace) -> int:
    from sitewatch.domains.attendance.reports import hours
    from sitewatch.domains.attendance.sitepolicy import get_policy

    with _session(args) as s:
        try:
            first, last = _days(args, s)
        except ValueError as exc:  # DayRangeError: the days asked for
            return _fail(args, str(exc), 2)
        clock = _clock(get_policy(s, args.site))
        days = hours(s, args.site, first, last, _now_ms(), args.worker)
    for wd in days:
        spans = " ".join(
            f"{clock(x.start)}-{clock(x.end)}" + (f"({x.flag.value})" if x.flag else "")
            for x in wd.sessions
        )
        flags = ",".join(f.value for f in wd.flags)
        print(
            f"{wd.day} {wd.worker:12} {wd.minutes // 60:3}h{wd.minutes % 60:02}m "
            f"{spans or '-'}{'  ' + flags if flags else ''}"
        )
    return 0


def cmd_sheet(args: argparse.Namespace) -> int:
    from sitewatch.domains.attendance.reports import sheets

    if args.format == "xlsx" and args.output is None:
        return _fail(args, "xlsx needs -o FILE", 2)
    with _session(args) as s:
        try:
            first, last = _days(args, s)
        except ValueError as exc:  # DayRangeError: the days asked for
            return _fail(args, str(exc), 2)
        found = sheets(s, args.site, first, last, _now_ms(), args.team)
    data = _sheet_bytes(found, args.format)
    if args.output is not None:
        args.output.write_bytes(data)
        print(f"{args.output}: {len(found)} sheet(s), {sum(len(x.rows) for x in found)} rows")
    else:
        sys.stdout.write(data.decode("utf-8"))
    return 0


def _sheet_bytes(found: list[DayLabourSheet], fmt: str) -> bytes:
    from sitewatch.domains.attendance.export import sheets_csv, sheets_xlsx

    if fmt == "csv":
        return sheets_csv(found)
    if fmt == "xlsx":
        return sheets_xlsx(found)
    return "".join(_sheet_text(x) for x in found).encode("utf-8")


def _sheet_text(sh: DayLabourSheet) -> str:
    """A sheet for a glance at the terminal; the signed copy is the CSV or XLSX."""
    lines = [
        f"{sh.site_name} ({sh.site}) team {sh.team}, {sh.first_day} to {sh.last_day}; "
        f"leads: {', '.join(sh.leads) or '-'}; subcontractors: "
        f"{', '.join(sh.subcontractors) or '-'}; {sh.hours_per_day} h a day"
    ]
    for r in sh.rows:
        lines.append(
            f"  {r.day} {r.worker:12} {r.name:10} {r.trade or '-':8} "
            f"{r.hours:>6} h {r.day_equivalents:>5} d x {r.day_rate:>8} = "
            f"{r.amount:>9}  {','.join(r.remarks)}".rstrip()
        )
    t = sh.totals
    lines.append(f"  total {t.minutes} min, {t.hours} h, {t.day_equivalents} d, {t.amount}")
    return "\n".join(lines) + "\n\n"


def cmd_policy(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from sitewatch.domains.attendance.policy import AttendancePolicy
    from sitewatch.domains.attendance.sitepolicy import get_policy, put_policy

    with _session(args) as s:
        current = get_policy(s, args.site)
        if args.set:
            changes: dict[str, str] = {}
            for item in args.set:
                key, sep, value = item.partition("=")
                if not sep:
                    return _fail(args, f"--set {item!r}: want KEY=VALUE", 2)
                changes[key.strip()] = value.strip()
            try:
                current = AttendancePolicy.model_validate({**current.model_dump(), **changes})
            except ValidationError as exc:
                from sitewatch.domains.attendance.registration import policy_problems

                return _fail(args, policy_problems(exc), 2)
            put_policy(s, args.site, current, _now_ms())
            s.commit()
    for key, value in current.model_dump(mode="json").items():
        print(f"{key}: {value}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from sitewatch.domains.attendance.ledger import Ledger

    bad = 0
    with _session(args) as s:
        ledger = Ledger(s)
        for site in [args.site] if args.site else ledger.sites():
            report = ledger.verify(site)
            for problem in report.problems:
                print(f"{site}: TAMPERED: {problem}")  # as docs/attendance.md shows
            state = "intact" if report.ok else f"{len(report.problems)} problem(s)"
            print(f"{site}: {report.entries} entries, {state}")
            bad += not report.ok
    return 1 if bad else 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import asyncio
    import csv
    import logging

    from sitewatch.core.signals import stop_on_signals
    from sitewatch.simulators.attendance_days import workforce
    from sitewatch.simulators.attendance_feed import FeedOptions, run_feed

    workers = workforce(args.workers, seed=args.seed)
    if args.print_workers:  # the office's worker list for this workforce, to import
        out = csv.writer(sys.stdout)
        out.writerow(
            [
                "工号",
                "姓名",
                "班组",
                "班组长",
                "分包单位",
                "工种",
                "日工资",
                "培训有效期",
                "证书有效期",
                "身份证号",
            ]
        )
        for w in workers:
            out.writerow(
                [
                    w.id,
                    w.name,
                    w.team,
                    "是" if w.team_lead else "否",
                    w.subcontractor,
                    w.trade,
                    w.day_rate,
                    w.training_expires,
                    w.certificate_expires or "",
                    w.id_number,
                ]
            )
        return 0
    tokens = dict(
        item.split("=", 1) for item in os.environ.get(GATE_TOKENS_ENV, "").split(",") if "=" in item
    )
    if not tokens:
        return _fail(args, f"no gate tokens: set {GATE_TOKENS_ENV}=GATE01=token,...", 2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def main() -> int:
        stop = asyncio.Event()
        stop_on_signals(stop.set)
        return await run_feed(
            FeedOptions(args.url.rstrip("/"), tokens, args.days_back, args.live, args.seed),
            workers,
            stop=stop,
        )

    sent = asyncio.run(main())
    print(f"{sent} gate events delivered")
    return 0

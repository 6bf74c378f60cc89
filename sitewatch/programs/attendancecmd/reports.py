"""``sitewatch attendance on-site|headcount|hours|sheet|verify``: what is read from the
ledger, printed as the site office reads it (times as HH:MM at the site), day-labour
sheets as text, CSV or XLSX, and the check of the ledger's hash chain. Figures come from
``sitewatch.domains.attendance.reports``, the same code as the API's. Standard library
only at the top."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from sitewatch.programs.attendancecmd.action import fail, now_ms, open_session

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from sitewatch.domains.attendance.policy import AttendancePolicy
    from sitewatch.domains.attendance.sheets import DayLabourSheet


def cmd_on_site(args: argparse.Namespace) -> int:
    from sitewatch.domains.attendance.reports import on_site_now
    from sitewatch.domains.attendance.sitepolicy import get_policy

    with open_session(args) as s:
        clock = _clock(get_policy(s, args.site))
        people = on_site_now(s, args.site, now_ms())
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

    return day_range(get_policy(s, args.site), args.first, args.last, now_ms())


def cmd_headcount(args: argparse.Namespace) -> int:
    from sitewatch.domains.attendance.reports import headcounts

    with open_session(args) as s:
        try:
            first, last = _days(args, s)
        except ValueError as exc:  # DayRangeError: the days asked for
            return fail(args, str(exc), 2)
        counts = headcounts(s, args.site, first, last, now_ms())
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

    with open_session(args) as s:
        try:
            first, last = _days(args, s)
        except ValueError as exc:  # DayRangeError: the days asked for
            return fail(args, str(exc), 2)
        clock = _clock(get_policy(s, args.site))
        days = hours(s, args.site, first, last, now_ms(), args.worker)
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
        return fail(args, "xlsx needs -o FILE", 2)
    with open_session(args) as s:
        try:
            first, last = _days(args, s)
        except ValueError as exc:  # DayRangeError: the days asked for
            return fail(args, str(exc), 2)
        found = sheets(s, args.site, first, last, now_ms(), args.team)
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


def cmd_verify(args: argparse.Namespace) -> int:
    from sitewatch.domains.attendance.ledger import Ledger

    bad = 0
    with open_session(args) as s:
        ledger = Ledger(s)
        for site in [args.site] if args.site else ledger.sites():
            report = ledger.verify(site)
            for problem in report.problems:
                print(f"{site}: TAMPERED: {problem}")  # as docs/attendance.md shows
            state = "intact" if report.ok else f"{len(report.problems)} problem(s)"
            print(f"{site}: {report.entries} entries, {state}")
            bad += not report.ok
    return 1 if bad else 0

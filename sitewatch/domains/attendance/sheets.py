"""Day-labour (点工) sheets: per team and period, each worker's hours per day, the
day-equivalents (工日) at the site's hours per day, the rate and the amount, as site
offices sign them off. Pure arithmetic, in decimals.

Per worker and day: ``hours = minutes / 60``, ``day_eq = minutes / (60 * hours_per_day)``,
both rounded half-up to 0.01; ``amount = day_eq * day_rate`` rounded the same way, so a
signer can check each row by hand. Totals are the sums of the printed column values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sitewatch.domains.attendance.hours import WorkerDay
from sitewatch.domains.attendance.workers import WorkerInfo

CENT = Decimal("0.01")


def cents(x: Decimal) -> Decimal:
    """Rounded half-up to 0.01, as every figure on a sheet."""
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class SheetRow:
    day: date
    worker: str
    name: str
    trade: str
    minutes: int
    hours: Decimal
    day_equivalents: Decimal
    day_rate: Decimal
    amount: Decimal
    #: the rules that applied (docs/attendance.md): what the signer should look at
    remarks: tuple[str, ...]


@dataclass(slots=True)
class Totals:
    minutes: int = 0
    hours: Decimal = Decimal("0.00")
    day_equivalents: Decimal = Decimal("0.00")
    amount: Decimal = Decimal("0.00")

    def add(self, r: SheetRow) -> None:
        self.minutes += r.minutes
        self.hours += r.hours
        self.day_equivalents += r.day_equivalents
        self.amount += r.amount


@dataclass(slots=True)
class DayLabourSheet:
    site: str
    site_name: str
    team: str
    leads: list[str]
    subcontractors: list[str]
    first_day: date
    last_day: date
    hours_per_day: Decimal
    rows: list[SheetRow] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)


def hours_of(minutes: int) -> Decimal:
    """Credited minutes as hours, as a sheet prints them."""
    return cents(Decimal(minutes) / 60)


def row_for(wd: WorkerDay, info: WorkerInfo, hours_per_day: Decimal) -> SheetRow:
    minutes = Decimal(wd.minutes)
    day_eq = cents(minutes / (hours_per_day * 60))
    return SheetRow(
        wd.day,
        wd.worker,
        info.name,
        info.trade,
        wd.minutes,
        hours_of(wd.minutes),
        day_eq,
        info.day_rate,
        cents(day_eq * info.day_rate),
        tuple(f.value for f in wd.flags),
    )


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def build_sheets(
    site: str,
    site_name: str,
    days: Mapping[tuple[str, date], WorkerDay],
    workers: Mapping[str, WorkerInfo],
    first: date,
    last: date,
    hours_per_day: Decimal,
    team: str | None = None,
) -> list[DayLabourSheet]:
    """One sheet per team (or only ``team``) for ``first``..``last``: a row per worker
    and day with credited time. Workers not in the registry have no rate and are on no
    sheet (the attendance alerts report them)."""
    sheets: dict[str, DayLabourSheet] = {}
    for info in sorted(workers.values(), key=lambda w: (w.team, w.id)):
        if team is not None and info.team != team:
            continue
        sheet = sheets.get(info.team)
        if sheet is None:
            sheet = sheets[info.team] = DayLabourSheet(
                site, site_name, info.team, [], [], first, last, hours_per_day
            )
        if info.team_lead:
            sheet.leads.append(info.name)
        if info.subcontractor and info.subcontractor not in sheet.subcontractors:
            sheet.subcontractors.append(info.subcontractor)
    for (worker, day), wd in sorted(days.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        member = workers.get(worker)
        if member is None or not first <= day <= last or member.team not in sheets:
            continue
        if not wd.sessions:
            continue
        row = row_for(wd, member, hours_per_day)
        sheet = sheets[member.team]
        sheet.rows.append(row)
        sheet.totals.add(row)
    return [sheets[t] for t in sorted(sheets)]

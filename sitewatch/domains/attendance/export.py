"""Day-labour sheets (``sitewatch.domains.attendance.sheets``) as the files site offices print
and sign: CSV for any spreadsheet, XLSX laid out for printing.

Both formats write the same lines (:func:`_layout`), one block per sheet: the sheet's
particulars, the table of worker-days, the totals and the sign-off lines. Labels are in
Chinese and English, as the offices and the head office both read them.

The names, teams and trades come from operators' uploads, so a cell is never allowed to
become a formula: CSV cells that Excel would read as one are prefixed with ``'`` and
XLSX cells are stored as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import Enum, auto
from typing import Any

import openpyxl
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter

from sitewatch.domains.attendance.sheets import DayLabourSheet, SheetRow

INFO_SITE = "项目 Site"
INFO_TEAM = "班组 Team"
INFO_LEADS = "班组长 Team lead"
INFO_SUBCONTRACTORS = "分包单位 Subcontractor"
INFO_PERIOD = "期间 Period"
INFO_HOURS_PER_DAY = "每工日工时 Hours per day"
COLUMNS = (
    "日期 Date",
    "工号 Worker",
    "姓名 Name",
    "工种 Trade",
    "工时 Hours",
    "工日 Day-eq.",
    "日工资 Day rate",
    "金额 Amount",
    "备注 Remarks",
    "签字 Signature",
)
TOTAL = "合计 Total"
SIGN_OFF = ("班组长签字 Team lead signature", "项目负责人签字 Site manager signature", "日期 Date")
NOTHING = "本期间无点工记录 Nothing for the period"
NONE = "-"

Cell = str | Decimal | date | None


class _Kind(Enum):
    INFO = auto()
    HEADER = auto()
    ROW = auto()
    TOTAL = auto()
    SIGN = auto()
    BLANK = auto()


@dataclass(frozen=True, slots=True)
class _Line:
    kind: _Kind
    cells: tuple[Cell, ...] = ()


# -- the layout both formats share -----------------------------------------------------


def _layout(sheet: DayLabourSheet) -> list[_Line]:
    return [
        *_info(sheet),
        _Line(_Kind.BLANK),
        _Line(_Kind.HEADER, COLUMNS),
        *(_Line(_Kind.ROW, _row(r)) for r in sheet.rows),
        _Line(_Kind.TOTAL, _total(sheet)),
        _Line(_Kind.BLANK),
        *(_Line(_Kind.SIGN, (label,)) for label in SIGN_OFF),
    ]


def _info(sheet: DayLabourSheet) -> list[_Line]:
    pairs: list[tuple[str, Cell]] = [
        (INFO_SITE, f"{sheet.site_name} ({sheet.site})"),
        (INFO_TEAM, sheet.team),
        (INFO_LEADS, ", ".join(sheet.leads) or NONE),
        (INFO_SUBCONTRACTORS, ", ".join(sheet.subcontractors) or NONE),
        (INFO_PERIOD, f"{sheet.first_day.isoformat()}–{sheet.last_day.isoformat()}"),
        (INFO_HOURS_PER_DAY, sheet.hours_per_day),
    ]
    return [_Line(_Kind.INFO, pair) for pair in pairs]


def _row(r: SheetRow) -> tuple[Cell, ...]:
    # the signature cell is left empty for the worker to sign in
    return (
        r.day,
        r.worker,
        r.name,
        r.trade,
        r.hours,
        r.day_equivalents,
        r.day_rate,
        r.amount,
        ";".join(r.remarks),
        None,
    )


def _total(sheet: DayLabourSheet) -> tuple[Cell, ...]:
    t = sheet.totals
    return (TOTAL, None, None, None, t.hours, t.day_equivalents, None, t.amount, None, None)


# -- CSV -------------------------------------------------------------------------------


def sheets_csv(sheets: Sequence[DayLabourSheet]) -> bytes:
    """The sheets as one CSV file, UTF-8 with a BOM (without it Excel on a Chinese
    Windows reads the file as GBK and garbles every name), a blank line between sheets.
    """
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    if not sheets:
        writer.writerow([NOTHING])
    for i, sheet in enumerate(sheets):
        if i:
            writer.writerow([])
        writer.writerows([_csv_cell(c) for c in line.cells] for line in _layout(sheet))
    return out.getvalue().encode("utf-8-sig")


def _csv_cell(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, Decimal):
        return f"{cell:.2f}"
    if isinstance(cell, date):
        return cell.isoformat()
    return _not_a_formula(cell)


def _not_a_formula(text: str) -> str:
    """Excel runs a CSV cell starting with = + - @ (or a tab or CR before them) as a
    formula: a name like ``=HYPERLINK(...)`` would run on the signer's PC (OWASP "CSV
    injection"). A leading ``'`` makes it text. The lone "-" of an empty field is text
    already."""
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and text != NONE:
        return "'" + text
    return text


# -- XLSX ------------------------------------------------------------------------------

#: column widths in characters (a Chinese character is two): date, worker, name, trade,
#: hours, day-eq., rate, amount, remarks, signature. Column A also holds the particulars'
#: labels, whose values in column B would otherwise cut them off.
_WIDTHS = (26, 12, 12, 10, 9, 10, 11, 12, 28, 14)
_NUMBER_FORMAT = "0.00"
_DATE_FORMAT = "yyyy-mm-dd"
_THIN = Side(style="thin")
_GRID = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_BOLD = Font(bold=True)
_TITLE_MAX = 31
_TITLE_FORBIDDEN = str.maketrans({c: "_" for c in "[]:*?/\\"})


def sheets_xlsx(sheets: Sequence[DayLabourSheet]) -> bytes:
    """The sheets as an XLSX workbook, one worksheet per sheet titled by its team, each
    printable on landscape pages one page wide."""
    book = openpyxl.Workbook()
    for default in book.worksheets:  # every worksheet is made below, with its title
        book.remove(default)
    used: set[str] = set()
    for sheet in sheets:
        _write_sheet(book.create_sheet(_title(sheet.team, used)), sheet)
    if not sheets:
        ws = book.create_sheet("无数据 Nothing")
        ws["A1"] = NOTHING
        ws.column_dimensions["A"].width = 40
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def _title(team: str, used: set[str]) -> str:
    """A worksheet title Excel accepts: at most 31 characters, none of ``[]:*?/\\``, no
    leading or trailing ``'``, not "History" (Excel reserves it), and unique without
    regard to case (as Excel compares them)."""
    base = team.translate(_TITLE_FORBIDDEN).strip().strip("'").strip() or "Team"
    title = base[:_TITLE_MAX]
    n = 1
    while title.casefold() in used or title.casefold() == "history":
        n += 1
        suffix = f" ({n})"
        title = base[: _TITLE_MAX - len(suffix)] + suffix
    used.add(title.casefold())
    return title


def _write_sheet(ws: Any, sheet: DayLabourSheet) -> None:
    header_row = 0
    for number, line in enumerate(_layout(sheet), start=1):
        for column, value in enumerate(line.cells, start=1):
            cell = ws.cell(row=number, column=column)
            _set(cell, value)
            _style(cell, line.kind)
        if line.kind in (_Kind.HEADER, _Kind.ROW, _Kind.TOTAL):
            # the table is bordered to the last column, its empty cells too: printed,
            # the lines are what the signers write between
            for column in range(len(line.cells) + 1, len(COLUMNS) + 1):
                _style(ws.cell(row=number, column=column), line.kind)
        if line.kind is _Kind.HEADER:
            header_row = number
    for i, width in enumerate(_WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    _printable(ws, header_row)


def _set(cell: Any, value: Cell) -> None:
    if isinstance(value, Decimal):
        cell.value = value
        cell.number_format = _NUMBER_FORMAT
    elif isinstance(value, date):
        cell.value = value
        cell.number_format = _DATE_FORMAT
    elif value is not None:
        # openpyxl refuses control characters, and would store "=..." as a formula
        cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
        cell.data_type = "s"


def _style(cell: Any, kind: _Kind) -> None:
    if kind in (_Kind.HEADER, _Kind.TOTAL, _Kind.SIGN) or (kind is _Kind.INFO and cell.column == 1):
        cell.font = _BOLD
    if kind in (_Kind.HEADER, _Kind.ROW, _Kind.TOTAL):
        cell.border = _GRID
    if kind is _Kind.HEADER:
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    elif kind is _Kind.INFO and cell.column == 2:
        cell.alignment = Alignment(horizontal="left")


def _printable(ws: Any, header_row: int) -> None:
    setup = ws.page_setup
    setup.orientation = "landscape"
    setup.paperSize = ws.PAPERSIZE_A4
    # one page wide, as many pages long as it takes
    setup.fitToWidth = 1
    setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    # every printed page repeats the table's header
    ws.print_title_rows = f"{header_row}:{header_row}"
    ws.print_options.horizontalCentered = True

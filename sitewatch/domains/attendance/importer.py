"""Import a site office's worker list (花名册) from CSV or XLSX into registry rows.

The whole file is checked before anything is imported: :func:`read_workers` returns the
rows and every error it found, each naming the spreadsheet row (the header is row 1,
row 0 is the file as a whole) and column, and callers import only when there are no
errors, so that a file is never half imported.

Bad content never raises: only an unsupported file type does (``ValueError``), because
that is the caller's choice of parser, not something in the file.

ID-card numbers never leave this module whole: a valid one is kept only as its keyed
hash and masked form (``sitewatch.domains.attendance.idcard``), and every cell value quoted in
an error message goes through :func:`_shown`, which masks anything with enough digits
to be an ID number or part of one (a number typed into the wrong column, a file without
a header row).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import PurePath
from typing import Any

import openpyxl

from sitewatch.core.ids import is_ident
from sitewatch.domains.attendance import idcard
from sitewatch.domains.attendance.workers import WorkerRow

#: canonical column -> the header names accepted for it (compared after _header_key)
ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("工号", "编号", "worker", "worker_id", "id"),
    "name": ("姓名", "name"),
    "team": ("班组", "team"),
    "day_rate": ("日工资", "日单价", "工价", "day_rate", "rate"),
    "subcontractor": ("分包单位", "劳务公司", "subcontractor"),
    "trade": ("工种", "trade"),
    "team_lead": ("班组长", "team_lead", "lead"),
    "training_expires": ("培训有效期", "安全培训有效期", "training_expires"),
    "certificate_expires": ("证书有效期", "上岗证有效期", "certificate_expires"),
    "id_number": ("身份证号", "身份证号码", "id_number", "id_card"),
}
REQUIRED = ("id", "name", "team", "day_rate")

#: the widths of the registry's columns (sitewatch.domains.attendance.workers.WorkerRow)
_MAX_LEN = {"name": 100, "team": 128, "subcontractor": 256, "trade": 64}
#: Numeric(10, 2): eight digits before the point
_MAX_RATE = Decimal("99999999.99")
_CENT = Decimal("0.01")

_TRUE = frozenset({"是", "y", "yes", "true", "1"})
_FALSE = frozenset({"否", "n", "no", "false", "0", ""})

_DATE_SEP = re.compile(r"^(\d{4})([-/.])(\d{1,2})\2(\d{1,2})$")
_DATE_CN = re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日$")
_RATE = re.compile(r"^(\d+)(\.\d+)?$")

#: a quoted value with this many digits is masked: an ID number has 15 or more, and a
#: part of one (the region and birth date are 14) is more than its mask shows. Dates
#: (8 digits) stay readable; phone numbers (11) are masked, as they should be.
_MASK_DIGITS = 10
#: Excel keeps 15 significant digits of a number: an 18-digit ID typed into a number
#: cell has already lost its last digits when we read it
_EXCEL_DIGITS = 15

_MERGED_HINT = (
    " (in a merged cell only the first row has the value: unmerge the cells and fill every row)"
)


@dataclass(frozen=True, slots=True)
class RowError:
    #: spreadsheet row number: the header is row 1; 0 is the file as a whole
    row: int
    #: the column as headed in the file, or the canonical name of a missing one
    column: str | None
    message: str


@dataclass(slots=True)
class ImportResult:
    #: registry rows, not added to any session; import them only if ``errors`` is empty
    rows: list[WorkerRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


class _CellError(ValueError):
    """A cell's value is wrong; caught per cell and turned into a RowError."""


# -- the public entry point ------------------------------------------------------------


def read_workers(
    data: bytes, filename: str, *, site: str, id_key: str, now_ms: int
) -> ImportResult:
    """The workers of ``data`` (a .csv or .xlsx file) as rows of ``site``, or the errors.

    Raises ValueError only for a file type other than .csv and .xlsx.
    """
    ext = PurePath(filename).suffix.lower()
    if ext == ".csv":
        table = _csv_table(data)
    elif ext == ".xlsx":
        table = _xlsx_table(data)
    else:
        shown = _shown(ext) if ext else "(none)"
        raise ValueError(f"unsupported file type {shown}: save the worker list as .xlsx or .csv")
    if isinstance(table, RowError):
        return ImportResult(errors=[table])
    return _read_table(table, _Context(site, id_key, now_ms, merged_cells=ext == ".xlsx"))


# -- files to tables -------------------------------------------------------------------

#: (spreadsheet row number, cell values) of every row that is not entirely empty
_Table = list[tuple[int, list[Any]]]


def _csv_table(data: bytes) -> _Table | RowError:
    text = _decode(data)
    if text is None:
        return RowError(
            0,
            None,
            "the file is neither UTF-8 nor GBK/GB18030 text: save it "
            'from Excel as "CSV UTF-8" or as .xlsx',
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    table: _Table = []
    # a record is a spreadsheet row even when a quoted cell spans several lines
    number = 0
    try:
        for number, record in enumerate(reader, start=1):
            if not _is_empty(record):
                table.append((number, record))
    except csv.Error:
        # not the csv module's message: it says little an office could act on
        return RowError(
            number + 1,
            None,
            f"malformed CSV (a quote left open, a cell too long?) near line {reader.line_num}",
        )
    return table


def _decode(data: bytes) -> str | None:
    """Excel saves CSV as UTF-8 (with a BOM) or, on a Chinese Windows, as GBK; GB18030
    reads GBK and is a strict superset of it. UTF-8 is tried first: GBK bytes are almost
    never valid UTF-8, while UTF-8 bytes often decode as GB18030 garbage. UTF-16 (Excel's
    "Unicode text") would decode as GB18030 garbage too: it is refused by its BOM."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def _xlsx_table(data: bytes) -> _Table | RowError:
    try:
        # data_only: the value Excel last computed for a formula, not its text
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # zipfile, XML and KeyError alike: the file is not a workbook
        return RowError(
            0,
            None,
            "not a readable .xlsx workbook (an .xls saved with a .xlsx name, or a damaged file?)",
        )
    try:
        if not book.worksheets:
            return RowError(0, None, "the workbook has no worksheet")
        # read-only mode yields empty rows for gaps, so enumerate() numbers rows as
        # Excel does
        rows = book.worksheets[0].iter_rows(values_only=True)
        return [(n, list(r)) for n, r in enumerate(rows, start=1) if not _is_empty(r)]
    except Exception:
        return RowError(0, None, "the first worksheet could not be read (a damaged file?)")
    finally:
        book.close()


def _is_empty(cells: Iterable[Any]) -> bool:
    return all(_blank(c) for c in cells)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# -- the header ------------------------------------------------------------------------


def _header_key(text: str) -> str:
    """Case, spaces, ``_`` and ``-`` do not matter: "Day rate", "day_rate", "DAY-RATE"."""
    return re.sub(r"[\s_\-]+", "", text).lower()


_BY_HEADER = {_header_key(alias): key for key, aliases in ALIASES.items() for alias in aliases}


@dataclass(slots=True)
class _Header:
    #: column index -> canonical key
    keys: dict[int, str] = field(default_factory=dict)
    #: column index -> the header as written (for messages)
    labels: dict[int, str] = field(default_factory=dict)


def _read_header(row: int, cells: Sequence[Any]) -> tuple[_Header, list[RowError]]:
    header = _Header()
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for i, cell in enumerate(cells):
        if _blank(cell):
            continue  # a value under it is an error (_read_cells)
        label = _text_of(cell)
        key = _BY_HEADER.get(_header_key(label))
        if key is None:
            # the accepted names once, not once per unknown column
            known = "" if errors else f": the columns are {_accepted_columns()}"
            errors.append(RowError(row, _masked(label), f"unknown column {_shown(label)}{known}"))
        elif key in seen:
            errors.append(
                RowError(
                    row,
                    label,
                    f"column {_shown(label)} is the same "
                    f"as column {_shown(header.labels[seen[key]])} ({key})",
                )
            )
        else:
            seen[key] = i
            header.keys[i] = key
            header.labels[i] = label
    for key in REQUIRED:
        if key not in seen:
            errors.append(
                RowError(
                    row, key, f"missing required column {key} (headed {' or '.join(ALIASES[key])})"
                )
            )
    return header, errors


def _accepted_columns() -> str:
    return "; ".join(f"{k}: {'/'.join(v)}" for k, v in ALIASES.items())


# -- the rows --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    site: str
    id_key: str
    now_ms: int
    #: XLSX files have merged cells, the usual cause of an empty team or name
    merged_cells: bool


def _read_table(table: _Table, ctx: _Context) -> ImportResult:
    if not table:
        return ImportResult(errors=[RowError(1, None, "the file is empty: no header row")])
    (header_row, header_cells), body = table[0], table[1:]
    header, errors = _read_header(header_row, header_cells)
    if errors:
        # with the wrong columns every row would repeat the same errors
        return ImportResult(errors=errors)
    if not body:
        return ImportResult(
            errors=[
                RowError(
                    header_row,
                    None,
                    "no workers below the header (the list is on another worksheet?)",
                )
            ]
        )
    result = ImportResult()
    seen = _Seen()
    for number, cells in body:
        values, row_errors = _read_cells(number, cells, header, ctx)
        # duplicates are looked for on rows with other errors too: one pass finds all
        row_errors += seen.check(number, values, header, ctx.id_key)
        result.errors.extend(row_errors)
        if not row_errors:
            result.rows.append(_worker_row(values, ctx))
    return result


def _read_cells(
    number: int, cells: Sequence[Any], header: _Header, ctx: _Context
) -> tuple[dict[str, Any], list[RowError]]:
    """The parsed value of each good cell by canonical key, and the bad cells' errors."""
    values: dict[str, Any] = {}
    errors: list[RowError] = []
    # a CSV line may stop short of the header's width: its missing cells are empty
    width = max(len(cells), max(header.keys) + 1)
    padded = [*cells, *[None] * (width - len(cells))]
    for i, cell in enumerate(padded):
        if i in header.keys:
            key = header.keys[i]
            try:
                values[key] = _PARSERS[key](cell)
            except _CellError as e:
                hint = _MERGED_HINT if ctx.merged_cells and _blank(cell) else ""
                errors.append(RowError(number, header.labels[i], f"{e}{hint}"))
        elif not _blank(cell):
            errors.append(
                RowError(
                    number,
                    _column_letter(i),
                    "a value in a column with no header: add the header or clear the column",
                )
            )
    return values, errors


def _label(header: _Header, key: str) -> str:
    return next(header.labels[i] for i, k in header.keys.items() if k == key)


def _column_letter(index: int) -> str:
    """Excel's name of a 0-based column: 0 -> "column A", 26 -> "column AA"."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return f"column {letters}"


@dataclass(slots=True)
class _Seen:
    """The worker id and the person (the ID number's keyed hash) must each be on one
    row: where each was first seen."""

    ids: dict[str, int] = field(default_factory=dict)
    people: dict[str, int] = field(default_factory=dict)

    def check(
        self, number: int, values: dict[str, Any], header: _Header, id_key: str
    ) -> list[RowError]:
        errors = []
        worker = values.get("id")
        if worker is not None:
            earlier = self.ids.setdefault(worker, number)
            if earlier != number:
                errors.append(
                    RowError(
                        number,
                        _label(header, "id"),
                        f"worker id {_shown(worker)} is on rows {earlier} and {number}",
                    )
                )
        if values.get("id_number") is not None:
            earlier = self.people.setdefault(idcard.keyed_hash(values["id_number"], id_key), number)
            if earlier != number:
                # never the number, nor its mask: the two rows are enough to find it
                errors.append(
                    RowError(
                        number,
                        _label(header, "id_number"),
                        f"the same ID-card number is on rows {earlier} and {number}",
                    )
                )
        return errors


def _worker_row(values: dict[str, Any], ctx: _Context) -> WorkerRow:
    number: str | None = values.get("id_number")
    return WorkerRow(
        site=ctx.site,
        id=values["id"],
        name=values["name"],
        team=values["team"],
        team_lead=values.get("team_lead", False),
        subcontractor=values.get("subcontractor") or "",
        trade=values.get("trade") or "",
        day_rate=values["day_rate"],
        training_expires=values.get("training_expires"),
        certificate_expires=values.get("certificate_expires"),
        id_hash=None if number is None else idcard.keyed_hash(number, ctx.id_key),
        id_masked=None if number is None else idcard.mask(number),
        active=True,
        updated_at=ctx.now_ms,
    )


# -- cells -----------------------------------------------------------------------------


def _shown(value: Any) -> str:
    """A cell value fit to quote in a message."""
    return repr(_masked(value))


def _masked(value: Any) -> str:
    """A cell as text, masked if it could hold an ID number (one in the wrong column, a
    header row missing so that the first worker's cells read as headers)."""
    text = _text_of(value)
    if sum(c.isdigit() for c in text) >= _MASK_DIGITS:
        # mask() shows the first 3 and last 4 characters: of an ID number anywhere in
        # the text it shows no more than the ID number's own mask does
        return idcard.mask(text)
    return text


def _text_of(value: Any) -> str:
    """A cell as text: 1001.0 (Excel keeps every number as a float) reads "1001"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime) and value.time() == datetime.min.time():
        return value.date().isoformat()
    return str(value).strip()


def _worker_id(value: Any) -> str:
    if _blank(value):
        raise _CellError("worker id is empty")
    text = _text_of(value)
    if not is_ident(text):
        raise _CellError(
            f"worker id {_shown(text)} is not 1-64 characters of A-Z a-z 0-9 "
            "_ - (the identifier the gates send)"
        )
    if _is_id_number(text):
        # some offices number workers by their ID card: the number would then be stored,
        # sent by the gates and printed on every sheet, whole
        raise _CellError(
            f"worker id {_shown(text)} is an ID-card number: number workers "
            "otherwise, the registry keeps ID numbers only hashed"
        )
    return text


def _is_id_number(text: str) -> bool:
    """18 characters with a matching check character. Not 15 digits: first-generation
    cards expired in 2013, while 15-digit worker numbers (a date and a sequence) exist."""
    try:
        return len(idcard.check(text)) == 18
    except idcard.IdCardError:
        return False


def _text(what: str, required: bool) -> Callable[[Any], str | None]:
    limit = _MAX_LEN[what]

    def parse(value: Any) -> str | None:
        if _blank(value):
            if required:
                raise _CellError(f"{what} is empty")
            return None
        text = _text_of(value)
        if len(text) > limit:
            # the value is not quoted: a long text could be anything, an ID number too
            raise _CellError(f"{what} has {len(text)} characters, at most {limit}")
        if any(unicodedata.category(c) == "Cc" for c in text):
            raise _CellError(f"{what} contains a line break or other control character")
        return text

    return parse


def _day_rate(value: Any) -> Decimal:
    if _blank(value):
        raise _CellError("day_rate is empty")
    if isinstance(value, bool):
        raise _CellError("day_rate is TRUE/FALSE, not an amount")
    if isinstance(value, int | float):
        # repr() is the shortest text that reads back as the same float: 350.1 reads
        # "350.1", not Decimal(350.1)'s 350.09999999999999431565811391919851303100585937
        rate = _decimal(repr(value), value)
    else:
        rate = _decimal(_strip_currency(str(value)), value)
    if rate > _MAX_RATE:
        raise _CellError(f"day_rate {_shown(value)} is more than {_MAX_RATE}")
    return rate.quantize(_CENT)


def _strip_currency(text: str) -> str:
    """ "¥350", "￥350", "350元", "350 元" -> "350"."""
    text = text.strip().removesuffix("元").strip()
    return text.removeprefix("¥").removeprefix("￥").strip()


def _decimal(text: str, original: Any) -> Decimal:
    if text.startswith("-"):
        raise _CellError(f"day_rate {_shown(original)} is negative")
    m = _RATE.match(text)
    if m is None:
        raise _CellError(f"day_rate {_shown(original)} is not an amount (like 350 or 350.50)")
    if m[2] is not None and len(m[2].rstrip("0")) > 3:  # "." and at most two digits
        raise _CellError(f"day_rate {_shown(original)} has more than 2 decimal places")
    try:
        return Decimal(text)
    except InvalidOperation:  # cannot happen after the pattern; never let it escape
        raise _CellError(f"day_rate {_shown(original)} is not an amount") from None


def _team_lead(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = "" if value is None else _text_of(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _CellError(f"team_lead {_shown(value)} is not one of 是/否, Y/N, yes/no, true/false, 1/0")


def _expiry(what: str) -> Callable[[Any], date | None]:
    def parse(value: Any) -> date | None:
        if _blank(value):
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise _CellError(
                f"{what} {_shown(value)} is a number, not a date: format the cell as a date"
            )
        return _parse_date(what, str(value).strip())

    return parse


def _parse_date(what: str, text: str) -> date:
    m = _DATE_SEP.match(text)
    parts = (m[1], m[3], m[4]) if m else None
    if parts is None and (m := _DATE_CN.match(text)):
        parts = (m[1], m[2], m[3])
    if parts is None:
        raise _CellError(
            f"{what} {_shown(text)} is not a date (like 2026-03-31, "
            "2026/3/31, 2026.3.31 or 2026年3月31日)"
        )
    try:
        return date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        raise _CellError(f"{what} {_shown(text)} is not a day of the calendar") from None


def _id_number(value: Any) -> str | None:
    """The canonical number (hashed and masked by the caller, never stored)."""
    if _blank(value):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value >= 10**_EXCEL_DIGITS:
            raise _CellError(
                "id_number is a number cell, and Excel keeps only 15 digits "
                "of a number: format the column as text and type it again"
            )
        value = _text_of(value)
    try:
        return idcard.check(str(value))
    except idcard.IdCardError as e:  # its message never contains the number
        raise _CellError(f"id_number: {e}") from None


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "id": _worker_id,
    "name": _text("name", required=True),
    "team": _text("team", required=True),
    "day_rate": _day_rate,
    "subcontractor": _text("subcontractor", required=False),
    "trade": _text("trade", required=False),
    "team_lead": _team_lead,
    "training_expires": _expiry("training_expires"),
    "certificate_expires": _expiry("certificate_expires"),
    "id_number": _id_number,
}

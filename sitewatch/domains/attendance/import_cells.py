"""The cells of a worker list: what counts as blank, a cell as text, a cell quoted in an
error message (masked if it could hold an ID-card number), and the parser of each
column (:data:`PARSERS`), which returns the cell's value or raises :class:`CellError`
with a message fit for the site office.

Every cell value quoted in a message goes through :func:`shown`, which masks anything
with enough digits to be an ID number or part of one (a number typed into the wrong
column, a file without a header row).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sitewatch.core.ids import is_ident
from sitewatch.domains.attendance import idcard
from sitewatch.domains.attendance.import_errors import CellError

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


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def shown(value: Any) -> str:
    """A cell value fit to quote in a message."""
    return repr(masked(value))


def masked(value: Any) -> str:
    """A cell as text, masked if it could hold an ID number (one in the wrong column, a
    header row missing so that the first worker's cells read as headers)."""
    text = text_of(value)
    if sum(c.isdigit() for c in text) >= _MASK_DIGITS:
        # mask() shows the first 3 and last 4 characters: of an ID number anywhere in
        # the text it shows no more than the ID number's own mask does
        return idcard.mask(text)
    return text


def text_of(value: Any) -> str:
    """A cell as text: 1001.0 (Excel keeps every number as a float) reads "1001"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime) and value.time() == datetime.min.time():
        return value.date().isoformat()
    return str(value).strip()


def _worker_id(value: Any) -> str:
    if blank(value):
        raise CellError("worker id is empty")
    text = text_of(value)
    if not is_ident(text):
        raise CellError(
            f"worker id {shown(text)} is not 1-64 characters of A-Z a-z 0-9 "
            "_ - (the identifier the gates send)"
        )
    if _is_id_number(text):
        # some offices number workers by their ID card: the number would then be stored,
        # sent by the gates and printed on every sheet, whole
        raise CellError(
            f"worker id {shown(text)} is an ID-card number: number workers "
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
        if blank(value):
            if required:
                raise CellError(f"{what} is empty")
            return None
        text = text_of(value)
        if len(text) > limit:
            # the value is not quoted: a long text could be anything, an ID number too
            raise CellError(f"{what} has {len(text)} characters, at most {limit}")
        if any(unicodedata.category(c) == "Cc" for c in text):
            raise CellError(f"{what} contains a line break or other control character")
        return text

    return parse


def _day_rate(value: Any) -> Decimal:
    if blank(value):
        raise CellError("day_rate is empty")
    if isinstance(value, bool):
        raise CellError("day_rate is TRUE/FALSE, not an amount")
    if isinstance(value, int | float):
        # repr() is the shortest text that reads back as the same float: 350.1 reads
        # "350.1", not Decimal(350.1)'s 350.09999999999999431565811391919851303100585937
        rate = _decimal(repr(value), value)
    else:
        rate = _decimal(_strip_currency(str(value)), value)
    if rate > _MAX_RATE:
        raise CellError(f"day_rate {shown(value)} is more than {_MAX_RATE}")
    return rate.quantize(_CENT)


def _strip_currency(text: str) -> str:
    """ "¥350", "￥350", "350元", "350 元" -> "350"."""
    text = text.strip().removesuffix("元").strip()
    return text.removeprefix("¥").removeprefix("￥").strip()


def _decimal(text: str, original: Any) -> Decimal:
    if text.startswith("-"):
        raise CellError(f"day_rate {shown(original)} is negative")
    m = _RATE.match(text)
    if m is None:
        raise CellError(f"day_rate {shown(original)} is not an amount (like 350 or 350.50)")
    if m[2] is not None and len(m[2].rstrip("0")) > 3:  # "." and at most two digits
        raise CellError(f"day_rate {shown(original)} has more than 2 decimal places")
    try:
        return Decimal(text)
    except InvalidOperation:  # cannot happen after the pattern; never let it escape
        raise CellError(f"day_rate {shown(original)} is not an amount") from None


def _team_lead(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = "" if value is None else text_of(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CellError(f"team_lead {shown(value)} is not one of 是/否, Y/N, yes/no, true/false, 1/0")


def _expiry(what: str) -> Callable[[Any], date | None]:
    def parse(value: Any) -> date | None:
        if blank(value):
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise CellError(
                f"{what} {shown(value)} is a number, not a date: format the cell as a date"
            )
        return _parse_date(what, str(value).strip())

    return parse


def _parse_date(what: str, text: str) -> date:
    m = _DATE_SEP.match(text)
    parts = (m[1], m[3], m[4]) if m else None
    if parts is None and (m := _DATE_CN.match(text)):
        parts = (m[1], m[2], m[3])
    if parts is None:
        raise CellError(
            f"{what} {shown(text)} is not a date (like 2026-03-31, "
            "2026/3/31, 2026.3.31 or 2026年3月31日)"
        )
    try:
        return date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        raise CellError(f"{what} {shown(text)} is not a day of the calendar") from None


def _id_number(value: Any) -> str | None:
    """The canonical number (hashed and masked by the caller, never stored)."""
    if blank(value):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value >= 10**_EXCEL_DIGITS:
            raise CellError(
                "id_number is a number cell, and Excel keeps only 15 digits "
                "of a number: format the column as text and type it again"
            )
        value = text_of(value)
    try:
        return idcard.check(str(value))
    except idcard.IdCardError as e:  # its message never contains the number
        raise CellError(f"id_number: {e}") from None


#: canonical column (import_header.ALIASES) -> the parser of its cells
PARSERS: dict[str, Callable[[Any], Any]] = {
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

"""A worker-list file as a table: the rows of a CSV (UTF-8 or GBK, as Excel saves it) or
of an XLSX workbook's first worksheet, numbered as the spreadsheet numbers them, empty
rows left out. A file that cannot be read is one :class:`RowError`, never an exception.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable
from typing import Any

import openpyxl

from sitewatch.domains.attendance.import_cells import blank
from sitewatch.domains.attendance.import_errors import RowError

#: (spreadsheet row number, cell values) of every row that is not entirely empty
Table = list[tuple[int, list[Any]]]


def csv_table(data: bytes) -> Table | RowError:
    text = _decode(data)
    if text is None:
        return RowError(
            0,
            None,
            "the file is neither UTF-8 nor GBK/GB18030 text: save it "
            'from Excel as "CSV UTF-8" or as .xlsx',
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    table: Table = []
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


def xlsx_table(data: bytes) -> Table | RowError:
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
    return all(blank(c) for c in cells)

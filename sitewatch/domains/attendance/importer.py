"""Import a site office's worker list (花名册) from CSV or XLSX into registry rows.

The whole file is checked before anything is imported: :func:`read_workers` returns the
rows and every error it found, each naming the spreadsheet row (the header is row 1,
row 0 is the file as a whole) and column, and callers import only when there are no
errors, so that a file is never half imported.

Bad content never raises: only an unsupported file type does (``ValueError``), because
that is the caller's choice of parser, not something in the file.

ID-card numbers never leave the import whole: a valid one is kept only as its keyed
hash and masked form (``sitewatch.domains.attendance.idcard``), and every cell value
quoted in an error message is masked if it could be one
(``sitewatch.domains.attendance.import_cells.shown``).

The steps, each in its module: the file read into a table (``import_files``), its
header row (``import_header``), each cell parsed (``import_cells``); here the rows are
checked one by one and against each other, and turned into registry rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from sitewatch.domains.attendance import idcard
from sitewatch.domains.attendance.import_cells import PARSERS, blank, shown
from sitewatch.domains.attendance.import_errors import CellError, RowError
from sitewatch.domains.attendance.import_files import Table, csv_table, xlsx_table
from sitewatch.domains.attendance.import_header import Header, read_header
from sitewatch.domains.attendance.workers import WorkerRow

_MERGED_HINT = (
    " (in a merged cell only the first row has the value: unmerge the cells and fill every row)"
)


@dataclass(slots=True)
class ImportResult:
    #: registry rows, not added to any session; import them only if ``errors`` is empty
    rows: list[WorkerRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


# -- the public entry point ------------------------------------------------------------


def read_workers(
    data: bytes, filename: str, *, site: str, id_key: str, now_ms: int
) -> ImportResult:
    """The workers of ``data`` (a .csv or .xlsx file) as rows of ``site``, or the errors.

    Raises ValueError only for a file type other than .csv and .xlsx.
    """
    ext = PurePath(filename).suffix.lower()
    if ext == ".csv":
        table = csv_table(data)
    elif ext == ".xlsx":
        table = xlsx_table(data)
    else:
        kind = shown(ext) if ext else "(none)"
        raise ValueError(f"unsupported file type {kind}: save the worker list as .xlsx or .csv")
    if isinstance(table, RowError):
        return ImportResult(errors=[table])
    return _read_table(table, _Context(site, id_key, now_ms, merged_cells=ext == ".xlsx"))


# -- the rows --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    site: str
    id_key: str
    now_ms: int
    #: XLSX files have merged cells, the usual cause of an empty team or name
    merged_cells: bool


def _read_table(table: Table, ctx: _Context) -> ImportResult:
    if not table:
        return ImportResult(errors=[RowError(1, None, "the file is empty: no header row")])
    (header_row, header_cells), body = table[0], table[1:]
    header, errors = read_header(header_row, header_cells)
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
    number: int, cells: Sequence[Any], header: Header, ctx: _Context
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
                values[key] = PARSERS[key](cell)
            except CellError as e:
                hint = _MERGED_HINT if ctx.merged_cells and blank(cell) else ""
                errors.append(RowError(number, header.labels[i], f"{e}{hint}"))
        elif not blank(cell):
            errors.append(
                RowError(
                    number,
                    _column_letter(i),
                    "a value in a column with no header: add the header or clear the column",
                )
            )
    return values, errors


def _label(header: Header, key: str) -> str:
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
        self, number: int, values: dict[str, Any], header: Header, id_key: str
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
                        f"worker id {shown(worker)} is on rows {earlier} and {number}",
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

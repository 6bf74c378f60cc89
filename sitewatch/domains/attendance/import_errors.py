"""What a worker-list import reports: an error by spreadsheet row and column
(:class:`RowError`), and the exception a column's parser raises for a bad cell
(:class:`CellError`), which the importer turns into one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RowError:
    #: spreadsheet row number: the header is row 1; 0 is the file as a whole
    row: int
    #: the column as headed in the file, or the canonical name of a missing one
    column: str | None
    message: str


class CellError(ValueError):
    """A cell's value is wrong; caught per cell and turned into a RowError."""

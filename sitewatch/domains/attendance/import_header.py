"""The header row of a worker list: which column is which, by the names an office heads
them with (:data:`ALIASES`, Chinese or English; case, spaces, ``_`` and ``-`` do not
matter), each known column once, every required one present."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sitewatch.domains.attendance.import_cells import blank, masked, shown, text_of
from sitewatch.domains.attendance.import_errors import RowError

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


def _header_key(text: str) -> str:
    """Case, spaces, ``_`` and ``-`` do not matter: "Day rate", "day_rate", "DAY-RATE"."""
    return re.sub(r"[\s_\-]+", "", text).lower()


_BY_HEADER = {_header_key(alias): key for key, aliases in ALIASES.items() for alias in aliases}


@dataclass(slots=True)
class Header:
    #: column index -> canonical key
    keys: dict[int, str] = field(default_factory=dict)
    #: column index -> the header as written (for messages)
    labels: dict[int, str] = field(default_factory=dict)


def read_header(row: int, cells: Sequence[Any]) -> tuple[Header, list[RowError]]:
    header = Header()
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for i, cell in enumerate(cells):
        if blank(cell):
            continue  # a value under it is an error (importer._read_cells)
        label = text_of(cell)
        key = _BY_HEADER.get(_header_key(label))
        if key is None:
            # the accepted names once, not once per unknown column
            known = "" if errors else f": the columns are {_accepted_columns()}"
            errors.append(RowError(row, masked(label), f"unknown column {shown(label)}{known}"))
        elif key in seen:
            errors.append(
                RowError(
                    row,
                    label,
                    f"column {shown(label)} is the same "
                    f"as column {shown(header.labels[seen[key]])} ({key})",
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

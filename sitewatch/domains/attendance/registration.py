"""Writing the worker registry, shared by the API and ``sitewatch attendance``: a worker
list is imported whole or not at all, an omitted ID-card number keeps the one on file,
and one person is not registered twice at a site."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sitewatch.domains.attendance.import_errors import RowError
from sitewatch.domains.attendance.importer import read_workers
from sitewatch.domains.attendance.workers import WorkerRow, Workers


def keep_id_numbers(s: Session, rows: Sequence[WorkerRow]) -> None:
    """A row without an ID-card number keeps the one on file: the number is never
    shown, so a change of team or rate must not make the office type it again (and a
    worker list without the column must not erase every registration)."""
    workers = Workers(s)
    for row in rows:
        if row.id_hash is None:
            old = workers.get(row.site, row.id)
            if old is not None:
                row.id_hash, row.id_masked = old.id_hash, old.id_masked


def same_person(s: Session, site: str, ids: Collection[str]) -> list[list[str]]:
    """Groups of active workers of ``site`` (at least one of them in ``ids``) who share
    an ID-card number: one person with two worker ids would be paid twice. Never the
    number or its hash."""
    mine = (WorkerRow.site == site, WorkerRow.active.is_(True), WorkerRow.id_hash.is_not(None))
    shared = (
        select(WorkerRow.id_hash).where(*mine).group_by(WorkerRow.id_hash).having(func.count() > 1)
    )
    groups: dict[str | None, list[str]] = {}
    for h, worker in s.execute(
        select(WorkerRow.id_hash, WorkerRow.id)
        .where(*mine, WorkerRow.id_hash.in_(shared))
        .order_by(WorkerRow.id)
    ):
        groups.setdefault(h, []).append(worker)
    wanted = set(ids)
    return [g for g in groups.values() if wanted.intersection(g)]


def same_person_message(group: Sequence[str]) -> str:
    return (
        f"workers {', '.join(group)} have the same ID-card number: one person is "
        "registered once per site (set the other inactive)"
    )


@dataclass
class Imported:
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)


def import_workers(
    s: Session, data: bytes, filename: str, *, site: str, id_key: str, now_ms: int
) -> Imported:
    """A worker list into the registry, all or nothing: with any error nothing is left
    in ``s`` (it is rolled back); without, the caller commits. ValueError: not a .csv
    or .xlsx file."""
    from sitewatch.domains.attendance.import_errors import RowError

    result = read_workers(data, filename, site=site, id_key=id_key, now_ms=now_ms)
    if result.errors:
        return Imported(errors=result.errors)
    keep_id_numbers(s, result.rows)
    created, updated = Workers(s).put_many(result.rows)
    clashes = same_person(s, site, [r.id for r in result.rows])
    if clashes:
        s.rollback()
        # row 0: the file as a whole (the clash may be with a worker already on file)
        return Imported(errors=[RowError(0, "id_number", same_person_message(g)) for g in clashes])
    return Imported(created, updated)


def policy_problems(exc: ValidationError) -> str:
    """A policy's validation errors, each naming its key (the API's 400 says the same)."""
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc']) or 'policy'}: {e['msg']}" for e in exc.errors()
    )

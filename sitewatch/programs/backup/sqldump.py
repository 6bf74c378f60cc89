"""The SQL store: every table as JSON lines, read in one transaction, restored by name.

A member ``sql/<table>.jsonl.gz`` starts with ``{"table": ..., "columns": [...]}``; each
further line is one row, an array in that column order. Values JSON has no type for are
written as text (bytes base64, date-times ISO 8601 with their zone, decimals as digits)
and read back by the type of the column they go into.

Columns are matched by name: a column the backup has that this version does not know is
refused (naming ``table.column``); a column this version has that the backup lacks gets
its default. That is the upgrade path: an older version's backup restores into a newer
one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import IO, Any

from sqlalchemy import (
    JSON,
    Connection,
    Date,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    Numeric,
    Table,
    column,
    inspect,
    select,
    text,
)

from sitewatch.core.db import Base
from sitewatch.domains.schema import create_tables
from sitewatch.programs.backup import BackupError
from sitewatch.programs.backup.archive import ArchiveReader, ArchiveWriter

BATCH_ROWS = 1000


def tables() -> list[Table]:
    """Every table of this version, parents before children. The modules that define
    them register them with ``Base.metadata`` when imported: those ``create_tables``
    imports, and ingest's acked batches (which ingest creates itself)."""
    from ingest import acked  # noqa: F401
    from sitewatch.domains import accounts, registry, snapshots  # noqa: F401
    from sitewatch.domains.alertrecords import store  # noqa: F401
    from sitewatch.domains.attendance import ledger, sitepolicy, workers  # noqa: F401

    return list(Base.metadata.sorted_tables)


def member_path(table: str) -> str:
    return f"sql/{table}.jsonl.gz"


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _decoder(col: Any) -> Any:
    t = col.type
    if isinstance(t, JSON):
        return None
    if isinstance(t, LargeBinary):
        return lambda v: base64.b64decode(v)
    if isinstance(t, DateTime):
        aware = bool(t.timezone)

        def dt(v: str) -> datetime:
            d = datetime.fromisoformat(v)
            # SQLite keeps no zone: the project writes UTC into zoned columns
            return d.replace(tzinfo=UTC) if aware and d.tzinfo is None else d

        return dt
    if isinstance(t, Date):
        return date.fromisoformat
    if isinstance(t, Numeric) and t.asdecimal:
        return lambda v: Decimal(str(v))
    return None


# -- backup --------------------------------------------------------------------------


def _snapshot(conn: Connection) -> None:
    """Every table read below sees the same moment."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")  # pysqlite starts no transaction for a SELECT
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")


def dump(engine: Engine, archive: ArchiveWriter) -> dict[str, int]:
    """Write every table of this version that the store has; rows per table."""
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        _snapshot(conn)
        present = set(inspect(conn).get_table_names())
        for table in tables():
            if table.name not in present:
                continue  # an older store: the table comes with this version, empty
            names = [c["name"] for c in inspect(conn).get_columns(table.name)]
            # known columns through the model (its types decode JSON, decimals, zones);
            # unknown ones as the driver gives them (the restore refuses them anyway)
            cols = [table.c[n] if n in table.c else column(n) for n in names]
            query = select(*cols).select_from(table)
            with archive.member(member_path(table.name)) as (out, member):
                out.write(json.dumps({"table": table.name, "columns": names}).encode() + b"\n")
                n = 0
                result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(
                    query
                )
                for row in result:
                    out.write(
                        json.dumps(
                            [_encode(v) for v in row], ensure_ascii=False, separators=(",", ":")
                        ).encode()
                        + b"\n"
                    )
                    n += 1
                member.counts = {"rows": n}
            counts[table.name] = n
        conn.rollback()
    return counts


# -- restore -------------------------------------------------------------------------


def _lines(f: IO[bytes]) -> Iterator[Any]:
    for line in f:
        if line.strip():
            yield json.loads(line)


def check(engine: Engine, archive: ArchiveReader) -> None:
    """Refuse before anything is written: a table of the backup this version does not
    have, a column it does not know, or a table that already has rows."""
    create_tables(engine)
    known = {t.name: t for t in tables()}
    for path in archive.paths("sql/"):
        with archive.open(path) as f:
            head = next(_lines(f))
        name = head["table"]
        table = known.get(name)
        if table is None:
            raise BackupError(
                f"table {name}: in the backup, unknown to this version "
                "(a backup of a newer version?)"
            )
        for col in head["columns"]:
            if col not in table.c:
                raise BackupError(
                    f"column {name}.{col}: in the backup, unknown to this "
                    "version (a backup of a newer version?)"
                )
    Base.metadata.create_all(engine, tables=list(known.values()))
    with engine.connect() as conn:
        for table in known.values():
            if conn.execute(select(text("1")).select_from(table).limit(1)).first():
                raise BackupError(
                    f"table {table.name} already has rows: restore into an "
                    "empty store (a new database or SQLite file)"
                )


def restore(engine: Engine, archive: ArchiveReader) -> dict[str, int]:
    """Insert every table's rows (parents first), all in one transaction."""
    check(engine, archive)
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        for table in tables():
            path = member_path(table.name)
            if path not in archive.members:
                continue
            with archive.open(path) as f:
                rows = _lines(f)
                names = next(rows)["columns"]
                decoders = [_decoder(table.c[n]) for n in names]
                batch: list[dict[str, Any]] = []
                n = 0
                for row in rows:
                    batch.append(
                        {
                            k: (d(v) if d is not None and v is not None else v)
                            for k, d, v in zip(names, decoders, row, strict=True)
                        }
                    )
                    if len(batch) >= BATCH_ROWS:
                        conn.execute(table.insert(), batch)
                        n += len(batch)
                        batch = []
                if batch:
                    conn.execute(table.insert(), batch)
                    n += len(batch)
            want = archive.members[path].get("rows")
            if want is not None and n != want:
                raise BackupError(f"{path}: {n} rows, the manifest says {want}")
            counts[table.name] = n
        if conn.dialect.name == "postgresql":
            _reset_sequences(conn)
    return counts


def _reset_sequences(conn: Connection) -> None:
    """Rows came with their ids: the next id a sequence gives must be after them."""
    for table in tables():
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not isinstance(pk[0].type, Integer):
            continue
        if pk[0].autoincrement not in (True, "auto"):
            continue
        col = pk[0].name
        conn.execute(
            text(
                f'SELECT setval(pg_get_serial_sequence(:t, :c), COALESCE(MAX("{col}"), 1), '
                f'MAX("{col}") IS NOT NULL) FROM "{table.name}"'
            ),
            {"t": table.name, "c": col},
        )

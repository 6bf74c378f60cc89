"""A whole backup or restore: the three stores and the operator's files, in one archive.

The stores are the API's (``ApiSettings``: ``database_url``, ``influx``,
``snapshots_dir``), the same the other services are given. A restore checks the whole
archive first (every member's SHA-256), then refuses any store that is not empty, and
only then writes: the SQL store in one transaction, then the snapshots, InfluxDB and the
operator's files.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sitewatch import __version__
from sitewatch.core.db import make_engine
from sitewatch.core.influx import InfluxClient, InfluxError, InfluxSettings
from sitewatch.programs.backup import BackupError, files, influxdump, sqldump
from sitewatch.programs.backup.archive import ArchiveReader, ArchiveWriter

if TYPE_CHECKING:
    from api.config import ApiSettings

T = TypeVar("T")


@dataclass
class Summary:
    rows: dict[str, int] = field(default_factory=dict)
    points: dict[str, int] = field(default_factory=dict)
    snapshots: int = 0
    config: list[str] = field(default_factory=list)
    sql_s: float = 0.0
    influx_s: float = 0.0
    files_s: float = 0.0

    def lines(self) -> list[str]:
        rows, points = sum(self.rows.values()), sum(self.points.values())
        out = [f"SQL store: {rows} rows in {len(self.rows)} tables ({self.sql_s:.1f} s)"]
        out += [f"  {t}: {n}" for t, n in self.rows.items() if n]
        out.append(
            f"InfluxDB: {points} points in {len(self.points)} measurements ({self.influx_s:.1f} s)"
        )
        out += [f"  {m}: {n}" for m, n in self.points.items()]
        out.append(f"snapshots: {self.snapshots} files")
        if self.config:
            out.append(f"operator files: {', '.join(self.config)}")
        return out


def _influx(settings: InfluxSettings, step: Callable[[InfluxClient], Awaitable[T]]) -> T:
    """One step against InfluxDB, its errors as a BackupError naming the server."""

    async def run() -> T:
        async with InfluxClient(settings) as client:
            return await step(client)

    try:
        return asyncio.run(run())
    except InfluxError as exc:
        raise BackupError(f"InfluxDB {settings.url}: {exc}") from None


def create(settings: ApiSettings, out: Path, include: list[Path]) -> Summary:
    if out.exists():
        raise BackupError(f"{out} exists: give a new file name")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent}: no such folder")
    engine = make_engine(settings.database_url)
    archive = ArchiveWriter(
        out,
        {
            "sitewatch_version": __version__,
            "sql_dialect": engine.dialect.name,
            "influx_database": settings.influx.database,
        },
    )
    summary = Summary()
    try:
        t = time.perf_counter()
        summary.config = files.dump_config(include, archive)
        summary.rows = sqldump.dump(engine, archive)
        summary.sql_s = time.perf_counter() - t
        t = time.perf_counter()
        summary.points = _influx(settings.influx, lambda client: influxdump.dump(client, archive))
        summary.influx_s = time.perf_counter() - t
        t = time.perf_counter()
        summary.snapshots = files.dump_snapshots(settings.snapshots_dir, archive)
        summary.files_s = time.perf_counter() - t
        archive.close()
    except BaseException:
        archive.abort()
        raise
    finally:
        engine.dispose()
    return summary


def contents(archive: ArchiveReader) -> Summary:
    """What the manifest says is inside."""
    s = Summary()
    for path, m in archive.members.items():
        name = path.split("/", 1)[1]
        if path.startswith("sql/"):
            s.rows[name.removesuffix(".jsonl.gz")] = int(m.get("rows", 0))
        elif path.startswith("influx/"):
            from urllib.parse import unquote

            s.points[unquote(name.removesuffix(".lp.gz"))] = int(m.get("points", 0))
        elif path.startswith(files.SNAPSHOTS):
            s.snapshots += 1
        elif path.startswith(files.CONFIG):
            s.config.append(name)
    return s


def restore(settings: ApiSettings, source: Path, config_out: Path | None) -> Summary:
    summary = Summary()
    with ArchiveReader(source) as archive:
        archive.verify()
        engine = make_engine(settings.database_url)
        try:
            # every refusal before anything is written
            sqldump.check(engine, archive)
            _influx(settings.influx, influxdump.check)
            files.check_snapshots(settings.snapshots_dir, archive)
            files.check_config(config_out, archive)
            t = time.perf_counter()
            summary.rows = sqldump.restore(engine, archive)
            summary.sql_s = time.perf_counter() - t
            t = time.perf_counter()
            summary.snapshots = files.restore_snapshots(settings.snapshots_dir, archive)
            summary.files_s = time.perf_counter() - t
            t = time.perf_counter()
            summary.points = _influx(
                settings.influx, lambda client: influxdump.restore(client, archive)
            )
            summary.influx_s = time.perf_counter() - t
        finally:
            engine.dispose()
        if config_out is not None:
            summary.config = [str(p) for p in files.restore_config(config_out, archive)]
        else:
            summary.config = [
                f"{p} (not written: no --config-out)" for p in archive.paths(files.CONFIG)
            ]
    return summary

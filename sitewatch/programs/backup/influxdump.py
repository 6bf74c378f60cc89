"""InfluxDB's readings as line protocol, over the endpoints 1.x, 2.x and 3.x all serve.

Per measurement: its field types (``SHOW FIELD KEYS``: an integer field must be written
back with ``i``, or a float one would turn into an integer one) and tag keys, then the
points in time windows (``SELECT *``, ms precision, what the project writes), each window
sized so that it holds about ``WINDOW_POINTS`` points: memory stays bounded however long
the history. A member ``influx/<measurement>.lp.gz`` holds its lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import quote, unquote

from sitewatch.core.influx import InfluxClient, InfluxError
from sitewatch.core.lineprotocol import LineProtocolError, format_fields, format_series
from sitewatch.programs.backup import BackupError
from sitewatch.programs.backup.archive import ArchiveReader, ArchiveWriter

log = logging.getLogger("sitewatch.backup.influxdump")

WINDOW_POINTS = 20_000
FIRST_WINDOW_MS = 60_000
WRITE_LINES = 5_000

Converter = Callable[[Any], float | int | bool | str]
TYPES: dict[str, Converter] = {"float": float, "integer": int, "boolean": bool, "string": str}


def ident(name: str) -> str:
    """An InfluxQL identifier, quoted."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _source(client: InfluxClient, measurement: str) -> str:
    rp = client.settings.retention_policy
    return f"{ident(rp)}.{ident(measurement)}" if rp else ident(measurement)


async def _values(client: InfluxClient, q: str) -> list[list[Any]]:
    results = await client.query(q)
    out: list[list[Any]] = []
    for s in results[0].get("series", []) if results else []:
        out.extend(s.get("values", []))
    return out


async def measurements(client: InfluxClient) -> list[str]:
    return sorted(str(v[0]) for v in await _values(client, "SHOW MEASUREMENTS"))


class _Partial(Exception):
    """InfluxDB cut the answer short (its ``max-row-limit``): ask for less."""


async def _rows(client: InfluxClient, q: str) -> tuple[list[str], list[list[Any]]]:
    results = await client.query(q)
    if any(r.get("partial") or any(s.get("partial") for s in r.get("series", [])) for r in results):
        raise _Partial(q)
    columns: list[str] = []
    rows: list[list[Any]] = []
    for s in results[0].get("series", []) if results else []:
        if columns and s["columns"] != columns:
            raise BackupError(f"unexpected answer to {q}: series with differing columns")
        columns = s["columns"]
        rows.extend(s.get("values", []))
    return columns, rows


def member_path(measurement: str) -> str:
    return f"influx/{quote(measurement, safe='')}.lp.gz"


async def _dump_measurement(client: InfluxClient, m: str, out: IO[bytes]) -> int:
    src = _source(client, m)
    field_types: dict[str, str] = {}
    for key, ftype in await _values(client, f"SHOW FIELD KEYS FROM {src}"):
        if key in field_types and field_types[key] != ftype:
            raise BackupError(
                f"measurement {m}: field {key} is both {field_types[key]} and "
                f"{ftype} (in different shards); fix it before a backup"
            )
        field_types[key] = ftype
    tag_keys = {str(v[0]) for v in await _values(client, f"SHOW TAG KEYS FROM {src}")}
    both = tag_keys & field_types.keys()
    if both:
        raise BackupError(f"measurement {m}: {sorted(both)[0]} is both a tag and a field")
    convert = {k: TYPES[t] for k, t in field_types.items()}
    _, first = await _rows(client, f"SELECT * FROM {src} ORDER BY time ASC LIMIT 1")
    _, last = await _rows(client, f"SELECT * FROM {src} ORDER BY time DESC LIMIT 1")
    if not first:
        return 0
    start, end = int(first[0][0]), int(last[0][0]) + 1
    window, points = FIRST_WINDOW_MS, 0
    #: each series' measurement and tags, formatted once
    series: dict[tuple[tuple[str, str], ...], str] = {}
    while start < end:
        stop = min(start + window, end)
        try:
            columns, rows = await _rows(
                client, f"SELECT * FROM {src} WHERE time >= {start}ms AND time < {stop}ms"
            )
        except _Partial:
            if window == 1:
                raise BackupError(
                    f"measurement {m}: InfluxDB returns only part of the "
                    f"points at time {start}; raise its max-row-limit"
                ) from None
            window = max(1, window // 8)
            continue
        lines = []
        for row in rows:
            tags: list[tuple[str, str]] = []
            fields: dict[str, float | int | bool | str] = {}
            for col, v in zip(columns[1:], row[1:], strict=True):
                if v is None:
                    continue
                if col in convert:
                    fields[col] = convert[col](v)
                elif col in tag_keys and v != "":
                    tags.append((col, str(v)))
            try:
                key = tuple(tags)
                head = series.get(key)
                if head is None:
                    head = series[key] = format_series(m, dict(tags))
                lines.append(f"{head} {format_fields(fields)} {int(row[0])}")
            except LineProtocolError as exc:
                raise BackupError(f"measurement {m}, time {row[0]}: {exc}") from None
        if lines:
            out.write(("\n".join(lines) + "\n").encode())
        points += len(lines)
        start = stop
        # about WINDOW_POINTS a window: denser data, shorter windows
        if len(rows) > WINDOW_POINTS:
            window = max(1, window // 2)
        elif len(rows) < WINDOW_POINTS // 4:
            window *= 2
    return points


async def dump(client: InfluxClient, archive: ArchiveWriter) -> dict[str, int]:
    """Every measurement of the database; points per measurement."""
    counts: dict[str, int] = {}
    for m in await measurements(client):
        with archive.member(member_path(m)) as (out, member):
            n = await _dump_measurement(client, m, out)
            member.counts = {"points": n}
        counts[m] = n
    return counts


async def check(client: InfluxClient) -> None:
    """Refuse a database that already holds readings."""
    try:
        await client.ensure_database()
    except InfluxError as exc:
        # InfluxDB 2.x/3.x have no CREATE DATABASE: the bucket is made at their setup
        log.info("CREATE DATABASE refused (%s); expecting the database to exist", exc)
    found = await measurements(client)
    if found:
        raise BackupError(
            f"InfluxDB database {client.settings.database} is not empty "
            f"(measurement {found[0]}): restore into a new database"
        )


async def restore(client: InfluxClient, archive: ArchiveReader) -> dict[str, int]:
    """Write every member's lines, ``WRITE_LINES`` a request."""
    counts: dict[str, int] = {}
    for path in sorted(archive.paths("influx/")):
        n = 0
        batch: list[bytes] = []
        with archive.open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                batch.append(line if line.endswith(b"\n") else line + b"\n")
                if len(batch) >= WRITE_LINES:
                    await client.write(b"".join(batch))
                    n += len(batch)
                    batch = []
        if batch:
            await client.write(b"".join(batch))
            n += len(batch)
        want = archive.members[path].get("points")
        if want is not None and n != want:
            raise BackupError(f"{path}: {n} points, the manifest says {want}")
        counts[unquote(path.removeprefix("influx/").removesuffix(".lp.gz"))] = n
    return counts

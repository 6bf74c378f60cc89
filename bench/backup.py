"""bench/backup: points/s and rows/s of ``sitewatch backup create`` and ``restore``.

What is measured: a real InfluxDB (Debian's 1.x, started here on a free port) holding
``--points`` readings in four measurements (float, integer, boolean and string fields,
three tags, one point a second per device, as the project writes them), and a SQLite
store holding ``--rows`` attendance-ledger-sized rows (dead letters with a 200-byte
payload, the widest rows the store has). ``create`` writes the archive; ``restore`` puts
it into a new InfluxDB database and a new SQLite file. The InfluxDB and SQL parts are
timed separately (the run's own timings), so the figures are points/s and rows/s.

Baseline, in the same run on the same server: the plain InfluxDB work a backup cannot
avoid - reading every point with one ``SELECT *`` per measurement, and writing the same
line protocol back in 5,000-line requests (what ingest does) into another database.
Printed: the rates and the ratio backup/baseline of each direction.

    .venv/bin/python bench/backup.py                # 500,000 points, 100,000 rows
    .venv/bin/python bench/backup.py --quick        # smoke run: 20,000 points, 2,000 rows
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from api.config import ApiSettings
from sitewatch.core.db import make_engine
from sitewatch.core.influx import InfluxClient, InfluxSettings
from sitewatch.core.lineprotocol import format_line
from sitewatch.domains.deadletters import DeadLetter
from sitewatch.domains.schema import create_tables
from sitewatch.programs.backup.run import create, restore
from sitewatch.programs.localstack import InfluxServer

MEASUREMENTS = 4
DEVICES = 50


def lines(points: int, start_ms: int) -> list[str]:
    out = []
    per = points // (MEASUREMENTS * DEVICES)
    for m in range(MEASUREMENTS):
        for d in range(DEVICES):
            tags = {"site": f"SITE{d % 5:02d}", "gateway": "GW01", "device": f"D{d:03d}"}
            for i in range(per):
                fields: dict[str, float | int | bool | str] = {
                    "value": 20.0 + (i % 100) / 10,
                    "seq": i + 1,
                    "ok": i % 7 != 0,
                    "state": "normal" if i % 11 else "warning",
                }
                out.append(format_line(f"bench_{m}", tags, fields, start_ms + i * 1000))
    return out


async def load(url: str, database: str, body: list[str]) -> float:
    async with InfluxClient(InfluxSettings(url=url, database=database)) as c:
        await c.ensure_database()
        t = time.perf_counter()
        for i in range(0, len(body), 5000):
            await c.write(("\n".join(body[i : i + 5000]) + "\n").encode())
        return time.perf_counter() - t


async def read_all(url: str, database: str) -> tuple[float, int]:
    async with InfluxClient(InfluxSettings(url=url, database=database)) as c:
        t = time.perf_counter()
        n = 0
        for m in range(MEASUREMENTS):
            n += len(await c.series(f'SELECT * FROM "bench_{m}"'))
        return time.perf_counter() - t, n


def fill_sql(url: str, rows: int) -> None:
    engine = make_engine(url)
    create_tables(engine)
    when = datetime(2026, 5, 1, tzinfo=UTC)
    with engine.begin() as c:
        for i in range(0, rows, 5000):
            c.execute(
                DeadLetter.__table__.insert(),
                [
                    {
                        "received_at": when,
                        "topic": "sitewatch/v1/SITE01/GW01/telemetry",
                        "site": "SITE01",
                        "gateway": "GW01",
                        "batch": j,
                        "device": "TC01",
                        "seq": j,
                        "reason": "schema",
                        "detail": "load_pct: not a number",
                        "payload": bytes(200),
                    }
                    for j in range(i, min(i + 5000, rows))
                ],
            )
    engine.dispose()


def settings(url: str, db: str, database: str, snapshots: Path) -> ApiSettings:
    return ApiSettings(
        environment="development",
        database_url=db,
        snapshots_dir=snapshots,
        influx=InfluxSettings(url=url, database=database),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=500_000)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.points, args.rows = 20_000, 2_000
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        influx = InfluxServer(tmp / "influxdb")
        influx.start()
        try:
            body = lines(args.points, int(time.time() * 1000) - 86_400_000 * 3)
            points = len(body)
            asyncio.run(load(influx.url, "source", body))
            fill_sql(f"sqlite:///{tmp / 'a.db'}", args.rows)
            base_read, n = asyncio.run(read_all(influx.url, "source"))
            assert n == points, (n, points)
            base_write = asyncio.run(load(influx.url, "baseline", body))
            del body

            archive = tmp / "b.tar"
            made = create(
                settings(influx.url, f"sqlite:///{tmp / 'a.db'}", "source", tmp / "snap-a"),
                archive,
                [],
            )
            back = restore(
                settings(influx.url, f"sqlite:///{tmp / 'b.db'}", "restored", tmp / "snap-b"),
                archive,
                None,
            )
            assert sum(back.points.values()) == points
            assert back.rows["dead_letters"] == args.rows
            archive_bytes = archive.stat().st_size
        finally:
            influx.close()
    print(
        f"{points:,} points in {MEASUREMENTS} measurements, {args.rows:,} SQL rows; "
        f"archive {archive_bytes / 1e6:.1f} MB"
    )
    print(
        f"create:  InfluxDB {points / made.influx_s:,.0f} points/s "
        f"(baseline SELECT *: {points / base_read:,.0f}/s, ratio "
        f"{base_read / made.influx_s:.2f}); SQL {args.rows / made.sql_s:,.0f} rows/s"
    )
    print(
        f"restore: InfluxDB {points / back.influx_s:,.0f} points/s "
        f"(baseline /write: {points / base_write:,.0f}/s, ratio "
        f"{base_write / back.influx_s:.2f}); SQL {args.rows / back.sql_s:,.0f} rows/s"
    )


if __name__ == "__main__":
    main()

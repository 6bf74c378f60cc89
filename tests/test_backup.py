"""Backups: the demo's stores, backed up and restored into a fresh state folder, hold the
same alerts, ledger entries, readings and snapshots; and into PostgreSQL (the SQLite to
PostgreSQL move). A damaged archive, non-empty stores and a column of a newer version
are refused, naming what; a column of a newer version than the backup gets its default."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.orm import Session

from sitewatch.core.db import make_engine
from sitewatch.core.influx import InfluxClient, InfluxSettings
from sitewatch.domains.alertrecords.store import AlertStore
from sitewatch.domains.attendance.ledger import Ledger
from sitewatch.domains.schema import create_tables
from sitewatch.domains.snapshots import SnapshotStore
from sitewatch.programs.backup import BackupError, sqldump
from sitewatch.programs.backup.archive import ArchiveReader, ArchiveWriter
from sitewatch.programs.cli import main
from sitewatch.programs.localstack import InfluxServer, PostgresServer, free_port

#: a 1x1 PNG
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def backup(*argv: str) -> int:
    """``sitewatch backup …``, as an operator runs it."""
    return main(["backup", *argv])


def api_yaml(path: Path, *, db: str, influx: str, database: str, snapshots: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "environment": "development",
                "database_url": db,
                "snapshots_dir": str(snapshots),
                "influx": {"url": influx, "database": database},
            }
        )
    )
    return path


def rows_of(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows in key order; date-times in UTC (SQLite keeps no zone)."""

    def norm(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
        return v

    out = {}
    with engine.connect() as c:
        for t in sqldump.tables():
            q = select(t).order_by(*t.primary_key.columns)
            out[t.name] = [tuple(norm(v) for v in r) for r in c.execute(q)]
    return out


async def readings(url: str, database: str) -> dict[str, Any]:
    """Every point of every measurement, and the field types."""
    async with InfluxClient(InfluxSettings(url=url, database=database)) as client:
        out: dict[str, Any] = {}
        for (m,) in (await client.query("SHOW MEASUREMENTS"))[0]["series"][0]["values"]:
            types = (await client.query(f'SHOW FIELD KEYS FROM "{m}"'))[0]["series"][0]
            points = await client.series(f'SELECT * FROM "{m}"')
            out[m] = {
                "types": sorted(map(tuple, types["values"])),
                "points": sorted(sorted((k, repr(v)) for k, v in p.items()) for p in points),
            }
        return out


def files_of(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def chains_intact(url: str) -> None:
    report = AlertStore(url).verify()
    assert report.problems == [] and report.entries > 0, report
    engine = make_engine(url)
    with Session(engine) as s:
        ledger = Ledger(s)
        assert ledger.sites()
        for site in ledger.sites():
            r = ledger.verify(site)
            assert r.ok and r.entries > 0, r
    engine.dispose()


def count(url: str, table: str) -> int:
    engine = make_engine(url)
    with engine.connect() as c:
        n = int(c.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
    engine.dispose()
    return n


def run_demo_until_data(state: Path) -> None:
    """``sitewatch demo`` (one site) until it has open alerts and gate events in the
    ledger, then Ctrl-C: the demo stops every writer before it stops InfluxDB."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sitewatch.programs.cli",
            "demo",
            "--state-dir",
            str(state),
            "--sites",
            "1",
            "--api-port",
            str(free_port()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = ""
        deadline = time.monotonic() + 90
        while "Press Ctrl-C" not in banner and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            banner += line
        assert "Press Ctrl-C" in banner, banner
        url = f"sqlite:///{state / 'sitewatch.db'}"
        deadline = time.monotonic() + 180
        have = (0, 0)
        while time.monotonic() < deadline:
            have = (count(url, "alerts WHERE state != 'resolved'"), count(url, "attendance_ledger"))
            if all(have):
                break
            time.sleep(2)
        assert all(have), f"open alerts, ledger entries: {have}"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_backup_of_the_demo_restores_into_a_fresh_state_folder(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    run_demo_until_data(a)
    a_db = f"sqlite:///{a / 'sitewatch.db'}"
    if not files_of(a / "snapshots"):  # no camera snapshot came in the short run
        SnapshotStore(a / "snapshots").put(PNG)
    # the stores at rest: A's InfluxDB again, on its data folder
    influx_a = InfluxServer(a / "influxdb")
    influx_b = InfluxServer(b / "influxdb")
    influx_a.start()
    influx_b.start()
    try:
        cfg_a = api_yaml(
            tmp_path / "a.yaml",
            db=a_db,
            influx=influx_a.url,
            database="sitewatch",
            snapshots=a / "snapshots",
        )
        archive = tmp_path / "backups" / "site.tar"
        archive.parent.mkdir()
        t = time.perf_counter()
        assert (
            backup(
                "create",
                "--out",
                str(archive),
                "--config",
                str(cfg_a),
                "--include",
                str(a / "api.yaml"),
                "--include",
                str(a / "broker" / "passwd"),
            )
            == 0
        )
        create_s = time.perf_counter() - t
        assert not list(archive.parent.glob("*.partial"))
        assert archive.stat().st_mode & 0o777 == 0o600
        with pytest.raises(BackupError, match=r"both named api\.yaml"):
            from sitewatch.programs.backup.files import dump_config

            dump_config(
                [a / "api.yaml", tmp_path / "a.yaml", a / "api.yaml"],
                ArchiveWriter(tmp_path / "x.tar", {}),
            )
        assert backup("verify", str(archive)) == 0

        b.mkdir(exist_ok=True)
        b_db = f"sqlite:///{b / 'sitewatch.db'}"
        cfg_b = api_yaml(
            tmp_path / "b.yaml",
            db=b_db,
            influx=influx_b.url,
            database="sitewatch",
            snapshots=b / "snapshots",
        )
        t = time.perf_counter()
        assert (
            backup(
                "restore", str(archive), "--config", str(cfg_b), "--config-out", str(b / "config")
            )
            == 0
        )
        restore_s = time.perf_counter() - t

        # the same alerts with their whole history, ledger, registry, accounts...
        a_engine, b_engine = make_engine(a_db), make_engine(b_db)
        a_rows = rows_of(a_engine)
        assert a_rows["alerts"] and a_rows["alert_history"] and a_rows["attendance_ledger"]
        assert a_rows["gateway_mqtt"] or a_rows["gateways"]
        b_rows = rows_of(b_engine)
        for name, want in a_rows.items():
            assert b_rows[name] == want, name
        chains_intact(b_db)
        # the same readings, field types kept
        a_points = asyncio.run(readings(influx_a.url, "sitewatch"))
        assert sum(len(m["points"]) for m in a_points.values()) > 100
        assert asyncio.run(readings(influx_b.url, "sitewatch")) == a_points
        assert files_of(b / "snapshots") == files_of(a / "snapshots")
        for name, src in (("api.yaml", a / "api.yaml"), ("passwd", a / "broker" / "passwd")):
            assert (b / "config" / name).read_bytes() == src.read_bytes()
            assert (b / "config" / name).stat().st_mode & 0o777 == 0o600

        # again into the same stores: refused, naming what holds data
        assert backup("restore", str(archive), "--config", str(cfg_b)) == 1
        from api.config import ApiSettings
        from sitewatch.core.settings import load_settings
        from sitewatch.programs.backup.run import restore

        with pytest.raises(BackupError, match=r"table \w+ already has rows"):
            restore(load_settings(ApiSettings, cfg_b), archive, None)
        fresh_sql = api_yaml(
            tmp_path / "c.yaml",
            db=f"sqlite:///{tmp_path / 'c.db'}",
            influx=influx_b.url,
            database="sitewatch",
            snapshots=tmp_path / "c-snapshots",
        )
        with pytest.raises(BackupError, match=r"not empty \(measurement \w+\)"):
            restore(load_settings(ApiSettings, fresh_sql), archive, None)
        assert count(f"sqlite:///{tmp_path / 'c.db'}", "alerts") == 0

        # the same archive into PostgreSQL: the move from SQLite
        admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text('CREATE DATABASE "backup_restore"'))
        admin.dispose()
        pg_url = postgres.url.rsplit("/", 1)[0] + "/backup_restore"
        cfg_pg = api_yaml(
            tmp_path / "pg.yaml",
            db=pg_url,
            influx=influx_b.url,
            database="from_sqlite",
            snapshots=tmp_path / "pg-snapshots",
        )
        assert backup("restore", str(archive), "--config", str(cfg_pg)) == 0
        pg_engine = make_engine(pg_url)
        pg_rows = rows_of(pg_engine)
        for name, want in a_rows.items():
            assert pg_rows[name] == want, name
        chains_intact(pg_url)
        # the sequences go on after the restored ids
        outbox = next(t for t in sqldump.tables() if t.name == "alert_outbox")
        with pg_engine.begin() as c:
            new_id = c.execute(
                insert(outbox).values(target="mqtt", payload=b"{}").returning(outbox.c.id)
            ).scalar_one()
        assert new_id > max([r[0] for r in a_rows["alert_outbox"]], default=0)
        # and a backup of PostgreSQL back into SQLite
        pg_archive = tmp_path / "backups" / "from-pg.tar"
        assert backup("create", "--out", str(pg_archive), "--config", str(cfg_pg)) == 0
        c_db = f"sqlite:///{tmp_path / 'from-pg.db'}"
        cfg_c = api_yaml(
            tmp_path / "from-pg.yaml",
            db=c_db,
            influx=influx_b.url,
            database="from_pg",
            snapshots=tmp_path / "from-pg-snapshots",
        )
        assert backup("restore", str(pg_archive), "--config", str(cfg_c)) == 0
        c_engine = make_engine(c_db)
        c_rows = rows_of(c_engine)
        c_engine.dispose()
        outbox_rows = c_rows.pop("alert_outbox")  # with the row inserted above
        assert outbox_rows[:-1] == a_rows["alert_outbox"] and outbox_rows[-1][0] == new_id
        for name, want in a_rows.items():
            if name != "alert_outbox":
                assert c_rows[name] == want, name
        chains_intact(c_db)
        assert asyncio.run(readings(influx_b.url, "from_pg")) == a_points
        pg_engine.dispose()
        a_engine.dispose()
        b_engine.dispose()

        points = sum(len(m["points"]) for m in a_points.values())
        rows = sum(len(r) for r in a_rows.values())
        print(
            f"\nbackup of the demo: {rows} rows, {points} points, "
            f"{archive.stat().st_size} bytes; create {create_s:.2f} s, "
            f"restore {restore_s:.2f} s"
        )
    finally:
        influx_a.close()
        influx_b.close()


# -- without servers ---------------------------------------------------------------


def test_a_damaged_member_is_refused_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "b.tar"
    w = ArchiveWriter(out, {})
    with w.member("sql/users.jsonl.gz") as (f, m):
        f.write(b'{"table": "users", "columns": []}\n' * 1000)
        m.counts = {"rows": 0}
    (tmp_path / "x.png").write_bytes(PNG)
    w.add_file("snapshots/ab/x.png", tmp_path / "x.png")
    w.close()
    with ArchiveReader(out) as r:
        r.verify()
        offset = r._tar.getmember("snapshots/ab/x.png").offset_data
    data = bytearray(out.read_bytes())
    data[offset + 20] ^= 0xFF
    out.write_bytes(bytes(data))
    with (
        ArchiveReader(out) as r,
        pytest.raises(BackupError, match=r"member snapshots/ab/x\.png is damaged"),
    ):
        r.verify()
    assert backup("verify", str(out)) == 1
    # a restore checks the archive before it touches any store
    cfg = api_yaml(
        tmp_path / "api.yaml",
        db=f"sqlite:///{tmp_path / 'new.db'}",
        influx="http://127.0.0.1:9",
        database="sitewatch",
        snapshots=tmp_path / "snapshots",
    )
    assert backup("restore", str(out), "--config", str(cfg)) == 1
    assert not (tmp_path / "new.db").exists() and not (tmp_path / "snapshots").exists()


def test_every_table_of_the_store_is_backed_up() -> None:
    """In a fresh process (nothing else imported): the tables a backup covers are every
    table ``create_tables`` makes, and ingest's acked batches."""
    code = (
        "from sqlalchemy import create_engine\n"
        "from sitewatch.programs.backup.sqldump import tables\n"
        "covered = {t.name for t in tables()}\n"
        "from sitewatch.core.db import Base\n"
        "from sitewatch.domains.schema import create_tables\n"
        "create_tables(create_engine('sqlite://'))\n"
        "assert set(Base.metadata.tables) == covered, set(Base.metadata.tables) ^ covered\n"
        "print(sorted(covered))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "acked_batches" in r.stdout and "api_keys" in r.stdout


def test_an_interrupted_backup_leaves_no_archive(tmp_path: Path) -> None:
    out = tmp_path / "b.tar"
    w = ArchiveWriter(out, {})
    with w.member("sql/users.jsonl.gz") as (f, _):
        f.write(b"{}\n")
    w.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BackupError, match="not a SiteWatch backup"):
        ArchiveReader(tmp_path / "missing.tar")


def _old_store(tmp_path: Path, alter: str) -> Path:
    """A store with one worker, its table altered (as another version's would be)."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    create_tables(engine)
    with engine.begin() as c:
        c.execute(text(alter))
        cols = [r[1] for r in c.execute(text("PRAGMA table_info(workers)"))]
        values = {
            "site": "S1",
            "id": "W1",
            "name": "Zhang San",
            "team": "rebar",
            "trade": "rebar",
            "team_lead": 0,
            "day_rate": "350.00",
            "active": 1,
            "subcontractor": "",
            "id_hash": "h" * 64,
            "updated_at": 0,
            "shoe_size": 42,
        }
        c.execute(
            text(
                f"INSERT INTO workers ({','.join(cols)}) VALUES ({','.join(':' + k for k in cols)})"
            ),
            {k: values.get(k) for k in cols},
        )
    out = tmp_path / "old.tar"
    w = ArchiveWriter(out, {})
    sqldump.dump(engine, w)
    w.close()
    engine.dispose()
    return out


def test_an_older_backup_restores_with_the_new_columns_defaults(tmp_path: Path) -> None:
    """The upgrade path: a backup lacking a column this version has."""
    archive = _old_store(tmp_path, "ALTER TABLE workers DROP COLUMN active")
    new = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    with ArchiveReader(archive) as r:
        assert sqldump.restore(new, r)["workers"] == 1
    with new.connect() as c:
        assert c.execute(text("SELECT id, active FROM workers")).all() == [("W1", 1)]
    new.dispose()


def test_a_column_this_version_does_not_know_is_refused_naming_it(tmp_path: Path) -> None:
    archive = _old_store(tmp_path, "ALTER TABLE workers ADD COLUMN shoe_size INTEGER")
    new = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    with (
        ArchiveReader(archive) as r,
        pytest.raises(BackupError, match=r"column workers\.shoe_size"),
    ):
        sqldump.restore(new, r)
    with new.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM workers")).scalar_one() == 0
    new.dispose()


def test_typed_values_survive(tmp_path: Path) -> None:
    """bytes, zoned date-times, decimals and JSON come back as they were."""
    from sitewatch.domains.deadletters import DeadLetter

    src = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    create_tables(src)
    when = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
    with Session(src) as s:
        s.add(
            DeadLetter(
                received_at=when,
                topic="t",
                reason="r",
                detail="",
                payload=b"\x00\xff\x10",
                site="S1",
                gateway="G1",
            )
        )
        s.commit()
    out = tmp_path / "b.tar"
    w = ArchiveWriter(out, {})
    sqldump.dump(src, w)
    w.close()
    dst = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    with ArchiveReader(out) as r:
        sqldump.restore(dst, r)
    assert rows_of(dst)["dead_letters"] == rows_of(src)["dead_letters"]
    with Session(dst) as s:
        row = s.scalars(select(DeadLetter)).one()
        assert row.payload == b"\x00\xff\x10"
    src.dispose()
    dst.dispose()
    assert tarfile.is_tarfile(out)

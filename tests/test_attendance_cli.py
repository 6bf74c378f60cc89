"""``sitewatch attendance …`` in-process against a SQLite file, as a site office uses it:
import the worker list, look at who came and their hours, print and save the day-labour
sheet, set the policy, verify the ledger."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from sitewatch.core import contract
from sitewatch.core.db import make_engine
from sitewatch.domains.attendance import idcard
from sitewatch.domains.attendance.ledger import Ledger
from sitewatch.domains.attendance.sitepolicy import get_policy
from sitewatch.domains.registry import Registry, SiteRow
from sitewatch.domains.schema import create_tables
from sitewatch.programs.attendancecmd.registry import ID_KEY_ENV
from sitewatch.programs.cli import main

KEY = "c" * 40
ZHANG = "410225198503121236"  # a valid number (GB 11643 check character 6)
LOCAL = timezone(timedelta(hours=8))
DAY = date(2026, 11, 2)
WORKERS = (
    "工号,姓名,班组,日工资,班组长,身份证号\n"
    f"W1,张三,rebar,300,是,{ZHANG}\n"
    "W2,李四,rebar,250.50,否,\n"
)


def at(hhmm: str, day: date = DAY) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    return int(datetime(day.year, day.month, day.day, h, m, tzinfo=LOCAL).timestamp() * 1000)


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A store with site S1 and a worker list file; no ID key in the environment."""
    monkeypatch.delenv(ID_KEY_ENV, raising=False)
    url = f"sqlite:///{tmp_path / 'sitewatch.db'}"
    engine = make_engine(url)
    create_tables(engine)
    with Session(engine) as s:
        Registry(s).add_site(
            SiteRow(
                id="S1",
                name="Bridge",
                county="Lankao",
                project_type="bridge",
                latitude=34.8,
                longitude=114.8,
                created_at=0,
            )
        )
        s.commit()
    engine.dispose()
    (tmp_path / "workers.csv").write_text(WORKERS, encoding="utf-8")
    return url


def run(url: str, *args: str) -> int:
    return main(["attendance", args[0], "--database-url", url, *args[1:]])


@contextmanager
def session(url: str) -> Iterator[Session]:
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            yield s
    finally:
        engine.dispose()


def append(url: str, *items: tuple[str, str, str]) -> None:
    with session(url) as s:
        Ledger(s).append(
            "S1",
            "GW1",
            [
                contract.AttendanceItem(
                    device="FACE1", ts=at(hhmm), seq=i, worker=w, direction=d, method="face"
                )  # type: ignore[arg-type]
                for i, (w, hhmm, d) in enumerate(items, start=1)
            ],
            at("23:00"),
        )
        s.commit()


def test_import_needs_a_key_and_reads_the_list(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "workers.csv")
    assert run(db, "import", path, "--site", "S1") == 2
    assert ID_KEY_ENV in capsys.readouterr().err
    (tmp_path / "key").write_text("short\n")
    assert run(db, "import", path, "--site", "S1", "--id-key-file", str(tmp_path / "key")) == 2
    assert "at least 32" in capsys.readouterr().err
    monkeypatch.setenv(ID_KEY_ENV, KEY)
    assert run(db, "import", path, "--site", "NOPE") == 1
    assert "no site NOPE" in capsys.readouterr().err
    assert run(db, "import", path, "--site", "S1") == 0
    assert capsys.readouterr().out == "S1: 2 workers added, 0 updated\n"
    with session(db) as s:
        from sitewatch.domains.attendance.workers import Workers

        row = Workers(s).get("S1", "W1")
        assert row is not None and row.id_hash == idcard.keyed_hash(ZHANG, KEY)
    # rows with errors: each printed, nothing imported, exit 1
    bad = tmp_path / "bad.csv"
    bad.write_text(WORKERS.replace("250.50", "lots") + "W3,王五,rebar,280,否,\n", encoding="utf-8")
    assert run(db, "import", str(bad), "--site", "S1") == 1
    err = capsys.readouterr().err
    assert "row 3, 日工资: day_rate 'lots' is not an amount" in err
    assert "1 error(s); nothing imported" in err
    assert ZHANG not in err
    (tmp_path / "w.txt").write_text("x")
    assert run(db, "import", str(tmp_path / "w.txt"), "--site", "S1") == 2
    monkeypatch.delenv(ID_KEY_ENV)
    assert run(db, "import", path, "--site", "S1", "--development") == 0
    assert capsys.readouterr().out == "S1: 0 workers added, 2 updated\n"
    # the listing shows the masked number only
    assert run(db, "workers", "--site", "S1") == 0
    out = capsys.readouterr().out
    assert idcard.mask(ZHANG) in out and ZHANG not in out
    assert [line.split()[0] for line in out.splitlines()] == ["W1", "W2"]
    assert run(db, "workers", "--site", "S1", "--team", "nobody") == 0
    assert capsys.readouterr().out == ""


def test_hours_headcount_on_site_and_sheets(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(db, "import", str(tmp_path / "workers.csv"), "--site", "S1", "--development") == 0
    # W1: 07:30-12:00 and 13:00-17:00 = 510 min; W2: no exit, closed at 18:00 = 600 min
    append(
        db,
        ("W1", "07:30", "in"),
        ("W1", "12:00", "out"),
        ("W1", "13:00", "in"),
        ("W1", "17:00", "out"),
        ("W2", "08:00", "in"),
        ("U9", "09:00", "in"),
        ("U9", "09:30", "out"),
    )
    capsys.readouterr()
    day = ["--from", "2026-11-02", "--to", "2026-11-02"]
    assert run(db, "hours", "--site", "S1", *day, "--worker", "W1") == 0
    assert capsys.readouterr().out.split() == [
        "2026-11-02",
        "W1",
        "8h30m",
        "07:30-12:00",
        "13:00-17:00",
    ]
    assert run(db, "hours", "--site", "S1", *day) == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [
        ["2026-11-02", "U9", "0h30m", "09:00-09:30"],
        ["2026-11-02", "W1", "8h30m", "07:30-12:00", "13:00-17:00"],
        ["2026-11-02", "W2", "10h00m", "08:00-18:00(no_exit)", "no_exit"],
    ]
    assert run(db, "headcount", "--site", "S1", *day) == 0
    assert capsys.readouterr().out == (
        "2026-11-02 came 3, on site 0, unregistered 1; teams: (unregistered) 1, rebar 2; "
        "subcontractors: - 2\n"
    )
    assert run(db, "headcount", "--site", "S1", "--from", "2026-11-03", "--to", "2026-11-02") == 2
    assert "is after" in capsys.readouterr().err

    # the sheet: 510/480 = 1.0625 -> 1.06 d x 300 = 318.00; 600/480 = 1.25 d x 250.50
    # = 313.125 -> 313.13
    assert run(db, "sheet", "--site", "S1", *day) == 0
    out = capsys.readouterr().out
    assert "Bridge (S1) team rebar, 2026-11-02 to 2026-11-02; leads: 张三" in out
    assert "total 1110 min, 18.50 h, 2.31 d, 631.13" in out
    csv_path = tmp_path / "sheet.csv"
    assert run(db, "sheet", "--site", "S1", *day, "--format", "csv", "-o", str(csv_path)) == 0
    lines = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"))))
    total = next(x for x in lines if x and x[0].startswith("合计"))
    assert (total[4], total[5], total[7]) == ("18.50", "2.31", "631.13")
    xlsx_path = tmp_path / "sheet.xlsx"
    assert run(db, "sheet", "--site", "S1", *day, "--format", "xlsx") == 2
    capsys.readouterr()
    assert run(db, "sheet", "--site", "S1", *day, "--format", "xlsx", "-o", str(xlsx_path)) == 0
    assert capsys.readouterr().out == f"{xlsx_path}: 1 sheet(s), 2 rows\n"
    book = openpyxl.load_workbook(xlsx_path)
    amounts = [
        row[7] for row in book["rebar"].iter_rows(values_only=True) if row[1] in ("W1", "W2")
    ]
    assert [round(float(a), 2) for a in amounts] == [318.0, 313.13]
    assert run(db, "sheet", "--site", "S1", *day, "--format", "csv") == 0
    assert "合计" in capsys.readouterr().out

    # someone who came in a minute ago is on site now
    now = int(time.time() * 1000)
    with session(db) as s:
        policy = get_policy(s, "S1")
        start, _ = policy.day_bounds(policy.day_of(now))
        Ledger(s).append(
            "S1",
            "GW1",
            [
                contract.AttendanceItem(
                    device="FACE1",
                    ts=max(start, now - 60_000),
                    seq=99,
                    worker="W2",
                    direction="in",
                    method="card",
                )
            ],
            now,
        )
        s.commit()
    assert run(db, "on-site", "--site", "S1") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["W2", "李四", "rebar"] and out[-1] == "1 on site"


def test_policy_show_set_and_refuse(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(db, "policy", "--site", "S1") == 0
    assert "shift_start: 07:00\n" in capsys.readouterr().out
    assert (
        run(db, "policy", "--site", "S1", "--set", "shift_start=06:30", "--set", "hours_per_day=9")
        == 0
    )
    out = capsys.readouterr().out
    assert "shift_start: 06:30\n" in out and "hours_per_day: 9\n" in out
    with session(db) as s:
        assert get_policy(s, "S1").shift_start == "06:30"
    assert run(db, "policy", "--site", "S1", "--set", "duplicate_window_s=99999") == 2
    assert "duplicate_window_s:" in capsys.readouterr().err
    assert run(db, "policy", "--site", "S1", "--set", "night=1") == 2
    assert "night: Extra inputs are not permitted" in capsys.readouterr().err
    assert run(db, "policy", "--site", "S1", "--set", "shift_start") == 2
    with session(db) as s:
        assert get_policy(s, "S1").duplicate_window_s == 60, "refused: nothing stored"


def test_verify_every_site_and_a_tampered_row(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(db, "verify") == 0
    assert capsys.readouterr().out == ""
    append(db, ("W1", "07:30", "in"), ("W1", "17:00", "out"))
    assert run(db, "verify") == 0
    assert capsys.readouterr().out == "S1: 2 entries, intact\n"
    with session(db) as s:
        s.execute(text("UPDATE attendance_ledger SET ts = ts - 3600000 WHERE n = 1"))
        s.commit()
    assert run(db, "verify", "--site", "S1") == 1
    assert capsys.readouterr().out == (
        "S1: TAMPERED: entry 1: content does not match its hash (altered)\n"
        "S1: 2 entries, 1 problem(s)\n"
    )

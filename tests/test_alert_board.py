"""The dashboard feed: the line builders as pure logic (the hours against the day-labour
sheets on SQLite), then once through the real service, Mosquitto and InfluxDB."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import RunningAlerts, now_ms, wait_for
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from alerts.board import (
    SiteFacts,
    StoreView,
    TeamDay,
    limit_lines,
    read_store,
    site_summary_lines,
    team_lines,
)
from alerts.engine import AlertEngine
from alerts.service import AlertService
from sitewatch.core import contract
from sitewatch.core.db import make_engine
from sitewatch.core.influx import InfluxClient, InfluxSettings
from sitewatch.core.profiles import load_profiles
from sitewatch.domains.alertrecords.model import Change, EventKind
from sitewatch.domains.alertrecords.settings import AlertSettings
from sitewatch.domains.alertrecords.store import AlertStore
from sitewatch.domains.attendance import reports
from sitewatch.domains.attendance.ledger import GateBatch, LedgerWriter
from sitewatch.domains.attendance.policy import AttendancePolicy
from sitewatch.domains.attendance.sheets import hours_of
from sitewatch.domains.attendance.watch import AttendanceWatch, SiteInfo
from sitewatch.domains.attendance.workers import WorkerRow, Workers
from sitewatch.domains.registry import GatewayRow, Registry, SiteRow
from sitewatch.domains.rulebook import Override, RuleBook, SiteRules
from sitewatch.domains.schema import create_tables
from sitewatch.programs.localstack import InfluxServer

PROFILES = load_profiles()
D = date(2026, 11, 2)


def at(hhmm: str, day: date = D, utc_offset_h: float = 8) -> int:
    """ms of a site-local time."""
    h, m = (int(x) for x in hhmm.split(":"))
    local = datetime(day.year, day.month, day.day, h, m, tzinfo=UTC)
    return int((local - timedelta(hours=utc_offset_h)).timestamp() * 1000)


def engine(*overrides: Override) -> AlertEngine:
    ids = itertools.count(1)
    return AlertEngine(
        RuleBook(
            PROFILES, list(overrides), {"S1": SiteRules(utc_offset_h=8)}, default_utc_offset_h=0
        ),
        hold_s=60,
        new_id=lambda: f"A{next(ids)}",
    )


def reading(
    e: AlertEngine,
    device: str,
    profile: str,
    t: int,
    *,
    site: str = "S1",
    gateway: str = "GW1",
    **values: float,
) -> list[Change]:
    return e.observe(site, gateway, device, profile, t, t, values, t)


def tags(line: str) -> dict[str, str]:
    head = line.split(" ")[0]
    return dict(kv.split("=") for kv in head.split(",")[1:])


def limits_at(e: AlertEngine, hhmm: str) -> list[str]:
    t = at(hhmm)
    return limit_lines(e.limits(t), t)


def limits_by_rule(lines: list[str], device: str) -> dict[str, str]:
    """rule -> the line's field set, for one device."""
    return {
        tags(line)["rule"]: line.split(" ")[1] for line in lines if tags(line)["device"] == device
    }


# -- limits ---------------------------------------------------------------------------


def test_the_noise_limit_follows_the_day_and_night_schedule_in_site_time() -> None:
    e = engine()
    reading(e, "ENV1", "environment", at("13:00"), noise_dba=50.0)
    day = limits_at(e, "14:00")
    assert (
        f"limits,device=ENV1,field=noise_dba,gateway=GW1,profile=environment,"
        f"rule=noise_leq,site=S1 value=70.0 {at('14:00')}"
    ) in day
    # only rules that compare a field with a number: not the count nor the silence rule
    assert limits_by_rule(day, "ENV1") == {
        "noise_leq": "value=70.0",
        "pm10_hourly": "value=80.0",
        "tsp_5min": "value=800.0",
        "wind_stop_work": "value=10.8",
    }
    night = limits_by_rule(limits_at(e, "23:00"), "ENV1")
    assert night["noise_leq"] == "value=55.0"


def test_a_night_only_rule_writes_nothing_by_day() -> None:
    e = engine()
    reading(e, "ENV1", "environment", at("13:00"), noise_dba=50.0)
    assert "noise_night_lmax" not in limits_by_rule(limits_at(e, "14:00"), "ENV1")
    assert limits_by_rule(limits_at(e, "23:00"), "ENV1")["noise_night_lmax"] == ("value=70.0")


def test_an_override_changes_the_written_limit_of_its_device_only() -> None:
    e = engine(
        Override(site="S1", device="ENV1", rule="pm10_hourly", set={"value": 150}),
        Override(
            site="S1",
            rule="noise_leq",
            set={"schedule": [{"from": "07:00", "to": "19:00", "value": 65}]},
        ),
    )
    for device in ("ENV1", "ENV2"):
        reading(e, device, "environment", at("13:00"), noise_dba=50.0)
    lines = limits_at(e, "14:00")
    assert limits_by_rule(lines, "ENV1")["pm10_hourly"] == "value=150.0"
    assert limits_by_rule(lines, "ENV2")["pm10_hourly"] == "value=80.0"
    assert limits_by_rule(lines, "ENV2")["noise_leq"] == "value=65.0"
    assert "noise_leq" not in limits_by_rule(limits_at(e, "23:00"), "ENV2")


# -- site summary ---------------------------------------------------------------------


def test_site_summary_counts_open_alerts_gateways_and_workers_on_site() -> None:
    e = engine()
    t = at("10:00")
    assert [c.severity for c in reading(e, "TC1", "tower_crane", t, load_pct=120.0)] == [
        "alarm"
    ]  # A1
    assert [c.severity for c in reading(e, "GW1", "gateway", t, disk_free_pct=5.0)] == [
        "warning"
    ]  # A2
    e.status("S1", "GW2", "offline", 1, t)
    e.status("S9", "GW9", "online", 1, t)  # a site the registry does not have
    watch = AttendanceWatch({"S1": SiteInfo()})
    watch.observe(
        "S1",
        "GW1",
        [
            contract.AttendanceItem(
                device="GATE01", ts=t, seq=1, worker="W1", direction="in", method="face"
            )
        ],
        t,
    )
    view = StoreView(
        sites={"S1": SiteFacts("North bridge", "Xinle", 38.35, 114.68, 40)},
        gateways={"S1": frozenset({"GW1", "GW2", "GW3"})},
        county_alerts=frozenset({"A1"}),
    )
    lines = site_summary_lines(e, watch, view, t)
    assert lines == [
        'site_summary,site=S1 name="North bridge",county="Xinle",latitude=38.35,'
        "longitude=114.68,open_alarm=1i,open_warning=1i,open_county=1i,open_total=2i,"
        f"worst=2i,gateways=3i,gateways_offline=1i,on_site=1i,planned_headcount=40i {t}",
        'site_summary,site=S9 name="S9",county="",open_alarm=0i,open_warning=0i,'
        "open_county=0i,open_total=0i,worst=0i,gateways=1i,gateways_offline=0i,"
        f"on_site=0i {t}",
    ]
    # the alarm clears and resolves: the worst open alert is the warning; GW2 is back
    reading(e, "TC1", "tower_crane", t + 1000, load_pct=10.0)
    reading(e, "TC1", "tower_crane", t + 61_500, load_pct=10.0)
    e.status("S1", "GW2", "online", 1, t + 61_500)
    assert [c.event for c in e.tick(t + 62_000)] == [EventKind.RESOLVED]  # hold_s 60
    s1 = site_summary_lines(e, watch, view, t + 62_000)[0]
    assert (
        "open_alarm=0i,open_warning=1i,open_county=0i,open_total=1i,worst=1i,"
        "gateways=3i,gateways_offline=0i"
    ) in s1


# -- attendance_team ------------------------------------------------------------------

SITE, GW = "S-ATT", "GW1"


def add_workers(s: Session, now: int, *teams: tuple[str, str]) -> None:
    Workers(s).put_many(
        [
            WorkerRow(
                site=SITE,
                id=w,
                name=f"name {w}",
                team=team,
                team_lead=False,
                subcontractor="",
                trade="",
                day_rate=Decimal(300),
                training_expires=None,
                certificate_expires=None,
                id_hash=None,
                id_masked=None,
                active=True,
                updated_at=now,
            )
            for w, team in teams
        ]
    )


def swipes(*events: tuple[str, str, str]) -> list[contract.AttendanceItem]:
    return [
        contract.AttendanceItem(
            device="GATE01", ts=at(hhmm), seq=k, worker=w, direction=d, method="face"
        )  # type: ignore[arg-type]
        for k, (w, d, hhmm) in enumerate(events, 1)
    ]


@pytest.fixture
def ledger_db(tmp_path: Path) -> Engine:
    """A site with three registered workers in two teams and a day at its gate."""
    url = f"sqlite:///{tmp_path / 'att.db'}"
    db = make_engine(url)
    create_tables(db)
    with Session(db) as s, s.begin():
        add_workers(s, at("06:00"), ("W1", "rebar"), ("W2", "rebar"), ("W3", "formwork"))
    LedgerWriter(url).append(
        [
            GateBatch(
                SITE,
                GW,
                swipes(
                    ("W1", "in", "07:02"),
                    ("W1", "out", "17:31"),
                    ("W2", "in", "07:10"),  # never swipes out
                    ("W3", "in", "08:00"),
                    ("W3", "out", "12:00"),
                    ("W3", "in", "13:00"),
                    ("W3", "out", "18:05"),
                    ("X9", "in", "09:00"),
                    ("X9", "out", "10:00"),  # not in the registry
                ),
            )
        ],
        at("20:00"),
    )
    return db


def by_team(view: StoreView, day: date) -> dict[str, tuple[Decimal, int]]:
    return {t.team: (t.hours, t.workers) for t in view.teams if t.day == day}


def sheet_totals(s: Session, day: date, now: int) -> dict[str, tuple[Decimal, int]]:
    return {
        sh.team: (sh.totals.hours, len(sh.rows)) for sh in reports.sheets(s, SITE, day, day, now)
    }


def test_team_hours_are_the_day_labour_sheets_totals(ledger_db: Engine) -> None:
    now = at("20:00")  # the day is not over: W2 is on site, counted up to now
    with Session(ledger_db) as s:
        view = read_store(s, {}, now, board_days=1)
        sheets = sheet_totals(s, D, now)
    today = by_team(view, D)
    assert {k: v for k, v in today.items() if k != reports.UNREGISTERED} == sheets
    assert sheets == {"formwork": (Decimal("9.08"), 1), "rebar": (hours_of(629) + hours_of(770), 2)}
    assert today[reports.UNREGISTERED] == (hours_of(60), 1)
    # the day before is written too (board_days), every team at 0
    assert by_team(view, D - timedelta(days=1)) == {
        team: (Decimal(0), 0) for team in ("formwork", "rebar", reports.UNREGISTERED)
    }
    assert view.today == {SITE: D}
    start, _ = AttendancePolicy().day_bounds(D)
    assert (
        f'attendance_team,site={SITE},team=formwork hours=9.08,workers=1i,day="2026-11-02" {start}'
    ) in team_lines(view.teams)
    assert (
        f"attendance_team,site={SITE},team=(unregistered) hours=1.0,workers=1i,"
        f'day="2026-11-02" {start}'
    ) in team_lines(view.teams)


def test_when_the_day_rolls_over_the_day_just_ended_is_written_once_more(ledger_db: Engine) -> None:
    now = at("05:00", D + timedelta(days=1))  # the attendance day of D ended at 04:00
    with Session(ledger_db) as s:
        view = read_store(s, {SITE: D}, now, board_days=7)
        sheets = sheet_totals(s, D, now)
    assert {t.day for t in view.teams} == {D, D + timedelta(days=1)}
    # W2's forgotten exit is closed at the shift end (18:00): 10 h 50 min
    assert by_team(view, D)["rebar"] == sheets["rebar"] == (hours_of(629) + hours_of(650), 2)
    assert view.today == {SITE: D + timedelta(days=1)}
    with Session(ledger_db) as s:  # written up to today: only today next time
        assert {t.day for t in read_store(s, view.today, now, 7).teams} == {D + timedelta(days=1)}


def test_team_lines_keep_one_series_per_team_and_day() -> None:
    t = TeamDay("S1", "a team, with = signs", D, 1_000, Decimal("7.5"), 3)
    assert team_lines([t]) == [
        r"attendance_team,site=S1,team=a\ team\,\ with\ \=\ signs hours=7.5,workers=3i,"
        'day="2026-11-02" 1000'
    ]


# -- settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value",
    [("board_interval_s", 0.5), ("board_interval_s", 3601), ("board_days", 63), ("board_days", -1)],
)
def test_board_settings_are_checked(key: str, value: float) -> None:
    with pytest.raises(ValidationError, match=key):
        AlertSettings(**{key: value})


def test_board_interval_0_turns_the_feed_off() -> None:
    s = AlertSettings(board_interval_s=0)
    assert (s.board_interval_s, AlertSettings().board_interval_s, s.board_days) == (0, 60, 7)


# -- through the service ----------------------------------------------------------------


@pytest.mark.integration
async def test_a_failed_write_is_counted_logged_once_and_not_kept(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    own_influxdb: InfluxServer,
) -> None:
    caplog.set_level(logging.INFO, "sitewatch.alerts.board")
    service = AlertService(AlertSettings(database_url=f"sqlite:///{tmp_path / 'a.db'}"))
    service.store.create_schema()
    create_tables(service.store.engine)
    now = now_ms()
    reading(service.engine, "ENV1", "environment", now, noise_dba=50.0)
    settings = InfluxSettings(url=own_influxdb.url, database="board", timeout_s=2)
    async with InfluxClient(settings) as influx:
        await influx.ensure_database()
        own_influxdb.stop()  # InfluxDB down for two rounds, then back
        for _ in range(2):
            await service.write_board(influx, now)
        own_influxdb.restart()
        await service.write_board(influx, now + 1)
        rows = await influx.series('SELECT "value" FROM "limits" WHERE "device" = \'ENV1\'')
    assert service.board_writes == {"error": 2, "ok": 1}
    assert (
        service.registry.get_sample_value(
            "sitewatch_alerts_board_writes_total", {"outcome": "error"}
        )
        == 2
    )
    said = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == "sitewatch.alerts.board"
    ]
    assert [level for level, _ in said] == ["WARNING", "INFO"], said
    # nothing kept for later: only the round after the outage is in InfluxDB
    assert {r["time"] for r in rows} == {now + 1}
    service.store.dispose()


@pytest.mark.integration
async def test_a_started_service_writes_the_feed_within_seconds(
    start_alerts: Callable[..., Awaitable[RunningAlerts]],
    influx_client: InfluxClient,
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'board.db'}"
    now = now_ms()
    db = make_engine(url)
    create_tables(db)
    with Session(db) as s, s.begin():
        Registry(s).add_site(
            SiteRow(
                id=SITE,
                name="North bridge",
                county="Xinle",
                project_type="road",
                latitude=38.35,
                longitude=114.68,
                planned_headcount=40,
                created_at=now,
            )
        )
        Registry(s).add_gateway(
            GatewayRow(
                site=SITE,
                id=GW,
                mqtt_username=f"{SITE}.{GW}",
                mqtt_password_hash="-",
                created_at=now,
            )
        )
        add_workers(s, now, ("W1", "rebar"))
    db.dispose()
    LedgerWriter(url).append(
        [
            GateBatch(
                SITE,
                GW,
                [
                    contract.AttendanceItem(
                        device="GATE01",
                        ts=now - 1000,
                        seq=1,
                        worker="W1",
                        direction="in",
                        method="face",
                    )
                ],
            )
        ],
        now,
    )
    # an alarm open at a site the registry does not know, taken over at start
    store = AlertStore(url)
    store.create_schema()
    store.apply(
        [
            Change(
                EventKind.RAISED,
                "a-open",
                now - 5000,
                "S-OTHER",
                "GW7",
                "TC1",
                "tower_crane",
                "load",
                "load_alarm",
                "alarm",
                "Overload",
                120.0,
                100.0,
            )
        ],
        now,
    )
    store.dispose()

    alerts = await start_alerts(database_url=url)  # board_interval_s: the default 60 s

    async def rows(measurement: str) -> list[dict[str, object]]:
        return await influx_client.series(f"SELECT * FROM {measurement}")

    async def written() -> bool:
        return all([await rows(m) for m in ("limits", "site_summary", "attendance_team")])

    await wait_for(written, timeout=10, what="the three measurements in InfluxDB")
    limits = {(r["site"], r["device"], r["rule"]): r for r in await rows("limits")}
    # derived devices (one per worker on site) write no limits: one site-wide value each
    assert not [k for k in limits if k[1] == "W1"]
    assert limits[("S-OTHER", "TC1", "load_alarm")]["gateway"] == "GW7"

    summary = {r["site"]: r for r in await rows("site_summary")}
    reg, other = summary[SITE], summary["S-OTHER"]
    assert {
        k: reg[k]
        for k in (
            "name",
            "county",
            "latitude",
            "longitude",
            "gateways",
            "on_site",
            "planned_headcount",
            "open_total",
            "worst",
        )
    } == {
        "name": "North bridge",
        "county": "Xinle",
        "latitude": 38.35,
        "longitude": 114.68,
        "gateways": 1,
        "on_site": 1,
        "planned_headcount": 40,
        "open_total": 0,
        "worst": 0,
    }
    assert {
        k: other[k] for k in ("name", "county", "latitude", "open_alarm", "worst", "gateways")
    } == {
        "name": "S-OTHER",
        "county": "",
        "latitude": None,
        "open_alarm": 1,
        "worst": 2,
        "gateways": 1,
    }

    today = AttendancePolicy().day_of(now)
    days = await rows("attendance_team")
    assert len(days) == 8  # today and board_days (7) before it
    [team] = [r for r in days if r["day"] == today.isoformat()]
    assert (team["site"], team["team"], team["workers"], team["day"]) == (
        SITE,
        "rebar",
        1,
        today.isoformat(),
    )
    assert team["time"] == AttendancePolicy().day_bounds(today)[0]
    assert alerts.service.board_writes["ok"] >= 1
    assert (
        alerts.service.registry.get_sample_value(
            "sitewatch_alerts_board_writes_total", {"outcome": "ok"}
        )
        >= 1
    )
    await alerts.stop()

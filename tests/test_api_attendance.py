"""The attendance slice of the API, on SQLite and on a real PostgreSQL: scopes and site
visibility, the worker registry (one worker, an import, all or nothing), the policy,
and the figures of a hand-made day as JSON, CSV and XLSX; ID-card numbers never in an
answer. Every response of a test is kept and searched for the numbers at the end."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.config import ApiSettings, AuthSettings, RateLimitSettings
from api.main import create_app
from sitewatch.core import contract
from sitewatch.core.influx import InfluxSettings
from sitewatch.domains.accounts import add_user
from sitewatch.domains.attendance import idcard
from sitewatch.domains.attendance.ledger import Ledger
from sitewatch.domains.attendance.sitepolicy import get_policy

pytestmark = pytest.mark.integration

SECRET = "t" * 40
ID_KEY = "k" * 40
PASSWORD = "correct horse battery"
SITE_A = {
    "id": "S-A",
    "name": "Bridge A",
    "county": "Lankao",
    "town": "Chengguan",
    "project_type": "bridge",
    "latitude": 34.82,
    "longitude": 114.82,
}
SITE_B = {**SITE_A, "id": "S-B", "name": "School B", "project_type": "building"}
LOCAL = timezone(timedelta(hours=8))  # the default policy's utc_offset_h
DAY = date(2026, 11, 2)
NEXT = date(2026, 11, 3)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def id_number(first17: str) -> str:
    """A valid 18-character number (GB 11643 check character)."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(first17, weights, strict=True))
    return first17 + "10X98765432"[total % 11]


ZHANG = id_number("41022519850312123")
LI = id_number("41022519900101456")
WANG = id_number("41022519781124789")
OTHER = id_number("11010519491231002")
NUMBERS = (ZHANG, LI, WANG, OTHER)


def at(day: date, hhmm: str) -> int:
    """UTC ms of a site-local time."""
    h, m = hhmm.split(":")[:2]
    s = int(hhmm.split(":")[2]) if hhmm.count(":") == 2 else 0
    return int(
        datetime(day.year, day.month, day.day, int(h), int(m), s, tzinfo=LOCAL).timestamp() * 1000
    )


@dataclass
class Api:
    client: httpx.AsyncClient
    app: Any
    #: every response body of the test, for the ID-number check
    bodies: list[bytes] = field(default_factory=list)

    def session(self) -> Session:
        return self.app.state.sitewatch.sessions()  # type: ignore[no-any-return]

    async def as_user(self, user: str) -> dict[str, str]:
        r = await self.client.post("/auth/token", data={"username": user, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def assert_no_id_numbers(self) -> None:
        secrets = [*NUMBERS, *(idcard.keyed_hash(n, ID_KEY) for n in NUMBERS)]
        secrets += [n[:17] for n in NUMBERS]  # nor the number without its check character
        for body in self.bodies:
            for secret in secrets:
                assert secret.encode() not in body, body[:300]


@pytest.fixture
async def api_factory(database_url: str, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[tuple[Any, Api]] = []

    async def make(**overrides: Any) -> Api:
        settings = ApiSettings(
            environment="production",
            auth=AuthSettings(secret_key=SECRET),
            rate_limit=RateLimitSettings(enabled=False),
            influx=InfluxSettings(url="http://127.0.0.1:9", timeout_s=1),  # not used here
            database_url=database_url,
            snapshots_dir=tmp_path / "snapshots",
            **{"attendance": {"id_hash_key": ID_KEY}, **overrides},
        )
        app = create_app(settings)
        ctx = app.router.lifespan_context(app)
        await ctx.__aenter__()
        api = Api(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api"), app
        )

        async def keep(response: httpx.Response) -> None:
            api.bodies.append(await response.aread())

        api.client.event_hooks["response"] = [keep]
        made.append((ctx, api))
        with api.session() as s:
            add_user(s, "admin", PASSWORD, "admin")
            add_user(s, "officer-a", PASSWORD, "site_officer", ["S-A"])
            add_user(s, "officer-b", PASSWORD, "site_officer", ["S-B"])
            add_user(s, "viewer-a", PASSWORD, "viewer", ["S-A"])
            s.commit()
        admin = await api.as_user("admin")
        for site in (SITE_A, SITE_B):
            r = await api.client.post("/sites", json=site, headers=admin)
            assert r.status_code == 201, r.text
        return api

    yield make
    for ctx, api in reversed(made):
        await api.client.aclose()
        await ctx.__aexit__(None, None, None)
        api.assert_no_id_numbers()  # whatever the test checked, no answer held one


@pytest.fixture
async def api(api_factory: Callable[..., Any]) -> Api:
    return await api_factory()  # type: ignore[no-any-return]


WORKERS_CSV = (
    "工号,姓名,班组,日工资,分包单位,工种,班组长,培训有效期,身份证号\n"
    f"W1,张三,rebar,300,Henan Build,rebar fixer,是,2027-06-30,{ZHANG}\n"
    f"W2,李四,rebar,250.50,Henan Build,rebar fixer,否,2026-01-31,{LI}\n"
    f"W3,王五,formwork,280,,carpenter,是,,{WANG}\n"
).encode()


async def import_csv(
    api: Api,
    headers: dict[str, str],
    data: bytes = WORKERS_CSV,
    name: str = "workers.csv",
    site: str = "S-A",
) -> httpx.Response:
    return await api.client.post(
        f"/sites/{site}/workers/import", headers=headers, files={"file": (name, data, "text/csv")}
    )


def gate(
    worker: str, day: date, hhmm: str, direction: str, seq: int, device: str = "FACE1"
) -> contract.AttendanceItem:
    return contract.AttendanceItem(
        device=device, ts=at(day, hhmm), seq=seq, worker=worker, direction=direction, method="face"
    )  # type: ignore[arg-type]


#: the hand-made days (default policy: shift 07:00-18:00, 8 h a day, duplicates 60 s)
EVENTS = [
    # W1: a duplicate face scan, a lunch break: 07:02-12:00 (298) + 13:00-17:31 (271) = 569
    gate("W1", DAY, "07:02", "in", 1),
    gate("W1", DAY, "07:02:30", "in", 2),
    gate("W1", DAY, "12:00", "out", 3),
    gate("W1", DAY, "13:00", "in", 4),
    gate("W1", DAY, "17:31", "out", 5),
    # W2: an exit without an entry, credited from the shift start: 07:00-16:00 = 540
    gate("W2", DAY, "16:00", "out", 6),
    # W3: an entry without an exit, closed at the shift end: 08:00-18:00 = 600
    gate("W3", DAY, "08:00", "in", 7),
    # U9: not registered: in the headcount, on no sheet
    gate("U9", DAY, "09:00", "in", 8),
    gate("U9", DAY, "10:00", "out", 9),
    # the next day, W1 at another gate: 07:00-15:00 = 480
    gate("W1", NEXT, "07:00", "in", 1, "FACE2"),
    gate("W1", NEXT, "15:00", "out", 2, "FACE2"),
]


async def hand_made_days(api: Api) -> dict[str, str]:
    officer = await api.as_user("officer-a")
    assert (await import_csv(api, officer)).status_code == 200
    with api.session() as s:
        assert Ledger(s).append("S-A", "GW1", EVENTS, at(NEXT, "20:00")) == len(EVENTS)
        s.commit()
    return officer


# -- scopes and sites --------------------------------------------------------------------


async def test_viewers_read_only_and_other_sites_officers_see_nothing(api: Api) -> None:
    officer_a = await api.as_user("officer-a")
    r = await api.client.put(
        "/sites/S-A/workers/W1",
        headers=officer_a,
        json={"name": "张三", "team": "rebar", "day_rate": "300"},
    )
    assert r.status_code == 201, r.text
    viewer = await api.as_user("viewer-a")
    r = await api.client.get("/sites/S-A/workers", headers=viewer)
    assert r.status_code == 200 and r.json()["total"] == 1
    for method, path, kw in (
        ("PUT", "/sites/S-A/workers/W1", {"json": {"name": "x", "team": "t", "day_rate": 1}}),
        (
            "POST",
            "/sites/S-A/workers/import",
            {"files": {"file": ("w.csv", WORKERS_CSV, "text/csv")}},
        ),
        ("PUT", "/sites/S-A/attendance/policy", {"json": {}}),
    ):
        r = await api.client.request(method, path, headers=viewer, **kw)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["detail"]["missing_scopes"] == ["workers:write"]
    officer_b = await api.as_user("officer-b")
    for path in (
        "/sites/S-A/workers",
        "/sites/S-A/workers/W1",
        "/sites/S-A/attendance/policy",
        "/sites/S-A/attendance/events",
        "/sites/S-A/attendance/on-site",
        "/sites/S-A/attendance/headcount",
        "/sites/S-A/attendance/hours",
        "/sites/S-A/attendance/sheets",
        "/sites/S-A/attendance/sheets?format=xlsx",
        "/sites/S-A/attendance/verify",
        "/sites/NOPE/workers",
    ):
        r = await api.client.get(path, headers=officer_b)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["message"] in ("no site S-A", "no site NOPE")
    r = await api.client.put(
        "/sites/S-A/workers/W9", headers=officer_b, json={"name": "x", "team": "t", "day_rate": 1}
    )
    assert r.status_code == 404
    r = await import_csv(api, officer_b)
    assert r.status_code == 404
    with api.session() as s:
        from sitewatch.domains.attendance.workers import Workers

        assert Workers(s).get("S-A", "W9") is None and Workers(s).page("S-A").total == 1
    admin = await api.as_user("admin")
    assert (await api.client.get("/sites/S-B/workers", headers=admin)).status_code == 200


# -- the worker registry -------------------------------------------------------------------


async def test_put_worker_checks_hashes_and_masks_the_id_number(api: Api) -> None:
    officer = await api.as_user("officer-a")
    body = {
        "name": "张三",
        "team": "rebar",
        "team_lead": True,
        "subcontractor": "Henan Build",
        "trade": "rebar fixer",
        "day_rate": "300.5",
        "training_expires": "2020-01-31",
        "certificate_expires": "2099-12-31",
        "id_number": ZHANG,
    }
    r = await api.client.put("/sites/S-A/workers/W1", json=body, headers=officer)
    assert r.status_code == 201, r.text
    w = r.json()
    assert w["id_masked"] == ZHANG[:3] + "*" * 11 + ZHANG[-4:]
    assert w["day_rate"] == "300.50" and w["lapsed"] == ["training"] and w["team_lead"]
    assert "id_hash" not in w and "id_number" not in w
    with api.session() as s:
        from sitewatch.domains.attendance.workers import Workers

        row = Workers(s).get("S-A", "W1")
        assert row is not None and row.id_hash == idcard.keyed_hash(ZHANG, ID_KEY)
    # a change without the number keeps the one on file
    r = await api.client.put(
        "/sites/S-A/workers/W1",
        headers=officer,
        json={**body, "id_number": None, "day_rate": 320, "training_expires": "2099-01-01"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["id_masked"] == w["id_masked"] and r.json()["day_rate"] == "320.00"
    assert r.json()["lapsed"] == []
    r = await api.client.get("/sites/S-A/workers/W1", headers=officer)
    assert r.status_code == 200 and r.json()["id_masked"] == w["id_masked"]
    # a typing error in the number: 400 without the number
    typo = ZHANG[:-1] + ("0" if ZHANG[-1] != "0" else "1")
    r = await api.client.put(
        "/sites/S-A/workers/W2", headers=officer, json={**body, "id_number": typo}
    )
    assert r.status_code == 400 and "check character" in r.json()["error"]["message"]
    assert typo.encode() not in r.content and typo[:17].encode() not in r.content
    # the same person under a second worker id: 409 naming the workers
    r = await api.client.put(
        "/sites/S-A/workers/W2", headers=officer, json={**body, "id_number": ZHANG.lower()}
    )
    assert r.status_code == 409 and r.json()["error"]["detail"] == {"workers": ["W1", "W2"]}
    assert (await api.client.get("/sites/S-A/workers/W2", headers=officer)).status_code == 404
    # ...unless the first is no longer active
    r = await api.client.put(
        "/sites/S-A/workers/W1", headers=officer, json={**body, "active": False}
    )
    assert r.status_code == 200 and r.json()["active"] is False
    r = await api.client.put(
        "/sites/S-A/workers/W2",
        headers=officer,
        json={**body, "id_number": ZHANG, "team": "formwork"},
    )
    assert r.status_code == 201
    # strict input: 422, the number not echoed
    for bad in (
        {"day_rate": "1.234"},
        {"day_rate": -1},
        {"day_rate": True},
        {"day_rate": "NaN"},
        {"team_lead": "yes"},
        {"training_expires": 20270101},
        {"training_expires": "31/12/2027"},
        {"id_number": 410225198503121234},
        {"id_number": ZHANG + "0" * 20},
        {"nickname": "x"},
        {"name": ""},
    ):
        r = await api.client.put("/sites/S-A/workers/W3", headers=officer, json={**body, **bad})
        assert r.status_code == 422, (bad, r.text)
    r = await api.client.put("/sites/S-A/workers/bad%20id", headers=officer, json=body)
    assert r.status_code == 422
    r = await api.client.get("/sites/S-A/workers", headers=officer, params={"team": "formwork"})
    assert [x["id"] for x in r.json()["items"]] == ["W2"] and r.json()["total"] == 1
    r = await api.client.get("/sites/S-A/workers", headers=officer, params={"limit": 1})
    assert r.json()["total"] == 2 and len(r.json()["items"]) == 1
    assert (await api.client.get("/sites/S-A/workers/W9", headers=officer)).status_code == 404
    api.assert_no_id_numbers()


async def test_import_is_all_or_nothing_and_row_errors_are_400(api: Api) -> None:
    officer = await api.as_user("officer-a")
    bad = (
        WORKERS_CSV.decode()
        .replace(f",{LI}", f",{LI[:-1]}")
        .replace("W3,王五,formwork,280", "W3,王五,formwork,abc")
        .encode()
    )
    r = await import_csv(api, officer, bad)
    assert r.status_code == 400, r.text
    detail = r.json()["error"]["detail"]
    assert [(e["row"], e["column"]) for e in detail] == [(3, "身份证号"), (4, "日工资")]
    assert all(e["message"] for e in detail)
    r = await api.client.get("/sites/S-A/workers", headers=officer)
    assert r.json()["total"] == 0, "nothing of a file with errors is imported"
    r = await import_csv(api, officer, b"name\n", name="workers.txt")
    assert r.status_code == 415 and ".txt" in r.json()["error"]["message"]
    r = await import_csv(api, officer)
    assert r.status_code == 200 and r.json() == {"created": 3, "updated": 0}
    r = await import_csv(api, officer)
    assert r.json() == {"created": 0, "updated": 3}
    r = await api.client.get("/sites/S-A/workers/W2", headers=officer)
    w = r.json()
    assert (w["name"], w["team"], w["day_rate"], w["team_lead"], w["lapsed"]) == (
        "李四",
        "rebar",
        "250.50",
        False,
        ["training"],
    )
    assert w["id_masked"] == idcard.mask(LI)
    # an XLSX whose row makes W4 the same person as W1, already on file: nothing imported
    book = openpyxl.Workbook()
    ws = book.active
    ws.append(["工号", "姓名", "班组", "日工资", "身份证号"])
    ws.append(["W5", "赵六", "rebar", 260, OTHER])
    ws.append(["W4", "张三", "rebar", 300, ZHANG])
    buf = io.BytesIO()
    book.save(buf)
    r = await import_csv(api, officer, buf.getvalue(), name="workers.xlsx")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["detail"] == [
        {
            "row": 0,
            "column": "id_number",
            "message": (
                "workers W1, W4 have the same ID-card number: one person is registered once per "
                "site (set the other inactive)"
            ),
        }
    ]
    assert (await api.client.get("/sites/S-A/workers/W5", headers=officer)).status_code == 404
    # the same file without the clash
    ws.delete_rows(3)
    buf = io.BytesIO()
    book.save(buf)
    r = await import_csv(api, officer, buf.getvalue(), name="workers.xlsx")
    assert r.status_code == 200 and r.json() == {"created": 1, "updated": 0}
    # a list without the ID column keeps the numbers on file
    r = await import_csv(api, officer, b"id,name,team,day_rate\nW1,Zhang San,rebar,310\n")
    assert r.json() == {"created": 0, "updated": 1}
    r = await api.client.get("/sites/S-A/workers/W1", headers=officer)
    assert r.json()["id_masked"] == idcard.mask(ZHANG) and r.json()["day_rate"] == "310.00"
    api.assert_no_id_numbers()


async def test_without_an_id_key_in_production_numbers_are_refused(
    api_factory: Callable[..., Any],
) -> None:
    api: Api = await api_factory(attendance={})
    officer = await api.as_user("officer-a")
    r = await import_csv(api, officer)
    assert r.status_code == 503 and "id_hash_key" in r.json()["error"]["message"]
    body = {"name": "张三", "team": "rebar", "day_rate": 300}
    r = await api.client.put(
        "/sites/S-A/workers/W1", headers=officer, json={**body, "id_number": ZHANG}
    )
    assert r.status_code == 503
    r = await api.client.put("/sites/S-A/workers/W1", headers=officer, json=body)
    assert r.status_code == 201 and r.json()["id_masked"] is None


def test_id_key_settings() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        ApiSettings(environment="development", attendance={"id_hash_key": "short"})
    with pytest.raises(ValueError, match="development key is public"):
        ApiSettings(
            auth=AuthSettings(secret_key=SECRET), attendance={"id_hash_key": idcard.DEV_ID_KEY}
        )
    assert ApiSettings(environment="development").id_hash_key == idcard.DEV_ID_KEY
    assert ApiSettings(auth=AuthSettings(secret_key=SECRET)).id_hash_key is None
    assert (
        ApiSettings(
            auth=AuthSettings(secret_key=SECRET), attendance={"id_hash_key": ID_KEY}
        ).id_hash_key
        == ID_KEY
    )


# -- the policy ------------------------------------------------------------------------------


async def test_policy_round_trip_and_errors_naming_the_key(api: Api) -> None:
    officer = await api.as_user("officer-a")
    r = await api.client.get("/sites/S-A/attendance/policy", headers=officer)
    assert r.status_code == 200 and r.json()["shift_start"] == "07:00"
    policy = {**r.json(), "shift_start": "06:30", "hours_per_day": "9", "daily_limit_h": 11}
    r = await api.client.put("/sites/S-A/attendance/policy", json=policy, headers=officer)
    assert r.status_code == 200, r.text
    r = await api.client.get("/sites/S-A/attendance/policy", headers=officer)
    assert r.json() == {**policy, "daily_limit_h": 11.0}
    with api.session() as s:
        assert get_policy(s, "S-A").hours_per_day == Decimal(9)
        assert get_policy(s, "S-B").shift_start == "07:00"
    for bad, key in (
        ({"duplicate_window_s": 99999}, "duplicate_window_s"),
        ({"shift_end": "25:00"}, "shift_end"),
        ({"nightshift": True}, "nightshift"),
        ({"day_start": "12:00"}, "day_start"),
    ):
        r = await api.client.put(
            "/sites/S-A/attendance/policy", json={**policy, **bad}, headers=officer
        )
        assert r.status_code == 400, (bad, r.text)
        assert key in r.json()["error"]["message"]
    r = await api.client.put(
        "/sites/S-A/attendance/policy", json={"shift_end": "25:00"}, headers=officer
    )
    assert r.json()["error"]["detail"][0]["key"] == "shift_end"
    r = await api.client.get("/sites/S-A/attendance/policy", headers=officer)
    assert r.json()["shift_start"] == "06:30", "a refused policy changed nothing"
    r = await api.client.put("/sites/S-A/attendance/policy", json={}, headers=officer)
    assert r.status_code == 200 and r.json()["shift_start"] == "07:00", "PUT replaces"


# -- figures of the hand-made days ---------------------------------------------------------


async def test_hours_headcount_and_sheets_of_hand_made_days(api: Api) -> None:
    officer = await hand_made_days(api)
    days = {"from": DAY.isoformat(), "to": NEXT.isoformat()}
    r = await api.client.get("/sites/S-A/attendance/hours", headers=officer, params=days)
    assert r.status_code == 200, r.text
    got = {(h["worker"], h["day"]): h for h in r.json()}
    assert {k: (h["minutes"], h["hours"], h["flags"]) for k, h in got.items()} == {
        ("W1", "2026-11-02"): (569, "9.48", ["duplicate"]),
        ("W2", "2026-11-02"): (540, "9.00", ["exit_without_entry"]),
        ("W3", "2026-11-02"): (600, "10.00", ["no_exit"]),
        ("U9", "2026-11-02"): (60, "1.00", []),
        ("W1", "2026-11-03"): (480, "8.00", []),
    }
    w1 = got[("W1", "2026-11-02")]
    assert w1["sessions"] == [
        {"start": at(DAY, "07:02"), "end": at(DAY, "12:00"), "flag": None},
        {"start": at(DAY, "13:00"), "end": at(DAY, "17:31"), "flag": None},
    ]
    assert (w1["first_in"], w1["last_out"], w1["on_site"], w1["swipes"], w1["noted"]) == (
        at(DAY, "07:02"),
        at(DAY, "17:31"),
        False,
        5,
        {"duplicate": 1},
    )
    assert got[("W2", "2026-11-02")]["sessions"] == [
        {"start": at(DAY, "07:00"), "end": at(DAY, "16:00"), "flag": "exit_without_entry"}
    ]
    assert got[("W3", "2026-11-02")]["sessions"][0]["end"] == at(DAY, "18:00")
    r = await api.client.get(
        "/sites/S-A/attendance/hours", headers=officer, params={**days, "worker": "W1"}
    )
    assert [h["day"] for h in r.json()] == ["2026-11-02", "2026-11-03"]

    r = await api.client.get("/sites/S-A/attendance/headcount", headers=officer, params=days)
    assert r.json() == [
        {
            "day": "2026-11-02",
            "came": 4,
            "on_site_now": 0,
            "unregistered": 1,
            "by_team": {"(unregistered)": 1, "formwork": 1, "rebar": 2},
            "by_subcontractor": {"-": 1, "Henan Build": 2},
        },
        {
            "day": "2026-11-03",
            "came": 1,
            "on_site_now": 0,
            "unregistered": 0,
            "by_team": {"rebar": 1},
            "by_subcontractor": {"Henan Build": 1},
        },
    ]

    r = await api.client.get("/sites/S-A/attendance/sheets", headers=officer, params=days)
    assert r.status_code == 200
    rebar, formwork = sorted(r.json(), key=lambda x: x["team"] != "rebar")
    assert (rebar["team"], rebar["leads"], rebar["subcontractors"], rebar["hours_per_day"]) == (
        "rebar",
        ["张三"],
        ["Henan Build"],
        "8",
    )
    # day-eq. = minutes / 480 and amount = day-eq. x rate, each rounded half-up to 0.01
    assert [
        (
            x["day"],
            x["worker"],
            x["minutes"],
            x["hours"],
            x["day_equivalents"],
            x["day_rate"],
            x["amount"],
            x["remarks"],
        )
        for x in rebar["rows"]
    ] == [
        ("2026-11-02", "W1", 569, "9.48", "1.19", "300.00", "357.00", ["duplicate"]),
        ("2026-11-02", "W2", 540, "9.00", "1.13", "250.50", "283.07", ["exit_without_entry"]),
        ("2026-11-03", "W1", 480, "8.00", "1.00", "300.00", "300.00", []),
    ]
    assert rebar["totals"] == {
        "minutes": 1589,
        "hours": "26.48",
        "day_equivalents": "3.32",
        "amount": "940.07",
    }
    assert formwork["totals"] == {
        "minutes": 600,
        "hours": "10.00",
        "day_equivalents": "1.25",
        "amount": "350.00",
    }
    r = await api.client.get(
        "/sites/S-A/attendance/sheets", headers=officer, params={**days, "team": "formwork"}
    )
    assert [x["team"] for x in r.json()] == ["formwork"]
    api.assert_no_id_numbers()


async def test_csv_and_xlsx_sheets_open_and_match_the_json(api: Api) -> None:
    officer = await hand_made_days(api)
    days = {"from": DAY.isoformat(), "to": NEXT.isoformat(), "team": "rebar"}
    sheet = (
        await api.client.get("/sites/S-A/attendance/sheets", headers=officer, params=days)
    ).json()[0]
    r = await api.client.get(
        "/sites/S-A/attendance/sheets", headers=officer, params={**days, "format": "csv"}
    )
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        'filename="daylabour-S-A-rebar-2026-11-02-2026-11-03.csv"'
        in r.headers["content-disposition"]
    )
    lines = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    total = next(line for line in lines if line and line[0].startswith("合计"))
    assert (total[4], total[5], total[7]) == (
        sheet["totals"]["hours"],
        sheet["totals"]["day_equivalents"],
        sheet["totals"]["amount"],
    )
    rows = [line for line in lines if len(line) > 1 and line[1] in ("W1", "W2")]
    assert [(x[0], x[1], x[7]) for x in rows] == [
        (x["day"], x["worker"], x["amount"]) for x in sheet["rows"]
    ]

    r = await api.client.get(
        "/sites/S-A/attendance/sheets", headers=officer, params={**days, "format": "xlsx"}
    )
    assert r.status_code == 200 and r.headers["content-type"] == XLSX
    assert (
        'filename="daylabour-S-A-rebar-2026-11-02-2026-11-03.xlsx"'
        in r.headers["content-disposition"]
    )
    book = openpyxl.load_workbook(io.BytesIO(r.content))
    assert book.sheetnames == ["rebar"]
    cells = [row for row in book["rebar"].iter_rows(values_only=True)]
    total = next(row for row in cells if row[0] and str(row[0]).startswith("合计"))
    cents = Decimal("0.01")
    assert [Decimal(str(total[i])).quantize(cents) for i in (4, 5, 7)] == [
        Decimal(sheet["totals"][k]) for k in ("hours", "day_equivalents", "amount")
    ]
    amounts = [Decimal(str(row[7])).quantize(cents) for row in cells if row[1] in ("W1", "W2")]
    assert amounts == [Decimal(x["amount"]) for x in sheet["rows"]]
    # a team named in Chinese: an ASCII name and the UTF-8 one
    r = await api.client.get(
        "/sites/S-A/attendance/sheets",
        headers=officer,
        params={**days, "team": "钢筋班", "format": "csv"},
    )
    assert r.status_code == 200
    assert (
        "filename*=UTF-8''daylabour-S-A-%E9%92%A2%E7%AD%8B%E7%8F%AD-2026-11-02-2026-11-03.csv"
        in r.headers["content-disposition"]
    )
    api.assert_no_id_numbers()


async def test_events_ranges_and_who_is_on_site(api: Api) -> None:
    officer = await hand_made_days(api)
    r = await api.client.get(
        "/sites/S-A/attendance/events",
        headers=officer,
        params={"from": DAY.isoformat(), "limit": 4, "to": NEXT.isoformat()},
    )
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == len(EVENTS) and len(page["items"]) == 4
    first = page["items"][0]
    assert {
        k: first[k]
        for k in ("ts", "device", "seq", "worker", "direction", "method", "gateway", "n")
    } == {
        "ts": at(DAY, "07:02"),
        "device": "FACE1",
        "seq": 1,
        "worker": "W1",
        "direction": "in",
        "method": "face",
        "gateway": "GW1",
        "n": 1,
    }
    assert len(first["hash"]) == 64
    r = await api.client.get(
        "/sites/S-A/attendance/events",
        headers=officer,
        params={"from": NEXT.isoformat(), "to": NEXT.isoformat(), "worker": "W1"},
    )
    assert [(e["device"], e["seq"]) for e in r.json()["items"]] == [("FACE2", 1), ("FACE2", 2)]
    r = await api.client.get(
        "/sites/S-A/attendance/events", headers=officer, params={"to": DAY.isoformat()}
    )  # from defaults to "to"
    assert r.json()["total"] == 9
    for bad, code in (
        ({"from": "2026-11-03", "to": "2026-11-02"}, 400),
        ({"from": "2026-01-01", "to": "2026-03-04"}, 400),  # 63 days
        ({"from": "20261102"}, 422),
        ({"to": "2026-02-30"}, 422),
        ({"worker": "W 1"}, 422),
    ):
        r = await api.client.get("/sites/S-A/attendance/events", headers=officer, params=bad)
        assert r.status_code == code, (bad, r.text)
    r = await api.client.get(
        "/sites/S-A/attendance/headcount",
        headers=officer,
        params={"from": "2026-01-01", "to": "2026-03-03"},
    )  # 62 days
    assert r.status_code == 200 and len(r.json()) == 62
    # someone who came in a minute ago is on site now, and counted so today
    import time

    now = int(time.time() * 1000)
    with api.session() as s:
        policy = get_policy(s, "S-A")
        start, _ = policy.day_bounds(policy.day_of(now))
        Ledger(s).append(
            "S-A",
            "GW1",
            [
                contract.AttendanceItem(
                    device="FACE1",
                    ts=max(start, now - 60_000),
                    seq=100,
                    worker="W3",
                    direction="in",
                    method="card",
                )
            ],
            now,
        )
        s.commit()
    r = await api.client.get("/sites/S-A/attendance/on-site", headers=officer)
    assert [(o["worker"], o["name"], o["team"]) for o in r.json()] == [("W3", "王五", "formwork")]
    r = await api.client.get("/sites/S-A/attendance/headcount", headers=officer)
    assert [(h["came"], h["on_site_now"]) for h in r.json()] == [(1, 1)]
    r = await api.client.get("/sites/S-A/attendance/hours", headers=officer)
    assert r.json()[0]["on_site"] and r.json()[0]["sessions"][0]["flag"] == "open"


async def test_verify_reports_a_tampered_ledger_row(api: Api) -> None:
    officer = await hand_made_days(api)
    r = await api.client.get("/sites/S-A/attendance/verify", headers=officer)
    assert r.json() == {"site": "S-A", "entries": len(EVENTS), "ok": True, "problems": []}
    with api.session() as s:  # W2's exit becomes W1's: 540 minutes moved to another worker
        s.execute(text("UPDATE attendance_ledger SET worker = 'W1' WHERE site = 'S-A' AND n = 6"))
        s.commit()
    r = await api.client.get("/sites/S-A/attendance/verify", headers=officer)
    body = r.json()
    assert r.status_code == 200 and body["ok"] is False and body["entries"] == len(EVENTS)
    assert body["problems"] == ["entry 6: content does not match its hash (altered)"]
    r = await api.client.get("/sites/S-B/attendance/verify", headers=await api.as_user("officer-b"))
    assert r.json() == {"site": "S-B", "entries": 0, "ok": True, "problems": []}


def test_a_day_is_the_sites_not_utcs() -> None:
    """The helper above agrees with the policy: 07:00 at the site is 23:00 UTC before."""
    assert at(DAY, "07:00") == int(datetime(2026, 11, 1, 23, 0, tzinfo=UTC).timestamp() * 1000)

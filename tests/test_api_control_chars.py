"""NUL and the other control characters, anywhere a request carries text, are a 422 that
names the field (never its value), counted; never a 500 - on SQLite and on a real
PostgreSQL, which refuses NUL in text."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_api_access import PASSWORD, SITE_A, Api, api, api_factory  # noqa: F401

from sitewatch.domains.accounts import add_api_key

pytestmark = pytest.mark.integration

#: control characters as the API names them: C0, DEL and C1
CONTROLS = st.characters(categories=["Cc"])


def _refused(r: httpx.Response, loc: list[Any], field: str) -> None:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["detail"][0]["loc"] == loc, error
    assert error["message"].startswith(f"{field}: control character U+"), error


async def test_every_kind_of_input_is_checked(api: Api) -> None:  # noqa: F811
    admin = await api.as_user("admin")
    c = api.client
    # the log-in name and password: before the database is asked
    r = await c.post("/auth/token", data={"username": "admin\x00", "password": PASSWORD})
    _refused(r, ["body", "username"], "form field username")
    r = await c.post("/auth/token", data={"username": "admin", "password": "hunter\x1bsecret"})
    _refused(r, ["body", "password"], "form field password")
    assert "\x1b" not in r.text and "hunter" not in r.text  # never the value
    # query parameters, declared or not, and their names
    _refused(
        await c.get("/sites", params={"county": "Lan\x00kao"}, headers=admin),
        ["query", "county"],
        "query parameter county",
    )
    _refused(
        await c.get("/sites", params={"whatever": "a\nb"}, headers=admin),
        ["query", "whatever"],
        "query parameter whatever",
    )
    r = await c.get("/sites?a%00b=1", headers=admin)
    _refused(r, ["query", "a\x00b"], "query parameter a\\u0000b")
    _refused(
        await c.get("/sites/S-A/workers", params={"team": "\x7f"}, headers=admin),
        ["query", "team"],
        "query parameter team",
    )
    # path parameters
    _refused(
        await c.get("/sites/S-A%00/devices", headers=admin), ["path", "site"], "path parameter site"
    )
    _refused(
        await c.get("/sites/S-A/devices/TC01%0A", headers=admin),
        ["path", "device"],
        "path parameter device",
    )
    # JSON bodies, at any depth, keys too
    _refused(
        await c.post("/sites", json={**SITE_A, "id": "S-C", "name": "x\x00"}, headers=admin),
        ["body", "name"],
        "body field name",
    )
    r = await c.put(
        "/sites/S-A/devices/TC01",
        headers=admin,
        json={
            "gateway": "GW1",
            "profile": "tower_crane",
            "overrides": {"load_alarm": {"set": {"value": "9\x855"}}},
        },
    )
    _refused(
        r,
        ["body", "overrides", "load_alarm", "set", "value"],
        "body field overrides.load_alarm.set.value",
    )
    r = await c.put("/sites/S-A/attendance/policy", json={"tz\x00": "x"}, headers=admin)
    _refused(r, ["body", "tz\x00"], "body field tz\\u0000")
    r = await c.post("/alerts/" + "a" * 32 + "/ack", json={"comment": "ok\x00"}, headers=admin)
    _refused(r, ["body", "comment"], "body field comment")
    # an uploaded file's name
    multipart = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="w\x00.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\nid,name\r\n--B--\r\n"
    )  # httpx escapes it
    r = await c.post(
        "/sites/S-A/workers/import",
        content=multipart,
        headers={**admin, "Content-Type": "multipart/form-data; boundary=B"},
    )
    _refused(r, ["body", "file", "filename"], "form field file.filename")
    # header values (real HTTP servers refuse these first; the ASGI path is checked too)
    r = await c.get("/sites", headers={"X-API-Key": "swk_1_\x00"})
    _refused(r, ["header", "x-api-key"], "header x-api-key")
    # counted, by where the character was
    metrics = (await c.get("/metrics")).text
    for where, n in (("form", 3), ("query", 4), ("path", 2), ("body", 4), ("header", 1)):
        assert f'sitewatch_api_control_characters_total{{location="{where}"}} {n}.0' in metrics, (
            where
        )


async def test_text_without_control_characters_still_passes(api: Api) -> None:  # noqa: F811
    admin = await api.as_user("admin")
    r = await api.client.post(
        "/sites",
        headers=admin,
        json={**SITE_A, "id": "S-C", "name": "兰考县 \u00e9 \u2028 ok", "county": "Lankao"},
    )
    assert r.status_code == 201, r.text
    r = await api.client.get(
        "/sites",
        params={"county": "Lankao"},
        headers=[(k.encode(), v.encode()) for k, v in admin.items()]
        + [(b"User-Agent", "café".encode())],
    )
    assert r.status_code == 200 and r.json()["total"] == 3


@pytest.fixture
def admin_key(api: Api) -> str:  # noqa: F811
    with api.session() as s:
        _, key = add_api_key(s, "fuzz", "admin")
        s.commit()
    return str(key)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    char=CONTROLS,
    where=st.sampled_from(["county", "name", "comment", "username"]),
    at=st.integers(0, 8),
)
async def test_any_control_character_anywhere_in_a_value(
    api: Api,  # noqa: F811
    admin_key: str,
    char: str,
    where: str,
    at: int,
) -> None:
    text = "Lankao-S"[:at] + char + "Lankao-S"[at:]
    c = api.client
    if where == "username":
        r = await c.post("/auth/token", data={"username": text, "password": PASSWORD})
        _refused(r, ["body", "username"], "form field username")
        return
    headers = {"X-API-Key": admin_key}
    if where == "county":
        r = await c.get("/sites", params={"county": text}, headers=headers)
        _refused(r, ["query", "county"], "query parameter county")
    elif where == "name":
        r = await c.post("/sites", json={**SITE_A, "name": text}, headers=headers)
        _refused(r, ["body", "name"], "body field name")
    else:
        r = await c.post(
            "/alerts/" + "a" * 32 + "/resolve", json={"comment": text}, headers=headers
        )
        _refused(r, ["body", "comment"], "body field comment")

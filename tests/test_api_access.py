"""The API's front door, on SQLite and on a real PostgreSQL: log-in, tokens, API keys,
scopes, per-site access, rate limiting, and the slices behind them (sites, gateways,
devices, alerts, dead letters, snapshots, history)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from conftest import now_ms
from sqlalchemy.orm import Session

from api.config import ApiSettings, AuthSettings, RateLimitSettings
from api.main import create_app
from api.ratelimit import RateLimiter
from sitewatch.core.influx import InfluxClient, InfluxSettings
from sitewatch.domains.accounts import add_api_key, add_user
from sitewatch.domains.alertrecords.model import Change, EventKind
from sitewatch.domains.deadletters import NewDeadLetter
from sitewatch.programs.localstack import InfluxServer

pytestmark = pytest.mark.integration

SECRET = "t" * 40
PASSWORD = "correct horse battery"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
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


@dataclass
class Api:
    client: httpx.AsyncClient
    app: Any
    settings: ApiSettings

    @property
    def state(self) -> Any:
        return self.app.state.sitewatch

    def session(self) -> Session:
        return self.state.sessions()  # type: ignore[no-any-return]

    async def token(self, user: str, password: str = PASSWORD, scope: str = "") -> str:
        r = await self.client.post(
            "/auth/token", data={"username": user, "password": password, "scope": scope}
        )
        assert r.status_code == 200, r.text
        return r.json()["access_token"]  # type: ignore[no-any-return]

    async def as_user(self, user: str, scope: str = "") -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(user, scope=scope)}"}


@pytest.fixture
async def api_factory(
    database_url: str, tmp_path: Path, influxdb: InfluxServer, unique: str
) -> AsyncIterator[Callable[..., Any]]:
    stack: list[Any] = []

    async def make(**overrides: Any) -> Api:
        settings = ApiSettings(
            environment="production",
            auth=AuthSettings(secret_key=SECRET),
            influx=InfluxSettings(url=influxdb.url, database=unique),
            database_url=database_url,
            snapshots_dir=tmp_path / "snapshots",
            **overrides,
        )
        app = create_app(settings)
        ctx = app.router.lifespan_context(app)
        await ctx.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        stack.append((ctx, client))
        api = Api(client, app, settings)
        with api.session() as s:
            add_user(s, "admin", PASSWORD, "admin")
            add_user(s, "county", PASSWORD, "county_supervisor")
            add_user(s, "officer-a", PASSWORD, "site_officer", ["S-A"])
            add_user(s, "viewer-b", PASSWORD, "viewer", ["S-B"])
            s.commit()
        headers = await api.as_user("admin")
        for site in (SITE_A, SITE_B):
            r = await client.post("/sites", json=site, headers=headers)
            assert r.status_code == 201, r.text
        return api

    yield make
    for ctx, client in reversed(stack):
        await client.aclose()
        await ctx.__aexit__(None, None, None)


@pytest.fixture
async def api(api_factory: Callable[..., Any]) -> Api:
    return await api_factory(rate_limit=RateLimitSettings(enabled=False))  # type: ignore[no-any-return]


async def test_no_token_is_401_and_wrong_password_and_bad_tokens_are_refused(api: Api) -> None:
    r = await api.client.get("/sites")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "not_authenticated"
    r = await api.client.post("/auth/token", data={"username": "admin", "password": "nope"})
    assert r.status_code == 401
    r = await api.client.post("/auth/token", data={"username": "ghost", "password": PASSWORD})
    assert r.status_code == 401, "an unknown user looks the same as a wrong password"
    now = int(time.time())
    expired = jwt.encode(
        {"sub": "user:admin", "scopes": ["read"], "iat": now - 7200, "exp": now - 3600},
        SECRET,
        algorithm="HS256",
    )
    r = await api.client.get("/sites", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    forged = jwt.encode(
        {"sub": "user:admin", "scopes": ["admin", "read"], "iat": now, "exp": now + 60},
        "x" * 40,
        algorithm="HS256",
    )
    r = await api.client.get("/sites", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    r = await api.client.get("/sites", headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401
    r = await api.client.get("/sites", headers={"X-API-Key": "swk_00000000_nothing"})
    assert r.status_code == 401


async def test_scopes_roles_and_sites(api: Api) -> None:
    officer = await api.as_user("officer-a")
    r = await api.client.get("/sites", headers=officer)
    assert [s["id"] for s in r.json()["items"]] == ["S-A"] and r.json()["total"] == 1
    assert (await api.client.get("/sites/S-B", headers=officer)).status_code == 404
    assert (await api.client.get("/sites/S-B/latest", headers=officer)).status_code == 404
    assert (await api.client.get("/sites/S-B/devices", headers=officer)).status_code == 404
    county = await api.as_user("county")
    r = await api.client.get("/sites", headers=county)
    assert r.json()["total"] == 2
    # missing scope -> 403, naming it
    r = await api.client.post("/sites", json={**SITE_A, "id": "S-C"}, headers=county)
    assert r.status_code == 403 and r.json()["error"]["detail"]["missing_scopes"] == ["admin"]
    assert (await api.client.get("/deadletters", headers=officer)).status_code == 403
    # a token asks for fewer scopes than the role has: it gets only those
    narrow = await api.as_user("admin", scope="read")
    r = await api.client.post("/sites", json={**SITE_A, "id": "S-C"}, headers=narrow)
    assert r.status_code == 403
    admin = await api.as_user("admin")
    for bad in (
        {"planned_headcount": True},
        {"latitude": "34.8"},
        {"id": "S C"},
        {"extra": 1},
        {"latitude": 91},
    ):  # strict: no true -> 1, no "34.8" -> 34.8
        r = await api.client.post("/sites", json={**SITE_A, "id": "S-D", **bad}, headers=admin)
        assert r.status_code == 422, (bad, r.text)
    me = (await api.client.get("/auth/me", headers=narrow)).json()
    assert me["scopes"] == ["read"] and me["sites"] is None
    # a disabled user's token stops working at once
    with api.session() as s:
        from sitewatch.domains.accounts import UserRow

        row = s.get(UserRow, "officer-a")
        assert row is not None
        row.disabled = True
        s.commit()
    assert (await api.client.get("/sites", headers=officer)).status_code == 401


async def test_api_key_for_machine_clients(api: Api) -> None:
    with api.session() as s:
        _, secret = add_api_key(s, "county-screen", "viewer", ["S-B"])
        s.commit()
    r = await api.client.get("/sites", headers={"X-API-Key": secret})
    assert r.status_code == 200 and [x["id"] for x in r.json()["items"]] == ["S-B"]
    assert (await api.client.get("/sites/S-A", headers={"X-API-Key": secret})).status_code == 404
    tampered = secret[:-2] + ("AA" if not secret.endswith("AA") else "BB")
    assert (await api.client.get("/sites", headers={"X-API-Key": tampered})).status_code == 401


async def test_a_burst_is_rate_limited_per_caller(api_factory: Callable[..., Any]) -> None:
    api: Api = await api_factory(rate_limit=RateLimitSettings(per_s=1, burst=5, login_per_min=6))
    officer = await api.as_user("officer-a")
    codes = [(await api.client.get("/sites", headers=officer)).status_code for _ in range(8)]
    assert codes[:5] == [200] * 5 and codes[-1] == 429
    r = await api.client.get("/sites", headers=officer)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "rate_limited"
    # another caller has a bucket of its own
    assert (await api.client.get("/sites", headers=await api.as_user("county"))).status_code == 200
    # password guessing: 6 log-ins a minute from one address (3 were the logins above)
    guesses = [
        (
            await api.client.post(
                "/auth/token", data={"username": "viewer-b", "password": f"guess{i}"}
            )
        ).status_code
        for i in range(4)
    ]
    assert guesses == [401, 401, 401, 429]


async def test_bad_tokens_are_rate_limited_per_address_as_bad_keys_are(
    api_factory: Callable[..., Any],
) -> None:
    api: Api = await api_factory(rate_limit=RateLimitSettings(per_s=0.01, burst=4))
    now = int(time.time())
    forged = jwt.encode(
        {"sub": "user:admin", "scopes": ["admin", "read"], "iat": now, "exp": now + 60},
        "x" * 40,
        algorithm="HS256",
    )
    expired = jwt.encode(
        {"sub": "user:admin", "scopes": ["read"], "iat": now - 7200, "exp": now - 3600},
        SECRET,
        algorithm="HS256",
    )
    ghost = jwt.encode(
        {"sub": "user:ghost", "scopes": ["read"], "iat": now, "exp": now + 60},
        SECRET,
        algorithm="HS256",
    )
    bad_tokens = [forged, expired, "not-a-jwt", ghost, forged, forged]
    codes = [
        (await api.client.get("/sites", headers={"Authorization": f"Bearer {t}"})).status_code
        for t in bad_tokens
    ]
    assert codes == [401] * 4 + [429] * 2
    r = await api.client.get("/sites", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "rate_limited"
    # the same address's bucket as bad API keys and no credentials: all three are spent
    assert (await api.client.get("/sites", headers={"X-API-Key": "swk_0_x"})).status_code == 429
    assert (await api.client.get("/sites")).status_code == 429
    # and the same as a burst of bad API keys gets, from a fresh address's bucket
    api.state.limiter._buckets.clear()
    codes = [
        (await api.client.get("/sites", headers={"X-API-Key": f"swk_0000000{i}_x"})).status_code
        for i in range(6)
    ]
    assert codes == [401] * 4 + [429] * 2
    # a good token is its user's bucket, not the address's
    assert (await api.client.get("/sites", headers=await api.as_user("county"))).status_code == 200


def test_token_bucket_refills() -> None:
    t = [0.0]
    rl = RateLimiter(per_s=2, burst=2, clock=lambda: t[0])
    assert [rl.retry_after("k") for _ in range(3)] == [0, 0, 0.5]
    t[0] += 0.5
    assert rl.retry_after("k") == 0 and rl.retry_after("other") == 0 and rl.limited == 1


async def test_secrets_never_default_outside_development(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="secret_key must be set in production"):
        ApiSettings(database_url=f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(ValueError, match="at least 32"):
        ApiSettings(environment="development", auth=AuthSettings(secret_key="short"))
    ApiSettings(environment="development")  # a development default is allowed there only


async def test_provisioning_a_gateway_writes_broker_files(
    api_factory: Callable[..., Any], tmp_path: Path
) -> None:
    from sitewatch.domains.brokeraccounts.brokerauth import hash_password, verify_password

    api: Api = await api_factory(
        rate_limit=RateLimitSettings(enabled=False),
        broker={
            "dir": tmp_path / "broker",
            "topic_prefix": "sw/v1",
            "service_accounts": [
                {"username": "ingest", "role": "ingest", "password_hash": hash_password("i" * 20)}
            ],
        },
    )
    admin = await api.as_user("admin")
    r = await api.client.post("/sites/S-A/gateways", json={"id": "GW1"}, headers=admin)
    assert r.status_code == 201, r.text
    creds = r.json()
    assert creds["topics"]["subscribe"] == "sw/v1/S-A/GW1/ack"
    passwd = (tmp_path / "broker" / "passwd").read_text()
    line = next(x for x in passwd.splitlines() if x.startswith(creds["mqtt_username"] + ":"))
    assert verify_password(creds["mqtt_password"], line.split(":", 1)[1])
    assert passwd.startswith("ingest:") or "\ningest:" in passwd
    assert "sw/v1/S-A/GW1/ack" in (tmp_path / "broker" / "acl").read_text()
    # listed without the password; a second one with the same id is a conflict
    r = await api.client.get("/sites/S-A/gateways", headers=admin)
    assert [g["id"] for g in r.json()["items"]] == ["GW1"]
    assert "mqtt_password" not in r.json()["items"][0]
    assert (r.json()["total"], r.json()["offset"], r.json()["limit"]) == (1, 0, 100)
    r = await api.client.post("/sites/S-A/gateways", json={"id": "GW1"}, headers=admin)
    assert r.status_code == 409
    r = await api.client.post("/sites/NOPE/gateways", json={"id": "GW1"}, headers=admin)
    assert r.status_code == 404
    officer = await api.as_user("officer-a")
    r = await api.client.post("/sites/S-A/gateways", json={"id": "GW2"}, headers=officer)
    assert r.status_code == 403


async def test_devices_with_rule_overrides(api: Api) -> None:
    admin = await api.as_user("admin")
    assert (
        await api.client.post("/sites/S-A/gateways", json={"id": "GW1"}, headers=admin)
    ).status_code == 201
    body = {
        "gateway": "GW1",
        "profile": "tower_crane",
        "name": "north crane",
        "overrides": {"load_alarm": {"set": {"value": 95}}},
    }
    r = await api.client.put("/sites/S-A/devices/TC01", json=body, headers=admin)
    assert r.status_code == 201, r.text
    r = await api.client.put("/sites/S-A/devices/TC01", json={**body, "name": "N"}, headers=admin)
    assert r.status_code == 200 and r.json()["name"] == "N"
    bad = {**body, "overrides": {"load_alarm": {"set": {"value": "heavy"}}}}
    r = await api.client.put("/sites/S-A/devices/TC01", json=bad, headers=admin)
    assert r.status_code == 400 and "override" in r.json()["error"]["message"]
    r = await api.client.put(
        "/sites/S-A/devices/TC01", json={**body, "overrides": {"no_such_rule": {}}}, headers=admin
    )
    assert r.status_code == 400
    r = await api.client.put(
        "/sites/S-A/devices/TC01", json={**body, "profile": "x"}, headers=admin
    )
    assert r.status_code == 400
    r = await api.client.put(
        "/sites/S-A/devices/TC02", json={**body, "gateway": "GW9"}, headers=admin
    )
    assert r.status_code == 404
    r = await api.client.get("/sites/S-A/devices", headers=await api.as_user("officer-a"))
    assert r.json()["total"] == 1 and r.json()["items"][0]["overrides"]["load_alarm"] == {
        "enabled": True,
        "set": {"value": 95},
    }


def _raise(api: Api, alert_id: str, site: str, at: int, device: str = "TC01") -> None:
    api.state.alerts.apply(
        [
            Change(
                EventKind.RAISED,
                alert_id,
                at,
                site,
                "GW1",
                device,
                "tower_crane",
                "load",
                "load_alarm",
                "alarm",
                "Crane overload",
                120.0,
                100.0,
            )
        ],
        at,
    )


async def test_alerts_list_acknowledge_resolve_and_history(api: Api) -> None:
    t = now_ms()
    _raise(api, "a" * 32, "S-A", t - 3000)
    _raise(api, "b" * 32, "S-B", t - 2000)
    _raise(api, "c" * 32, "S-A", t - 1000, device="TC02")
    county = await api.as_user("county")
    officer = await api.as_user("officer-a")
    r = await api.client.get("/alerts", headers=county, params={"limit": 2})
    assert r.json()["total"] == 3 and [a["id"][0] for a in r.json()["items"]] == ["c", "b"]
    r = await api.client.get("/alerts", headers=officer)
    assert {a["site"] for a in r.json()["items"]} == {"S-A"} and r.json()["total"] == 2
    r = await api.client.get("/alerts", headers=officer, params={"site": "S-B"})
    assert r.json()["total"] == 0
    assert (await api.client.get(f"/alerts/{'b' * 32}", headers=officer)).status_code == 404
    r = await api.client.post(
        f"/alerts/{'a' * 32}/ack", json={"comment": "crane stopped"}, headers=officer
    )
    assert r.status_code == 200 and r.json()["acked_by"] == "user:officer-a"
    assert r.json()["ack_comment"] == "crane stopped"
    r = await api.client.post(f"/alerts/{'a' * 32}/ack", json={}, headers=officer)
    assert r.status_code == 409
    r = await api.client.post(f"/alerts/{'a' * 32}/ack", headers=officer)  # no body
    assert r.status_code == 409 and "was acknowledged" in r.json()["error"]["message"]
    # a site-level alert is the site's to acknowledge, not the county's
    r = await api.client.post(f"/alerts/{'c' * 32}/ack", json={}, headers=county)
    assert r.status_code == 403
    # escalated to the county: now the county acknowledges it, the site officer cannot
    api.state.alerts.escalate_due(t + 3_600_000, {"alarm": 60, "warning": None})
    r = await api.client.post(f"/alerts/{'c' * 32}/ack", json={}, headers=officer)
    assert r.status_code == 403 and "county" in r.json()["error"]["message"]
    r = await api.client.post(f"/alerts/{'c' * 32}/ack", json={"comment": "on it"}, headers=county)
    assert r.status_code == 200 and r.json()["level"] == "county"
    r = await api.client.post(
        f"/alerts/{'a' * 32}/resolve", json={"comment": "fixed"}, headers=officer
    )
    assert r.status_code == 200 and r.json()["state"] == "resolved"
    assert (
        await api.client.post(f"/alerts/{'a' * 32}/resolve", json={}, headers=county)
    ).status_code == 403
    r = await api.client.get("/alerts", headers=county, params={"state": "open"})
    assert {a["id"][0] for a in r.json()["items"]} == {"b", "c"}
    # the comment is optional: no body at all, or a body without it
    r = await api.client.post(f"/alerts/{'b' * 32}/ack", headers=await api.as_user("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["acked_by"] == "user:admin" and r.json()["ack_comment"] == ""
    r = await api.client.post(f"/alerts/{'b' * 32}/resolve", headers=await api.as_user("admin"))
    assert r.status_code == 200 and r.json()["resolve_comment"] == ""
    bad: object
    for bad in ({"comment": 5}, {"comment": "x" * 2001}, {"note": "x"}, []):
        r = await api.client.post(f"/alerts/{'c' * 32}/resolve", json=bad, headers=officer)
        assert r.status_code == 422, (bad, r.text)
    r = await api.client.get(f"/alerts/{'a' * 32}/history", headers=officer)
    assert [h["event"] for h in r.json()] == ["raised", "acknowledged", "resolved"]
    assert r.json()[1]["actor"] == "user:officer-a"
    assert api.state.alerts.verify().ok
    for bad in ({"state": "nope"}, {"limit": 0}, {"limit": 10_000}, {"since": "yesterday"}):
        r = await api.client.get("/alerts", headers=county, params=bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert (await api.client.get("/alerts/not-an-id", headers=county)).status_code == 422


async def test_dead_letters_browse_and_reason_counts(api: Api) -> None:
    api.state.dead_letters.create_schema()
    api.state.dead_letters.add_many(
        [
            NewDeadLetter(
                "sw/S-A/GW1/telemetry",
                "S-A",
                "GW1",
                1,
                "TC01",
                5,
                "out_of_range",
                "load_pct 900 > 200",
                b'{"load_pct":900}',
            ),
            NewDeadLetter(
                "sw/S-B/GW1/telemetry",
                "S-B",
                "GW1",
                2,
                None,
                None,
                "bad_json",
                "not JSON",
                b"\xff\x00",
            ),
        ]
    )
    county = await api.as_user("county")
    r = await api.client.get("/deadletters", headers=county)
    assert r.json()["total"] == 2 and r.json()["items"][0]["reason"] == "bad_json"
    assert r.json()["items"][0]["payload_b64"] == "/wA="
    r = await api.client.get("/deadletters", headers=county, params={"reason": "bad_json"})
    assert r.json()["total"] == 1
    r = await api.client.get("/deadletters/reasons", headers=county)
    assert r.json() == {"out_of_range": 1, "bad_json": 1}
    r = await api.client.get("/deadletters", headers=county, params={"reason": "nonsense"})
    assert r.status_code == 422


async def test_snapshots_by_hash_with_their_content_type(api: Api) -> None:
    officer = await api.as_user("officer-a")
    r = await api.client.post(
        "/sites/S-A/snapshots", content=PNG, headers={**officer, "Content-Type": "image/png"}
    )
    assert r.status_code == 201, r.text
    sha = r.json()["sha256"]
    assert sha == hashlib.sha256(PNG).hexdigest() and r.json()["media_type"] == "image/png"
    again = await api.client.post("/sites/S-A/snapshots", content=PNG, headers=officer)
    assert again.status_code == 200 and again.json()["created"] is False
    r = await api.client.get(f"/sites/S-A/snapshots/{sha}", headers=officer)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert hashlib.sha256(r.content).hexdigest() == sha
    assert (
        await api.client.get(f"/sites/S-B/snapshots/{sha}", headers=await api.as_user("viewer-b"))
    ).status_code == 404
    r = await api.client.post("/sites/S-A/snapshots", content=b"GIF89a....", headers=officer)
    assert r.status_code == 415
    r = await api.client.post("/sites/S-A/snapshots", content=b"", headers=officer)
    assert r.status_code == 400
    r = await api.client.post("/sites/S-B/snapshots", content=PNG, headers=officer)
    assert r.status_code == 404
    viewer = await api.as_user("viewer-b")
    assert (
        await api.client.post("/sites/S-B/snapshots", content=PNG, headers=viewer)
    ).status_code == 403
    assert (
        await api.client.get("/sites/S-A/snapshots/" + "0" * 64, headers=officer)
    ).status_code == 404


async def test_history_aggregated_and_bounded(api: Api, influx_client: InfluxClient) -> None:
    admin = await api.as_user("admin")
    await api.client.post("/sites/S-A/gateways", json={"id": "GW1"}, headers=admin)
    await api.client.put(
        "/sites/S-A/devices/TC01", json={"gateway": "GW1", "profile": "tower_crane"}, headers=admin
    )
    t0 = (now_ms() // 60_000 - 10) * 60_000
    lines = "".join(
        f"tower_crane,device=TC01,gateway=GW1,site=S-A seq={i}i,load_pct={i}.0 {t0 + i * 10_000}\n"
        for i in range(60)
    )
    await influx_client.write(lines.encode())
    officer = await api.as_user("officer-a")
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 / 1000))
    r = await api.client.get(
        "/sites/S-A/devices/TC01/history",
        headers=officer,
        params={"start": iso, "fields": "load_pct", "every_s": 60, "aggregate": "max"},
    )
    assert r.status_code == 200, r.text
    assert [p["values"]["load_pct"] for p in r.json()["points"]] == [
        5.0,
        11.0,
        17.0,
        23.0,
        29.0,
        35.0,
        41.0,
        47.0,
        53.0,
        59.0,
    ]
    r = await api.client.get(
        "/sites/S-A/devices/TC01/history",
        headers=officer,
        params={"start": iso, "fields": "load_pct"},
    )
    assert len(r.json()["points"]) == 60 and not r.json()["truncated"]
    for bad, code in (
        ({"fields": "nope"}, 400),
        ({"every_s": 1, "aggregate": "mean", "start": "2000-01-01T00:00:00Z"}, 400),
        ({"every_s": 60}, 400),
        ({"aggregate": "median"}, 422),
        (
            {"start": "0368-01-27T14:53:29-09:50", "end": "1041-05-07T11:57:37Z"},
            400,
        ),  # found by Schemathesis: InfluxDB cannot hold such times
        ({"end": "2000-01-01T00:00:00Z"}, 400),
    ):
        r = await api.client.get(
            "/sites/S-A/devices/TC01/history", headers=officer, params={"start": iso, **bad}
        )
        assert r.status_code == code, (bad, r.text)
    r = await api.client.get(
        "/sites/S-A/devices/NOPE/history", headers=officer, params={"start": iso}
    )
    assert r.status_code == 404


async def test_health_and_readiness(api: Api) -> None:
    assert (await api.client.get("/health")).json()["status"] == "ok"
    r = await api.client.get("/ready")
    assert r.status_code == 200 and set(r.json()["checks"]) == {"influxdb", "database", "snapshots"}


def test_accounts_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'acc.db'}"

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "sitewatch.programs.cli",
                "accounts",
                *args,
                "--database-url",
                url,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = run("add-user", "li.wei", "--role", "site_officer", "--site", "S-A", stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert run("add-user", "x", "--role", "admin", stdin="short\n").returncode == 1
    assert "at least 12" in run("add-user", "x", "--role", "admin", stdin="short\n").stderr
    assert (
        "needs at least one site"
        in run("add-user", "y", "--role", "site_officer", stdin=PASSWORD + "\n").stderr
    )
    r = run("add-key", "screen", "--role", "viewer")
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("swk_")
    key_id = r.stdout.split()[2]
    assert run("revoke-key", key_id).returncode == 0
    assert run("disable-user", "li.wei").returncode == 0
    listing = run("list").stdout
    assert "li.wei" in listing and "(disabled)" in listing and "(revoked)" in listing
    assert run("disable-user", "nobody").returncode == 1


async def test_gateway_provisioned_through_the_api_logs_in_after_reload(
    api_factory: Callable[..., Any], tmp_path: Path, database_url: str
) -> None:
    """POST /sites/{site}/gateways -> the broker's files rewritten -> SIGHUP -> the new
    gateway logs in with the password it was given, and may publish only as itself."""
    if "sqlite" not in database_url:
        pytest.skip("the broker part does not depend on the database")
    from sitewatch.core import mqtt
    from sitewatch.domains.brokeraccounts.brokerauth import hash_password
    from sitewatch.programs.localstack import MosquittoServer

    broker_dir = tmp_path / "broker"
    api: Api = await api_factory(
        rate_limit=RateLimitSettings(enabled=False),
        broker={
            "dir": broker_dir,
            "topic_prefix": "sw/v1",
            "pid_file": tmp_path / "mq.pid",
            "service_accounts": [
                {"username": "ingest", "role": "ingest", "password_hash": hash_password("i" * 20)}
            ],
        },
    )
    admin = await api.as_user("admin")
    first = (await api.client.post("/sites/S-A/gateways", json={"id": "GW1"}, headers=admin)).json()
    server = MosquittoServer(
        tmp_path / "mosquitto", password_file=broker_dir / "passwd", acl_file=broker_dir / "acl"
    )
    server.start()
    try:
        assert server.proc is not None
        (tmp_path / "mq.pid").write_text(str(server.proc.pid))
        r = await api.client.post("/sites/S-B/gateways", json={"id": "GW2"}, headers=admin)
        assert r.status_code == 201
        second = r.json()

        def client(creds: dict[str, Any]) -> mqtt.Client:
            return mqtt.Client(
                mqtt.MqttSettings(
                    host=server.host,
                    port=server.port,
                    topic_prefix="sw/v1",
                    username=creds["mqtt_username"],
                    password=creds["mqtt_password"],
                ),
                client_id=f"{creds['id']}-{time.monotonic_ns()}",
                connect_timeout_s=5,
            )

        async def logs_in() -> bool:
            try:
                async with client(second) as c:
                    await c.publish("sw/v1/S-B/GW2/telemetry", b"{}", qos=1)
                return True
            except mqtt.MqttError:
                return False

        from conftest import wait_for

        await wait_for(logs_in, timeout=10, what="the new gateway accepted after SIGHUP")
        async with client(second) as c:
            with pytest.raises(mqtt.MqttError, match="Not authorized"):
                await c.publish("sw/v1/S-A/GW1/telemetry", b"{}", qos=1)
        wrong = {**first, "mqtt_password": "not-its-password"}
        with pytest.raises(mqtt.MqttError):
            async with client(wrong):
                pass
    finally:
        server.close()


async def test_device_overrides_set_through_the_api_reach_the_alert_service(
    api: Api, database_url: str
) -> None:
    from alerts.service import AlertService
    from sitewatch.domains.alertrecords.settings import AlertSettings

    admin = await api.as_user("admin")
    await api.client.post("/sites/S-A/gateways", json={"id": "GW1"}, headers=admin)
    r = await api.client.put(
        "/sites/S-A/devices/TC01",
        headers=admin,
        json={
            "gateway": "GW1",
            "profile": "tower_crane",
            "overrides": {"load_alarm": {"set": {"value": 95}}, "tilt_alarm": {"enabled": False}},
        },
    )
    assert r.status_code == 201, r.text
    service = AlertService(AlertSettings(database_url=database_url))
    before = {r.id: r for r in service.book.rules_for("S-A", "TC01", "tower_crane")}
    assert before["load_alarm"].value == 100 and "tilt_alarm" in before  # type: ignore[union-attr]
    service._apply_registry_overrides()
    rules = {r.id: r for r in service.engine.book.rules_for("S-A", "TC01", "tower_crane")}
    assert rules["load_alarm"].value == 95  # type: ignore[union-attr]
    assert "tilt_alarm" not in rules
    other = {r.id: r for r in service.engine.book.rules_for("S-A", "TC02", "tower_crane")}
    assert other["load_alarm"].value == 100  # type: ignore[union-attr]
    service.store.dispose()

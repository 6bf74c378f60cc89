"""What a device vendor meets in the API, on SQLite and on a real PostgreSQL, with readings
sent by `mosquitto_pub` through the real ingest: a vendor key bound to a gateway reads that
gateway's dead letters and nobody else's; a device never registered is listed as
`registered: false` until an admin registers it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningIngest, now_ms, wait_for

from api.config import ApiSettings
from api.main import create_app
from sitewatch.core.influx import InfluxSettings
from sitewatch.domains.accounts import AccountError, add_api_key
from sitewatch.programs.localstack import InfluxServer, MosquittoServer

pytestmark = pytest.mark.integration

SITE = {
    "name": "Site",
    "county": "Lankao",
    "town": "Chengguan",
    "project_type": "bridge",
    "latitude": 34.82,
    "longitude": 114.82,
}


def mosquitto_pub(server: MosquittoServer, topic: str, payload: bytes) -> None:
    subprocess.run(
        ["mosquitto_pub", "-h", server.host, "-p", str(server.port), "-q", "1", "-t", topic, "-s"],
        input=payload,
        check=True,
        timeout=10,
    )


def batch(n: int, *items: dict[str, Any]) -> bytes:
    return json.dumps({"v": 1, "batch": n, "sent": now_ms(), "items": list(items)}).encode()


def crane(device: str, seq: int, **values: Any) -> dict[str, Any]:
    return {
        "device": device,
        "profile": "tower_crane",
        "ts": now_ms(),
        "seq": seq,
        "values": values,
    }


class Api:
    def __init__(self, client: httpx.AsyncClient, app: Any, url: str) -> None:
        self.client, self.app, self.database_url = client, app, url

    def add_key(
        self,
        name: str,
        role: str,
        sites: list[str] = [],  # noqa: B006
        gateway: str | None = None,
    ) -> dict[str, str]:
        with self.app.state.sitewatch.sessions() as s:
            _, secret = add_api_key(s, name, role, sites, gateway)
            s.commit()
        return {"X-API-Key": secret}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``sitewatch …`` against the API's database, as an operator runs it."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "sitewatch.programs.cli",
                *args,
                "--database-url",
                self.database_url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def accounts(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.cli("accounts", *args)


@pytest.fixture
async def api(
    database_url: str, influxdb: InfluxServer, unique: str, tmp_path: Path
) -> AsyncIterator[Api]:
    settings = ApiSettings(
        environment="development",
        influx=InfluxSettings(url=influxdb.url, database=unique),
        database_url=database_url,
        snapshots_dir=tmp_path / "snapshots",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as client:
            yield Api(client, app, database_url)


async def _provision(api: Api, admin: dict[str, str], *gateways: tuple[str, str]) -> None:
    for site in sorted({s for s, _ in gateways}):
        r = await api.client.post("/sites", json={**SITE, "id": site}, headers=admin)
        assert r.status_code == 201, r.text
    for site, gateway in gateways:
        r = await api.client.post(f"/sites/{site}/gateways", json={"id": gateway}, headers=admin)
        assert r.status_code == 201, r.text


async def test_a_vendor_key_reads_its_own_gateways_dead_letters_only(
    api: Api,
    database_url: str,
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
) -> None:
    admin = api.add_key("ops", "admin")
    await _provision(api, admin, ("S1", "GW1"), ("S1", "GW2"), ("S2", "GW1"))
    # the admin makes the vendor's key on the command line, bound to S1/GW1
    r = api.accounts("add-key", "acme", "--role", "vendor", "--site", "S1", "--gateway", "GW1")
    assert r.returncode == 0, r.stderr
    assert "gateway S1/GW1" in r.stdout
    vendor = {"X-API-Key": r.stdout.splitlines()[-1]}
    assert "S1/GW1" in api.accounts("list").stdout
    # a vendor key needs one site and a provisioned gateway of it
    r = api.accounts("add-key", "x", "--role", "vendor", "--site", "S1")
    assert r.returncode == 1 and "one gateway" in r.stderr
    r = api.accounts("add-key", "x", "--role", "vendor", "--site", "S1", "--gateway", "GW9")
    assert r.returncode == 1 and "no gateway GW9 at site S1" in r.stderr
    with pytest.raises(AccountError, match="only a vendor key"):
        api.add_key("x", "viewer", [], "GW1")

    # three gateways each send an item ingest refuses (a field over its physical range)
    await start_ingest(database_url=database_url)
    sent_at = now_ms()
    for n, (site, gateway) in enumerate([("S1", "GW1"), ("S1", "GW2"), ("S2", "GW1")]):
        mosquitto_pub(
            mosquitto,
            f"{prefix}/{site}/{gateway}/telemetry",
            batch(n + 1, crane("TC01", 1, load_t=3.0), crane("TC02", 1, moment_pct=1e9)),
        )

    async def all_refused() -> bool:
        r = await api.client.get("/deadletters", headers=admin)
        return bool(r.json()["total"] == 3)

    await wait_for(all_refused, timeout=15, what="three items dead-lettered")

    r = await api.client.get("/deadletters", headers=vendor)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == 1
    [item] = page["items"]
    assert (item["site"], item["gateway"], item["device"], item["reason"]) == (
        "S1",
        "GW1",
        "TC02",
        "out_of_range",
    )
    # when it was refused: ms since the epoch, as every other time of the API
    assert isinstance(item["received_at"], int)
    assert sent_at - 1000 <= item["received_at"] <= now_ms() + 1000
    # the operator's command shows the same time, in UTC and in ms
    r = api.cli("deadletters", "--site", "S1")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith(f"#{item['id']} "))
    assert f"Z ({item['received_at']}) out_of_range" in line
    assert (await api.client.get("/deadletters/reasons", headers=vendor)).json() == {
        "out_of_range": 1
    }
    # another site or gateway: an empty page, not an error that tells what exists
    for params in ({"site": "S2"}, {"gateway": "GW2"}, {"site": "S2", "gateway": "GW1"}):
        r = await api.client.get("/deadletters", headers=vendor, params=params)
        assert r.status_code == 200 and r.json()["total"] == 0 and r.json()["items"] == []
    r = await api.client.get(
        "/deadletters",
        headers=vendor,
        params={"site": "S1", "gateway": "GW1", "reason": "out_of_range"},
    )
    assert r.json()["total"] == 1
    # nothing else: no site, reading or alert
    for path in ("/sites", "/sites/S1", "/sites/S1/latest", "/sites/S1/devices", "/alerts"):
        assert (await api.client.get(path, headers=vendor)).status_code == 403, path
    me = (await api.client.get("/auth/me", headers=vendor)).json()
    assert me == {
        "name": me["name"],
        "role": "vendor",
        "scopes": ["deadletters:read"],
        "sites": ["S1"],
        "gateway": "GW1",
    }
    # an operator filters by gateway too
    r = await api.client.get("/deadletters", headers=admin, params={"gateway": "GW1"})
    assert r.json()["total"] == 2
    # revoked: refused at once
    key_id = vendor["X-API-Key"].split("_")[1]
    assert api.accounts("revoke-key", key_id).returncode == 0
    assert (await api.client.get("/deadletters", headers=vendor)).status_code == 401


async def test_a_device_never_registered_is_listed_until_an_admin_registers_it(
    api: Api,
    database_url: str,
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
) -> None:
    admin = api.add_key("ops", "admin")
    await _provision(api, admin, ("S1", "GW1"))
    r = await api.client.put(
        "/sites/S1/devices/TC01",
        headers=admin,
        json={"gateway": "GW1", "profile": "tower_crane", "name": "north crane"},
    )
    assert r.status_code == 201, r.text
    assert (await api.client.get("/sites/S1/devices/ENV01", headers=admin)).status_code == 404
    await start_ingest(database_url=database_url)
    # the gateway sends readings of a registered crane and of two devices never registered
    env = {
        "device": "ENV01",
        "profile": "environment",
        "ts": now_ms(),
        "seq": 1,
        "values": {"pm10": 55.0},
    }
    mosquitto_pub(
        mosquitto,
        f"{prefix}/S1/GW1/telemetry",
        batch(1, crane("TC01", 1, load_t=3.0), crane("TC02", 1, load_t=1.0), env),
    )

    async def all_latest() -> bool:
        r = await api.client.get("/sites/S1/latest", headers=admin)
        return len(r.json()) == 3

    await wait_for(all_latest, timeout=15, what="three devices' readings stored")
    r = await api.client.get("/sites/S1/devices", headers=admin)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == 3
    assert [(d["id"], d["registered"], d["profile"], d["gateway"]) for d in page["items"]] == [
        ("ENV01", False, "environment", "GW1"),
        ("TC01", True, "tower_crane", "GW1"),
        ("TC02", False, "tower_crane", "GW1"),
    ]
    unregistered = page["items"][0]
    assert unregistered["created_at"] is None and unregistered["name"] == ""
    assert unregistered["overrides"] == {}
    assert page["items"][1]["name"] == "north crane" and page["items"][1]["created_at"] > 0
    # paged like every list, over both kinds
    r = await api.client.get("/sites/S1/devices", headers=admin, params={"offset": 1, "limit": 1})
    assert r.json()["total"] == 3 and [d["id"] for d in r.json()["items"]] == ["TC01"]
    r = await api.client.get("/sites/S1/devices/TC02", headers=admin)
    assert r.status_code == 200 and r.json()["registered"] is False
    # an admin confirms it by registering it
    r = await api.client.put(
        "/sites/S1/devices/TC02",
        headers=admin,
        json={"gateway": "GW1", "profile": "tower_crane", "name": "south crane"},
    )
    assert r.status_code == 201 and r.json()["registered"] is True
    r = await api.client.get("/sites/S1/devices", headers=admin)
    assert [(d["id"], d["registered"]) for d in r.json()["items"]] == [
        ("ENV01", False),
        ("TC01", True),
        ("TC02", True),
    ]
    assert r.json()["items"][2]["name"] == "south crane"


async def test_provisioning_answers_as_documented_and_gateways_are_paged(api: Api) -> None:
    admin = api.add_key("ops", "admin")
    await _provision(api, admin, ("S1", "GW1"))
    r = await api.client.post(
        "/sites/S1/gateways",
        headers=admin,
        json={"id": "GW2", "description": "north gate, cabinet 2"},
    )
    assert r.status_code == 201, r.text
    creds = r.json()
    assert set(creds) == {
        "site",
        "id",
        "description",
        "mqtt_username",
        "created_at",
        "mqtt_password",
        "topics",
    }
    assert creds["mqtt_username"] == "S1.GW2" and creds["description"] == "north gate, cabinet 2"
    assert creds["topics"] == {
        "publish": "sitewatch/v1/S1/GW2/telemetry|status|attendance|camera|snapshot/+",
        "subscribe": "sitewatch/v1/S1/GW2/ack",
    }
    r = await api.client.post("/sites/S1/gateways", headers=admin, json={"id": "GW3", "x": 1})
    assert r.status_code == 422
    r = await api.client.get("/sites/S1/gateways", headers=admin)
    assert r.json()["total"] == 2 and [g["id"] for g in r.json()["items"]] == ["GW1", "GW2"]
    r = await api.client.get("/sites/S1/gateways", headers=admin, params={"offset": 1, "limit": 1})
    assert r.status_code == 200
    page = r.json()
    assert (page["total"], page["offset"], page["limit"]) == (2, 1, 1)
    assert [g["id"] for g in page["items"]] == ["GW2"] and "mqtt_password" not in page["items"][0]
    r = await api.client.get("/sites/S1/gateways", headers=admin, params={"limit": 501})
    assert r.status_code == 422

"""The API against a real InfluxDB filled through ingest's own formatter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from conftest import now_ms

from api.config import ApiSettings
from api.main import create_app
from sitewatch.core.influx import InfluxClient, InfluxSettings
from sitewatch.domains.accounts import add_api_key
from sitewatch.domains.registry import SiteRow
from sitewatch.programs.localstack import InfluxServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(
    influxdb: InfluxServer, unique: str, tmp_path: Path, influx_client: InfluxClient
) -> AsyncIterator[httpx.AsyncClient]:
    settings = ApiSettings(
        environment="development",
        influx=InfluxSettings(url=influxdb.url, database=unique),
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        snapshots_dir=tmp_path / "snapshots",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        with app.state.sitewatch.sessions() as s:
            _, key = add_api_key(s, "test", "viewer")
            for site in ("S1", "S2"):  # per-site routes answer 404 for other sites
                s.add(
                    SiteRow(
                        id=site,
                        name=f"Site {site}",
                        county="C",
                        town="T",
                        project_type="building",
                        latitude=34.8,
                        longitude=114.8,
                        created_at=now_ms(),
                    )
                )
            s.commit()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers={"X-API-Key": key}
        ) as client:
            yield client


async def test_readiness_reports_each_dependency(api: httpx.AsyncClient) -> None:
    r = await api.get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["checks"]["influxdb"]["ok"] and body["checks"]["database"]["ok"]


async def test_not_ready_when_influx_is_down(tmp_path: Path) -> None:
    settings = ApiSettings(
        environment="development",
        influx=InfluxSettings(url="http://127.0.0.1:9", timeout_s=1),
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        snapshots_dir=tmp_path / "snapshots",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as client:
            r = await client.get("/ready")
            assert (await client.get("/health")).status_code == 200  # the process is up
    assert r.status_code == 503 and r.json()["checks"]["influxdb"]["ok"] is False


async def test_latest_readings(api: httpx.AsyncClient, influx_client: InfluxClient) -> None:
    t = now_ms()
    await influx_client.write(
        f"tower_crane,device=TC01,gateway=GW1,site=S1 seq=1i,load_t=1.5 {t - 2000}\n"
        f"tower_crane,device=TC01,gateway=GW1,site=S1 seq=2i,load_t=2.5 {t - 1000}\n"
        f"environment,device=ENV01,gateway=GW1,site=S1 seq=7i,pm10=55.0 {t - 500}\n"
        f"environment,device=ENV09,gateway=GW9,site=S2 seq=1i,pm10=1.0 {t}\n".encode()
    )
    r = await api.get("/sites/S1/latest")
    assert r.status_code == 200
    body = r.json()
    assert [(x["device"], x["seq"]) for x in body] == [("ENV01", 7), ("TC01", 2)]
    assert body[1]["values"] == {"load_t": 2.5} and body[1]["profile"] == "tower_crane"
    assert body[1]["ts"] == t - 1000 and body[1]["gateway"] == "GW1"
    r = await api.get("/sites/S1/devices/TC01/latest")
    assert r.status_code == 200 and r.json()["seq"] == 2


@pytest.mark.parametrize(
    "path, status, code",
    [
        ("/sites/S1/devices/NOPE/latest", 404, "not_found"),
        ("/sites/S%201/latest", 422, "invalid_request"),
        ("/sites/S1'%20OR%20'1'='1/latest", 422, "invalid_request"),
        ("/sites/S1/devices/a,b/latest", 422, "invalid_request"),
        ("/nowhere", 404, "http_404"),
    ],
)
async def test_errors_have_one_shape(
    api: httpx.AsyncClient, path: str, status: int, code: str
) -> None:
    r = await api.get(path)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]

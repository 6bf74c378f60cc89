"""GET /sites/{site}/camera-events against a real InfluxDB filled with ingest's own line
formatter: newest first, filtered, paginated, each with its snapshot's address."""

from __future__ import annotations

import httpx
import pytest
from conftest import now_ms
from test_api import api  # noqa: F401 (the fixture)

from sitewatch.core.contract import CameraItem
from sitewatch.core.influx import InfluxClient
from sitewatch.core.points import camera_line as _camera_line

pytestmark = pytest.mark.integration
SHA = "ab" * 32


async def test_camera_events_newest_first_with_their_snapshot_address(
    api: httpx.AsyncClient,  # noqa: F811
    influx_client: InfluxClient,
) -> None:
    t = now_ms()
    items = [
        (
            CameraItem(
                device="CAM01",
                ts=t - 3000,
                seq=1,
                event="intrusion",
                zone="crane-swing",
                count=2,
                confidence=0.8,
                snapshot=SHA,
                method="classical",
            ),
            "S1",
        ),
        (
            CameraItem(
                device="CAM01", ts=t - 2000, seq=2, event="intrusion", zone="crane-swing", count=0
            ),
            "S1",
        ),
        (
            CameraItem(
                device="CAM02", ts=t - 1000, seq=1, event="fire_smoke", count=1, method="model"
            ),
            "S1",
        ),
        (CameraItem(device="CAM09", ts=t, seq=1, event="intrusion", count=1), "S2"),
    ]
    await influx_client.write("\n".join(_camera_line(i, site, "GW1") for i, site in items).encode())
    r = await api.get("/sites/S1/camera-events")
    assert r.status_code == 200
    page = r.json()
    assert (page["total"], page["offset"], page["limit"]) == (3, 0, 100)
    body = page["items"]
    assert [(e["device"], e["event"], e["count"]) for e in body] == [
        ("CAM02", "fire_smoke", 1),
        ("CAM01", "intrusion", 0),
        ("CAM01", "intrusion", 2),
    ]
    first = body[2]
    assert first["snapshot_url"] == f"/sites/S1/snapshots/{SHA}"
    assert first["zone"] == "crane-swing" and first["method"] == "classical"
    assert first["ts"] == t - 3000 and first["gateway"] == "GW1"
    assert body[1]["snapshot_url"] is None
    r = await api.get("/sites/S1/camera-events", params={"event": "fire_smoke"})
    assert [e["device"] for e in r.json()["items"]] == ["CAM02"] and r.json()["total"] == 1
    r = await api.get("/sites/S1/camera-events", params={"device": "CAM01", "limit": 1})
    assert [(e["seq"]) for e in r.json()["items"]] == [2] and r.json()["total"] == 2
    r = await api.get(
        "/sites/S1/camera-events", params={"device": "CAM01", "limit": 1, "offset": 1}
    )
    assert [(e["seq"]) for e in r.json()["items"]] == [1] and r.json()["total"] == 2
    r = await api.get("/sites/S1/camera-events", params={"offset": 3})
    assert r.json()["items"] == [] and r.json()["total"] == 3
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        r = await api.get("/sites/S1/camera-events", params=bad)
        assert r.status_code == 422, bad
    r = await api.get("/sites/S3/camera-events")  # no such site (S2 has events, S3 none)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await api.get("/sites/S1/camera-events", params={"event": "dancing"})
    assert r.status_code == 422
    r = await api.get(
        "/sites/S1/camera-events",
        params={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"

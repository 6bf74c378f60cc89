"""The Grafana dashboards without servers: the committed files are what the code builds,
the JSON is valid for Grafana's current classic schema (version 42), every query is
InfluxQL over defined variables, limits come from the device profiles, and Grafana's
macros are filled as Grafana fills them. Their queries against real InfluxDB:
test_dashboard_queries.py."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dashboards import files
from dashboards.catalog import build_all
from dashboards.grafana import (
    Selection,
    datasource,
    format_interval,
    interpolate,
    interval_ms,
    push,
)
from dashboards.model import DATASOURCE_UID, SCHEMA_VERSION, Dashboard
from sitewatch.core.profiles import load_profiles
from sitewatch.programs.cli import main

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = build_all()
#: panel types Grafana 12 ships (Angular panels such as graph and singlestat are gone)
CORE_PANELS = {
    "timeseries",
    "stat",
    "table",
    "geomap",
    "bargauge",
    "barchart",
    "state-timeline",
    "text",
    "row",
}
#: what every dashboard of a county deployment must have
REQUIRED = {
    "county",
    "site",
    "crane",
    "hoist",
    "environment",
    "pit",
    "formwork",
    "electrical",
    "attendance",
    "alerts",
}


def _panels(d: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in d["panels"]:
        yield p
        yield from p.get("panels", [])


def test_committed_files_are_what_the_code_generates() -> None:
    assert files.check() == []
    assert {p.stem for p in (ROOT / "dashboards/json").glob("*.json")} == set(DASHBOARDS)
    assert REQUIRED <= set(DASHBOARDS)


def test_compose_runs_a_grafana_that_reads_schema_42() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    image = compose["services"]["grafana"]["image"]
    major, minor = (int(x) for x in image.split(":")[1].split(".")[:2])
    assert (major, minor) >= (12, 2), f"{image}: schema version 42 needs Grafana 12.2+"


def test_check_names_a_file_that_differs_and_generate_repairs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "dashboards"
    shutil.copytree(ROOT / "dashboards/json", copy / "json")
    shutil.copytree(ROOT / "dashboards/provisioning", copy / "provisioning")
    crane = copy / "json/crane.json"
    crane.write_text(crane.read_text().replace("moment", "momnet"))
    (copy / "json/old.json").write_text("{}")
    assert main(["dashboards", "check", "--dir", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "crane.json: differs" in err and "old.json: not generated" in err
    assert main(["dashboards", "generate", "--dir", str(copy)]) == 0
    assert main(["dashboards", "check", "--dir", str(copy)]) == 0
    assert not (copy / "json/old.json").exists()


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_json_is_valid_for_grafana_schema_42(name: str) -> None:
    d = json.loads((ROOT / f"dashboards/json/{name}.json").read_text())
    assert d["schemaVersion"] == SCHEMA_VERSION == 42
    assert re.fullmatch(r"[a-z0-9-]{1,40}", d["uid"]) and d["title"]
    # what migrations 40-43 would change is already in the migrated form
    assert isinstance(d["refresh"], str)
    assert "time_options" not in d["timepicker"]
    ids = [p["id"] for p in _panels(d)]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in _panels(d):
        assert p["type"] in CORE_PANELS, p["type"]
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] >= 1, (p["title"], g)
        here = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not here & cells, f"{p['title']} overlaps another panel"
        cells |= here
        for t in p.get("transformations", []):
            assert t["id"] != "formatTime"
        for o in p.get("fieldConfig", {}).get("overrides", []):
            for prop in o["properties"]:
                if prop["id"] == "custom.hideFrom" and prop["value"].get("viz"):
                    assert prop["value"].get("tooltip")
        if p["type"] in ("row", "text"):
            continue
        assert p["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs))
        for t in p["targets"]:
            assert t["rawQuery"] is True and t["datasource"]["uid"] == DATASOURCE_UID
    for a in d["annotations"]["list"][1:]:
        assert a["datasource"]["uid"] == DATASOURCE_UID and a["query"] == a["target"]["query"]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_is_bounded_influxql_over_defined_variables(name: str) -> None:
    d = DASHBOARDS[name]
    defined = {v.name for v in d.variables}
    for where, q, _ in d.queries():
        sql = q.influxql
        assert sql.startswith("SELECT ") and "|>" not in sql and "from(bucket" not in sql
        # every query is bounded in time: the dashboard's range, or a fixed look-back
        assert "$timeFilter" in sql or "now() - " in sql, where
        used = set(re.findall(r"\$(?!__|timeFilter|tag_)([A-Za-z_]\w*)", sql))
        assert used <= defined, f"{where}: {used - defined} not defined"
        assert "$site" in sql, f"{where}: not filtered by site"
        assert q.expect.columns, where
    for v in d.variables:
        assert v.query.startswith("SHOW TAG VALUES FROM ")


def _panel(d: Dashboard, title: str) -> dict[str, Any]:
    return next(p for p in d.to_json()["panels"] if p["title"] == title)


def _steps(panel: dict[str, Any]) -> list[tuple[float | None, str]]:
    return [
        (s["value"], s["color"]) for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    ]


def test_limits_are_the_profiles_rules() -> None:
    crane = DASHBOARDS["crane"]
    assert _steps(_panel(crane, "Load (% of rated at the radius)")) == [
        (None, "green"),
        (90.0, "orange"),
        (100.0, "red"),
    ]
    assert _steps(_panel(crane, "Wind at the jib")) == [(None, "green"), (10.8, "red")]
    load = _panel(crane, "Load (% of rated at the radius)")
    assert load["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] == {"mode": "dashed"}
    pit = DASHBOARDS["pit"]
    # rate panels: the rate rules (3 mm/d alarm, 1.5 mm/d trend), per day
    rate = _panel(pit, "Displacement rate")
    assert _steps(rate) == [(None, "green"), (1.5, "red"), (3.0, "red")]
    assert 'derivative(mean("displacement_mm"), 1d)' in rate["targets"][0]["query"]
    assert _steps(_panel(pit, "Cumulative displacement")) == [(None, "green"), (30.0, "red")]
    # a changed profile changes the drawn limit
    profiles = load_profiles()
    tc = profiles["tower_crane"]
    rules = tuple(
        r.model_copy(update={"value": 80.0}) if r.id == "load_alarm" else r for r in tc.rules
    )
    changed = {**profiles, "tower_crane": tc.model_copy(update={"rules": rules})}
    from dashboards.devices import SPECS, device_dashboard

    spec = next(s for s in SPECS if s.profile == "tower_crane")
    d = device_dashboard(spec, changed)  # type: ignore[arg-type]
    assert (80.0, "red") in _steps(_panel(d, "Load (% of rated at the radius)"))


def test_noise_draws_the_day_and_night_limits_the_alert_service_applies() -> None:
    noise = _panel(DASHBOARDS["environment"], "Noise (1 s Leq) and its day/night limits")
    queries = [t["query"] for t in noise["targets"]]
    assert len(queries) == 2 and 'FROM "limits"' in queries[1]
    assert "\"field\" = 'noise_dba'" in queries[1] and "fill(previous)" in queries[1]
    assert noise["fieldConfig"]["overrides"][0]["matcher"] == {"id": "byFrameRefID", "options": "B"}
    # no fixed threshold: the limit changes at 22:00 and 06:00
    assert _steps(noise) == [(None, "green")]


def test_every_device_dashboard_has_site_and_device_variables_and_alert_annotations() -> None:
    for name in ("crane", "hoist", "environment", "pit", "formwork", "electrical"):
        d = DASHBOARDS[name].to_json()
        assert [v["name"] for v in d["templating"]["list"]] == ["site", "device"]
        assert "$site" in d["templating"]["list"][1]["query"]
        anno = d["annotations"]["list"][1]
        assert anno["name"] == "Alerts" and 'FROM "alerts"' in anno["query"]
        assert "$device" in anno["query"]


# -- Grafana's macros -------------------------------------------------------------------


def test_time_filter_and_interval_are_filled_as_grafana_does() -> None:
    start, end = 1_700_000_000_000, 1_700_000_000_000 + 6 * 3_600_000
    sql = interpolate(
        "SELECT mean(x) FROM m WHERE $timeFilter GROUP BY time($__interval)",
        start_ms=start,
        end_ms=end,
    )
    # 6 h over 1000 points is 21.6 s, which Grafana rounds to 20 s
    assert sql == (
        f"SELECT mean(x) FROM m WHERE time >= {start}ms and time <= {end}ms GROUP BY time(20s)"
    )
    assert interval_ms(start, end, min_interval="10m") == 600_000
    assert interval_ms(start, start + 7 * 86_400_000) == 600_000
    assert format_interval(3_600_000) == "1h" and format_interval(1500) == "1500ms"


def test_template_variables_are_filled_as_grafana_formats_them() -> None:
    sql = 'SELECT x FROM m WHERE "site" =~ /^$site$/ AND "device" =~ /^$device$/'
    one = interpolate(
        sql,
        start_ms=0,
        end_ms=1,
        variables={"site": Selection(("SITE01",)), "device": Selection(("TC01", "TC.02"))},
    )
    assert one == 'SELECT x FROM m WHERE "site" =~ /^SITE01$/ AND "device" =~ /^(TC01|TC\\.02)$/'
    with pytest.raises(ValueError, match=r"unfilled variables \['\$device'\]"):
        interpolate(sql, start_ms=0, end_ms=1, variables={"site": Selection(("S",))})


# -- pushing to Grafana -------------------------------------------------------------------


class _Grafana(BaseHTTPRequestHandler):
    """Records the requests of Grafana's HTTP API that ``push`` makes (no Grafana server
    runs here); answers as Grafana documents: 404 for an unknown folder or data source."""

    calls: ClassVar[list[tuple[str, str, Any]]] = []
    folders: ClassVar[set[str]] = set()

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n)) if n else None
        self.calls.append((self.command, self.path, body))
        assert self.headers["Authorization"] == "Bearer glsa_test"
        return body

    def do_GET(self) -> None:
        self._record()
        uid = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/api/folders/") and uid in self.folders:
            self._reply(200, {"uid": uid})
        else:
            self._reply(404, {"message": "not found"})

    def do_POST(self) -> None:
        body = self._record()
        if self.path == "/api/folders":
            self.folders.add(body["uid"])
        self._reply(200, {"status": "success", "uid": (body or {}).get("uid", "")})

    def log_message(self, *args: object) -> None:
        pass


def test_push_creates_the_folder_and_data_source_and_overwrites_dashboards() -> None:
    from grafana_client import GrafanaApi

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Grafana)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = GrafanaApi.from_url(f"http://127.0.0.1:{server.server_port}", credential="glsa_test")
        source = datasource(url="http://influxdb:8086", token="t0ken")
        result = push(api, list(DASHBOARDS.values()), source=source)
        assert result.dashboards == tuple(d.uid for d in DASHBOARDS.values())
        calls = _Grafana.calls
        assert ("POST", "/api/folders", {"title": "SiteWatch", "uid": "sitewatch"}) in calls
        assert ("POST", "/api/datasources", source) in calls
        posted = [b for m, p, b in calls if (m, p) == ("POST", "/api/dashboards/db")]
        assert len(posted) == len(DASHBOARDS)
        for body, d in zip(posted, DASHBOARDS.values(), strict=True):
            assert body["overwrite"] is True and body["folderUid"] == "sitewatch"
            assert body["dashboard"]["uid"] == d.uid and body["dashboard"]["id"] is None
        # a second push finds the folder and creates nothing new
        _Grafana.calls.clear()
        push(api, list(DASHBOARDS.values()))
        assert not [c for c in _Grafana.calls if c[1] == "/api/folders"]
    finally:
        server.shutdown()


def test_push_without_credentials_says_what_to_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SITEWATCH_GRAFANA_TOKEN", raising=False)
    assert main(["dashboards", "push", "--url", "http://127.0.0.1:9"]) == 2
    assert "SITEWATCH_GRAFANA_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("SITEWATCH_GRAFANA_TOKEN", "x")
    # nothing listens on port 9: a clear error, not a traceback
    assert main(["dashboards", "push", "--url", "http://127.0.0.1:9", "--timeout", "2"]) == 1
    assert "http://127.0.0.1:9" in capsys.readouterr().err


#: Grafana's geomap layers that draw tiles from a server: "default" is CARTO's online
#: tiles unless the server sets default_baselayer_config, the others name a server
TILE_LAYERS = {"default", "carto", "esri-xyz", "osm-standard", "xyz", "maplibre"}
#: the only hosts a provisioned file may name: the compose services
INSIDE_HOSTS = {"influxdb"}


def _geomaps() -> Iterator[tuple[str, dict[str, Any]]]:
    for name in sorted(DASHBOARDS):
        d = json.loads((ROOT / f"dashboards/json/{name}.json").read_text())
        yield from ((name, p) for p in _panels(d) if p["type"] == "geomap")


def _offline_geojson(layer: dict[str, Any]) -> None:
    assert layer["type"] == "geojson", layer
    src = layer["config"]["src"]
    # a path under the page's own Grafana: public/ is what Grafana serves from its image
    assert src.startswith("public/maps/") and "//" not in src, src


def test_no_map_loads_anything_from_outside_grafana() -> None:
    maps = list(_geomaps())
    assert [n for n, _ in maps] == ["county"]
    for name, p in maps:
        # no basemap at all would be Grafana's default, CARTO's online tiles
        basemap = p["options"]["basemap"]
        _offline_geojson(basemap)
        for layer in p["options"]["layers"]:
            assert layer["type"] not in TILE_LAYERS, (name, layer)
            if layer["type"] == "geojson":
                _offline_geojson(layer)
    generated = [
        *(ROOT / "dashboards/json").glob("*.json"),
        *(ROOT / "dashboards/provisioning").rglob("*.yaml"),
    ]
    assert len(generated) == len(DASHBOARDS) + 2
    for path in generated:
        text = path.read_text()
        hosts = set(re.findall(r"https?://([^/:\"'\s]+)", text))
        assert hosts <= INSIDE_HOSTS, f"{path.name}: {hosts - INSIDE_HOSTS}"
        for tiles in TILE_LAYERS:
            assert not re.search(rf'"type":\s*"{tiles}"', text), (path.name, tiles)


def test_county_map_draws_the_boundary_file_under_the_sites_and_fits_the_sites() -> None:
    p = _panel(DASHBOARDS["county"], "Sites by their worst open alert")
    opts = p["options"]
    assert [layer["name"] for layer in opts["layers"]] == ["County boundary", "Sites"]
    boundary, sites = opts["layers"]
    assert boundary["config"]["src"] == "public/maps/sitewatch/county.geojson"
    assert sites["type"] == "markers"
    # fitted to the sites, not to every layer: the world outline would zoom to the globe
    assert opts["view"]["id"] == "fit" and opts["view"]["allLayers"] is False
    assert opts["view"]["layer"] == "Sites"
    assert opts["basemap"]["config"]["src"] == "public/maps/countries.geojson"


def test_the_shipped_map_files_are_offline_and_the_tile_example_is_what_grafana_reads() -> None:
    # docker-compose: deploy/grafana/basemap.json is Grafana's default_baselayer_config
    # for every map, deploy/grafana/maps/ is served at public/maps/sitewatch/
    basemap = json.loads((ROOT / "deploy/grafana/basemap.json").read_text())
    _offline_geojson(basemap)
    county = json.loads((ROOT / "deploy/grafana/maps/county.geojson").read_text())
    assert county["type"] == "FeatureCollection" and isinstance(county["features"], list)
    # the operator's way to an intranet tile server: the example in docs/dashboards.md
    doc = (ROOT / "docs/dashboards.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", doc, re.S)]
    tiles = [b for b in blocks if b.get("type") == "xyz"]
    assert len(tiles) == 1
    url = tiles[0]["config"]["url"]
    assert all(k in url for k in ("{z}", "{x}", "{y}")) and url.startswith("http://")
    assert "attribution" in tiles[0]["config"]
    assert "GF_GEOMAP_ENABLE_CUSTOM_BASELAYERS" in doc
    assert "GF_GEOMAP_DEFAULT_BASELAYER_CONFIG__FILE" in doc

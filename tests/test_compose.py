"""docker-compose.yml: valid for docker-compose, and every command and variable in it is
one SiteWatch accepts (no Docker engine runs here, so this is what can be checked)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sitewatch.api.config import ApiSettings
from sitewatch.cli import build_parser
from sitewatch.edge.agent import build_drivers
from sitewatch.edge.config import EdgeSettings
from sitewatch.ingest.alerts.config import AlertSettings
from sitewatch.ingest.config import IngestSettings
from sitewatch.localstack.servers import render_mosquitto_conf
from sitewatch.profiles import load_profiles
from sitewatch.settings import ServiceSettings, load_settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SETTINGS: dict[str, type[ServiceSettings]] = {
    "ingest": IngestSettings, "api": ApiSettings, "edge": EdgeSettings,
    "alerts": AlertSettings,
}


def _our_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in COMPOSE["services"].items()
            if svc.get("image", "").startswith("sitewatch")}


def test_docker_compose_config_accepts_the_file() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose not installed: scripts/setup.sh installs it")
    r = subprocess.run([exe, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_expected_services_with_healthchecks() -> None:
    services = COMPOSE["services"]
    assert {"mosquitto", "influxdb", "grafana", "ingest", "alerts", "api",
            "gateway"} <= set(services)
    for name in ("mosquitto", "influxdb", "grafana", "api"):
        assert "healthcheck" in services[name], name
    assert services["ingest"]["depends_on"]["influxdb"]["condition"] == "service_healthy"
    assert services["ingest"]["depends_on"]["mosquitto"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", sorted(_our_services()))
def test_command_and_environment_are_accepted(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = _our_services()[name]
    command = svc["command"]
    args = build_parser().parse_args(command)  # exits (fails) on an unknown subcommand/flag
    settings_cls = SETTINGS[args.command]
    for var in list(os.environ):
        if var.startswith("SITEWATCH_"):
            monkeypatch.delenv(var)
    prefix = settings_cls.model_config["env_prefix"]
    for key, value in svc.get("environment", {}).items():
        assert key.startswith(prefix), f"{name}: {key} is not a {prefix}* setting"
        value = str(value)
        if value.startswith("${"):  # ${VAR:-default}: check with the default
            value = value.split(":-", 1)[1].rstrip("}")
        monkeypatch.setenv(key, value)
    config = None
    if "--config" in command:
        container_path = command[command.index("--config") + 1]
        config = ROOT / container_path.removeprefix("/app/")
        assert config.exists(), f"{name}: {config} is not in the repository"
    settings = load_settings(settings_cls, config)
    if isinstance(settings, EdgeSettings):
        assert build_drivers(settings, load_profiles())


def test_mounted_files_exist_and_match_the_project() -> None:
    for name, svc in COMPOSE["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} missing"
    # the broker config is the project's own rendering of its broker settings
    expected = render_mosquitto_conf(port=1883, host="0.0.0.0",
                                     persistence_dir="/mosquitto/data",
                                     max_queued_messages=1_000_000, user="mosquitto",
                                     log_dest="stdout")
    assert (ROOT / "deploy/mosquitto/mosquitto.conf").read_text() == expected


def test_grafana_provisioning_paths_match_the_mounts() -> None:
    mounts = dict(v.split(":")[:2] for v in COMPOSE["services"]["grafana"]["volumes"])
    assert mounts["./dashboards/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load(
        (ROOT / "dashboards/provisioning/dashboards/sitewatch.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    source = next(s for s, t in mounts.items() if t == path)
    dashboards = list((ROOT / source).glob("*.json"))
    assert dashboards
    for d in dashboards:
        assert json.loads(d.read_text())["uid"]
    ds = yaml.safe_load((ROOT / "dashboards/provisioning/datasources/sitewatch.yaml").read_text())
    assert ds["datasources"][0]["jsonData"]["dbName"] == "sitewatch"
    assert ds["datasources"][0]["url"] == "http://influxdb:8086"

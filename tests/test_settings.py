"""Operator configuration fails at start-up with a message that names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import EdgeSettings
from edge.devices import build_drivers
from ingest.config import IngestSettings
from sitewatch.core.profiles import load_profiles
from sitewatch.core.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for var in list(os.environ):
        if var.startswith("SITEWATCH_"):
            monkeypatch.delenv(var)


def test_defaults_load() -> None:
    s = load_settings(IngestSettings)
    assert s.mqtt.port == 1883 and s.influx.database == "sitewatch"


def test_file_then_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "ingest.yaml"
    f.write_text("mqtt: {host: broker, port: 1884}\nreceive_maximum: 10\n")
    monkeypatch.setenv("SITEWATCH_INGEST_MQTT__PORT", "1999")
    s = load_settings(IngestSettings, f)
    assert (s.mqtt.host, s.mqtt.port, s.receive_maximum) == ("broker", 1999, 10)


@pytest.mark.parametrize(
    "text, key",
    [
        ("mqtt: {prot: 1}\n", "key mqtt.prot: Extra inputs are not permitted"),
        ("recieve_maximum: 5\n", "key recieve_maximum: Extra inputs are not permitted"),
        ("receive_maximum: 0\n", "key receive_maximum: Input should be greater than or equal to 1"),
        ("mqtt: {port: 70000}\n", "key mqtt.port"),
        ("influx: {database: 'a b'}\n", "key influx.database"),
        ("log_level: LOUD\n", "key log_level"),
        ("- a list\n", "top level must be a mapping"),
        ("a: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_file_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    f = tmp_path / "ingest.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(IngestSettings, f)
    name, _, reason = key.partition(": ")
    assert name in str(err.value) and reason in str(err.value)


def test_unknown_env_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITEWATCH_INGEST_RECIEVE_MAXIMUM", "5")
    with pytest.raises(ConfigError, match="key SITEWATCH_INGEST_RECIEVE_MAXIMUM: no such setting"):
        load_settings(IngestSettings)


def test_bad_env_value_names_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITEWATCH_INGEST_MQTT__PORT", "abc")
    with pytest.raises(
        ConfigError,
        match=r"key mqtt.port \(from environment variable SITEWATCH_INGEST_MQTT__PORT\)",
    ):
        load_settings(IngestSettings)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(IngestSettings, tmp_path / "nope.yaml")


EDGE = """site: S1
gateway: GW1
state_dir: {state}
devices:
  - {{id: TC01, driver: simulated, profile: tower_crane}}
"""


def edge(tmp_path: Path, devices: str = "") -> Path:
    f = tmp_path / "edge.yaml"
    f.write_text(EDGE.format(state=tmp_path / "state") + devices)
    return f


def test_edge_config_loads_and_builds_drivers(tmp_path: Path) -> None:
    s = load_settings(EdgeSettings, edge(tmp_path))
    drivers = build_drivers(s, load_profiles())
    assert drivers[0].device_id == "TC01" and drivers[0].interval_s == 1


@pytest.mark.parametrize(
    "device, message",
    [
        (
            "{id: X1, driver: telepathy, profile: tower_crane}",
            "devices[1] (X1).driver: unknown driver",
        ),
        (
            "{id: X1, driver: simulated, profile: submarine}",
            "devices[1] (X1).profile: unknown profile",
        ),
        (
            "{id: X1, driver: simulated, profile: tower_crane, options: {sead: 1}}",
            "devices[1] (X1).options: sead: Extra inputs are not permitted",
        ),
        (
            "{id: X1, driver: simulated, profile: tower_crane, options: {scenarios: [{name: dust_spike}]}}",
            "do not apply to profile 'tower_crane'",
        ),
    ],
)
def test_edge_device_errors_name_the_device(tmp_path: Path, device: str, message: str) -> None:
    s = load_settings(EdgeSettings, edge(tmp_path, f"  - {device}\n"))
    with pytest.raises(ConfigError) as err:
        build_drivers(s, load_profiles())
    assert message in str(err.value)


@pytest.mark.parametrize(
    "device, message",
    [
        ("{id: TC01, driver: simulated, profile: tower_crane}", "device ids must be unique"),
        ("{id: 'T 1', driver: simulated, profile: tower_crane}", "key devices.1.id"),
        ("{id: GW1, driver: simulated, profile: gateway}", "the gateway's own id"),
        (
            "{id: X, driver: simulated, profile: tower_crane, interval_s: 0}",
            "key devices.1.interval_s",
        ),
    ],
)
def test_edge_schema_errors(tmp_path: Path, device: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_settings(EdgeSettings, edge(tmp_path, f"  - {device}\n"))

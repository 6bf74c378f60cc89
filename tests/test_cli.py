"""The ``sitewatch`` command as an operator meets it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SITEWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "sitewatch.programs.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
    )


def test_help_lists_every_part() -> None:
    r = run("--help")
    assert r.returncode == 0
    for sub in ("ingest", "edge", "api", "simulate", "demo", "profiles", "deadletters"):
        assert sub in r.stdout


def test_profiles_command() -> None:
    r = run("profiles")
    assert r.returncode == 0 and "tower_crane: 9 fields" in r.stdout


@pytest.mark.parametrize("service", ["ingest", "api"])
def test_unknown_key_fails_at_start_up_naming_it(service: str, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("influx: {urll: http://x}\n")
    r = run(service, "--config", str(cfg))
    assert r.returncode == 2
    assert "key influx.urll: Extra inputs are not permitted" in r.stderr


def test_unknown_env_variable_fails_at_start_up() -> None:
    r = run("ingest", env={"SITEWATCH_INGEST_INFLUX_URL": "http://x"})
    assert r.returncode == 2
    assert "SITEWATCH_INGEST_INFLUX_URL: no such setting" in r.stderr


def test_edge_unknown_driver(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(
        f"site: S\ngateway: G\nstate_dir: {tmp_path}\n"
        "devices: [{id: D, driver: modbus_rtu, profile: tower_crane}]\n"
    )
    r = run("edge", "--config", str(cfg))
    assert r.returncode == 2 and "devices[0] (D).driver: unknown driver 'modbus_rtu'" in r.stderr


def test_deadletters_on_an_empty_store(tmp_path: Path) -> None:
    r = run("deadletters", "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "--counts")
    assert r.returncode == 0 and r.stdout == ""

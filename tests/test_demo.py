"""The README's first command: ``sitewatch demo`` brings the platform up; Ctrl-C stops it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
import yaml

from simulators.camera_video import SWING_ZONE
from sitewatch.domains.attendance.policy import AttendancePolicy
from sitewatch.programs.localstack import free_port

pytestmark = pytest.mark.integration


def test_demo_runs_three_sites_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    api_port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sitewatch.programs.cli",
            "demo",
            "--state-dir",
            str(tmp_path),
            "--api-port",
            str(api_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = ""
        deadline = time.monotonic() + 60
        while "Press Ctrl-C" not in banner and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            banner += line
        assert "Press Ctrl-C" in banner, banner
        assert f"http://127.0.0.1:{api_port}/docs" in banner
        # each site's camera reads the synthetic site video, made in the state folder
        video = tmp_path / "site-camera.avi"
        assert f"camera video  {video}" in banner
        for i in (1, 2, 3):
            gateway = yaml.safe_load((tmp_path / f"edge-SITE0{i}.yaml").read_text())
            camera = next(d for d in gateway["devices"] if d["id"] == "CAM01")
            assert (camera["driver"], camera["profile"]) == ("camera", "camera_status")
            options = camera["options"]
            assert (options["source"], options["loop"]) == (str(video), True)
            assert options["zones"] == [
                {"name": "crane-swing", "polygon": [list(p) for p in SWING_ZONE]}
            ]
            assert set(options["analytics"]) == {"intrusion", "person_count", "helmet", "smoke"}
        cap = cv2.VideoCapture(str(video))
        assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 300  # the whole scene, 30 s
        cap.release()
        assert [p.name for p in tmp_path.glob(".*partial*")] == []
        # a second demo on the same state folder is refused at once, naming this one,
        # and leaves its configuration (broker accounts, secrets, admin) alone
        configs = {
            p: p.read_bytes() for p in [*tmp_path.glob("*.yaml"), *(tmp_path / "broker").iterdir()]
        }
        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "sitewatch.programs.cli", "demo", "--state-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2, second
        assert f"pid {proc.pid}, API http://127.0.0.1:{api_port}" in second.stderr
        assert time.monotonic() - started < 15
        assert {p: p.read_bytes() for p in configs} == configs
        # the broker has an account per gateway and service, and no anonymous access
        mqtt_port = banner.split("mqtt://127.0.0.1:", 1)[1].split()[0]
        anon = subprocess.run(
            ["mosquitto_sub", "-p", mqtt_port, "-t", "#", "-C", "1", "-W", "5"],
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert anon.returncode != 0 and "not authorised" in anon.stderr.lower(), anon
        # the API answers only with credentials: the banner's API key
        key = re.search(r"swk_\S+", banner).group(0)  # type: ignore[union-attr]
        assert httpx.get(f"http://127.0.0.1:{api_port}/sites", timeout=5).status_code == 401
        sites = httpx.get(
            f"http://127.0.0.1:{api_port}/sites", timeout=5, headers={"X-API-Key": key}
        ).json()
        assert [x["id"] for x in sites["items"]] == ["SITE01", "SITE02", "SITE03"]
        devices: set[str] = set()
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            r = httpx.get(
                f"http://127.0.0.1:{api_port}/sites/SITE03/latest",
                timeout=5,
                headers={"X-API-Key": key},
            )
            devices = {x["device"] for x in r.json()} if r.status_code == 200 else set()
            if {"TC01", "HOIST01", "ENV01", "PIT01", "HF01", "EL01"} <= devices:
                break
            time.sleep(0.5)
        assert {"TC01", "HOIST01", "ENV01", "PIT01", "HF01", "EL01"} <= devices
        # the camera's status comes with its first analysed frame (its events take longer:
        # not waited for here)
        camera_status: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not camera_status:
            r = httpx.get(
                f"http://127.0.0.1:{api_port}/sites/SITE01/devices/CAM01/latest",
                timeout=5,
                headers={"X-API-Key": key},
            )
            camera_status = r.json() if r.status_code == 200 else {}
            time.sleep(0.5)
        assert camera_status, "no status from SITE01's camera"
        assert camera_status["profile"] == "camera_status"
        assert camera_status["values"]["online"] is True
        # the gate terminals' past week reaches the ledger through the edge agent
        today = AttendancePolicy().day_of(int(time.time() * 1000))
        week = {"from": str(today - timedelta(days=6)), "to": str(today)}
        rows: list[object] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not rows:
            r = httpx.get(
                f"http://127.0.0.1:{api_port}/sites/SITE01/attendance/events",
                params=week,
                timeout=10,
                headers={"X-API-Key": key},
            )
            rows = r.json()["items"] if r.status_code == 200 else []
            time.sleep(1)
        assert rows, "no gate events in the ledger"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "stopped." in out
    finally:
        if proc.poll() is None:  # a failed assertion: let the demo stop what it started
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    # nothing it started is left running
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert left.stdout.strip() == "", f"processes left: {left.stdout}"
    assert "edge stopping with" not in (tmp_path / "edge-SITE01.log").read_text()
    assert "alerts connected" in (tmp_path / "alerts.log").read_text()


def test_demo_refuses_a_taken_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "sitewatch.programs.cli",
                "demo",
                "--state-dir",
                str(tmp_path),
                "--mqtt-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in r.stderr

"""What each simulated site of the demo is: its devices and scenarios, its camera, its
gate terminals and workers, and the edge agent's configuration that says so."""

from __future__ import annotations

import secrets
from pathlib import Path

SITE_DEVICES = [
    ("TC01", "tower_crane", 1.0),
    ("HOIST01", "construction_hoist", 1.0),
    ("ENV01", "environment", 5.0),
    ("PIT01", "foundation_pit", 10.0),
    ("HF01", "high_formwork", 2.0),
    ("EL01", "electrical", 5.0),
]
#: something to see: each site gets one scenario a minute or two after start
SITE_SCENARIOS = [
    ("TC01", "crane_overload", 60, 60),
    ("ENV01", "dust_spike", 90, 120),
    ("PIT01", "pit_displacement_trend", 30, 600),
]


#: each site's camera: the synthetic site video (made at the first start, then kept),
#: looping in real time, watching the crane's swing area. One analysed frame a second:
#: the people detector costs about 0.1 s of CPU a frame
CAMERA = "CAM01"
CAMERA_VIDEO = "site-camera.avi"
CAMERA_ZONE = "crane-swing"  # the alert service's crane-swing* zones: crane swing alarms


#: each site's two gates (http_push terminals) and how many workers it has
GATES = ("GATE01", "GATE02")
WORKERS_PER_SITE = 60


def gate_tokens() -> dict[str, str]:
    return {g: secrets.token_hex(16) for g in GATES}


def camera_device(video: Path) -> dict[str, object]:
    """A simulated site's camera on ``video`` (deploy/gateway.yaml has the same for
    docker-compose; tests/test_compose.py holds the two together)."""
    from sitewatch.simulators.camera_video import SWING_ZONE

    return {
        "id": CAMERA,
        "driver": "camera",
        "profile": "camera_status",
        "interval_s": 10,
        "options": {
            "source": str(video),
            "analysis_fps": 1,
            "pace": "realtime",
            "loop": True,
            "zones": [{"name": CAMERA_ZONE, "polygon": [[x, y] for x, y in SWING_ZONE]}],
            "analytics": {
                "intrusion": {},
                "person_count": {"zones": [CAMERA_ZONE]},
                "helmet": {},
                "smoke": {},
            },
        },
    }


def site_config(
    i: int, mqtt_port: int, state: Path, gate_port: int, tokens: dict[str, str]
) -> dict[str, object]:
    site, gateway = f"SITE{i:02d}", f"GW{i:02d}"
    scenario = SITE_SCENARIOS[(i - 1) % len(SITE_SCENARIOS)]
    devices = []
    for dev, profile, interval in SITE_DEVICES:
        options: dict[str, object] = {"seed": i}
        if dev == scenario[0]:
            options["scenarios"] = [
                {"name": scenario[1], "start_s": scenario[2], "duration_s": scenario[3]}
            ]
        devices.append(
            {
                "id": dev,
                "driver": "simulated",
                "profile": profile,
                "interval_s": interval,
                "options": options,
            }
        )
    devices.append(camera_device(state / CAMERA_VIDEO))
    for gate, token in tokens.items():  # the attendance terminals push to the gateway
        devices.append(
            {
                "id": gate,
                "driver": "http_push",
                "profile": "attendance_gate",
                "options": {
                    "token": token,
                    "kind": "attendance",
                    "host": "127.0.0.1",
                    "port": gate_port,
                },
            }
        )
    return {
        "site": site,
        "gateway": gateway,
        "state_dir": str(state / f"edge-{site}"),
        "mqtt": {"port": mqtt_port},
        # a week of gate events arrives at once at start: big batches drain it fast
        "publish": {"health_interval_s": 10, "max_batch_items": 500},
        "devices": devices,
    }

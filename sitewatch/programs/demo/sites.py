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
#: the story of each site (device, scenario, start s, duration s): the first minutes show
#: a few alerts that make sense, one site at a time, each clearing by itself; otherwise
#: the signals stay well inside their limits (sites past the third repeat the three).
#: Site 1: a lift overloads the crane at minute 1 and is set down at minute 2 (load and
#: moment alarms, cleared, resolved after the hold time). Site 2: earthworks raise dust
#: from 30 s for 5 minutes: PM10 above 150 µg/m³ in 30 readings today (a warning at
#: about minute 3, to acknowledge), the 5-minute TSP mean above 0.8 mg/m³ (an alarm at
#: about minute 4, clear at about minute 7). Site 3: nothing planned on its devices
#: (its camera and gates have their own). tests/test_demo_story.py holds the sites to it.
SITE_STORIES: list[list[tuple[str, str, float, float]]] = [
    [("TC01", "crane_overload", 60, 60)],
    [("ENV01", "dust_spike", 30, 300)],
    [],
]


def site_scenarios(i: int) -> dict[str, list[dict[str, object]]]:
    """Site ``i``'s scenarios (1-based) per device, as the simulated driver's options."""
    out: dict[str, list[dict[str, object]]] = {}
    for dev, name, start, duration in SITE_STORIES[(i - 1) % len(SITE_STORIES)]:
        out.setdefault(dev, []).append({"name": name, "start_s": start, "duration_s": duration})
    return out


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
    from simulators.camera_video import SWING_ZONE

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
    scenarios = site_scenarios(i)
    devices = []
    for dev, profile, interval in SITE_DEVICES:
        options: dict[str, object] = {"seed": i}
        if dev in scenarios:
            options["scenarios"] = scenarios[dev]
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

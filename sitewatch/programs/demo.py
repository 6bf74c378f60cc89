"""``sitewatch demo``: the whole platform on one machine, no Docker.

Starts Mosquitto and InfluxDB (Debian's packages) with generated configs in a state
folder, then ingest, the API and one edge agent per simulated site as child processes
(each the same ``sitewatch`` command an operator runs), prints where everything is and
runs until Ctrl-C, which stops every process it started, edge agents first so that they
drain their spools. Each site has a camera too, reading a synthetic site video made in
the state folder at the first start (``sitewatch simulate camera-video``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from sitewatch.domains.brokeraccounts.brokerauth import (
    Account,
    Role,
    gateway_username,
    hash_password,
    new_password,
    write_broker_files,
)
from sitewatch.programs.localstack import InfluxServer, MosquittoServer, PortInUseError, ServerError
from sitewatch.programs.localstack.ports import free_port, port_is_free
from sitewatch.programs.statelock import StateFolderBusy, StateLock

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


@dataclass(frozen=True)
class DemoOptions:
    state_dir: Path
    sites: int = 3
    mqtt_port: int | None = None
    influx_port: int | None = None
    api_port: int | None = None
    duration_s: float = 0.0


def _gate_tokens() -> dict[str, str]:
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


def _site_config(
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


def _broker_accounts(sites: int) -> tuple[list[Account], dict[str, str]]:
    """Accounts for this run, with passwords made at start: ingest, the alert service,
    one per simulated gateway, and two for looking on (``observer`` reads everything,
    ``monitor`` the alerts). Only their hashes are written to disk."""
    accounts: list[Account] = []
    passwords: dict[str, str] = {}

    def add(username: str, role: Role, site: str | None = None, gateway: str | None = None) -> None:
        passwords[username] = new_password()
        accounts.append(Account(username, hash_password(passwords[username]), role, site, gateway))

    add("ingest", Role.INGEST)
    add("alerts", Role.ALERTS)
    add("observer", Role.OBSERVER)
    add("monitor", Role.MONITOR)
    for i in range(1, sites + 1):
        site, gateway = f"SITE{i:02d}", f"GW{i:02d}"
        add(gateway_username(site, gateway), Role.GATEWAY, site, gateway)
    return accounts, passwords


def _seed_registry(db_url: str, accounts: list[Account], id_key: str) -> tuple[str, str]:
    """The demo's sites, gateways (with the broker accounts' hashes), devices and
    workers in the registry, so the API shows them; an ``admin`` with a new password and
    a read-only API key for the curl lines of the banner. Returns (admin password, API
    key)."""
    from sqlalchemy.orm import Session

    from sitewatch.core.db import make_engine
    from sitewatch.domains import accounts as people
    from sitewatch.domains.attendance.workers import Workers
    from sitewatch.domains.registry import DeviceRow, GatewayRow, SiteRow
    from sitewatch.domains.schema import create_tables
    from sitewatch.simulators.attendance_days import worker_rows, workforce

    engine = make_engine(db_url)
    create_tables(engine)
    now = int(time.time() * 1000)
    password = new_password()
    with Session(engine) as s:
        for a in accounts:
            if a.role is not Role.GATEWAY or a.site is None or a.gateway is None:
                continue
            n = int(a.site[4:])
            s.merge(
                SiteRow(
                    id=a.site,
                    name=f"Demo site {n}",
                    county="Lankao",
                    town="Chengguan",
                    project_type="building",
                    latitude=34.82 + n * 0.01,
                    longitude=114.82 + n * 0.01,
                    planned_headcount=200,
                    created_at=now,
                )
            )
            s.flush()
            s.merge(
                GatewayRow(
                    site=a.site,
                    id=a.gateway,
                    description="demo gateway",
                    mqtt_username=a.username,
                    mqtt_password_hash=a.password_hash,
                    created_at=now,
                )
            )
            s.flush()
            for device, profile, _ in SITE_DEVICES:
                s.merge(
                    DeviceRow(
                        site=a.site,
                        id=device,
                        gateway=a.gateway,
                        profile=profile,
                        name="",
                        overrides={},
                        created_at=now,
                    )
                )
            s.merge(
                DeviceRow(
                    site=a.site,
                    id=CAMERA,
                    gateway=a.gateway,
                    profile="camera_status",
                    name="crane swing area camera",
                    overrides={},
                    created_at=now,
                )
            )
            for gate in GATES:
                s.merge(
                    DeviceRow(
                        site=a.site,
                        id=gate,
                        gateway=a.gateway,
                        profile="attendance_gate",
                        name="",
                        overrides={},
                        created_at=now,
                    )
                )
            Workers(s).put_many(
                worker_rows(workforce(WORKERS_PER_SITE, seed=n), a.site, id_key, now)
            )
        admin = s.get(people.UserRow, "admin")
        if admin is None:
            people.add_user(s, "admin", password, "admin")
        else:
            admin.password_hash = people.hash_password(password)
        _, key = people.add_api_key(s, "demo", "viewer")
        s.commit()
    engine.dispose()
    return password, key


def _mqtt_login(service: str, username: str, passwords: dict[str, str]) -> dict[str, str]:
    """A child's broker account, as its environment variables (not in its config file)."""
    return {
        f"SITEWATCH_{service}_MQTT__USERNAME": username,
        f"SITEWATCH_{service}_MQTT__PASSWORD": passwords[username],
    }


#: services that write what the edges send: stopped after the edges, before the API
WRITERS = ("ingest", "alerts")


class _Children:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        #: children that do one thing and exit (0 when it went well)
        self.once: set[str] = set()

    def spawn(
        self, name: str, *args: str, env: dict[str, str] | None = None, once: bool = False
    ) -> subprocess.Popen[bytes]:
        log = open(self.state / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "sitewatch.programs.cli", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.procs.append((name, proc))
        if once:
            self.once.add(name)
        return proc

    def dead(self) -> list[str]:
        return [
            name
            for name, p in self.procs
            if p.poll() is not None and not (name in self.once and p.returncode == 0)
        ]

    def stop(self) -> None:
        """Gate terminals first (nothing more is pushed to the edges), then the edge
        agents (they drain their spools into a running ingest), then ingest and the alert
        service (they finish their writes), then the API; each phase waits for the one
        before."""
        phases = [
            [p for n, p in self.procs if n.startswith("gates")],
            [p for n, p in self.procs if n.startswith("edge")],
            [p for n, p in self.procs if n in WRITERS],
            [p for n, p in self.procs if not n.startswith(("edge", "gates")) and n not in WRITERS],
        ]
        for phase in phases:
            for p in phase:
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        p.send_signal(signal.SIGTERM)
            for p in phase:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_log(path: Path, text: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def _wait_http(url: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        time.sleep(0.2)
    return False


#: held for the demo's life: a second demo on the same state folder is refused
LOCK_FILE = "demo.lock"


def run_demo(opts: DemoOptions) -> int:
    state = opts.state_dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    # before anything else is written: a second demo would overwrite the running one's
    # configuration, broker accounts and admin password
    lock = StateLock(state / LOCK_FILE)
    try:
        lock.acquire()
    except StateFolderBusy as busy:
        print(
            f"sitewatch demo: a demo is already running on {state}: pid "
            f"{busy.pid or 'unknown'}, API {busy.address or 'not up yet'}. Stop it "
            f"(Ctrl-C where it runs, or kill {busy.pid or '<pid>'}) or give another "
            "--state-dir",
            file=sys.stderr,
        )
        return 2
    try:
        return _run_locked(opts, state, lock)
    finally:
        lock.release()  # after every child is stopped (_run_locked's own finally)


def _run_locked(opts: DemoOptions, state: Path, lock: StateLock) -> int:
    if opts.api_port is not None:
        if not port_is_free(opts.api_port):
            print(
                f"sitewatch demo: API port {opts.api_port} is already in use; "
                "pick another with --api-port or leave it out",
                file=sys.stderr,
            )
            return 2
        api_port = opts.api_port
    else:
        api_port = 8000 if port_is_free(8000) else free_port()
    lock.describe(address=f"http://127.0.0.1:{api_port}")
    accounts, passwords = _broker_accounts(opts.sites)
    broker_files = write_broker_files(state / "broker", "sitewatch/v1", accounts)
    mq = MosquittoServer(
        state / "mosquitto",
        opts.mqtt_port,
        password_file=broker_files.password_file,
        acl_file=broker_files.acl_file,
    )
    influx = InfluxServer(state / "influxdb", opts.influx_port)
    children = _Children(state)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        video = state / CAMERA_VIDEO
        # made while the servers start (about 10 s); the edges wait for it
        making_video = (
            None
            if video.exists()
            else children.spawn(
                "camera-video",
                "simulate",
                "camera-video",
                "--out",
                str(video),
                "--plume",
                once=True,
            )
        )
        try:
            mq.start()
            influx.start()
        except PortInUseError as exc:
            print(f"sitewatch demo: {exc}", file=sys.stderr)
            return 2
        except ServerError as exc:
            print(f"sitewatch demo: {exc}", file=sys.stderr)
            return 1
        db_url = f"sqlite:///{state / 'sitewatch.db'}"
        common = {"influx": {"url": influx.url}, "database_url": db_url}
        # ingest stores the gateways' camera snapshots where the API serves them from
        snapshots_dir = str(state / "snapshots")
        (state / "ingest.yaml").write_text(
            yaml.safe_dump(
                {
                    **common,
                    "mqtt": {"port": mq.port},
                    "stats_interval_s": 60,
                    "snapshots_dir": snapshots_dir,
                }
            )
        )
        # a real secret (a new one each start), as in production
        # provisioning a gateway through the API rewrites the broker's files and has it
        # re-read them (it runs here, on this host)
        assert mq.proc is not None
        (state / "mosquitto.pid").write_text(f"{mq.proc.pid}\n")
        broker = {
            "dir": str(broker_files.password_file.parent),
            "topic_prefix": "sitewatch/v1",
            "pid_file": str(state / "mosquitto.pid"),
            "service_accounts": [
                {
                    "username": a.username,
                    "role": a.role.value,
                    "password_hash": a.password_hash,
                    "site": a.site,
                }
                for a in accounts
                if a.role is not Role.GATEWAY
            ],
        }
        id_key = secrets.token_hex(32)  # ID-card numbers are kept hashed under it
        (state / "api.yaml").write_text(
            yaml.safe_dump(
                {
                    **common,
                    "port": api_port,
                    "snapshots_dir": snapshots_dir,
                    "auth": {"secret_key": secrets.token_hex(32)},
                    "broker": broker,
                    "attendance": {"id_hash_key": id_key},
                }
            )
        )
        admin_password, api_key = _seed_registry(db_url, accounts, id_key)
        (state / "alerts.yaml").write_text(
            yaml.safe_dump({**common, "mqtt": {"port": mq.port}, "stats_interval_s": 60})
        )
        children.spawn(
            "ingest",
            "ingest",
            "--config",
            str(state / "ingest.yaml"),
            env=_mqtt_login("INGEST", "ingest", passwords),
        )
        children.spawn(
            "alerts",
            "alerts",
            "serve",
            "--config",
            str(state / "alerts.yaml"),
            env=_mqtt_login("ALERTS", "alerts", passwords),
        )
        children.spawn("api", "api", "--config", str(state / "api.yaml"))
        # the edges send at once (a week of gate events): ingest and the alert service
        # must have their sessions first, or the broker has no one to queue those for
        for name, ready in (("ingest", "ingest connected"), ("alerts", "alerts connected")):
            if not _wait_log(state / f"{name}.log", ready, 30):
                print(
                    f"sitewatch demo: {name} did not connect:\n{_tail(state / f'{name}.log')}",
                    file=sys.stderr,
                )
                return 1
        if making_video is not None:
            try:
                making_video.wait(120)
            except subprocess.TimeoutExpired:
                pass
            if making_video.returncode != 0:
                print(
                    f"sitewatch demo: the camera video was not made:\n"
                    f"{_tail(state / 'camera-video.log')}",
                    file=sys.stderr,
                )
                return 1
        for i in range(1, opts.sites + 1):
            site = f"SITE{i:02d}"
            cfg = state / f"edge-{site}.yaml"
            gate_port, tokens = free_port(), _gate_tokens()
            cfg.write_text(yaml.safe_dump(_site_config(i, mq.port, state, gate_port, tokens)))
            children.spawn(
                f"edge-{site}",
                "edge",
                "--config",
                str(cfg),
                env=_mqtt_login("EDGE", gateway_username(site, f"GW{i:02d}"), passwords),
            )
            # its gate terminals: the past week, then today's swipes as they fall due
            children.spawn(
                f"gates-{site}",
                "attendance",
                "simulate",
                "--url",
                f"http://127.0.0.1:{gate_port}",
                "--workers",
                str(WORKERS_PER_SITE),
                "--seed",
                str(i),
                "--days-back",
                "7",
                env={
                    "SITEWATCH_ATTENDANCE_GATE_TOKENS": ",".join(
                        f"{g}={t}" for g, t in tokens.items()
                    )
                },
            )
        api = f"http://127.0.0.1:{api_port}"
        if not _wait_http(f"{api}/health", 30):
            print(
                f"sitewatch demo: the API did not come up:\n{_tail(state / 'api.log')}",
                file=sys.stderr,
            )
            return 1
        devices = len(SITE_DEVICES)
        print(
            f"""
SiteWatch demo is running: {opts.sites} simulated sites, {devices} devices and a camera each.

  MQTT broker   mqtt://127.0.0.1:{mq.port}      (topics sitewatch/v1/#; accounts only,
                one per gateway and service: {broker_files.password_file.parent})
  InfluxDB      {influx.url}   (database "sitewatch", InfluxQL on /query)
  API           {api}/docs
  latest data   {api}/sites/SITE01/latest   (API key below; or log in as admin)
  log in        admin / {admin_password}   (made for this run)
  API key       {api_key}   (viewer)
  state, logs   {state}
  camera video  {video}   (every {CAMERA}, looping; zone {CAMERA_ZONE})

Try:
  mosquitto_sub -p {mq.port} -u observer -P {passwords["observer"]} -t 'sitewatch/v1/#' -v
  mosquitto_sub -p {mq.port} -u monitor -P {passwords["monitor"]} -t 'sitewatch/v1/+/alerts' -v
                                                   (alerts as they change)
  curl -s -H 'X-API-Key: {api_key}' {api}/sites/SITE01/latest
  curl -s -H 'X-API-Key: {api_key}' '{api}/alerts?state=open'
  curl -s -H 'X-API-Key: {api_key}' {api}/sites/SITE01/camera-events
  sitewatch alerts list --database-url {db_url}
  sitewatch alerts verify --database-url {db_url}
  sitewatch deadletters --database-url {db_url}

Press Ctrl-C to stop everything.
""",
            flush=True,
        )
        started = time.monotonic()
        while not stopping:
            dead = children.dead()
            if dead:
                name = dead[0]
                print(
                    f"sitewatch demo: {name} exited unexpectedly:\n{_tail(state / f'{name}.log')}",
                    file=sys.stderr,
                )
                return 1
            if opts.duration_s and time.monotonic() - started >= opts.duration_s:
                break
            time.sleep(0.2)
        print("stopping...", flush=True)
        return 0
    finally:
        children.stop()
        influx.stop()
        mq.stop()
        print("stopped.", flush=True)

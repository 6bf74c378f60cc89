"""docker-compose.yml: valid for docker-compose, and every command and variable in it is
one SiteWatch accepts (no Docker engine runs here, so this is what can be checked)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.config import ApiSettings
from edge.config import EdgeSettings
from edge.devices import build_drivers
from ingest.config import IngestSettings
from sitewatch.core.profiles import load_profiles
from sitewatch.core.settings import ServiceSettings, load_settings
from sitewatch.domains.alertrecords.settings import AlertSettings
from sitewatch.programs.cli import build_parser
from sitewatch.programs.deployenv import DEVELOPMENT_MARKERS, SECRETS, check, new_env
from sitewatch.programs.localstack.mosquitto import (
    TlsListener,
    render_mosquitto_conf,
    render_tls_listener,
)

ROOT = Path(__file__).resolve().parents[1]
AUTH_DIR = "/mosquitto/auth"
CONF_D = "/mosquitto/config/conf.d"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SETTINGS: dict[str, type[ServiceSettings]] = {
    "ingest": IngestSettings,
    "api": ApiSettings,
    "edge": EdgeSettings,
    "alerts": AlertSettings,
}
#: one-shot services that prepare files and exit; each has its own tests below
INIT_COMMANDS = ("broker", "simulate", "deploy")


def _our_services() -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in COMPOSE["services"].items()
        if svc.get("image", "").startswith("sitewatch")
    }


def _compose_config(tmp_path: Path, env_file: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` with ``env_file`` as its .env and none of the secrets in
    its environment (whatever the machine running the test has set)."""
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose not installed: scripts/setup.sh installs it")
    (tmp_path / ".env").write_text(env_file)
    environ = {k: v for k, v in os.environ.items() if k not in ENV}
    return subprocess.run(
        [
            exe,
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(tmp_path / ".env"),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environ,
    )


def test_docker_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    r = _compose_config(tmp_path, "")
    assert r.returncode != 0
    assert "API_SECRET_KEY is not set, run `sitewatch deploy env > .env`" in r.stderr
    # each secret on its own: one missing is named
    missing = {k: v for k, v in ENV.items() if k != "MQTT_GATEWAY_PASSWORD"}
    r = _compose_config(tmp_path, "".join(f"{k}={v}\n" for k, v in missing.items()))
    assert r.returncode != 0
    assert r.stderr.rstrip().endswith(
        "MQTT_GATEWAY_PASSWORD is not set, run `sitewatch deploy env > .env` (docs/operations.md)"
    ), r.stderr


def test_docker_compose_config_accepts_the_file_with_a_generated_env(tmp_path: Path) -> None:
    r = _compose_config(tmp_path, new_env())
    assert r.returncode == 0, r.stderr


def test_every_secret_is_required_and_none_has_a_default() -> None:
    """Every ${VAR} of the file is one of the secrets `deploy env` makes, required
    (``:?``), never with a default (``:-``); no development value is written anywhere; the
    one-shot check gets every secret and everything else waits for it."""
    text = (ROOT / "docker-compose.yml").read_text()
    used = VARIABLE.findall(text)
    assert used
    for name, rest in used:
        assert name in {s.name for s in SECRETS}, name
        assert rest.startswith(f":?{name} is not set"), (name, rest)
    assert {name for name, _ in used} == {s.name for s in SECRETS}
    assert "sitewatch-dev" not in text.lower()
    services = COMPOSE["services"]
    for name, svc in services.items():
        for key, value in svc.get("environment", {}).items():
            written = VARIABLE.sub("", str(value)).lower()
            assert not any(marker in written for marker in DEVELOPMENT_MARKERS), (name, key)
    check = services["secrets"]
    assert check["command"] == ["deploy", "check"]
    assert set(check["environment"]) == {s.name for s in SECRETS}
    for name in ("broker-files", "influxdb"):
        assert (
            services[name]["depends_on"]["secrets"]["condition"] == "service_completed_successfully"
        ), name
    assert services["api"]["environment"]["SITEWATCH_API_ENVIRONMENT"] == "production"


def test_every_long_running_service_restarts_and_has_a_health_check() -> None:
    for name, svc in COMPOSE["services"].items():
        one_shot = svc.get("command", [""])[0] in INIT_COMMANDS
        if one_shot:
            assert svc["restart"] == "no", name
            continue
        assert svc.get("restart") in ("unless-stopped", "always"), name
        check = svc.get("healthcheck", {}).get("test")
        assert check and check[0] in ("CMD", "CMD-SHELL"), name
        if svc.get("image", "").startswith("sitewatch"):
            # a service of ours answers on its metrics port (the API: /health)
            port = next(p.rsplit(":", 1)[1] for p in svc["ports"])
            assert f"http://localhost:{port}/" in " ".join(check), name


#: what a county opens to the network, and what stays on the machine (docs/operations.md)
PUBLISHED = {"8000", "3000", "1883", "8883"}
LOOPBACK = {"8086", "9810", "9811", "9812"}


def test_published_ports_are_the_documented_ones() -> None:
    public: set[str] = set()
    local: set[str] = set()
    for name, svc in COMPOSE["services"].items():
        for port in svc.get("ports", []):
            parts = str(port).split(":")
            if len(parts) == 3:
                assert parts[0] == "127.0.0.1", (name, port)
                local.add(parts[1])
            else:
                public.add(parts[0])
    assert (public, local) == (PUBLISHED, LOOPBACK)
    ops = (ROOT / "docs/operations.md").read_text()
    table = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| (\d{4}) \| (network|this machine) \|", ops, re.M)
    }
    assert table == {
        **dict.fromkeys(PUBLISHED, "network"),
        **dict.fromkeys(LOOPBACK, "this machine"),
    }
    readme = (ROOT / "README.md").read_text()
    for port in PUBLISHED:
        assert port in readme.split("## Run it with Docker", 1)[1].split("\n## ", 1)[0], port


def test_every_state_folder_is_on_a_named_volume() -> None:
    """What a recreated container must not lose: Grafana's users and settings,
    InfluxDB's data and its config (tokens), the broker's sessions, the SQL store and
    snapshots, the gateway's spool."""
    kept = {
        "grafana": "/var/lib/grafana",
        "influxdb": "/etc/influxdb2",
        "mosquitto": "/mosquitto/data",
        "api": "/data",
        "gateway": "/var/lib/sitewatch",
    }
    for service, path in kept.items():
        mounts = dict(v.split(":")[:2] for v in COMPOSE["services"][service]["volumes"])
        source = next((s for s, t in mounts.items() if t == path), None)
        assert source in COMPOSE["volumes"], (service, path)
    assert "/var/lib/influxdb2" in [
        v.split(":")[1] for v in COMPOSE["services"]["influxdb"]["volumes"]
    ]


def test_the_image_installs_its_dependencies_before_the_code() -> None:
    """A change of the code must not reinstall OpenCV: the dependencies' layer depends on
    pyproject.toml alone; the code's install adds nothing (--no-deps); the services do not
    run as root, and as uid 1883, the broker's, so that the broker files are its own."""
    lines = [
        ln.strip()
        for ln in (ROOT / "Dockerfile").read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    steps = [ln for ln in lines if ln.split()[0] in ("COPY", "RUN", "USER", "FROM")]
    copies = [i for i, ln in enumerate(steps) if ln.startswith("COPY")]
    installs = [
        i
        for i, ln in enumerate(steps)
        if ln.startswith("RUN")
        and "pip install" in " ".join(lines[lines.index(ln) : lines.index(ln) + 4])
    ]
    assert steps[copies[0]] == "COPY pyproject.toml ./"
    first_install, last_install = installs[0], installs[-1]
    assert copies[0] < first_install < copies[1]
    assert all(c > first_install for c in copies[1:])
    assert "--no-deps" in steps[last_install] and last_install > copies[-1]
    user = [ln for ln in steps if ln.startswith("USER")]
    assert user == ["USER sitewatch"] and steps.index(user[0]) > last_install
    assert "--uid 1883" in (ROOT / "Dockerfile").read_text()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".venv" in ignored


def test_deploy_env_makes_secrets_that_pass_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sitewatch.programs.cli import main

    assert check(ENV) == []
    assert new_env() != new_env()
    assert all(len(v) == 64 for v in ENV.values())
    out = tmp_path / ".env"
    assert main(["deploy", "env", "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    first = out.read_text()
    assert main(["deploy", "env", "--out", str(out)]) == 1  # never over the one in use
    assert out.read_text() == first
    assert "exists: kept" in capsys.readouterr().err
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    assert main(["deploy", "check"]) == 0
    monkeypatch.setenv("INFLUX_TOKEN", "sitewatch-dev-token")
    monkeypatch.setenv("MQTT_GATEWAY_PASSWORD", "short")
    monkeypatch.setenv("GRAFANA_PASSWORD", ENV["API_SECRET_KEY"])
    monkeypatch.delenv("MQTT_HEALTH_PASSWORD")
    capsys.readouterr()
    assert main(["deploy", "check"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "sitewatch deploy check: INFLUX_TOKEN is a development or default value: set a random one",
        "sitewatch deploy check: GRAFANA_PASSWORD is the same as API_SECRET_KEY: each "
        "secret its own",
        "sitewatch deploy check: MQTT_HEALTH_PASSWORD is not set (the broker account of its "
        "own health check): `sitewatch deploy env` makes a .env with every secret",
        "sitewatch deploy check: MQTT_GATEWAY_PASSWORD is 5 characters: at least 32 random ones",
    ]


def test_expected_services_with_healthchecks() -> None:
    services = COMPOSE["services"]
    assert {"mosquitto", "influxdb", "grafana", "ingest", "alerts", "api", "gateway"} <= set(
        services
    )
    for name in ("mosquitto", "influxdb", "grafana", "api"):
        assert "healthcheck" in services[name], name
    assert services["ingest"]["depends_on"]["influxdb"]["condition"] == "service_healthy"
    assert services["ingest"]["depends_on"]["mosquitto"]["condition"] == "service_healthy"


#: a fresh installation's .env, as `sitewatch deploy env` writes it
ENV = dict(
    line.split("=", 1) for line in new_env().splitlines() if line and not line.startswith("#")
)
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}")


def _compose_value(value: object) -> str:
    """A value of the file as docker compose makes it with the generated .env."""
    return VARIABLE.sub(lambda m: ENV[m.group(1)], str(value))


def test_every_service_is_a_service_or_an_init_step() -> None:
    for name, svc in _our_services().items():
        assert svc["command"][0] in (*SETTINGS, *INIT_COMMANDS), name
        if svc["command"][0] in INIT_COMMANDS:
            assert svc["restart"] == "no", name


@pytest.mark.parametrize(
    "name", sorted(n for n, s in _our_services().items() if s["command"][0] not in INIT_COMMANDS)
)
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
        monkeypatch.setenv(key, _compose_value(value))
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
    expected = render_mosquitto_conf(
        port=1883,
        host="0.0.0.0",
        persistence_dir="/mosquitto/data",
        max_queued_messages=1_000_000,
        user="mosquitto",
        log_dest="stdout",
        password_file=AUTH_DIR + "/passwd",
        acl_file=AUTH_DIR + "/acl",
        include_dir=CONF_D,
    )
    assert (ROOT / "deploy/mosquitto/mosquitto.conf").read_text() == expected
    tls_example = (ROOT / "deploy/mosquitto/conf.d/tls.conf.example").read_text()
    assert tls_example.endswith(
        render_tls_listener(
            port=8883,
            host="0.0.0.0",
            tls=TlsListener("/mosquitto/certs/server.crt", "/mosquitto/certs/server.key"),
        )
    )
    mosquitto = COMPOSE["services"]["mosquitto"]
    mounts = dict(v.split(":")[:2] for v in mosquitto["volumes"])
    assert mounts["./deploy/mosquitto/conf.d"] == CONF_D
    assert mounts["./deploy/mosquitto/certs"] == "/mosquitto/certs"
    assert "8883:8883" in mosquitto["ports"]
    # the files the init service writes are the ones the broker reads, and it runs first
    init = COMPOSE["services"]["broker-files"]
    auth_volume = next(v.split(":")[0] for v in mosquitto["volumes"] if v.split(":")[1] == AUTH_DIR)
    assert f"{auth_volume}:{AUTH_DIR}" in init["volumes"]
    assert init["command"][init["command"].index("--dir") + 1] == AUTH_DIR
    assert mosquitto["depends_on"]["broker-files"]["condition"] == "service_completed_successfully"


def test_ingest_stores_snapshots_where_the_api_serves_them() -> None:
    """Ingest writes the gateways' snapshots (file and row), the API serves them: one
    folder on one volume, one database, for both."""

    def snapshots(service: str) -> tuple[str, str, str]:
        svc = COMPOSE["services"][service]
        env = {k.split("_", 2)[2]: str(v) for k, v in svc["environment"].items()}
        folder = env["SNAPSHOTS_DIR"]
        mounts = dict(v.split(":")[:2] for v in svc["volumes"])
        volume = next(
            (
                source
                for source, target in mounts.items()
                if folder.startswith(target.rstrip("/") + "/")
            ),
            None,
        )
        assert volume is not None, f"{service}: {folder} is on no volume"
        return volume, folder, env["DATABASE_URL"]

    assert snapshots("ingest") == snapshots("api")
    assert not snapshots("ingest")[0].startswith("./")  # a named volume, not the checkout


def _volume_of(service: str, path: str) -> tuple[str, str]:
    """The volume (name, mount point) that ``path`` of ``service``'s container is on."""
    mounts = dict(v.split(":")[:2] for v in COMPOSE["services"][service]["volumes"])
    found = [
        (source, target)
        for source, target in mounts.items()
        if path.startswith(target.rstrip("/") + "/")
    ]
    assert found, f"{service}: {path} is on no volume"
    return max(found, key=lambda m: len(m[1]))


def test_the_gateway_camera_reads_the_video_the_init_service_makes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The camera-video service writes the video where the gateway's camera reads it (one
    named volume, the same mount point), before the gateway starts, and keeps it on the
    next start; the camera's zone is a crane swing zone for the alert service; the
    gateway's spool and snapshots are on a volume too."""
    from alerts.camera import CameraWatch
    from edge.drivers.camera.source import VideoSource
    from simulators.camera_video import SWING_ZONE
    from sitewatch.programs.cli import main
    from sitewatch.programs.demo.sites import camera_device
    from sitewatch.programs.simulatecmd import cmd_camera_video

    init, gateway = COMPOSE["services"]["camera-video"], COMPOSE["services"]["gateway"]
    args = build_parser().parse_args(init["command"])
    assert args.fn is cmd_camera_video and args.if_missing and args.plume
    assert gateway["depends_on"]["camera-video"]["condition"] == "service_completed_successfully"
    edge = load_settings(EdgeSettings, ROOT / "deploy/gateway.yaml")
    camera = next(d for d in edge.devices if d.driver == "camera")
    source = camera.options["source"]
    assert source == str(args.out)
    volume = _volume_of("camera-video", source)
    assert not volume[0].startswith("./") and _volume_of("gateway", source) == volume
    assert not _volume_of("gateway", str(edge.state_dir))[0].startswith("./")
    # the crane swing area of the video, which the alert service takes for one
    alerts = load_settings(AlertSettings, ROOT / "deploy/alerts.yaml")
    zones = {z["name"]: z["polygon"] for z in camera.options["zones"]}
    assert zones["crane-swing"] == [list(p) for p in SWING_ZONE]
    assert CameraWatch(alerts.camera).is_crane_swing("crane-swing")
    assert camera.options["loop"] is True
    # the demo's camera (sitewatch demo), so both show the same
    demo = camera_device(Path(source))
    assert (camera.driver, camera.profile, camera.interval_s, camera.options) == (
        demo["driver"],
        demo["profile"],
        demo["interval_s"],
        demo["options"],
    )
    # the init command, its volume mapped here (and a short video): the camera reads it
    mapped = tmp_path / source.removeprefix(volume[1]).lstrip("/")
    command = [str(mapped) if a == source else a for a in init["command"]]
    assert main([*command, "--seconds", "0.5"]) == 0
    video = VideoSource(str(mapped), camera.options["analysis_fps"], "fast")
    try:
        got = video.next()
    finally:
        video.close()
    assert got is not None and got[1].shape == (720, 1280, 3)
    before = mapped.stat().st_mtime_ns
    capsys.readouterr()
    assert main([*command, "--seconds", "0.5"]) == 0  # the next start keeps it
    assert "exists: kept" in capsys.readouterr().out
    assert mapped.stat().st_mtime_ns == before


def test_grafana_provisioning_paths_match_the_mounts() -> None:
    mounts = dict(v.split(":")[:2] for v in COMPOSE["services"]["grafana"]["volumes"])
    # the maps' offline base layer for every geomap, and the county boundary it serves
    env = COMPOSE["services"]["grafana"]["environment"]
    assert env["GF_GEOMAP_ENABLE_CUSTOM_BASELAYERS"] == "false"
    basemap = env["GF_GEOMAP_DEFAULT_BASELAYER_CONFIG__FILE"]
    assert mounts["./deploy/grafana/basemap.json"] == basemap
    assert json.loads((ROOT / "deploy/grafana/basemap.json").read_text())["type"] == "geojson"
    assert mounts["./deploy/grafana/maps"] == "/usr/share/grafana/public/maps/sitewatch"
    assert mounts["./dashboards/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load(
        (ROOT / "dashboards/provisioning/dashboards/sitewatch.yaml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    source = next(s for s, t in mounts.items() if t == path)
    dashboards = list((ROOT / source).glob("*.json"))
    assert dashboards
    for d in dashboards:
        assert json.loads(d.read_text())["uid"]
    ds = yaml.safe_load((ROOT / "dashboards/provisioning/datasources/sitewatch.yaml").read_text())
    assert ds["datasources"][0]["jsonData"]["dbName"] == "sitewatch"
    assert ds["datasources"][0]["url"] == "http://influxdb:8086"


def _env_value(service: str, key: str) -> str:
    return _compose_value(COMPOSE["services"][service]["environment"][key])


def _broker_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the init service's command here: the generated .env's passwords, the
    repository's accounts file, a temporary folder in place of its volume."""
    from sitewatch.programs.cli import main

    init = COMPOSE["services"]["broker-files"]
    command = list(init["command"])
    assert command[:2] == ["broker", "files"]
    assert "--owner" not in command and "user" not in init  # the image's uid is 1883
    command[command.index("--dir") + 1] = str(tmp_path / "auth")
    at = command.index("--accounts") + 1
    command[at] = str(ROOT / command[at].removeprefix("/app/"))
    for key, value in init["environment"].items():
        monkeypatch.setenv(key, _compose_value(value))
    assert main(command) == 0
    return tmp_path / "auth"


def test_broker_files_service_has_every_account_the_stack_logs_in_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sitewatch.domains.brokeraccounts.brokerauth import (
        Role,
        gateway_username,
        load_accounts,
        verify_password,
    )

    auth = _broker_files(tmp_path, monkeypatch)
    hashes = dict(line.split(":", 1) for line in (auth / "passwd").read_text().splitlines())
    _, accounts = load_accounts(
        yaml.safe_load((ROOT / "deploy/mosquitto/accounts.yaml").read_text()),
        {k: "x" for k in COMPOSE["services"]["broker-files"]["environment"]},
    )
    roles = {a.username: a.role for a in accounts}
    gateway = load_settings(EdgeSettings, ROOT / "deploy/gateway.yaml")
    expected_roles = {"ingest": Role.INGEST, "alerts": Role.ALERTS, "gateway": Role.GATEWAY}
    for name, svc in _our_services().items():
        env = svc.get("environment", {})
        user_key = next((k for k in env if k.endswith("_MQTT__USERNAME")), None)
        if svc["command"][0] in ("broker", "api", "simulate", "deploy"):
            # (the API and the camera video's maker do not use the broker)
            assert user_key is None, name
            continue
        assert user_key is not None, f"{name} has no broker account"
        username = str(env[user_key])
        password = _env_value(name, user_key.replace("USERNAME", "PASSWORD"))
        assert verify_password(password, hashes[username]), f"{name}: {username}"
        assert roles[username] is expected_roles[name], name
        if name == "gateway":
            assert username == gateway_username(gateway.site, gateway.gateway)
    # the broker's health check logs in too
    check = " ".join(COMPOSE["services"]["mosquitto"]["healthcheck"]["test"])
    assert "-u health" in check and roles["health"] is Role.HEALTHCHECK
    assert verify_password(_env_value("mosquitto", "MQTT_HEALTH_PASSWORD"), hashes["health"])


@pytest.mark.integration
def test_compose_broker_config_on_real_mosquitto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/mosquitto as the container sees it (paths mapped to a temporary folder, free
    loopback ports), with the init service's files and the TLS example turned on: the
    health check passes, anonymous is refused, the gateway's account publishes its own
    telemetry over TLS and ingest's receives it."""
    import signal
    import time

    from sitewatch.programs.localstack import free_port

    auth = _broker_files(tmp_path, monkeypatch)
    port, tls_port = free_port(), free_port()
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    example = (ROOT / "deploy/mosquitto/conf.d/tls.conf.example").read_text()
    (conf_d / "tls.conf").write_text(
        example.replace("8883 0.0.0.0", f"{tls_port} 127.0.0.1").replace(
            "/mosquitto/certs/", f"{tmp_path}/"
        )
    )
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "")
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    conf = (
        conf.replace("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1")
        .replace(AUTH_DIR, str(auth))
        .replace(CONF_D, str(conf_d))
        .replace("/mosquitto/data/", f"{tmp_path}/")
        .replace("user mosquitto", f"user {user}")
    )
    (tmp_path / "mosquitto.conf").write_text(conf)
    log = open(tmp_path / "mosquitto.log", "wb")
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(tmp_path / "mosquitto.conf")], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 10
        check = [
            a.replace("$$", "$")
            for a in COMPOSE["services"]["mosquitto"]["healthcheck"]["test"][1:]
        ]
        env = {
            **os.environ,
            "MQTT_HEALTH_PASSWORD": _env_value("mosquitto", "MQTT_HEALTH_PASSWORD"),
        }
        while True:
            health = subprocess.run(
                [
                    "sh",
                    "-c",
                    check[0].replace("mosquitto_sub", f"mosquitto_sub -h 127.0.0.1 -p {port}"),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=10,
            )
            if health.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert health.returncode == 0, (health, (tmp_path / "mosquitto.log").read_text())

        def sub(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), *args],
                capture_output=True,
                text=True,
                timeout=15,
            )

        assert sub("-t", "#", "-C", "1", "-W", "3").returncode != 0  # anonymous
        ingest = subprocess.Popen(
            [
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-u",
                "ingest",
                "-P",
                _env_value("ingest", "SITEWATCH_INGEST_MQTT__PASSWORD"),
                "-t",
                "sitewatch/v1/+/+/telemetry",
                "-C",
                "1",
                "-W",
                "10",
                "-v",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)
        for _ in range(20):  # until the subscription is in place
            subprocess.run(
                [
                    "mosquitto_pub",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(tls_port),
                    "--cafile",
                    str(cert),
                    "-q",
                    "1",
                    "-u",
                    "SITE01.GW01",
                    "-P",
                    _env_value("gateway", "SITEWATCH_EDGE_MQTT__PASSWORD"),
                    "-t",
                    "sitewatch/v1/SITE01/GW01/telemetry",
                    "-m",
                    "over-tls",
                ],
                check=True,
                capture_output=True,
                timeout=15,
            )
            if ingest.poll() is not None:
                break
            time.sleep(0.1)
        out, err = ingest.communicate(timeout=15)
        assert out.strip() == "sitewatch/v1/SITE01/GW01/telemetry over-tls", err
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(10)
        log.close()

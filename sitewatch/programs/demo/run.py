"""Running the demo: the state folder locked, the servers and services started in order,
the sites' edge agents and gate terminals, the summary printed, and everything stopped
(what ``sitewatch demo`` does: see the package's docstring)."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from sitewatch.domains.brokeraccounts.brokerauth import gateway_username, write_broker_files
from sitewatch.programs.demo.accounts import broker_accounts, mqtt_login
from sitewatch.programs.demo.children import Children, tail, wait_http, wait_log
from sitewatch.programs.demo.configs import write_service_configs
from sitewatch.programs.demo.registry import seed_registry
from sitewatch.programs.demo.sites import CAMERA_VIDEO, WORKERS_PER_SITE, gate_tokens, site_config
from sitewatch.programs.demo.summary import summary
from sitewatch.programs.localstack import InfluxServer, MosquittoServer, PortInUseError, ServerError
from sitewatch.programs.localstack.ports import free_port, port_is_free
from sitewatch.programs.statelock import StateFolderBusy, StateLock


@dataclass(frozen=True)
class DemoOptions:
    state_dir: Path
    sites: int = 3
    mqtt_port: int | None = None
    influx_port: int | None = None
    api_port: int | None = None
    duration_s: float = 0.0


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
    accounts, passwords = broker_accounts(opts.sites)
    broker_files = write_broker_files(state / "broker", "sitewatch/v1", accounts)
    mq = MosquittoServer(
        state / "mosquitto",
        opts.mqtt_port,
        password_file=broker_files.password_file,
        acl_file=broker_files.acl_file,
    )
    influx = InfluxServer(state / "influxdb", opts.influx_port)
    children = Children(state)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        video = state / CAMERA_VIDEO
        # made while the servers start (about 10 s); the edges wait for it. No smoke
        # plume: a fire every 30 s at every site is no story (the camera's smoke check
        # is shown by `sitewatch simulate camera-video --plume`)
        making_video = (
            None
            if video.exists()
            else children.spawn(
                "camera-video",
                "simulate",
                "camera-video",
                "--out",
                str(video),
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
        id_key = secrets.token_hex(32)  # ID-card numbers are kept hashed under it
        db_url = write_service_configs(
            state,
            mq=mq,
            influx=influx,
            api_port=api_port,
            accounts=accounts,
            broker_dir=broker_files.password_file.parent,
            id_key=id_key,
        )
        admin_password, api_key = seed_registry(db_url, accounts, id_key)
        children.spawn(
            "ingest",
            "ingest",
            "--config",
            str(state / "ingest.yaml"),
            env=mqtt_login("INGEST", "ingest", passwords),
        )
        children.spawn(
            "alerts",
            "alerts",
            "serve",
            "--config",
            str(state / "alerts.yaml"),
            env=mqtt_login("ALERTS", "alerts", passwords),
        )
        children.spawn("api", "api", "--config", str(state / "api.yaml"))
        # the edges send at once (a week of gate events): ingest and the alert service
        # must have their sessions first, or the broker has no one to queue those for
        for name, ready in (("ingest", "ingest connected"), ("alerts", "alerts connected")):
            if not wait_log(state / f"{name}.log", ready, 30):
                print(
                    f"sitewatch demo: {name} did not connect:\n{tail(state / f'{name}.log')}",
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
                    f"{tail(state / 'camera-video.log')}",
                    file=sys.stderr,
                )
                return 1
        for i in range(1, opts.sites + 1):
            site = f"SITE{i:02d}"
            cfg = state / f"edge-{site}.yaml"
            gate_port, tokens = free_port(), gate_tokens()
            cfg.write_text(yaml.safe_dump(site_config(i, mq.port, state, gate_port, tokens)))
            children.spawn(
                f"edge-{site}",
                "edge",
                "--config",
                str(cfg),
                env=mqtt_login("EDGE", gateway_username(site, f"GW{i:02d}"), passwords),
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
        if not wait_http(f"{api}/health", 30):
            print(
                f"sitewatch demo: the API did not come up:\n{tail(state / 'api.log')}",
                file=sys.stderr,
            )
            return 1
        print(
            summary(
                sites=opts.sites,
                mqtt_port=mq.port,
                broker_dir=broker_files.password_file.parent,
                influx_url=influx.url,
                api=api,
                admin_password=admin_password,
                api_key=api_key,
                state=state,
                video=video,
                passwords=passwords,
                db_url=db_url,
            ),
            flush=True,
        )
        started = time.monotonic()
        while not stopping:
            dead = children.dead()
            if dead:
                name = dead[0]
                print(
                    f"sitewatch demo: {name} exited unexpectedly:\n{tail(state / f'{name}.log')}",
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

"""``sitewatch``: one command, a subcommand per part of the platform."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sitewatch import __version__
from sitewatch.core.profiles import ProfileError
from sitewatch.core.settings import ConfigError


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


def cmd_ingest(args: argparse.Namespace) -> int:
    from sitewatch.core.settings import load_settings
    from sitewatch.ingest.config import IngestSettings
    from sitewatch.ingest.service import run_ingest

    settings = load_settings(IngestSettings, args.config)
    _setup_logging(settings.log_level)
    asyncio.run(run_ingest(settings))
    return 0


def cmd_edge(args: argparse.Namespace) -> int:
    from sitewatch.core.settings import load_settings
    from sitewatch.edge.agent import run_agent
    from sitewatch.edge.config import EdgeSettings

    settings = load_settings(EdgeSettings, args.config)
    _setup_logging(settings.log_level)
    asyncio.run(run_agent(settings))
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from sitewatch.api.config import ApiSettings
    from sitewatch.api.main import serve
    from sitewatch.core.settings import load_settings

    settings = load_settings(ApiSettings, args.config)
    _setup_logging(settings.log_level)
    serve(settings)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from sitewatch.simulators.fleet import FleetOptions, run_fleet

    _setup_logging("INFO")
    opts = FleetOptions(
        host=args.host,
        port=args.port,
        prefix=args.prefix,
        sites=args.sites,
        devices=args.devices,
        rate=args.rate,
        duration_s=args.duration,
        scenarios=tuple(args.scenario or ()),
        seed=args.seed,
        batch_items=args.batch_items,
        username=args.username,
        password=args.password,
    )
    asyncio.run(run_fleet(opts))
    return 0


def cmd_camera_video(args: argparse.Namespace) -> int:
    """The synthetic site-camera video (the standard scene of the camera analytics'
    tests), made here: a looping source for a simulated gateway's ``camera`` device."""
    import dataclasses
    import os
    import signal

    from sitewatch.simulators.camera_video import SWING_ZONE, site_scene

    out: Path = args.out
    where = "sitewatch simulate camera-video"
    if out.suffix.lower() != ".avi":
        print(
            f"{where}: --out must end in .avi (the video is MJPG in AVI, which OpenCV "
            "reads everywhere)",
            file=sys.stderr,
        )
        return 2
    if args.if_missing and out.exists():
        print(f"{out} exists: kept")
        return 0
    scene = site_scene(seed=args.seed, plume=args.plume)
    scene = dataclasses.replace(scene, frames=max(1, round(args.seconds * scene.fps)))
    # written under another name and renamed: a camera reading OUT never sees half a file
    partial = out.with_name(f".{out.stem}.{os.getpid()}.partial{out.suffix}")
    # stopped (the demo stopping, docker stop): no half file left behind either
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        scene.write(partial)
        os.replace(partial, out)
    except OSError as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 1
    finally:
        partial.unlink(missing_ok=True)
        signal.signal(signal.SIGTERM, previous)
    zone = ", ".join(f"[{x:g}, {y:g}]" for x, y in SWING_ZONE)
    print(
        f"wrote {out}: {scene.frames} frames at {scene.fps:g} fps "
        f"({scene.frames / scene.fps:g} s), {scene.width}x{scene.height}; "
        f"the crane swing area: polygon [{zone}]"
    )
    return 0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 3600:  # (nan is not)
        raise argparse.ArgumentTypeError(f"{text!r}: seconds, more than 0, at most 3600")
    return value


def cmd_demo(args: argparse.Namespace) -> int:
    from sitewatch.programs.demo import DemoOptions, run_demo

    _setup_logging("INFO")
    return run_demo(
        DemoOptions(
            state_dir=Path(args.state_dir),
            sites=args.sites,
            mqtt_port=args.mqtt_port,
            influx_port=args.influx_port,
            api_port=args.api_port,
            duration_s=args.duration,
        )
    )


def cmd_profiles(args: argparse.Namespace) -> int:
    from sitewatch.core.profiles import load_profiles

    profiles = load_profiles(Path(args.dir) if args.dir else None)
    for name, p in profiles.items():
        print(f"{name}: {len(p.fields)} fields, {len(p.rules)} rules - {p.title} ({p.standard})")
    return 0


def cmd_deadletters(args: argparse.Namespace) -> int:
    from sitewatch.domains.deadletters import DeadLetterStore

    store = DeadLetterStore(args.database_url)
    store.create_schema()
    if args.counts:
        for reason, n in sorted(store.counts_by_reason().items()):
            print(f"{reason:22} {n}")
        return 0
    import datetime as dt

    for row in reversed(store.recent(args.limit, args.reason, args.site)):
        payload = row.payload[:200].decode("utf-8", "replace")
        # UTC (SQLite gives it back without its zone), and ms since the epoch as the API
        received = (
            row.received_at if row.received_at.tzinfo else row.received_at.replace(tzinfo=dt.UTC)
        )
        at = int(received.timestamp() * 1000)
        print(
            f"#{row.id} {_ms(at)} ({at}) {row.reason} topic={row.topic} "
            f"batch={row.batch} device={row.device} seq={row.seq}\n    {row.detail}\n"
            f"    payload: {payload}"
        )
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    """Mosquitto's password and ACL files, gateways' MQTT passwords (docs/broker.md)."""
    from sitewatch.programs.brokercmd import run

    return run(args)


def _alert_settings(args: argparse.Namespace) -> Any:
    from sitewatch.core.settings import load_settings
    from sitewatch.domains.alertrecords.settings import AlertSettings

    overrides = {"database_url": args.database_url} if args.database_url else {}
    return load_settings(AlertSettings, args.config, **overrides)


def cmd_alerts(args: argparse.Namespace) -> int:
    import time

    from sitewatch.domains.alertrecords.store import AlertError, AlertStore

    settings = _alert_settings(args)
    if args.action == "serve":
        from sitewatch.alerts.service import run_alerts

        _setup_logging(settings.log_level)
        asyncio.run(run_alerts(settings))
        return 0
    if args.action in ("ack", "resolve"):
        # the running service's routing (MQTT, InfluxDB, notifiers) for the outbox rows
        from sitewatch.domains.alertrecords.routing import router_for

        store = AlertStore(settings.database_url, router_for(settings))
    else:
        store = AlertStore(settings.database_url)
    store.create_schema()
    try:
        if args.action == "verify":
            report = store.verify()
            for problem in report.problems:
                print(f"TAMPERED: {problem}")
            state = "intact" if report.ok else f"{len(report.problems)} problem(s)"
            print(f"{report.entries} history entries, {report.alerts} alerts: {state}")
            return 0 if report.ok else 1
        if args.action in ("ack", "resolve"):
            if not args.alert_id or not args.by:
                print(f"sitewatch alerts {args.action}: give ALERT_ID and --by", file=sys.stderr)
                return 2
            now = int(time.time() * 1000)
            try:
                fn = store.acknowledge if args.action == "ack" else store.resolve
                ev, _ = fn(args.alert_id, args.by, args.comment, now)
            except AlertError as exc:
                print(f"sitewatch alerts {args.action}: {exc}", file=sys.stderr)
                return 1
            print(f"{ev.id} {ev.event.value} by {args.by}")
            return 0
        if args.action == "history":
            for h in store.history(args.alert_id):
                print(f"#{h.n} {_ms(h.at)} {h.alert_id} {h.event} by {h.actor} hash={h.hash}")
            return 0
        for row in store.list_alerts(
            site=args.site, state=args.state, severity=args.severity, limit=args.limit
        ):
            ack = f" acked by {row.acked_by}" if row.acked_by else ""
            late = " LATE" if row.late else ""
            print(
                f"{row.id} {_ms(row.raised_at)} {row.severity:7} {row.level:6} "
                f"{row.state:9} {row.site}/{row.device} {row.group}: {row.title} "
                f"({row.value} vs {row.limit}){late}{ack}"
            )
        return 0
    finally:
        store.dispose()


def cmd_accounts(args: argparse.Namespace) -> int:
    import getpass

    from sqlalchemy.orm import Session

    from sitewatch.core.db import make_engine
    from sitewatch.domains import accounts
    from sitewatch.domains.schema import create_tables

    engine = make_engine(args.database_url)
    create_tables(engine)
    try:
        with Session(engine) as s:
            if args.action == "add-user":
                if not args.name or not args.role:
                    print("sitewatch accounts add-user: give NAME and --role", file=sys.stderr)
                    return 2
                password = (
                    sys.stdin.readline().rstrip("\n")
                    if not sys.stdin.isatty()
                    else getpass.getpass(f"password for {args.name}: ")
                )
                accounts.add_user(s, args.name, password, args.role, args.site or [])
                s.commit()
                print(f"user {args.name} ({args.role}) added")
            elif args.action == "add-key":
                if not args.name or not args.role:
                    print("sitewatch accounts add-key: give NAME and --role", file=sys.stderr)
                    return 2
                row, secret = accounts.add_api_key(
                    s, args.name, args.role, args.site or [], args.gateway
                )
                s.commit()
                bound = f", gateway {row.sites[0]}/{args.gateway}" if args.gateway else ""
                print(f"API key {row.id} ({args.role}{bound}) for {args.name}; shown once:")
                print(secret)
            elif args.action in ("disable-user", "revoke-key"):
                user = (
                    s.get(accounts.UserRow, args.name or "")
                    if args.action == "disable-user"
                    else None
                )
                key = (
                    s.get(accounts.ApiKeyRow, args.name or "")
                    if args.action == "revoke-key"
                    else None
                )
                if user is None and key is None:
                    print(f"sitewatch accounts {args.action}: no {args.name!r}", file=sys.stderr)
                    return 1
                if user is not None:
                    user.disabled = True
                if key is not None:
                    key.revoked = True
                s.commit()
                print(f"{args.name}: {'disabled' if args.action == 'disable-user' else 'revoked'}")
            else:
                for u in accounts.list_users(s):
                    state = " (disabled)" if u.disabled else ""
                    print(f"user {u.username:24} {u.role:18} {','.join(u.sites) or '-'}{state}")
                for k in accounts.list_api_keys(s):
                    state = " (revoked)" if k.revoked else ""
                    gw = accounts.key_gateway(s, k.id)
                    where = f"{k.sites[0]}/{gw}" if gw and k.sites else ",".join(k.sites)
                    print(f"key  {k.id:24} {k.role:18} {where or '-'} {k.name}{state}")
    except accounts.AccountError as exc:
        print(f"sitewatch accounts {args.action}: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


def _ms(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sitewatch", description=__doc__)
    p.add_argument("--version", action="version", version=f"sitewatch {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, fn: Callable[[argparse.Namespace], int], help_: str, config: bool = False
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        if config:
            sp.add_argument(
                "--config",
                "-c",
                type=Path,
                default=None,
                help="YAML configuration file (environment variables override it)",
            )
        return sp

    add(
        "ingest",
        cmd_ingest,
        "run the ingest service (MQTT -> InfluxDB, dead letters, acks)",
        config=True,
    )
    add("edge", cmd_edge, "run a site gateway's edge agent", config=True)
    add("api", cmd_api, "run the HTTP API", config=True)

    sim = add(
        "simulate",
        cmd_simulate,
        "publish a simulated fleet: SITES x DEVICES devices at RATE readings/s each "
        "(simulate camera-video: a synthetic site-camera video instead)",
    )
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=1883)
    sim.add_argument("--prefix", default="sitewatch/v1")
    sim.add_argument("--username", default="")
    sim.add_argument("--password", default="")
    sim.add_argument("--sites", type=int, default=3)
    sim.add_argument("--devices", type=int, default=6, help="devices per site")
    sim.add_argument("--rate", type=float, default=1.0, help="readings per second per device")
    sim.add_argument("--duration", type=float, default=0, help="seconds; 0 runs until Ctrl-C")
    sim.add_argument("--batch-items", type=int, default=50)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--scenario",
        action="append",
        help="NAME[@SITE[/DEVICE]][:START_S[:DURATION_S]], repeatable",
    )
    # what else can be simulated, under the same command; without one: the fleet above
    sim_other = sim.add_subparsers(
        dest="simulation", metavar="[WHAT]", required=False, title="instead of the fleet"
    )
    help_ = (
        "write a synthetic site-camera video (the camera analytics' standard scene: "
        "six people, two without hard hats, crossing a crane swing area) for a "
        "camera device's source; deterministic, nothing downloaded"
    )
    video = sim_other.add_parser("camera-video", help=help_, description=help_)
    video.set_defaults(fn=cmd_camera_video)
    video.add_argument(
        "--out",
        type=Path,
        required=True,
        help="the video file to write (.avi, MJPG, 1280x720 at 10 fps)",
    )
    video.add_argument(
        "--seconds",
        type=_seconds,
        default=30.0,
        help="length (default 30: the scene's people cross in its first 30 s; "
        "a longer video goes on with the empty site)",
    )
    video.add_argument(
        "--seed", type=int, default=1, help="the ground's texture and the sensor noise"
    )
    video.add_argument(
        "--plume",
        action="store_true",
        help="a grey smoke plume, rising after 10 s (for smoke detection)",
    )
    video.add_argument(
        "--if-missing",
        action="store_true",
        help="keep OUT as it is if it exists (for a container's every start)",
    )

    demo = add("demo", cmd_demo, "run the whole platform locally with simulated sites")
    demo.add_argument("--state-dir", default=".sitewatch-demo")
    demo.add_argument("--sites", type=int, default=3)
    demo.add_argument("--mqtt-port", type=int, default=None, help="default: a free port")
    demo.add_argument("--influx-port", type=int, default=None, help="default: a free port")
    demo.add_argument("--api-port", type=int, default=None, help="default: 8000 if free")
    demo.add_argument("--duration", type=float, default=0, help="seconds; 0 runs until Ctrl-C")

    al = add("alerts", cmd_alerts, "the alert service, and the alerts it keeps", config=True)
    al.add_argument(
        "action",
        choices=["serve", "list", "history", "ack", "resolve", "verify"],
        help="serve: run the alert service; list/history: show alerts and their "
        "changes; ack/resolve ALERT_ID --by NAME [--comment TEXT]; verify: "
        "check the history chain (exit 1 if anything was altered)",
    )
    al.add_argument("alert_id", nargs="?", default=None)
    al.add_argument(
        "--database-url",
        default=None,
        help="default: database_url of --config, else sqlite:///sitewatch.db",
    )
    al.add_argument("--by", default=None, help="who acknowledges or resolves")
    al.add_argument("--comment", default="")
    al.add_argument("--site", default=None)
    al.add_argument("--state", default=None, help="open, active, clearing or resolved")
    al.add_argument("--severity", default=None)
    al.add_argument("--limit", type=int, default=50)

    br = add("broker", cmd_broker, "Mosquitto's accounts: password and ACL files (docs/broker.md)")
    from sitewatch.programs.brokercmd import add_arguments as broker_arguments

    broker_arguments(br)

    acc = add("accounts", cmd_accounts, "people and API keys of the API (docs/api.md)")
    acc.add_argument(
        "action",
        choices=["list", "add-user", "add-key", "disable-user", "revoke-key"],
        help="add-user NAME --role R [--site S ...] (password on stdin or "
        "asked for); add-key NAME --role R [--site S ...] (the key is "
        "printed once; a vendor key: --role vendor --site S --gateway G, "
        "reads that gateway's dead letters only); disable-user NAME; "
        "revoke-key KEY_ID",
    )
    acc.add_argument("name", nargs="?", default=None)
    acc.add_argument(
        "--role",
        default=None,
        choices=["county_supervisor", "site_officer", "admin", "viewer", "vendor"],
    )
    acc.add_argument("--site", action="append", help="a site the account may see, repeatable")
    acc.add_argument("--gateway", default=None, help="a vendor key's gateway (of its one --site)")
    acc.add_argument("--database-url", default="sqlite:///sitewatch.db")

    from sitewatch.programs.attendancecmd import add_parser as add_attendance

    add_attendance(sub)  # sitewatch attendance ACTION: its actions and handlers live there

    from sitewatch.dashboards.cli import add_parser as add_dashboards

    add_dashboards(sub)  # sitewatch dashboards generate|check|push

    from sitewatch.programs.backup.cli import add_parser as add_backup

    add_backup(sub)  # sitewatch backup create|restore|verify (docs/backup.md)

    from sitewatch.programs.deployenv import add_parser as add_deploy

    add_deploy(sub)  # sitewatch deploy env|check: a docker-compose installation's secrets

    prof = add("profiles", cmd_profiles, "load and check the device profiles")
    prof.add_argument("--dir", default=None)

    dl = add("deadletters", cmd_deadletters, "show refused messages and items with reasons")
    dl.add_argument("--database-url", default="sqlite:///sitewatch.db")
    dl.add_argument("--limit", type=int, default=20)
    dl.add_argument("--reason", default=None)
    dl.add_argument("--site", default=None)
    dl.add_argument("--counts", action="store_true", help="counts by reason")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except (ConfigError, ProfileError) as exc:
        print(f"sitewatch {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

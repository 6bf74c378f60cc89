"""``sitewatch simulate``: a simulated fleet published to a broker, or (``simulate
camera-video``) the synthetic site-camera video a simulated camera reads. The simulators
are imported when the command runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from sitewatch.programs.commandline import add_command, setup_logging


def add_parser(subparsers: Any) -> None:
    sim = add_command(
        subparsers,
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


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulators.fleet import FleetOptions, run_fleet

    setup_logging("INFO")
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

    from simulators.camera_video import SWING_ZONE, site_scene

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

"""``sitewatch demo``: the whole platform on this machine with simulated sites (the demo
itself, ``sitewatch.programs.demo``, is imported when the command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sitewatch.programs.commandline import add_command, setup_logging


def add_parser(subparsers: Any) -> None:
    demo = add_command(
        subparsers, "demo", cmd_demo, "run the whole platform locally with simulated sites"
    )
    demo.add_argument("--state-dir", default=".sitewatch-demo")
    demo.add_argument("--sites", type=int, default=3)
    demo.add_argument("--mqtt-port", type=int, default=None, help="default: a free port")
    demo.add_argument("--influx-port", type=int, default=None, help="default: a free port")
    demo.add_argument("--api-port", type=int, default=None, help="default: 8000 if free")
    demo.add_argument("--duration", type=float, default=0, help="seconds; 0 runs until Ctrl-C")


def cmd_demo(args: argparse.Namespace) -> int:
    from sitewatch.programs.demo import DemoOptions, run_demo

    setup_logging("INFO")
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

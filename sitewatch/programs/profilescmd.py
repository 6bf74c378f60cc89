"""``sitewatch profiles``: load and check the device profiles (docs/device-profiles.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sitewatch.programs.commandline import add_command


def add_parser(subparsers: Any) -> None:
    prof = add_command(subparsers, "profiles", cmd_profiles, "load and check the device profiles")
    prof.add_argument("--dir", default=None)


def cmd_profiles(args: argparse.Namespace) -> int:
    from sitewatch.core.profiles import load_profiles

    profiles = load_profiles(Path(args.dir) if args.dir else None)
    for name, p in profiles.items():
        print(f"{name}: {len(p.fields)} fields, {len(p.rules)} rules - {p.title} ({p.standard})")
    return 0

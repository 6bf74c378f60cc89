"""What the ``sitewatch`` command's modules share: adding a subcommand, logging set up
by a command that runs a service, and times printed as operators read them. Standard
library only: ``sitewatch --help`` imports it."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def add_command(
    subparsers: Any, name: str, fn: Handler, help_: str, config: bool = False
) -> argparse.ArgumentParser:
    """``sitewatch NAME`` on ``sitewatch``'s subparsers (``argparse._SubParsersAction``,
    which has no public type), run by ``fn``; ``config``: it takes ``--config``."""
    sp: argparse.ArgumentParser = subparsers.add_parser(name, help=help_, description=help_)
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


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


def ms_text(ms: int) -> str:
    """Milliseconds since the epoch as a UTC time: ``2024-05-01 08:30:00Z``."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")

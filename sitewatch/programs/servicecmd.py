"""``sitewatch ingest``, ``sitewatch edge``, ``sitewatch api``: run a service with its
configuration (docs/configuration.md). Each service is imported when its command runs."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from sitewatch.programs.commandline import add_command, setup_logging


def add_parsers(subparsers: Any) -> None:
    add_command(
        subparsers,
        "ingest",
        cmd_ingest,
        "run the ingest service (MQTT -> InfluxDB, dead letters, acks)",
        config=True,
    )
    add_command(subparsers, "edge", cmd_edge, "run a site gateway's edge agent", config=True)
    add_command(subparsers, "api", cmd_api, "run the HTTP API", config=True)


def cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.config import IngestSettings
    from ingest.service import run_ingest
    from sitewatch.core.settings import load_settings

    settings = load_settings(IngestSettings, args.config)
    setup_logging(settings.log_level)
    asyncio.run(run_ingest(settings))
    return 0


def cmd_edge(args: argparse.Namespace) -> int:
    from edge.agent import run_agent
    from edge.config import EdgeSettings
    from sitewatch.core.settings import load_settings

    settings = load_settings(EdgeSettings, args.config)
    setup_logging(settings.log_level)
    asyncio.run(run_agent(settings))
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    from api.config import ApiSettings
    from api.main import serve
    from sitewatch.core.settings import load_settings

    settings = load_settings(ApiSettings, args.config)
    setup_logging(settings.log_level)
    serve(settings)
    return 0

"""The secrets of a docker-compose installation: one list of them, a fresh ``.env`` made
from it (``sitewatch deploy env``), and the check the stack runs before anything else
starts (``sitewatch deploy check``), which refuses a missing, short, reused or
development value, naming the variable."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Secret:
    name: str
    purpose: str


#: every secret docker-compose.yml requires; ``.env`` holds one line each
SECRETS: tuple[Secret, ...] = (
    Secret("API_SECRET_KEY", "signs the API's log-in tokens and session cookies"),
    Secret(
        "ATTENDANCE_ID_HASH_KEY",
        "the HMAC key of workers' ID-card numbers; changing "
        "it makes every stored hash useless: keep it",
    ),
    Secret(
        "INFLUX_TOKEN",
        "InfluxDB's all-access token; set once, before the first start "
        "(to change it later: docs/operations.md)",
    ),
    Secret("INFLUX_PASSWORD", "InfluxDB's admin user 'sitewatch'"),
    Secret("GRAFANA_PASSWORD", "Grafana's user 'admin'"),
    Secret("MQTT_INGEST_PASSWORD", "the broker account of ingest"),
    Secret("MQTT_ALERTS_PASSWORD", "the broker account of the alert service"),
    Secret("MQTT_HEALTH_PASSWORD", "the broker account of its own health check"),
    Secret("MQTT_GATEWAY_PASSWORD", "the broker account of the simulated gateway SITE01/GW01"),
)
#: shorter values are refused: 32 hex digits (128 bits) is what ``deploy env`` makes
MIN_LENGTH = 32
#: parts of the development values this project once shipped; never in a deployment
DEVELOPMENT_MARKERS = ("sitewatch-dev", "sitewatch-development", "changeme", "password")


class SecretsError(ValueError):
    pass


def new_env() -> str:
    """A fresh ``.env``: every secret random (256 bits, hex: safe in YAML, URLs and
    shells), each with what it is for."""
    lines = [
        "# SiteWatch secrets for docker-compose, made by `sitewatch deploy env`.",
        "# Keep this file (and its backups) private: chmod 600. docs/operations.md",
        "",
    ]
    for s in SECRETS:
        lines += [f"# {s.purpose}", f"{s.name}={secrets.token_hex(32)}"]
    return "\n".join(lines) + "\n"


def check(env: Mapping[str, str]) -> list[str]:
    """What is wrong with the secrets in ``env``: one message per variable, empty if
    nothing is."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for s in SECRETS:
        value = env.get(s.name, "")
        if not value:
            problems.append(
                f"{s.name} is not set ({s.purpose}): `sitewatch deploy env` "
                "makes a .env with every secret"
            )
            continue
        if any(marker in value.lower() for marker in DEVELOPMENT_MARKERS):
            problems.append(f"{s.name} is a development or default value: set a random one")
        elif len(value) < MIN_LENGTH:
            problems.append(
                f"{s.name} is {len(value)} characters: at least {MIN_LENGTH} random ones"
            )
        if value in seen:
            problems.append(f"{s.name} is the same as {seen[value]}: each secret its own")
        seen.setdefault(value, s.name)
    return problems


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    help_ = (
        "a docker-compose installation's secrets: env writes a fresh .env, check "
        "refuses missing or weak ones (docs/operations.md)"
    )
    p = sub.add_parser("deploy", help=help_, description=help_)
    p.add_argument(
        "action",
        choices=["env", "check"],
        help="env: print a new .env with every secret random (or write it with "
        "--out, never over an existing file); check: the secrets in the "
        "environment, exit 1 naming each that is missing, short, reused or "
        "a development value",
    )
    p.add_argument("--out", type=Path, default=None, help="env: the file to write (mode 600)")
    p.set_defaults(fn=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "check":
        problems = check(os.environ)
        for problem in problems:
            print(f"sitewatch deploy check: {problem}", file=sys.stderr)
        if not problems:
            print(f"sitewatch deploy check: {len(SECRETS)} secrets set")
        return 1 if problems else 0
    text = new_env()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(
            f"sitewatch deploy env: {args.out} exists: kept (its INFLUX_TOKEN and "
            "ATTENDANCE_ID_HASH_KEY are in use; a new one would lock the services out)",
            file=sys.stderr,
        )
        return 1
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    print(f"sitewatch deploy env: wrote {args.out} ({len(SECRETS)} secrets)")
    return 0

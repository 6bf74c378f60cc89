"""Run Schemathesis against the API's own OpenAPI schema, on a real InfluxDB.

Starts InfluxDB (``sitewatch.programs.localstack``, a free port) and the API as a real uvicorn
process with an admin API key and a site, gateway and device in the registry, then runs
``st run`` against ``/openapi.json`` with every check but ``positive_data_acceptance``
(see below). Any 500, any response that does not match the schema, any undocumented
status, any invalid request accepted, fails the run (exit code of ``st``).

    .venv/bin/python scripts/api_schema_check.py                 # default budget
    .venv/bin/python scripts/api_schema_check.py --max-examples 20 -- --phases examples,coverage
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from sitewatch.programs.localstack import InfluxServer, free_port

BIN = Path(sys.executable).parent


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--max-examples", type=int, default=50)
    ap.add_argument("st_args", nargs="*", help="more arguments for `st run` (after --)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sitewatch-st-") as tmp:
        work = Path(tmp)
        influx = InfluxServer(work / "influxdb")
        influx.start()
        api = None
        try:
            db = f"sqlite:///{work / 'api.db'}"
            port = free_port()
            config = {
                "environment": "production",
                "auth": {"secret_key": os.urandom(24).hex()},
                "port": port,
                "database_url": db,
                "snapshots_dir": str(work / "snaps"),
                "influx": {"url": influx.url, "database": "schemathesis"},
                "rate_limit": {"enabled": False},
                # a production API without it answers 503 to a worker import
                "attendance": {"id_hash_key": os.urandom(24).hex()},
            }
            (work / "api.yaml").write_text(yaml.safe_dump(config))
            key = prepare(db, influx.url)
            with open(work / "api.log", "wb") as log:
                api = subprocess.Popen(
                    [str(BIN / "sitewatch"), "api", "-c", str(work / "api.yaml")],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            base = f"http://127.0.0.1:{port}"
            _wait(f"{base}/health")
            # every check but positive_data_acceptance: a field or rule id valid for one
            # profile and not for the device's is a 400 naming the valid ones - a rule
            # a schema cannot state (run with `-- --checks all` to see those)
            cmd = [
                str(BIN / "st"),
                "run",
                f"{base}/openapi.json",
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "-H",
                f"X-API-Key: {key}",
                "--max-examples",
                str(args.max_examples),
                "--workers",
                "2",
                "--no-color",
                *args.st_args,
            ]
            print(
                "$",
                " ".join(c if "X-API-Key" not in c else "X-API-Key: ***" for c in cmd),
                flush=True,
            )
            code = subprocess.call(cmd)
            errors = [
                line
                for line in (work / "api.log").read_text(errors="replace").splitlines()
                if "Traceback" in line or " 500 " in line
            ]
            print(f"API log: {len(errors)} line(s) with a traceback or a 500")
            return code if not errors else max(code, 1)
        finally:
            if api is not None:
                api.terminate()
                api.wait(10)
            influx.stop()


def prepare(database_url: str, influx_url: str) -> str:
    """Tables, an admin API key and one site with a gateway and a device (also used by
    tests/test_api_schema.py)."""
    from sqlalchemy.orm import Session

    from sitewatch.core.db import make_engine
    from sitewatch.domains import accounts, registry
    from sitewatch.domains.alertrecords.store import AlertStore
    from sitewatch.domains.schema import create_tables

    url = database_url
    engine = make_engine(url)
    create_tables(engine)
    AlertStore(url).create_schema()
    with urllib.request.urlopen(
        urllib.request.Request(  # ingest would have made it
            f"{influx_url}/query", data=b"q=CREATE DATABASE schemathesis", method="POST"
        )
    ):
        pass
    now = int(time.time() * 1000)
    with Session(engine) as s:
        _, key = accounts.add_api_key(s, "schemathesis", "admin")
        s.add(
            registry.SiteRow(
                id="S1",
                name="Site 1",
                county="C",
                town="T",
                project_type="building",
                latitude=34.8,
                longitude=114.8,
                created_at=now,
            )
        )
        s.flush()
        s.add(
            registry.GatewayRow(
                site="S1",
                id="GW1",
                description="",
                mqtt_username="S1.GW1",
                mqtt_password_hash="$7$101$" + "A" * 16 + "$" + "A" * 86 + "==",
                created_at=now,
            )
        )
        s.flush()
        s.add(
            registry.DeviceRow(
                site="S1",
                id="TC01",
                gateway="GW1",
                profile="tower_crane",
                name="",
                overrides={},
                created_at=now,
            )
        )
        s.commit()
    engine.dispose()
    return key


def _wait(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())

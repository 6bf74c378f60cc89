"""The configuration files of the demo's services (ingest, the alert service, the API)
in the state folder: the servers they use, a new secret each start, the broker accounts
the API may rewrite."""

from __future__ import annotations

import secrets
from pathlib import Path

import yaml

from sitewatch.domains.brokeraccounts.brokerauth import Account, Role
from sitewatch.programs.localstack import InfluxServer, MosquittoServer


def write_service_configs(
    state: Path,
    *,
    mq: MosquittoServer,
    influx: InfluxServer,
    api_port: int,
    accounts: list[Account],
    broker_dir: Path,
    id_key: str,
) -> str:
    """``ingest.yaml``, ``api.yaml``, ``alerts.yaml`` (and ``mosquitto.pid``, which the
    API signals); returns the database URL they share."""
    db_url = f"sqlite:///{state / 'sitewatch.db'}"
    common = {"influx": {"url": influx.url}, "database_url": db_url}
    # ingest stores the gateways' camera snapshots where the API serves them from
    snapshots_dir = str(state / "snapshots")
    (state / "ingest.yaml").write_text(
        yaml.safe_dump(
            {
                **common,
                "mqtt": {"port": mq.port},
                "stats_interval_s": 60,
                "snapshots_dir": snapshots_dir,
            }
        )
    )
    # provisioning a gateway through the API rewrites the broker's files and has it
    # re-read them (it runs here, on this host)
    assert mq.proc is not None
    (state / "mosquitto.pid").write_text(f"{mq.proc.pid}\n")
    broker = {
        "dir": str(broker_dir),
        "topic_prefix": "sitewatch/v1",
        "pid_file": str(state / "mosquitto.pid"),
        "service_accounts": [
            {
                "username": a.username,
                "role": a.role.value,
                "password_hash": a.password_hash,
                "site": a.site,
            }
            for a in accounts
            if a.role is not Role.GATEWAY
        ],
    }
    (state / "api.yaml").write_text(
        yaml.safe_dump(
            {
                **common,
                "port": api_port,
                "snapshots_dir": snapshots_dir,
                # a real secret (a new one each start), as in production
                "auth": {"secret_key": secrets.token_hex(32)},
                "broker": broker,
                "attendance": {"id_hash_key": id_key},
            }
        )
    )
    (state / "alerts.yaml").write_text(
        yaml.safe_dump({**common, "mqtt": {"port": mq.port}, "stats_interval_s": 60})
    )
    return db_url

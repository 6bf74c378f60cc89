"""The demo's registry: its sites, gateways, devices and workers, so the API shows them,
and the people who look at them (an ``admin``, a read-only API key)."""

from __future__ import annotations

import time
from datetime import date

from sitewatch.domains.brokeraccounts.brokerauth import Account, Role, new_password
from sitewatch.programs.demo.sites import CAMERA, GATES, SITE_DEVICES, WORKERS_PER_SITE


def seed_registry(db_url: str, accounts: list[Account], id_key: str) -> tuple[str, str]:
    """The demo's sites, gateways (with the broker accounts' hashes), devices and
    workers in the registry, so the API shows them; an ``admin`` with a new password and
    a read-only API key for the curl lines of the banner. Returns (admin password, API
    key)."""
    from sqlalchemy.orm import Session

    from simulators.attendance_days import worker_rows, workforce
    from sitewatch.core.db import make_engine
    from sitewatch.domains import accounts as people
    from sitewatch.domains.attendance.workers import Workers
    from sitewatch.domains.registry import DeviceRow, GatewayRow, SiteRow
    from sitewatch.domains.schema import create_tables

    engine = make_engine(db_url)
    create_tables(engine)
    now = int(time.time() * 1000)
    password = new_password()
    with Session(engine) as s:
        for a in accounts:
            if a.role is not Role.GATEWAY or a.site is None or a.gateway is None:
                continue
            n = int(a.site[4:])
            s.merge(
                SiteRow(
                    id=a.site,
                    name=f"Demo site {n}",
                    county="Lankao",
                    town="Chengguan",
                    project_type="building",
                    latitude=34.82 + n * 0.01,
                    longitude=114.82 + n * 0.01,
                    planned_headcount=200,
                    created_at=now,
                )
            )
            s.flush()
            s.merge(
                GatewayRow(
                    site=a.site,
                    id=a.gateway,
                    description="demo gateway",
                    mqtt_username=a.username,
                    mqtt_password_hash=a.password_hash,
                    created_at=now,
                )
            )
            s.flush()
            for device, profile, _ in SITE_DEVICES:
                s.merge(
                    DeviceRow(
                        site=a.site,
                        id=device,
                        gateway=a.gateway,
                        profile=profile,
                        name="",
                        overrides={},
                        created_at=now,
                    )
                )
            s.merge(
                DeviceRow(
                    site=a.site,
                    id=CAMERA,
                    gateway=a.gateway,
                    profile="camera_status",
                    name="crane swing area camera",
                    overrides={},
                    created_at=now,
                )
            )
            for gate in GATES:
                s.merge(
                    DeviceRow(
                        site=a.site,
                        id=gate,
                        gateway=a.gateway,
                        profile="attendance_gate",
                        name="",
                        overrides={},
                        created_at=now,
                    )
                )
            Workers(s).put_many(
                # training and certificates dated from today: only the workforce's
                # deliberate few (about 3 %) have lapsed, not whoever ran out since
                # the simulator's reference day
                worker_rows(
                    workforce(WORKERS_PER_SITE, seed=n, today=date.today()),
                    a.site,
                    id_key,
                    now,
                )
            )
        admin = s.get(people.UserRow, "admin")
        if admin is None:
            people.add_user(s, "admin", password, "admin")
        else:
            admin.password_hash = people.hash_password(password)
        _, key = people.add_api_key(s, "demo", "viewer")
        s.commit()
    engine.dispose()
    return password, key

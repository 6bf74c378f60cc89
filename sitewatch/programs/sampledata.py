"""A county's worth of simulated sites, run through the real platform into InfluxDB, so
the dashboards' queries have what a running deployment has: the dashboard tests and the
README pictures (scripts/render-dashboards) use it.

Registers the sites (with locations), their gateways and workforces, runs ingest and the
alert service in this process against the given broker and InfluxDB, publishes
``simulators.history`` (hours of readings with scenarios that raise and clear alerts,
days of gate events), waits until everything is stored and evaluated, and restarts the
alert service once, as a deployment would have, so its dashboard feed also covers the
past attendance days.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from simulators import history
from sitewatch.core import mqtt
from sitewatch.core.influx import InfluxClient, InfluxSettings
from sitewatch.core.profiles import load_profiles

log = logging.getLogger("sitewatch.programs.sampledata")

#: the county of the sample, and where its sites are (Lankao county, Henan)
COUNTY = "Lankao"
ORIGIN = (34.82, 114.82)
SITE_NAMES = (
    "Chengguan school",
    "Yellow River levee",
    "Route 220 bridge",
    "Village water",
    "Hospital wing",
    "Market hall",
)
WORKERS_PER_SITE = 40
ATTENDANCE_DAYS = 4
#: one scenario per kind of device, so every dashboard has alerts (some still open)
SCENARIOS = (
    "crane_overload@SITE01/TC01:{late}",
    "residual_current@SITE01/EL01:{late}",
    "high_wind@SITE02/TC01:{early}:1800",
    "dust_spike@SITE02/ENV01:{mid}:3600",
    "night_noise@SITE02/ENV01:{late}",
    "hoist_door_open@SITE02/HOIST01:{late}",
    "pit_displacement_trend@SITE03/PIT01:0",
    "formwork_settlement@SITE03/HF01:{mid}",
)
ID_KEY = "sample-data-id-key-not-a-secret-0123456789"


@dataclass(frozen=True)
class Sample:
    sites: int = 3
    hours: float = 6.0
    step_s: float = 60.0
    #: sites whose gateway goes offline at the end
    offline: tuple[str, ...] = ("SITE03",)


@dataclass
class Filled:
    end_ms: int
    readings: int = 0
    gate_events: int = 0
    camera_events: int = 0
    sites: list[str] = field(default_factory=list)


def scenarios(hours: float) -> tuple[str, ...]:
    span = hours * 3600
    marks = {"early": int(span * 0.2), "mid": int(span * 0.5), "late": int(span * 0.8)}
    return tuple(s.format(**marks) for s in SCENARIOS)


def register(database_url: str, sites: list[str], now_ms: int) -> None:
    """Sites at their locations with a planned headcount, a gateway each, a workforce."""
    from sqlalchemy.orm import Session

    from simulators.attendance_days import worker_rows, workforce
    from sitewatch.core.db import make_engine
    from sitewatch.domains.attendance.workers import Workers
    from sitewatch.domains.registry import GatewayRow, SiteRow
    from sitewatch.domains.schema import create_tables

    engine = make_engine(database_url)
    create_tables(engine)
    with Session(engine) as s:
        for n, site in enumerate(sites, start=1):
            lat, lon = ORIGIN
            s.merge(
                SiteRow(
                    id=site,
                    name=SITE_NAMES[(n - 1) % len(SITE_NAMES)],
                    county=COUNTY,
                    town="",
                    project_type="building",
                    latitude=round(lat + 0.05 * ((n * 7) % 5 - 2), 4),
                    longitude=round(lon + 0.06 * ((n * 3) % 5 - 2), 4),
                    planned_headcount=WORKERS_PER_SITE - 5,
                    created_at=now_ms,
                )
            )
            s.flush()
            s.merge(
                GatewayRow(
                    site=site,
                    id=history.GATEWAY,
                    mqtt_username=f"{site}-gw",
                    mqtt_password_hash="",
                    created_at=now_ms,
                )
            )
            Workers(s).put_many(
                worker_rows(workforce(WORKERS_PER_SITE, seed=n), site, ID_KEY, now_ms)
            )
        s.commit()
    engine.dispose()


async def _publish(settings: mqtt.MqttSettings, messages: list[history.Message]) -> None:
    async with mqtt.Client(
        settings, client_id=f"sw-sample-{time.time_ns()}", max_inflight=100
    ) as c:
        for m in messages:
            await c.publish(m.topic, m.payload, qos=1, retain=m.retain)


async def _until(what: str, check: Callable[[], Awaitable[bool] | bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await _truth(check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"sample data: timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def fill(
    mqtt_settings: mqtt.MqttSettings,
    influx: InfluxSettings,
    database_url: str,
    sample: Sample = Sample(),
    *,
    end_ms: int | None = None,
    timeout_s: float = 120.0,
    snapshots_dir: Path | None = None,
) -> Filled:
    from alerts.service import AlertService
    from ingest.config import IngestSettings
    from ingest.service import Ingest
    from simulators.attendance_days import workforce
    from sitewatch.domains.alertrecords.settings import AlertSettings

    end = end_ms if end_ms is not None else int(time.time() * 1000)
    out = Filled(end, sites=[f"SITE{n:02d}" for n in range(1, sample.sites + 1)])
    register(database_url, out.sites, end)
    prefix = mqtt_settings.topic_prefix
    opts = history.HistoryOptions(
        prefix=prefix,
        sites=sample.sites,
        hours=sample.hours,
        step_s=sample.step_s,
        scenarios=scenarios(sample.hours),
        offline=sample.offline,
    )
    profiles = load_profiles()
    messages = list(history.telemetry(opts, profiles, end))
    out.readings = sum(m.payload.count(b'"seq"') for m in messages if "/telemetry" in m.topic)
    for n, site in enumerate(out.sites, start=1):
        gates = list(
            history.attendance(
                prefix,
                site,
                workforce(WORKERS_PER_SITE, seed=n),
                days=ATTENDANCE_DAYS,
                end_ms=end,
                seed=n,
                visitor_at_ms=end - 5 * 60_000,
            )
        )
        out.gate_events += sum(m.payload.count(b'"seq"') for m in gates)
        messages += gates
        cams = list(
            history.camera(
                prefix,
                site,
                hours=sample.hours,
                end_ms=end,
                seed=n,
                offline_min=20 if site in sample.offline else 0,
            )
        )
        out.camera_events += sum(
            m.payload.count(b'"seq"') for m in cams if m.topic.endswith("/camera")
        )
        out.readings += sum(
            m.payload.count(b'"seq"') for m in cams if m.topic.endswith("/telemetry")
        )
        messages += cams

    snapshots = tempfile.TemporaryDirectory(prefix="sitewatch-sample-snapshots-")
    ingest = Ingest(
        IngestSettings(
            mqtt=mqtt_settings,
            influx=influx,
            database_url=database_url,
            stats_interval_s=3600,
            client_id=f"sample-ingest-{end}",
            flush_interval_s=0.05,
            snapshots_dir=Path(snapshots_dir or snapshots.name),
        )
    )
    alert_settings = AlertSettings(
        mqtt=mqtt_settings,
        influx=influx,
        database_url=database_url,
        stats_interval_s=3600,
        client_id=f"sample-alerts-{end}",
        tick_s=0.5,
        board_interval_s=1,
        board_days=ATTENDANCE_DAYS,
        # hours pass in seconds here: a condition gone (a visitor who left at 10:30) is
        # resolved as it would have been by now, not held for 5 minutes of the fill
        hold_s=1,
    )
    alerts = AlertService(alert_settings)
    tasks = [asyncio.create_task(ingest.run()), asyncio.create_task(alerts.run())]
    async with InfluxClient(influx) as client:
        try:
            await asyncio.wait_for(ingest.connected.wait(), 30)
            await asyncio.wait_for(alerts.connected.wait(), 30)
            await _publish(mqtt_settings, messages)
            devices = "/^(" + "|".join(profiles.of_devices()) + ")$/"
            await _until(
                "every reading in InfluxDB",
                lambda: _has(client, f'SELECT count("seq") FROM {devices}', out.readings),
                timeout_s,
            )
            await _until(
                "every gate event in InfluxDB",
                lambda: _has(client, 'SELECT count("seq") FROM "attendance"', out.gate_events),
                timeout_s,
            )
            await _until(
                "every camera event in InfluxDB",
                lambda: _has(client, 'SELECT count("seq") FROM "camera"', out.camera_events),
                timeout_s,
            )
            await _until(
                "the alert service to evaluate every reading",
                lambda: alerts.engine.stats.readings >= out.readings,
                timeout_s,
            )
            # a restart, as a deployment has had: its feed then covers the past days too
            alerts.stop()
            await asyncio.wait_for(tasks.pop(), 30)
            alerts = AlertService(alert_settings)
            tasks.append(asyncio.create_task(alerts.run()))
            await asyncio.wait_for(alerts.connected.wait(), 30)
            for what in ("site_summary", "limits", "attendance_team"):
                await _until(
                    f"the dashboard feed's {what}",
                    partial(_has, client, f'SELECT count(*) FROM "{what}"', 1),
                    timeout_s,
                )
            await asyncio.sleep(2)  # a few more rounds of the feed
        finally:
            ingest.stop()
            alerts.stop()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
            snapshots.cleanup()
    log.info(
        "sample data: %d readings and %d gate events of %d sites",
        out.readings,
        out.gate_events,
        len(out.sites),
    )
    return out


async def _has(client: InfluxClient, sql: str, n: int) -> bool:
    rows = await client.series(sql)
    total = sum(
        v
        for r in rows
        for k, v in r.items()
        if k.startswith("count") and isinstance(v, int | float)
    )
    return total >= n


async def _truth(value: Awaitable[bool] | bool) -> bool:
    return await value if inspect.isawaitable(value) else value

"""A simulated week of a 200-worker site through real Mosquitto, ingest, InfluxDB and the
relational store (SQLite and PostgreSQL): the day-labour sheets credit exactly what the
simulator says the rules credit; replaying the week changes nothing; tampering shows."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from conftest import RunningAlerts, RunningIngest, count_ticks, mqtt_settings, wait_for
from sqlalchemy import text
from sqlalchemy.orm import Session

from simulators.attendance_days import (
    SimWorker,
    batches,
    gate_events,
    simulate,
    worker_rows,
    workforce,
)
from sitewatch.core import contract, mqtt
from sitewatch.core.db import make_engine
from sitewatch.core.influx import InfluxClient
from sitewatch.domains.attendance import reports
from sitewatch.domains.attendance.ledger import GateBatch, Ledger, LedgerHead, LedgerWriter
from sitewatch.domains.attendance.policy import AttendancePolicy
from sitewatch.domains.attendance.registration import import_workers
from sitewatch.domains.attendance.workers import WorkerRow, Workers
from sitewatch.domains.registry import Registry, SiteRow
from sitewatch.domains.schema import create_tables
from sitewatch.programs.localstack import MosquittoServer

pytestmark = pytest.mark.integration

SITE, GW = "S-ATT", "GW1"
KEY = "k" * 32


def rows_of(workers: list[SimWorker], now: int) -> list[WorkerRow]:
    return worker_rows(workers, SITE, KEY, now)


def cents(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def publish_all(server: MosquittoServer, prefix: str, payloads: list[bytes]) -> None:
    async with mqtt.Client(mqtt_settings(server, prefix), client_id=f"gw-{prefix}") as c:
        for p in payloads:
            await c.publish(f"{prefix}/{SITE}/{GW}/attendance", p, qos=1)


async def test_a_simulated_week_gives_sheets_that_match_the_ground_truth(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    database_url: str,
    influx_client: InfluxClient,
) -> None:
    policy = AttendancePolicy()
    now = int(time.time() * 1000)
    first = policy.day_of(now) - timedelta(days=8)
    last = first + timedelta(days=6)
    workers = workforce(200, today=first)
    sim = simulate(workers, first, 7, policy=policy)
    items = gate_events(sim)
    payloads = list(batches(items, size=200))
    assert len(items) > 3000

    running = await start_ingest(database_url=database_url)
    engine = make_engine(database_url)
    create_tables(engine)
    with Session(engine) as s, s.begin():
        Workers(s).put_many(rows_of(workers, now))

    await publish_all(mosquitto, prefix, payloads)
    assert running.service is not None
    stats = running.service.stats
    await wait_for(
        lambda: stats.gate_events_appended == len(items),
        timeout=60,
        what=f"{len(items)} gate events in the ledger",
    )

    def week() -> tuple[list[reports.DayLabourSheet], int, str]:
        with Session(engine) as s:
            sheets = reports.sheets(s, SITE, first, last, int(time.time() * 1000))
            head = s.get(LedgerHead, SITE)
            assert head is not None
            return sheets, head.n, head.hash

    sheets, n, head_hash = week()
    # every credited worker-day, row by row, is the simulator's
    truth = sim.minutes()
    registered = {w.id: w for w in workers}
    got = {(r.worker, r.day): r.minutes for sh in sheets for r in sh.rows if r.minutes}
    assert got == {k: m for k, m in truth.items() if k[0] in registered}
    # and each team's totals are what the simulator's minutes come to at the rates
    want: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for (worker, _), minutes in truth.items():
        w = registered[worker]
        day_eq = cents(Decimal(minutes) / (policy.hours_per_day * 60))
        want[w.team][0] += day_eq
        want[w.team][1] += cents(day_eq * w.day_rate)
    assert {sh.team: [sh.totals.day_equivalents, sh.totals.amount] for sh in sheets} == want
    assert sum(sh.totals.minutes for sh in sheets) == sum(
        m for (w, _), m in truth.items() if w in registered
    )
    assert n == len(items)

    # InfluxDB has every event once, for the dashboards
    rows = await influx_client.series(
        f"SELECT count(seq) FROM attendance WHERE site='{SITE}' AND time > 0"
    )
    assert rows[0]["count"] == len(items)

    # the gateway resends the whole week: nothing changes
    await publish_all(mosquitto, prefix, payloads)
    await wait_for(
        lambda: stats.gate_events_resent == len(items), timeout=60, what="the resent week taken"
    )
    again, n2, head2 = week()
    assert (n2, head2) == (n, head_hash)
    assert [(sh.team, sh.rows, sh.totals) for sh in again] == [
        (sh.team, sh.rows, sh.totals) for sh in sheets
    ]
    rows = await influx_client.series(
        f"SELECT count(seq) FROM attendance WHERE site='{SITE}' AND time > 0"
    )
    assert rows[0]["count"] == len(items)

    # the chain verifies, and a row changed behind its back is found
    with Session(engine) as s:
        assert Ledger(s).verify(SITE).ok
    with engine.begin() as c:
        c.execute(
            text("UPDATE attendance_ledger SET ts = ts - 3600000 WHERE site = :site AND n = 100"),
            {"site": SITE},
        )
    with Session(engine) as s:
        report = Ledger(s).verify(SITE)
    assert report.problems == ["entry 100: content does not match its hash (altered)"]
    engine.dispose()


async def test_gate_events_raise_attendance_alerts_through_the_alert_service(
    start_alerts: Callable[..., Awaitable[RunningAlerts]],
    mosquitto: MosquittoServer,
    prefix: str,
    tmp_path: Path,
) -> None:
    """An unregistered worker and one with lapsed training come through a gate: the alert
    service raises both; restarted, it still knows they are on site (from the ledger)."""
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    now = int(time.time() * 1000)
    engine = make_engine(url)
    create_tables(engine)
    [w1, w2] = workforce(2, today=AttendancePolicy().day_of(now))
    lapsed = replace(w2, training_expires=date(2020, 1, 1))
    with Session(engine) as s, s.begin():
        Workers(s).put_many(rows_of([w1, lapsed], now))
    alerts = await start_alerts(database_url=url)
    items = [
        contract.AttendanceItem(
            device="GATE01", ts=now - 2000 + k, seq=k + 1, worker=w, direction="in", method="face"
        )
        for k, w in enumerate([w1.id, lapsed.id, "X999"])
    ]
    # the ledger has them too, as ingest would have put them there
    LedgerWriter(url).append([GateBatch(SITE, GW, items)], now)
    await publish_all(mosquitto, prefix, list(batches(items)))

    def open_groups() -> set[tuple[str, str]]:
        return {
            (a.device, a.group)
            for a in alerts.service.store.list_alerts(site=SITE)
            if a.state != "resolved"
        }

    want = {("X999", "unregistered_worker"), (lapsed.id, "training_lapsed")}
    await wait_for(lambda: open_groups() == want, timeout=20, what=lambda: open_groups())
    await alerts.stop()
    again = await start_alerts(database_url=url)
    ticks = count_ticks(again.service)
    # a few ticks (each one's changes committed before the next starts): nothing about
    # them changed
    await wait_for(lambda: len(ticks) >= 5, timeout=30, what="five ticks of the new service")
    assert {
        (a.device, a.group)
        for a in again.service.store.list_alerts(site=SITE)
        if a.state == "active"
    } == want
    engine.dispose()


async def test_id_numbers_never_reach_logs_or_influxdb(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    start_alerts: Callable[..., Awaitable[RunningAlerts]],
    mosquitto: MosquittoServer,
    prefix: str,
    tmp_path: Path,
    influx_client: InfluxClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker list with ID numbers imported as an office would, then a day at the gates
    through ingest and the alert service, everything logged at DEBUG: no number, nor its
    digits without the check character, in any log line or InfluxDB value."""
    caplog.set_level(logging.DEBUG)
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    now = int(time.time() * 1000)
    policy = AttendancePolicy()
    workers = workforce(30, today=policy.day_of(now))
    csv_text = "工号,姓名,班组,日工资,身份证号\n" + "".join(
        f"{w.id},{w.name},{w.team},{w.day_rate},{w.id_number}\n" for w in workers
    )
    engine = make_engine(url)
    create_tables(engine)
    with Session(engine) as s, s.begin():
        Registry(s).add_site(
            SiteRow(
                id=SITE,
                name="site",
                county="c",
                project_type="road",
                latitude=0,
                longitude=0,
                planned_headcount=5,
                created_at=now,
            )
        )
        done = import_workers(
            s, csv_text.encode(), "workers.csv", site=SITE, id_key=KEY, now_ms=now
        )
        assert (done.created, done.errors) == (30, [])
    running = await start_ingest(database_url=url)
    await start_alerts(database_url=url)
    first = policy.day_of(now) - timedelta(days=1)
    items = gate_events(simulate(workers, first, 2, policy=policy))
    items = [i for i in items if i.ts <= now]
    await publish_all(mosquitto, prefix, list(batches(items)))
    assert running.service is not None
    stats = running.service.stats
    await wait_for(
        lambda: stats.gate_events_appended == len(items), timeout=30, what="the gate events stored"
    )
    dump = json.dumps(await influx_client.series("SELECT * FROM /.*/"))
    text_seen = caplog.text + dump
    for w in workers:
        assert w.id_number not in text_seen and w.id_number[:17] not in text_seen
    with Session(engine) as s:
        stored = " ".join(f"{r.id_hash} {r.id_masked}" for r in Workers(s).page(SITE).items)
    assert all(w.id_number not in stored for w in workers)
    engine.dispose()

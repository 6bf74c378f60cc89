"""Prometheus metrics: the endpoint, each service's collector on its real counters, and
real services (ingest, alert service, edge agent) scraped over HTTP while they work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    RunningAgent,
    RunningAlerts,
    RunningIngest,
    edge_settings,
    now_ms,
    wait_for,
)
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from test_ingest_integration import MALFORMED, AckListener, batch, item, mosquitto_pub

from alerts.service import AlertService
from api import metrics as api_metrics
from edge.agent import Agent
from edge.config import DeviceConfig, EdgeSettings, PublishSettings, SpoolSettings
from ingest.config import IngestSettings
from ingest.service import Ingest
from sitewatch.core.metrics import MetricsSettings, new_registry, serve_metrics
from sitewatch.core.reasons import Reason
from sitewatch.core.settings import ConfigError, load_settings
from sitewatch.domains.alertrecords.settings import AlertSettings
from sitewatch.programs.localstack import MosquittoServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
ON = MetricsSettings(enabled=True)


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient() as client:
        r = await client.get(url, timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


# -- settings --------------------------------------------------------------------------


def test_metrics_block_in_every_service_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert IngestSettings().metrics == MetricsSettings(enabled=False, host="127.0.0.1", port=0)
    monkeypatch.setenv("SITEWATCH_INGEST_METRICS__PORT", "9810")
    f = tmp_path / "ingest.yaml"
    f.write_text("metrics: {enabled: true, host: 0.0.0.0}\n")
    s = load_settings(IngestSettings, f)
    assert s.metrics == MetricsSettings(enabled=True, host="0.0.0.0", port=9810)
    assert AlertSettings(metrics={"enabled": True}).metrics.enabled  # type: ignore[arg-type]
    edge = EdgeSettings(
        site="S1",
        gateway="GW1",
        state_dir=tmp_path,
        metrics=ON,
        devices=[DeviceConfig(id="TC01", driver="simulated", profile="tower_crane")],
    )
    assert edge.metrics.enabled


@pytest.mark.parametrize(
    "text, message",
    [
        ("metrics: {enable: true}\n", "key metrics.enable: Extra inputs are not permitted"),
        ("metrics: {port: 70000}\n", "key metrics.port"),
    ],
)
def test_bad_metrics_keys_are_named(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "ingest.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(IngestSettings, f)


# -- the endpoint ----------------------------------------------------------------------


class Fixed:
    def __init__(self, n: float) -> None:
        self.n = n

    def collect(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily("thing_done_total", "things done", value=self.n)]


async def test_endpoint_serves_the_registry_and_stops_with_the_block() -> None:
    registry = new_registry("test")
    things = Fixed(3)
    registry.register(things)
    refreshed = 0

    async def refresh() -> None:
        nonlocal refreshed
        refreshed += 1
        things.n += 1  # read after the hook: the scrape sees what it set

    async with serve_metrics(ON, registry, service="test", before_scrape=refresh) as ep:
        assert ep is not None and ep.port > 0
        assert ep.url == f"http://127.0.0.1:{ep.port}/metrics"
        got = await scrape(ep.url)
        assert value(got, "thing_done_total") == 4 and refreshed == 1
        assert value(got, "sitewatch_build_info", service="test", version="0.1.0") == 1
        assert value(got, "process_start_time_seconds") is not None
        async with httpx.AsyncClient() as client:
            base = ep.url.removesuffix("/metrics")
            assert (await client.get(f"{base}/other")).status_code == 404
            assert (await client.post(ep.url)).status_code == 405
            head = await client.head(ep.url)
            assert head.status_code == 200 and head.content == b""
            om = await client.get(ep.url, headers={"Accept": "application/openmetrics-text"})
            assert om.headers["content-type"].startswith("application/openmetrics-text")
            assert om.text.endswith("# EOF\n")
        # a connection that never sends a request does not hold the service at stop
        _, idle = await asyncio.open_connection(ep.host, ep.port)
    with pytest.raises(httpx.ConnectError):
        await scrape(ep.url)
    idle.close()


async def test_endpoint_disabled_or_port_taken() -> None:
    async with serve_metrics(MetricsSettings(), new_registry("a"), service="a") as ep:
        assert ep is None
    async with serve_metrics(ON, new_registry("a"), service="a") as first:
        assert first is not None
        taken = MetricsSettings(enabled=True, port=first.port)
        with pytest.raises(
            ConfigError, match=f"key metrics.port: b cannot serve metrics on 127.0.0.1:{first.port}"
        ):
            async with serve_metrics(taken, new_registry("b"), service="b"):
                pass


# -- collectors on the services' own counters (no server) -------------------------------


async def test_ingest_collector_reads_ingest_stats(tmp_path: Path) -> None:
    ingest = Ingest(IngestSettings(database_url=f"sqlite:///{tmp_path / 'dl.db'}"))
    st = ingest.stats
    st.messages, st.items_received, st.items_stored = 4, 10, 7
    st.rejected["out_of_range"] += 2
    st.rejected["bad_json"] += 1
    st.acks_published, st.writes, st.write_retries = 3, 2, 5
    ingest.write_times.count, ingest.write_times.seconds = 7, 1.5
    r = ingest.registry
    assert sample(r, "sitewatch_ingest_messages_total") == 4
    assert sample(r, "sitewatch_ingest_readings_received_total") == 10
    assert sample(r, "sitewatch_ingest_readings_stored_total") == 7
    assert sample(r, "sitewatch_ingest_batches_acked_total") == 3
    assert sample(r, "sitewatch_ingest_dead_letters_total", reason="out_of_range") == 2
    assert sample(r, "sitewatch_ingest_dead_letters_total", reason="bad_json") == 1
    for reason in Reason:  # every reason exported, so a rate exists before the first one
        assert sample(r, "sitewatch_ingest_dead_letters_total", reason=reason.value) is not None
    assert sample(r, "sitewatch_ingest_influx_write_errors_total", kind="retryable") == 5
    assert sample(r, "sitewatch_ingest_influx_write_duration_seconds_count") == 7
    assert sample(r, "sitewatch_ingest_influx_write_duration_seconds_sum") == 1.5
    assert sample(r, "sitewatch_ingest_broker_connected") == 0
    assert sample(r, "sitewatch_ingest_messages_in_flight") == 0


async def test_alert_collector_reads_the_engine(tmp_path: Path) -> None:
    service = AlertService(AlertSettings(database_url=f"sqlite:///{tmp_path / 'a.db'}", hold_s=60))
    t = now_ms()
    payload = batch(
        1,
        *[
            {
                "device": "TC9",
                "profile": "tower_crane",
                "ts": t - 3000 + i,
                "seq": i,
                "values": {"load_pct": 120.0},
            }
            for i in range(1, 4)
        ],
    )
    topic = f"{service.prefix}/S1/GW1/telemetry"
    changes = service.handle(topic, payload, t)
    service.handle(topic, payload, t)  # delivered again: duplicates
    service.handle(topic, b"{broken", t)
    assert [c.event.value for c in changes] == ["raised"]
    r = service.registry
    assert sample(r, "sitewatch_alerts_readings_evaluated_total") == 3
    assert sample(r, "sitewatch_alerts_readings_duplicate_total") == 3
    assert sample(r, "sitewatch_alerts_skipped_total") == 1
    assert sample(r, "sitewatch_alerts_open", severity="alarm", state="active") == 1
    assert sample(r, "sitewatch_alerts_open", severity="warning", state="active") == 0
    # committed by the service's committer, which is not running here
    assert sample(r, "sitewatch_alerts_changes_total", kind="raised") == 0
    assert sample(r, "sitewatch_alerts_outbox_backlog", output="mqtt") is None  # not counted yet
    service.store.create_schema()
    service.store.apply(changes, t)  # what the committer does: an outbox row per output
    await service.metrics.refresh()
    assert sample(r, "sitewatch_alerts_outbox_backlog", output="mqtt") == 1
    assert sample(r, "sitewatch_alerts_outbox_backlog", output="influx") == 1
    assert sample(r, "sitewatch_alerts_outbox_refused", output="mqtt") == 0
    service.store.dispose()


def agent(tmp_path: Path, **spool: Any) -> Agent:
    return Agent(
        EdgeSettings(
            site="S1",
            gateway="GW1",
            state_dir=tmp_path,
            publish=PublishSettings(max_batch_items=3),
            spool=SpoolSettings(**spool),
            devices=[DeviceConfig(id="TC01", driver="simulated", profile="tower_crane")],
        )
    )


async def test_edge_collector_reads_the_agent_and_spool(tmp_path: Path) -> None:
    a = agent(tmp_path)
    for i in range(7):
        a.emit("TC01", "tower_crane", {"load_t": float(i)}, 1_000 + i)
    a.emit("TC01", "tower_crane", {"load_t": 1.0}, 1_000)  # same ms: timestamp moved
    await a.flush()
    await a.metrics.refresh()
    r = a.registry
    assert sample(r, "sitewatch_edge_readings_taken_total") == 8
    assert sample(r, "sitewatch_edge_timestamps_adjusted_total") == 1
    assert sample(r, "sitewatch_edge_spool_readings") == 8
    assert sample(r, "sitewatch_edge_spool_batches") == 3
    assert sample(r, "sitewatch_edge_spool_bytes") == a.spool.bytes_used > 0
    assert sample(r, "sitewatch_edge_spool_used_ratio") == pytest.approx(
        a.spool.bytes_used / a.spool.limits.max_bytes
    )
    assert 0 <= (sample(r, "sitewatch_edge_spool_oldest_age_seconds") or -1) < 60
    assert sample(r, "sitewatch_edge_spool_dropped_readings") == 0
    assert sample(r, "sitewatch_edge_broker_connected") == 0
    assert sample(r, "sitewatch_edge_gateway_info", site="S1", gateway="GW1") == 1
    assert sample(r, "sitewatch_edge_device_restarts_total", driver="simulated") == 0
    a.spool.close()


async def test_edge_dropped_readings_are_exported(tmp_path: Path) -> None:
    a = agent(tmp_path, max_bytes=64 * 1024, policy="refuse_newest")
    accepted = sum(
        a.emit("TC01", "tower_crane", {"operator": "x" * 60, "load_t": 1.0}, 1_000 + i)
        for i in range(2000)
    )
    await a.flush()
    assert sample(a.registry, "sitewatch_edge_spool_dropped_readings") == 2000 - accepted > 0
    assert sample(a.registry, "sitewatch_edge_readings_taken_total") == accepted
    a.spool.close()


# -- the API -----------------------------------------------------------------------------


async def test_api_requests_counted_by_route_template() -> None:
    app = FastAPI()
    api_metrics.install(app)

    @app.get("/sites/{site}/latest")
    async def latest(site: str) -> dict[str, str]:
        return {"site": site}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        for site in ("S1", "S2", "S3"):
            assert (await client.get(f"/sites/{site}/latest")).status_code == 200
        assert (await client.get("/no/such/path")).status_code == 404
        assert (await client.post("/sites/S1/latest")).status_code == 405
        assert (await client.request("BREW", "/sites/S1/latest")).status_code == 405
        assert (await client.get("/openapi.json")).status_code == 200
        assert "/metrics" not in (await client.get("/openapi.json")).json()["paths"]
        r = await client.get("/metrics")
    assert r.status_code == 200
    got = parse(r.text)
    route = "/sites/{site}/latest"
    assert value(got, "sitewatch_api_requests_total", method="GET", route=route, status="200") == 3
    assert (
        value(
            got,
            "sitewatch_api_request_duration_seconds_count",
            method="GET",
            route=route,
            status="200",
        )
        == 3
    )
    assert (
        value(got, "sitewatch_api_requests_total", method="GET", route="unmatched", status="404")
        == 1
    )
    assert value(got, "sitewatch_api_requests_total", method="POST", route=route, status="405") == 1
    assert (
        value(got, "sitewatch_api_requests_total", method="other", route=route, status="405") == 1
    )
    assert (
        value(
            got, "sitewatch_api_requests_total", method="GET", route="/openapi.json", status="200"
        )
        == 2
    )
    assert not any("S1" in str(labels) for _, labels in got)  # never a raw path


# -- real services, scraped over HTTP ------------------------------------------------------


@pytest.mark.integration
async def test_ingest_metrics_count_what_was_published(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
) -> None:
    running = await start_ingest(metrics=ON)
    assert running.service is not None and running.service.metrics_endpoint is not None
    url = running.service.metrics_endpoint.url
    before = await scrape(url)
    assert value(before, "sitewatch_ingest_broker_connected") == 1
    assert value(before, "sitewatch_ingest_readings_stored_total") == 0
    good = [item(1), item(2), item(3)]
    async with AckListener(mosquitto, prefix) as acks:
        mosquitto_pub(
            mosquitto,
            f"{prefix}/S1/GW1/telemetry",
            batch(7, good[0], *(m[1] for m in MALFORMED), good[1], good[2]),
        )
        mosquitto_pub(mosquitto, f"{prefix}/S1/GW1/telemetry", batch(8, item(4), item(5)))
        mosquitto_pub(mosquitto, f"{prefix}/S1/GW1/telemetry", b'{"v":1,"batch":9, broken')
        await wait_for(
            lambda: acks.for_batch(7) and acks.for_batch(8) and acks.for_batch(9),
            what="acks of batches 7, 8 and 9",
        )
    got = await scrape(url)
    assert value(got, "sitewatch_ingest_messages_total") == 3
    assert value(got, "sitewatch_ingest_readings_received_total") == 3 + len(MALFORMED) + 2
    assert value(got, "sitewatch_ingest_readings_stored_total") == 5
    assert value(got, "sitewatch_ingest_batches_acked_total") == 3
    want: dict[str, int] = {"bad_json": 1}
    for reason, _ in MALFORMED:
        want[reason] = want.get(reason, 0) + 1
    for reason in Reason:
        assert value(got, "sitewatch_ingest_dead_letters_total", reason=reason.value) == want.get(
            reason.value, 0
        ), reason
    assert (value(got, "sitewatch_ingest_influx_writes_total") or 0) >= 1
    assert (value(got, "sitewatch_ingest_influx_write_duration_seconds_count") or 0) >= 1
    assert 0 < (value(got, "sitewatch_ingest_influx_last_write_duration_seconds") or 0) < 30
    assert value(got, "sitewatch_ingest_influx_write_errors_total", kind="retryable") == 0
    assert value(got, "sitewatch_ingest_messages_in_flight") == 0
    await running.stop()
    with pytest.raises(httpx.ConnectError):
        await scrape(url)


@pytest.mark.integration
async def test_edge_agent_metrics_follow_its_readings_to_ingest(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    tmp_path: Path,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    ingest = await start_ingest(metrics=ON)
    assert ingest.service is not None and ingest.service.metrics_endpoint is not None
    settings = edge_settings(mosquitto, prefix, tmp_path / "edge").model_copy(
        update={
            "metrics": ON,
            "devices": [
                DeviceConfig(id="TC01", driver="simulated", profile="tower_crane", interval_s=0.02)
            ],
        }
    )
    running = agent_factory(settings)
    a = running.agent
    await wait_for(
        lambda: a.metrics_endpoint is not None and a.connected.is_set(), what="agent connected"
    )
    assert a.metrics_endpoint is not None
    url = a.metrics_endpoint.url

    async def acked() -> float:
        return value(await scrape(url), "sitewatch_edge_batches_acked_total") or 0

    await wait_for(lambda: acked(), timeout=15, what="batches acknowledged")
    await wait_for(lambda: _at_least(acked, 5), timeout=15, what="five batches acknowledged")
    got = await scrape(url)
    assert value(got, "sitewatch_edge_broker_connected") == 1
    assert value(got, "sitewatch_edge_gateway_info", site="S1", gateway="GW1") == 1
    assert (value(got, "sitewatch_edge_readings_taken_total") or 0) >= 5
    assert (value(got, "sitewatch_edge_batches_sent_total") or 0) >= 5
    assert (value(got, "sitewatch_edge_readings_sent_total") or 0) >= 5
    assert value(got, "sitewatch_edge_spool_dropped_readings") == 0
    assert (value(got, "sitewatch_edge_spool_batches") or 0) >= 0
    assert (value(got, "sitewatch_edge_spool_bytes") or 0) >= 0
    assert value(got, "sitewatch_edge_device_restarts_total", driver="simulated") == 0
    last = await running.stop()
    # every reading taken got a seq; every item sent was stored (resends included)
    taken = sample(a.registry, "sitewatch_edge_readings_taken_total")
    assert taken == sum(last.values())
    sent = sample(a.registry, "sitewatch_edge_readings_sent_total")
    ingest_url = ingest.service.metrics_endpoint.url

    async def stored() -> float:
        return value(await scrape(ingest_url), "sitewatch_ingest_readings_stored_total") or 0

    await wait_for(
        lambda: _equals(stored, sent),
        timeout=15,
        what=f"ingest's stored count reaching the {sent} items the agent sent",
    )


async def _at_least(read: Callable[[], Awaitable[float]], n: float) -> bool:
    return await read() >= n


async def _equals(read: Callable[[], Awaitable[float]], n: float | None) -> bool:
    return await read() == n


@pytest.mark.integration
async def test_alert_service_metrics(
    start_alerts: Callable[..., Awaitable[RunningAlerts]],
    mosquitto: MosquittoServer,
    prefix: str,
) -> None:
    alerts = await start_alerts(hold_s=60, metrics=ON)
    assert alerts.service.metrics_endpoint is not None
    url = alerts.service.metrics_endpoint.url
    t = now_ms()
    payload = batch(
        11,
        *[
            {
                "device": "TC9",
                "profile": "tower_crane",
                "ts": t - 3000 + i,
                "seq": i,
                "values": {"load_pct": 120.0},
            }
            for i in range(1, 4)
        ],
    )
    for _ in range(2):
        mosquitto_pub(mosquitto, f"{prefix}/S1/GW1/telemetry", payload)
    mosquitto_pub(mosquitto, f"{prefix}/S1/GW1/telemetry", b"not json")

    async def delivered() -> bool:
        got = await scrape(url)
        return (
            value(got, "sitewatch_alerts_deliveries_total", output="mqtt") == 1
            and value(got, "sitewatch_alerts_outbox_backlog", output="mqtt") == 0
            and value(got, "sitewatch_alerts_readings_duplicate_total") == 3
        )

    await wait_for(delivered, timeout=15, what="the raised alert delivered on MQTT")
    got = await scrape(url)
    assert value(got, "sitewatch_alerts_readings_evaluated_total") == 3
    assert value(got, "sitewatch_alerts_skipped_total") == 1
    assert value(got, "sitewatch_alerts_changes_total", kind="raised") == 1
    assert value(got, "sitewatch_alerts_changes_total", kind="resolved") == 0
    assert value(got, "sitewatch_alerts_open", severity="alarm", state="active") == 1
    assert value(got, "sitewatch_alerts_delivery_failures_total", output="mqtt") == 0
    assert value(got, "sitewatch_alerts_outbox_refused", output="mqtt") == 0
    assert value(got, "sitewatch_alerts_broker_connected") == 1
    assert value(got, "sitewatch_build_info", service="alerts", version="0.1.0") == 1
    await alerts.stop()

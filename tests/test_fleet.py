"""``sitewatch simulate`` publishes contract batches that ingest stores."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from conftest import RunningIngest, wait_for

from simulators.fleet import FleetOptions, ScenarioSpec, build_fleet, run_fleet
from sitewatch.core.influx import InfluxClient
from sitewatch.programs.localstack import MosquittoServer


def test_scenario_spec_parsing() -> None:
    s = ScenarioSpec.parse("crane_overload@SITE02/TC01:30:60")
    assert (s.scenario.name, s.site, s.device, s.scenario.start_s, s.scenario.duration_s) == (
        "crane_overload",
        "SITE02",
        "TC01",
        30.0,
        60.0,
    )
    assert ScenarioSpec.parse("dust_spike").site is None
    with pytest.raises(ValueError, match="unknown scenario"):
        ScenarioSpec.parse("flood")
    with pytest.raises(ValueError, match="seconds"):
        ScenarioSpec.parse("dust_spike:soon")


def test_fleet_layout_and_unmatched_scenario() -> None:
    fleet = build_fleet(FleetOptions(sites=2, devices=7), 0.0)
    assert [g.site for g in fleet] == ["SITE01", "SITE02"]
    assert [d.device for d in fleet[0].devices] == [
        "TC01",
        "HOIST01",
        "ENV01",
        "PIT01",
        "HF01",
        "EL01",
        "TC02",
    ]
    with pytest.raises(ValueError, match="match no device"):
        build_fleet(FleetOptions(sites=1, devices=1, scenarios=("dust_spike",)), 0.0)


@pytest.mark.integration
async def test_fleet_is_stored(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
) -> None:
    await start_ingest()
    await run_fleet(
        FleetOptions(
            host=mosquitto.host,
            port=mosquitto.port,
            prefix=prefix,
            sites=2,
            devices=6,
            rate=20,
            duration_s=1.5,
            scenarios=("crane_overload@SITE02",),
        )
    )
    seqs = await wait_for(lambda: _twelve(influx_client), what="12 devices stored")
    for device_seqs in seqs.values():
        assert device_seqs == list(range(device_seqs[0], device_seqs[0] + len(device_seqs)))
    rows = await influx_client.series("SELECT max(load_pct) FROM tower_crane WHERE site = 'SITE02'")
    assert rows[0]["max"] >= 85


async def _twelve(client: InfluxClient) -> dict[str, list[int]] | None:
    rows = await client.series('SELECT "seq" FROM /.*/ GROUP BY "device", "site"')
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(f"{r['site']}/{r['device']}", []).append(r["seq"])
    if len(out) == 12 and all(len(v) >= 10 for v in out.values()):
        return {k: sorted(v) for k, v in out.items()}
    return None


@pytest.mark.integration
async def test_simulate_command(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
) -> None:
    import asyncio
    import sys

    await start_ingest()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sitewatch.programs.cli",
        "simulate",
        "--port",
        str(mosquitto.port),
        "--prefix",
        prefix,
        "--sites",
        "1",
        "--devices",
        "2",
        "--rate",
        "10",
        "--duration",
        "1",
        "--scenario",
        "crane_overload@SITE01/TC01:0:5",
    )
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    rows = await wait_for(
        lambda: influx_client.series('SELECT count("seq") FROM /.*/ GROUP BY "device"'),
        what="simulated readings stored",
    )
    assert {r["device"] for r in rows} == {"TC01", "HOIST01"}

"""Every query of every dashboard panel, variable and annotation, with Grafana's macros
and template variables filled as Grafana fills them, run against a real InfluxDB that
simulated sites filled through real Mosquitto, ingest and the alert service
(``sitewatch.programs.sampledata``). A query that returns nothing, or not the columns
and tags its panel reads, fails with its dashboard and panel named.

No Grafana server runs here; what Grafana adds (macros, variables) is done by
``dashboards.grafana.interpolate``, itself tested in test_dashboards.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import mqtt_settings

from dashboards.catalog import build_all
from dashboards.grafana import (
    Selection,
    default_range,
    interpolate,
    variable_values,
)
from dashboards.model import Dashboard, Query
from sitewatch.core.influx import InfluxClient, InfluxError, InfluxSettings
from sitewatch.programs.localstack import InfluxServer, MosquittoServer
from sitewatch.programs.sampledata import Filled, Sample, fill

pytestmark = pytest.mark.integration


async def _variables(
    client: InfluxClient, d: Dashboard, start: int, end: int
) -> dict[str, Selection]:
    """The variables as Grafana starts them; each must have options."""
    chosen = await variable_values(client, d, start, end)
    for name, sel in chosen.items():
        assert sel.values, f"{d.uid}: variable {name} has no options"
    return chosen


def _problem(where: str, q: Query, sql: str, series: list[dict[str, Any]]) -> str | None:
    if not series:
        return f"{where}: no rows\n    {sql}"
    columns = set().union(*(s["columns"] for s in series))
    missing = set(q.expect.columns) - columns
    if missing:
        return f"{where}: no column {sorted(missing)} (has {sorted(columns)})\n    {sql}"
    for col in q.expect.columns:
        if not any(
            row[s["columns"].index(col)] is not None
            for s in series
            if col in s["columns"]
            for row in s["values"]
        ):
            return f"{where}: column {col!r} is empty in every row\n    {sql}"
    tags = set().union(*(s.get("tags", {}) or {} for s in series))
    if set(q.expect.tags) - tags:
        return f"{where}: not grouped by {sorted(set(q.expect.tags) - tags)}\n    {sql}"
    return None


@pytest.fixture(scope="module")
def filled(
    tmp_path_factory: pytest.TempPathFactory, mosquitto: MosquittoServer, influxdb: InfluxServer
) -> tuple[Filled, InfluxSettings]:
    import asyncio

    db = "dashboards"
    path: Path = tmp_path_factory.mktemp("dashboards")
    influx = InfluxSettings(url=influxdb.url, database=db)
    done = asyncio.run(
        fill(
            mqtt_settings(mosquitto, "dash/v1"),
            influx,
            f"sqlite:///{path / 'sitewatch.db'}",
            Sample(),
        )
    )
    return done, influx


@pytest.mark.timeout(300)
async def test_every_panel_query_returns_what_its_panel_reads(
    filled: tuple[Filled, InfluxSettings],
) -> None:
    _, influx = filled
    problems: list[str] = []
    ran = 0
    now = int(time.time() * 1000)  # as Grafana's "now": after the fill, with its feed
    async with InfluxClient(influx) as client:
        for d in build_all().values():
            start, end = default_range(d.time_from, now)
            variables = await _variables(client, d, start, end)
            for where, q, min_interval in d.queries():
                sql = interpolate(
                    q.influxql,
                    start_ms=start,
                    end_ms=end,
                    variables=variables,
                    min_interval=min_interval,
                )
                try:
                    result = (await client.query(sql))[0]
                except InfluxError as exc:
                    problems.append(f"{where}: {exc}\n    {sql}")
                    continue
                problem = _problem(where, q, sql, result.get("series", []))
                if problem:
                    problems.append(problem)
                ran += 1
    assert not problems, f"{len(problems)} of {ran} queries:\n" + "\n".join(problems)
    assert ran >= 90

"""The edge agent's spool path without a broker: readings, batches, counters, timestamps."""

from __future__ import annotations

from pathlib import Path

import msgspec

from edge.agent import Agent
from edge.config import DeviceConfig, EdgeSettings, PublishSettings, SpoolSettings
from sitewatch.core import contract


def agent(tmp_path: Path, **spool: object) -> Agent:
    return Agent(
        EdgeSettings(
            site="S1",
            gateway="GW1",
            state_dir=tmp_path,
            publish=PublishSettings(max_batch_items=3),
            spool=SpoolSettings(**spool),  # type: ignore[arg-type]
            devices=[DeviceConfig(id="TC01", driver="simulated", profile="tower_crane")],
        )
    )


def spooled_items(a: Agent) -> list[contract.TelemetryItem]:
    items = []
    for b in a.spool.due(0, 100_000):
        items += msgspec.json.decode(b.payload, type=contract.TelemetryBatchOut).items
    return items


async def test_same_millisecond_readings_get_distinct_timestamps(tmp_path: Path) -> None:
    a = agent(tmp_path)
    for _ in range(3):
        a.emit("TC01", "tower_crane", {"load_t": 1.0}, 1_000)
    a.emit("TC01", "tower_crane", {"load_t": 1.0}, 999)  # the clock stepped back
    a.emit("HOIST", "construction_hoist", {"floor": 1}, 1_000)  # other devices unaffected
    await a.flush()
    got = sorted((i.device, i.seq, i.ts) for i in spooled_items(a))
    assert got == [
        ("HOIST", 1, 1000),
        ("TC01", 1, 1000),
        ("TC01", 2, 1001),
        ("TC01", 3, 1002),
        ("TC01", 4, 1003),
    ]
    assert a.adjusted_ts == 3


async def test_batches_are_built_from_committed_readings(tmp_path: Path) -> None:
    a = agent(tmp_path)
    for i in range(7):
        a.emit("TC01", "tower_crane", {"load_t": float(i)}, 1_000 + i)
    await a.flush()
    assert [b.items for b in a.spool.due(0, 100)] == [3, 3, 1]
    assert [i.seq for i in spooled_items(a)] == list(range(1, 8))
    assert a.spool.last_seqs() == {"TC01": 7}
    a.spool.close()


async def test_a_power_cut_loses_only_the_batch_being_filled_and_seqs_stay_contiguous(
    tmp_path: Path,
) -> None:
    a = agent(tmp_path)  # 3 items a batch
    for i in range(5):
        a.emit("TC01", "tower_crane", {"load_t": float(i)}, 1_000 + i)
    await a._commit(force=False)  # the full batch is committed; then the power goes
    assert a.spool.depth() == 1  # (no close: nothing else reaches the disk)
    b = agent(tmp_path)
    assert [(i.seq, i.ts) for i in spooled_items(b)] == [(1, 1000), (2, 1001), (3, 1002)]
    for i in range(2):  # the two readings never committed were never sent: their seqs
        b.emit("TC01", "tower_crane", {"load_t": float(i)}, 2_000 + i)  # are given again
    await b.flush()
    assert [(i.seq, i.ts) for i in spooled_items(b)] == [
        (1, 1000),
        (2, 1001),
        (3, 1002),
        (4, 2000),
        (5, 2001),
    ]
    b.spool.close()


async def test_a_clock_stepped_back_before_a_restart_never_stamps_a_used_timestamp(
    tmp_path: Path,
) -> None:
    a = agent(tmp_path)
    for i in range(3):
        a.emit("TC01", "tower_crane", {"load_t": 1.0}, 50_000 + i)
    await a.flush()
    a.spool.close()
    b = agent(tmp_path)  # the gateway's clock now says an hour earlier
    b.emit("TC01", "tower_crane", {"load_t": 1.0}, 50_000 - 3_600_000)
    await b.flush()
    assert [(i.seq, i.ts) for i in spooled_items(b)] == [
        (1, 50_000),
        (2, 50_001),
        (3, 50_002),
        (4, 50_003),
    ]
    b.spool.close()


async def test_refuse_newest_when_full(tmp_path: Path) -> None:
    a = agent(tmp_path, max_bytes=64 * 1024, policy="refuse_newest")
    accepted = sum(
        a.emit("TC01", "tower_crane", {"operator": "x" * 60, "load_t": 1.0}, 1_000 + i)
        for i in range(2000)
    )
    await a.flush()
    assert 0 < accepted < 2000 and a.spool.dropped == 2000 - accepted
    assert [i.seq for i in spooled_items(a)] == list(range(1, accepted + 1))
    assert a.health_values(0.0)["dropped"] == a.spool.dropped
    assert float(a.health_values(0.0)["spool_used_pct"]) > 90
    a.spool.close()

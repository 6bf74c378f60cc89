"""The edge agent's publish path without a broker: batches, counters, timestamps."""

from __future__ import annotations

from pathlib import Path

import msgspec

from sitewatch import contract
from sitewatch.edge.agent import Agent
from sitewatch.edge.config import DeviceConfig, EdgeSettings, PublishSettings


def agent(tmp_path: Path) -> Agent:
    return Agent(EdgeSettings(
        site="S1", gateway="GW1", state_dir=tmp_path,
        publish=PublishSettings(max_batch_items=3),
        devices=[DeviceConfig(id="TC01", driver="simulated", profile="tower_crane")]))


def spooled_items(a: Agent) -> list[contract.TelemetryItem]:
    items = []
    for b in a.spool.due(0, 100):
        items += msgspec.json.decode(b.payload, type=contract.TelemetryBatchOut).items
    return items


def test_same_millisecond_readings_get_distinct_timestamps(tmp_path: Path) -> None:
    a = agent(tmp_path)
    for _ in range(3):
        a.emit("TC01", "tower_crane", {"load_t": 1.0}, 1_000)
    a.emit("TC01", "tower_crane", {"load_t": 1.0}, 999)  # the clock stepped back
    a.emit("HOIST", "construction_hoist", {"floor": 1}, 1_000)  # other devices unaffected
    a.flush()
    got = [(i.device, i.seq, i.ts) for i in spooled_items(a)]
    assert got == [("TC01", 1, 1000), ("TC01", 2, 1001), ("TC01", 3, 1002),
                   ("TC01", 4, 1003), ("HOIST", 1, 1000)]
    assert a.adjusted_ts == 3


def test_full_batches_are_spooled_with_their_counters(tmp_path: Path) -> None:
    a = agent(tmp_path)
    for i in range(7):
        a.emit("TC01", "tower_crane", {"load_t": float(i)}, 1_000 + i)
    assert [b.batch for b in a.spool.due(0, 100)] == [1, 2]  # two full batches of 3
    a.flush()
    assert [b.items for b in a.spool.due(0, 100)] == [3, 3, 1]
    assert a.spool.last_seqs() == {"TC01": 7}
    a.spool.close()

"""Ingest's write pipeline holds a chunk's acks while the SQL store refuses the gate events
or the record of acked batches, retries with backoff, counts each failure and logs it
with what is held, and carries on once the store takes them: nothing is acked before
it is stored, nothing is lost. The store here is a real SQLite file whose tables appear
only after the first failures (the store is not ready yet)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from conftest import wait_for
from sqlalchemy.orm import Session

from ingest.acked import Acked, AckedBatches
from ingest.pipeline import WritePipeline
from ingest.stats import IngestStats
from sitewatch.core import contract
from sitewatch.core.influx import InfluxClient, InfluxSettings
from sitewatch.domains.attendance.ledger import GateBatch, Ledger, LedgerWriter
from sitewatch.domains.deadletters import DeadLetterStore


def _pipeline(
    tmp_path: Path, stats: IngestStats
) -> tuple[WritePipeline, LedgerWriter, AckedBatches]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    ledger = LedgerWriter(url)
    acked = AckedBatches(ledger.engine)

    async def publish_ack(site: str, gateway: str, payload: bytes) -> None:
        raise AssertionError("not reached: no chunk is finished here")

    pipeline = WritePipeline(
        influx=InfluxClient(InfluxSettings(url="http://127.0.0.1:9")),  # never written to
        dead_letters=DeadLetterStore(url),
        ledger=ledger,
        publish_ack=publish_ack,
        puback=lambda message: None,
        stats=stats,
        batch_points=5000,
        flush_interval_s=0.2,
        max_concurrent_writes=1,
        acked=acked,
    )
    return pipeline, ledger, acked


async def test_gate_events_wait_for_the_ledger_and_are_appended_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stats = IngestStats()
    pipeline, ledger, _ = _pipeline(tmp_path, stats)
    items = [
        contract.AttendanceItem(
            device="GATE1",
            ts=1_700_000_000_000 + i,
            seq=i + 1,
            worker="W1",
            direction="in",
            method="card",
        )
        for i in range(3)
    ]
    with caplog.at_level(logging.WARNING, logger="sitewatch.ingest.pipeline"):
        task = asyncio.create_task(pipeline._append_gate_events([GateBatch("S1", "GW1", items)]))
        await wait_for(lambda: stats.ledger_retries >= 1, what="a failed ledger append")
        assert not task.done()  # held: the acks of its chunk wait
        ledger.create_schema()  # the store comes back
        await asyncio.wait_for(task, 20)
    assert stats.gate_events_appended == 3 and stats.gate_events_resent == 0
    assert "attendance ledger failed (OperationalError)" in caplog.text
    assert "holding 1 batches" in caplog.text
    with Session(ledger.engine) as s:
        assert len(Ledger(s).events("S1", 0, 2_000_000_000_000)) == 3

    # the same events again are resends, not new entries
    await pipeline._append_gate_events([GateBatch("S1", "GW1", items)])
    assert stats.gate_events_appended == 3 and stats.gate_events_resent == 3


async def test_acked_batches_wait_for_the_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stats = IngestStats()
    pipeline, _, acked = _pipeline(tmp_path, stats)
    rows = [Acked("S1", "GW1", n, bytes(16)) for n in (1, 2)]
    with caplog.at_level(logging.WARNING, logger="sitewatch.ingest.pipeline"):
        task = asyncio.create_task(pipeline._remember_acked(acked, rows))
        await wait_for(lambda: stats.acked_batches_retries >= 1, what="a failed store")
        assert not task.done()
        acked.create_schema()
        await asyncio.wait_for(task, 20)
    assert "acked batches store failed (OperationalError)" in caplog.text
    assert "holding 2 batches" in caplog.text
    assert acked.fetch(("S1", "GW1", 2), int(time.time() * 1000)) == bytes(16)

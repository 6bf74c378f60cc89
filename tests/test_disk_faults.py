"""The gateway's disk fails under the real agent, Mosquitto, ingest and InfluxDB: a disk
that fills up while the agent runs or before it starts (a small loop-mounted ext4), and
a spool file that is really corrupt. Nothing is lost beyond the counted drops, no seq is
reused, the agent never crashes, and only a corrupt file is ever moved aside."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from conftest import (
    RunningAgent,
    RunningIngest,
    assert_seqs_exactly_once,
    edge_settings,
    seqs_by_device,
    wait_for,
)

from sitewatch.edge.config import EdgeSettings
from sitewatch.influx import InfluxClient
from sitewatch.localstack import MosquittoServer

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB ext4 filesystem mounted on a loop device (root only)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to loop-mount a small filesystem")
    image, mnt = tmp_path / "disk.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(24 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True,
                   capture_output=True)
    r = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"mount -o loop not permitted here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Take every free block of ``disk``."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
    return filler


def corrupt(spool: Path) -> bytes:
    """Garbage in place of the spool file (its WAL and index gone)."""
    garbage = os.urandom(64 * 1024)
    spool.write_bytes(garbage)
    for extra in ("-wal", "-shm"):
        Path(str(spool) + extra).unlink(missing_ok=True)
    return garbage


def settings_for(server: MosquittoServer, prefix: str, state: Path) -> EdgeSettings:
    s = edge_settings(server, prefix, state)
    return s.model_copy(update={"publish": s.publish.model_copy(update={
        "status_interval_s": 0.5})})


async def stored_exactly_once_but_counted_drops(influx: InfluxClient, last: dict[str, int],
                                                 gaps: int) -> None:
    """Every device's stored seqs are 1..N, each once, but for ``gaps`` seqs in all."""
    async def check() -> dict[str, list[int]] | None:
        got = await seqs_by_device(influx)
        if set(got) != set(last):
            return None
        missing = sum(last[d] - len(set(v)) for d, v in got.items())
        return got if missing == gaps else None

    got = await wait_for(check, timeout=40, what=lambda: f"1..N minus {gaps} gaps stored")
    for device, seqs in got.items():
        assert len(seqs) == len(set(seqs)), f"{device}: a seq stored twice"
        assert set(seqs) <= set(range(1, last[device] + 1)), f"{device}: unknown seqs"


async def test_disk_full_while_running_drops_counted_then_resumes(
    start_ingest: Callable[..., Awaitable[RunningIngest]], mosquitto: MosquittoServer,
    prefix: str, influx_client: InfluxClient, small_disk: Path,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    await start_ingest()
    running = agent_factory(settings_for(mosquitto, prefix, small_disk / "edge"))
    a = running.agent
    await wait_for(lambda: a.batches_acked > 5, timeout=20, what="batches acknowledged")
    filler = fill(small_disk)
    await wait_for(lambda: a.spool.disk_full and a.spool.dropped > 50, timeout=60,
                   what="the full disk noticed and readings refused")
    assert not running.task.done(), "the agent runs on"
    await asyncio.sleep(2)
    assert a.health_values(0.0)["disk_full"] is True
    assert a.spool.write_errors >= 1

    async def reported() -> list[dict[str, object]] | None:
        rows = await influx_client.series("SELECT disk_full FROM gateway WHERE disk_full = true")
        return rows or None

    await wait_for(reported, timeout=20, what="disk_full=true stored while the disk is full")
    assert a.spool.disk_full, "the disk is still full: the health reading went out at once"
    assert a.direct_sent >= 1
    filler.unlink()
    acked = a.batches_acked
    await wait_for(lambda: not a.spool.disk_full and a.batches_acked > acked + 5,
                   timeout=30, what="sending resumed once there was room")
    last = await running.stop()
    gaps = a.spool.dropped - a.spool.refused  # refused readings took no seq
    await stored_exactly_once_but_counted_drops(influx_client, last, gaps)
    rows = await influx_client.series("SELECT disk_full, dropped FROM gateway "
                                      "WHERE disk_full = true")
    assert rows, "the health readings report the full disk"
    assert max(int(r["dropped"]) for r in rows) > 0


async def test_full_disk_at_start_leaves_a_healthy_spool_alone_and_waits(
    start_ingest: Callable[..., Awaitable[RunningIngest]], mosquitto: MosquittoServer,
    prefix: str, influx_client: InfluxClient, small_disk: Path,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    await start_ingest()
    settings = settings_for(mosquitto, prefix, small_disk / "edge")
    first = agent_factory(settings)
    await wait_for(lambda: first.agent.batches_acked > 3, timeout=20, what="first run acked")
    await first.stop()
    spool = small_disk / "edge" / "spool.sqlite"
    before = spool.read_bytes()
    filler = fill(small_disk)
    second = agent_factory(settings)
    await wait_for(lambda: second.agent.spool_open_failures >= 2, timeout=20,
                   what="the agent trying again")
    assert not second.task.done(), "no crash"
    assert not list(spool.parent.glob("*.corrupt-*")), "a healthy spool is never moved"
    assert spool.read_bytes() == before
    filler.unlink()
    await wait_for(lambda: second.agent.connected.is_set(), timeout=20, what="started")
    await wait_for(lambda: second.agent.batches_acked > 3, timeout=20, what="second run acked")
    last = await second.stop()
    assert second.agent.boot == 2
    await assert_seqs_exactly_once(influx_client, last, timeout=40)


async def test_corrupt_spool_is_moved_aside_and_seqs_continue_above(
    start_ingest: Callable[..., Awaitable[RunningIngest]], mosquitto: MosquittoServer,
    prefix: str, influx_client: InfluxClient, tmp_path: Path,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    await start_ingest()
    settings = settings_for(mosquitto, prefix, tmp_path / "edge")
    first = agent_factory(settings)
    await wait_for(lambda: first.agent.batches_acked > 3, timeout=20, what="first run acked")
    last1 = await first.stop()
    spool = tmp_path / "edge" / "spool.sqlite"
    garbage = corrupt(spool)
    second = agent_factory(settings)
    await wait_for(lambda: second.agent.batches_acked > 3, timeout=20, what="second run acked")
    await asyncio.sleep(1.5)  # a health reading (every second) of the new run
    last2 = await second.stop()
    (aside,) = spool.parent.glob("spool.sqlite.corrupt-*")
    assert aside.read_bytes() == garbage, "kept as it was"
    assert second.agent.spool.resets == 1
    got = await wait_for(lambda: _both_runs(influx_client, last1, last2), timeout=40,
                         what="both runs stored")
    for device, seqs in got.items():
        assert len(seqs) == len(set(seqs)), f"{device}: a seq reused"
        old = [s for s in seqs if s <= last1.get(device, 0)]
        new = [s for s in seqs if s > last1.get(device, 0)]
        assert old == list(range(1, last1.get(device, 0) + 1))
        assert new == list(range(new[0], last2[device] + 1)), "the new run is contiguous"
    rows = await influx_client.series("SELECT spool_resets FROM gateway WHERE spool_resets > 0")
    assert rows, "the reset is reported in the health readings"


async def _both_runs(client: InfluxClient, last1: dict[str, int],
                     last2: dict[str, int]) -> dict[str, list[int]] | None:
    got = await seqs_by_device(client)
    ok = all(d in got and got[d][-1] == n for d, n in last2.items()) and all(
        len([s for s in got.get(d, []) if s <= n]) == n for d, n in last1.items())
    return got if ok else None



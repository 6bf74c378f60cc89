"""The gateway's disk fails under the real agent, Mosquitto, ingest and InfluxDB: a disk
that fills up while the agent runs or before it starts (a small loop-mounted ext4), and
a spool file that is really corrupt. Nothing is lost beyond the counted drops, no seq is
reused, the agent never crashes, and only a corrupt file is ever moved aside."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import yaml
from conftest import (
    RunningAgent,
    RunningIngest,
    assert_seqs_exactly_once,
    edge_settings,
    seqs_by_device,
    wait_for,
)

from edge.config import EdgeSettings
from edge.counters import DirectFlag
from sitewatch.core.influx import InfluxClient
from sitewatch.programs.localstack import MosquittoServer

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
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True, capture_output=True
    )
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
    return s.model_copy(update={"publish": s.publish.model_copy(update={"status_interval_s": 0.5})})


async def stored_exactly_once_but_counted_drops(
    influx: InfluxClient, last: dict[str, int], gaps: int
) -> None:
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
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
    small_disk: Path,
    agent_factory: Callable[[EdgeSettings], RunningAgent],
) -> None:
    await start_ingest()
    running = agent_factory(settings_for(mosquitto, prefix, small_disk / "edge"))
    a = running.agent
    await wait_for(lambda: a.batches_acked > 5, timeout=20, what="batches acknowledged")
    filler = fill(small_disk)
    await wait_for(
        lambda: a.spool.disk_full and a.spool.dropped > 50,
        timeout=60,
        what="the full disk noticed and readings refused",
    )
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
    await wait_for(
        lambda: not a.spool.disk_full and a.batches_acked > acked + 5,
        timeout=30,
        what="sending resumed once there was room",
    )
    last = await running.stop()
    gaps = a.spool.dropped - a.spool.refused  # refused readings took no seq
    await stored_exactly_once_but_counted_drops(influx_client, last, gaps)
    rows = await influx_client.series(
        "SELECT disk_full, dropped FROM gateway WHERE disk_full = true"
    )
    assert rows, "the health readings report the full disk"
    assert max(int(r["dropped"]) for r in rows) > 0


async def test_full_disk_at_start_leaves_a_healthy_spool_alone_and_waits(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
    small_disk: Path,
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
    await wait_for(
        lambda: second.agent.spool_open_failures >= 2, timeout=20, what="the agent trying again"
    )
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
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
    tmp_path: Path,
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

    async def reset_reported() -> bool:
        return bool(
            await influx_client.series("SELECT spool_resets FROM gateway WHERE spool_resets > 0")
        )

    await wait_for(reset_reported, timeout=20, what="a health reading of the new run stored")
    last2 = await second.stop()
    (aside,) = spool.parent.glob("spool.sqlite.corrupt-*")
    assert aside.read_bytes() == garbage, "kept as it was"
    assert second.agent.spool.resets == 1
    got = await wait_for(
        lambda: _both_runs(influx_client, last1, last2), timeout=40, what="both runs stored"
    )
    for device, seqs in got.items():
        assert len(seqs) == len(set(seqs)), f"{device}: a seq reused"
        old = [s for s in seqs if s <= last1.get(device, 0)]
        new = [s for s in seqs if s > last1.get(device, 0)]
        assert old == list(range(1, last1.get(device, 0) + 1))
        assert new == list(range(new[0], last2[device] + 1)), "the new run is contiguous"
    rows = await influx_client.series("SELECT spool_resets FROM gateway WHERE spool_resets > 0")
    assert rows, "the reset is reported in the health readings"


async def _both_runs(
    client: InfluxClient, last1: dict[str, int], last2: dict[str, int]
) -> dict[str, list[int]] | None:
    got = await seqs_by_device(client)
    ok = all(d in got and got[d][-1] == n for d, n in last2.items()) and all(
        len([s for s in got.get(d, []) if s <= n]) == n for d, n in last1.items()
    )
    return got if ok else None


async def test_killed_while_the_disk_is_full_never_reuses_a_seq_sent_straight_away(
    start_ingest: Callable[..., Awaitable[RunningIngest]],
    mosquitto: MosquittoServer,
    prefix: str,
    influx_client: InfluxClient,
    small_disk: Path,
    tmp_path: Path,
) -> None:
    """The gateway's health readings published straight away while the disk is full were
    never stored: after a kill -9 (and a restart once there is room), the gateway's next
    readings take seqs above them (a gap), never theirs."""
    await start_ingest()
    state = small_disk / "edge"
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(yaml.safe_dump(settings_for(mosquitto, prefix, state).model_dump(mode="json")))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITEWATCH_")}

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "sitewatch.programs.cli", "edge", "-c", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )

    async def gateway_rows() -> list[dict[str, object]]:
        return await influx_client.series(
            "SELECT \"seq\", disk_full FROM gateway WHERE device = 'GW1'"
        )

    edge = spawn()
    filler: Path | None = None
    try:
        await wait_for(
            lambda: seqs_by_device(influx_client), timeout=20, what="first readings stored"
        )
        filler = fill(small_disk)

        async def sent_straight_away() -> list[dict[str, object]] | None:
            return [r for r in await gateway_rows() if r["disk_full"] is True] or None

        direct = await wait_for(
            sent_straight_away, timeout=40, what="disk_full=true stored while the disk is full"
        )
        edge.send_signal(signal.SIGKILL)  # the readings sent straight away were never stored
        edge.wait(10)
        flag = DirectFlag(state / "direct.flag").read()
        assert flag is not None and flag.device == "GW1"
        assert flag.seq >= max(int(str(r["seq"])) for r in direct)
        filler.unlink()
        filler = None
        edge = spawn()
        await wait_for(
            lambda: _gateway_past(gateway_rows, flag.seq),
            timeout=30,
            what="the restarted agent's health readings stored",
        )
        edge.send_signal(signal.SIGTERM)
        assert edge.wait(30) == 0
    finally:
        edge.kill()
        edge.wait(10)
        if filler is not None:
            filler.unlink()
    assert DirectFlag(state / "direct.flag").read() is None, "cleared once stored past it"
    with sqlite3.connect(state / "spool.sqlite") as db:
        last = {
            name[4:]: int(v)
            for name, v in db.execute("SELECT name, value FROM counters WHERE name LIKE 'seq:%'")
        }
        dropped = int(db.execute("SELECT value FROM counters WHERE name='dropped'").fetchone()[0])

    async def all_stored() -> dict[str, list[int]] | None:
        got = await seqs_by_device(influx_client)
        return (
            got
            if set(got) == set(last) and all(v and v[-1] == last[d] for d, v in got.items())
            else None
        )

    got = await wait_for(all_stored, timeout=40, what="both runs stored")
    for device, seqs in got.items():
        assert len(seqs) == len(set(seqs)), (
            f"{device}: a seq stored twice, at two timestamps: "
            f"{sorted(s for s in set(seqs) if seqs.count(s) > 1)[:10]}"
        )
    gw = got["GW1"]
    before = [s for s in gw if s <= flag.seq]
    after = [s for s in gw if s > flag.seq]
    assert after == list(range(flag.seq + 1, last["GW1"] + 1)), "resumed above the flag"
    assert before and before[-1] <= flag.seq
    for device, seqs in got.items():
        if device == "GW1":
            continue
        missing = last[device] - len(seqs)
        assert set(seqs) <= set(range(1, last[device] + 1))
        assert 0 <= missing <= dropped, f"{device}: {missing} seqs missing, {dropped} counted"


async def _gateway_past(rows: Callable[[], Awaitable[list[dict[str, object]]]], seq: int) -> bool:
    return sum(int(str(r["seq"])) > seq for r in await rows()) >= 2

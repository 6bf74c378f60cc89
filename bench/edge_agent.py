"""bench/edge_agent: what the durable spool costs the gateway.

1. CPU: a real ``sitewatch edge`` process reading simulated devices at 1,000 readings/s
   (20 devices x 50/s) with the durable spool, against ``edge_nospool.py`` — the same
   drivers, encoding and batching (one batch per channel shared by every device, 50
   items or 1 s), published straight to the broker — in the same run.
2. Drain: a spool holding an hour-long outage's worth of readings at ``--site-rate``
   readings/s, drained by the agent (backlog rate unbounded), against publishing the
   same batches from memory with no spool, in the same run.

A small acker in this process plays ingest (acks every batch it receives) so that only
the gateway side is measured.

    .venv/bin/python bench/edge_agent.py [--seconds 20] [--site-rate 100] [--quick]

``--quick`` (about 20 s): one round of each CPU run, 3 s each, and the backlog of a
5 readings/s site; the figures are printed the same way, only noisier.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from edge.drivers.simulated.signals import signal_for
from edge.spool import PendingReading, Spool, SpoolLimits
from sitewatch.core import contract, mqtt
from sitewatch.programs.localstack import MosquittoServer

HERE = Path(__file__).resolve().parent
_BATCH = re.compile(rb'"batch":(\d+)')


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ignore(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()  # an ack lost when the benchmark disconnects is no error


class Acker:
    """Plays ingest: acks every telemetry batch; counts readings."""

    def __init__(self, settings: mqtt.MqttSettings) -> None:
        self.client = mqtt.Client(
            settings, client_id=f"acker-{time.time_ns()}", receive_maximum=1000, max_inflight=1000
        )
        self.prefix = settings.topic_prefix
        self.readings = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Acker:
        await self.client.connect()
        await self.client.subscribe(f"{self.prefix}/+/+/telemetry")
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        async for m in self.client.messages():
            n = m.payload.count(b'"seq":')
            self.readings += n
            match = _BATCH.search(m.payload)
            if match:
                ack = contract.Ack(
                    acks=[
                        contract.AckEntry(
                            batch=int(match.group(1)), stored=min(n, 5000), rejected=0
                        )
                    ]
                )
                self.client.publish_nowait(
                    m.topic.rsplit("/", 1)[0] + "/ack", contract.encode(ack)
                ).add_done_callback(_ignore)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await self.client.disconnect()


async def _wait_ready(proc: subprocess.Popen[bytes], log: Path, word: bytes) -> None:
    deadline = time.monotonic() + 30
    while word not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text()[-2000:])
        await asyncio.sleep(0.05)


async def measure_cpu(
    kind: str,
    mq: MosquittoServer,
    work: Path,
    seconds: float,
    devices: int,
    interval_s: float,
    warmup_s: float,
) -> tuple[float, float]:
    prefix = f"bench/{kind}"
    settings = mqtt.MqttSettings(host=mq.host, port=mq.port, topic_prefix=prefix)
    log = work / f"{kind}.log"
    if kind == "agent":
        cfg = work / "edge.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "site": "SB",
                    "gateway": "GB",
                    "state_dir": str(work / f"state-cpu-{time.time_ns()}"),
                    "mqtt": {"host": mq.host, "port": mq.port, "topic_prefix": prefix},
                    "publish": {"health_interval_s": 3600},
                    "devices": [
                        {
                            "id": f"TC{d:02d}",
                            "driver": "simulated",
                            "profile": "tower_crane",
                            "interval_s": interval_s,
                            "options": {"seed": d},
                        }
                        for d in range(devices)
                    ],
                }
            )
        )
        cmd = [sys.executable, "-m", "sitewatch.programs.cli", "edge", "-c", str(cfg)]
        word = b"connected"
    else:
        cmd = [
            sys.executable,
            str(HERE / "edge_nospool.py"),
            mq.host,
            str(mq.port),
            prefix,
            str(devices),
            str(interval_s),
        ]
        word = b"ready"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITEWATCH_")}
    async with Acker(settings) as acker:
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            await _wait_ready(proc, log, word)
            await asyncio.sleep(warmup_s)
            c0, n0, t0 = cpu_seconds(proc.pid), acker.readings, time.monotonic()
            await asyncio.sleep(seconds)
            c1, n1, t1 = cpu_seconds(proc.pid), acker.readings, time.monotonic()
        finally:
            proc.terminate()
            proc.wait(30)
    rate = (n1 - n0) / (t1 - t0)
    return (c1 - c0) / (t1 - t0) * 100.0, rate


def fill_spool(path: Path, readings: int) -> list[bytes]:
    """An outage's worth of batches in a spool; also return the same batches' payloads."""
    spool = Spool(path, SpoolLimits(max_bytes=4 * 1024**3))
    model = signal_for("tower_crane", 1)
    samples = [model.sample(1_763_900_000 + i) for i in range(100)]
    t0 = int(time.time() * 1000) - 3_600_000
    groups: list[tuple[str, list[PendingReading]]] = [("telemetry", [])]
    payloads = []
    for i in range(readings):
        device = f"TC{i % 20:02d}"
        seq = spool.next_seq(device)
        body = contract.encode(
            contract.TelemetryItem(
                device=device, profile="tower_crane", ts=t0 + i, seq=seq, values=samples[i % 100]
            )
        )
        spool.admit(len(body))
        if len(groups[-1][1]) == 50:
            groups.append(("telemetry", []))
        groups[-1][1].append(
            PendingReading("telemetry", device, seq, t0 + i, body, time.time() - 3600)
        )
        if (len(groups) == 20 and len(groups[-1][1]) == 50) or i == readings - 1:
            payloads += [b.payload for b in spool.commit(groups, t0)]
            groups = [("telemetry", [])]
    spool.close()
    return payloads


async def measure_drain(mq: MosquittoServer, work: Path, readings: int) -> tuple[float, float]:
    state = work / "state-drain"
    state.mkdir()
    payloads = fill_spool(state / "spool.sqlite", readings)
    # baseline: the same batches published from memory, no spool
    prefix = "bench/drain-base"
    settings = mqtt.MqttSettings(host=mq.host, port=mq.port, topic_prefix=prefix)
    async with (
        Acker(settings) as acker,
        mqtt.Client(settings, client_id="drain-base", max_inflight=200) as pub,
    ):
        t0 = time.monotonic()
        window = []
        for p in payloads:
            window.append(pub.publish_nowait(f"{prefix}/SB/GB/telemetry", p))
            if len(window) >= 200:
                await asyncio.gather(*window)
                window.clear()
        await asyncio.gather(*window)
        while acker.readings < readings:
            await asyncio.sleep(0.01)
        base = readings / (time.monotonic() - t0)
    # the agent draining its spool (no device produces; backlog rate unbounded)
    prefix = "bench/drain-agent"
    cfg = work / "drain.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "site": "SB",
                "gateway": "GB",
                "state_dir": str(state),
                "mqtt": {"host": mq.host, "port": mq.port, "topic_prefix": prefix},
                "publish": {
                    "health_interval_s": 3600,
                    "backlog_batches_per_s": 1_000_000,
                    "ack_timeout_s": 300,
                },
                "devices": [
                    {
                        "id": "IDLE",
                        "driver": "simulated",
                        "profile": "tower_crane",
                        "interval_s": 86400,
                    }
                ],
            }
        )
    )
    settings = mqtt.MqttSettings(host=mq.host, port=mq.port, topic_prefix=prefix)
    log = work / "drain.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITEWATCH_")}
    async with Acker(settings) as acker:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sitewatch.programs.cli", "edge", "-c", str(cfg)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            await _wait_ready(proc, log, b"connected")
            t0 = time.monotonic()  # from the agent's connection: its start-up is not drain
            while acker.readings < readings:
                if proc.poll() is not None:
                    raise RuntimeError(log.read_text()[-2000:])
                await asyncio.sleep(0.05)
            drain = readings / (time.monotonic() - t0)
        finally:
            proc.terminate()
            proc.wait(30)
    return drain, base


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument(
        "--site-rate",
        type=float,
        default=100,
        help="readings/s of the site whose one-hour outage fills the spool",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="about 20 s: one 3 s round of each CPU run, a 5 readings/s site",
    )
    args = ap.parse_args()
    rounds, warmup = 2, 2.0
    if args.quick:
        args.seconds, args.site_rate, rounds, warmup = 3.0, 5.0, 1, 1.0
    with tempfile.TemporaryDirectory(prefix="sw-edge-bench-") as tmp:
        work = Path(tmp)
        mq = MosquittoServer(work / "mosquitto")
        mq.start()
        try:
            results: dict[str, list[tuple[float, float]]] = {}
            for kind in ("nospool", "agent") * rounds:
                cpu, rate = await measure_cpu(kind, mq, work, args.seconds, 20, 0.02, warmup)
                results.setdefault(kind, []).append((cpu, rate))
                print(
                    f"{kind:8}: {cpu:5.1f}% of a core at {rate:,.0f} readings/s "
                    f"= {cpu / rate * 1000:.2f}% per 1,000 readings/s",
                    flush=True,
                )
            per_k = {k: min(c / r * 1000 for c, r in v) for k, v in results.items()}
            print(
                f"\nCPU per 1,000 readings/s: agent with durable spool {per_k['agent']:.2f}% "
                f"of a core, no-spool publisher {per_k['nospool']:.2f}% "
                f"(ratio {per_k['agent'] / per_k['nospool']:.2f})"
            )
            readings = int(args.site_rate * 3600)
            print(
                f"\nspool after a one-hour outage at {args.site_rate:g} readings/s: "
                f"{readings:,} readings",
                flush=True,
            )
            drain, base = await measure_drain(mq, work, readings)
            print(
                f"backlog drain: agent {drain:,.0f} readings/s, the same batches published "
                f"without a spool {base:,.0f} readings/s (ratio {drain / base:.2f}); "
                f"an hour's backlog drains in {readings / drain:.0f} s"
            )
        finally:
            mq.stop()


if __name__ == "__main__":
    asyncio.run(main())

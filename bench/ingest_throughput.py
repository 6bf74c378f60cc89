"""bench/ingest_throughput: readings/s through Mosquitto into ingest and InfluxDB.

Publishes a pre-generated stream of contract batches (50 readings each, QoS 1, from 20
gateways with 10 devices each) through a real Mosquitto into (a) SiteWatch ingest and
(b) the minimal baseline pipeline of ``baseline_pipeline.py`` on the same servers, in
the same run, alternating, and prints readings/s stored for each and their ratio.

A reading counts as stored when the pipeline says so: ingest's acks to the gateways
(published only after InfluxDB accepted the points), the baseline's progress messages
(after each write). Every run ends by counting the points in InfluxDB.

    .venv/bin/python bench/ingest_throughput.py [--readings 1000000] [--rounds 4]
    .venv/bin/python bench/ingest_throughput.py --quick   # CI: 50,000 readings, 1 round
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge.drivers.simulated.signals import signal_for
from sitewatch.core import contract, mqtt
from sitewatch.core.influx import InfluxClient, InfluxSettings
from sitewatch.programs.localstack import InfluxServer, MosquittoServer

HERE = Path(__file__).resolve().parent
PROFILES = ["tower_crane", "environment", "electrical", "construction_hoist", "high_formwork"]
GATEWAYS, DEVICES_PER_GATEWAY, ITEMS_PER_BATCH = 20, 10, 50


def generate(readings: int, fields: int = 0) -> list[tuple[str, bytes]]:
    """(topic suffix, payload) for ``readings`` readings in 50-reading batches, each with
    the first ``fields`` values of its profile (0: all of them)."""

    def cut(values: dict[str, float | int | bool | str]) -> dict[str, float | int | bool | str]:
        return dict(list(values.items())[:fields]) if fields else values

    pools = {
        p: [cut(signal_for(p, i).sample(1_763_900_000 + 37 * i)) for i in range(500)]
        for p in PROFILES
    }
    base_ts = int(time.time() * 1000) - 3_600_000
    seq: dict[tuple[int, int], int] = {}
    batch_no = [0] * GATEWAYS
    out: list[tuple[str, bytes]] = []
    per_device = ITEMS_PER_BATCH // DEVICES_PER_GATEWAY
    for n in range(readings // ITEMS_PER_BATCH):
        g = n % GATEWAYS
        items = []
        for d in range(DEVICES_PER_GATEWAY):
            profile = PROFILES[d % len(PROFILES)]
            for _ in range(per_device):
                s = seq[(g, d)] = seq.get((g, d), 0) + 1
                items.append(
                    contract.TelemetryItem(
                        device=f"D{d:02d}",
                        profile=profile,
                        ts=base_ts + s,
                        seq=s,
                        values=pools[profile][s % 500],
                    )
                )
        batch_no[g] += 1
        payload = contract.encode(
            contract.TelemetryBatchOut(v=1, batch=batch_no[g], sent=base_ts, items=items)
        )
        out.append((f"S{g:03d}/GW{g:03d}/telemetry", payload))
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _publish(pub: mqtt.Client, prefix: str, stream: list[tuple[str, bytes]]) -> None:
    window: list[asyncio.Future[None]] = []
    for suffix, payload in stream:
        window.append(pub.publish_nowait(f"{prefix}/{suffix}", payload, qos=1))
        if len(window) >= 2000:
            await asyncio.gather(*window)
            window.clear()
    await asyncio.gather(*window)


async def _start(
    cmd: list[str], env: dict[str, str], log_path: Path, ready: bytes
) -> subprocess.Popen[bytes]:
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while ready not in log_path.read_bytes()[offset:]:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"did not start: {log_path.read_text()[-2000:]}")
        await asyncio.sleep(0.02)
    return proc


async def run_once(
    kind: str,
    stream: list[tuple[str, bytes]],
    mq: MosquittoServer,
    influx: InfluxServer,
    tag: str,
    workdir: Path,
    backlog: bool,
) -> dict[str, float]:
    prefix = f"bench/{tag}"
    db = tag
    total = len(stream) * ITEMS_PER_BATCH
    client = InfluxClient(InfluxSettings(url=influx.url, database=db))
    await client.ensure_database()
    log_path = workdir / f"{tag}.log"
    if kind == "baseline":
        cmd = [
            sys.executable,
            str(HERE / "baseline_pipeline.py"),
            mq.host,
            str(mq.port),
            prefix,
            influx.url,
            db,
            f"base-{tag}",
        ]
        env = dict(os.environ)
        ready = b"ready"
        watch = f"{prefix}/bench/progress"
    else:
        cmd = [sys.executable, "-m", "sitewatch.programs.cli", "ingest"]
        env = {
            **os.environ,
            "SITEWATCH_INGEST_MQTT__PORT": str(mq.port),
            "SITEWATCH_INGEST_MQTT__TOPIC_PREFIX": prefix,
            "SITEWATCH_INGEST_INFLUX__URL": influx.url,
            "SITEWATCH_INGEST_INFLUX__DATABASE": db,
            "SITEWATCH_INGEST_CLIENT_ID": f"ingest-{tag}",
            "SITEWATCH_INGEST_DATABASE_URL": f"sqlite:///{workdir / (tag + '.db')}",
        }
        ready = b"connected"
        watch = f"{prefix}/+/+/ack"
    settings = mqtt.MqttSettings(host=mq.host, port=mq.port, topic_prefix=prefix)
    t_pub = 0.0
    if backlog:
        # the pipeline's persistent session exists, the pipeline is down, the stream waits
        # in the broker (as after an ingest outage); then the pipeline starts and drains it
        proc = await _start(cmd, env, log_path, ready)
        proc.terminate()
        proc.wait(20)
        async with mqtt.Client(settings, client_id=f"pub-{tag}", max_inflight=1000) as pub:
            t = time.perf_counter()
            await _publish(pub, prefix, stream)
            t_pub = time.perf_counter() - t
    proc = await _start(cmd, env, log_path, ready)
    try:
        stored = 0
        done = asyncio.Event()
        async with (
            mqtt.Client(settings, client_id=f"watch-{tag}") as watcher,
            mqtt.Client(settings, client_id=f"pub-{tag}", max_inflight=1000) as pub,
        ):
            await watcher.subscribe(watch, qos=0)

            async def count() -> None:
                nonlocal stored
                async for m in watcher.messages():
                    if kind == "baseline":
                        stored = max(stored, int(m.payload))
                    else:
                        stored += sum(a.stored for a in contract.ack_decoder.decode(m.payload).acks)
                    if stored >= total:
                        done.set()

            counter = asyncio.create_task(count())
            pids = {
                "pipeline": proc.pid,
                "influxd": influx.proc.pid,  # type: ignore[union-attr]
                "mosquitto": mq.proc.pid,
                "publisher": os.getpid(),
            }  # type: ignore[union-attr]
            cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
            t0 = time.perf_counter()
            if not backlog:
                await _publish(pub, prefix, stream)
                t_pub = time.perf_counter() - t0
            await asyncio.wait_for(done.wait(), 600)
            elapsed = time.perf_counter() - t0
            cpu = {k: (cpu_seconds(p) - cpu0[k]) / total * 100_000 for k, p in pids.items()}
            counter.cancel()
        rows = await client.query('SELECT count("seq") FROM /.*/')
        in_db = sum(s["values"][0][1] for s in rows[0].get("series", []))
        if in_db != total:
            raise RuntimeError(f"{kind}: {in_db} points in InfluxDB, expected {total}")
        return {
            "rate": total / elapsed,
            "elapsed": elapsed,
            "publish_rate": total / t_pub if t_pub else 0.0,
            **{f"cpu_{k}": v for k, v in cpu.items()},
        }
    finally:
        proc.terminate()
        proc.wait(20)
        await client.query(f'DROP DATABASE "{db}"', method="POST")
        await client.aclose()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument(
        "--backlog",
        action="store_true",
        help="queue the whole stream in the broker first (pipeline down), then "
        "measure the drain: no publisher competes for CPU",
    )
    ap.add_argument(
        "--fields",
        type=int,
        default=4,
        help="values per reading (4 like the contract's example item; 0: every "
        "field of the profile, 4 to 9)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run (CI): 50,000 readings, one round of each pipeline",
    )
    args = ap.parse_args()
    if args.quick:
        args.readings, args.rounds = 50_000, 1
    readings = max(5000, args.readings // 5000 * 5000)
    t = time.perf_counter()
    stream = generate(readings, args.fields)
    print(f"mode: {'backlog drain' if args.backlog else 'live (publisher running)'}")
    print(
        f"generated {readings:,} readings ({args.fields or 'all'} values each) in "
        f"{len(stream):,} batches of {ITEMS_PER_BATCH} "
        f"({sum(len(p) for _, p in stream) / 1e6:.1f} MB) in {time.perf_counter() - t:.1f}s"
    )
    with tempfile.TemporaryDirectory(prefix="sw-bench-") as tmp:
        work = Path(tmp)
        mq = MosquittoServer(work / "mosquitto")
        influx = InfluxServer(work / "influxdb")
        mq.start()
        influx.start()
        results: dict[str, list[dict[str, float]]] = {"baseline": [], "ingest": []}
        try:
            for r in range(args.rounds):
                # alternate who goes first: the second run of a round meets a warmer,
                # fuller InfluxDB
                order = ("baseline", "ingest") if r % 2 == 0 else ("ingest", "baseline")
                for kind in order:
                    res = await run_once(kind, stream, mq, influx, f"{kind}{r}", work, args.backlog)
                    results[kind].append(res)
                    cpu = " ".join(
                        f"{k[4:]}={v:.2f}" for k, v in res.items() if k.startswith("cpu_")
                    )
                    print(
                        f"round {r + 1} {kind:8}: {res['rate']:>9,.0f} readings/s stored "
                        f"({res['elapsed']:.1f}s; published at {res['publish_rate']:,.0f}/s; "
                        f"CPU s per 100k readings: {cpu})",
                        flush=True,
                    )
        finally:
            mq.stop()
            influx.stop()
    base = statistics.median(r["rate"] for r in results["baseline"])
    ing = statistics.median(r["rate"] for r in results["ingest"])
    print(f"\nbaseline (subscribe, decode, write): {base:>9,.0f} readings/s (median)")
    print(f"sitewatch ingest (validated, acked): {ing:>9,.0f} readings/s (median)")
    print(f"ratio ingest/baseline: {ing / base:.2f} (target >= 0.80)")


if __name__ == "__main__":
    asyncio.run(main())

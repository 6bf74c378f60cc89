"""bench/alert_latency: time from a reading's publish to its alert on MQTT, under load.

What is measured: a probe publishes, on a gateway topic of its own, one overload reading
(``tower_crane``, ``load_pct: 120``) for a new device each time, so each raises a new
``load`` alarm; the latency is from just before that publish to the arrival of the
``raised`` event for that device on ``{p}/PROBE/alerts``. That is everything a site's
siren waits for: the broker, the alert service's MQTT session (receive maximum, PUBACK
order), rule evaluation, the committer's transaction in the alert store, the
dispatcher and the broker again.

Under what: the real services, each in its own process - ``sitewatch ingest`` and
``sitewatch alerts serve`` on a real Mosquitto and InfluxDB - while ``sitewatch
simulate`` publishes a background fleet (default 20,000 readings/s) that both services
consume. The rate the background actually reached is measured, not assumed: the fleet's
readings are counted in InfluxDB by device timestamp over the measurement window. The
alert service runs with ``hold_s: 0`` and the default ``tick_s`` (1 s: a raise does
not wait for it), SQLite stores in the run's folder, and the probe site's ``silent``
rule off (each probe device reports only once).
The fleet sends every device at the same rate (10 readings/s by default), whatever its
profile's sample interval: window rules see far more samples than in the field.

Baseline, in the same run: the same probe messages, received back by a plain MQTT
subscriber on the probe's telemetry topic - the broker round trip under the same load,
the floor below which no alert can arrive. Printed: p50/p99 of both and their ratio,
the background rate offered and stored, and the CPU seconds of every process, so the
reader sees where the machine's cores went.

    .venv/bin/python bench/alert_latency.py                 # 20k readings/s, 60 s, 300 probes
    .venv/bin/python bench/alert_latency.py --quick         # smoke run: 2k readings/s, 10 s
    .venv/bin/python bench/alert_latency.py --rate 10000 --duration 30
    .venv/bin/python bench/alert_latency.py --workdir /tmp/run   # keep configs and logs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import os
import random
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import yaml
from childproc import Service, cpu_seconds, run_in_workdir  # bench/childproc.py

from simulators.fleet import SITE_MIX
from sitewatch.core import contract, mqtt
from sitewatch.core.influx import InfluxClient, InfluxSettings
from sitewatch.domains.alertrecords.model import EventKind, event_decoder
from sitewatch.programs.localstack import InfluxServer, MosquittoServer

PREFIX = "bench/alerts"
DATABASE = "bench_alerts"
PROBE_SITE, PROBE_GATEWAY = "PROBE", "GW-PROBE"
#: the fleet: sites of 50 devices (one 50-item batch per site and tick of the simulator)
DEVICES_PER_SITE, BATCH_ITEMS = 50, 50
FLEET_MEASUREMENTS = sorted({profile for profile, _ in SITE_MIX})
TARGET_P99_S = 0.5


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
#: the counters of the services' periodic stats lines
INGEST_STORED = r"ingest: messages=\d+ received=\d+ stored=(\d+)"
ALERTS_EVALUATED = r"alerts: readings=(\d+)"


def counter_rate(log_path: Path, pattern: str, t0: float, t1: float) -> float | None:
    """Per-second growth of a counter a service logs periodically (its stats line),
    between the first and last such line inside the wall-clock window [t0, t1]."""
    counter = re.compile(pattern)
    points: list[tuple[float, int]] = []
    for line in log_path.read_text(errors="replace").splitlines():
        m, c = _LOG_TIME.match(line), counter.search(line)
        if m is None or c is None:
            continue
        at = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if t0 <= at <= t1:
            points.append((at, int(c.group(1))))
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return None
    return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])


# -- the probe ----------------------------------------------------------------------
@dataclass
class ProbeResults:
    """perf_counter() times per probe device, in the order the probes were sent."""

    start: float = 0.0
    sent: dict[str, float] = field(default_factory=dict)
    echoed: dict[str, float] = field(default_factory=dict)  # its telemetry, back
    alerted: dict[str, float] = field(default_factory=dict)  # its `raised` event
    background_events: dict[str, int] = field(default_factory=dict)  # the fleet's alerts

    def latencies(self, received: dict[str, float]) -> list[float]:
        """Seconds per probe, in sending order; inf where nothing arrived."""
        return [received[d] - t if d in received else math.inf for d, t in self.sent.items()]


_probe_batch = msgspec.json.Decoder(contract.TelemetryBatchOut)


async def receive(client: mqtt.Client, probe_topic: str, res: ProbeResults) -> None:
    """Timestamp the probe's telemetry and the alert events as they arrive."""
    async for m in client.messages():
        now = time.perf_counter()
        if m.topic == probe_topic:
            for item in _probe_batch.decode(m.payload).items:
                res.echoed.setdefault(item.device, now)
            continue
        ev = event_decoder.decode(m.payload)
        if ev.site == PROBE_SITE:
            if ev.event is EventKind.RAISED:
                res.alerted.setdefault(ev.device, now)
        else:
            key = ev.event.value
            res.background_events[key] = res.background_events.get(key, 0) + 1


async def run_probes(
    client: mqtt.Client, probe_topic: str, count: int, interval_s: float, res: ProbeResults
) -> None:
    """``count`` overload readings, each for a new device, at random spacing averaging
    ``interval_s`` (so the probes fall at every phase of the services' timers)."""
    batch_no = int(time.time() * 1000)
    res.start = time.perf_counter()
    for i in range(count):
        device = f"P{i}"
        now_ms = int(time.time() * 1000)
        payload = contract.encode(
            contract.TelemetryBatchOut(
                v=1,
                batch=batch_no + i,
                sent=now_ms,
                items=[
                    contract.TelemetryItem(
                        device=device,
                        profile="tower_crane",
                        ts=now_ms,
                        seq=1,
                        values={"load_pct": 120.0},
                    )
                ],
            )
        )
        res.sent[device] = time.perf_counter()
        client.publish_nowait(probe_topic, payload, qos=1)
        await asyncio.sleep(random.uniform(0.5, 1.5) * interval_s)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; inf (nothing arrived) ranks above everything."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float, width: int = 8) -> str:
    return f"{'-':>{width}}" if math.isinf(seconds) else f"{seconds * 1000:{width}.1f}"


# -- InfluxDB -----------------------------------------------------------------------
async def fleet_readings(influx: InfluxClient, t0_ms: int, t1_ms: int) -> int:
    """Fleet readings stored with a device timestamp in [t0, t1)."""
    measurements = ",".join(f'"{m}"' for m in FLEET_MEASUREMENTS)
    rows = await influx.query(
        f'SELECT count("seq") FROM {measurements} WHERE time >= {t0_ms}ms '
        f"AND time < {t1_ms}ms AND site != '{PROBE_SITE}'"
    )
    return sum(s["values"][0][1] for s in rows[0].get("series", []))


async def settled_count(
    influx: InfluxClient, t0_ms: int, t1_ms: int, timeout_s: float = 120.0
) -> tuple[int, float]:
    """Count once ingest has stored everything (two equal counts a second apart);
    returns the count and how long that took."""
    start, last = time.monotonic(), -1
    while True:
        n = await fleet_readings(influx, t0_ms, t1_ms)
        if n == last or time.monotonic() - start > timeout_s:
            return n, time.monotonic() - start
        last = n
        await asyncio.sleep(1.0)


# -- configuration ------------------------------------------------------------------
def write_configs(work: Path, mq: MosquittoServer, influx: InfluxServer) -> tuple[Path, Path]:
    common: dict[str, Any] = {
        "mqtt": {"host": mq.host, "port": mq.port, "topic_prefix": PREFIX},
        "influx": {"url": influx.url, "database": DATABASE},
        "stats_interval_s": 2,
    }
    ingest = {
        **common,
        "client_id": "bench-ingest",
        "database_url": f"sqlite:///{work / 'ingest.db'}",
    }
    alerts = {
        **common,
        "client_id": "bench-alerts",
        "database_url": f"sqlite:///{work / 'alerts.db'}",
        "hold_s": 0,
        # a probe device reports once: no `silent` alerts for them 30 s later
        "overrides": [{"site": PROBE_SITE, "rule": "silent", "enabled": False}],
    }
    paths = work / "ingest.yaml", work / "alerts.yaml"
    for path, conf in zip(paths, (ingest, alerts), strict=True):
        path.write_text(yaml.safe_dump(conf, sort_keys=False))
    return paths


@dataclass(frozen=True)
class FleetShape:
    sites: int
    devices: int
    device_rate: float

    @classmethod
    def for_rate(cls, rate: float, device_rate: float) -> FleetShape:
        """Sites of DEVICES_PER_SITE devices at up to ``device_rate`` readings/s each."""
        sites = max(1, math.ceil(rate / (DEVICES_PER_SITE * device_rate)))
        return cls(sites, DEVICES_PER_SITE, rate / (sites * DEVICES_PER_SITE))

    @property
    def rate(self) -> float:
        return self.sites * self.devices * self.device_rate

    def __str__(self) -> str:
        return f"{self.sites} sites x {self.devices} devices x {self.device_rate:g}/s"


# -- the report ---------------------------------------------------------------------
@dataclass
class Measured:
    """Everything one run measured, for :func:`report`."""

    window_s: float
    shape: FleetShape
    stored: int  # fleet readings with a device time in the window, in the end
    live: int  # ... of which stored by the end of the window
    drain_s: float
    cpu: dict[str, float]  # CPU seconds in the window per process
    probes: ProbeResults
    ingest_rate: float | None  # from the services' stats lines
    alerts_rate: float | None


def report(m: Measured) -> None:
    """Print the background rate, CPU per process, and the latencies with their ratio."""
    w, offered = m.window_s, m.shape.rate
    produced = m.stored / w
    print(f"\nmeasurement window {w:.1f}s, {len(m.probes.sent)} probes\n")
    print("background load                                  readings/s")
    print(f"  offered: {m.shape!s:38} {offered:>9,.0f}")
    print(
        f"  produced and stored (InfluxDB, device time)  {produced:>9,.0f}   "
        f"{m.stored:,} readings; all in {m.drain_s:.0f}s after the fleet stopped"
    )
    print(
        f"  stored by the end of the window              {m.live / w:>9,.0f}   "
        f"ingest about {(m.stored - m.live) / max(produced, 1):.1f}s behind"
    )
    for label, rate in (
        ("ingest stored (its stats log)", m.ingest_rate),
        ("alerts evaluated (its stats log)", m.alerts_rate),
    ):
        shown = f"{rate:>9,.0f}" if rate is not None else "        ?"
        behind = ""
        if rate is not None and rate < 0.95 * produced:
            behind = f"   NOT KEEPING UP: its backlog grows {produced - rate:,.0f}/s"
        print(f"  {label:44} {shown}{behind}")
    if produced < 0.95 * offered:
        print(
            f"  NOT SUSTAINED: {produced:,.0f} of {offered:,.0f} readings/s offered "
            f"({produced / offered:.0%}) with everything on this machine"
        )
    events = ", ".join(f"{k} {v}" for k, v in sorted(m.probes.background_events.items()))
    print(f"  alert events of the fleet's own devices: {events or 'none'}")

    ncpu = os.cpu_count() or 1
    total = sum(m.cpu.values())
    print(f"\nCPU in the window ({ncpu} cores)           seconds   share of one core")
    for name, sec in sorted(m.cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {name:36} {sec:7.1f}   {sec / w:6.1%}")
    print(
        f"  {'all of them':36} {total:7.1f}   {total / w:6.1%} "
        f"({total / (ncpu * w):.0%} of the machine)"
    )

    res = m.probes
    alert, base = res.latencies(res.alerted), res.latencies(res.echoed)
    print("\nlatency from publish (ms)                  p50       p99       max   arrived")
    for label, lat in (
        ("baseline: probe telemetry from broker", base),
        ("alert: `raised` on {p}/PROBE/alerts", alert),
    ):
        arrived = sum(not math.isinf(x) for x in lat)
        print(
            f"  {label:38} {ms(percentile(lat, 50))}  {ms(percentile(lat, 99))}  "
            f"{ms(max(lat))}   {arrived}/{len(lat)}"
        )
    a50, a99 = percentile(alert, 50), percentile(alert, 99)
    b50, b99 = percentile(base, 50), percentile(base, 99)
    ratio = [
        f"{a / b:.1f}x" if math.isfinite(a) and math.isfinite(b) else "n/a"
        for a, b in ((a50, b50), (a99, b99))
    ]
    print(f"  ratio alert/baseline: p50 {ratio[0]}, p99 {ratio[1]}")
    came = sorted(x for x in alert if math.isfinite(x))
    if 0 < len(came) < len(alert):
        print(
            f"  the {len(came)} alerts that arrived took {came[0]:.2f}-{came[-1]:.2f}s;"
            f" {len(alert) - len(came)} were still queued when the bench stopped waiting"
        )

    # a service that keeps up has a flat latency; one that falls behind, a growing one
    print("\nalert latency over the window     p50 ms    max ms   arrived")
    sent = list(res.sent.values())
    slices = min(6, len(sent))
    for k in range(slices):
        lo, hi = k * len(sent) // slices, (k + 1) * len(sent) // slices
        part = alert[lo:hi]
        arrived = sum(not math.isinf(x) for x in part)
        print(
            f"  probes sent at {sent[lo] - res.start:5.1f}-{sent[hi - 1] - res.start:5.1f}s"
            f" {ms(percentile(part, 50), 9)} {ms(max(part), 9)}   {arrived}/{len(part)}"
        )

    verdict = "met" if a99 < TARGET_P99_S else "NOT met"
    print(
        f"\ntarget p99 < {TARGET_P99_S * 1000:.0f} ms with {offered:,.0f} readings/s offered "
        f"({produced:,.0f} achieved): {verdict}"
        + (
            f" (p99 {a99 * 1000:.0f} ms)"
            if math.isfinite(a99)
            else " (more than 1% of the probes raised no alert in time)"
        )
    )


# -- the run ------------------------------------------------------------------------
async def bench(args: argparse.Namespace, work: Path) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    # SIGTERM like Ctrl-C: unwind through the `finally` below, which stops everything
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    mq = MosquittoServer(work / "mosquitto")
    influx_server = InfluxServer(work / "influxdb")
    services: list[Service] = []
    try:
        mq.start()
        influx_server.start()
        ingest_yaml, alerts_yaml = write_configs(work, mq, influx_server)
        sw = [sys.executable, "-m", "sitewatch.programs.cli"]
        shape = FleetShape.for_rate(args.rate, args.device_rate)
        ingest = Service("ingest", [*sw, "ingest", "-c", str(ingest_yaml)], work / "ingest.log")
        alerts = Service(
            "alerts", [*sw, "alerts", "serve", "-c", str(alerts_yaml)], work / "alerts.log"
        )
        fleet = Service(
            "fleet",
            [
                *sw,
                "simulate",
                "--host",
                mq.host,
                "--port",
                str(mq.port),
                "--prefix",
                PREFIX,
                "--sites",
                str(shape.sites),
                "--devices",
                str(shape.devices),
                "--rate",
                f"{shape.device_rate:g}",
                "--batch-items",
                str(BATCH_ITEMS),
            ],
            work / "fleet.log",
        )
        for service, ready in (
            (ingest, b"ingest connected"),
            (alerts, b"alerts connected"),
            (fleet, b"simulating"),
        ):
            services.append(service)
            await service.started(ready)
        probes = max(1, round(args.duration * args.probe_rate))
        print(
            f"background: sitewatch simulate, {shape} = {shape.rate:,.0f} readings/s "
            f"offered in {BATCH_ITEMS}-item batches; ingest and alerts serve running"
        )
        print(
            f"probes: {probes} overload readings at {args.probe_rate:g}/s on average "
            f"(random spacing) after {args.warmup:g}s of warm-up",
            flush=True,
        )
        await asyncio.sleep(args.warmup)
        for s in services:
            s.check_running()

        settings = mqtt.MqttSettings(host=mq.host, port=mq.port, topic_prefix=PREFIX)
        probe_topic = f"{PREFIX}/{PROBE_SITE}/{PROBE_GATEWAY}/telemetry"
        res = ProbeResults()
        async with (
            mqtt.Client(settings, client_id="bench-probe-sub") as sub,
            mqtt.Client(settings, client_id="bench-probe-pub") as pub,
            InfluxClient(InfluxSettings(url=influx_server.url, database=DATABASE)) as db,
        ):
            await sub.subscribe(probe_topic, f"{PREFIX}/+/alerts", qos=1)
            receiver = asyncio.create_task(receive(sub, probe_topic, res))
            try:
                assert mq.proc is not None and influx_server.proc is not None
                pids = {
                    "sitewatch alerts serve": alerts.pid,
                    "sitewatch ingest": ingest.pid,
                    "sitewatch simulate (the load)": fleet.pid,
                    "mosquitto": mq.proc.pid,
                    "influxd": influx_server.proc.pid,
                    "this bench (probe)": os.getpid(),
                }
                cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
                t0 = time.time()
                await run_probes(pub, probe_topic, probes, 1 / args.probe_rate, res)
                t1 = time.time()
                cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in pids.items()}
                live = await fleet_readings(db, int(t0 * 1000), int(t1 * 1000))
                # stragglers: the load stays on while the last alerts are awaited
                deadline = time.monotonic() + args.timeout
                while len(res.alerted) < probes and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                for s in services:
                    s.check_running()
                fleet.stop()
                stored, drain_s = await settled_count(db, int(t0 * 1000), int(t1 * 1000))
            finally:
                receiver.cancel()
                with contextlib.suppress(asyncio.CancelledError, mqtt.MqttError):
                    await receiver

        if not res.alerted:
            print(
                f"\nno probe alert arrived within {args.timeout:g}s after the last probe;"
                f" the alert service's log ends:\n{alerts.log_tail()}"
            )
        report(
            Measured(
                window_s=t1 - t0,
                shape=shape,
                stored=stored,
                live=live,
                drain_s=drain_s,
                cpu=cpu,
                probes=res,
                ingest_rate=counter_rate(ingest.log_path, INGEST_STORED, t0, t1),
                alerts_rate=counter_rate(alerts.log_path, ALERTS_EVALUATED, t0, t1),
            )
        )
        return 0 if res.alerted else 1
    finally:
        for s in reversed(services):
            s.stop()
        mq.stop()
        influx_server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--rate",
        type=float,
        default=20_000,
        help="background readings/s offered by the fleet (default 20000)",
    )
    ap.add_argument(
        "--device-rate",
        type=float,
        default=10,
        help="readings/s per simulated device at most; sites of 50 devices are "
        "added to reach --rate (default 10)",
    )
    ap.add_argument(
        "--duration",
        type=float,
        default=60,
        help="seconds of probing: the measurement window (default 60)",
    )
    ap.add_argument(
        "--probe-rate", type=float, default=5, help="probes per second, on average (default 5)"
    )
    ap.add_argument(
        "--warmup",
        type=float,
        default=5,
        help="seconds of background load before the first probe (default 5)",
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=30,
        help="seconds to wait for the last alerts after the last probe (default 30)",
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep configs, logs and server state in this folder (default: a "
        "temporary one, removed afterwards)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2000 readings/s for 10 s after 3 s of warm-up",
    )
    args = ap.parse_args()
    if args.quick:
        args.rate, args.duration, args.warmup, args.timeout = 2000, 10, 3, 10
    return run_in_workdir(bench, args, "sw-bench-alerts-")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (KeyboardInterrupt, asyncio.CancelledError):  # all it started is stopped
        print("interrupted", file=sys.stderr)
        sys.exit(130)

"""bench/api_latency: p50/p99 of the API's latest-readings and alert-list requests.

What is measured: the time a client waits for the whole answer to ``GET
/sites/{site}/latest`` (the latest reading of every device of a random site: an
InfluxQL query), ``GET /alerts?site=...&state=open&limit=50`` (a random site's open
alerts) and ``GET /alerts?limit=50`` (the county-wide list: the newest 50 and the
total), while 50 clients (``--clients``) send requests back to back, each on its own
keep-alive connection. Each kind is measured on its own, one after the other, for
``--duration`` seconds after a warm-up. Any answer other than 2xx, and any failed
request, is an error: they are counted per kind, the first few are shown, and the
bench exits 1.

Against what: the real ``sitewatch api`` (uvicorn, one process, log level INFO: as
deployed) on a real InfluxDB holding a 50-site fleet (``--sites``; 50 devices a site in
``sitewatch simulate``'s mix, an hour of its signal models' readings written in
ingest's own line format: one measurement per profile, tags site/gateway/device) and an
alert store (SQLite in the run's folder, or ``--postgres``) holding 80 alerts a site
over 30 days, written through ``AlertStore.apply`` as the alert service does: most
resolved, 5 a site open, some acknowledged or escalated to the county. The clients
authenticate with an API key of role ``county_supervisor`` (sees every site). The
per-caller rate limit is disabled (``rate_limit: {enabled: false}``): with it, its 20
requests/s per caller is what would be measured.

Baseline, in the same run: ``GET /health`` (no authentication, no database) under the
same 50 clients, measured first and last: the floor set by the HTTP stack and by the
load generator. Printed: p50/p99/max and the rate per kind, the ratio of each against
/health's p50/p99, the errors, and per kind the CPU of the API process, the load
generator, influxd (and PostgreSQL), this bench and the rest of the machine, with the
API's and the generator's CPU per request.

The load generator is a child process (``--generators`` of them) running the clients
on asyncio, with httpx by default; it shares the machine's cores with the API and
influxd, so its CPU is printed next to theirs. httpx costs about 1 ms of CPU per
request, which makes the generator the limit for /health: ``--client raw`` writes the
requests by hand on asyncio streams (~0.1 ms each), leaving the cores to the API.

    .venv/bin/python bench/api_latency.py                    # 50 clients, 30 s per kind
    .venv/bin/python bench/api_latency.py --quick            # smoke run: 2 s per kind
    .venv/bin/python bench/api_latency.py --client raw       # the lightest clients
    .venv/bin/python bench/api_latency.py --postgres         # the stores on PostgreSQL
    .venv/bin/python bench/api_latency.py --kinds latest --duration 60
    .venv/bin/python bench/api_latency.py --workdir /tmp/run  # keep configs and logs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import random
import re
import secrets
import signal
import sys
import time
import types
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from childproc import (  # bench/childproc.py
    Service,
    cpu_seconds,
    machine_busy_seconds,
    run_in_workdir,
)

DATABASE = "bench_api"
#: the request kinds, in the order they are measured (the baseline, health, first and last)
KINDS = {
    "health": "GET /health",
    "latest": "GET /sites/{site}/latest",
    "alerts_site": "GET /alerts?site={site}&state=open&limit=50",
    "alerts_county": "GET /alerts?limit=50",
}
DAY_MS = 86_400_000
#: the processes whose CPU is reported
API, GENERATOR = "API (sitewatch api)", "generator"


# -- the load generator (a child process: ``--generator``) ----------------------------
def target(kind: str, rng: random.Random, sites: list[str]) -> tuple[str, dict[str, Any]]:
    """Path and query of one request of ``kind``."""
    if kind == "health":
        return "/health", {}
    if kind == "latest":
        return f"/sites/{rng.choice(sites)}/latest", {}
    if kind == "alerts_site":
        return "/alerts", {"site": rng.choice(sites), "state": "open", "limit": 50}
    if kind == "alerts_county":
        return "/alerts", {"limit": 50}
    raise ValueError(kind)


@dataclass
class PhaseResult:
    """What the clients of one generator saw in the measurement window of one kind."""

    latencies: list[float] = field(default_factory=list)  # seconds, 2xx and errors alike
    statuses: Counter[str] = field(default_factory=Counter)  # "200", "503", "ReadTimeout"
    samples: list[str] = field(default_factory=list)  # the first few errors, for the reader

    def to_json(self) -> dict[str, Any]:
        return {
            "latencies": self.latencies,
            "statuses": dict(self.statuses),
            "samples": self.samples,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PhaseResult:
        return cls(list(d["latencies"]), Counter(d["statuses"]), list(d["samples"]))

    def merge(self, other: PhaseResult) -> None:
        self.latencies += other.latencies
        self.statuses.update(other.statuses)
        self.samples += other.samples[: max(0, 5 - len(self.samples))]

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if not s.startswith("2"))


class RawClient:
    """The lightest client: HTTP/1.1 GETs written by hand on one keep-alive connection,
    answers read by their Content-Length (what uvicorn sends for these routes). For
    comparing with httpx: it spends a fraction of httpx's CPU per request."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": parsed.netloc, **headers}.items())
        self.conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str, params: dict[str, Any]) -> tuple[str, bytes]:
        if params:
            path += "?" + urllib.parse.urlencode(params)
        try:
            if self.conn is None:
                self.conn = await asyncio.open_connection(self.host, self.port)
            reader, writer = self.conn
            writer.write(f"GET {path} HTTP/1.1\r\n{self.head}\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = _CONTENT_LENGTH.search(head)
            if length is None:
                raise ValueError(f"no content-length in {head[:300]!r}")
            body = await reader.readexactly(int(length.group(1)))
            if _CLOSE.search(head):
                await self.aclose()
            return head[9:12].decode(), body
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            await self.aclose()
            return type(exc).__name__, str(exc).encode()

    async def aclose(self) -> None:
        if self.conn is not None:
            self.conn[1].close()
            self.conn = None


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)


class HttpxClient:
    """An httpx.AsyncClient limited to one keep-alive connection."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.client = httpx.AsyncClient(
            base_url=url,
            headers=headers,
            timeout=httpx.Timeout(30.0),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def get(self, path: str, params: dict[str, Any]) -> tuple[str, bytes]:
        try:
            r = await self.client.get(path, params=params)
            return str(r.status_code), r.content
        except httpx.HTTPError as exc:
            return type(exc).__name__, str(exc).encode()

    async def aclose(self) -> None:
        await self.client.aclose()


async def client_loop(
    client: RawClient | HttpxClient,
    kind: str,
    sites: list[str],
    rng: random.Random,
    measure: float,
    end: float,
    out: PhaseResult,
) -> None:
    """Requests back to back until ``end`` (time.monotonic()); those started from
    ``measure`` on are recorded."""
    while (start := time.monotonic()) < end:
        path, params = target(kind, rng, sites)
        t0 = time.perf_counter()
        status, body = await client.get(path, params)
        latency = time.perf_counter() - t0
        if start < measure:
            continue
        out.latencies.append(latency)
        out.statuses[status] += 1
        if not status.startswith("2") and len(out.samples) < 5:
            out.samples.append(f"{status} {path} {params}: {body[:200]!r}")


def spare_sniffio_lookups() -> bool:
    """httpcore asks which async library runs (``import sniffio``) 3-4 times a request;
    sniffio is not installed here, so each is a failed import that searches sys.path
    (~45 us). In the generator process only, a stand-in answers "asyncio" (true: it runs
    asyncio), so that the clients cost less CPU. Returns whether it was needed."""
    if importlib.util.find_spec("sniffio") is not None:
        return False
    stand_in = types.ModuleType("sniffio")
    stand_in.current_async_library = lambda: "asyncio"  # type: ignore[attr-defined]
    sys.modules["sniffio"] = stand_in
    return True


async def generator_main() -> int:
    """One load-generator process: its clients, one keep-alive connection each, run the
    phases the bench sends on stdin (one JSON line each) and answer with the results."""
    spec = json.loads(sys.stdin.readline())
    if spec["spare_sniffio"]:
        spare_sniffio_lookups()
    sites: list[str] = spec["sites"]
    rng = random.Random(spec["seed"])
    kind = RawClient if spec["client"] == "raw" else HttpxClient
    clients = [kind(spec["url"], {"X-API-Key": spec["key"]}) for _ in range(spec["clients"])]
    try:
        print("ready", flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            phase = json.loads(line)
            await asyncio.sleep(max(0.0, phase["start"] - time.monotonic()))
            res = PhaseResult()
            await asyncio.gather(
                *(
                    client_loop(
                        c,
                        phase["kind"],
                        sites,
                        random.Random(rng.random()),
                        phase["measure"],
                        phase["end"],
                        res,
                    )
                    for c in clients
                )
            )
            print(json.dumps(res.to_json()), flush=True)
    finally:
        for c in clients:
            await c.aclose()
    return 0


@dataclass
class Generator:
    """A load-generator process, driven over its stdin/stdout."""

    proc: asyncio.subprocess.Process

    @classmethod
    async def start(
        cls,
        url: str,
        key: str,
        clients: int,
        sites: list[str],
        seed: int,
        client: str,
        spare_sniffio: bool,
    ) -> Generator:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).resolve()),
            "--generator",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=256 * 1024 * 1024,
        )
        g = cls(proc)
        g.send(
            {
                "url": url,
                "key": key,
                "clients": clients,
                "sites": sites,
                "seed": seed,
                "client": client,
                "spare_sniffio": spare_sniffio,
            }
        )
        if await g.readline() != "ready":
            raise RuntimeError("a load generator did not start")
        return g

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")

    async def readline(self) -> str:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError("a load generator exited")
        return line.decode().strip()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


# -- the data -----------------------------------------------------------------------
@dataclass(frozen=True)
class Fleet:
    """The simulated fleet: per site its gateway and (device, profile) pairs."""

    sites: dict[str, tuple[str, list[tuple[str, str]]]]

    @classmethod
    def build(cls, sites: int, devices: int) -> Fleet:
        from simulators.fleet import FleetOptions, build_fleet

        gws = build_fleet(FleetOptions(sites=sites, devices=devices), time.time())
        return cls({g.site: (g.gateway, [(d.device, d.profile) for d in g.devices]) for g in gws})


def fleet_lines(
    sites: int, devices: int, history_s: float, step_s: float, now: float
) -> Iterator[tuple[list[str], int]]:
    """Line protocol for the fleet's history, per site (and the items ingest would have
    refused): the readings of ``sitewatch simulate``'s signal models every ``step_s`` or
    the profile's sample interval if longer, the last one at ``now``, formatted by
    ingest's own decoder (one measurement per profile, tags site/gateway/device)."""
    from simulators.fleet import FleetOptions, build_fleet
    from sitewatch.core import contract
    from sitewatch.core.decode import BatchDecoder, TimeWindow
    from sitewatch.core.profiles import load_profiles
    from sitewatch.core.topics import GatewayChannel

    profiles = load_profiles(None)
    decoder = BatchDecoder(
        contract.TelemetryCodec(profiles),
        TimeWindow(max_future_ms=300_000, retention_ms=730 * DAY_MS),
    )
    now_ms = int(now * 1000)
    batch_no = now_ms
    for g in build_fleet(FleetOptions(sites=sites, devices=devices), now - history_s):
        items: list[contract.TelemetryItem] = []
        for dev in g.devices:
            every = max(step_s, profiles[dev.profile].sample_interval_s)
            for k in range(int(history_s // every), -1, -1):
                t = now - k * every
                values = dev.sample(t)
                if values is not None:
                    items.append(
                        contract.TelemetryItem(
                            device=dev.device,
                            profile=dev.profile,
                            ts=int(t * 1000),
                            seq=now_ms - k,
                            values=values,
                        )
                    )
        lines: list[str] = []
        refused = 0
        for i in range(0, len(items), 50):
            batch_no += 1
            payload = contract.encode(
                contract.TelemetryBatchOut(
                    v=1, batch=batch_no, sent=now_ms, items=items[i : i + 50]
                )
            )
            d = decoder.decode(GatewayChannel.TELEMETRY, g.site, g.gateway, payload, now_ms)
            lines += d.lines
            refused += len(d.rejected)
        yield lines, refused


async def fill_influx(
    url: str, sites: int, devices: int, history_s: float, step_s: float
) -> tuple[int, int]:
    """Write the fleet's history; returns (points written, items refused)."""
    from sitewatch.core.influx import InfluxClient, InfluxSettings

    written = refused = 0
    async with InfluxClient(InfluxSettings(url=url, database=DATABASE)) as db:
        await db.ensure_database()
        pending: set[asyncio.Task[None]] = set()
        for lines, bad in fleet_lines(sites, devices, history_s, step_s, time.time()):
            refused += bad
            for i in range(0, len(lines), 5000):
                if len(pending) >= 2:
                    _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                chunk = lines[i : i + 5000]
                pending.add(asyncio.create_task(db.write(("\n".join(chunk) + "\n").encode())))
                written += len(chunk)
        for t in pending:
            await t
    return written, refused


@dataclass
class AlertCounts:
    total: int = 0
    open: int = 0
    county: int = 0
    acked: int = 0
    history: int = 0
    per_site_open: dict[str, int] = field(default_factory=dict)


def fill_alerts(
    url: str, fleet: Fleet, per_site: int, open_per_site: int, rng: random.Random
) -> AlertCounts:
    """Alerts of the fleet's devices over the last 30 days, through the alert store as
    the alert service records them: raised, cleared and resolved after a hold time,
    except the newest ``open_per_site`` of each site (one per device and rule group at
    most, as the engine guarantees); one open alert per site acknowledged, the open
    alarms older than 30 minutes escalated to the county."""
    from sqlalchemy import func, select

    from sitewatch.core.profiles import load_profiles
    from sitewatch.domains.alertrecords.model import Change, EventKind, Level, State
    from sitewatch.domains.alertrecords.store import AlertRow, AlertStore

    profiles = load_profiles(None)
    store = AlertStore(url)
    store.create_schema()
    now = int(time.time() * 1000)
    counts = AlertCounts()
    try:
        for site, (gateway, devices) in fleet.sites.items():
            times = sorted(rng.randint(now - 30 * DAY_MS, now - 600_000) for _ in range(per_site))
            busy: dict[tuple[str, str], int] = {}  # (device, group) -> free again at
            changes: list[Change] = []
            open_ids: list[str] = []
            for i, at in enumerate(times):
                stays_open = i >= per_site - open_per_site
                for _ in range(50):  # a device and rule whose group has no open alert
                    device, profile = rng.choice(devices)
                    rule = rng.choice(profiles[profile].rules)
                    group = rule.group or rule.id
                    if busy.get((device, group), 0) < at:
                        break
                else:
                    continue
                limit = getattr(rule, "value", None)
                value = (
                    round(limit * rng.uniform(1.0, 1.3), 2)
                    if isinstance(limit, float | int) and not isinstance(limit, bool)
                    else None
                )
                alert_id = uuid.UUID(int=rng.getrandbits(128)).hex
                where = (site, gateway, device, profile, group)
                changes.append(
                    Change(
                        EventKind.RAISED,
                        alert_id,
                        at,
                        *where,
                        rule=rule.id,
                        severity=rule.severity.value,
                        title=rule.title,
                        value=value,
                        limit=limit,
                    )
                )
                if stays_open:
                    busy[(device, group)] = now * 2
                    open_ids.append(alert_id)
                    continue
                cleared = min(at + rng.randint(60_000, 3 * 3_600_000), now - 300_000)
                resolved = cleared + rng.randint(60_000, 240_000)
                changes += [
                    Change(EventKind.CLEARED, alert_id, cleared, *where),
                    Change(EventKind.RESOLVED, alert_id, resolved, *where),
                ]
                busy[(device, group)] = resolved
            changes.sort(key=lambda c: c.at)
            store.apply(changes, now)
            if open_ids:
                store.acknowledge(open_ids[0], "user:officer", "crew informed", now)
        store.escalate_due(now, {"alarm": 1800, "warning": None})
        with store.engine.connect() as c:
            counts.total = c.scalar(select(func.count()).select_from(AlertRow)) or 0
            not_resolved = AlertRow.state != State.RESOLVED.value
            counts.open = c.scalar(select(func.count()).where(not_resolved)) or 0
            counts.county = (
                c.scalar(
                    select(func.count()).where(not_resolved, AlertRow.level == Level.COUNTY.value)
                )
                or 0
            )
            counts.acked = c.scalar(select(func.count()).where(AlertRow.acked_at.is_not(None))) or 0
            counts.per_site_open = {
                s: n
                for s, n in c.execute(
                    select(AlertRow.site, func.count()).where(not_resolved).group_by(AlertRow.site)
                )
            }
        counts.history = store.head()
    finally:
        store.dispose()
    return counts


def add_key(url: str, fleet: Fleet) -> str:
    """A ``county_supervisor`` API key (every site), its tables created first, and the
    fleet's sites in the registry (the API answers 404 for a site it does not know)."""
    from sqlalchemy.orm import Session

    from sitewatch.core.db import make_engine
    from sitewatch.domains import accounts
    from sitewatch.domains.registry import SiteRow
    from sitewatch.domains.schema import create_tables

    engine = make_engine(url)
    try:
        create_tables(engine)
        with Session(engine) as s:
            now = int(time.time() * 1000)
            s.add_all(
                SiteRow(
                    id=site,
                    name=site,
                    county="bench",
                    project_type="building",
                    latitude=34.8,
                    longitude=114.8,
                    planned_headcount=None,
                    created_at=now,
                )
                for site in fleet.sites
            )
            _, key = accounts.add_api_key(s, "bench", "county_supervisor")
            s.commit()
        return key
    finally:
        engine.dispose()


def write_config(work: Path, port: int, influx_url: str, database_url: str) -> Path:
    conf = {
        "environment": "production",
        "host": "127.0.0.1",
        "port": port,
        "influx": {"url": influx_url, "database": DATABASE},
        "database_url": database_url,
        "snapshots_dir": str(work / "snapshots"),
        "auth": {"secret_key": secrets.token_hex(32)},
        # the bench's one API key would be limited to 20 requests/s otherwise
        "rate_limit": {"enabled": False},
        "log_level": "INFO",
    }
    path = work / "api.yaml"
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    return path


async def wait_healthy(api: Service, url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as c:
        while True:
            api.check_running()
            with contextlib.suppress(httpx.HTTPError):
                if (await c.get("/health")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not answer /health:\n{api.log_tail()}")
            await asyncio.sleep(0.1)


async def sanity_check(
    url: str, key: str, fleet: Fleet, devices: int, alerts: AlertCounts
) -> dict[str, int]:
    """One request of each kind, its answer checked against the data; returns the
    size of each answer's body."""
    site = next(iter(fleet.sites))
    sizes: dict[str, int] = {}
    problems: list[str] = []
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=30.0) as c:
        for kind in KINDS:
            path, params = target(kind, random.Random(0), [site])
            r = await c.get(path, params=params)
            sizes[kind] = len(r.content)
            if r.status_code != 200:
                problems.append(f"{kind}: HTTP {r.status_code} {r.text[:300]}")
                continue
            body = r.json()
            if kind == "latest" and len(body) != devices:
                problems.append(f"latest: {len(body)} readings for {devices} devices")
            elif kind == "alerts_site" and body["total"] != alerts.per_site_open.get(site, 0):
                problems.append(
                    f"alerts_site: total {body['total']}, "
                    f"{alerts.per_site_open.get(site, 0)} open in the store"
                )
            elif kind == "alerts_county" and (
                body["total"] != alerts.total or len(body["items"]) != 50
            ):
                problems.append(
                    f"alerts_county: total {body['total']}, "
                    f"{len(body['items'])} items; {alerts.total} in the store"
                )
    if problems:
        raise RuntimeError("the API's answers do not match the data:\n  " + "\n  ".join(problems))
    return sizes


# -- the report ---------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Phase:
    kind: str
    window_s: float
    result: PhaseResult
    cpu: dict[str, float]  # CPU seconds in the window per process (group)


def report(phases: list[Phase], generators: int, clients: int) -> int:
    """Print latencies, ratios, errors and CPU; returns the number of errors."""
    base = PhaseResult()
    for p in phases:
        if p.kind == "health":
            base.merge(p.result)
    b50, b99 = percentile(base.latencies, 50), percentile(base.latencies, 99)

    print(
        f"\n{clients} clients, requests back to back      p50 ms   p99 ms   max ms   "
        f"req/s   ratio p50   ratio p99   errors"
    )
    for p in phases:
        lat = p.result.latencies
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        label = KINDS[p.kind] + (" (baseline)" if p.kind == "health" else "")
        ratios = (
            "        -           -"
            if p.kind == "health"
            else f"{p50 / b50:8.1f}x   {p99 / b99:8.1f}x"
        )
        print(
            f"  {label:44} {p50 * 1000:7.1f}  {p99 * 1000:7.1f}  "
            f"{max(lat, default=math.nan) * 1000:7.1f}  {len(lat) / p.window_s:6.0f}"
            f"   {ratios}   {p.result.errors:6d}"
        )
    print(
        f"  baseline for the ratios: both /health phases ({len(base.latencies):,} "
        f"requests): p50 {b50 * 1000:.1f} ms, p99 {b99 * 1000:.1f} ms"
    )

    errors = 0
    for p in phases:
        if p.result.errors:
            errors += p.result.errors
            print(
                f"\nERRORS in {KINDS[p.kind]}: "
                + ", ".join(f"{s}: {n}" for s, n in sorted(p.result.statuses.items()))
            )
            for s in p.result.samples:
                print(f"  {s}")

    ncpu = os.cpu_count() or 1
    names = list(phases[0].cpu)
    short = {n: n.split(" (")[0] for n in names}
    print(
        f"\nCPU in the window: share of one core per process ({ncpu} cores), and CPU ms per request"
    )
    print(
        f"  {'':44}"
        + "".join(f"{short[n]:>11}" for n in names)
        + "    machine   API ms/req   generator ms/req"
    )
    for p in phases:
        total = sum(p.cpu.values())
        n_req = max(1, len(p.result.latencies))
        print(
            f"  {KINDS[p.kind]:44}"
            + "".join(f"{p.cpu[n] / p.window_s:11.0%}" for n in names)
            + f"{total / (ncpu * p.window_s):11.0%}"
            + f"{p.cpu[API] / n_req * 1000:13.2f}"
            + f"{p.cpu[GENERATOR] / n_req * 1000:19.2f}"
        )
    other = max(p.cpu["other"] / p.window_s for p in phases)
    if other > 0.1:
        print(
            f"  other processes on this machine took up to {other:.0%} of a core during "
            "the run: the figures are not those of an idle machine"
        )
    gen = [p.cpu[GENERATOR] / p.window_s / generators for p in phases]
    if max(gen) > 0.85:
        print(
            f"  the load generator used up to {max(gen):.0%} of a core per process: it "
            "is near saturation, so client-side waiting is in the figures "
            f"(try --generators {generators + 1})"
        )
    return errors


# -- the run ------------------------------------------------------------------------
async def bench(args: argparse.Namespace, work: Path) -> int:
    from sitewatch.programs.localstack import InfluxServer, PostgresServer, free_port

    main_task = asyncio.current_task()
    assert main_task is not None
    # SIGTERM like Ctrl-C: unwind through the `finally` below, which stops everything
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    influx_server = InfluxServer(work / "influxdb")
    pg = PostgresServer(work / "postgres") if args.postgres else None
    api: Service | None = None
    generators: list[Generator] = []
    rng = random.Random(args.seed)
    try:
        influx_server.start()
        if pg is not None:
            pg.start()
            database_url = pg.url
        else:
            database_url = f"sqlite:///{work / 'sitewatch.db'}"
        store_name = "PostgreSQL" if pg is not None else "SQLite"

        t = time.monotonic()
        points, refused = await fill_influx(
            influx_server.url, args.sites, args.devices, args.history, args.step
        )
        print(
            f"fleet: {args.sites} sites x {args.devices} devices (sitewatch simulate's "
            f"mix), {args.history / 3600:g} h of history every {args.step:g} s (or the "
            f"profile's interval): {points:,} points written to InfluxDB in "
            f"{time.monotonic() - t:.1f} s in ingest's line format"
            + (f"; {refused} items refused by ingest's validation" if refused else ""),
            flush=True,
        )
        fleet = Fleet.build(args.sites, args.devices)
        t = time.monotonic()
        key = await asyncio.to_thread(add_key, database_url, fleet)
        alerts = await asyncio.to_thread(
            fill_alerts, database_url, fleet, args.alerts, args.open_alerts, rng
        )
        print(
            f"alerts ({store_name}): {alerts.total:,} over 30 days, {alerts.open} open "
            f"({alerts.county} escalated to the county, {alerts.acked} acknowledged), "
            f"{alerts.history:,} history entries; stored in {time.monotonic() - t:.1f} s",
            flush=True,
        )

        port = free_port()
        api_url = f"http://127.0.0.1:{port}"
        conf = write_config(work, port, influx_server.url, database_url)
        api = Service(
            "api",
            [sys.executable, "-m", "sitewatch.programs.cli", "api", "-c", str(conf)],
            work / "api.log",
        )
        api.start()
        await wait_healthy(api, api_url)
        sizes = await sanity_check(api_url, key, fleet, args.devices, alerts)
        print(
            f"API: sitewatch api (uvicorn, one process) on {api_url}, rate_limit "
            "disabled for the bench (else its 20 requests/s per caller is what is "
            "measured), log_level INFO (uvicorn's access log on, as deployed); "
            "authenticated with an X-API-Key of role county_supervisor"
        )
        print(
            "answers: " + ", ".join(f"{KINDS[k].split('?')[0]} {n:,} B" for k, n in sizes.items())
        )

        sites = list(fleet.sites)
        share = [
            args.clients // args.generators + (i < args.clients % args.generators)
            for i in range(args.generators)
        ]
        spare = (
            args.client == "httpx"
            and not args.plain_httpx
            and importlib.util.find_spec("sniffio") is None
        )
        generators = [
            await Generator.start(api_url, key, n, sites, rng.getrandbits(32), args.client, spare)
            for n in share
            if n > 0
        ]
        client = "httpx" if args.client == "httpx" else "raw HTTP/1.1 on asyncio streams"
        print(
            f"load: {args.clients} clients ({client}, one keep-alive connection each) in "
            f"{len(generators)} generator process(es) with asyncio, {args.duration:g} s "
            f"per kind after {args.warmup:g} s of warm-up; the generator shares the "
            f"{os.cpu_count()} cores with the API and influxd"
            + (
                "; sniffio is not installed: the generator answers httpcore's "
                "look-up for it itself (see --plain-httpx)"
                if spare
                else ""
            ),
            flush=True,
        )

        assert influx_server.proc is not None
        pids: dict[str, tuple[list[int], bool]] = {
            API: ([api.pid], False),
            GENERATOR: ([g.proc.pid for g in generators], False),
            "influxd": ([influx_server.proc.pid], False),
        }
        if pg is not None:
            assert pg.proc is not None
            pids["postgres"] = ([pg.proc.pid], True)
        pids["bench"] = ([os.getpid()], False)

        def cpu_now() -> dict[str, float]:
            cpu = {
                name: sum(cpu_seconds(p, children=tree) for p in ps)
                for name, (ps, tree) in pids.items()
            }
            # whatever else runs on the machine meanwhile (it competes for the cores)
            cpu["other"] = machine_busy_seconds() - sum(cpu.values())  # (+/- a tick)
            return cpu

        phases: list[Phase] = []
        for kind in ("health", *args.kinds, "health"):
            start = time.monotonic() + 0.2
            measure = start + args.warmup
            end = measure + args.duration
            for g in generators:
                g.send({"kind": kind, "start": start, "measure": measure, "end": end})
            await asyncio.sleep(measure - time.monotonic())
            cpu0 = cpu_now()
            await asyncio.sleep(end - time.monotonic())
            cpu1 = cpu_now()
            result = PhaseResult()
            for g in generators:
                result.merge(PhaseResult.from_json(json.loads(await g.readline())))
            api.check_running()
            phases.append(
                Phase(kind, end - measure, result, {n: max(0.0, cpu1[n] - cpu0[n]) for n in cpu0})
            )
            p50, p99 = percentile(result.latencies, 50), percentile(result.latencies, 99)
            print(
                f"  {KINDS[kind]:44} p50 {p50 * 1000:7.1f} ms, p99 {p99 * 1000:7.1f} ms,"
                f" {len(result.latencies) / args.duration:6.0f}/s, "
                f"{result.errors} errors",
                flush=True,
            )
        errors = report(phases, args.generators, args.clients)
        return 1 if errors else 0
    finally:
        for g in generators:
            await g.stop()
        if api is not None:
            api.stop()
        influx_server.stop()
        if pg is not None:
            pg.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--clients",
        type=int,
        default=50,
        help="concurrent clients, each sending requests back to back (default 50)",
    )
    ap.add_argument(
        "--duration", type=float, default=30, help="seconds measured per request kind (default 30)"
    )
    ap.add_argument(
        "--warmup",
        type=float,
        default=3,
        help="seconds of load before each kind's measurement (default 3)",
    )
    ap.add_argument("--sites", type=int, default=50, help="sites of the fleet (default 50)")
    ap.add_argument(
        "--devices",
        type=int,
        default=50,
        help="devices per site, sitewatch simulate's mix (default 50)",
    )
    ap.add_argument(
        "--history",
        type=float,
        default=3600,
        help="seconds of readings written per device (default 3600)",
    )
    ap.add_argument(
        "--step",
        type=float,
        default=30,
        help="seconds between a device's readings in the history, or its "
        "profile's sample interval if longer (default 30)",
    )
    ap.add_argument(
        "--alerts", type=int, default=80, help="alerts per site over the last 30 days (default 80)"
    )
    ap.add_argument(
        "--open-alerts", type=int, default=5, help="of which still open, per site (default 5)"
    )
    ap.add_argument(
        "--generators",
        type=int,
        default=1,
        help="load-generator processes the clients are spread over (default 1)",
    )
    ap.add_argument(
        "--client",
        choices=("httpx", "raw"),
        default="httpx",
        help="the clients: httpx.AsyncClient (default), or requests written by "
        "hand on asyncio streams (a fraction of httpx's CPU per request)",
    )
    measured = ",".join(k for k in KINDS if k != "health")
    ap.add_argument(
        "--kinds",
        default=measured,
        help="request kinds measured between the two /health phases, comma-"
        f"separated (default: all: {measured})",
    )
    ap.add_argument(
        "--plain-httpx",
        action="store_true",
        help="let the generator's httpcore look for the missing sniffio module "
        "on every request, as the API's own clients do (more client CPU)",
    )
    ap.add_argument(
        "--postgres",
        action="store_true",
        help="the alert store and accounts on a throwaway PostgreSQL instead of SQLite",
    )
    ap.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seed of the data and of the clients' choices (default 1)",
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
        help="smoke run: 2 s per kind after 0.5 s of warm-up, 10 min of "
        "history, 20 alerts per site",
    )
    ap.add_argument("--generator", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generator:
        return asyncio.run(generator_main())
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in args.kinds if k not in KINDS or k == "health"]
    if unknown:
        ap.error(
            f"--kinds: unknown {', '.join(unknown)}; choose among "
            f"{', '.join(k for k in KINDS if k != 'health')}"
        )
    if args.quick:
        args.duration, args.warmup, args.history, args.alerts = 2, 0.5, 600, 20
    return run_in_workdir(bench, args, "sw-bench-api-")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (KeyboardInterrupt, asyncio.CancelledError):  # all it started is stopped
        print("interrupted", file=sys.stderr)
        sys.exit(130)

"""bench/attendance: time to compute a month's day-labour sheets for a 1,000-worker site.

What is measured: ``sitewatch.domains.attendance.reports.sheets`` for one site, every team, over
a month of attendance days (``--days``, default 30 from ``--first``) - what the API and
``sitewatch attendance sheet`` call: the site's policy, the month's gate events from the
ledger, the worker registry, the hours rules per worker-day and the sheets' decimal
arithmetic. Also the same followed by the export a site office signs (XLSX with
``sitewatch.domains.attendance.export.sheets_xlsx``, CSV with ``sheets_csv``; either is skipped
with a note while that module or function does not exist).

Against what: a store (SQLite in the run's folder by default, ``--postgres`` for a
throwaway PostgreSQL on a free port, or ``--database-url`` for one of yours) holding one
site of ``--workers`` registered workers (``simulators.attendance_days``'s
workforce, teams of the usual trades) and the month of gate events its simulator makes
for them (two gates, double swipes, forgotten exits and entries, lunch breaks, night
crews, two unregistered visitors a day), appended through ``LedgerWriter.append`` as
ingest does, 500 events a transaction. Loading is timed and printed but is not the
measured figure.

Baseline, in the same run and process: a plain query that only reads the month's events,
``Ledger(session).events(site, start, end)`` with the month's attendance-day bounds - the
floor for anything that computes from the ledger. Each kind runs once unmeasured (a warm
up), then ``--repeat`` rounds, the kinds in turn within a round, each in a session of its
own; best and median are printed with the ratios of the bests against the baseline's,
then a breakdown of ``sheets`` into its steps, the peak RSS of the process and the peak of
Python allocations during one call (tracemalloc, in a separate unmeasured pass).

The bench proves it computed the right thing: the sheets' total minutes, and the minutes
of every worker-day on them, must equal what the simulator says the documented rules
credit (``Simulation.minutes()`` for registered workers). It exits 1 if they do not.

    .venv/bin/python bench/attendance.py                     # SQLite, 1,000 workers, 30 days
    .venv/bin/python bench/attendance.py --postgres          # a throwaway PostgreSQL
    .venv/bin/python bench/attendance.py --profile 25        # and cProfile's top 25 of sheets
    .venv/bin/python bench/attendance.py --database-url postgresql+psycopg://u@host/db
    .venv/bin/python bench/attendance.py --workers 200 --days 7 --repeat 3
    .venv/bin/python bench/attendance.py --quick             # CI: 100 workers, 5 days, 1 round
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import os
import pstats
import resource
import signal
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from childproc import cpu_seconds, machine_busy_seconds  # bench/childproc.py
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from simulators.attendance_days import (
    SimWorker,
    gate_events,
    simulate,
    worker_rows,
    workforce,
)
from sitewatch.core.db import make_engine
from sitewatch.domains.attendance import reports
from sitewatch.domains.attendance.hours import worker_days
from sitewatch.domains.attendance.ledger import GateBatch, Ledger, LedgerWriter
from sitewatch.domains.attendance.policy import AttendancePolicy
from sitewatch.domains.attendance.sheets import DayLabourSheet, build_sheets
from sitewatch.domains.attendance.sitepolicy import get_policy
from sitewatch.domains.attendance.workers import Workers
from sitewatch.domains.registry import SiteRow
from sitewatch.domains.schema import create_tables

SITE, GATEWAY = "S-BENCH-ATT", "GW-ATT"
#: HMAC key of the simulated ID-card numbers (a bench's throwaway key)
ID_KEY = "bench-attendance-" + "k" * 32
BASELINE = "events"
#: what is measured, in the order of a round; the baseline first
LABELS = {
    BASELINE: "baseline: Ledger.events (the month's events)",
    "sheets": "reports.sheets (all teams)",
    "xlsx": "reports.sheets + sheets_xlsx",
    "csv": "reports.sheets + sheets_csv",
}


# -- the store ------------------------------------------------------------------------
@dataclass
class Loaded:
    events: int  # gate events appended (all new)
    batches: int  # LedgerWriter.append calls, one transaction each
    seconds: float  # appending them


def load(
    url: str,
    engine: Engine,
    site: str,
    workers: list[SimWorker],
    items: list[Any],
    batch: int,
    now_ms: int,
) -> Loaded:
    """The site, its workers and the events, as the API and ingest store them."""
    with Session(engine) as s, s.begin():
        s.merge(
            SiteRow(
                id=site,
                name="Bench attendance site",
                county="Lankao",
                town="Chengguan",
                project_type="building",
                latitude=34.82,
                longitude=114.82,
                planned_headcount=len(workers),
                created_at=now_ms,
            )
        )
        Workers(s).put_many(worker_rows(workers, site, ID_KEY, now_ms))
    writer = LedgerWriter(url)
    try:
        t = time.perf_counter()
        appended = calls = 0
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            # stored a little after the chunk's last swipe, as ingest would
            appended += writer.append([GateBatch(site, GATEWAY, chunk)], chunk[-1].ts + 2000)
            calls += 1
        seconds = time.perf_counter() - t
    finally:
        writer.dispose()
    if appended != len(items):
        raise RuntimeError(f"the ledger took {appended} of {len(items)} events")
    return Loaded(appended, calls, seconds)


# -- the measured calls -----------------------------------------------------------------
@dataclass(frozen=True)
class Month:
    site: str
    first: date
    last: date
    start_ms: int
    end_ms: int
    now_ms: int


def read_events(engine: Engine, m: Month) -> int:
    with Session(engine) as s:
        return len(Ledger(s).events(m.site, m.start_ms, m.end_ms))


def compute_sheets(engine: Engine, m: Month) -> list[DayLabourSheet]:
    with Session(engine) as s:
        return reports.sheets(s, m.site, m.first, m.last, m.now_ms)


def exporter(name: str) -> tuple[Callable[[list[DayLabourSheet]], bytes] | None, str]:
    """``sitewatch.domains.attendance.export.<name>``, or None and why it is not there."""
    try:
        from sitewatch.domains.attendance import export
    except ImportError as exc:
        return None, f"sitewatch.domains.attendance.export is not importable ({exc})"
    fn = getattr(export, name, None)
    if fn is None:
        return None, f"sitewatch.domains.attendance.export has no {name}"
    return fn, ""


def with_export(
    engine: Engine, m: Month, export: Callable[[list[DayLabourSheet]], bytes]
) -> Callable[[], bytes]:
    return lambda: export(compute_sheets(engine, m))


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def ms(seconds: float) -> str:
    return f"{seconds * 1000:10,.1f}"


def breakdown(engine: Engine, m: Month, repeat: int) -> list[tuple[str, float]]:
    """The steps of ``reports.sheets`` (as ``reports.site_days`` takes them), each the
    best of ``repeat``, in one session per round."""
    steps: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def step(name: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        steps.setdefault(name, []).append(time.perf_counter() - t)

    for _ in range(repeat):
        gc.collect()
        with Session(engine) as s:
            with step("get_policy"):
                policy = get_policy(s, m.site)
            with step("Ledger.events"):
                events = Ledger(s).events(m.site, m.start_ms, m.end_ms)
            with step("Workers.infos"):
                infos = Workers(s).infos(m.site)
            with step("hours.worker_days"):
                days = worker_days(events, policy, m.now_ms)
            with step("session.get(SiteRow)"):
                row = s.get(SiteRow, m.site)
            with step("sheets.build_sheets"):
                build_sheets(
                    m.site,
                    row.name if row is not None else m.site,
                    days,
                    infos,
                    m.first,
                    m.last,
                    policy.hours_per_day,
                )
    return [(name, min(ts)) for name, ts in steps.items()]


def python_peak(fn: Callable[[], object]) -> int:
    """Peak bytes of Python allocations during one call (tracemalloc: slow, unmeasured)."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def rss_mb() -> float:
    """Peak resident set size of this process so far (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def profile(engine: Engine, m: Month, top: int) -> None:
    prof = cProfile.Profile()
    prof.enable()
    compute_sheets(engine, m)
    prof.disable()
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        text = out.getvalue()
        body = text[text.find("   ncalls") :] if "   ncalls" in text else text
        print(f"\ncProfile of one reports.sheets call, top {top} by {order}:")
        print(body.rstrip())


# -- the run ----------------------------------------------------------------------------
def check(
    sheets: list[DayLabourSheet], truth: dict[tuple[str, date], int], registered: set[str]
) -> list[str]:
    """How the sheets differ from the simulator's ground truth (nothing: they agree)."""
    want = {k: v for k, v in truth.items() if k[0] in registered}
    got = {(r.worker, r.day): r.minutes for sh in sheets for r in sh.rows if r.minutes}
    problems = []
    total, want_total = sum(sh.totals.minutes for sh in sheets), sum(want.values())
    if total != want_total:
        problems.append(f"total minutes {total:,} on the sheets, {want_total:,} by the rules")
    wrong = sorted(k for k in want.keys() | got.keys() if got.get(k) != want.get(k))
    if wrong:
        shown = ", ".join(f"{w} {d}: {got.get((w, d))} vs {want.get((w, d))}" for w, d in wrong[:5])
        problems.append(f"{len(wrong)} worker-days differ (sheet vs rules), e.g. {shown}")
    return problems


def bench(args: argparse.Namespace, work: Path) -> int:
    from sitewatch.programs.localstack import PostgresServer

    pg = PostgresServer(work / "postgres") if args.postgres else None
    engine: Engine | None = None
    try:
        if pg is not None:
            pg.start()
            url, store = pg.url, f"PostgreSQL (throwaway, port {pg.port})"
        elif args.database_url:
            url, store = args.database_url, "the database at --database-url"
        else:
            url, store = f"sqlite:///{work / 'sitewatch.db'}", "SQLite (WAL, synchronous=FULL)"
        # a database of yours may hold other data: this run's site is a new one
        site = SITE if pg is not None or not args.database_url else f"{SITE}-{uuid.uuid4().hex[:8]}"

        policy = AttendancePolicy()
        first, last = args.first, args.first + timedelta(days=args.days - 1)
        start_ms, _ = policy.day_bounds(first)
        _, end_ms = policy.day_bounds(last)
        # a day after the month: every day is over, no session is still open
        month = Month(site, first, last, start_ms, end_ms, end_ms + 86_400_000)

        t = time.perf_counter()
        workers = workforce(args.workers, seed=args.seed, today=first)
        # seed 7 by default, the simulator's own
        sim = simulate(workers, first, args.days, policy=policy, seed=args.seed + 6)
        items = gate_events(sim)
        truth = sim.minutes()
        sim_s = time.perf_counter() - t
        registered = {w.id for w in workers}
        print(
            f"site {site}: {len(workers):,} workers in "
            f"{len({w.team for w in workers})} teams, {args.days} attendance days "
            f"{first}..{last} (default policy: day from 04:00, shift 07:00-18:00, "
            f"UTC+8); simulated in {sim_s:.1f} s: {len(items):,} gate events, "
            f"{len(truth):,} credited worker-days",
            flush=True,
        )

        engine = make_engine(url)
        create_tables(engine)
        loaded = load(url, engine, site, workers, items, args.batch, month.now_ms)
        print(
            f"store: {store}; loaded {loaded.events:,} events through "
            f"LedgerWriter.append in {loaded.batches} transactions of {args.batch} in "
            f"{loaded.seconds:.1f} s ({loaded.events / loaded.seconds:,.0f} events/s; "
            "not the measured figure)",
            flush=True,
        )
        del sim, items
        gc.collect()
        rss_loaded = rss_mb()

        kinds: dict[str, Callable[[], object]] = {
            BASELINE: lambda: read_events(engine, month),
            "sheets": lambda: compute_sheets(engine, month),
        }
        notes: list[str] = []
        for kind, name in (("xlsx", "sheets_xlsx"), ("csv", "sheets_csv")):
            fn, why = exporter(name)
            if fn is None:
                notes.append(f"{LABELS[kind]}: skipped, {why}")
                continue
            kinds[kind] = with_export(engine, month, fn)

        # the warm-up round, which also gives the counts and the check
        events = read_events(engine, month)
        sheets = compute_sheets(engine, month)
        sizes: dict[str, int] = {}
        for kind in ("xlsx", "csv"):
            if kind in kinds:
                out = kinds[kind]()
                assert isinstance(out, bytes | bytearray)
                sizes[kind] = len(out)
        with Session(engine) as s:
            sd = reports.site_days(s, site, first, last, month.now_ms)
        rows = sum(len(sh.rows) for sh in sheets)
        print(
            f"month: {events:,} events, {len(sd.days):,} worker-days with events, "
            f"{len(sheets)} sheets, {rows:,} rows"
            + "".join(f", {k.upper()} {n / 1e6:.2f} MB" for k, n in sizes.items())
        )

        problems = check(sheets, truth, registered)
        total = sum(sh.totals.minutes for sh in sheets)
        if problems:
            print(
                "CHECK FAILED: the sheets do not credit what the rules credit:\n  "
                + "\n  ".join(problems)
            )
        else:
            print(
                f"check: the sheets credit {total:,} minutes ({total / 60:,.0f} h), "
                "every worker-day as the simulator's ground truth: OK"
            )
        del sheets, sd

        def cpu_now() -> tuple[float, float, float, float]:
            server = 0.0
            if pg is not None and pg.proc is not None:
                server = cpu_seconds(pg.proc.pid, children=True)
            return (time.perf_counter(), time.process_time(), server, machine_busy_seconds())

        times: dict[str, list[float]] = {k: [] for k in kinds}
        cpu0 = cpu_now()
        for _ in range(args.repeat):
            for kind, call in kinds.items():
                gc.collect()
                times[kind].append(timed(call))
        wall, own, server, busy = (b - a for a, b in zip(cpu0, cpu_now(), strict=True))
        other = max(0.0, busy - own - server)
        best = {k: min(v) for k, v in times.items()}
        print(
            f"\nbest / median of {args.repeat} (ms)                     best      median"
            "   ratio (best)"
        )
        for kind, ts in times.items():
            ratio = "     -" if kind == BASELINE else f"{best[kind] / best[BASELINE]:7.1f}x"
            print(f"  {LABELS[kind]:44} {ms(best[kind])}  {ms(statistics.median(ts))}   {ratio}")
        for note in notes:
            print(f"  {note}")
        print(
            f"  CPU over the {wall:.0f} s of the rounds, share of one core: this process "
            f"{own / wall:.0%}"
            + (f", PostgreSQL {server / wall:.0%}" if pg else "")
            + f", other processes {other / wall:.0%}"
            + (
                " (the machine was not idle: the medians, at least, are disturbed)"
                if other / wall > 0.1
                else ""
            )
        )
        print(
            f"  per worker-day: sheets {best['sheets'] / len(truth) * 1e6:.1f} us, "
            f"baseline {best[BASELINE] / len(truth) * 1e6:.1f} us; per event: "
            f"{best['sheets'] / events * 1e6:.1f} / {best[BASELINE] / events * 1e6:.1f} us"
        )

        steps = breakdown(engine, month, args.repeat)
        print(
            f"\nreports.sheets step by step (best of {args.repeat}, ms; the steps "
            "reports.site_days takes)"
        )
        for name, sec in steps:
            print(f"  {name:44} {ms(sec)}   {sec / best['sheets']:6.1%} of sheets")
        print(f"  {'sum of the steps':44} {ms(sum(sec for _, sec in steps))}")

        peak_events = python_peak(kinds[BASELINE])
        peak_sheets = python_peak(kinds["sheets"])
        print(
            f"\nmemory: peak RSS of the process {rss_mb():,.0f} MB (after simulating "
            f"and loading: {rss_loaded:,.0f} MB); Python allocations at their peak "
            f"during one call (tracemalloc): baseline {peak_events / 1e6:,.1f} MB, "
            f"sheets {peak_sheets / 1e6:,.1f} MB"
        )

        if args.profile:
            profile(engine, month, args.profile)
        return 1 if problems else 0
    finally:
        if engine is not None:
            engine.dispose()
        if pg is not None:
            pg.close()


@contextlib.contextmanager
def workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="sw-bench-attendance-") as tmp:
        yield Path(tmp)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--workers", type=int, default=1000, help="registered workers of the site (default 1000)"
    )
    ap.add_argument(
        "--days", type=int, default=30, help="attendance days of the month (default 30)"
    )
    ap.add_argument(
        "--first",
        type=date.fromisoformat,
        default=date(2026, 10, 1),
        help="the month's first attendance day (default 2026-10-01)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="measured rounds; best and median are printed (default 5)",
    )
    ap.add_argument(
        "--batch",
        type=int,
        default=500,
        help="events per LedgerWriter.append transaction while loading (default 500)",
    )
    ap.add_argument("--seed", type=int, default=1, help="seed of the simulation (default 1)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument(
        "--postgres",
        action="store_true",
        help="start a throwaway PostgreSQL on a free port (stopped and "
        "removed afterwards) instead of SQLite",
    )
    where.add_argument(
        "--database-url",
        default=None,
        help="an existing database (SQLAlchemy URL): its tables are created "
        "if missing and a new site is added; nothing is removed",
    )
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also print cProfile's top N entries of one reports.sheets call",
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the SQLite file and server logs in this folder (default: a "
        "temporary one, removed afterwards)",
    )
    ap.add_argument(
        "--quick", action="store_true", help="smoke run (CI): 100 workers, 5 days, 1 round"
    )
    args = ap.parse_args()
    if args.quick:
        args.workers, args.days, args.repeat = 100, 5, 1
    if args.workers < 1 or args.days < 1 or args.repeat < 1 or args.batch < 1:
        ap.error("--workers, --days, --repeat and --batch must be at least 1")

    def on_sigterm(_sig: int, _frame: FrameType | None) -> None:
        raise SystemExit(143)  # unwind through the `finally`s: the server is stopped

    signal.signal(signal.SIGTERM, on_sigterm)
    print(
        f"bench/attendance on {os.cpu_count()} cores, Python {sys.version.split()[0]}", flush=True
    )
    with workdir(args.workdir) as work:
        return bench(args, work)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # what it started is stopped
        print("interrupted", file=sys.stderr)
        sys.exit(130)

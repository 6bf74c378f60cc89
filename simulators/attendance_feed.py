"""Gate terminals replaying simulated attendance days into a gateway's ``http_push``
listener, the way real terminals deliver: the past days first (a backlog), then today's
swipes as their time comes. Used by ``sitewatch demo`` and ``sitewatch attendance
simulate``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import httpx

from simulators.attendance_days import SimWorker, Swipe, simulate
from sitewatch.domains.attendance.policy import AttendancePolicy

log = logging.getLogger("sitewatch.simulators.attendance")


@dataclass(frozen=True)
class FeedOptions:
    #: the gateway's listener, e.g. http://127.0.0.1:8081
    base_url: str
    #: bearer token per gate device (GATE01, GATE02)
    tokens: dict[str, str]
    days_back: int = 7
    live: bool = True
    seed: int = 7
    chunk: int = 500


def _body(swipes: list[Swipe]) -> dict[str, object]:
    return {
        "events": [
            {"worker": s.worker, "direction": s.direction, "method": s.method, "ts": s.ts}
            for s in swipes
        ]
    }


async def _deliver(client: httpx.AsyncClient, opts: FeedOptions, swipes: list[Swipe]) -> int:
    """POST each gate's swipes in order; retry what the gateway did not take."""
    sent = 0
    for gate in sorted({s.gate for s in swipes}):
        mine = [s for s in swipes if s.gate == gate]
        for i in range(0, len(mine), opts.chunk):
            part = mine[i : i + opts.chunk]
            while True:
                try:
                    r = await client.post(
                        f"{opts.base_url}/v1/push/{gate}",
                        json=_body(part),
                        headers={"Authorization": f"Bearer {opts.tokens[gate]}"},
                    )
                    if r.status_code == 202:
                        sent += len(part)
                        break
                    log.warning("gate %s: %d %s; sending again", gate, r.status_code, r.text)
                except httpx.HTTPError as exc:
                    log.warning("gate %s: %s; sending again", gate, exc)
                await asyncio.sleep(2)
    return sent


def _day(
    workers: list[SimWorker], day: date, opts: FeedOptions, policy: AttendancePolicy
) -> list[Swipe]:
    """One attendance day's swipes; the same for the same seed and day."""
    return simulate(
        workers,
        day,
        1,
        policy=policy,
        seed=opts.seed * 100_003 + day.toordinal(),
        gates=tuple(sorted(opts.tokens)),
    ).swipes


async def run_feed(
    opts: FeedOptions,
    workers: list[SimWorker],
    *,
    policy: AttendancePolicy | None = None,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    stop: asyncio.Event | None = None,
) -> int:
    """Deliver ``days_back`` past days and today's swipes so far, then (``live``) each
    swipe as it falls due, day after day until ``stop``; returns how many were sent."""
    policy = policy or AttendancePolicy()
    stop = stop or asyncio.Event()
    day = policy.day_of(now_ms()) - timedelta(days=opts.days_back)
    sent = 0
    async with httpx.AsyncClient(timeout=30) as client:
        while not stop.is_set():
            later = _day(workers, day, opts, policy)
            while later and not stop.is_set():
                now = now_ms()
                ready = [s for s in later if s.ts <= now]
                if ready:
                    later = later[len(ready) :]
                    sent += await _deliver(client, opts, ready)
                if later and not opts.live:
                    return sent  # what is due is delivered
                if later:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 5)
            if stop.is_set():
                break
            if day == policy.day_of(now_ms()) and not opts.live:
                return sent
            log.info("attendance feed: %s delivered (%d swipes so far)", day, sent)
            day += timedelta(days=1)
    return sent

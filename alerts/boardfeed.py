"""The alert service's rounds of the dashboard feed (the lines: ``board.py``).

Every ``board_interval_s`` - the first once the session is up (or after one interval
without it) and the state restored - read what the feed needs from the store, format
the lines and write them to InfluxDB. Derived state, rewritten each round: a failed
write is not kept for later, and a fault in the feed never stops the safety alerts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from contextlib import suppress
from dataclasses import replace
from datetime import date

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from alerts import board
from alerts.engine import AlertEngine
from alerts.intake import current_ms
from alerts.storecalls import StoreCalls
from sitewatch.core.influx import InfluxClient, InfluxError
from sitewatch.core.lineprotocol import join_lines
from sitewatch.domains.attendance.watch import AttendanceWatch

log = logging.getLogger("sitewatch.alerts")

#: lines per InfluxDB write of the dashboard feed (the batch size InfluxDB suggests)
BOARD_LINES_PER_WRITE = 5000


class BoardFeed:
    def __init__(
        self,
        db: Engine,
        engine: AlertEngine,
        watch: AttendanceWatch,
        in_store: StoreCalls,
        *,
        interval_s: float,
        days: int,
    ) -> None:
        self.db = db
        self.engine = engine
        self.watch = watch
        self.in_store = in_store
        self.interval_s = interval_s
        self.days = days
        #: rounds written, by outcome ("ok", "error")
        self.writes: Counter[str] = Counter()
        self._view = board.StoreView()  # the last one read: kept if the store fails
        self._written: dict[str, date] = {}  # per site: "today" of the last round
        self._store = board.Outage("reading the store")
        self._influx = board.Outage("writing to InfluxDB")

    def read(self, now_ms: int) -> board.StoreView:
        """What the dashboard feed reads from the store. Blocking: run it in a worker
        thread."""
        with Session(self.db) as s:
            return board.read_store(s, dict(self._written), now_ms, self.days)

    async def run(self, influx: InfluxClient, connected: asyncio.Event) -> None:
        """Once the session is up (or after one interval without it) and the state
        restored, then every ``interval_s``."""
        interval = self.interval_s
        with suppress(TimeoutError):
            async with asyncio.timeout(interval):  # not wait_for: see Committer.drain
                await connected.wait()
        while True:
            started = time.monotonic()
            try:
                await self.write(influx, current_ms())
            except Exception:  # a fault in the feed must never stop the safety alerts
                self.writes["error"] += 1
                log.exception("dashboard feed: round failed")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def write(self, influx: InfluxClient, now: int) -> None:
        """One round of the dashboard feed."""
        try:
            view = self._view = await self.in_store(self.read, now)
            self._store.ok()
        except SQLAlchemyError as exc:
            # limits and summaries go out all the same, with the registry as last read
            view = replace(self._view, teams=(), today={})
            self._store.failed(type(exc).__name__, "no team hours until it is back")
        # the engine is read on the event loop; the bulk of the formatting is done off it
        lines = board.site_summary_lines(self.engine, self.watch, view, now)
        lines += await asyncio.to_thread(
            board.bulk_lines, list(self.engine.limits(now)), view.teams, now
        )
        try:
            for i in range(0, len(lines), BOARD_LINES_PER_WRITE):
                await influx.write(join_lines(lines[i : i + BOARD_LINES_PER_WRITE]))
        except InfluxError as exc:
            self.writes["error"] += 1
            self._influx.failed(exc, "not kept: the next round writes it all again")
            return
        self.writes["ok"] += 1
        self._influx.ok()
        # the days written as today: next round starts there (the day just ended, once
        # more, when the attendance day has rolled over)
        self._written.update(view.today)

"""The attendance alerts' view of the store: the worker registry, policies and plans.

Read at start with today's gate events (who is on site now, not each moment of the day
again), then every ``attendance_refresh_s`` at a tick; each tick also lets the
attendance watch see time pass (a worker still on site at the end of a shift).
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from alerts.intake import Intake
from alerts.storecalls import StoreCalls
from sitewatch.domains.alertrecords.model import Change
from sitewatch.domains.attendance import reports
from sitewatch.domains.attendance.ledger import LedgerRow
from sitewatch.domains.attendance.watch import AttendanceWatch, SiteInfo

log = logging.getLogger("sitewatch.alerts")

#: what the attendance alerts read from the store: sites' workers, policies and plans,
#: and at start today's gate events
AttendanceState = tuple[dict[str, SiteInfo], list[LedgerRow]]


class AttendanceRefresh:
    def __init__(
        self,
        db: Engine,
        watch: AttendanceWatch,
        intake: Intake,
        in_store: StoreCalls,
        refresh_s: float,
    ) -> None:
        self.db = db
        self.watch = watch
        self.intake = intake
        self.in_store = in_store
        self.refresh_s = refresh_s
        self._loaded = 0.0

    def read(self, now_ms: int, *, restore: bool = False) -> AttendanceState:
        """The worker registry, policies and plans (and at start, today's gate events
        from the ledger). Blocking: run it in a worker thread."""
        with Session(self.db) as s:
            infos = reports.site_infos(s)
            today = reports.todays_gate_events(s, infos, now_ms) if restore else []
        return infos, today

    def apply(self, state: AttendanceState, now_ms: int) -> list[Change]:
        infos, today = state
        self._loaded = time.monotonic()
        derived = self.watch.update_sites(infos, now_ms)
        if today:  # at start: who is on site now, not each moment of the day again
            derived += self.watch.restore([(r.site, r.gateway, r.item()) for r in today], now_ms)
        return self.intake.observe_derived(derived, now_ms)

    async def tick(self, now: int) -> list[Change]:
        if time.monotonic() - self._loaded >= self.refresh_s:
            try:
                state = await self.in_store(self.read, now)
                return self.apply(state, now)
            except SQLAlchemyError as exc:  # keep what was loaded; the rest of the tick runs
                self._loaded = time.monotonic()
                log.warning("alerts: worker registry not readable: %s", exc)
        return self.intake.observe_derived(self.watch.tick(now), now)

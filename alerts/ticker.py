"""The alert service's time-driven work: the tick and the stats line.

Every ``tick_s``: alerts people resolved (through the API or ``sitewatch alerts``) are
forgotten by the engine; conditions that held or cleared for long enough, attendance
(the worker registry refreshed when due) and cameras gone quiet change alerts; and open
alerts still unacknowledged past their time are escalated. Every ``stats_interval_s``
a line of counters goes to the log.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError

from alerts.attendance import AttendanceRefresh
from alerts.camera import CameraWatch
from alerts.committer import Committer
from alerts.engine import AlertEngine
from alerts.intake import Intake, current_ms
from alerts.storecalls import StoreCalls
from sitewatch.domains.alertrecords.settings import AlertSettings
from sitewatch.domains.alertrecords.store import AlertStore

log = logging.getLogger("sitewatch.alerts")


class Ticker:
    def __init__(
        self,
        settings: AlertSettings,
        store: AlertStore,
        engine: AlertEngine,
        intake: Intake,
        attendance: AttendanceRefresh,
        cameras: CameraWatch,
        committer: Committer,
        in_store: StoreCalls,
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.intake = intake
        self.attendance = attendance
        self.cameras = cameras
        self.committer = committer
        self.in_store = in_store
        #: the store's history read so far (for alerts resolved by people)
        self.history_n = 0

    async def run(self) -> None:
        s = self.settings
        after = {"warning": s.escalate_after_s.warning, "alarm": s.escalate_after_s.alarm}
        while True:
            await asyncio.sleep(s.tick_s)
            now = current_ms()
            try:
                n, resolved = await self.in_store(self.store.resolved_by_people, self.history_n)
                self.history_n = n
                for alert_id in resolved:
                    self.engine.forget(alert_id)
                changes = self.engine.tick(now)
                changes += await self.attendance.tick(now)
                changes += self.intake.observe_derived(self.cameras.tick(now), now)
                if changes:
                    await self.committer.queue(changes)
                escalated, rows = await self.in_store(self.store.escalate_due, now, after)
                self.committer.committed(escalated, rows)
            except SQLAlchemyError as exc:
                log.warning("alert store failed in tick: %s", exc)

    async def log_stats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_interval_s)
            st = self.engine.stats
            d = self.committer.dispatcher
            cam = self.cameras.stats
            log.info(
                "alerts: readings=%d duplicates=%d late=%d changes=%d skipped=%d "
                "stale_wills=%d camera_items=%d camera_duplicates=%d camera_late=%d "
                "delivered=%s retries=%s failed=%s",
                st.readings,
                st.duplicates,
                st.late,
                st.changes,
                self.intake.skipped,
                st.stale_wills,
                cam.items,
                cam.duplicates,
                cam.late,
                d.stats.delivered if d else {},
                d.stats.retries if d else {},
                d.stats.failed if d else {},
            )

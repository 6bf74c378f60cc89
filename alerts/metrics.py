"""What the alert service exports to Prometheus (``sitewatch_alerts_*``; docs/metrics.md).

The engine's :class:`EngineStats` and the dispatcher's per-output counts, read when
Prometheus scrapes; the outbox (what each output still has to deliver) is counted in the
store, queried off the event loop just before the scrape.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import Metric
from sqlalchemy.exc import SQLAlchemyError

from sitewatch.core.metrics import counter, counter_by, gauge, gauge_by
from sitewatch.domains.alertrecords.model import EventKind, State

if TYPE_CHECKING:
    from alerts.service import AlertService

log = logging.getLogger("sitewatch.ingest.alerts.metrics")

P = "sitewatch_alerts_"


class AlertCollector:
    """Reads one :class:`AlertService`'s counters at scrape time."""

    def __init__(self, service: AlertService) -> None:
        self.service = service
        #: per output: (waiting, refused for good); None when the store did not answer
        self._outbox: dict[str, tuple[int, int]] | None = None

    async def refresh(self) -> None:
        """Count the outbox (a query of the store, in a worker thread)."""
        try:
            self._outbox = await asyncio.to_thread(self.service.store.outbox_counts)
        except SQLAlchemyError as exc:
            log.warning("metrics: cannot count the outbox: %s", exc)
            self._outbox = None

    def collect(self) -> Iterable[Metric]:
        svc = self.service
        st = svc.engine.stats
        d = svc.dispatcher
        outputs = list(d.outputs) if d is not None else []
        open_alerts = Counter((a.severity, a.state.value) for a in svc.engine.open_alerts())
        for severity in ("warning", "alarm"):
            for state in (State.ACTIVE, State.CLEARING):
                open_alerts.setdefault((severity, state.value), 0)
        families: list[Metric] = [
            counter(
                f"{P}readings_evaluated_total", "Readings the rules were evaluated on", st.readings
            ),
            counter(
                f"{P}readings_duplicate_total",
                "Readings seen before (same device and "
                "seq: a batch delivered again), not evaluated again",
                st.duplicates,
            ),
            counter(
                f"{P}readings_late_total",
                "Readings older than their device's newest "
                "(a backlog): evaluated apart, they never change a live alert",
                st.late,
            ),
            counter(
                f"{P}readings_unknown_profile_total",
                "Readings of a profile the service does not know",
                st.unknown_profile,
            ),
            counter(
                f"{P}skipped_total",
                "Messages and items that do not pass validation (ingest dead-letters them)",
                svc.skipped,
            ),
            counter_by(
                f"{P}internal_errors_total",
                "Messages whose handling raised (a bug), skipped, by exception type",
                "exception",
                svc.internal_errors,
            ),
            counter(
                f"{P}stale_wills_total",
                "Gateway statuses from an older boot than one already seen, ignored",
                st.stale_wills,
            ),
            counter_by(
                f"{P}changes_total",
                "Alert changes committed to the store by the service, by kind",
                "kind",
                svc.changes_by_kind,
                known=[k.value for k in EventKind if k is not EventKind.ACKNOWLEDGED],
            ),
            counter_by(
                f"{P}changes_refused_total",
                "Alert changes the store refused for "
                "good (a constraint, e.g. a second open alert for one condition): "
                "logged and left out, the rest of their batch stored",
                "kind",
                svc.refused_by_kind,
                known=[k.value for k in EventKind if k is not EventKind.ACKNOWLEDGED],
            ),
            gauge_by(
                f"{P}open",
                "Alerts not resolved, by severity and state",
                ["severity", "state"],
                open_alerts,
            ),
            counter_by(
                f"{P}deliveries_total",
                "Alert changes delivered, per output",
                "output",
                d.stats.delivered if d else {},
                known=outputs,
            ),
            counter_by(
                f"{P}delivery_retries_total",
                "Failed delivery attempts that are retried with backoff, per output",
                "output",
                d.stats.retries if d else {},
                known=outputs,
            ),
            counter_by(
                f"{P}delivery_failures_total",
                "Alert changes an output refused for good (kept in the outbox for the operator)",
                "output",
                d.stats.failed if d else {},
                known=outputs,
            ),
            gauge(
                f"{P}broker_connected",
                "1 while the service's MQTT session is up",
                1 if svc.connected.is_set() else 0,
            ),
            counter_by(
                f"{P}board_writes_total",
                "Rounds of the dashboard feed written to "
                "InfluxDB, by outcome (a failed round is not kept: the next one "
                "writes it all again)",
                "outcome",
                svc.board_writes,
                known=["ok", "error"],
            ),
        ]
        if self._outbox is not None:
            waiting = {(t,): float(w) for t, (w, _) in self._outbox.items()}
            refused = {(t,): float(f) for t, (_, f) in self._outbox.items()}
            for name in outputs:
                waiting.setdefault((name,), 0)
                refused.setdefault((name,), 0)
            families += [
                gauge_by(
                    f"{P}outbox_backlog",
                    "Alert changes an output still has to deliver (rows of the outbox)",
                    ["output"],
                    waiting,
                ),
                gauge_by(
                    f"{P}outbox_refused",
                    "Outbox rows an output refused for good, kept for the operator",
                    ["output"],
                    refused,
                ),
            ]
        return families

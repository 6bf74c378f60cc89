"""What the edge agent exports to Prometheus (``sitewatch_edge_*``; docs/metrics.md).

The agent's and the spool's own counters, read when Prometheus scrapes. The spool's
depth and oldest age come from its bookkeeping, read in a worker thread just before the
scrape, never on the event loop that samples the devices.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from prometheus_client.core import GaugeMetricFamily, Metric

from edge.drivers import DRIVERS, Driver
from sitewatch.core.metrics import counter, counter_by, gauge

if TYPE_CHECKING:
    from edge.agent import Agent

P = "sitewatch_edge_"


@runtime_checkable
class CountsFailures(Protocol):
    """A driver that counts the polls its device did not answer (modbus_tcp)."""

    failures: int


def driver_name(driver: Driver) -> str:
    """The name a driver is registered under (``devices[].driver``)."""
    for name, cls in DRIVERS.items():
        if type(driver) is cls:
            return name
    return type(driver).__name__


@dataclass(frozen=True, slots=True)
class SpoolState:
    batches: int
    readings: int
    oldest_age_s: float


class EdgeCollector:
    """Reads one :class:`Agent`'s counters at scrape time."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._spool: SpoolState | None = None

    async def refresh(self) -> None:
        """Query the spool's depth and oldest age (in a worker thread)."""
        spool = self.agent.spool
        self._spool = await asyncio.to_thread(
            lambda: SpoolState(spool.depth(), spool.readings_waiting(), spool.oldest_age_s())
        )

    def collect(self) -> Iterable[Metric]:
        a = self.agent
        spool = a.spool
        s = a.settings
        names = {d.device_id: driver_name(d) for d in a.drivers}
        read_failures: Counter[str] = Counter()
        for d in a.drivers:
            if isinstance(d, CountsFailures):
                read_failures[names[d.device_id]] += d.failures
        info = GaugeMetricFamily(
            f"{P}gateway_info",
            "The site and gateway this agent serves (always 1)",
            labels=["site", "gateway"],
        )
        info.add_metric([s.site, s.gateway], 1)
        state = self._spool
        return [
            info,
            gauge(
                f"{P}boot",
                "How many times this gateway's agent has started (kept in the spool)",
                a.boot,
            ),
            counter(
                f"{P}readings_taken_total",
                "Readings and gate events taken into the "
                "spool (the agent's own health readings included)",
                a.readings_taken,
            ),
            counter(
                f"{P}timestamps_adjusted_total",
                "Readings whose timestamp was moved 1 ms past the device's previous one",
                a.adjusted_ts,
            ),
            counter(
                f"{P}clock_steps_total",
                "Steps of the gateway's wall clock seen (against the monotonic clock)",
                a.clock.steps,
            ),
            counter(
                f"{P}clock_corrected_total",
                "Readings stamped more than clock.agree_s "
                "away from the wall clock (the timeline absorbing a step, or ingest's "
                "clock used instead of a wrong one)",
                a.clock.corrected,
            ),
            gauge(
                f"{P}clock_offset_seconds",
                "The wall clock minus ingest's clock, from the acks (NaN before the first)",
                math.nan if (offset := a.clock.offset_s()) is None else offset,
            ),
            gauge(
                f"{P}spool_dropped_readings",
                "Readings the spool lost (full, too old, "
                "disk full), in all since the spool was created. A gauge: it goes down "
                "when a batch dropped while in flight turns out stored",
                spool.dropped,
            ),
            counter(
                f"{P}spool_resets_total",
                "Corrupt spool files moved aside (kept) and "
                "started afresh, since the gateway was installed (counters file)",
                spool.resets_ever,
            ),
            counter(
                f"{P}spool_write_errors_total",
                "Spool writes that failed (disk full, "
                "I/O error); their readings are counted in spool_dropped_readings",
                spool.write_errors,
            ),
            gauge(
                f"{P}spool_disk_full",
                "1 while the spool's last write failed (disk full "
                "or I/O error): new readings are refused, counted",
                int(spool.disk_full),
            ),
            counter(
                f"{P}spool_open_failures_total",
                "Tries to open the spool that failed "
                "at start (disk full, I/O error; not corrupt): the agent waited",
                a.spool_open_failures,
            ),
            gauge(
                f"{P}spool_bytes", "Bytes of readings and batches in the spool", spool.bytes_used
            ),
            gauge(
                f"{P}spool_max_bytes",
                "The spool's size limit (spool.max_bytes)",
                spool.limits.max_bytes,
            ),
            gauge(
                f"{P}spool_used_ratio",
                "spool_bytes / spool_max_bytes (0 to 1)",
                spool.used_pct / 100,
            ),
            gauge(
                f"{P}spool_batches",
                "Batches waiting for ingest's acknowledgement",
                state.batches if state else math.nan,
            ),
            gauge(
                f"{P}spool_readings",
                "Readings in the spool, batched or not",
                state.readings if state else math.nan,
            ),
            gauge(
                f"{P}spool_oldest_age_seconds",
                "Age of the oldest reading in the spool (0 when empty)",
                state.oldest_age_s if state else math.nan,
            ),
            counter(
                f"{P}batches_sent_total", "Batches published, resends included", a.batches_sent
            ),
            counter(
                f"{P}readings_sent_total",
                "Items of the batches published, resends included",
                a.items_sent,
            ),
            counter(f"{P}batches_acked_total", "Batches acknowledged by ingest", a.batches_acked),
            counter(
                f"{P}snapshots_sent_total",
                "Camera snapshots published (each just "
                "before the batch that names it; resends included)",
                a.snapshots_sent,
            ),
            counter(
                f"{P}snapshots_failed_total",
                "Camera snapshots not kept (disk) or gone "
                "before they were sent: their events went without the picture",
                a.snapshots_failed,
            ),
            gauge(
                f"{P}broker_connected",
                "1 while the agent's MQTT connection is up",
                1 if a.connected.is_set() else 0,
            ),
            counter_by(
                f"{P}device_restarts_total",
                "Drivers that failed and were restarted, by driver",
                "driver",
                a.driver_restarts,
                known=set(names.values()),
            ),
            counter_by(
                f"{P}device_read_failures_total",
                "Polls a device did not answer, by driver (drivers that poll: modbus_tcp)",
                "driver",
                read_failures,
                known=[names[d.device_id] for d in a.drivers if isinstance(d, CountsFailures)],
            ),
        ]

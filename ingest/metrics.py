"""What ingest exports to Prometheus (``sitewatch_ingest_*``; listed in docs/metrics.md).

The counters are ingest's own (:class:`IngestStats`), read when Prometheus scrapes. Two
things nothing counted before are measured here: how long InfluxDB writes take (a
:class:`TimedInflux` hands the write pipeline the same client, timed) and the messages
ingest holds (taken from the broker, not yet acknowledged to it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import Metric, SummaryMetricFamily

from sitewatch.core.influx import InfluxClient, InfluxSettings, PermanentWriteError
from sitewatch.core.metrics import counter, counter_by, gauge
from sitewatch.core.reasons import Reason

if TYPE_CHECKING:
    from ingest.service import Ingest


@dataclass
class WriteTimes:
    """InfluxDB write attempts: how many, how long in all, the last one, refused ones."""

    count: int = 0
    seconds: float = 0.0
    last_s: float = math.nan
    refused: int = 0


class TimedInflux(InfluxClient):
    """An InfluxDB client that times every write attempt (one per chunk of points)."""

    def __init__(self, settings: InfluxSettings, times: WriteTimes) -> None:
        super().__init__(settings)
        self.times = times

    async def write(self, body: bytes) -> None:
        start = time.perf_counter()
        try:
            await super().write(body)
        except PermanentWriteError:
            self.times.refused += 1
            raise
        finally:
            took = time.perf_counter() - start
            t = self.times
            t.count, t.seconds, t.last_s = t.count + 1, t.seconds + took, took


class IngestCollector:
    """Reads one :class:`Ingest`'s counters at scrape time."""

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest

    def collect(self) -> Iterable[Metric]:
        ingest = self.ingest
        st, times = ingest.stats, ingest.write_times
        client = ingest.client
        connected = client is not None and client.is_connected
        p = "sitewatch_ingest_"
        duration = SummaryMetricFamily(
            f"{p}influx_write_duration_seconds",
            "Time of InfluxDB write requests, failed ones included",
            count_value=times.count,
            sum_value=times.seconds,
        )
        return [
            counter(
                f"{p}messages_total",
                "MQTT messages taken from the broker (batches, "
                "statuses, snapshots, messages refused whole)",
                st.messages,
            ),
            counter(f"{p}status_messages_total", "Gateway status messages taken", st.statuses),
            counter(
                f"{p}readings_received_total",
                "Items of telemetry, attendance and camera batches taken, valid or not",
                st.items_received,
            ),
            counter(f"{p}readings_stored_total", "Items written to InfluxDB", st.items_stored),
            counter_by(
                f"{p}dead_letters_total",
                "Items and messages refused and kept in the dead-letter store, by reason",
                "reason",
                st.rejected,
                known=[r.value for r in Reason],
            ),
            counter(
                f"{p}batches_acked_total",
                "Batches acknowledged to their gateway",
                st.acks_published,
            ),
            counter(f"{p}influx_writes_total", "InfluxDB writes that succeeded", st.writes),
            counter_by(
                f"{p}influx_write_errors_total",
                "InfluxDB writes that failed: "
                "retryable ones (network, 429, 5xx) are retried with backoff, "
                "access ones (401/403 token, 404 database) are held and retried "
                "until the configuration is fixed, refused ones (other 4xx) are "
                "split to dead-letter the points refused",
                "kind",
                {
                    "retryable": st.write_retries,
                    "access": st.write_access_errors,
                    "refused": times.refused,
                },
            ),
            duration,
            gauge(
                f"{p}influx_last_write_duration_seconds",
                "Time of the last InfluxDB write request (NaN before the first)",
                times.last_s,
            ),
            counter(
                f"{p}dead_letter_store_errors_total",
                "Failed inserts into the dead-letter store (retried; the acks wait)",
                st.dead_letter_retries,
            ),
            counter_by(
                f"{p}gate_events_total",
                "Valid gate events (attendance) by what the "
                "ledger did with them: appended, or already there (a resend)",
                "outcome",
                {"appended": st.gate_events_appended, "resent": st.gate_events_resent},
            ),
            counter(
                f"{p}ledger_errors_total",
                "Failed appends to the attendance ledger (retried; the acks wait)",
                st.ledger_retries,
            ),
            counter_by(
                f"{p}snapshots_total",
                "Camera snapshots stored (file and row) by "
                "whether their site had them: stored (new), or resent (already there)",
                "outcome",
                {"stored": st.snapshots_stored, "resent": st.snapshots_resent},
            ),
            counter(
                f"{p}snapshot_store_errors_total",
                "Failed attempts to store a snapshot "
                "(file or row; retried, its PUBACK and later ones wait)",
                st.snapshot_store_retries,
            ),
            counter_by(
                f"{p}internal_errors_total",
                "Messages whose handling raised (a "
                "bug), dead-lettered as internal_error and acknowledged, by exception "
                "type",
                "exception",
                st.internal_errors,
            ),
            counter(
                f"{p}dead_letters_refused_total",
                "Dead letters the store refused for good even as one row: logged, not kept",
                st.dead_letters_refused,
            ),
            counter(
                f"{p}ack_errors_total",
                "Acks that could not be built or published "
                "(logged; the gateway sends the batch again)",
                st.ack_errors,
            ),
            counter(
                f"{p}batches_resent_total",
                "Batches taken again with the content "
                "acknowledged before under their number (resends, stored again "
                "harmlessly)",
                st.batches_resent,
            ),
            counter(
                f"{p}acked_batches_errors_total",
                "Failed reads or writes of the "
                "acknowledged batches' digests (a read: the batch goes on without the "
                "reuse check; a write: retried, the acks wait)",
                st.acked_batches_retries,
            ),
            gauge(
                f"{p}messages_in_flight",
                "Messages taken from the broker and not yet acknowledged to it (being written)",
                ingest.in_flight if connected else 0,
            ),
            gauge(
                f"{p}messages_queued",
                "Messages received from the broker, not yet taken",
                client.pending_messages() if client is not None else 0,
            ),
            gauge(
                f"{p}broker_connected", "1 while ingest's MQTT session is up", 1 if connected else 0
            ),
        ]

"""Ingest counters: received, stored, rejected by reason (logged; exported as metrics later)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class IngestStats:
    messages: int = 0
    items_received: int = 0
    items_stored: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    acks_published: int = 0
    writes: int = 0
    write_retries: int = 0
    #: writes InfluxDB refused for its configuration (401/403: the token; 404: no such
    #: database): held and retried like an outage
    write_access_errors: int = 0
    dead_letter_retries: int = 0
    statuses: int = 0
    #: gate events new to the attendance ledger, and resent ones it already had
    gate_events_appended: int = 0
    gate_events_resent: int = 0
    ledger_retries: int = 0
    #: snapshots new to their site, and ones it already had (sent again)
    snapshots_stored: int = 0
    snapshots_resent: int = 0
    snapshot_store_retries: int = 0
    #: messages whose handling raised (a bug), dead-lettered as internal_error, by the
    #: exception's type
    internal_errors: Counter[str] = field(default_factory=Counter)
    #: dead letters the store refused for good even as one row (logged, not kept)
    dead_letters_refused: int = 0
    #: acks that could not be built or published (logged; the gateway sends again)
    ack_errors: int = 0
    #: batches taken again with the content acked before under their number (resends);
    #: other content under a known number is counted in rejected["batch_reused"]
    batches_resent: int = 0
    #: failed reads (the batch goes on unchecked) or writes (retried) of the acked
    #: batches' digests
    acked_batches_retries: int = 0

    @property
    def items_rejected(self) -> int:
        return sum(self.rejected.values())

    def summary(self) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.rejected.items())) or "none"
        return (
            f"messages={self.messages} received={self.items_received} "
            f"stored={self.items_stored} rejected={self.items_rejected} ({reasons}) "
            f"acks={self.acks_published} writes={self.writes} "
            f"retries={self.write_retries} access_errors={self.write_access_errors} "
            f"dead_letter_retries={self.dead_letter_retries} "
            f"gate_events={self.gate_events_appended} "
            f"gate_events_resent={self.gate_events_resent} "
            f"snapshots={self.snapshots_stored} "
            f"snapshots_resent={self.snapshots_resent} "
            f"internal_errors={sum(self.internal_errors.values())} "
            f"dead_letters_refused={self.dead_letters_refused} "
            f"ack_errors={self.ack_errors} "
            f"batches_resent={self.batches_resent}"
        )

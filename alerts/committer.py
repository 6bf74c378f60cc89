"""The alert service's committer: alert changes into the store, then out for delivery.

The changes are committed to the store - with their history entries and outbox rows - in
small transactions by the committer task, and only then is the message PUBACKed (the
future :meth:`Committer.queue` returns is done): a crash redelivers what was not
committed, and the store's open alerts make the replay raise nothing twice. The
dispatcher then delivers the outbox rows to MQTT, InfluxDB and the notifiers.

A batch the store cannot take because the database is out (or locked) is held and
retried; one it refuses for good (a constraint: a second open alert for one condition) is
stored change by change, the refused ones logged, counted and left out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable
from contextlib import suppress

from sqlalchemy.exc import SQLAlchemyError

from alerts.dispatch import Dispatcher
from alerts.engine import AlertEngine
from alerts.intake import current_ms
from alerts.storecalls import StoreCalls
from sitewatch.core.backoff import Backoff
from sitewatch.domains.alertrecords.model import AlertEvent, Change, EventKind
from sitewatch.domains.alertrecords.store import REFUSALS, AlertStore, Outgoing, Refused

log = logging.getLogger("sitewatch.alerts")

#: at stop, how long what is pending and committed may take to go out
DRAIN_S = 5.0


class Committer:
    def __init__(self, store: AlertStore, engine: AlertEngine, in_store: StoreCalls) -> None:
        self.store = store
        self.engine = engine
        self.in_store = in_store
        #: delivers what is committed; set once the outputs are up
        self.dispatcher: Dispatcher | None = None
        #: changes waiting for the next transaction
        self.pending: list[Change] = []
        self.committing = 0  # changes in the transaction under way
        self._round: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        #: alert changes committed by this service, by event kind (for the metrics)
        self.changes_by_kind: Counter[str] = Counter()
        #: alert changes the store refused for good and that were left out, by kind
        self.refused_by_kind: Counter[str] = Counter()

    def queue(self, changes: list[Change]) -> asyncio.Future[None]:
        """Hand changes to the committer; the future is done once they are committed."""
        self.pending.extend(changes)
        if self._round is None:
            self._round = asyncio.get_running_loop().create_future()
        self._wake.set()
        return self._round

    def committed(self, changes: Iterable[Change | AlertEvent], rows: list[Outgoing]) -> None:
        """Count changes the store has committed, and deliver their outbox rows."""
        self.changes_by_kind.update(c.event.value for c in changes)
        assert self.dispatcher is not None
        self.dispatcher.submit(rows)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self.pending:
                continue
            changes, self.pending = self.pending, []
            done, self._round = self._round, None
            rows, refused = await self._store_changes(changes)
            left_out = {id(r.change) for r in refused}
            self.committed((c for c in changes if id(c) not in left_out), rows)
            if done is not None and not done.done():
                done.set_result(None)
            if refused:
                await self._refused(refused)

    async def _store_changes(self, changes: list[Change]) -> tuple[list[Outgoing], list[Refused]]:
        """Store a batch of changes: held and retried while the store is out, stored
        change by change if it refuses some of them for good (those are left out and
        returned)."""
        backoff = Backoff(0.2, 10)
        each = False
        while True:
            self.committing = len(changes)
            try:
                if not each:
                    return await self.in_store(self.store.apply, changes, current_ms()), []
                return await self.in_store(self.store.apply_each, changes, current_ms())
            except SQLAlchemyError as exc:
                if isinstance(exc, REFUSALS) and not each:
                    # not an outage: the same batch would be refused forever
                    log.warning(
                        "alert store refused a batch of %d changes (%s); storing them one by one",
                        len(changes),
                        type(exc).__name__,
                    )
                    each = True
                    continue
                delay = backoff.next_delay()
                log.warning(
                    "alert store failed (%s); retrying in %.1fs holding %d changes",
                    type(exc).__name__,
                    delay,
                    len(changes),
                )
            finally:
                self.committing = 0
            await asyncio.sleep(delay)

    async def _refused(self, refused: list[Refused]) -> None:
        """Log and count changes the store refused; where the engine raised an alert the
        store would not take, it takes over the store's alert of that condition."""
        for r in refused:
            c = r.change
            self.refused_by_kind[c.event.value] += 1
            log.error(
                "alert store refused change %s of alert %s (site %s, device %s, "
                "group %s, rule %s, at %d): %s; left out",
                c.event.value,
                c.alert_id,
                c.site,
                c.device,
                c.group,
                c.rule or "-",
                c.at,
                r.reason,
            )
            if c.event is not EventKind.RAISED or not r.first:
                continue
            try:
                stored = await self.in_store(self.store.open_alert, c.site, c.device, c.group)
            except SQLAlchemyError as exc:
                log.warning(
                    "alerts: cannot read the open alert of %s/%s/%s: %s",
                    c.site,
                    c.device,
                    c.group,
                    exc,
                )
                stored = None
            if self.engine.refused(c.alert_id, stored) and stored is not None:
                log.warning(
                    "alerts: took over alert %s of %s/%s/%s from the store instead",
                    stored.id,
                    c.site,
                    c.device,
                    c.group,
                )

    async def drain(self) -> None:
        """Commit what is pending, and deliver what is committed, for at most
        ``DRAIN_S`` (asyncio.timeout, not wait_for, which on Python 3.11 swallows a
        cancellation that comes as what it waits for ends). A batch being committed
        counts, and so does a row being delivered: its rows go out before the service
        stops, and the stop then finds every worker idle rather than cancelling one in
        the middle of a delivery."""
        if self.committing:
            log.info(
                "alerts: stopping once the commit under way (%d changes) is stored",
                self.committing,
            )
        with suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_S):
                while (
                    self.pending or self.committing or (self.dispatcher and self.dispatcher.busy())
                ):
                    self._wake.set()
                    await asyncio.sleep(0.05)

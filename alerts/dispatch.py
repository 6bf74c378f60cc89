"""Delivery of alert changes from the outbox to every output, with retry and backoff.

Outputs are registered by name: ``mqtt`` (``{p}/{site}/alerts``), ``influx`` (the
``alerts`` measurement) and one per configured notifier. Each output has its own worker
and queue, so a slow or failing webhook delays only itself - never ingest, never the
siren on MQTT. An output delivers its rows in order and retries the one at its head with
jittered exponential backoff; a row is deleted from the outbox once delivered, marked
failed (and kept for the operator) if the target refuses it for good. Rows written by
other processes (an acknowledgement from ``sitewatch alerts ack``) and rows left by a
crash are picked up by a poll of the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field

import httpx
from sqlalchemy.exc import SQLAlchemyError

from sitewatch.core.backoff import Backoff
from sitewatch.core.influx import InfluxClient, PermanentWriteError, RetryableWriteError
from sitewatch.core.lineprotocol import quote_string
from sitewatch.core.mqtt import Client, MqttError, MqttSettings
from sitewatch.core.topics import alerts_topic
from sitewatch.domains.alertrecords.model import AlertEvent, event_decoder
from sitewatch.domains.alertrecords.store import AlertStore, Outgoing
from sitewatch.domains.notifications import DeliveryError, Notifier

log = logging.getLogger("sitewatch.alerts.dispatch")

Deliver = Callable[[AlertEvent, bytes], Awaitable[None]]


def alert_line(e: AlertEvent) -> str:
    """The ``alerts`` measurement: tags to filter by, the rest as fields. Numbers go to
    ``value``/``limit``, other values to ``value_text``/``limit_text`` (one field, one type)."""
    tags = (
        f"alerts,device={e.device},event={e.event.value},gateway={e.gateway},"
        f"group={e.group},level={e.level.value},profile={e.profile},rule={e.rule},"
        f"severity={e.severity},site={e.site}"
    )
    fields = [
        f"id={quote_string(e.id)}",
        f"state={quote_string(e.state.value)}",
        f"late={'true' if e.late else 'false'}",
        f"title={quote_string(e.title)}",
        f"actor={quote_string(e.actor)}",
        f"raised_at={e.raised_at}i",
    ]
    for name, v in (("value", e.value), ("limit", e.limit)):
        if isinstance(v, int | float) and not isinstance(v, bool):
            fields.append(f"{name}={float(v)!r}")
        elif v is not None:
            fields.append(f"{name}_text={quote_string(str(v))}")
    return f"{tags} {','.join(fields)} {e.at}"


class MqttPublisher:
    """The alerts' own MQTT connection. Not the session that takes the telemetry: there a
    PUBACK for an alert queues behind up to ``receive_maximum`` inbound batches, and a
    siren would wait for the backlog."""

    def __init__(self, settings: MqttSettings, client_id: str) -> None:
        self.settings = settings
        self.client_id = client_id
        self._client: Client | None = None

    async def publish(self, topic: str, payload: bytes) -> None:
        if self._client is None or not self._client.is_connected:
            await self.close()
            client = Client(self.settings, client_id=self.client_id)
            await client.connect()
            self._client = client
        # not wait_for: on Python 3.11 it swallows a cancellation that comes as the
        # PUBACK does, and the worker goes on (its TaskGroup never ends: a stop hangs)
        async with asyncio.timeout(30):
            await self._client.publish(topic, payload, qos=1)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with suppress(MqttError, OSError):
                await client.disconnect()


def mqtt_output(publisher: MqttPublisher, prefix: str) -> Deliver:
    async def deliver(event: AlertEvent, payload: bytes) -> None:
        try:
            await publisher.publish(alerts_topic(prefix, event.site), payload)
        except (MqttError, OSError, TimeoutError) as exc:
            await publisher.close()
            raise DeliveryError(f"MQTT publish: {exc}") from None

    return deliver


def influx_output(influx: InfluxClient) -> Deliver:
    async def deliver(event: AlertEvent, payload: bytes) -> None:
        try:
            await influx.write((alert_line(event) + "\n").encode())
        except RetryableWriteError as exc:
            raise DeliveryError(f"InfluxDB: {exc}") from None
        except PermanentWriteError as exc:
            raise DeliveryError(f"InfluxDB refused: {exc}", retryable=False) from None

    return deliver


def notifier_output(notifier: Notifier, http: httpx.AsyncClient) -> Deliver:
    async def deliver(event: AlertEvent, payload: bytes) -> None:
        await notifier.send(event, http)

    return deliver


@dataclass
class DispatchStats:
    delivered: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)


class Dispatcher:
    def __init__(
        self,
        store: AlertStore,
        outputs: dict[str, Deliver],
        *,
        max_retry_delay_s: float = 300,
        poll_s: float = 2.0,
    ) -> None:
        self.store = store
        self.outputs = outputs
        self.max_retry_delay_s = max_retry_delay_s
        self.poll_s = poll_s
        self.stats = DispatchStats()
        self._queues: dict[str, asyncio.Queue[Outgoing]] = {n: asyncio.Queue() for n in outputs}
        self._taken: set[int] = set()
        self._attempts = 0  # deliveries under way (not counting the waits between tries)
        self._done: list[int] = []
        #: ids deleted since the current poll began: its query may still return them
        self._gone: set[int] = set()

    def submit(self, rows: list[Outgoing], *, from_poll: bool = False) -> None:
        for row in rows:
            if row.id in self._taken or (from_poll and row.id in self._gone):
                continue
            q = self._queues.get(row.target)
            if q is None:
                continue  # a target no longer configured: left in the outbox, counted there
            self._taken.add(row.id)
            q.put_nowait(row)

    def backlog(self) -> dict[str, int]:
        return {n: q.qsize() for n, q in self._queues.items()}

    def busy(self) -> bool:
        """Rows queued, or a delivery attempt under way."""
        return self._attempts > 0 or any(q.qsize() for q in self._queues.values())

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for name in self.outputs:
                tg.create_task(self._worker(name), name=f"deliver-{name}")
            tg.create_task(self._poll(), name="outbox-poll")
            tg.create_task(self._flush_done(), name="outbox-done")

    async def _poll(self) -> None:
        while True:
            self._gone.clear()  # deleted before this query starts: it cannot see them
            try:
                self.submit(
                    await asyncio.to_thread(self.store.pending, set(self._taken)), from_poll=True
                )
            except SQLAlchemyError as exc:  # the store down: try again at the next poll
                log.warning("outbox poll failed: %s", exc)
            await asyncio.sleep(self.poll_s)

    async def _flush_done(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            if self._done:
                ids, self._done = self._done, []
                try:
                    await asyncio.to_thread(self.store.delivered, ids)
                    self._taken.difference_update(ids)
                    self._gone.update(ids)
                except SQLAlchemyError as exc:
                    log.warning("outbox update failed (%s); will retry", exc)
                    self._done.extend(ids)

    async def _worker(self, name: str) -> None:
        deliver, q = self.outputs[name], self._queues[name]
        while True:
            row = await q.get()
            event = event_decoder.decode(row.payload)
            backoff = Backoff(0.5, self.max_retry_delay_s)
            while True:
                self._attempts += 1
                try:
                    await deliver(event, row.payload)
                    self._done.append(row.id)
                    self.stats.delivered[name] = self.stats.delivered.get(name, 0) + 1
                    break
                except DeliveryError as exc:
                    permanent = not exc.retryable
                    try:
                        await asyncio.to_thread(
                            self.store.attempt_failed, row.id, str(exc), permanent=permanent
                        )
                    except SQLAlchemyError as db_exc:
                        log.warning("outbox update failed: %s", db_exc)
                    if permanent:
                        self.stats.failed[name] = self.stats.failed.get(name, 0) + 1
                        log.error(
                            "%s refused alert %s (%s) for good: %s",
                            name,
                            event.id,
                            event.event.value,
                            exc,
                        )
                        break
                    self.stats.retries[name] = self.stats.retries.get(name, 0) + 1
                    delay = backoff.next_delay()
                    log.warning(
                        "%s: delivery of alert %s failed (%s); retrying in %.1fs",
                        name,
                        event.id,
                        exc,
                        delay,
                    )
                finally:
                    self._attempts -= 1
                await asyncio.sleep(delay)

"""The gateway's broker link: its MQTT session, what it publishes and the acks it reads.

The connection reconnects with jittered exponential backoff; while it is down, devices
keep being read and batches keep going into the spool. On (re)connect the status goes
out retained (with ``boot`` and spool depth, and the same as Last Will with
``offline``), the ack topic is subscribed and the backlog drains at a bounded rate while
live batches are published at once. An ack deletes its batches from the spool (and their
camera snapshots) and carries the platform's clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Literal

import msgspec

from edge.clock import GatewayClock
from edge.config import EdgeSettings
from edge.outbox import SnapshotOutbox
from edge.spool import PendingReading, Spool, SpooledBatch, batch_payload
from sitewatch.core import contract, mqtt
from sitewatch.core.backoff import Backoff
from sitewatch.core.topics import GatewayChannel

log = logging.getLogger("sitewatch.edge")

State = Literal["online", "offline"]


class BrokerLink:
    """The gateway's MQTT session and the counts of what went through it."""

    def __init__(
        self,
        settings: EdgeSettings,
        topics: dict[GatewayChannel, str],
        clock: GatewayClock,
        snapshots: SnapshotOutbox,
        spool: Callable[[], Spool],
        status: Callable[[State], bytes],
    ) -> None:
        """``spool`` gives the agent's spool (open before the link runs); ``status``
        encodes the gateway's status message."""
        self.settings = settings
        self.topics = topics
        self.clock = clock
        self.snapshots = snapshots
        self._spool = spool
        self._status = status
        self._client: mqtt.Client | None = None
        self.connected = asyncio.Event()
        self._resend = asyncio.Event()  # the backlog is due now (a new connection)
        self.items_sent = 0
        self.batches_sent = 0
        #: the gateway's health readings sent outside the spool while the disk was full
        self.direct_sent = 0
        self.batches_acked = 0

    def publish(self, batches: list[SpooledBatch]) -> None:
        client = self._client
        if client is None or not client.is_connected or not batches:
            return
        sent = []
        for b in batches:
            if b.channel == GatewayChannel.CAMERA.value:
                self.snapshots.publish(client, b, _ignore)
            fut = client.publish_nowait(self.topics[GatewayChannel(b.channel)], b.payload, qos=1)
            fut.add_done_callback(_ignore)
            sent.append(b.batch)
            self.items_sent += b.items
        self.batches_sent += len(sent)
        self._spool().mark_sent(sent)

    def send_direct(self, reading: PendingReading) -> None:
        """While the disk refuses writes, the gateway's own reading also goes out at once
        as a batch of its own outside the spool (so the platform sees ``disk_full``
        now); it is still held and stored, and sent again, once the disk works (ingest
        keeps one point per timestamp). Its batch number is never given again, nor its
        seq: the spool records it in direct.flag first (in place, no new block needed),
        and a restart before it is stored resumes above it. If that record cannot be
        written, the reading is only held."""
        client = self._client
        if client is None or not client.is_connected:
            return
        number = self._spool().direct_batch_number(reading.device, reading.seq, reading.ts)
        if number is None:
            return
        payload = batch_payload(number, self.clock.now_ms(), [reading.body])
        client.publish_nowait(
            self.topics[GatewayChannel(reading.channel)], payload, qos=1
        ).add_done_callback(_ignore)
        self.direct_sent += 1
        self.batches_sent += 1
        self.items_sent += 1

    async def backlog(self) -> None:
        """Resend what is unacknowledged past the timeout, at a bounded rate."""
        p = self.settings.publish
        tick = 0.25
        per_tick = max(1, int(p.backlog_batches_per_s * tick))
        while True:
            with suppress(TimeoutError):  # woken at once by a (re)connection
                await asyncio.wait_for(self._resend.wait(), tick)
            self._resend.clear()
            self.publish(self._spool().due(p.ack_timeout_s, per_tick))

    async def run(self, boot: int) -> None:
        """Keep the session up: connect, say ``online``, read acks; reconnect when lost."""
        s = self.settings
        backoff = Backoff(0.5, 60)
        status_topic = self.topics[GatewayChannel.STATUS]
        while True:
            client = mqtt.Client(
                s.mqtt,
                client_id=f"sw-{s.site}-{s.gateway}",
                clean_start=False,
                session_expiry_s=86400,
                max_inflight=200,
                will=mqtt.Will(status_topic, self._status("offline"), qos=1, retain=True),
            )
            try:
                async with client:
                    await client.subscribe(self.topics[GatewayChannel.ACK], qos=1)
                    await client.publish(status_topic, self._status("online"), retain=True)
                    self._client = client
                    self.connected.set()
                    backoff.reset()
                    log.info(
                        "edge %s/%s connected (boot %d, %d batches spooled)",
                        s.site,
                        s.gateway,
                        boot,
                        self._spool().depth(),
                    )
                    self._spool().forget_sent()  # the backlog task resends at its own pace
                    self._resend.set()
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._acks(client), name="acks")
                        tg.create_task(self._status_loop(client), name="status")
            except* mqtt.MqttError as eg:
                delay = backoff.next_delay()
                log.warning(
                    "edge: broker link down (%s); reconnecting in %.1fs", eg.exceptions[0], delay
                )
                self._client = None
                self.connected.clear()
                await asyncio.sleep(delay)

    async def _status_loop(self, client: mqtt.Client) -> None:
        while True:
            await asyncio.sleep(self.settings.publish.status_interval_s)
            await client.publish(
                self.topics[GatewayChannel.STATUS], self._status("online"), retain=True
            )

    async def _acks(self, client: mqtt.Client) -> None:
        ack_topic = self.topics[GatewayChannel.ACK]
        async for message in client.messages():
            if message.topic != ack_topic:
                continue
            try:
                ack = contract.ack_decoder.decode(message.payload)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                log.warning("edge: ignoring malformed ack: %s", exc)
                continue
            if ack.now is not None:
                self.clock.observe_platform(ack.now)
            self._spool().acknowledge([e.batch for e in ack.acks])
            self.snapshots.acknowledged([e.batch for e in ack.acks])
            self.batches_acked += len(ack.acks)
            for e in ack.acks:
                if e.rejected:
                    log.warning(
                        "ingest rejected %d item(s) of batch %d (see its dead letters)",
                        e.rejected,
                        e.batch,
                    )

    async def goodbye(self) -> None:
        """A clean stop says ``offline`` itself (the broker sends the will only on loss)."""
        client = self._client
        if client is not None and client.is_connected:
            with suppress(mqtt.MqttError, TimeoutError):
                await asyncio.wait_for(
                    client.publish(
                        self.topics[GatewayChannel.STATUS], self._status("offline"), retain=True
                    ),
                    5,
                )


def _ignore(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()

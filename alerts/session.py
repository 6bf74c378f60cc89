"""The alert service's own persistent MQTT session, next to ingest's.

It subscribes to the telemetry, attendance, camera and status topics: alerts keep
coming while InfluxDB is down or slow. Each message is turned into alert changes
(:class:`Intake`) and PUBACKed, in order, once the committer has stored them; at stop
the service takes nothing more and lets what is committed go out.
"""

from __future__ import annotations

import asyncio
import logging

from alerts.committer import Committer
from alerts.intake import Intake, current_ms
from sitewatch.core import mqtt
from sitewatch.core.subscriber import GatewaySession
from sitewatch.core.topics import GatewayChannel
from sitewatch.domains.alertrecords.settings import AlertSettings

log = logging.getLogger("sitewatch.alerts")

SUBSCRIBED = (
    GatewayChannel.TELEMETRY,
    GatewayChannel.ATTENDANCE,
    GatewayChannel.CAMERA,
    GatewayChannel.STATUS,
)


def alert_session(settings: AlertSettings, stop: asyncio.Event) -> GatewaySession:
    return GatewaySession(
        settings,
        client_id=settings.client_id,
        channels=SUBSCRIBED,
        max_inflight=100,
        stop=stop,
        log=log,
        name="alerts",
    )


class AlertConsumer:
    """One session's work: messages into changes for the committer, each PUBACKed once
    its changes are committed."""

    def __init__(self, client: mqtt.Client, intake: Intake, committer: Committer) -> None:
        self.client = client
        self.intake = intake
        self.committer = committer

    async def consume(self) -> None:
        client = self.client
        acks: asyncio.Queue[tuple[mqtt.Message, asyncio.Future[None] | None]] = asyncio.Queue()

        async def acker() -> None:
            while True:
                message, fut = await acks.get()
                if fut is not None:
                    await fut
                client.ack(message)

        ack_task = asyncio.create_task(acker(), name="puback")
        try:
            async for message in client.messages():
                changes = self.intake.handle_guarded(message.topic, message.payload, current_ms())
                acks.put_nowait((message, self.committer.queue(changes) if changes else None))
        finally:
            ack_task.cancel()

    async def drain(self) -> None:
        await self.committer.drain()

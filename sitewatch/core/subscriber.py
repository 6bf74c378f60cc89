"""What every service that consumes the gateways' stream shares (ingest, alerts): its
settings (the broker, InfluxDB, the relational store, the device profiles, the MQTT
session) and its persistent MQTT session on the gateways' channels."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from pydantic import Field

from sitewatch.core import mqtt
from sitewatch.core.influx import InfluxSettings
from sitewatch.core.metrics import MetricsSettings
from sitewatch.core.mqtt import MqttSettings
from sitewatch.core.settings import ServiceSettings
from sitewatch.core.topics import GatewayChannel, subscription


class SubscriberSettings(ServiceSettings):
    """What every service that consumes the gateways' stream has (ingest, alerts)."""

    mqtt: MqttSettings = MqttSettings()
    influx: InfluxSettings = InfluxSettings()
    #: SQLAlchemy URL of the relational store (dead letters, alerts, attendance ledger)
    database_url: str = "sqlite:///sitewatch.db"
    profiles_dir: Path | None = None
    #: how long the broker keeps our session (and queues for it) while we are down
    session_expiry_s: int = Field(default=7 * 86400, ge=60)
    #: MQTT 5 receive maximum: unacknowledged messages the broker may have in flight to us
    receive_maximum: int = Field(default=1000, ge=1, le=65535)
    stats_interval_s: float = Field(default=30, gt=0)
    #: Prometheus ``/metrics`` (docs/metrics.md)
    metrics: MetricsSettings = MetricsSettings()
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")


class SessionWork(Protocol):
    """What a service does on one connected session (see :class:`GatewaySession`)."""

    async def consume(self) -> None:
        """Take the session's messages until the connection is lost (``MqttError``)."""

    async def drain(self) -> None:
        """At stop, once :meth:`consume` has ended: finish what was taken (bounded, if
        it must be, by the service)."""


class GatewaySession:
    """A service's persistent MQTT session on the gateways' channels (ingest, alerts).

    :meth:`run` is one connection: a client with the service's client id, a clean start
    off and the session expiry and receive maximum of the settings, PUBACKs sent by the
    service (manual ack); it subscribes to ``channels`` at QoS 1, hands the client to
    the service (``begin``), sets ``connected`` and runs the service's consumer until
    the connection is lost or ``stop`` is set. At stop the consumer is cancelled (it
    takes nothing more) and the service drains. Leaving, it clears ``connected`` and
    :attr:`client`, and raises what ended the consumer, if anything did: an
    ``MqttError`` for :func:`mqtt.reconnecting` to reconnect on.
    """

    def __init__(
        self,
        settings: SubscriberSettings,
        *,
        client_id: str,
        channels: Sequence[GatewayChannel],
        max_inflight: int,
        stop: asyncio.Event,
        log: logging.Logger,
        name: str,
    ) -> None:
        """``max_inflight``: outgoing QoS 1 messages awaiting PUBACK (acks, alerts);
        ``log`` and ``name``: the service's logger and its name in "connected to"."""
        self.settings = settings
        self.client_id = client_id
        self.channels = tuple(channels)
        self.max_inflight = max_inflight
        self.stop = stop
        self.log = log
        self.name = name
        #: set while a session is up
        self.connected = asyncio.Event()
        #: the client of the session up, if one is
        self.client: mqtt.Client | None = None

    async def run(self, begin: Callable[[mqtt.Client], SessionWork]) -> None:
        s = self.settings
        client = mqtt.Client(
            s.mqtt,
            client_id=self.client_id,
            clean_start=False,
            session_expiry_s=s.session_expiry_s,
            receive_maximum=s.receive_maximum,
            manual_ack=True,
            max_inflight=self.max_inflight,
        )
        async with client:
            prefix = s.mqtt.topic_prefix
            await client.subscribe(*(subscription(prefix, c) for c in self.channels), qos=1)
            self.log.info(
                "%s connected to %s:%d as %s", self.name, s.mqtt.host, s.mqtt.port, self.client_id
            )
            work = begin(client)
            self.client = client
            self.connected.set()
            consumer = asyncio.create_task(work.consume(), name="consume")
            stopper = asyncio.create_task(self.stop.wait(), name="stop")
            try:
                await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if self.stop.is_set():
                    consumer.cancel()  # take nothing more; finish what was taken
                    await asyncio.wait({consumer})  # its timers too: none beside the drain
                    await work.drain()
            finally:
                for t in (consumer, stopper):
                    t.cancel()
                await asyncio.gather(consumer, stopper, return_exceptions=True)
                self.connected.clear()
                self.client = None
            if not consumer.cancelled() and (exc := consumer.exception()) is not None:
                raise exc

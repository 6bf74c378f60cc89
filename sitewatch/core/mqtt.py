"""A small asyncio MQTT 5 client over paho-mqtt, shaped like aiomqtt's.

Why not aiomqtt itself: ingest needs two things aiomqtt 2.x does not expose.
- manual PUBACK: a QoS 1 message is acknowledged to the broker only after its data is
  stored or dead-lettered, so a crash of ingest makes the broker redeliver it;
- the MQTT 5 *receive maximum*: the broker never has more than that many unacknowledged
  messages in flight to us, which bounds ingest's in-flight work without any queue of
  our own growing when InfluxDB is slow.

The socket is driven by the event loop (``add_reader``/``add_writer``), no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field, SecretStr

log = logging.getLogger("sitewatch.mqtt")


class MqttSettings(BaseModel):
    """Broker connection (shared by edge, ingest and the simulators)."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str = ""
    password: SecretStr | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    topic_prefix: str = "sitewatch/v1"
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None


class MqttError(Exception):
    """Connection refused or lost, or an operation the broker refused."""


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    dup: bool = False


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass
class _Pending:
    futures: dict[int, asyncio.Future[None]] = field(default_factory=dict)


class Client:
    """``async with Client(...) as c:`` connects; leaving disconnects.

    Keyword-only arguments:
      client_id, clean_start, session_expiry_s: a persistent session is
        ``clean_start=False`` with a session expiry > 0.
      receive_maximum: at most this many unacknowledged QoS 1 messages in flight to us.
      manual_ack: incoming QoS 1 messages are PUBACKed only by :meth:`ack`.
      max_inflight: outgoing QoS 1 messages awaiting PUBACK before paho queues locally.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        client_id: str,
        clean_start: bool = True,
        session_expiry_s: int = 0,
        receive_maximum: int = 100,
        manual_ack: bool = False,
        max_inflight: int = 100,
        will: Will | None = None,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self._clean_start = clean_start
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        self._connect_timeout_s = connect_timeout_s
        self._paho = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=manual_ack,
        )
        self._paho.max_inflight_messages_set(max_inflight)
        self._paho.max_queued_messages_set(0)
        if settings.username:
            pw = settings.password.get_secret_value() if settings.password else None
            self._paho.username_pw_set(settings.username, pw)
        if settings.tls_ca:
            self._paho.tls_set(
                ca_certs=settings.tls_ca, certfile=settings.tls_cert, keyfile=settings.tls_key
            )
        if will is not None:
            self._paho.will_set(will.topic, will.payload, will.qos, will.retain)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[None] | None = None
        self._disconnected: asyncio.Future[None] | None = None
        self._messages: asyncio.Queue[Message] = asyncio.Queue()
        self._publishes: dict[int, asyncio.Future[None]] = {}
        self._subscribes: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._misc_task: asyncio.Task[None] | None = None
        self._fd: int = -1
        p = self._paho
        p.on_connect = self._on_connect
        p.on_disconnect = self._on_disconnect
        p.on_message = self._on_message
        p.on_publish = self._on_publish
        p.on_subscribe = self._on_subscribe
        p.on_socket_open = self._on_socket_open
        p.on_socket_close = self._on_socket_close
        p.on_socket_register_write = self._on_socket_register_write
        p.on_socket_unregister_write = self._on_socket_unregister_write

    # -- lifecycle ---------------------------------------------------------------
    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    async def connect(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        self._disconnected = self._loop.create_future()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._session_expiry_s
        props.ReceiveMaximum = self._receive_maximum
        s = self.settings
        try:
            # connect() resolves and opens the socket: blocking, so off the event loop
            await self._loop.run_in_executor(
                None,
                lambda: self._paho.connect(
                    s.host,
                    s.port,
                    s.keepalive_s,
                    clean_start=self._clean_start,
                    properties=props,
                ),
            )
        except (OSError, ValueError) as exc:
            raise MqttError(f"cannot connect to {s.host}:{s.port}: {exc}") from exc
        try:
            await asyncio.wait_for(asyncio.shield(self._connected), self._connect_timeout_s)
        except TimeoutError:
            self._paho.disconnect()
            raise MqttError(f"no CONNACK from {s.host}:{s.port}") from None

    async def disconnect(self) -> None:
        if self._disconnected is not None and not self._disconnected.done():
            self._paho.disconnect()
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._disconnected), 5)
        self._cleanup_socket()

    @property
    def is_connected(self) -> bool:
        return self._paho.is_connected()

    async def wait_disconnected(self) -> None:
        """Return (or raise MqttError) when the connection is gone."""
        assert self._disconnected is not None
        await asyncio.shield(self._disconnected)

    # -- operations --------------------------------------------------------------
    def publish_nowait(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> asyncio.Future[None]:
        """Queue a publish; the future completes on PUBACK (at once for QoS 0)."""
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        info = self._paho.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_QUEUE_SIZE):
            if info.rc == paho.MQTT_ERR_NO_CONN:
                fut.set_exception(MqttError(f"publish to {topic}: not connected"))
            else:
                fut.set_exception(MqttError(f"publish to {topic}: {paho.error_string(info.rc)}"))
            return fut
        if qos == 0 or info.is_published():
            fut.set_result(None)
        else:
            self._publishes[info.mid] = fut
        return fut

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        await self.publish_nowait(topic, payload, qos=qos, retain=retain)

    async def subscribe(self, *filters: str, qos: int = 1) -> None:
        assert self._loop is not None
        rc, mid = self._paho.subscribe([(f, qos) for f in filters])
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            raise MqttError(f"subscribe {filters}: {paho.error_string(rc)}")
        fut: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        self._subscribes[mid] = fut
        codes = await asyncio.wait_for(fut, 10)
        bad = [str(c) for c in codes if c.is_failure]
        if bad:
            raise MqttError(f"subscribe {filters} refused: {', '.join(bad)}")

    def ack(self, message: Message) -> None:
        """PUBACK a QoS 1 message received with ``manual_ack=True``."""
        if message.qos > 0:
            self._paho.ack(message.mid, message.qos)

    async def messages(self) -> AsyncIterator[Message]:
        """Received messages; raises MqttError when the connection is lost."""
        assert self._disconnected is not None
        while True:
            if not self._messages.empty():
                yield self._messages.get_nowait()
                continue
            get = asyncio.ensure_future(self._messages.get())
            waiters: set[asyncio.Future[Any]] = {get, self._disconnected}
            try:
                done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                # the consumer cancelled (a service stopping): no orphan task left waiting
                if not get.done():
                    get.cancel()
            if get in done:
                yield get.result()
                continue
            get.cancel()
            self._disconnected.result()  # raises MqttError
            raise MqttError("disconnected")

    def pending_messages(self) -> int:
        return self._messages.qsize()

    # -- paho callbacks ----------------------------------------------------------
    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        assert self._connected is not None
        if self._connected.done():
            return
        if rc.is_failure:
            self._connected.set_exception(MqttError(f"connection refused: {rc}"))
        else:
            self._connected.set_result(None)

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        exc = MqttError(f"disconnected: {rc}")
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(exc)
        if self._disconnected is not None and not self._disconnected.done():
            if rc.is_failure:
                self._disconnected.set_exception(exc)
            else:
                self._disconnected.set_result(None)
        for fut in list(self._publishes.values()) + list(self._subscribes.values()):
            if not fut.done():
                fut.set_exception(MqttError("connection lost before acknowledgement"))
        self._publishes.clear()
        self._subscribes.clear()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self._messages.put_nowait(
            Message(
                msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), msg.mid, bool(msg.dup)
            )
        )

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, rc: ReasonCode, props: Any
    ) -> None:
        fut = self._publishes.pop(mid, None)
        if fut is not None and not fut.done():
            if rc.is_failure:
                fut.set_exception(MqttError(f"publish refused: {rc}"))
            else:
                fut.set_result(None)

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any
    ) -> None:
        fut = self._subscribes.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(codes)

    def _fail(self, exc: BaseException) -> None:
        if self._disconnected is not None and not self._disconnected.done():
            self._disconnected.set_exception(MqttError(f"connection lost: {exc}"))
        self._cleanup_socket()

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        loop = self._loop
        # paho leaves Nagle on: a small PUBLISH would wait behind un-ACKed PUBACKs
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def readable() -> None:
            try:
                client.loop_read()
                # an SSL socket may hold decoded bytes the selector cannot see
                tls = client.socket()
                while tls is not None and getattr(tls, "pending", lambda: 0)() > 0:
                    client.loop_read()
            except Exception as exc:  # any socket error ends the connection
                self._fail(exc)

        def start() -> None:
            self._fd = sock.fileno()
            loop.add_reader(self._fd, readable)
            self._misc_task = loop.create_task(self._misc_loop(), name="mqtt-misc")

        loop.call_soon_threadsafe(start)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._cleanup_socket)

    def _cleanup_socket(self) -> None:
        if self._loop is None:
            return
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._fd = -1
        if self._misc_task is not None and not self._misc_task.done():
            self._misc_task.cancel()

    def _on_socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        loop = self._loop

        def writable() -> None:
            try:
                client.loop_write()
            except Exception as exc:
                self._fail(exc)

        loop.call_soon_threadsafe(loop.add_writer, sock.fileno(), writable)

    def _on_socket_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(sock.fileno())

    async def _misc_loop(self) -> None:
        while self._paho.loop_misc() == paho.MQTT_ERR_SUCCESS:  # noqa: ASYNC110 - paho polls
            await asyncio.sleep(1)
        if self._disconnected is not None and not self._disconnected.done():
            self._disconnected.set_exception(MqttError("connection lost (keepalive)"))


async def reconnecting(
    session: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    on_lost: Callable[[], None] = lambda: None,
) -> None:
    """Run ``session`` until ``stop`` is set: after a lost connection (MqttError), call
    ``on_lost`` and reconnect with jittered exponential backoff. The loop of every
    long-running MQTT service (ingest, alerts)."""
    from sitewatch.core.backoff import Backoff

    backoff = Backoff(0.5, 30)
    while not stop.is_set():
        try:
            await session()
            backoff.reset()
        except MqttError as exc:
            on_lost()
            delay = backoff.next_delay()
            log.warning("MQTT: %s; reconnecting in %.1fs", exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

"""``sitewatch edge``: sample the site's devices, spool every batch, publish, handle acks.

Tasks (one TaskGroup): one per device driver, the batch timer, the health reporter and
the broker connection. The connection task reconnects with jittered exponential backoff;
while it is down, devices keep being read and batches keep going into the spool. On
(re)connect the status goes out retained (with ``boot`` and spool depth, and the same as
Last Will with ``offline``), the ack topic is subscribed and the backlog drains at a
bounded rate while live batches are published at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from contextlib import suppress
from pathlib import Path
from typing import Literal

import msgspec
from pydantic import ValidationError

from sitewatch import __version__, contract, mqtt
from sitewatch.backoff import Backoff
from sitewatch.edge.config import DeviceConfig, EdgeSettings
from sitewatch.edge.drivers import DRIVERS, Driver, Values
from sitewatch.edge.spool import Spool, SpooledBatch
from sitewatch.profiles import ProfileSet, load_profiles
from sitewatch.settings import ConfigError
from sitewatch.signals import stop_on_signals
from sitewatch.topics import GatewayChannel, gateway_topic

log = logging.getLogger("sitewatch.edge")


def build_drivers(settings: EdgeSettings, profiles: ProfileSet) -> list[Driver]:
    """Validate every device's driver, profile and options; errors name the key."""
    drivers: list[Driver] = []
    for i, dev in enumerate(settings.devices):
        where = f"devices[{i}] ({dev.id})"
        cls = DRIVERS.get(dev.driver)
        if cls is None:
            raise ConfigError(f"key {where}.driver: unknown driver {dev.driver!r}; "
                              f"available: {', '.join(sorted(DRIVERS))}")
        profile = profiles.get(dev.profile)
        if profile is None:
            raise ConfigError(f"key {where}.profile: unknown profile {dev.profile!r}; "
                              f"available: {', '.join(sorted(profiles))}")
        try:
            options = cls.Options.model_validate(dev.options)
        except ValidationError as exc:
            errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors())
            raise ConfigError(f"key {where}.options: {errs}") from None
        try:
            drivers.append(cls(dev.id, profile, dev.interval_s or profile.sample_interval_s,
                               options))
        except ValueError as exc:
            raise ConfigError(f"key {where}.options: {exc}") from None
    return drivers


class Agent:
    def __init__(self, settings: EdgeSettings, profiles: ProfileSet | None = None) -> None:
        self.settings = settings
        self.profiles = profiles or load_profiles(settings.profiles_dir)
        self.drivers = build_drivers(settings, self.profiles)
        self.prefix = settings.mqtt.topic_prefix
        self.spool = Spool(Path(settings.state_dir) / "spool.sqlite")
        self.boot = 0
        self._buffer: list[contract.TelemetryItem] = []
        self._last_ts: dict[str, int] = {}
        #: readings whose timestamp was moved 1 ms past the device's previous one
        self.adjusted_ts = 0
        self._buffer_since = 0.0
        self._client: mqtt.Client | None = None
        self._stop = asyncio.Event()
        self.connected = asyncio.Event()
        self.items_sent = 0
        self.batches_acked = 0
        self.topics: dict[GatewayChannel, str] = {
            ch: gateway_topic(self.prefix, settings.site, settings.gateway, ch)
            for ch in GatewayChannel if ch is not GatewayChannel.SNAPSHOT
        }

    def stop(self) -> None:
        self._stop.set()

    # -- readings -> spool ---------------------------------------------------------
    def emit(self, device: str, profile: str, values: Values, ts_ms: int) -> None:
        # InfluxDB identifies a point by series and timestamp: two readings of a device in
        # the same millisecond (a driver catching up after a stall, a clock stepping back)
        # would overwrite each other. Each device's timestamps strictly increase.
        last = self._last_ts.get(device, -1)
        if ts_ms <= last:
            ts_ms = last + 1
            self.adjusted_ts += 1
        self._last_ts[device] = ts_ms
        item = contract.TelemetryItem(device=device, profile=profile, ts=ts_ms,
                                      seq=self.spool.next_seq(device), values=values)
        if not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer.append(item)
        if len(self._buffer) >= self.settings.publish.max_batch_items:
            self.flush()

    def flush(self) -> None:
        """Turn buffered items into a spooled batch and publish it if connected."""
        if not self._buffer:
            return
        items, self._buffer = self._buffer, []
        number = self.spool.next_batch_number()
        payload = contract.encode(contract.TelemetryBatchOut(
            v=1, batch=number, sent=int(time.time() * 1000), items=items))
        seqs: dict[str, int] = {}
        for it in items:
            seqs[it.device] = max(seqs.get(it.device, 0), it.seq)
        spooled = self.spool.append(number, GatewayChannel.TELEMETRY.value, len(items),
                                    payload, seqs)
        self._publish([spooled])

    def _publish(self, batches: list[SpooledBatch]) -> None:
        client = self._client
        if client is None or not client.is_connected or not batches:
            return
        sent = []
        for b in batches:
            fut = client.publish_nowait(self.topics[GatewayChannel(b.channel)], b.payload, qos=1)
            fut.add_done_callback(_ignore)
            sent.append(b.batch)
            self.items_sent += b.items
        self.spool.mark_sent(sent)

    # -- tasks ---------------------------------------------------------------------
    async def _run_driver(self, driver: Driver) -> None:
        name = driver.profile.profile

        def emit(values: Values, ts_ms: int) -> None:
            self.emit(driver.device_id, name, values, ts_ms)

        backoff = Backoff(1, 60)
        while True:
            try:
                await driver.run(emit)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken device never stops the agent
                delay = backoff.next_delay()
                log.error("device %s (%s driver) failed: %r; restarting it in %.0fs",
                          driver.device_id, type(driver).__name__, exc, delay)
                await asyncio.sleep(delay)

    async def _batch_timer(self) -> None:
        delay = self.settings.publish.max_batch_delay_s
        while True:
            await asyncio.sleep(min(delay / 2, 0.5))
            if self._buffer and time.monotonic() - self._buffer_since >= delay:
                self.flush()

    async def _backlog(self) -> None:
        """Resend what is unacknowledged past the timeout, at a bounded rate."""
        p = self.settings.publish
        tick = 0.25
        per_tick = max(1, int(p.backlog_batches_per_s * tick))
        while True:
            await asyncio.sleep(tick)
            self._publish(self.spool.due(p.ack_timeout_s, per_tick))

    async def _health(self) -> None:
        interval = self.settings.publish.health_interval_s
        last_sent, last_t = self.items_sent, time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            rate = (self.items_sent - last_sent) / max(now - last_t, 1e-9)
            last_sent, last_t = self.items_sent, now
            self.emit(self.settings.gateway, "gateway", self.health_values(rate),
                      int(time.time() * 1000))

    def health_values(self, send_rate: float) -> Values:
        usage = shutil.disk_usage(self.settings.state_dir)
        try:
            cpu = min(100.0, os.getloadavg()[0] / (os.cpu_count() or 1) * 100.0)
        except OSError:
            cpu = 0.0
        return {
            "cpu_pct": round(cpu, 1),
            "disk_free_pct": round(usage.free / usage.total * 100.0, 2),
            "queued": self.spool.depth(),
            "oldest_unsent_s": round(self.spool.oldest_age_s(), 1),
            "spool_used_pct": 0.0,  # the spool has no size bound yet
            "dropped": 0,
            "send_rate": round(send_rate, 2),
            "link": "online" if self.connected.is_set() else "offline",
        }

    def _status(self, state: Literal["online", "offline"]) -> bytes:
        return contract.encode(contract.Status(
            state=state, ts=int(time.time() * 1000), boot=self.boot, agent=__version__,
            queued=self.spool.depth()))

    async def _connection(self) -> None:
        s = self.settings
        backoff = Backoff(0.5, 60)
        status_topic = self.topics[GatewayChannel.STATUS]
        while True:
            client = mqtt.Client(
                s.mqtt, client_id=f"sw-{s.site}-{s.gateway}", clean_start=False,
                session_expiry_s=86400, max_inflight=200,
                will=mqtt.Will(status_topic, self._status("offline"), qos=1, retain=True),
            )
            try:
                async with client:
                    await client.subscribe(self.topics[GatewayChannel.ACK], qos=1)
                    await client.publish(status_topic, self._status("online"), retain=True)
                    self._client = client
                    self.connected.set()
                    backoff.reset()
                    log.info("edge %s/%s connected (boot %d, %d batches spooled)",
                             s.site, s.gateway, self.boot, self.spool.depth())
                    self.spool.forget_sent()  # the backlog task resends at its own pace
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._acks(client), name="acks")
                        tg.create_task(self._status_loop(client), name="status")
            except* mqtt.MqttError as eg:
                delay = backoff.next_delay()
                log.warning("edge: broker link down (%s); reconnecting in %.1fs",
                            eg.exceptions[0], delay)
                self._client = None
                self.connected.clear()
                await asyncio.sleep(delay)

    async def _status_loop(self, client: mqtt.Client) -> None:
        while True:
            await asyncio.sleep(self.settings.publish.status_interval_s)
            await client.publish(self.topics[GatewayChannel.STATUS], self._status("online"),
                                 retain=True)

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
            self.spool.acknowledge([e.batch for e in ack.acks])
            self.batches_acked += len(ack.acks)
            for e in ack.acks:
                if e.rejected:
                    log.warning("ingest rejected %d item(s) of batch %d (see its dead letters)",
                                e.rejected, e.batch)

    async def run(self) -> None:
        self.boot = self.spool.next_boot()
        try:
            async with asyncio.TaskGroup() as tg:
                producers = [tg.create_task(self._run_driver(d), name=f"device-{d.device_id}")
                             for d in self.drivers]
                producers.append(tg.create_task(self._health(), name="health"))
                others = [
                    tg.create_task(self._batch_timer(), name="batch-timer"),
                    tg.create_task(self._backlog(), name="backlog"),
                    tg.create_task(self._connection(), name="connection"),
                ]
                await self._stop.wait()
                for t in producers:
                    t.cancel()
                await self._drain()
                await self._goodbye()
                for t in others:
                    t.cancel()
        finally:
            self.spool.close()

    async def _drain(self) -> None:
        """Clean stop: spool what is buffered, then wait a while for its acks."""
        self.flush()
        deadline = time.monotonic() + self.settings.publish.drain_timeout_s
        while self.spool.depth() and self.connected.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self.spool.depth():
            log.info("edge stopping with %d batch(es) spooled; they are sent on next start",
                     self.spool.depth())

    async def _goodbye(self) -> None:
        """A clean stop says ``offline`` itself (the broker sends the will only on loss)."""
        client = self._client
        if client is not None and client.is_connected:
            with suppress(mqtt.MqttError, TimeoutError):
                await asyncio.wait_for(client.publish(
                    self.topics[GatewayChannel.STATUS], self._status("offline"), retain=True), 5)


def _ignore(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()


async def run_agent(settings: EdgeSettings) -> None:
    agent = Agent(settings)
    stop_on_signals(agent.stop)
    await agent.run()


__all__ = ["Agent", "DeviceConfig", "build_drivers", "run_agent"]

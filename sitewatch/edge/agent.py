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
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Literal

import msgspec
from pydantic import ValidationError

from sitewatch import __version__
from sitewatch.core import contract, mqtt
from sitewatch.core.backoff import Backoff
from sitewatch.core.devicetime import DeviceClock
from sitewatch.core.metrics import MetricsEndpoint, new_registry, serve_metrics
from sitewatch.core.profiles import ProfileSet, load_profiles
from sitewatch.core.settings import ConfigError
from sitewatch.core.signals import stop_on_signals
from sitewatch.core.topics import GatewayChannel, gateway_topic, snapshot_topic
from sitewatch.edge.clock import GatewayClock
from sitewatch.edge.config import DeviceConfig, EdgeSettings
from sitewatch.edge.drivers import DRIVERS, Driver, Values
from sitewatch.edge.metrics import EdgeCollector, driver_name
from sitewatch.edge.outbox import SnapshotOutbox
from sitewatch.edge.spool import (
    FullPolicy,
    PendingBatch,
    PendingReading,
    Spool,
    SpooledBatch,
    SpoolLimits,
    SpoolUnavailable,
    SpoolWriteError,
    batch_payload,
)

log = logging.getLogger("sitewatch.edge")

#: the gateway's own health readings kept in memory while the disk refuses writes
HELD_MAX = 1000


class _OpenBatch(PendingBatch):
    """A channel's batch being filled, with the agent's numbers of its readings."""

    __slots__ = ("numbers",)

    def __init__(self, channel: str) -> None:
        super().__init__(channel)
        self.numbers: list[int] = []


def build_drivers(settings: EdgeSettings, profiles: ProfileSet) -> list[Driver]:
    """Validate every device's driver, profile and options; errors name the key."""
    drivers: list[Driver] = []
    for i, dev in enumerate(settings.devices):
        where = f"devices[{i}] ({dev.id})"
        cls = DRIVERS.get(dev.driver)
        if cls is None:
            raise ConfigError(
                f"key {where}.driver: unknown driver {dev.driver!r}; "
                f"available: {', '.join(sorted(DRIVERS))}"
            )
        device_profiles = profiles.of_devices()
        profile = device_profiles.get(dev.profile)
        if profile is None:
            raise ConfigError(
                f"key {where}.profile: unknown profile {dev.profile!r}; "
                f"available: {', '.join(sorted(device_profiles))}"
            )
        try:
            options = cls.Options.model_validate(dev.options)
        except ValidationError as exc:
            errs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"key {where}.options: {errs}") from None
        try:
            drivers.append(
                cls(dev.id, profile, dev.interval_s or profile.sample_interval_s, options)
            )
        except ValueError as exc:
            raise ConfigError(f"key {where}.options: {exc}") from None
    return drivers


class Agent:
    def __init__(
        self,
        settings: EdgeSettings,
        profiles: ProfileSet | None = None,
        *,
        wall_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        """``wall_clock`` (ns since the epoch) is the gateway's wall clock; tests step it."""
        self.settings = settings
        self.profiles = profiles or load_profiles(settings.profiles_dir)
        self.drivers = build_drivers(settings, self.profiles)
        self.prefix = settings.mqtt.topic_prefix
        self.boot = 0
        #: per channel, the batch being filled (readings taken, not yet committed)
        self._open: dict[str, _OpenBatch] = {}
        #: full batches waiting for the spooler's next commit
        self._sealed: list[_OpenBatch] = []
        #: the gateway's own readings taken and not yet committed, and their numbers:
        #: they wait in memory while the disk refuses writes
        self._own: list[PendingReading] = []
        self._own_numbers: list[int] = []
        self._gateway = settings.gateway
        self._max_items = settings.publish.max_batch_items
        self._woken = False  # the spooler has work (a sealed batch, a waiting driver)
        self._waiter: asyncio.Future[None] | None = None  # the spooler, asleep
        self._resend = asyncio.Event()  # the backlog is due now (a new connection)
        self._force = False  # a driver waits: commit partial batches now
        #: the spooler's commit round and flush() never interleave
        self._batching = asyncio.Lock()
        self._emitted = 0  # readings taken
        self._settled = 0  # every reading up to this one is committed or failed
        self._failed: set[int] = set()  # numbers of recent readings whose commit failed
        self._settled_event = asyncio.Event()
        self._clock = DeviceClock()
        #: the gateway's time: what readings the gateway samples are stamped with
        self.clock = GatewayClock(settings.clock.policy(), wall=wall_clock)
        #: tries to open the spool that failed (disk full, I/O error: not corrupt)
        self.spool_open_failures = 0
        self._spool: Spool | None = None
        try:
            self._open_spool()
        except SpoolUnavailable as exc:  # run() waits for it
            self._spool_unavailable(exc)
        self._client: mqtt.Client | None = None
        self._stop = asyncio.Event()
        self.connected = asyncio.Event()
        self.items_sent = 0
        self.batches_sent = 0
        #: the gateway's health readings sent outside the spool while the disk was full
        self.direct_sent = 0
        self.batches_acked = 0
        #: per driver name: failures that restarted a device's driver
        self.driver_restarts: Counter[str] = Counter()
        self.metrics = EdgeCollector(self)
        self.registry = new_registry("edge")
        self.registry.register(self.metrics)
        self.metrics_endpoint: MetricsEndpoint | None = None
        #: camera snapshots waiting for their batch's ack (content-addressed files)
        self.snapshots = SnapshotOutbox(
            Path(settings.state_dir) / "snapshots",
            lambda sha: snapshot_topic(self.prefix, settings.site, settings.gateway, sha),
        )
        self.topics: dict[GatewayChannel, str] = {
            ch: gateway_topic(self.prefix, settings.site, settings.gateway, ch)
            for ch in GatewayChannel
            if ch is not GatewayChannel.SNAPSHOT
        }

    def stop(self) -> None:
        self._stop.set()

    # -- the spool: opening, waiting for a disk that cannot be used yet ------------
    @property
    def spool(self) -> Spool:
        if self._spool is None:
            raise RuntimeError("the spool is not open (yet)")
        return self._spool

    def _open_spool(self) -> None:
        sp = self.settings.spool
        spool = Spool(
            Path(self.settings.state_dir) / "spool.sqlite",
            SpoolLimits(sp.max_bytes, sp.max_age_s, FullPolicy(sp.policy)),
        )
        last = spool.last_timestamps()
        for device, ts in last.items():
            self._clock.seed(device, ts)  # no reading stamped at or before one sent
        self.clock.start_after(max(last.values(), default=0))
        self._spool = spool

    def _spool_unavailable(self, exc: SpoolUnavailable) -> None:
        self.spool_open_failures += 1
        log.error(
            "edge: the spool in %s cannot be opened: %s. It is not corrupt and is "
            "left as it is; trying again in %gs (devices are read once it opens)",
            self.settings.state_dir,
            exc,
            self.SPOOL_RETRY_S,
        )

    #: seconds between two tries to open a spool whose disk cannot be used
    SPOOL_RETRY_S = 2.0

    async def _wait_for_spool(self) -> bool:
        """Open the spool and count this boot, trying again while the disk cannot be
        used; False if the agent was stopped first."""
        while True:
            try:
                if self._spool is None:
                    await asyncio.to_thread(self._open_spool)
                self.boot = await asyncio.to_thread(self.spool.next_boot)
                return True
            except SpoolUnavailable as exc:
                self._spool_unavailable(exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.SPOOL_RETRY_S)
                return False

    # -- readings -> spool ---------------------------------------------------------
    @property
    def snapshots_sent(self) -> int:
        """Camera snapshots published (resends included)."""
        return self.snapshots.sent

    @property
    def snapshots_failed(self) -> int:
        """Camera snapshots not written, or gone before they were sent."""
        return self.snapshots.failed

    @property
    def readings_taken(self) -> int:
        """Readings and gate events taken into the spool since the agent started."""
        return self._emitted

    @property
    def adjusted_ts(self) -> int:
        """Readings whose timestamp was moved 1 ms past the device's previous one."""
        return self._clock.adjusted

    def emit(
        self,
        device: str,
        profile: str,
        values: Values,
        ts_ms: int,
        channel: GatewayChannel = GatewayChannel.TELEMETRY,
    ) -> bool:
        """Take a reading: it is committed to the spool before anything is sent.

        Returns False when the spool refused it (full with ``refuse_newest``, or the disk
        is full): it is counted in ``dropped`` and gets no seq.
        """
        # Each device's timestamps strictly increase (sitewatch.core.devicetime).
        return self._take(
            device,
            channel,
            ts_ms,
            lambda seq, ts: contract.TelemetryItem(
                device=device, profile=profile, ts=ts, seq=seq, values=values
            ),
        )

    def emit_attendance(
        self, device: str, worker: str, direction: str, method: str, ts_ms: int
    ) -> bool:
        """Take a gate event (attendance channel); same durability as readings."""
        return self._take(
            device,
            GatewayChannel.ATTENDANCE,
            ts_ms,
            lambda seq, ts: contract.AttendanceItem(
                device=device,
                ts=ts,
                seq=seq,
                worker=worker,
                direction=direction,  # type: ignore[arg-type]
                method=method,  # type: ignore[arg-type]
            ),
        )

    async def emit_camera(
        self,
        device: str,
        event: contract.CameraEvent,
        zone: str | None,
        count: int,
        confidence: float | None,
        method: contract.DetectionMethod | None,
        snapshot: tuple[bytes, str] | None,
        ts_ms: int,
    ) -> bool:
        """Take a camera event (camera channel). Its snapshot is written (fsynced) to
        ``state_dir/snapshots`` first; it is published before the batch that names it
        and deleted once ingest has acknowledged that batch."""
        sha: str | msgspec.UnsetType = msgspec.UNSET
        if snapshot is not None and await self.snapshots.keep(device, *snapshot):
            sha = snapshot[1]
        unset = msgspec.UNSET
        taken = self._take(
            device,
            GatewayChannel.CAMERA,
            ts_ms,
            lambda seq, ts: contract.CameraItem(
                device=device,
                ts=ts,
                seq=seq,
                event=event,
                count=count,
                snapshot=sha,
                zone=unset if zone is None else zone,
                confidence=unset if confidence is None else confidence,
                method=unset if method is None else method,
            ),
        )
        if not taken and isinstance(sha, str):  # refused (counted as dropped): no orphan
            self.snapshots.drop(sha)
        return taken

    def _take(
        self,
        device: str,
        channel: GatewayChannel,
        ts_ms: int,
        make: Callable[[int, int], msgspec.Struct],
    ) -> bool:
        clock = self._clock
        ts_ms = clock.next(device, ts_ms)
        spool = self.spool
        seq = spool.peek_seq(device)
        body = contract.encode(make(seq, ts_ms))
        own = device == self._gateway
        if not spool.admit(len(body), hold=own and self._can_hold()):
            return False
        spool.give_seq(device, seq)
        clock.record(device, ts_ms)
        self._emitted += 1
        if own:
            reading = PendingReading(channel, device, seq, ts_ms, body, time.time())
            self._own.append(reading)
            self._own_numbers.append(self._emitted)
            if spool.disk_full:
                self._send_direct(reading)
            return True
        batch = self._open.get(channel)
        if batch is None:
            batch = self._open[channel] = _OpenBatch(channel)
        batch.add(device, seq, ts_ms, body, time.time() if not batch.bodies else 0.0)
        batch.numbers.append(self._emitted)
        if len(batch.bodies) >= self._max_items:  # full: the spooler commits it next
            del self._open[channel]
            self._sealed.append(batch)
            self._wake()
        return True

    def _send_direct(self, reading: PendingReading) -> None:
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
        number = self.spool.direct_batch_number(reading.device, reading.seq, reading.ts)
        if number is None:
            return
        payload = batch_payload(number, self.clock.now_ms(), [reading.body])
        client.publish_nowait(
            self.topics[GatewayChannel(reading.channel)], payload, qos=1
        ).add_done_callback(_ignore)
        self.direct_sent += 1
        self.batches_sent += 1
        self.items_sent += 1

    def _can_hold(self) -> bool:
        """The gateway's own health readings are not refused while the disk fails: they
        wait in memory (up to HELD_MAX), and report the fault once it is over."""
        return len(self._own) < HELD_MAX

    def _wake(self) -> None:
        """Give the spooler work to look at (at most one wake-up until it looks)."""
        self._woken = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _sleep(self, seconds: float) -> None:
        """The spooler waits until woken or ``seconds`` have passed."""
        if self._woken:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(seconds, _wake_up, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def durable(self) -> bool:
        """Wait until every reading emitted so far is committed (or its commit failed)."""
        target = self._emitted
        while self._settled < target:
            self._force = True
            self._wake()
            await self._settled_event.wait()
        return target not in self._failed

    async def _spooler(self) -> None:
        """The one writer: commits each batch, in one transaction, when it is full, when
        its oldest reading has waited ``publish.max_batch_delay_s``, or at once when a
        driver waits for its readings (``durable``). Commits happen at most every
        ``spool.commit_interval_s``: batches due in between share one fsync. Nothing is
        sent before its commit, and a driver that acknowledges its device waits for it.
        """
        delay = self.settings.publish.max_batch_delay_s
        interval = self.settings.spool.commit_interval_s
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            oldest = min((b.created for b in self._open.values() if b.bodies), default=None)
            if self._own and not self.spool.disk_refusing():  # held: no hurry
                oldest = min(oldest or math.inf, self._own[0].created)
            timeout = delay if oldest is None else max(0.0, oldest + delay - time.time())
            await self._sleep(timeout + 0.001)
            wait = last + interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._woken = False
            last = loop.time()
            async with self._batching:
                await self._commit(force=False)

    async def _commit(self, force: bool) -> None:
        """Commit what is due (everything when forced or a driver waits) and publish it."""
        p = self.settings.publish
        force = force or self._force
        self._force = False
        now = time.time()
        held = self.spool.disk_refusing()  # the gateway's health waits for the disk
        due, self._sealed = self._sealed, []
        for channel, batch in list(self._open.items()):
            if batch.bodies and (force or held or now - batch.created >= p.max_batch_delay_s):
                del self._open[channel]
                due.append(batch)
        numbers = [n for b in due for n in b.numbers]
        own: list[PendingReading] = []
        if (
            self._own
            and not held
            and (
                force
                or len(self._own) >= self._max_items
                or now - self._own[0].created >= p.max_batch_delay_s
            )
        ):
            own, own_numbers = self._own, self._own_numbers
            self._own, self._own_numbers = [], []
        upto = self._emitted if force else None
        loop = asyncio.get_running_loop()
        if due:
            try:
                batches = await loop.run_in_executor(
                    None, self.spool.commit_batches, due, int(time.time() * 1000)
                )
            except SpoolWriteError:  # counted and logged by the spool; the agent goes on
                if len(self._failed) > 100_000:
                    self._failed.clear()
                self._failed.update(numbers)
                batches = []
            self._publish(batches)
        if own:  # its own commit: a failure keeps them for the next try, not dropped
            groups = [
                PendingBatch.of(own[0].channel, own[i : i + self._max_items])
                for i in range(0, len(own), self._max_items)
            ]
            try:
                batches = await loop.run_in_executor(
                    None, self.spool.commit_batches, groups, int(time.time() * 1000), True
                )
            except SpoolWriteError:
                self._own, self._own_numbers = own + self._own, own_numbers + self._own_numbers
                batches = []
            else:
                if not self._own:  # whatever went out straight away is stored now
                    self.spool.direct_stored()
            self._publish(batches)
        if upto is not None:
            self._settled = max(self._settled, upto)
            self._settled_event.set()
            self._settled_event = asyncio.Event()

    async def flush(self) -> None:
        """Commit everything taken so far (clean stop, tests). Waits for a commit the
        spooler has under way."""
        async with self._batching:
            await self._commit(force=True)

    def _publish(self, batches: list[SpooledBatch]) -> None:
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
        self.spool.mark_sent(sent)

    # -- tasks ---------------------------------------------------------------------
    async def _run_driver(self, driver: Driver) -> None:
        sink = _DeviceSink(self, driver.device_id, driver.profile.profile)
        backoff = Backoff(1, 60)
        while True:
            try:
                await driver.run(sink)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken device never stops the agent
                self.driver_restarts[driver_name(driver)] += 1
                delay = backoff.next_delay()
                log.error(
                    "device %s (%s driver) failed: %r; restarting it in %.0fs",
                    driver.device_id,
                    type(driver).__name__,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _housekeeping(self) -> None:
        """Deletions of acknowledged batches when no commit has taken them along for a
        second, and the age bound (every 10 s)."""
        tick = 0
        while True:
            await asyncio.sleep(1)
            tick += 1
            # while batches flow, the deletions ride on their commits
            if self.spool.needs_sync() and time.monotonic() - self.spool.last_write >= 1.0:
                with suppress(SpoolWriteError):  # counted and logged; tried again
                    await asyncio.to_thread(self.spool.sync)
            if tick % 10 == 0:
                self.spool.expire()
                # snapshots outlive their batch only when the agent stopped before the
                # ack: the spool's age bound applies to them too
                await asyncio.to_thread(self.snapshots.expire, self.settings.spool.max_age_s)

    async def _backlog(self) -> None:
        """Resend what is unacknowledged past the timeout, at a bounded rate."""
        p = self.settings.publish
        tick = 0.25
        per_tick = max(1, int(p.backlog_batches_per_s * tick))
        while True:
            with suppress(TimeoutError):  # woken at once by a (re)connection
                await asyncio.wait_for(self._resend.wait(), tick)
            self._resend.clear()
            self._publish(self.spool.due(p.ack_timeout_s, per_tick))

    async def _health(self) -> None:
        interval = self.settings.publish.health_interval_s
        last_sent, last_t = self.items_sent, time.monotonic()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            rate = (self.items_sent - last_sent) / max(now - last_t, 1e-9)
            last_sent, last_t = self.items_sent, now
            self.emit(
                self.settings.gateway, "gateway", self.health_values(rate), self.clock.now_ms()
            )

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
            "spool_used_pct": round(self.spool.used_pct, 2),
            "dropped": self.spool.dropped,
            "send_rate": round(send_rate, 2),
            "link": "online" if self.connected.is_set() else "offline",
            "disk_full": self.spool.disk_full,
            "spool_write_errors": self.spool.write_errors,
            "spool_resets": self.spool.resets_ever,
            "clock_steps": self.clock.steps,
            "clock_corrected": self.clock.corrected,
            **(
                {}
                if (offset := self.clock.offset_s()) is None
                else {"clock_offset_s": round(offset, 3)}
            ),
        }

    def _status(self, state: Literal["online", "offline"]) -> bytes:
        return contract.encode(
            contract.Status(
                state=state,
                ts=self.clock.now_ms(),
                boot=self.boot,
                agent=__version__,
                queued=self.spool.depth(),
                dropped=self.spool.dropped,
            )
        )

    async def _connection(self) -> None:
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
                        self.boot,
                        self.spool.depth(),
                    )
                    self.spool.forget_sent()  # the backlog task resends at its own pace
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
            self.spool.acknowledge([e.batch for e in ack.acks])
            self.snapshots.acknowledged([e.batch for e in ack.acks])
            self.batches_acked += len(ack.acks)
            for e in ack.acks:
                if e.rejected:
                    log.warning(
                        "ingest rejected %d item(s) of batch %d (see its dead letters)",
                        e.rejected,
                        e.batch,
                    )

    async def run(self) -> None:
        if not await self._wait_for_spool():
            return
        try:
            async with serve_metrics(
                self.settings.metrics,
                self.registry,
                service="edge",
                before_scrape=self.metrics.refresh,
            ) as endpoint:
                self.metrics_endpoint = endpoint
                await self._run_tasks()
        finally:
            self.spool.close()

    async def _run_tasks(self) -> None:
        async with asyncio.TaskGroup() as tg:
            producers = [
                tg.create_task(self._run_driver(d), name=f"device-{d.device_id}")
                for d in self.drivers
            ]
            producers.append(tg.create_task(self._health(), name="health"))
            others = [
                tg.create_task(self._spooler(), name="spooler"),
                tg.create_task(self._housekeeping(), name="housekeeping"),
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

    async def _drain(self) -> None:
        """Clean stop: spool what is buffered, then wait a while for its acks."""
        await self.flush()
        held = self._own
        if held:  # health readings the failing disk never took
            self.spool.release(sum(len(r.body) for r in held))
            self.spool.count_dropped(len(held), "the disk still refused writes at the stop")
        deadline = time.monotonic() + self.settings.publish.drain_timeout_s
        while self.spool.depth() and self.connected.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self.spool.depth():
            log.info(
                "edge stopping with %d batch(es) spooled; they are sent on next start",
                self.spool.depth(),
            )

    async def _goodbye(self) -> None:
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


class _DeviceSink:
    """What a driver sees of the agent: emit readings of its device, wait for durability."""

    def __init__(self, agent: Agent, device: str, profile: str) -> None:
        self._agent, self._device, self._profile = agent, device, profile

    def now_ms(self) -> int:
        return self._agent.clock.now_ms()

    def gateway_ms(self, wall_ms: int) -> int:
        return self._agent.clock.map_ms(wall_ms)

    def emit(self, values: Values, ts_ms: int) -> bool:
        return self._agent.emit(self._device, self._profile, values, ts_ms)

    def emit_attendance(self, worker: str, direction: str, method: str, ts_ms: int) -> bool:
        return self._agent.emit_attendance(self._device, worker, direction, method, ts_ms)

    async def emit_camera(
        self,
        event: contract.CameraEvent,
        zone: str | None,
        count: int,
        confidence: float | None,
        method: contract.DetectionMethod | None,
        snapshot: tuple[bytes, str] | None,
        ts_ms: int,
    ) -> bool:
        return await self._agent.emit_camera(
            self._device, event, zone, count, confidence, method, snapshot, ts_ms
        )

    async def durable(self) -> bool:
        return await self._agent.durable()


def _wake_up(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _ignore(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()


async def run_agent(settings: EdgeSettings) -> None:
    agent = Agent(settings)
    stop_on_signals(agent.stop)
    await agent.run()


__all__ = ["Agent", "DeviceConfig", "build_drivers", "run_agent"]

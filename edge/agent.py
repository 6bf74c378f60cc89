"""``sitewatch edge``: sample the site's devices, spool every batch, publish, handle acks.

Tasks (one TaskGroup): one per device driver (:mod:`edge.devices`), the
spooler that commits their batches (:mod:`edge.spooler`), the housekeeping of
the spool, the backlog's resends, the health reporter and the broker connection
(:mod:`edge.link`). The agent opens the spool (waiting while its disk cannot
be used), counts the boot, wires the metrics, and at a clean stop commits what it holds,
waits a while for the acks and says ``offline``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from edge.clock import GatewayClock
from edge.config import EdgeSettings
from edge.devices import DeviceSink, build_drivers, run_driver
from edge.drivers import Driver, Values
from edge.link import BrokerLink, State
from edge.metrics import EdgeCollector
from edge.outbox import SnapshotOutbox
from edge.spool import (
    FullPolicy,
    Spool,
    SpoolLimits,
    SpoolUnavailable,
    SpoolWriteError,
)
from edge.spooler import Spooler
from sitewatch import __version__
from sitewatch.core import contract
from sitewatch.core.metrics import MetricsEndpoint, new_registry, serve_metrics
from sitewatch.core.profiles import ProfileSet, load_profiles
from sitewatch.core.signals import stop_on_signals
from sitewatch.core.topics import GatewayChannel, gateway_topic, snapshot_topic

log = logging.getLogger("sitewatch.edge")


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
        #: the gateway's time: what readings the gateway samples are stamped with
        self.clock = GatewayClock(settings.clock.policy(), wall=wall_clock)
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
        #: the broker session: publishes batches, reads acks
        self.link = BrokerLink(
            settings, self.topics, self.clock, self.snapshots, lambda: self.spool, self._status
        )
        #: readings into batches into the spool: the one writer
        self.spooler = Spooler(settings, self.link, self.snapshots)
        #: tries to open the spool that failed (disk full, I/O error: not corrupt)
        self.spool_open_failures = 0
        try:
            self._open_spool()
        except SpoolUnavailable as exc:  # run() waits for it
            self._spool_unavailable(exc)
        self._stop = asyncio.Event()
        #: per driver name: failures that restarted a device's driver
        self.driver_restarts: Counter[str] = Counter()
        self.metrics = EdgeCollector(self)
        self.registry = new_registry("edge")
        self.registry.register(self.metrics)
        self.metrics_endpoint: MetricsEndpoint | None = None

    def stop(self) -> None:
        self._stop.set()

    # -- the spool: opening, waiting for a disk that cannot be used yet ------------
    @property
    def spool(self) -> Spool:
        return self.spooler.spool

    def _open_spool(self) -> None:
        sp = self.settings.spool
        spool = Spool(
            Path(self.settings.state_dir) / "spool.sqlite",
            SpoolLimits(sp.max_bytes, sp.max_age_s, FullPolicy(sp.policy)),
        )
        self.clock.start_after(max(spool.last_timestamps().values(), default=0))
        self.spooler.use(spool)

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
                if not self.spooler.is_open:
                    await asyncio.to_thread(self._open_spool)
                self.boot = await asyncio.to_thread(self.spool.next_boot)
                return True
            except SpoolUnavailable as exc:
                self._spool_unavailable(exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.SPOOL_RETRY_S)
                return False

    # -- what the agent counts (read by its metrics, status and tests) -------------
    @property
    def connected(self) -> asyncio.Event:
        """Set while the broker link is up."""
        return self.link.connected

    @property
    def items_sent(self) -> int:
        return self.link.items_sent

    @property
    def batches_sent(self) -> int:
        return self.link.batches_sent

    @property
    def direct_sent(self) -> int:
        """The gateway's health readings sent outside the spool while the disk was full."""
        return self.link.direct_sent

    @property
    def batches_acked(self) -> int:
        return self.link.batches_acked

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
        return self.spooler.readings_taken

    @property
    def adjusted_ts(self) -> int:
        """Readings whose timestamp was moved 1 ms past the device's previous one."""
        return self.spooler.adjusted_ts

    # -- readings (the drivers' sinks go to the spooler straight) ------------------
    def emit(
        self,
        device: str,
        profile: str,
        values: Values,
        ts_ms: int,
        channel: GatewayChannel = GatewayChannel.TELEMETRY,
    ) -> bool:
        """Take a reading (see :meth:`Spooler.emit`)."""
        return self.spooler.emit(device, profile, values, ts_ms, channel)

    async def flush(self) -> None:
        """Commit everything taken so far (clean stop, tests)."""
        await self.spooler.flush()

    async def _commit(self, force: bool) -> None:
        """One commit round of the spooler (tests: the power goes right after)."""
        await self.spooler.commit(force)

    # -- tasks ---------------------------------------------------------------------
    async def _run_driver(self, driver: Driver) -> None:
        sink = DeviceSink(self.spooler, self.clock, driver.device_id, driver.profile.profile)
        await run_driver(driver, sink, self.driver_restarts)

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

    def _status(self, state: State) -> bytes:
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
                tg.create_task(self.spooler.run(), name="spooler"),
                tg.create_task(self._housekeeping(), name="housekeeping"),
                tg.create_task(self.link.backlog(), name="backlog"),
                tg.create_task(self.link.run(self.boot), name="connection"),
            ]
            await self._stop.wait()
            for t in producers:
                t.cancel()
            await self._drain()
            await self.link.goodbye()
            for t in others:
                t.cancel()

    async def _drain(self) -> None:
        """Clean stop: spool what is buffered, then wait a while for its acks."""
        await self.flush()
        self.spooler.give_up_held()  # health readings the failing disk never took
        deadline = time.monotonic() + self.settings.publish.drain_timeout_s
        while self.spool.depth() and self.connected.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self.spool.depth():
            log.info(
                "edge stopping with %d batch(es) spooled; they are sent on next start",
                self.spool.depth(),
            )


async def run_agent(settings: EdgeSettings) -> None:
    agent = Agent(settings)
    stop_on_signals(agent.stop)
    await agent.run()


__all__ = ["Agent", "run_agent"]

"""Readings into the spool: each reading taken (its timestamp made to increase per device,
its seq given, admitted to the spool) goes into its channel's batch in memory; the
spooler, the one writer, commits batches and hands what it committed to the broker link.

A batch is committed when it is full, when its oldest reading has waited
``publish.max_batch_delay_s``, or at once when a driver waits for its readings
(``durable``); batches due together share one commit (one fsync), at most every
``spool.commit_interval_s``. Nothing is sent before its commit. The gateway's own health
readings are not refused while the disk fails: they wait in memory (up to
:data:`HELD_MAX`), and go out straight away too, outside the spool.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import msgspec

from edge.config import EdgeSettings
from edge.drivers import Values
from edge.link import BrokerLink
from edge.outbox import SnapshotOutbox
from edge.spool import PendingBatch, PendingReading, Spool, SpoolWriteError
from sitewatch.core import contract
from sitewatch.core.devicetime import DeviceClock
from sitewatch.core.topics import GatewayChannel

#: the gateway's own health readings kept in memory while the disk refuses writes
HELD_MAX = 1000


class _OpenBatch(PendingBatch):
    """A channel's batch being filled, with the agent's numbers of its readings."""

    __slots__ = ("numbers",)

    def __init__(self, channel: str) -> None:
        super().__init__(channel)
        self.numbers: list[int] = []


class Spooler:
    """Takes the readings of every device into batches and is the spool's one writer;
    what it commits goes to the broker link."""

    def __init__(self, settings: EdgeSettings, link: BrokerLink, snapshots: SnapshotOutbox) -> None:
        self.settings = settings
        self._link = link
        self._snapshots = snapshots
        self._spool: Spool | None = None
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
        self._force = False  # a driver waits: commit partial batches now
        #: the spooler's commit round and flush() never interleave
        self._batching = asyncio.Lock()
        self._emitted = 0  # readings taken
        self._settled = 0  # every reading up to this one is committed or failed
        self._failed: set[int] = set()  # numbers of recent readings whose commit failed
        self._settled_event = asyncio.Event()
        self._clock = DeviceClock()

    @property
    def spool(self) -> Spool:
        if self._spool is None:
            raise RuntimeError("the spool is not open (yet)")
        return self._spool

    @property
    def is_open(self) -> bool:
        """The spool is open (the agent may wait for its disk at start)."""
        return self._spool is not None

    def use(self, spool: Spool) -> None:
        """The spool is open: readings go into it, and no reading is stamped at or
        before one it has."""
        for device, ts in spool.last_timestamps().items():
            self._clock.seed(device, ts)  # no reading stamped at or before one sent
        self._spool = spool

    @property
    def readings_taken(self) -> int:
        """Readings and gate events taken into the spool since the agent started."""
        return self._emitted

    @property
    def adjusted_ts(self) -> int:
        """Readings whose timestamp was moved 1 ms past the device's previous one."""
        return self._clock.adjusted

    # -- readings ------------------------------------------------------------------
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
        if snapshot is not None and await self._snapshots.keep(device, *snapshot):
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
            self._snapshots.drop(sha)
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
                self._link.send_direct(reading)
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

    def _can_hold(self) -> bool:
        """The gateway's own health readings are not refused while the disk fails: they
        wait in memory (up to HELD_MAX), and report the fault once it is over."""
        return len(self._own) < HELD_MAX

    def give_up_held(self) -> None:
        """At the stop: the health readings the failing disk never took are lost."""
        held = self._own
        if held:
            self.spool.release(sum(len(r.body) for r in held))
            self.spool.count_dropped(len(held), "the disk still refused writes at the stop")

    # -- commits -------------------------------------------------------------------
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

    async def run(self) -> None:
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
                await self.commit(force=False)

    async def flush(self) -> None:
        """Commit everything taken so far (clean stop, tests). Waits for a commit the
        spooler has under way."""
        async with self._batching:
            await self.commit(force=True)

    async def commit(self, force: bool) -> None:
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
            self._link.publish(batches)
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
            self._link.publish(batches)
        if upto is not None:
            self._settled = max(self._settled, upto)
            self._settled_event.set()
            self._settled_event = asyncio.Event()


def _wake_up(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)

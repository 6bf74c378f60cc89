"""What every device driver is: its own options model and an async ``run``."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from sitewatch.core.contract import CameraEvent, DetectionMethod
from sitewatch.core.profiles import Profile

Values = dict[str, float | int | bool | str]


class Sink(Protocol):
    """Where a driver hands its device's readings."""

    def now_ms(self) -> int:
        """The gateway's time now (edge/clock.py): what a reading the gateway samples is
        stamped with. Never ``time.time()``: the wall clock steps, the timeline does not
        run back (docs/wire-contract.md#time). A device that says when it sampled keeps
        its own time."""

    def gateway_ms(self, wall_ms: int) -> int:
        """:meth:`now_ms` for a moment ago that the wall clock stamped ``wall_ms`` (a
        camera frame, stamped by the thread that read it)."""

    def emit(self, values: Values, ts_ms: int) -> bool:
        """Take a reading; False if the spool refused it (full or disk full; counted)."""

    def emit_attendance(self, worker: str, direction: str, method: str, ts_ms: int) -> bool:
        """Take a gate event (the attendance channel of the contract)."""

    async def emit_camera(
        self,
        event: CameraEvent,
        zone: str | None,
        count: int,
        confidence: float | None,
        method: DetectionMethod | None,
        snapshot: tuple[bytes, str] | None,
        ts_ms: int,
    ) -> bool:
        """Take a camera analytics event (the camera channel), with its snapshot (JPEG
        bytes and their SHA-256), which is kept until ingest has the event."""

    async def durable(self) -> bool:
        """Wait until everything emitted so far is committed to the spool; False if a
        commit failed. Drivers that acknowledge to their device do so only after this."""


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Driver(ABC):
    """A device the agent reads. ``Options`` validates ``devices[].options`` at start-up."""

    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(
        self, device_id: str, profile: Profile, interval_s: float, options: BaseModel
    ) -> None:
        self.device_id = device_id
        self.profile = profile
        self.interval_s = interval_s
        self.options = options

    @abstractmethod
    async def run(self, sink: Sink) -> None:
        """Produce readings until cancelled."""


class PollingDriver(Driver):
    """A driver that is asked for a reading every ``interval_s`` seconds."""

    @abstractmethod
    async def read(self) -> Values | None:
        """One reading, or None when the device gave none this time."""

    async def run(self, sink: Sink) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            values = await self.read()
            if values is not None:
                sink.emit(values, sink.now_ms())
            next_at += self.interval_s
            delay = next_at - loop.time()
            if delay < 0:  # fell behind (slow device): skip, do not burst
                next_at = loop.time()
                delay = 0
            await asyncio.sleep(delay)

"""What every device driver is: its own options model and an async ``run``."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from sitewatch.profiles import Profile

Values = dict[str, float | int | bool | str]
#: emit(values, ts_ms): hand a reading to the agent (it is spooled and published)
Emit = Callable[[Values, int], None]


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Driver(ABC):
    """A device the agent reads. ``Options`` validates ``devices[].options`` at start-up."""

    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, device_id: str, profile: Profile, interval_s: float,
                 options: BaseModel) -> None:
        self.device_id = device_id
        self.profile = profile
        self.interval_s = interval_s
        self.options = options

    @abstractmethod
    async def run(self, emit: Emit) -> None:
        """Produce readings until cancelled."""


class PollingDriver(Driver):
    """A driver that is asked for a reading every ``interval_s`` seconds."""

    @abstractmethod
    async def read(self) -> Values | None:
        """One reading, or None when the device gave none this time."""

    async def run(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            values = await self.read()
            if values is not None:
                emit(values, int(time.time() * 1000))
            next_at += self.interval_s
            delay = next_at - loop.time()
            if delay < 0:  # fell behind (slow device): skip, do not burst
                next_at = loop.time()
                delay = 0
            await asyncio.sleep(delay)

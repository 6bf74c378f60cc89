"""The gateway's devices: each one's driver built from the configuration (every error
names its key), the sink through which it hands its readings to the spooler, and its
run, restarted with backoff when it fails (a broken device never stops the agent)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from pydantic import ValidationError

from edge.clock import GatewayClock
from edge.config import EdgeSettings
from edge.drivers import DRIVERS, Driver, Values
from edge.metrics import driver_name
from edge.spooler import Spooler
from sitewatch.core import contract
from sitewatch.core.backoff import Backoff
from sitewatch.core.profiles import ProfileSet
from sitewatch.core.settings import ConfigError

log = logging.getLogger("sitewatch.edge")


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


async def run_driver(driver: Driver, sink: DeviceSink, restarts: Counter[str]) -> None:
    """Run ``driver`` until it returns; a failure is counted in ``restarts`` (by driver
    name) and the driver started again after a backoff."""
    backoff = Backoff(1, 60)
    while True:
        try:
            await driver.run(sink)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken device never stops the agent
            restarts[driver_name(driver)] += 1
            delay = backoff.next_delay()
            log.error(
                "device %s (%s driver) failed: %r; restarting it in %.0fs",
                driver.device_id,
                type(driver).__name__,
                exc,
                delay,
            )
            await asyncio.sleep(delay)


class DeviceSink:
    """What a driver sees of the agent: emit readings of its device, wait for durability."""

    def __init__(self, spooler: Spooler, clock: GatewayClock, device: str, profile: str) -> None:
        self._spooler, self._clock = spooler, clock
        self._device, self._profile = device, profile

    def now_ms(self) -> int:
        return self._clock.now_ms()

    def gateway_ms(self, wall_ms: int) -> int:
        return self._clock.map_ms(wall_ms)

    def emit(self, values: Values, ts_ms: int) -> bool:
        return self._spooler.emit(self._device, self._profile, values, ts_ms)

    def emit_attendance(self, worker: str, direction: str, method: str, ts_ms: int) -> bool:
        return self._spooler.emit_attendance(self._device, worker, direction, method, ts_ms)

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
        return await self._spooler.emit_camera(
            self._device, event, zone, count, confidence, method, snapshot, ts_ms
        )

    async def durable(self) -> bool:
        return await self._spooler.durable()

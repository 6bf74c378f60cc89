"""``driver: simulated``: a device played by the simulators' signal model and scenarios."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from edge.drivers.base import PollingDriver, Values
from edge.drivers.simulated.scenarios import ActiveScenario, SimulatedDevice
from sitewatch.core.profiles import Profile


class ScenarioOption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    start_s: float = Field(default=0.0, ge=0)
    duration_s: float = Field(default=float("inf"), gt=0)


class SimulatedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 1
    scenarios: list[ScenarioOption] = Field(default_factory=list)
    #: the simulated site's offset from UTC (working hours, day and night)
    utc_offset_h: float = Field(default=8.0, ge=-12, le=14)


class SimulatedDriver(PollingDriver):
    Options = SimulatedOptions

    def __init__(
        self, device_id: str, profile: Profile, interval_s: float, options: BaseModel
    ) -> None:
        super().__init__(device_id, profile, interval_s, options)
        assert isinstance(options, SimulatedOptions)
        scenarios = tuple(
            ActiveScenario(s.name, s.start_s, s.duration_s) for s in options.scenarios
        )
        self.device = SimulatedDevice(
            profile.profile, device_id, options.seed, time.time(), scenarios, options.utc_offset_h
        )

    async def read(self) -> Values | None:
        return self.device.sample(time.time())

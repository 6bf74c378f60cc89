"""Scenario hooks: named, timed disturbances layered on the normal signals.

A scenario is active from ``start_s`` for ``duration_s`` seconds of simulation time and
changes a device's values (or silences it). Later issues use them to drive alert rules
end to end; demos use them to show what an alert looks like.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge.drivers.simulated.signals import Values

#: f(values, progress 0..1) -> values, or None to make the device silent
Effect = Callable[[Values, float], Values | None]


def _crane_overload(v: Values, p: float) -> Values:
    # ramps to 115 % of rated load and moment
    pct = 85.0 + 30.0 * min(1.0, p * 2)
    return {
        **v,
        "load_pct": round(pct, 2),
        "moment_pct": round(pct * 0.97, 2),
        "load_t": round(8.0 * pct / 100, 3),
    }


def _high_wind(v: Values, p: float) -> Values:
    return {**v, "wind_ms": 13.5}  # Beaufort 6 is 10.8-13.8 m/s


def _dust_spike(v: Values, p: float) -> Values:
    return {**v, "pm10": 260.0, "pm25": 140.0, "tsp": 1200.0}


def _night_noise(v: Values, p: float) -> Values:
    return {**v, "noise_dba": 74.0}


def _pit_trend(v: Values, p: float) -> Values:
    # displacement growing 4 mm per simulated day-equivalent of the scenario
    base = float(v.get("displacement_mm", 5.0))
    return {**v, "displacement_mm": round(base + 30.0 * p, 3)}


def _formwork_settlement(v: Values, p: float) -> Values:
    # settlement ramps to 10 mm (alarm at 8) and the support leans with it
    return {
        **v,
        "settlement_mm": round(1.5 + 8.5 * p, 3),
        "displacement_mm": round(float(v.get("displacement_mm", 2.0)) + 8.0 * p, 3),
    }


def _door_open_moving(v: Values, p: float) -> Values:
    return {**v, "door_closed": False, "speed_ms": 0.8}


def _residual_current(v: Values, p: float) -> Values:
    return {**v, "residual_ma": 420.0}


def _silent(v: Values, p: float) -> None:
    return None


@dataclass(frozen=True)
class ScenarioKind:
    profiles: frozenset[str]
    effect: Effect
    description: str


#: Every scenario in one visible place.
SCENARIOS: dict[str, ScenarioKind] = {
    "crane_overload": ScenarioKind(
        frozenset({"tower_crane"}), _crane_overload, "load and moment ramp to 115 % of rated"
    ),
    "high_wind": ScenarioKind(
        frozenset({"tower_crane", "environment"}), _high_wind, "wind 13.5 m/s (above Beaufort 6)"
    ),
    "dust_spike": ScenarioKind(
        frozenset({"environment"}), _dust_spike, "PM10 260 µg/m³, TSP 1.2 mg/m³"
    ),
    "night_noise": ScenarioKind(
        frozenset({"environment"}), _night_noise, "74 dB(A) (above the 55 dB(A) night limit)"
    ),
    "pit_displacement_trend": ScenarioKind(
        frozenset({"foundation_pit"}), _pit_trend, "wall-top displacement grows by 30 mm"
    ),
    "formwork_settlement": ScenarioKind(
        frozenset({"high_formwork"}),
        _formwork_settlement,
        "settlement ramps to 10 mm, displacement by 8 mm",
    ),
    "hoist_door_open": ScenarioKind(
        frozenset({"construction_hoist"}), _door_open_moving, "cage moves with its door open"
    ),
    "residual_current": ScenarioKind(
        frozenset({"electrical"}), _residual_current, "residual current 420 mA"
    ),
    "device_silent": ScenarioKind(frozenset(), _silent, "the device stops reporting"),
}


@dataclass(frozen=True)
class ActiveScenario:
    name: str
    start_s: float = 0.0
    duration_s: float = float("inf")

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.name!r}; have {sorted(SCENARIOS)}")
        if self.start_s < 0 or self.duration_s <= 0:
            raise ValueError("scenario start must be >= 0 and duration > 0")

    def applies_to(self, profile: str) -> bool:
        kind = SCENARIOS[self.name]
        return not kind.profiles or profile in kind.profiles

    def apply(self, values: Values, elapsed_s: float) -> Values | None:
        """``elapsed_s`` since the simulation started; returns values unchanged outside."""
        if not (self.start_s <= elapsed_s < self.start_s + self.duration_s):
            return values
        span = self.duration_s if self.duration_s != float("inf") else 600.0
        progress = min(1.0, (elapsed_s - self.start_s) / span)
        return SCENARIOS[self.name].effect(values, progress)


class SimulatedDevice:
    """A signal model with its scenarios, sampled by wall-clock time."""

    def __init__(
        self,
        profile: str,
        device: str,
        seed: int | str,
        start: float,
        scenarios: tuple[ActiveScenario, ...] = (),
        utc_offset_h: float = 8.0,
    ) -> None:
        from edge.drivers.simulated.signals import SiteClock, signal_for

        self.profile = profile
        self.device = device
        self.start = start
        self.signal = signal_for(
            profile, f"{seed}/{device}", start, SiteClock(utc_offset_h=utc_offset_h)
        )
        bad = [s.name for s in scenarios if not s.applies_to(profile)]
        if bad:
            raise ValueError(f"scenario(s) {bad} do not apply to profile {profile!r}")
        self.scenarios = scenarios

    def sample(self, t: float) -> Values | None:
        values: Values | None = self.signal.sample(t)
        for s in self.scenarios:
            if values is None:
                break
            values = s.apply(values, t - self.start)
        return values

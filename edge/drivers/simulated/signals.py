"""Plausible signals for every device profile: noise, daily cycles, working hours.

Each model is a pure function of time plus a seeded RNG and a little state, so a run is
reproducible from its seed. Times are UTC epoch seconds; the site's local time (for
working hours and day/night) uses the site's UTC offset (China: +8 h).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

Values = dict[str, float | int | bool | str]

CHINA_UTC_OFFSET_H = 8.0


@dataclass(frozen=True)
class SiteClock:
    utc_offset_h: float = CHINA_UTC_OFFSET_H
    work_start_h: float = 7.0
    work_end_h: float = 18.0

    def local_hour(self, t: float) -> float:
        return ((t / 3600.0) + self.utc_offset_h) % 24.0

    def working(self, t: float) -> bool:
        h = self.local_hour(t)
        return self.work_start_h <= h < self.work_end_h

    def daylight(self, t: float) -> float:
        """0 at 03:00 local, 1 at 15:00: a smooth daily cycle."""
        return 0.5 - 0.5 * math.cos(2 * math.pi * (self.local_hour(t) - 3.0) / 24.0)


class SignalModel(Protocol):
    def sample(self, t: float) -> Values: ...


def _clip(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


@dataclass
class TowerCrane:
    rng: random.Random
    clock: SiteClock = field(default_factory=SiteClock)
    rated_t: float = 8.0
    _lift_until: float = 0.0
    _load: float = 0.0
    _slew: float = 0.0

    def sample(self, t: float) -> Values:
        r = self.rng
        if self.clock.working(t):
            if t >= self._lift_until:  # a new lift every 1-4 minutes
                self._lift_until = t + r.uniform(60, 240)
                self._load = r.uniform(0.5, 0.75) * self.rated_t if r.random() < 0.7 else 0.2
            self._slew = (self._slew + r.uniform(-3, 3)) % 360
        else:
            self._load = 0.0
        load = max(0.0, self._load + r.gauss(0, 0.03))
        radius = 20.0 + 15.0 * math.sin(t / 97.0)
        moment = load * radius / (self.rated_t * 35.0) * 100.0
        wind = _clip(3.0 + 3.0 * self.clock.daylight(t) + r.gauss(0, 0.6), 0, 74)
        return {
            "load_t": round(load, 3),
            "load_pct": round(_clip(load / self.rated_t * 100.0, 0, 249), 2),
            "moment_pct": round(_clip(moment, 0, 249), 2),
            "radius_m": round(radius, 2),
            "height_m": round(30.0 + 10.0 * math.sin(t / 61.0), 2),
            "slew_deg": round(self._slew, 1),
            "wind_ms": round(wind, 2),
            "tilt_permille": round(_clip(0.8 + r.gauss(0, 0.05), 0, 99), 3),
        }


@dataclass
class Hoist:
    rng: random.Random
    clock: SiteClock = field(default_factory=SiteClock)
    rated_kg: float = 2000.0
    _floor: int = 0
    _target: int = 0

    def sample(self, t: float) -> Values:
        r = self.rng
        speed = 0.0
        if self.clock.working(t):
            if self._floor == self._target:
                self._target = r.randint(0, 30)
            step = 1 if self._target > self._floor else -1
            self._floor += step
            speed = 0.8 * step
        load = r.uniform(200, 1200) if self.clock.working(t) else 0.0
        return {
            "load_kg": round(load, 1),
            "load_pct": round(load / self.rated_kg * 100.0, 2),
            "speed_ms": speed,
            "height_m": round(self._floor * 3.0, 2),
            "floor": self._floor,
            "door_closed": speed != 0.0 or r.random() < 0.5,
            "riders": r.randint(0, 8) if speed else 0,
        }


@dataclass
class Environment:
    rng: random.Random
    clock: SiteClock = field(default_factory=SiteClock)

    def sample(self, t: float) -> Values:
        r = self.rng
        work = self.clock.working(t)
        day = self.clock.daylight(t)
        pm10 = _clip(45 + (20 if work else 0) + r.gauss(0, 6), 1, 9999)
        noise = _clip((62 if work else 45) + r.gauss(0, 3), 21, 139)
        return {
            "pm25": round(pm10 * 0.55, 1),
            "pm10": round(pm10, 1),
            "tsp": round(pm10 * 2.2 + r.gauss(0, 10), 1) if pm10 * 2.2 > 20 else 20.0,
            "noise_dba": round(noise, 1),
            "wind_ms": round(_clip(2.0 + 3.0 * day + r.gauss(0, 0.5), 0, 74), 2),
            "wind_dir_deg": round(r.uniform(0, 359.9), 1),
            "temp_c": round(8.0 + 10.0 * day + r.gauss(0, 0.2), 2),
            "rh_pct": round(_clip(70 - 30 * day + r.gauss(0, 2), 1, 100), 1),
            "pressure_kpa": round(101.3 + r.gauss(0, 0.05), 2),
        }


@dataclass
class FoundationPit:
    rng: random.Random
    start: float = 0.0
    mm_per_day: float = 0.4

    def sample(self, t: float) -> Values:
        r = self.rng
        days = max(0.0, (t - self.start) / 86400.0) if self.start else 0.0
        return {
            "displacement_mm": round(5.0 + self.mm_per_day * days + r.gauss(0, 0.05), 3),
            "settlement_mm": round(3.0 + 0.2 * days + r.gauss(0, 0.05), 3),
            "strut_force_pct": round(_clip(45 + r.gauss(0, 0.5), 0, 299), 2),
            "groundwater_mm": round(120 + 10 * days + r.gauss(0, 2), 1),
        }


@dataclass
class HighFormwork:
    rng: random.Random

    def sample(self, t: float) -> Values:
        r = self.rng
        return {
            "displacement_mm": round(_clip(2.0 + r.gauss(0, 0.1), -199, 199), 3),
            "settlement_mm": round(_clip(1.5 + r.gauss(0, 0.1), -199, 199), 3),
            "tilt_permille": round(_clip(0.6 + r.gauss(0, 0.05), 0, 99), 3),
            "axial_force_kn": round(_clip(40 + r.gauss(0, 1), 0, 999), 2),
        }


@dataclass
class Electrical:
    rng: random.Random
    clock: SiteClock = field(default_factory=SiteClock)

    def sample(self, t: float) -> Values:
        r = self.rng
        work = self.clock.working(t)
        current = _clip((120 if work else 15) + r.gauss(0, 5), 0, 1999)
        return {
            "residual_ma": round(_clip(12 + r.gauss(0, 2), 0, 4999), 1),
            "cable_temp_c": round(_clip(20 + current * 0.12 + r.gauss(0, 0.3), -39, 249), 2),
            "current_a": round(current, 1),
            "voltage_v": round(_clip(230 + r.gauss(0, 2), 0, 499), 1),
        }


@dataclass
class Gateway:
    """Simulated gateway health (the real agent reports its own)."""

    rng: random.Random

    def sample(self, t: float) -> Values:
        return {
            "cpu_pct": round(_clip(15 + self.rng.gauss(0, 3), 0, 100), 1),
            "disk_free_pct": 72.0,
            "queued": 0,
            "oldest_unsent_s": 0.0,
            "spool_used_pct": 0.0,
            "dropped": 0,
            "send_rate": 1.0,
            "link": "online",
        }


@dataclass
class AttendanceGate:
    """The gate terminal's own health (its gate events come from the terminal simulator)."""

    rng: random.Random
    clock: SiteClock = field(default_factory=SiteClock)

    def sample(self, t: float) -> Values:
        inside = self.rng.randint(120, 200) if self.clock.working(t) else self.rng.randint(0, 5)
        return {
            "workers_inside": inside,
            "temp_c": round(
                _clip(25 + 8 * self.clock.daylight(t) + self.rng.gauss(0, 0.3), -39, 84), 2
            ),
        }


@dataclass
class CameraStatus:
    """A camera's status as its edge analytics report it (the video itself comes from
    :mod:`simulators.camera_video`); now and then the picture is lost."""

    rng: random.Random
    clock: SiteClock = field(default_factory=SiteClock)

    def sample(self, t: float) -> Values:
        online = self.rng.random() > 0.01
        people = self.rng.randint(2, 12) if self.clock.working(t) else 0
        return {
            "online": online,
            "frozen": False,
            "covered": False,
            "fps": round(_clip(2.0 + self.rng.gauss(0, 0.05), 0, 30), 2) if online else 0.0,
            "people": people if online else 0,
        }


SignalFactory = Callable[[random.Random, float, SiteClock], SignalModel]

#: One signal model per device profile: the simulators' registry.
SIGNALS: dict[str, SignalFactory] = {
    "tower_crane": lambda rng, start, clock: TowerCrane(rng, clock=clock),
    "construction_hoist": lambda rng, start, clock: Hoist(rng, clock=clock),
    "environment": lambda rng, start, clock: Environment(rng, clock=clock),
    "foundation_pit": lambda rng, start, clock: FoundationPit(rng, start=start),
    "high_formwork": lambda rng, start, clock: HighFormwork(rng),
    "electrical": lambda rng, start, clock: Electrical(rng, clock=clock),
    "gateway": lambda rng, start, clock: Gateway(rng),
    "attendance_gate": lambda rng, start, clock: AttendanceGate(rng, clock=clock),
    "camera_status": lambda rng, start, clock: CameraStatus(rng, clock=clock),
}


def signal_for(
    profile: str, seed: int | str, start: float = 0.0, clock: SiteClock | None = None
) -> SignalModel:
    try:
        factory = SIGNALS[profile]
    except KeyError:
        raise ValueError(f"no simulator for profile {profile!r}; have {sorted(SIGNALS)}") from None
    return factory(random.Random(str(seed)), start, clock or SiteClock())

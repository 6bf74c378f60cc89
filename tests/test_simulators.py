import random

import pytest

from edge.drivers.simulated.scenarios import SCENARIOS, ActiveScenario, SimulatedDevice
from edge.drivers.simulated.signals import SiteClock, signal_for
from sitewatch.core.backoff import Backoff

T0 = 1_763_900_000.0  # 2025-11-23 12:13 UTC = 20:13 in China


def test_signals_are_reproducible() -> None:
    a = signal_for("tower_crane", 5).sample(T0)
    b = signal_for("tower_crane", 5).sample(T0)
    assert a == b


def test_working_hours_in_site_local_time() -> None:
    clock = SiteClock()
    assert clock.local_hour(0) == 8.0
    assert clock.working(3600 * 2)  # 10:00 local
    assert not clock.working(3600 * 12)  # 20:00 local
    crane = signal_for("tower_crane", 1)
    night = [crane.sample(3600 * 14 + i)["load_t"] for i in range(10)]
    assert max(night) < 0.2  # no lifting at 22:00


def test_scenario_window_and_effects() -> None:
    dev = SimulatedDevice(
        "tower_crane", "TC1", 1, T0, (ActiveScenario("crane_overload", start_s=10, duration_s=20),)
    )
    before, during, after = dev.sample(T0 + 5), dev.sample(T0 + 25), dev.sample(T0 + 40)
    assert before and during and after
    assert float(during["load_pct"]) >= 110 and float(before["load_pct"]) < 90
    silent = SimulatedDevice("environment", "E1", 1, T0, (ActiveScenario("device_silent", 0, 5),))
    assert silent.sample(T0 + 1) is None and silent.sample(T0 + 6) is not None


def test_unknown_or_misapplied_scenario() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        ActiveScenario("earthquake")
    with pytest.raises(ValueError, match="do not apply"):
        SimulatedDevice("tower_crane", "T", 1, T0, (ActiveScenario("dust_spike"),))
    assert "device_silent" in SCENARIOS


def test_backoff_grows_with_jitter_and_caps() -> None:
    b = Backoff(1, 8, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(6)]
    assert 0.5 <= delays[0] <= 1 and 1 <= delays[1] <= 2
    assert all(4 <= d <= 8 for d in delays[3:])
    b.reset()
    assert b.next_delay() <= 1

"""The demo's story, offline: each site's devices played by the simulated driver's
signal models with the demo's scenarios (sitewatch/programs/demo/sites.py) for ten
simulated minutes, their readings judged by the alert engine with the profiles' own
rules. Only the planned alerts are raised, each in its planned minutes, a few open at
once per site, and they clear by themselves. (The camera and the gate terminals are not
signal models: their alerts come from the video and the attendance simulator.)"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from alerts.engine import AlertEngine
from edge.drivers.simulated.scenarios import ActiveScenario, SimulatedDevice
from sitewatch.core.profiles import load_profiles
from sitewatch.domains.alertrecords.model import EventKind
from sitewatch.domains.rulebook import RuleBook
from sitewatch.programs.demo.sites import SITE_DEVICES, site_scenarios

PROFILES = load_profiles()
MINUTES = 10
HOLD_S = 300  # the alert service's default hold time

#: what each site must show (rule group -> (first raised, latest raised, cleared by), minutes
#: after start), and nothing else
STORY: dict[str, dict[str, tuple[float, float, float]]] = {
    "SITE01": {"load": (0.9, 1.5, 2.5), "moment": (0.9, 1.5, 2.5)},
    "SITE02": {"pm10_exceedances": (2.0, 3.5, MINUTES), "tsp_5min": (3.0, 4.5, 8.0)},
    "SITE03": {},
}


def _start(local_hour: int) -> float:
    """A demo started at ``local_hour`` on a site at UTC+8 (epoch seconds)."""
    return datetime(2026, 11, 2, (local_hour - 8) % 24, 0, tzinfo=UTC).timestamp()


def play(site: int, start: float) -> list[tuple[float, str, str, EventKind]]:
    """(minute, device, rule group, event) of every alert change of the demo's site ``site``."""
    counter = itertools.count(1)
    engine = AlertEngine(RuleBook(PROFILES, []), hold_s=HOLD_S, new_id=lambda: f"A{next(counter)}")
    name, scenarios = f"SITE{site:02d}", site_scenarios(site)
    devices = [
        (
            dev,
            profile,
            interval,
            SimulatedDevice(
                profile,
                dev,
                site,
                start,
                tuple(ActiveScenario(**s) for s in scenarios.get(dev, [])),  # type: ignore[arg-type]
            ),
        )
        for dev, profile, interval in SITE_DEVICES
    ]
    out: list[tuple[float, str, str, EventKind]] = []
    seq = itertools.count(1)
    for tick in range(MINUTES * 60 * 10):  # every 0.1 s
        t = start + tick / 10
        now = round(t * 1000)
        changes = []
        for dev, profile, interval, sim in devices:
            if tick % round(interval * 10) == 0:
                values = sim.sample(t)
                if values is not None:
                    changes += engine.observe(name, "GW", dev, profile, now, next(seq), values, now)
        if tick % 10 == 0:
            changes += engine.tick(now)
        for c in changes:
            out.append(((t - start) / 60, c.device, c.group, c.event))
    return out


@pytest.mark.parametrize("local_hour", [10, 23], ids=["day", "night"])
@pytest.mark.parametrize("site", [1, 2, 3])
def test_each_site_tells_its_planned_story(site: int, local_hour: int) -> None:
    name = f"SITE{site:02d}"
    changes = play(site, _start(local_hour))
    for row in changes:
        print(row)
    raised = {}
    for minute, _, rule, event in changes:
        if event is EventKind.RAISED:
            assert rule not in raised, f"{rule} raised twice"
            raised[rule] = minute
    assert set(raised) == set(STORY[name])
    open_now: set[str] = set()
    most = 0
    for minute, _, rule, event in changes:
        first, latest, cleared_by = STORY[name][rule]
        if event is EventKind.RAISED:
            assert first <= minute <= latest, (rule, minute)
            open_now.add(rule)
        elif event is EventKind.CLEARED:
            assert minute <= cleared_by, (rule, minute)
        elif event is EventKind.RESOLVED:
            open_now.discard(rule)
        most = max(most, len(open_now))
    assert most <= 2

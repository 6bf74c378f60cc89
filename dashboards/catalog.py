"""Every SiteWatch dashboard, in one visible place: the file name each is written to and
the function that builds it."""

from __future__ import annotations

from collections.abc import Callable

from dashboards.alerting import alerts
from dashboards.cameras import cameras
from dashboards.devices import SPECS, Spec, device_dashboard
from dashboards.model import Dashboard
from dashboards.overview import county, site
from dashboards.people import attendance
from sitewatch.core.profiles import ProfileSet, load_profiles

Builder = Callable[[ProfileSet], Dashboard]


def _device(spec: Spec) -> Builder:
    return lambda profiles: device_dashboard(spec, profiles)


DASHBOARDS: dict[str, Builder] = {
    "county": lambda _: county(),
    "site": site,
    **{spec.uid.removeprefix("sitewatch-"): _device(spec) for spec in SPECS},
    "cameras": cameras,
    "attendance": lambda _: attendance(),
    "alerts": lambda _: alerts(),
}


def build_all(profiles: ProfileSet | None = None) -> dict[str, Dashboard]:
    """File stem -> dashboard, built from the device profiles (their limits)."""
    profiles = profiles if profiles is not None else load_profiles()
    return {name: build(profiles) for name, build in DASHBOARDS.items()}

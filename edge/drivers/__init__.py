"""Device drivers, registered in one place: add a module, add one line here."""

from __future__ import annotations

from sitewatch.edge.drivers.base import Driver, Emit, PollingDriver, Values
from sitewatch.edge.drivers.simulated import SimulatedDriver

DRIVERS: dict[str, type[Driver]] = {
    "simulated": SimulatedDriver,
}

__all__ = ["DRIVERS", "Driver", "Emit", "PollingDriver", "Values"]

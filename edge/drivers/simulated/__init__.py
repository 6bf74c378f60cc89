"""The simulated driver: devices of any profile whose values follow a scenario.
``signals`` and ``scenarios`` are the signal models (noise, drift, steps and the named
scenarios of ``sitewatch simulate``), which the fleet simulator (``simulators``)
publishes too."""

from __future__ import annotations

from edge.drivers.simulated.driver import SimulatedDriver, SimulatedOptions

__all__ = ["SimulatedDriver", "SimulatedOptions"]

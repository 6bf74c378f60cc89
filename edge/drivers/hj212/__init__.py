"""The HJ 212-2017 driver: dust/noise monitors pushing frames to the gateway's listener.
``protocol`` is the standard's framing (CRC, parsing, acks), which the simulated monitor
(``simulators.hj212_monitor``) speaks too."""

from __future__ import annotations

from edge.drivers.hj212.driver import Hj212Driver, Hj212Options

__all__ = ["Hj212Driver", "Hj212Options"]

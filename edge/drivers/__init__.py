"""Device drivers, registered in one place: add a module, add one line here."""

from __future__ import annotations

from edge.drivers.base import Driver, PollingDriver, Sink, Values
from edge.drivers.camera import CameraDriver
from edge.drivers.hj212 import Hj212Driver
from edge.drivers.http_push import HttpPushDriver
from edge.drivers.modbus_tcp import ModbusTcpDriver
from edge.drivers.simulated import SimulatedDriver

DRIVERS: dict[str, type[Driver]] = {
    "simulated": SimulatedDriver,
    "hj212": Hj212Driver,
    "modbus_tcp": ModbusTcpDriver,
    "http_push": HttpPushDriver,
    "camera": CameraDriver,
}

__all__ = ["DRIVERS", "Driver", "PollingDriver", "Sink", "Values"]

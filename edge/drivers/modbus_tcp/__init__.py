"""The Modbus TCP driver: crane black boxes and pit loggers polled for their registers.
``registers`` turns raw 16-bit registers into numbers per a profile's register map, and
back for the simulated device (``simulators.modbus_device``)."""

from __future__ import annotations

from edge.drivers.modbus_tcp.driver import ModbusOptions, ModbusTcpDriver

__all__ = ["ModbusOptions", "ModbusTcpDriver"]

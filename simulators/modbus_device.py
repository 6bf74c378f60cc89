"""A Modbus TCP device (pymodbus's own server) playing a profile's signal model.

Emulates a tower-crane black box or a pit data logger: its registers follow the profile's
register map and are refreshed from the signal model every ``interval_s``.
"""

from __future__ import annotations

import asyncio
import time

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.drivers.modbus_tcp import registers as modbus_registers
from edge.drivers.simulated.signals import Values, signal_for
from sitewatch.core.profiles import Profile
from sitewatch.core.profiles.model import ModbusRegister

_FUNCTION = {"holding": 3, "input": 4}
REGISTERS = 512


class ModbusDevice:
    def __init__(
        self,
        profile: Profile,
        *,
        host: str = "127.0.0.1",
        port: int = 5020,
        unit: int = 1,
        seed: int = 1,
        registers: dict[str, ModbusRegister] | None = None,
    ) -> None:
        self.profile = profile
        self.registers = registers or (profile.modbus.registers if profile.modbus else {})
        if not self.registers:
            raise ValueError(f"profile {profile.profile!r} has no modbus register map")
        self.table = profile.modbus.table if profile.modbus else "holding"
        self.unit = unit
        # one shared block: holding and input registers read the same cells
        device = SimDevice(
            id=unit, simdata=[SimData(0, values=[0] * REGISTERS, datatype=DataType.REGISTERS)]
        )
        self.server = ModbusTcpServer(device, address=(host, port))
        self.model = signal_for(profile.profile, seed)

    async def set_registers(self, address: int, raw: list[int]) -> None:
        """Put raw register values at ``address`` (as a device's firmware would)."""
        await self.server.context.async_setValues(self.unit, _FUNCTION[self.table], address, raw)

    async def load(self, values: Values) -> None:
        """Put ``values`` into the registers (fields without a register are ignored)."""
        for name, spec in self.registers.items():
            if name in values:
                await self.set_registers(
                    spec.address, modbus_registers.encode(float(values[name]), spec)
                )

    async def run(self, interval_s: float = 1.0, *, live: bool = True) -> None:
        """Serve; with ``live``, refresh the registers from the signal model."""
        serving = asyncio.create_task(self.server.serve_forever())
        try:
            while live:
                await self.load(self.model.sample(time.time()))
                await asyncio.sleep(interval_s)
            await serving
        finally:
            await self.server.shutdown()  # type: ignore[no-untyped-call]
            serving.cancel()

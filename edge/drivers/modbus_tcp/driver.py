"""``driver: modbus_tcp``: poll a device's registers over Modbus TCP (pymodbus client).

The register map (address, type, scale, offset, byte and word order) comes from the
device's profile (``modbus:``) and can be replaced per device (``registers``). Registers
are read in as few requests as the map allows. A device that does not answer gives no
reading (logged once per outage, counted) and is tried again at the next poll.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge.drivers.base import PollingDriver, Values
from edge.drivers.modbus_tcp import registers as modbus_registers
from sitewatch.core.profiles import FieldType, Profile
from sitewatch.core.profiles.model import REGISTER_WIDTH, ModbusRegister

log = logging.getLogger("sitewatch.edge.modbus")


class ModbusOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str
    port: int = Field(default=502, ge=1, le=65535)
    #: Modbus unit (device) id
    unit: int = Field(default=1, ge=0, le=247)
    timeout_s: float = Field(default=3.0, gt=0, le=60)
    table: Literal["holding", "input"] | None = None
    #: replaces the profile's register map (same keys as in the profile)
    registers: dict[str, ModbusRegister] | None = None


class ModbusTcpDriver(PollingDriver):
    Options = ModbusOptions

    def __init__(
        self, device_id: str, profile: Profile, interval_s: float, options: BaseModel
    ) -> None:
        super().__init__(device_id, profile, interval_s, options)
        assert isinstance(options, ModbusOptions)
        self.opts = options
        registers = options.registers or (profile.modbus.registers if profile.modbus else None)
        if not registers:
            raise ValueError(
                f"profile {profile.profile!r} has no modbus register map; give 'registers'"
            )
        for name in registers:
            spec = profile.fields.get(name)
            if spec is None or spec.type not in (FieldType.FLOAT, FieldType.INT):
                raise ValueError(
                    f"registers.{name}: not a numeric field of profile {profile.profile!r}"
                )
        self.registers = registers
        self.table = options.table or (profile.modbus.table if profile.modbus else "holding")
        self.spans = modbus_registers.spans(registers)
        self.client = AsyncModbusTcpClient(
            options.host, port=options.port, timeout=options.timeout_s, retries=0
        )
        self.failures = 0
        self._down = False

    async def read(self) -> Values | None:
        try:
            if not self.client.connected and not await self.client.connect():
                raise ConnectionError(f"cannot connect to {self.opts.host}:{self.opts.port}")
            cells: dict[int, int] = {}
            for address, count in self.spans:
                if self.table == "holding":
                    rr = await self.client.read_holding_registers(
                        address, count=count, device_id=self.opts.unit
                    )
                else:
                    rr = await self.client.read_input_registers(
                        address, count=count, device_id=self.opts.unit
                    )
                if rr.isError():
                    raise ModbusException(f"exception response {rr}")
                cells.update(zip(range(address, address + count), rr.registers, strict=False))
        except (ModbusException, ConnectionError, OSError, TimeoutError) as exc:
            self.failures += 1
            if not self._down:
                log.warning(
                    "modbus device %s (%s:%d unit %d) not answering: %s",
                    self.device_id,
                    self.opts.host,
                    self.opts.port,
                    self.opts.unit,
                    exc,
                )
            self._down = True
            self.client.close()
            return None
        if self._down:
            log.info("modbus device %s answers again", self.device_id)
            self._down = False
        values: Values = {}
        for name, spec in self.registers.items():
            regs = [cells[a] for a in range(spec.address, spec.address + REGISTER_WIDTH[spec.type])]
            value = modbus_registers.decode(regs, spec)
            if self.profile.fields[name].type is FieldType.INT:
                values[name] = round(value)
            else:
                values[name] = round(value, 6)
        return values

"""Modbus TCP: register decoding, and the driver against pymodbus's own server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from conftest import wait_listening

from edge.drivers.modbus_tcp import ModbusOptions, ModbusTcpDriver
from edge.drivers.modbus_tcp.registers import decode, encode, spans
from simulators.modbus_device import ModbusDevice
from sitewatch.core.profiles import load_profiles
from sitewatch.core.profiles.model import ModbusRegister
from sitewatch.programs.localstack import free_port

PROFILES = load_profiles()


@pytest.mark.parametrize(
    "spec, registers, value",
    [
        ({"type": "uint16", "scale": 0.01}, [325], 3.25),
        ({"type": "int16"}, [0xFFFE], -2.0),
        ({"type": "uint16", "byte_order": "little"}, [0x3412], 0x1234),
        ({"type": "float32"}, [0x3FC0, 0x0000], 1.5),
        ({"type": "float32", "word_order": "little"}, [0x0000, 0x3FC0], 1.5),
        ({"type": "int32", "scale": 0.1}, [0xFFFF, 0xFF9C], -10.0),
        ({"type": "uint32", "word_order": "little"}, [0x0002, 0x0001], 65538),
        ({"type": "float64"}, [0x3FF8, 0, 0, 0], 1.5),
        ({"type": "uint16", "scale": 0.5, "offset": -40}, [100], 10.0),
    ],
)
def test_known_registers(spec: dict[str, object], registers: list[int], value: float) -> None:
    reg = ModbusRegister(address=0, **spec)  # type: ignore[arg-type]
    assert decode(registers, reg) == pytest.approx(value)
    assert encode(value, reg) == registers


def test_spans_group_registers() -> None:
    regs = {
        n: ModbusRegister(address=a, type=t)  # type: ignore[arg-type]
        for n, a, t in [("a", 0, "uint16"), ("b", 1, "float32"), ("c", 200, "uint16")]
    }
    assert spans(regs) == [(0, 3), (200, 1)]
    assert spans(regs, max_count=2) == [(0, 2), (2, 1), (200, 1)]


def test_register_map_must_name_numeric_fields() -> None:
    from pydantic import ValidationError

    from sitewatch.core.profiles.model import Profile

    base = PROFILES["tower_crane"].model_dump(by_alias=True, exclude_none=True)
    base["modbus"] = {"registers": {"operator": {"address": 0}}}
    with pytest.raises(ValidationError, match=r"modbus\.registers\.operator"):
        Profile.model_validate(base)
    with pytest.raises(ValueError, match="runs past register 65535"):
        ModbusRegister(address=65535, type="float32")


@pytest.fixture
async def crane_device() -> AsyncIterator[tuple[ModbusDevice, int]]:
    port = free_port()
    device = ModbusDevice(PROFILES["tower_crane"], port=port, unit=3)
    task = asyncio.create_task(device.run(live=False))
    await wait_listening(port, server=task, what="the Modbus device")
    yield device, port
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def driver(port: int, profile: str = "tower_crane", **opts: object) -> ModbusTcpDriver:
    options = ModbusOptions(host="127.0.0.1", port=port, unit=3, timeout_s=1, **opts)  # type: ignore[arg-type]
    return ModbusTcpDriver("TC01", PROFILES[profile], 1.0, options)


async def test_driver_reads_known_registers_from_pymodbus_server(
    crane_device: tuple[ModbusDevice, int],
) -> None:
    device, port = crane_device
    await device.set_registers(0, [325, 712, 695, 2450, 0xFF38, 1800, 612])  # raw values
    await device.set_registers(8, [0xCCCD, 0x3F4C])  # 0.8 as float32, low word first
    d = driver(port)
    values = await d.read()
    assert values is not None
    assert values == pytest.approx(
        {
            "load_t": 3.25,
            "load_pct": 71.2,
            "moment_pct": 69.5,
            "radius_m": 24.5,
            "height_m": -2.0,
            "slew_deg": 180.0,
            "wind_ms": 6.12,
            "tilt_permille": 0.8,
        }
    )
    d.client.close()


async def test_driver_reads_what_the_simulator_plays(
    crane_device: tuple[ModbusDevice, int],
) -> None:
    device, port = crane_device
    played = {
        "load_t": 4.5,
        "load_pct": 56.3,
        "moment_pct": 61.3,
        "radius_m": 30.0,
        "height_m": 41.2,
        "slew_deg": 90.5,
        "wind_ms": 7.25,
        "tilt_permille": 1.25,
    }
    await device.load(played)
    d = driver(port)
    assert await d.read() == pytest.approx(played, abs=0.006)
    d.client.close()


async def test_device_down_gives_no_reading_and_recovers() -> None:
    port = free_port()
    d = driver(port)
    assert await d.read() is None and d.failures == 1
    device = ModbusDevice(PROFILES["tower_crane"], port=port, unit=3)
    task = asyncio.create_task(device.run(live=False))
    await wait_listening(port, server=task, what="the Modbus device")
    try:
        await device.load({"load_t": 1.0})
        values = await d.read()
        assert values is not None and values["load_t"] == 1.0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        d.client.close()


async def test_input_registers_of_a_pit_logger() -> None:
    port = free_port()
    device = ModbusDevice(PROFILES["foundation_pit"], port=port, unit=3)
    task = asyncio.create_task(device.run(live=False))
    await wait_listening(port, server=task, what="the Modbus device")
    try:
        await device.load(
            {
                "displacement_mm": 12.5,
                "settlement_mm": -3.25,
                "strut_force_pct": 44.0,
                "groundwater_mm": -150.3,
            }
        )
        d = driver(port, "foundation_pit")
        assert await d.read() == pytest.approx(
            {
                "displacement_mm": 12.5,
                "settlement_mm": -3.25,
                "strut_force_pct": 44.0,
                "groundwater_mm": -150.3,
            }
        )
        d.client.close()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_driver_options_are_checked() -> None:
    with pytest.raises(ValueError, match="no modbus register map"):
        ModbusTcpDriver("E", PROFILES["environment"], 1, ModbusOptions(host="x"))
    with pytest.raises(ValueError, match=r"registers\.nope"):
        ModbusTcpDriver(
            "T",
            PROFILES["tower_crane"],
            1,
            ModbusOptions(host="x", registers={"nope": ModbusRegister(address=0)}),
        )

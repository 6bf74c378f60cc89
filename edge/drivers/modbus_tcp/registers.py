"""Modbus register values: raw 16-bit registers <-> numbers, per a profile's register map."""

from __future__ import annotations

import struct

from sitewatch.core.profiles.model import REGISTER_WIDTH, ModbusRegister

_FORMAT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}


def decode(registers: list[int], spec: ModbusRegister) -> float:
    """The value of ``spec`` from its registers (len == its width)."""
    words = list(registers)
    if spec.word_order == "little":
        words.reverse()
    raw = b"".join(w.to_bytes(2, "big" if spec.byte_order == "big" else "little") for w in words)
    (value,) = struct.unpack(">" + _FORMAT[spec.type], raw)
    return float(value) * spec.scale + spec.offset


def encode(value: float, spec: ModbusRegister) -> list[int]:
    """The registers a device holds for ``value`` (what a simulator writes)."""
    raw_value: float | int = (value - spec.offset) / spec.scale
    if spec.type not in ("float32", "float64"):
        raw_value = round(raw_value)
    raw = struct.pack(">" + _FORMAT[spec.type], raw_value)
    words = [
        int.from_bytes(raw[i : i + 2], "big" if spec.byte_order == "big" else "little")
        for i in range(0, len(raw), 2)
    ]
    if spec.word_order == "little":
        words.reverse()
    return words


def spans(registers: dict[str, ModbusRegister], max_count: int = 125) -> list[tuple[int, int]]:
    """Contiguous (address, count) reads covering every register, each <= max_count."""
    cells = sorted(
        {
            a
            for s in registers.values()
            for a in range(s.address, s.address + REGISTER_WIDTH[s.type])
        }
    )
    out: list[tuple[int, int]] = []
    for a in cells:
        if out and a < out[-1][0] + max_count:
            start, _ = out[-1]
            out[-1] = (start, a - start + 1)
        else:
            out.append((a, 1))
    return out

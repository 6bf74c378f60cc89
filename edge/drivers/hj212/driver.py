"""``driver: hj212``: a TCP listener for HJ 212-2017 dust and noise monitors.

Monitors connect to the gateway and push frames. One listener per (host, port) serves
every ``hj212`` device of the agent; a device is the monitor with its ``mn``. Factor
codes become profile fields through the profile's ``hj212`` map, overridable per device
(``factors``). A data packet (CN 2011 real-time, 2051 minute, 2061 hour, 2031 day) is
acknowledged with CN 9014 when its Flag asks, and only once its reading is committed to
the spool. A packet without QN (field monitors send them) is stored like any other, but
cannot be acknowledged: the ack repeats the packet's QN, which is how a monitor matches
it. It is counted as ``no_qn_no_ack`` when its Flag asks for an ack anyway (logged once
per device). A packet without DataTime is stamped with the gateway's time. A value that
is not a finite decimal number is counted as ``bad_value`` and skipped. A bad CRC or
garbage is logged and counted and only that frame is skipped; the connection, and every
other monitor's, carries on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re

from pydantic import BaseModel, ConfigDict, Field

from edge.drivers.base import Values
from edge.drivers.hj212 import protocol as hj212
from edge.drivers.listener import ListeningDriver, SharedListener
from sitewatch.core.profiles import Profile

log = logging.getLogger("sitewatch.edge.hj212")
#: a value as monitors write it (HJ 212's N14.2 and the like, a sign, an exponent)
NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class Hj212Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: the monitor's MN (device number) as it sends it
    mn: str = Field(min_length=1, max_length=64)
    host: str = "0.0.0.0"
    port: int = Field(default=9212, ge=1, le=65535)
    #: if set, packets whose PW differs are refused (counted as bad_password)
    password: str | None = None
    #: the monitor's clock (DataTime) is local time at this UTC offset
    utc_offset_h: float = Field(default=8.0, ge=-12, le=14)
    #: factor code -> field, replacing the profile's map for these codes
    factors: dict[str, str] = Field(default_factory=dict)


class Hj212Listener(SharedListener["Hj212Driver"]):
    """One TCP server shared by every hj212 device on the same host and port."""

    protocol = "HJ 212"

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        splitter = hj212.FrameSplitter()
        self.counters["connections"] += 1
        try:
            while data := await reader.read(65536):
                garbage = splitter.garbage_bytes
                for frame in splitter.feed(data):
                    await self._frame(frame, peer, writer)
                if splitter.garbage_bytes > garbage:
                    self.counters["garbage_bytes"] += splitter.garbage_bytes - garbage
                    log.warning(
                        "HJ 212 %s: skipped %d byte(s) that are not a frame",
                        peer,
                        splitter.garbage_bytes - garbage,
                    )
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _frame(self, frame: bytes, peer: object, writer: asyncio.StreamWriter) -> None:
        try:
            packet = hj212.parse_frame(frame)
        except hj212.FrameError as exc:
            self.counters[exc.reason] += 1
            log.warning("HJ 212 %s: frame refused (%s): %r", peer, exc, frame[:80])
            return
        driver = self.devices.get(packet.mn)
        if driver is None:
            self.counters["unknown_mn"] += 1
            log.warning("HJ 212 %s: no device configured with MN %r", peer, packet.mn)
            return
        if await driver.handle(packet):
            writer.write(hj212.ack_frame(packet))
            await writer.drain()
            self.counters["acks"] += 1


class Hj212Driver(ListeningDriver):
    Options = Hj212Options

    def __init__(
        self, device_id: str, profile: Profile, interval_s: float, options: BaseModel
    ) -> None:
        super().__init__(device_id, profile, interval_s, options)
        assert isinstance(options, Hj212Options)
        self.opts = options
        mapping = {code: (f.field, f.scale) for code, f in (profile.hj212 or {}).items()}
        for code, field in options.factors.items():
            if field not in profile.fields:
                raise ValueError(
                    f"factors.{code}: {field!r} is not a field of profile {profile.profile!r}"
                )
            mapping[code] = (field, 1.0)
        if not mapping:
            raise ValueError(f"profile {profile.profile!r} has no hj212 factor map; give 'factors'")
        self.mapping = mapping
        self.listener = Hj212Listener.shared(options.host, options.port)
        self._told_no_qn = False

    @property
    def listener_key(self) -> str:
        return self.opts.mn

    async def handle(self, packet: hj212.Packet) -> bool:
        """Take a packet of this monitor; True if it is to be acknowledged."""
        counters = self.listener.counters
        if self.opts.password is not None and packet.pw != self.opts.password:
            counters["bad_password"] += 1
            log.warning("HJ 212 %s: wrong PW from MN %r", self.device_id, packet.mn)
            return False
        suffix = hj212.DATA_CNS.get(packet.cn)
        if suffix is None:
            counters["ignored_cn"] += 1
            return False
        values: Values = {}
        for code, parts in packet.factors.items():
            target = self.mapping.get(code)
            if target is None:
                counters["unmapped_factor"] += 1
                continue
            if parts.get("Flag", "N") != "N":  # the monitor flags this value as not valid
                counters["flagged_value"] += 1
                continue
            value = number(parts.get(suffix, ""))
            if value is None:
                counters["bad_value"] += 1
                continue
            values[target[0]] = value * target[1]
        assert self._sink is not None
        try:
            ts = (
                hj212.data_time_ms(packet.data_time, self.opts.utc_offset_h)
                if packet.data_time
                else self._sink.now_ms()
            )
        except hj212.FrameError:
            counters["bad_packet"] += 1
            return False
        if values:
            if not self._sink.emit(values, ts):
                return False  # the spool refused it: no ack, the monitor sends it again
            counters["readings"] += 1
        if packet.wants_ack and not packet.can_ack:
            counters["no_qn_no_ack"] += 1
            if not self._told_no_qn:
                self._told_no_qn = True
                log.warning(
                    "HJ 212 %s: MN %r asks for acknowledgements but sends no QN: "
                    "its packets are stored, not acknowledged",
                    self.device_id,
                    packet.mn,
                )
            return False
        return packet.can_ack and await self._sink.durable()


def number(text: str) -> float | None:
    """A factor's value, or None if it is not a finite decimal number (``nan``, ``inf``,
    ``1e999``, ``1_000`` and the empty string are not)."""
    if not NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None

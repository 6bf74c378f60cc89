"""HJ 212-2017: frames, CRC, parsing (lenient where real monitors deviate), acks.

Frame: ``##`` + 4-digit decimal length of the data segment + data segment + 4 hex CRC
digits + CR LF. The CRC (not Modbus's) is computed over the data segment only:
initial 0xFFFF; for each byte ``crc = (crc >> 8) ^ byte``, then 8 rounds of shift right,
XOR 0xA001 when the bit shifted out was 1.

Lenient about what monitors in the field send: lowercase CRC digits, a declared length
that does not match (the CRC decides), ``\\n`` instead of CR LF, a lone ``&`` around CP,
non-standard factor codes such as ``PM25``. Strict about the CRC: a frame whose CRC does
not match is refused.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

DATA_CNS = {"2011": "Rtd", "2051": "Avg", "2061": "Avg", "2031": "Avg"}


class FrameError(ValueError):
    """A frame that cannot be used; ``reason`` is a short code for counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ byte
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


def build_frame(segment: str) -> bytes:
    data = segment.encode("ascii")
    return b"##%04d%s%04X\r\n" % (len(data), data, crc16(data))


@dataclass
class Packet:
    qn: str
    st: str
    cn: str
    pw: str
    mn: str
    flag: int
    #: factor code -> {suffix -> value}, e.g. {"a34002": {"Rtd": "78.0", "Flag": "N"}}
    factors: dict[str, dict[str, str]] = field(default_factory=dict)
    data_time: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def wants_ack(self) -> bool:
        return bool(self.flag & 1)


def parse_frame(frame: bytes) -> Packet:
    """Parse one frame (with or without its line end)."""
    frame = frame.rstrip(b"\r\n")
    if not frame.startswith(b"##") or len(frame) < 2 + 4 + 4:
        raise FrameError("bad_frame", "no '##', or too short")
    body, crc_text = frame[6:-4], frame[-4:]
    try:
        crc = int(crc_text, 16)
    except ValueError:
        raise FrameError("bad_frame", f"CRC {crc_text!r} is not hex") from None
    if crc16(body) != crc:
        raise FrameError("bad_crc", f"CRC {crc_text.decode(errors='replace')} != "
                                    f"{crc16(body):04X}")
    try:
        segment = body.decode("ascii")
    except UnicodeDecodeError:
        raise FrameError("bad_frame", "data segment is not ASCII") from None
    return parse_segment(segment)


def parse_segment(segment: str) -> Packet:
    cp = ""
    head = segment
    start = segment.find("CP=")
    if start >= 0:
        head, cp = segment[:start], segment[start + 3:]
        cp = cp.strip()
        cp = cp[2:] if cp.startswith("&&") else cp.lstrip("&")
        cp = cp[:-2] if cp.endswith("&&") else cp.rstrip("&")
    fields: dict[str, str] = {}
    for part in head.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            fields[k.strip()] = v.strip()
    for key in ("QN", "CN", "MN"):
        if key not in fields:
            raise FrameError("bad_packet", f"{key} missing")
    try:
        flag = int(fields.get("Flag", "4"))
    except ValueError:
        raise FrameError("bad_packet", f"Flag {fields.get('Flag')!r}") from None
    packet = Packet(qn=fields["QN"], st=fields.get("ST", ""), cn=fields["CN"],
                    pw=fields.get("PW", ""), mn=fields["MN"], flag=flag, fields=fields)
    for group in cp.split(";"):
        for item in group.split(","):
            if "=" not in item:
                continue
            key, value = (s.strip() for s in item.split("=", 1))
            if key == "DataTime":
                packet.data_time = value
                continue
            code, _, suffix = key.rpartition("-")
            if not code:
                continue
            packet.factors.setdefault(code, {})[suffix] = value
    return packet


def data_time_ms(text: str, utc_offset_h: float) -> int:
    """``yyyyMMddHHmmss`` in the monitor's local time -> ms since the epoch."""
    try:
        local = dt.datetime.strptime(text, "%Y%m%d%H%M%S")
    except ValueError:
        raise FrameError("bad_packet", f"DataTime {text!r}") from None
    tz = dt.timezone(dt.timedelta(hours=utc_offset_h))
    return int(local.replace(tzinfo=tz).timestamp() * 1000)


def ack_frame(packet: Packet) -> bytes:
    """The CN=9014 data acknowledgement for ``packet``."""
    return build_frame(f"QN={packet.qn};ST=91;CN=9014;PW={packet.pw};MN={packet.mn};"
                       f"Flag=4;CP=&&&&")


def data_frame(*, qn: str, st: str, pw: str, mn: str, flag: int, data_time: str,
               factors: dict[str, float], cn: str = "2011") -> bytes:
    """A data frame as a monitor sends it (used by the simulator)."""
    suffix = DATA_CNS[cn]
    cp = ";".join(f"{code}-{suffix}={value},{code}-Flag=N" for code, value in factors.items())
    return build_frame(f"QN={qn};ST={st};CN={cn};PW={pw};MN={mn};Flag={flag};"
                       f"CP=&&DataTime={data_time};{cp}&&")


class FrameSplitter:
    """Cut a TCP byte stream into frames; skip garbage; bound the buffer."""

    def __init__(self, max_buffer: int = 64 * 1024) -> None:
        self._buf = b""
        self.max_buffer = max_buffer
        self.garbage_bytes = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames = []
        while True:
            start = self._buf.find(b"##")
            if start < 0:
                keep = 1 if self._buf.endswith(b"#") else 0
                self.garbage_bytes += len(self._buf) - keep
                self._buf = self._buf[len(self._buf) - keep:]
                break
            if start > 0:
                self.garbage_bytes += start
                self._buf = self._buf[start:]
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > self.max_buffer:
                    self.garbage_bytes += len(self._buf)
                    self._buf = b""
                break
            frames.append(self._buf[: end + 1])
            self._buf = self._buf[end + 1:]
        return frames

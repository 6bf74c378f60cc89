"""HJ 212-2017: frames, CRC, parsing (lenient where real monitors deviate), acks.

Frame: ``##`` + 4-digit decimal length of the data segment + data segment + 4 hex CRC
digits + CR LF. The CRC (not Modbus's) is computed over the data segment only:
initial 0xFFFF; for each byte ``crc = (crc >> 8) ^ byte``, then 8 rounds of shift right,
XOR 0xA001 when the bit shifted out was 1.

Lenient about what monitors in the field send: lowercase CRC digits, a declared length
that does not match (the CRC decides), ``\\n`` instead of CR LF, a lone ``&`` around CP,
non-standard factor codes such as ``PM25``, no ``QN`` (then no acknowledgement can be
matched to the packet: :attr:`Packet.can_ack`), no ``Flag`` (then no acknowledgement is
asked for), ``DataTime`` with milliseconds (``yyyyMMddHHmmssSSS``, 17 digits, as ``QN``
has them). Strict about what would make a packet ambiguous or unsafe: a frame whose CRC
does not match, a length field that is not 4 digits, a data segment that is not
printable ASCII, a key given twice (``MN=A;MN=B``, or a factor's value twice), a missing
``CN`` or ``MN``, a ``Flag`` that is not a number from 0 to 255. Every refusal is a
:class:`FrameError` with a reason code; nothing else is raised for any input.
"""

from __future__ import annotations

import datetime as dt
import re
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
    #: the request number (``yyyyMMddHHmmssSSS``) an acknowledgement repeats; None when
    #: the monitor sent none
    qn: str | None
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
        """The monitor asks for an acknowledgement (Flag bit 0)."""
        return bool(self.flag & 1)

    @property
    def can_ack(self) -> bool:
        """An acknowledgement is asked for and can be matched: it carries the packet's QN,
        and a monitor that sent none has nothing to match it against."""
        return self.wants_ack and self.qn is not None


_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_DATA_TIME = re.compile(
    r"([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})"
    r"([0-9]{3})?"
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def parse_frame(frame: bytes) -> Packet:
    """Parse one frame (with or without its line end)."""
    frame = frame.rstrip(b"\r\n")
    if not frame.startswith(b"##") or len(frame) < 2 + 4 + 4:
        raise FrameError("bad_frame", "no '##', or too short")
    length, body, crc_text = frame[2:6], frame[6:-4], frame[-4:]
    if not length.isdigit():  # bytes.isdigit: ASCII digits only
        raise FrameError("bad_frame", f"length {length!r} is not 4 digits")
    if not _HEX4.fullmatch(crc_text):
        raise FrameError("bad_frame", f"CRC {crc_text!r} is not 4 hex digits")
    if crc16(body) != int(crc_text, 16):
        raise FrameError("bad_crc", f"CRC {crc_text.decode()} != {crc16(body):04X}")
    try:
        segment = body.decode("ascii")
    except UnicodeDecodeError:
        raise FrameError("bad_frame", "data segment is not ASCII") from None
    return parse_segment(segment)


def parse_segment(segment: str) -> Packet:
    if not _PRINTABLE.fullmatch(segment):
        raise FrameError("bad_frame", "data segment holds control characters")
    cp = ""
    head = segment
    start = segment.find("CP=")
    if start >= 0:
        head, cp = segment[:start], segment[start + 3 :]
        cp = cp.strip()
        cp = cp[2:] if cp.startswith("&&") else cp.lstrip("&")
        cp = cp[:-2] if cp.endswith("&&") else cp.rstrip("&")
    fields: dict[str, str] = {}
    for part in head.split(";"):
        if "=" in part:
            k, v = (x.strip() for x in part.split("=", 1))
            if k in fields:
                raise FrameError("bad_packet", f"{k} given twice")
            fields[k] = v
    for key in ("CN", "MN"):
        if not fields.get(key):
            raise FrameError("bad_packet", f"{key} missing")
    flag_text = fields.get("Flag", "4")  # none: the 2017 edition, no ack asked for
    if not (flag_text.isdigit() and int(flag_text) <= 255):
        raise FrameError("bad_packet", f"Flag {flag_text!r} is not a number 0-255")
    packet = Packet(
        qn=fields.get("QN") or None,
        st=fields.get("ST", ""),
        cn=fields["CN"],
        pw=fields.get("PW", ""),
        mn=fields["MN"],
        flag=int(flag_text),
        fields=fields,
    )
    for group in cp.split(";"):
        for item in group.split(","):
            if "=" not in item:
                continue
            key, value = (x.strip() for x in item.split("=", 1))
            if key == "DataTime":
                if packet.data_time is not None:
                    raise FrameError("bad_packet", "DataTime given twice")
                packet.data_time = value
                continue
            code, _, suffix = key.rpartition("-")
            if not code:
                continue
            parts = packet.factors.setdefault(code, {})
            if suffix in parts:
                raise FrameError("bad_packet", f"{key} given twice")
            parts[suffix] = value
    return packet


def data_time_ms(text: str, utc_offset_h: float) -> int:
    """``yyyyMMddHHmmss`` or ``yyyyMMddHHmmssSSS`` (with milliseconds) in the monitor's
    local time -> ms since the epoch."""
    match = _DATA_TIME.fullmatch(text)
    try:
        if match is None:
            raise ValueError("not 14 or 17 digits")
        year, month, day, hour, minute, second = (int(x) for x in match.groups()[:6])
        ms = int(match.group(7) or 0)
        local = dt.datetime(
            year,
            month,
            day,
            hour,
            minute,
            second,
            ms * 1000,
            tzinfo=dt.timezone(dt.timedelta(hours=utc_offset_h)),
        )
    except ValueError as exc:
        raise FrameError("bad_packet", f"DataTime {text!r}: {exc}") from None
    ms_since_epoch: int = (local - _EPOCH) // _MS
    if ms_since_epoch < 0:
        raise FrameError("bad_packet", f"DataTime {text!r} is before 1970")
    return ms_since_epoch


def ack_frame(packet: Packet) -> bytes:
    """The CN=9014 data acknowledgement for ``packet`` (which must have a QN)."""
    if packet.qn is None:
        raise ValueError("a packet without QN cannot be acknowledged")
    return build_frame(f"QN={packet.qn};ST=91;CN=9014;PW={packet.pw};MN={packet.mn};Flag=4;CP=&&&&")


def data_frame(
    *,
    qn: str,
    st: str,
    pw: str,
    mn: str,
    flag: int,
    data_time: str,
    factors: dict[str, float],
    cn: str = "2011",
) -> bytes:
    """A data frame as a monitor sends it (used by the simulator)."""
    suffix = DATA_CNS[cn]
    cp = ";".join(f"{code}-{suffix}={value},{code}-Flag=N" for code, value in factors.items())
    return build_frame(
        f"QN={qn};ST={st};CN={cn};PW={pw};MN={mn};Flag={flag};CP=&&DataTime={data_time};{cp}&&"
    )


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
            while start >= 0 and self._buf[start + 2 : start + 3] == b"#":
                start += 1  # a stray '#' before a frame is garbage, not the frame's start
            if start < 0:
                keep = 1 if self._buf.endswith(b"#") else 0
                self.garbage_bytes += len(self._buf) - keep
                self._buf = self._buf[len(self._buf) - keep :]
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
            self._buf = self._buf[end + 1 :]
        return frames

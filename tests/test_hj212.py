"""HJ 212-2017 frames: the shared vectors, lenient parsing, strict CRC."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edge.drivers.hj212.protocol import (
    FrameError,
    FrameSplitter,
    Packet,
    ack_frame,
    build_frame,
    crc16,
    data_frame,
    data_time_ms,
    parse_frame,
)

#: the design's reference packets (checked CRCs), kept with the tests so a clean checkout has them
VECTORS = Path(__file__).parent / "data" / "hj212-vectors.txt"


#: packets as field monitors send them (no QN, no Flag, DataTime with milliseconds, a bad
#: CRC), each after a ``# name: description, CRC XXXX`` line
FIELD_VECTORS = Path(__file__).parent / "data" / "hj212-field-vectors.txt"
#: the design notes' copy, where the checkout has them beside it
SHARED_VECTORS = Path("/work/shared/design/data/hj212-vectors.txt")


def vectors() -> list[bytes]:
    out = []
    for line in VECTORS.read_bytes().split(b"\n"):
        if line.startswith(b"##"):
            out.append(line.rstrip(b"\r") + b"\r\n")
    return out


def named_vectors(path: Path) -> dict[str, tuple[bytes, int]]:
    """name -> (frame as on the wire, the CRC its description line states)."""
    out: dict[str, tuple[bytes, int]] = {}
    name, crc = "", -1
    for line in path.read_bytes().split(b"\n"):
        line = line.rstrip(b"\r")
        described = re.search(rb", CRC ([0-9A-F]{4})\b", line)
        if line.startswith(b"# ") and described:
            name = line[2:].split(b":", 1)[0].decode()
            crc = int(described.group(1), 16)
        elif line.startswith(b"##"):
            out[name] = (line + b"\r\n", crc)
    return out


def field_vectors() -> dict[str, bytes]:
    return {name: frame for name, (frame, _) in named_vectors(FIELD_VECTORS).items()}


def _reflect_table() -> list[int]:
    """HJ 212's CRC as a 256-entry table, built from its polynomial (0xA001 reflected):
    written apart from the project's bit loop so the two check each other."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0xA001 if c & 1 else 0)
        table.append(c)
    return table


_TABLE = _reflect_table()


def independent_crc(data: bytes) -> int:
    """``crc = (crc >> 8) ^ byte`` leaves a value below 256, so its 8 shift rounds are one
    table entry."""
    crc = 0xFFFF
    for byte in data:
        crc = _TABLE[(crc >> 8) ^ byte]
    return crc


def test_vectors_are_present() -> None:
    assert len(vectors()) == 3


@pytest.mark.parametrize("i, crc", [(0, 0x1C80), (1, 0x5E40), (2, 0x5140)])
def test_crc_of_the_vectors(i: int, crc: int) -> None:
    frame = vectors()[i]
    assert crc16(frame[6:-6]) == crc
    assert build_frame(frame[6:-6].decode()) == frame


def test_realtime_dust_packet() -> None:
    p = parse_frame(vectors()[1])
    assert (p.cn, p.st, p.mn, p.flag, p.wants_ack) == (
        "2011",
        "39",
        "ZHGD0001SITE00000000001A",
        5,
        True,
    )
    assert p.data_time == "20240601120000"
    assert p.factors["a34002"] == {"Rtd": "78.0", "Flag": "N"}
    assert p.factors["LA"]["Rtd"] == "62.5" and p.factors["a01008"]["Rtd"] == "135"
    assert len(p.factors) == 9


def test_ack_is_exactly_the_vector() -> None:
    assert ack_frame(parse_frame(vectors()[1])) == vectors()[2]


def test_set_interval_packet_parses() -> None:
    p = parse_frame(vectors()[0])
    assert p.cn == "1062" and p.factors == {} and p.flag == 5


def test_bad_crc_is_refused() -> None:
    frame = vectors()[1].replace(b"78.0", b"79.0")
    with pytest.raises(FrameError) as err:
        parse_frame(frame)
    assert err.value.reason == "bad_crc"


@pytest.mark.parametrize(
    "frame, reason",
    [
        (b"garbage\r\n", "bad_frame"),
        (b"##0005hello\r\n", "bad_frame"),
        (build_frame("QN=1;ST=39;CN=2011;CP=&&&&"), "bad_packet"),  # no MN
        (build_frame("QN=1;ST=39;MN=X;CP=&&&&"), "bad_packet"),  # no CN
        (build_frame("QN=1;CN=2011;MN=;CP=&&&&"), "bad_packet"),  # empty MN
        (build_frame("QN=1;CN=2011;MN=X;Flag=x;CP=&&&&"), "bad_packet"),
        (build_frame("QN=1;CN=2011;MN=X;Flag=-1;CP=&&&&"), "bad_packet"),
        (build_frame("QN=1;CN=2011;MN=X;Flag=256;CP=&&&&"), "bad_packet"),
        (build_frame("QN=1;CN=2011;MN=X;MN=Y;CP=&&&&"), "bad_packet"),  # which monitor?
        (build_frame("QN=1;CN=2011;MN=X;PW=1;PW=2;CP=&&&&"), "bad_packet"),
        (build_frame("QN=1;CN=2011;MN=X;CP=&&LA-Rtd=1,LA-Rtd=2&&"), "bad_packet"),
        (build_frame("QN=1;CN=2011;MN=X;CP=&&DataTime=1;DataTime=2&&"), "bad_packet"),
        (build_frame("QN=1;CN=2011;MN=X\x1b[2J;CP=&&&&"), "bad_frame"),  # control characters
        (build_frame("QN=1;CN=2011;MN=X;CP=&&&&").replace(b"##0025", b"##00x5"), "bad_frame"),
        (build_frame("QN=1;CN=2011;MN=X;CP=&&&&")[:-6] + b"0x1F\r\n", "bad_frame"),  # not 4 hex
        (build_frame("QN=1;CN=2011;MN=X;CP=&&&&")[:-6] + b"+1AB\r\n", "bad_frame"),
        (b"##0005QN=\xc3\xa9%04X\r\n" % crc16(b"QN=\xc3\xa9"), "bad_frame"),  # not ASCII
    ],
)
def test_malformed_frames(frame: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as err:
        parse_frame(frame)
    assert err.value.reason == reason


def test_lenient_deviations() -> None:
    seg = "QN=1;ST=22;CN=2011;PW=1;MN=M1;Flag=4;CP=&DataTime=20240601120000;PM25-Rtd=12.5&"
    data = seg.encode()
    frame = b"##9999" + data + b"%04x" % crc16(data) + b"\n"  # wrong length, lower hex, LF
    p = parse_frame(frame)
    assert p.factors["PM25"]["Rtd"] == "12.5" and not p.wants_ack


def test_data_time_is_site_local() -> None:
    assert data_time_ms("20240601120000", 8) == 1717214400000  # 04:00 UTC


def test_simulator_frames_round_trip() -> None:
    f = data_frame(
        qn="20240601120000000",
        st="39",
        pw="123456",
        mn="M1",
        flag=5,
        data_time="20240601120000",
        factors={"a34002": 78.0, "LA": 62.5},
    )
    p = parse_frame(f)
    assert p.factors == {"a34002": {"Rtd": "78.0", "Flag": "N"}, "LA": {"Rtd": "62.5", "Flag": "N"}}


def test_splitter_skips_garbage_and_keeps_partial_frames() -> None:
    v = vectors()
    s = FrameSplitter()
    out = s.feed(b"noise" + v[0] + v[1][:50])
    assert out == [v[0]] and s.garbage_bytes == 5
    assert s.feed(v[1][50:] + b"\x00\xff" + v[2]) == [v[1], v[2]]
    assert s.garbage_bytes == 7
    big = FrameSplitter(max_buffer=100)
    assert big.feed(b"##" + b"x" * 200) == [] and big.garbage_bytes == 202


# -- field monitors: no QN, no Flag, DataTime with milliseconds ------------------------


def test_the_vectors_are_the_designs() -> None:
    if not SHARED_VECTORS.exists():
        pytest.skip("the design notes are not beside this checkout")
    assert VECTORS.read_bytes() == SHARED_VECTORS.read_bytes()


def test_independent_crc_agrees_on_every_vector() -> None:
    """Both CRCs give each vector's stated CRC (the design's and the field packets'), and
    the CRC on the wire; the bad-CRC vector's wire CRC is its data's before the change."""
    design = named_vectors(SHARED_VECTORS if SHARED_VECTORS.exists() else VECTORS)
    field = named_vectors(FIELD_VECTORS)
    assert len(design) == 3 and len(field) == 6
    assert [c for _, c in design.values()] == [0x1C80, 0x5E40, 0x5140]
    for name, (frame, stated) in {**design, **field}.items():
        data = frame[6:-6]
        wire = int(frame[-6:-2], 16)
        assert crc16(data) == independent_crc(data), name
        assert len(data) == int(frame[2:6]), name
        if name == "field-bad-crc":
            assert wire == stated != crc16(data)
        else:
            assert crc16(data) == stated == wire, name
            assert build_frame(data.decode()) == frame, name


def test_field_packet_without_qn_and_flag() -> None:
    p = parse_frame(field_vectors()["field-no-qn-no-flag-ms"])
    assert (p.qn, p.flag, p.wants_ack, p.can_ack) == (None, 4, False, False)
    assert p.data_time == "20240601120000123"
    assert data_time_ms(p.data_time, 8) == 1717214400123  # the milliseconds kept
    assert p.factors == {
        "a34004": {"Rtd": "35.2", "Flag": "N"},
        "a34002": {"Rtd": "78.0", "Flag": "N"},
        "LA": {"Rtd": "62.5", "Flag": "N"},
    }


def test_field_packet_with_qn_is_acknowledged_by_the_vector() -> None:
    v = field_vectors()
    p = parse_frame(v["field-qn-ack-ms"])
    assert (p.qn, p.flag, p.can_ack) == ("20240601120005250", 5, True)
    assert data_time_ms(p.data_time or "", 8) == 1717214405250
    assert ack_frame(p) == v["field-ack"]


def test_an_ack_asked_without_qn_cannot_be_given() -> None:
    p = parse_frame(field_vectors()["field-no-qn-flag5"])
    assert (p.qn, p.wants_ack, p.can_ack) == (None, True, False)
    with pytest.raises(ValueError, match="without QN"):
        ack_frame(p)


def test_field_minute_packet() -> None:
    p = parse_frame(field_vectors()["field-minute-no-flag"])
    assert (p.cn, p.qn, p.can_ack) == ("2051", "20240601120100000", False)
    assert p.factors["a34002"] == {"Avg": "79.1", "Min": "70.2", "Max": "88.0", "Flag": "N"}
    assert data_time_ms(p.data_time or "", 8) == 1717214400000


def test_field_bad_crc_is_refused() -> None:
    with pytest.raises(FrameError) as err:
        parse_frame(field_vectors()["field-bad-crc"])
    assert err.value.reason == "bad_crc"


@pytest.mark.parametrize(
    "text",
    [
        "2024060112000",
        "202406011200001",
        "2024060112000012",
        "202406011200001234",
        "20241301120000",
        "20240631120000",
        "20240601250000",
        "2024060112000O",
        " 20240601120000",
        "19691231235959",
        "",
        "２０２４0601120000",
    ],
)
def test_bad_data_times(text: str) -> None:
    with pytest.raises(FrameError) as err:
        data_time_ms(text, 0)
    assert err.value.reason == "bad_packet"


def test_data_time_with_milliseconds() -> None:
    assert data_time_ms("20240601120000999", 8) == 1717214400999
    assert data_time_ms("20240601120000000", 8) == data_time_ms("20240601120000", 8)
    assert data_time_ms("19700101000000001", 0) == 1


# -- properties: the parser is a trust boundary ---------------------------------------


def _parsed_or_refused(frame: bytes) -> Packet | None:
    """The only outcomes allowed: a packet, or FrameError with a reason code."""
    try:
        packet = parse_frame(frame)
    except FrameError as exc:
        assert exc.reason in {"bad_frame", "bad_crc", "bad_packet"} and str(exc)
        return None
    assert packet.mn and packet.cn and 0 <= packet.flag <= 255
    assert packet.qn is None or packet.qn
    return packet


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes(data: bytes) -> None:
    _parsed_or_refused(data)
    _parsed_or_refused(b"##" + data)


#: what hostile segments are made of: the syntax characters, control characters, digits,
#: letters, and a few non-ASCII ones
_CHARS = st.sampled_from(
    list("=;,&-")
    + ["CP=", "&&", "QN", "MN", "CN", "Flag", "DataTime", "PW", "ST", "-Rtd", "-Flag"]
    + [chr(c) for c in (0, 9, 10, 13, 27, 127)]
    + list("09aZ. +e")
    + ["é", "\u3000", "٣"]
)
_VALUES = st.one_of(
    st.lists(_CHARS, max_size=12).map("".join),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "1_000", "0x10", "", " ", "N", "٣"]),
    st.text(st.characters(codec="ascii"), max_size=30),
)
_KEYS = st.one_of(
    st.sampled_from(["QN", "ST", "CN", "PW", "MN", "Flag", "CP"]),
    st.lists(_CHARS, max_size=8).map("".join),
)


@st.composite
def hostile_segments(draw: st.DrawFn) -> str:
    head = draw(st.lists(st.tuples(_KEYS, _VALUES), max_size=10))
    if draw(st.booleans()):  # mostly the keys a packet needs, sometimes twice
        head += [
            ("CN", draw(st.sampled_from(["2011", "2051", "9014", "", "20 11"]))),
            ("MN", draw(_VALUES)),
        ]
        head = draw(st.permutations(head))
    factors = draw(
        st.lists(
            st.tuples(_KEYS, st.sampled_from(["-Rtd", "-Avg", "-Flag", ""]), _VALUES), max_size=8
        )
    )
    cp = ";".join(f"{k}{s}={v}" for k, s, v in factors)
    opener, closer = draw(st.sampled_from([("&&", "&&"), ("&", "&"), ("", ""), ("&&", "")]))
    return ";".join(f"{k}={v}" for k, v in head) + f";CP={opener}{cp}{closer}"


def _frame(segment: bytes, length: str, crc: str, end: bytes) -> bytes:
    return (
        b"##" + length.encode("ascii", "replace") + segment + crc.encode("ascii", "replace") + end
    )


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hostile_segments(),
    st.sampled_from(["right", "wrong", "huge", "letters", "short"]),
    st.sampled_from(["right", "lower", "wrong", "0x", "sign", "short"]),
    st.sampled_from([b"\r\n", b"\n", b"", b"\r\n\r\n", b"\x00"]),
    st.integers(min_value=0, max_value=40),
)
def test_hostile_frames(segment: str, length: str, crc: str, end: bytes, cut: int) -> None:
    """Structured but hostile: a CRC that is right for what was sent (so the parser reads
    on), lengths that lie, CRC text that is not 4 hex digits, truncated frames."""
    data = segment.encode("utf-8")
    lengths = {
        "right": f"{len(data):04d}",
        "wrong": f"{(len(data) + 7) % 10000:04d}",
        "huge": "9999",
        "letters": "00a1",
        "short": "12",
    }
    c = crc16(data)
    crcs = {
        "right": f"{c:04X}",
        "lower": f"{c:04x}",
        "wrong": f"{c ^ 0x0101:04X}",
        "0x": f"0x{c & 0xFF:02X}",
        "sign": f"+{c & 0xFFF:03X}",
        "short": f"{c:X}"[:3],
    }
    frame = _frame(data, lengths[length], crcs[crc], end)
    packet = _parsed_or_refused(frame)
    event("parsed" if packet is not None else "refused")
    if packet is not None:
        assert crc in ("right", "lower") and length != "letters"
        assert segment.isascii() and segment.isprintable()
    if cut:
        _parsed_or_refused(frame[:-cut])  # truncated


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["a34001", "a34002", "a34004", "LA", "a01001", "PM25", "a01008"]),
        st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
        min_size=1,
    ),
    st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(9998, 12, 31)),
    st.booleans(),
    st.sampled_from(["2011", "2051", "2061", "2031"]),
)
def test_what_a_monitor_sends_comes_back(
    factors: dict[str, float], when: dt.datetime, millis: bool, cn: str
) -> None:
    stamp = when.strftime("%Y%m%d%H%M%S") + (f"{when.microsecond // 1000:03d}" if millis else "")
    frame = data_frame(
        qn=when.strftime("%Y%m%d%H%M%S") + "000",
        st="39",
        pw="1",
        mn="M1",
        flag=5,
        data_time=stamp,
        factors=factors,
        cn=cn,
    )
    p = parse_frame(frame)
    suffix = "Rtd" if cn == "2011" else "Avg"
    assert {c: float(parts[suffix]) for c, parts in p.factors.items()} == factors
    expected = when.replace(
        microsecond=when.microsecond // 1000 * 1000 if millis else 0, tzinfo=dt.UTC
    )
    assert data_time_ms(p.data_time or "", 0) == int(expected.timestamp()) * 1000 + (
        expected.microsecond // 1000
    )
    assert p.can_ack and independent_crc(frame[6:-6]) == int(frame[-6:-2], 16)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["v0", "v1", "v2", "noise", "field"]), max_size=8),
    st.lists(st.integers(min_value=1, max_value=400), max_size=20),
)
def test_splitter_any_chunking(parts: list[str], cuts: list[int]) -> None:
    """However the stream is cut into reads, the same frames come out, in order."""
    v, f = vectors(), list(field_vectors().values())
    pieces = {"v0": v[0], "v1": v[1], "v2": v[2], "noise": b"\x00\xffnoise#", "field": f[0]}
    stream = b"".join(pieces[x] for x in parts)
    splitter, out, pos = FrameSplitter(), [], 0
    for n in [*cuts, len(stream)]:
        out += splitter.feed(stream[pos : pos + n])
        pos += n
    # the noise ends in '#', which must not cost the next frame its start
    assert out == [pieces[x] for x in parts if x != "noise"]
    pending = 1 if parts[-1:] == ["noise"] else 0  # a last '#' may start the next frame
    assert splitter.garbage_bytes == parts.count("noise") * len(pieces["noise"]) - pending

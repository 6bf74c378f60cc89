"""HJ 212-2017 frames: the shared vectors, lenient parsing, strict CRC."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitewatch.edge.hj212 import (
    FrameError,
    FrameSplitter,
    ack_frame,
    build_frame,
    crc16,
    data_frame,
    data_time_ms,
    parse_frame,
)

#: the design's reference packets (checked CRCs), kept with the tests so a clean checkout has them
VECTORS = Path(__file__).parent / "data" / "hj212-vectors.txt"


def vectors() -> list[bytes]:
    out = []
    for line in VECTORS.read_bytes().split(b"\n"):
        if line.startswith(b"##"):
            out.append(line.rstrip(b"\r") + b"\r\n")
    return out


def test_vectors_are_present() -> None:
    assert len(vectors()) == 3


@pytest.mark.parametrize("i, crc", [(0, 0x1C80), (1, 0x5E40), (2, 0x5140)])
def test_crc_of_the_vectors(i: int, crc: int) -> None:
    frame = vectors()[i]
    assert crc16(frame[6:-6]) == crc
    assert build_frame(frame[6:-6].decode()) == frame


def test_realtime_dust_packet() -> None:
    p = parse_frame(vectors()[1])
    assert (p.cn, p.st, p.mn, p.flag, p.wants_ack) == ("2011", "39",
                                                       "ZHGD0001SITE00000000001A", 5, True)
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


@pytest.mark.parametrize("frame, reason", [
    (b"garbage\r\n", "bad_frame"),
    (b"##0005hello\r\n", "bad_frame"),
    (build_frame("ST=39;CN=2011;MN=X;CP=&&&&"), "bad_packet"),  # no QN
    (build_frame("QN=1;CN=2011;MN=X;Flag=x;CP=&&&&"), "bad_packet"),
])
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
    f = data_frame(qn="20240601120000000", st="39", pw="123456", mn="M1", flag=5,
                   data_time="20240601120000", factors={"a34002": 78.0, "LA": 62.5})
    p = parse_frame(f)
    assert p.factors == {"a34002": {"Rtd": "78.0", "Flag": "N"},
                         "LA": {"Rtd": "62.5", "Flag": "N"}}


def test_splitter_skips_garbage_and_keeps_partial_frames() -> None:
    v = vectors()
    s = FrameSplitter()
    out = s.feed(b"noise" + v[0] + v[1][:50])
    assert out == [v[0]] and s.garbage_bytes == 5
    assert s.feed(v[1][50:] + b"\x00\xff" + v[2]) == [v[1], v[2]]
    assert s.garbage_bytes == 7
    big = FrameSplitter(max_buffer=100)
    assert big.feed(b"##" + b"x" * 200) == [] and big.garbage_bytes == 202

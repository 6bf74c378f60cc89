"""The batch decoder is a trust boundary: whatever a gateway sends, the only outcomes are
a decoded batch or refusals with a reason. Never an exception, never a line that is not
one well-formed line of line protocol."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sitewatch.core import contract
from sitewatch.core.decode import BatchDecoder, Decoded, TimeWindow, decode_status
from sitewatch.core.lineprotocol import CONTROL
from sitewatch.core.profiles import load_profiles
from sitewatch.core.reasons import Reason
from sitewatch.core.topics import GatewayChannel

NOW = 1_763_900_000_000
DECODER = BatchDecoder(
    contract.TelemetryCodec(load_profiles()),
    TimeWindow(max_future_ms=300_000, retention_ms=730 * 86_400_000),
)
PROPERTY = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check(d: Decoded) -> None:
    assert isinstance(d, Decoded)
    assert d.batch is None or 0 <= d.batch < 2**63
    for r in d.rejected:
        assert isinstance(r.reason, Reason) and isinstance(r.detail, str)
    for line in d.lines:
        assert not CONTROL.search(line), line  # one line, nothing InfluxDB cannot read
    assert len(d.lines) + len(d.rejected) >= (d.items if d.items else 0)


def decode_all(payload: bytes) -> None:
    for channel in (GatewayChannel.TELEMETRY, GatewayChannel.ATTENDANCE, GatewayChannel.CAMERA):
        check(DECODER.decode(channel, "S1", "GW1", payload, NOW))
    decode_status(payload)  # a Status or a Rejected; raising fails the test


@PROPERTY
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(payload: bytes) -> None:
    decode_all(payload)


NUMBERS = st.one_of(
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [0, -1, 2**63 - 1, 2**63, -(2**63), 2**64, 10**400, 1e308, -1e308, 5e-324, 0.0, -0.0]
    ),
)
TEXT = st.text(max_size=20) | st.sampled_from(
    ["TC01", "TC01\n", "S1\r", "a\x00", "\u2028", "tower_crane", "in", "face", "intrusion"]
)
JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@PROPERTY
@given(JSON)
def test_arbitrary_json_values(value: Any) -> None:
    decode_all(dumps(value))


def nested(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"a": leaf}
    return leaf


ITEM = st.fixed_dictionaries(
    {
        "device": TEXT,
        "profile": st.sampled_from(["tower_crane", "construction_hoist", "dust_noise", "x"]) | TEXT,
        "ts": st.integers(NOW - 10**12, NOW + 10**9) | NUMBERS,
        "seq": st.integers(0, 2**63) | NUMBERS,
        "values": st.dictionaries(
            st.sampled_from(["load_t", "wind_ms", "operator", "floor", "door_closed", "pm10"])
            | TEXT,
            NUMBERS | st.booleans() | TEXT | JSON,
            max_size=4,
        ),
    },
    optional={
        "worker": TEXT,
        "direction": st.sampled_from(["in", "out"]) | TEXT,
        "method": st.just("card"),
        "event": st.just("intrusion"),
        "zone": TEXT,
        "extra": JSON,
    },
)


@st.composite
def hostile_batch(draw: st.DrawFn) -> bytes:
    items = draw(st.lists(ITEM | JSON, min_size=0, max_size=6))
    envelope: dict[str, Any] = {
        "v": draw(st.sampled_from([1, 1, 1, 2, "1", None])),
        "batch": draw(st.integers(0, 2**63 - 1) | NUMBERS),
        "sent": draw(st.integers(0, 2**63) | NUMBERS),
        "items": items,
    }
    text = dumps(envelope)
    tweak = draw(
        st.sampled_from(["none", "deep", "duplicate", "duplicate_item", "control", "truncate"])
    )
    if tweak == "deep":
        depth = draw(st.integers(1, 3000))
        envelope["items"] = [*items, nested(depth, draw(JSON))]
        text = (
            dumps(envelope)
            if depth < 500
            else (text[:-2] + (b"," if items else b"") + b"[" * depth + b"]" * depth + b"]}")
        )
    elif tweak == "duplicate":
        key = draw(st.sampled_from(["v", "batch", "sent", "items"]))
        text = b'{"%s":%s,' % (key.encode(), dumps(envelope[key])) + text[1:]
    elif tweak == "duplicate_item" and items and isinstance(items[0], dict):
        raw = dumps(items[0])
        dup = b'{"seq":1,' + raw[1:] if raw != b"{}" else b'{"seq":1,"seq":2}'
        text = text.replace(raw, dup, 1)
    elif tweak == "control":
        text = text.replace(b'"TC01"', b'"TC01\\u0000"').replace(b'"x"', b'"x\\n"')
    elif tweak == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    return text


@PROPERTY
@given(hostile_batch())
def test_structured_but_hostile_batches(payload: bytes) -> None:
    decode_all(payload)


def good_item(seq: int, operator: str) -> dict[str, Any]:
    return {
        "device": "TC01",
        "profile": "tower_crane",
        "ts": NOW - seq,
        "seq": seq,
        "values": {"load_t": 1.5, "operator": operator},
    }


@PROPERTY
@given(st.text(max_size=64))
def test_a_free_text_field_is_stored_exactly_or_refused_for_a_control_character(
    operator: str,
) -> None:
    payload = dumps({"v": 1, "batch": 3, "sent": NOW, "items": [good_item(1, operator)]})
    d = DECODER.decode(GatewayChannel.TELEMETRY, "S1", "GW1", payload, NOW)
    if CONTROL.search(operator):
        assert [r.reason for r in d.rejected] == [Reason.CONTROL_CHARACTER]
    else:
        assert not d.rejected and len(d.lines) == 1


@pytest.mark.parametrize("depth", [16, 17])
def test_the_depth_limit_is_exact(depth: int) -> None:
    # envelope and items are 2 levels: a value nested to `depth` in all
    bad = {
        "device": "TC01",
        "profile": "tower_crane",
        "ts": NOW,
        "seq": 1,
        "values": {"load_t": nested(depth - 4, 1)},
    }
    payload = dumps({"v": 1, "batch": 3, "sent": NOW, "items": [bad]})
    d = DECODER.decode(GatewayChannel.TELEMETRY, "S1", "GW1", payload, NOW)
    expected = Reason.WRONG_TYPE if depth == 16 else Reason.TOO_DEEP
    assert [r.reason for r in d.rejected] == [expected]

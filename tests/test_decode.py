"""Ingest's decoder: every kind of bad input gets its own reason; good items survive."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from sitewatch.core import contract
from sitewatch.core.decode import BatchDecoder, Rejected, TimeWindow, decode_status
from sitewatch.core.lineprotocol import format_line
from sitewatch.core.profiles import load_profiles
from sitewatch.core.reasons import Reason
from sitewatch.core.topics import GatewayChannel

NOW = 1_763_900_000_000
T = GatewayChannel.TELEMETRY


@pytest.fixture(scope="module")
def decoder() -> BatchDecoder:
    return BatchDecoder(
        contract.TelemetryCodec(load_profiles()),
        TimeWindow(max_future_ms=300_000, retention_ms=730 * 86_400_000),
    )


def item(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "device": "TC01",
        "profile": "tower_crane",
        "ts": NOW,
        "seq": 1,
        "values": {"load_t": 3.2, "wind_ms": 6},
    }
    base.update(over)
    return base


def batch(*items: dict[str, Any], **over: Any) -> bytes:
    b: dict[str, Any] = {"v": 1, "batch": 42, "sent": NOW, "items": list(items)}
    b.update(over)
    return json.dumps(b, allow_nan=True).encode()


def test_good_batch_fast_path(decoder: BatchDecoder) -> None:
    d = decoder.decode(T, "S1", "GW1", batch(item(), item(seq=2, ts=NOW + 1)), NOW)
    assert d.batch == 42 and d.items == 2 and not d.rejected
    assert d.lines[0] == (
        f"tower_crane,device=TC01,gateway=GW1,site=S1 seq=1i,load_t=3.2,wind_ms=6.0 {NOW}"
    )


def test_integer_reading_of_float_field_is_written_as_float(decoder: BatchDecoder) -> None:
    d = decoder.decode(T, "S1", "G", batch(item(values={"load_t": 3})), NOW)
    assert "load_t=3.0" in d.lines[0]


def test_int_bool_and_str_fields(decoder: BatchDecoder) -> None:
    hoist = item(
        device="H1",
        profile="construction_hoist",
        values={"floor": 3, "door_closed": True, "speed_ms": 0},
    )
    crane = item(values={"operator": 'Li "Wei"'})
    d = decoder.decode(T, "S1", "G", batch(hoist, crane), NOW)
    assert "floor=3i" in d.lines[0] and "door_closed=true" in d.lines[0]
    assert "speed_ms=0.0" in d.lines[0]
    assert r'operator="Li \"Wei\""' in d.lines[1]


@pytest.mark.parametrize(
    "bad_item, reason",
    [
        (item(device="TC 01"), Reason.BAD_IDENTIFIER),
        (item(device="TC,01"), Reason.BAD_IDENTIFIER),
        (item(profile="submarine"), Reason.UNKNOWN_PROFILE),
        (item(values={"load_t": 1, "colour": 2}), Reason.UNDECLARED_FIELD),
        (item(values={"load_t": "heavy"}), Reason.WRONG_TYPE),
        (item(values={"load_t": -1}), Reason.OUT_OF_RANGE),
        (item(values={"operator": "x" * 65}), Reason.OUT_OF_RANGE),
        (item(values={"load_t": float("nan")}), Reason.NON_FINITE),
        (item(values={"load_t": float("inf")}), Reason.NON_FINITE),
        (item(ts=NOW + 3_600_000), Reason.TS_FUTURE),
        (item(ts=NOW - 800 * 86_400_000), Reason.TS_TOO_OLD),
        (item(seq=-1), Reason.OUT_OF_RANGE),
        ({"device": "TC01", "profile": "tower_crane", "ts": NOW, "values": {}}, Reason.BAD_ITEM),
        (item(extra=1), Reason.BAD_ITEM),
    ],
)
def test_bad_item_is_rejected_alone_with_its_reason(
    decoder: BatchDecoder,
    bad_item: dict[str, Any],
    reason: Reason,
) -> None:
    d = decoder.decode(T, "S1", "GW1", batch(item(seq=1), bad_item, item(seq=3)), NOW)
    assert d.batch == 42 and d.items == 3
    assert [r.reason for r in d.rejected] == [reason]
    assert len(d.lines) == 2, "the good items of the batch are kept"
    assert d.rejected[0].payload


@pytest.mark.parametrize(
    "payload, reason, batch_no",
    [
        (b'{not json, "batch": 7', Reason.BAD_JSON, 7),
        (b"\xff\xfe", Reason.BAD_JSON, None),
        (batch(item(), v=2), Reason.UNSUPPORTED_VERSION, 42),
        (batch(), Reason.BAD_ENVELOPE, 42),
        (json.dumps({"v": 1, "sent": NOW, "items": [item()]}).encode(), Reason.BAD_ENVELOPE, None),
        (batch(item(), colour="red"), Reason.BAD_ENVELOPE, 42),
        (b"[1, 2]", Reason.BAD_ENVELOPE, None),
        (
            b'{"v":1,"batch":9,"sent":1,"items":[' + b'{"a":"' + b"x" * 300_000 + b'"}]}',
            Reason.TOO_LARGE,
            9,
        ),
    ],
)
def test_whole_message_rejects(
    decoder: BatchDecoder,
    payload: bytes,
    reason: Reason,
    batch_no: int | None,
) -> None:
    d = decoder.decode(T, "S1", "GW1", payload, NOW)
    assert [r.reason for r in d.rejected] == [reason]
    assert d.batch == batch_no, "a recoverable batch number is acked so the gateway stops"
    assert not d.lines


@pytest.mark.parametrize(
    "payload, detail",
    [
        # NaN: only Python's parser reads these, so the envelope is checked on its result
        (b'{"v":1,"batch":5,"sent":NaN,"items":{"a":1}}', "items is a JSON object, not an array"),
        (b'{"v":1,"batch":5,"sent":NaN,"items":"x"}', "items is a JSON string, not an array"),
        (b'{"v":1,"batch":5,"sent":NaN}', "items missing"),
        (b"[1, NaN]", "the message is a JSON array, not an object"),
        # read by msgspec: its own words
        (b'{"v":1,"batch":5,"sent":1,"items":{"a":1}}', "Expected `array`, got `object`"),
    ],
)
def test_envelope_without_a_list_of_items_says_why(
    decoder: BatchDecoder,
    payload: bytes,
    detail: str,
) -> None:
    d = decoder.decode(T, "S1", "GW1", payload, NOW)
    [r] = d.rejected
    assert r.reason is Reason.BAD_ENVELOPE and detail in r.detail


def test_nan_batch_keeps_good_items(decoder: BatchDecoder) -> None:
    payload = batch(item(), item(seq=2, values={"load_t": float("nan")}))
    assert b"NaN" in payload
    d = decoder.decode(T, "S1", "GW1", payload, NOW)
    assert [r.reason for r in d.rejected] == [Reason.NON_FINITE]
    assert len(d.lines) == 1 and d.rejected[0].seq == 2 and d.rejected[0].device == "TC01"


def test_number_beyond_double_range_is_out_of_range(decoder: BatchDecoder) -> None:
    raw = batch(item(), item(seq=2)).replace(
        b'"load_t": 3.2, "wind_ms": 6}}]', b'"load_t": 1e999}}]'
    )
    assert b"1e999" in raw
    d = decoder.decode(T, "S1", "GW1", raw, NOW)
    assert [r.reason for r in d.rejected] == [Reason.OUT_OF_RANGE]


def test_envelope_item_count_limit() -> None:
    ok = {"v": 1, "batch": 1, "sent": 1, "items": [{}] * 5000}
    contract.envelope_decoder.decode(json.dumps(ok))
    with pytest.raises(msgspec.ValidationError, match="length <= 5000"):
        contract.envelope_decoder.decode(json.dumps({**ok, "items": [{}] * 5001}))


def test_attendance_and_camera(decoder: BatchDecoder) -> None:
    gate = {
        "device": "GATE01",
        "ts": NOW,
        "seq": 88,
        "worker": "W000123",
        "direction": "in",
        "method": "face",
    }
    d = decoder.decode(
        GatewayChannel.ATTENDANCE,
        "S1",
        "G",
        batch(gate, {**gate, "worker": "W 1"}, {**gate, "direction": "sideways"}),
        NOW,
    )
    assert d.lines == [
        f"attendance,device=GATE01,direction=in,gateway=G,site=S1,worker=W000123 "
        f'seq=88i,method="face" {NOW}'
    ]
    assert [r.reason for r in d.rejected] == [Reason.BAD_IDENTIFIER, Reason.WRONG_TYPE]
    cam = {
        "device": "CAM03",
        "ts": NOW,
        "seq": 301,
        "event": "no_helmet",
        "zone": "crane-swing",
        "count": 2,
        "confidence": 0.87,
        "snapshot": "9f" * 32,
    }
    d = decoder.decode(GatewayChannel.CAMERA, "S1", "G", batch(cam), NOW)
    assert not d.rejected
    assert d.lines[0].startswith("camera,device=CAM03,event=no_helmet,gateway=G,site=S1 ")
    assert "confidence=0.87" in d.lines[0] and "count=2i" in d.lines[0]


def test_fast_and_generic_formatting_agree_for_every_profile() -> None:
    """The JSON fast path must write exactly what the per-field path writes."""
    from edge.drivers.simulated.signals import signal_for
    from sitewatch.core.points import telemetry_formatter as _telemetry_formatter

    profiles = load_profiles()
    codec = contract.TelemetryCodec(profiles)
    checked = 0
    for name, types in codec.types.items():
        floats_only = tuple((f, t) for f, t in types.fields if t.value in ("float", "bool"))
        fmt = _telemetry_formatter(name, types.fields)
        model = signal_for(name, 3)
        for i in range(200):
            values = {
                k: v for k, v in model.sample(NOW / 1000 + i * 97).items() if k in dict(floats_only)
            }
            if name == "tower_crane" and i < 3:
                values["load_t"] = (1e-07, 1e-12, 0.0)[i]
                values["height_m"] = (1.5e2, -4e1, 0.0)[i]
            raw = msgspec.json.encode(
                {"device": "D", "profile": name, "ts": NOW, "seq": i, "values": values}
            )
            it = codec.item_decoder.decode(raw)
            fast = fmt(it, "S", "G")
            head, fields_text, ts = fast.split(" ")
            assert head == f"{name},device=D,gateway=G,site=S" and ts == str(NOW)
            written = dict(kv.split("=") for kv in fields_text.split(","))
            assert written.pop("seq") == f"{i}i"
            want = {
                f: getattr(it.values, f)
                for f, _ in types.fields
                if getattr(it.values, f) is not msgspec.UNSET
            }
            assert list(written) == list(want), "same fields, same order"
            for f, text in written.items():
                if isinstance(want[f], bool):
                    assert text == ("true" if want[f] else "false")
                else:  # a float: never an integer literal, same value
                    assert not text.endswith("i") and float(text) == want[f]
                    assert any(c in text for c in ".eE"), f"{text} must read as a float"
            checked += 1
    assert checked == 200 * len(codec.types)


# -- ambiguous JSON is refused, not guessed ----------------------------------------------
def test_json_nested_too_deep_is_refused_whole_not_a_recursion_error(decoder: BatchDecoder) -> None:
    for depth in (17, 5_000, 100_000):
        payload = b'{"v":1,"batch":7,"sent":1,"items":[' + b"[" * depth + b"]" * depth + b"]}"
        for channel in GatewayChannel.TELEMETRY, GatewayChannel.ATTENDANCE:
            d = decoder.decode(channel, "S1", "G", payload, NOW)
            assert d.batch == 7 and [r.reason for r in d.rejected] == [Reason.TOO_DEEP]
        unclosed = b'{"v":1,"batch":7,"sent":1,"items":[' + b'{"a":' * min(depth, 5_000)
        assert decoder.decode(T, "S1", "G", unclosed, NOW).rejected[0].reason == Reason.TOO_DEEP
    # brackets inside strings are not nesting (a bad item sends the batch the slow way)
    d = decoder.decode(
        T, "S1", "G", batch(item(values={"operator": "[{" * 30}), item(seq=2, device="T C")), NOW
    )
    assert len(d.lines) == 1 and [r.reason for r in d.rejected] == [Reason.BAD_IDENTIFIER]


def test_a_repeated_envelope_key_refuses_the_batch_and_a_repeated_batch_is_not_acked(
    decoder: BatchDecoder,
) -> None:
    good = json.dumps(item()).encode()
    d = decoder.decode(
        T, "S1", "G", b'{"v":1,"batch":7,"batch":8,"sent":1,"items":[%s]}' % good, NOW
    )
    assert d.batch is None and [r.reason for r in d.rejected] == [Reason.DUPLICATE_KEY]
    d = decoder.decode(
        T, "S1", "G", b'{"v":1,"batch":7,"sent":1,"sent":2,"items":[%s]}' % good, NOW
    )
    assert d.batch == 7 and [r.reason for r in d.rejected] == [Reason.DUPLICATE_KEY]
    assert not d.lines


def test_a_repeated_key_in_an_item_refuses_that_item_alone(decoder: BatchDecoder) -> None:
    twice_seq = (
        b'{"device":"TC01","profile":"tower_crane","ts":%d,"seq":5,"seq":6,'
        b'"values":{"load_t":1.0}}' % NOW
    )
    twice_value = (
        b'{"device":"TC01","profile":"tower_crane","ts":%d,"seq":7,'
        b'"values":{"load_t":1.0,"load_t":90.0}}' % NOW
    )
    good = json.dumps(item()).encode()
    for channel_payload in (twice_seq, twice_value):
        d = decoder.decode(
            T,
            "S1",
            "G",
            b'{"v":1,"batch":7,"sent":1,"items":[%s,%s]}' % (good, channel_payload),
            NOW,
        )
        assert d.batch == 7 and len(d.lines) == 1
        assert [r.reason for r in d.rejected] == [Reason.DUPLICATE_KEY]
        assert d.rejected[0].payload == channel_payload


@pytest.mark.parametrize("text", ["Li\nWei", "a\rb", "a\x00", "\x1b[31m", "del\x7f", "c1\x85"])
def test_a_control_character_in_a_string_refuses_the_item(decoder: BatchDecoder, text: str) -> None:
    d = decoder.decode(T, "S1", "G", batch(item(), item(seq=2, values={"operator": text})), NOW)
    assert len(d.lines) == 1 and [r.reason for r in d.rejected] == [Reason.CONTROL_CHARACTER]
    assert d.rejected[0].seq == 2


@pytest.mark.parametrize("text", ["back\\slash n", "\\n literally", 'quo"te', "é 中文"])
def test_escapes_that_are_no_control_character_are_stored_as_they_are(
    decoder: BatchDecoder, text: str
) -> None:
    d = decoder.decode(T, "S1", "G", batch(item(values={"operator": text})), NOW)
    assert not d.rejected
    assert d.lines[0] == format_line(
        "tower_crane",
        {"device": "TC01", "gateway": "G", "site": "S1"},
        {"seq": 1, "operator": text},
        NOW,
    )


@pytest.mark.parametrize("device", ["TC01\n", "TC01\r", "TC01\x00", "\nTC01"])
def test_an_identifier_with_a_control_character_is_a_bad_identifier(
    decoder: BatchDecoder, device: str
) -> None:
    d = decoder.decode(T, "S1", "G", batch(item(), item(seq=2, device=device)), NOW)
    assert len(d.lines) == 1 and "\n" not in d.lines[0]
    assert [r.reason for r in d.rejected] == [Reason.BAD_IDENTIFIER]
    gate = {
        "device": "D1",
        "ts": NOW,
        "seq": 1,
        "worker": "W1\n",
        "direction": "in",
        "method": "card",
    }
    d = decoder.decode(GatewayChannel.ATTENDANCE, "S1", "G", batch(gate), NOW)
    assert [r.reason for r in d.rejected] == [Reason.BAD_IDENTIFIER]


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b'{"state":"online","ts":1,"boot":1,"agent":"a\\nb"}', Reason.CONTROL_CHARACTER),
        (b'{"state":"online","state":"offline","ts":1,"boot":1}', Reason.DUPLICATE_KEY),
        (b"[" * 10_000 + b"]" * 10_000, Reason.TOO_DEEP),
        (b'{"state":"asleep","ts":1,"boot":1}', Reason.BAD_ENVELOPE),
    ],
)
def test_status_messages_follow_the_same_rules(payload: bytes, reason: Reason) -> None:
    refused = decode_status(payload)
    assert isinstance(refused, Rejected) and refused.reason is reason
    ok = decode_status(b'{"state":"online","ts":1,"boot":1,"agent":"edge 1.0"}')
    assert isinstance(ok, contract.Status)

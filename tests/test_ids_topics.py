import pytest

from sitewatch.core.ids import InvalidIdentifier, check_ident, is_ident
from sitewatch.core.topics import (
    GatewayChannel,
    TopicError,
    alerts_topic,
    gateway_topic,
    parse_gateway_topic,
    snapshot_topic,
    subscription,
)

BAD = ["", "a b", "a,b", "a=b", "a/b", "+", "#", 'a"b', "é", "x" * 65, "a\nb", "a\\b"]


@pytest.mark.parametrize("value", ["S001", "gw-01", "TC_01", "x" * 64, "0"])
def test_valid_identifiers(value: str) -> None:
    assert is_ident(value)
    assert check_ident("device", value) == value


@pytest.mark.parametrize("value", BAD)
def test_invalid_identifiers_are_rejected(value: str) -> None:
    assert not is_ident(value)
    with pytest.raises(InvalidIdentifier, match="invalid site identifier"):
        check_ident("site", value)


@pytest.mark.parametrize("value", BAD)
def test_invalid_identifier_never_reaches_a_topic(value: str) -> None:
    with pytest.raises(InvalidIdentifier):
        gateway_topic("sitewatch/v1", value, "GW1", GatewayChannel.TELEMETRY)
    with pytest.raises(InvalidIdentifier):
        alerts_topic("sitewatch/v1", value)


def test_topics_round_trip() -> None:
    t = gateway_topic("sitewatch/v1", "S1", "GW1", GatewayChannel.TELEMETRY)
    assert t == "sitewatch/v1/S1/GW1/telemetry"
    parsed = parse_gateway_topic("sitewatch/v1", t)
    assert (parsed.site, parsed.gateway, parsed.channel) == ("S1", "GW1", GatewayChannel.TELEMETRY)
    sha = "a" * 64
    snap = parse_gateway_topic("sitewatch/v1", snapshot_topic("sitewatch/v1", "S1", "G", sha))
    assert snap.snapshot == sha
    assert subscription("p", GatewayChannel.STATUS) == "p/+/+/status"
    assert alerts_topic("p", "S1") == "p/S1/alerts"


@pytest.mark.parametrize(
    "topic, message",
    [
        ("other/S1/GW1/telemetry", "not under prefix"),
        ("sitewatch/v1/S 1/GW1/telemetry", "invalid site"),
        ("sitewatch/v1/S1/G,W/telemetry", "invalid gateway"),
        ("sitewatch/v1/S1/GW1/bogus", "unknown channel"),
        ("sitewatch/v1/S1/GW1/telemetry/x", "wrong number of levels"),
        ("sitewatch/v1/S1/telemetry", "levels after the prefix"),
    ],
)
def test_bad_topics_are_named(topic: str, message: str) -> None:
    with pytest.raises(TopicError, match=message):
        parse_gateway_topic("sitewatch/v1", topic)


def test_snapshot_hash_must_be_lowercase_hex() -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        snapshot_topic("p", "S1", "G", "A" * 64)


# -- identifiers are matched in full at every boundary that applies the pattern ----------
# Python's re (and msgspec, which searches with it) lets ``$`` match before a final
# newline; each boundary below is checked with that, a carriage return and a NUL.
TAILS = ["S1\n", "S1\r", "S1\x00", "\nS1", "S1\r\n", "x" * 64 + "\n"]


@pytest.mark.parametrize("value", TAILS)
def test_a_control_character_at_either_end_is_not_an_identifier(value: str) -> None:
    assert not is_ident(value)
    with pytest.raises(InvalidIdentifier):
        gateway_topic("sitewatch/v1", value, "GW1", GatewayChannel.TELEMETRY)
    with pytest.raises(TopicError):
        parse_gateway_topic("sitewatch/v1", f"sitewatch/v1/{value}/GW1/telemetry")


@pytest.mark.parametrize("value", TAILS)
def test_contract_messages_match_identifiers_in_full(value: str) -> None:
    import msgspec

    from sitewatch.core import contract

    gate = {"device": value, "ts": 1, "seq": 1, "worker": "W1", "direction": "in", "method": "card"}
    for field in ("device", "worker"):
        with pytest.raises(msgspec.ValidationError):
            contract.attendance_item_decoder.decode(
                msgspec.json.encode({**gate, "device": "D1", field: value})
            )
    camera = {"device": "C1", "ts": 1, "seq": 1, "event": "intrusion", "zone": value}
    with pytest.raises(msgspec.ValidationError):
        contract.camera_item_decoder.decode(msgspec.json.encode(camera))
    with pytest.raises(msgspec.ValidationError):  # the snapshot's hash, too
        contract.camera_item_decoder.decode(
            msgspec.json.encode({**camera, "zone": "Z1", "snapshot": "a" * 64 + "\n"})
        )


@pytest.mark.parametrize("value", TAILS)
def test_settings_and_profiles_match_identifiers_in_full(value: str) -> None:
    from typing import Annotated

    from pydantic import BaseModel, Field, TypeAdapter, ValidationError

    from edge.config import DeviceConfig
    from edge.drivers.camera.driver import ZoneOptions
    from sitewatch.core.ids import IDENT_PATTERN, Ident
    from sitewatch.domains.alertrecords.settings import AlertSettings
    from sitewatch.domains.notifications import NotifierConfig
    from sitewatch.domains.rulebook import Override

    class Model(BaseModel):
        ident: Ident

    with pytest.raises(ValidationError):
        Model(ident=value)
    with pytest.raises(ValidationError):
        DeviceConfig.model_validate({"id": value, "profile": "tower_crane", "driver": "simulated"})
    with pytest.raises(ValidationError):
        ZoneOptions.model_validate({"name": value, "polygon": [[0, 0], [1, 0], [1, 1]]})
    with pytest.raises(ValidationError):  # msgspec's Ident in a pydantic model was unchecked
        AlertSettings(sites={value: {}})
    with pytest.raises(ValidationError):
        Override(site=value, rule="load")
    with pytest.raises(ValidationError):
        TypeAdapter(NotifierConfig).validate_python(
            {"name": value, "kind": "webhook", "url": "http://127.0.0.1:1/"}
        )
    # what FastAPI's Path/Query apply (pydantic's Rust engine: ``$`` is the very end)
    with pytest.raises(ValidationError):
        TypeAdapter(Annotated[str, Field(pattern=IDENT_PATTERN)]).validate_python(value)
    assert Model(ident="S1").ident == "S1"

import pytest

from sitewatch.ids import InvalidIdentifier, check_ident, is_ident
from sitewatch.topics import (
    GatewayChannel,
    TopicError,
    alerts_topic,
    gateway_topic,
    parse_gateway_topic,
    snapshot_topic,
    subscription,
)

BAD = ["", "a b", "a,b", "a=b", "a/b", "+", "#", "a\"b", "é", "x" * 65, "a\nb", "a\\b"]


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


@pytest.mark.parametrize("topic, message", [
    ("other/S1/GW1/telemetry", "not under prefix"),
    ("sitewatch/v1/S 1/GW1/telemetry", "invalid site"),
    ("sitewatch/v1/S1/G,W/telemetry", "invalid gateway"),
    ("sitewatch/v1/S1/GW1/bogus", "unknown channel"),
    ("sitewatch/v1/S1/GW1/telemetry/x", "wrong number of levels"),
    ("sitewatch/v1/S1/telemetry", "levels after the prefix"),
])
def test_bad_topics_are_named(topic: str, message: str) -> None:
    with pytest.raises(TopicError, match=message):
        parse_gateway_topic("sitewatch/v1", topic)


def test_snapshot_hash_must_be_lowercase_hex() -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        snapshot_topic("p", "S1", "G", "A" * 64)

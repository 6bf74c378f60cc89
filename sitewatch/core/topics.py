"""MQTT topic names of wire contract v1: built and parsed in one place."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sitewatch.core.ids import check_ident, is_ident

DEFAULT_PREFIX = "sitewatch/v1"


class GatewayChannel(StrEnum):
    """The per-gateway topics of the contract: ``{p}/{site}/{gateway}/{channel}``."""

    TELEMETRY = "telemetry"
    ATTENDANCE = "attendance"
    CAMERA = "camera"
    SNAPSHOT = "snapshot"
    STATUS = "status"
    ACK = "ack"


#: Channels whose payload is a batch envelope.
BATCH_CHANNELS = frozenset(
    {GatewayChannel.TELEMETRY, GatewayChannel.ATTENDANCE, GatewayChannel.CAMERA}
)


def check_prefix(prefix: str) -> str:
    """A prefix is one or more ``/``-separated identifier-like levels (no wildcards)."""
    levels = prefix.split("/")
    if not prefix or any(not level or "+" in level or "#" in level for level in levels):
        raise ValueError(f"invalid topic prefix {prefix!r}: no empty levels, no '+' or '#'")
    return prefix


def gateway_topic(prefix: str, site: str, gateway: str, channel: GatewayChannel) -> str:
    check_ident("site", site)
    check_ident("gateway", gateway)
    return f"{prefix}/{site}/{gateway}/{channel.value}"


def snapshot_topic(prefix: str, site: str, gateway: str, sha256_hex: str) -> str:
    if len(sha256_hex) != 64 or any(c not in "0123456789abcdef" for c in sha256_hex):
        raise ValueError(f"invalid snapshot hash {sha256_hex!r}: 64 lowercase hex digits")
    return f"{gateway_topic(prefix, site, gateway, GatewayChannel.SNAPSHOT)}/{sha256_hex}"


def alerts_topic(prefix: str, site: str) -> str:
    """``{p}/{site}/alerts``: alert changes for the site's displays and sirens."""
    check_ident("site", site)
    return f"{prefix}/{site}/alerts"


def subscription(prefix: str, channel: GatewayChannel) -> str:
    """Topic filter that matches ``channel`` of every gateway of every site."""
    suffix = "/+" if channel is GatewayChannel.SNAPSHOT else ""
    return f"{prefix}/+/+/{channel.value}{suffix}"


@dataclass(frozen=True, slots=True)
class GatewayTopic:
    site: str
    gateway: str
    channel: GatewayChannel
    snapshot: str | None = None


class TopicError(ValueError):
    """A topic that is not a contract topic (reason given in the message)."""


def parse_gateway_topic(prefix: str, topic: str) -> GatewayTopic:
    """Split ``{p}/{site}/{gateway}/{channel}[/{sha256}]``; raise :class:`TopicError`."""
    if not topic.startswith(prefix + "/"):
        raise TopicError(f"topic {topic!r} is not under prefix {prefix!r}")
    rest = topic[len(prefix) + 1 :].split("/")
    if len(rest) not in (3, 4):
        raise TopicError(f"topic {topic!r} has {len(rest)} levels after the prefix, expected 3")
    site, gateway, channel_name = rest[0], rest[1], rest[2]
    if not is_ident(site):
        raise TopicError(f"invalid site identifier {site!r} in topic")
    if not is_ident(gateway):
        raise TopicError(f"invalid gateway identifier {gateway!r} in topic")
    try:
        channel = GatewayChannel(channel_name)
    except ValueError:
        raise TopicError(f"unknown channel {channel_name!r} in topic") from None
    if (len(rest) == 4) != (channel is GatewayChannel.SNAPSHOT):
        raise TopicError(f"topic {topic!r} has the wrong number of levels for {channel_name}")
    return GatewayTopic(site, gateway, channel, rest[3] if len(rest) == 4 else None)

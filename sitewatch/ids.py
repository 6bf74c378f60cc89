"""Identifiers: the one place that says what a site, gateway, device or worker id may be.

Identifiers end up in MQTT topics, InfluxDB tags and SQL parameters. Restricting them to
``[A-Za-z0-9_-]{1,64}`` means none of them ever needs escaping anywhere, and a topic
filter wildcard (``+``, ``#``) or a line-protocol separator (space, comma, ``=``) can never
be smuggled in through one.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

IDENT_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_IDENT_RE = re.compile(IDENT_PATTERN)

#: msgspec type for an identifier inside a contract message.
Ident = Annotated[str, msgspec.Meta(pattern=IDENT_PATTERN, min_length=1, max_length=64)]


class InvalidIdentifier(ValueError):
    """An identifier outside ``[A-Za-z0-9_-]{1,64}``."""

    def __init__(self, kind: str, value: object) -> None:
        super().__init__(
            f"invalid {kind} identifier {value!r}: use 1-64 characters of A-Z a-z 0-9 _ -"
        )
        self.kind = kind
        self.value = value


def is_ident(value: object) -> bool:
    return isinstance(value, str) and _IDENT_RE.fullmatch(value) is not None


def check_ident(kind: str, value: object) -> str:
    """Return ``value`` if it is a valid identifier, else raise :class:`InvalidIdentifier`."""
    if not is_ident(value):
        raise InvalidIdentifier(kind, value)
    assert isinstance(value, str)
    return value

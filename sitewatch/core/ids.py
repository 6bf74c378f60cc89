"""Identifiers: the one place that says what a site, gateway, device or worker id may be.

Identifiers end up in MQTT topics, InfluxDB tags and SQL parameters. Restricting them to
``[A-Za-z0-9_-]{1,64}`` means none of them ever needs escaping anywhere, and a topic
filter wildcard (``+``, ``#``) or a line-protocol separator (space, comma, ``=``) can never
be smuggled in through one.

An identifier is matched in full, everywhere. Two regex engines apply the pattern, and
they disagree about ``$``: in Python's ``re`` (and so in msgspec, which *searches* with
it) ``$`` also matches before a final newline, so ``^...$`` would let ``"S1\\n"``
through; in pydantic's Rust engine ``$`` is the end of the text and ``\\Z`` does not
exist. Hence one character rule, :data:`IDENT_CHARS`, anchored once per engine, and one
:data:`Ident` type that carries both (msgspec reads its ``Meta``, pydantic its
``StringConstraints``).
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from pydantic import StringConstraints

#: what an identifier is made of (unanchored)
IDENT_CHARS = r"[A-Za-z0-9_-]{1,64}"
#: for pydantic and FastAPI (``Field(pattern=...)``, ``Path``, ``Query``): Rust regex,
#: where ``$`` only matches at the very end of the text
IDENT_PATTERN = rf"^{IDENT_CHARS}$"
#: for Python's ``re`` and msgspec (``\\A``/``\\Z``: no final newline slips past ``$``)
IDENT_PATTERN_PY = rf"\A{IDENT_CHARS}\Z"
_IDENT_RE = re.compile(IDENT_PATTERN_PY)

#: an identifier in a contract message (msgspec) or a settings model (pydantic)
Ident = Annotated[
    str,
    msgspec.Meta(pattern=IDENT_PATTERN_PY, min_length=1, max_length=64),
    StringConstraints(pattern=IDENT_PATTERN, min_length=1, max_length=64),
]


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

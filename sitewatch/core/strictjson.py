"""What the wire contract refuses in JSON that a JSON parser would take: ambiguity.

msgspec (and Python's ``json``) accept three things a message must not carry:

- nesting deeper than :data:`MAX_DEPTH`: no contract message is more than 4 levels deep
  (envelope, items, item, values), and a payload nested thousands of levels deep makes
  both parsers raise ``RecursionError`` instead of a validation error;
- a key twice in one object: both parsers keep the last, so ``{"batch":7,"batch":8}``
  would be acknowledged as batch 8 - a guess, not a reading of the message;
- a string holding a control character (U+0000-U+001F, U+007F-U+009F): identifiers
  never do (their pattern), and a free-text field would carry it into line protocol.

The checks are cheap byte scans where a good batch passes through them, and exact
(slower) ones only for a batch that has already failed the fast path. ``CONTROL`` is
line protocol's own rule, re-exported.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sitewatch.core.lineprotocol import CONTROL

__all__ = [
    "CONTROL",
    "MAX_DEPTH",
    "Object",
    "control_in",
    "loads",
    "may_hold_control",
    "repeated_key",
    "same_keys",
    "too_deep",
]

MAX_DEPTH = 16

#: a JSON string token (escapes included), to blank out before looking at structure
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_OPEN = frozenset(b"[{")
#: bytes that may spell a control character inside a JSON string: an escape of one
#: (``\n``, ``\u001b``; ``\\n`` is a false alarm, which only costs the exact check) or
#: DEL / a C1 control written as UTF-8. Raw U+0000-U+001F inside a string is not JSON.
_CONTROL_HINT = re.compile(
    rb"\\(?:[bfnrt]|u00[01][0-9a-fA-F]|u007[fF]|u00[89][0-9a-fA-F])|\x7f|\xc2[\x80-\x9f]"
)


def too_deep(payload: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether brackets (outside strings) nest deeper than ``limit`` anywhere, balanced
    or not. Linear in the payload, and stops at the first level too deep."""
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", payload).translate(None, _NOT_BRACKET)
    depth = 0
    opening = _OPEN
    for b in brackets:
        if b in opening:
            depth += 1
            if depth > limit:
                return True
        elif depth:
            depth -= 1
    return False


def may_hold_control(payload: bytes) -> bool:
    """False when no string of ``payload`` can hold a control character (the usual
    case, found with three byte searches); True means: check the decoded strings."""
    if b"\\" not in payload and b"\x7f" not in payload and b"\xc2" not in payload:
        return False
    return _CONTROL_HINT.search(payload) is not None


def control_in(value: Any) -> str | None:
    """The first string (key or value) in a decoded JSON value that holds a control
    character, or None."""
    if isinstance(value, str):
        return value if CONTROL.search(value) else None
    if isinstance(value, dict):
        for k, v in value.items():
            found = control_in(k) or control_in(v)
            if found is not None:
                return found
    elif isinstance(value, list):
        for v in value:
            found = control_in(v)
            if found is not None:
                return found
    return None


def _keys(payload: bytes, exact: bool) -> int:
    # outside strings a colon only ever separates a key from its value
    return (_STRING.sub(b'""', payload) if exact else payload).count(b":")


def same_keys(payload: bytes, reencoded: bytes) -> bool:
    """Whether ``payload`` has as many keys as ``reencoded``, its decoded message
    encoded again (which has each field once): fewer in the re-encoding means a key of
    the payload was repeated and one of its values silently dropped. Without a
    backslash in the payload no string can hide an escaped quote, and colons inside
    strings are the same on both sides, so plain counts compare; else strings are
    blanked first."""
    exact = b"\\" in payload
    return _keys(payload, exact) == _keys(reencoded, exact or b"\\" in reencoded)


class Object(dict[str, Any]):
    """A JSON object parsed by :func:`loads`: ``repeated`` names its keys given twice,
    ``nested_repeat`` the first repeated key found in it at any depth."""

    repeated: list[str]
    nested_repeat: str | None


def _object(pairs: list[tuple[str, Any]]) -> Object:
    obj = Object(pairs)
    obj.repeated = []
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen and k not in obj.repeated:
                obj.repeated.append(k)
            seen.add(k)
    nested = obj.repeated[0] if obj.repeated else None
    if nested is None:
        for v in obj.values():
            nested = _nested_repeat(v)
            if nested is not None:
                break
    obj.nested_repeat = nested
    return obj


def _nested_repeat(value: Any) -> str | None:
    if isinstance(value, Object):
        return value.nested_repeat
    if isinstance(value, list):
        for v in value:
            found = _nested_repeat(v)
            if found is not None:
                return found
    return None


def loads(payload: bytes) -> Any:
    """Python's JSON parser (which also reads NaN and Infinity), with every object an
    :class:`Object` that knows its repeated keys. Call it only on a payload that is not
    :func:`too_deep`. Raises ``ValueError`` (``UnicodeDecodeError`` included)."""
    return json.loads(payload, object_pairs_hook=_object)


def repeated_key(value: Any) -> str | None:
    """The first key repeated anywhere in a value returned by :func:`loads`."""
    return _nested_repeat(value)

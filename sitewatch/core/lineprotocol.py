"""InfluxDB line protocol: escaping and formatting in one place.

Rules (InfluxDB 1.x, 2.x and 3.x agree):
- measurement: escape comma and space
- tag keys, tag values, field keys: escape comma, equals sign and space
- string field values: double-quoted; escape double quote and backslash
- control characters (U+0000-U+001F, U+007F-U+009F) have no escape in any of them (a
  newline ends the line): a value holding one is refused, never written
- floats are written without a suffix, integers with ``i``: a float field must always be
  written as a float (``3.0``, never ``3i``) or InfluxDB refuses the whole write with a
  field-type conflict.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})
#: a character Unicode calls a control (category Cc): no line-protocol escape for it
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class LineProtocolError(ValueError):
    """A value that cannot be written (non-finite float, empty key, newline in a tag)."""


def escape_measurement(name: str) -> str:
    _no_trailing_backslash(name)
    return name.translate(_MEASUREMENT)


def escape_key(key: str) -> str:
    """Tag keys, tag values and field keys."""
    _no_trailing_backslash(key)
    return key.translate(_KEY)


def _no_trailing_backslash(s: str) -> None:
    if not s:
        raise LineProtocolError("empty measurement, tag or field key/value")
    if s.endswith("\\") or CONTROL.search(s):
        # a trailing backslash would escape the following separator; no protocol
        # version defines an unescape for it, so refuse rather than corrupt the line
        raise LineProtocolError(f"{s!r}: trailing backslash or control character cannot be encoded")


def quote_string(value: str) -> str:
    if CONTROL.search(value):
        raise LineProtocolError(f"{value[:80]!r}: a control character cannot be encoded")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_float(value: float) -> str:
    if not math.isfinite(value):
        raise LineProtocolError(f"non-finite float {value!r}")
    return repr(float(value))


def format_int(value: int) -> str:
    return f"{int(value)}i"


def format_field_value(value: float | int | bool | str) -> str:
    """Type-directed by the Python type: bool, int (``i``), float, str."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return format_int(value)
    if isinstance(value, float):
        return format_float(value)
    return quote_string(value)


def format_line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, float | int | bool | str],
    ts: int | None = None,
) -> str:
    """One line; tags sorted by key (what InfluxDB recommends for write performance)."""
    head, body = format_series(measurement, tags), format_fields(fields)
    return f"{head} {body}" if ts is None else f"{head} {body} {ts}"


def format_series(measurement: str, tags: Mapping[str, str]) -> str:
    """A line's measurement and tags: the same for every point of a series (a caller
    writing many points of one series can format it once)."""
    head = escape_measurement(measurement)
    for k in sorted(tags):
        head += f",{escape_key(k)}={escape_key(tags[k])}"
    return head


def format_fields(fields: Mapping[str, float | int | bool | str]) -> str:
    if not fields:
        raise LineProtocolError("a point needs at least one field")
    return ",".join(f"{escape_key(k)}={format_field_value(v)}" for k, v in fields.items())


def join_lines(lines: Iterable[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()

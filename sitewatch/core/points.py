"""How each validated item becomes an InfluxDB point (line protocol): telemetry per
profile, gate events, camera events and gateway status. The measurement, tag and field
names here are the ones the dashboards and the API query (docs/ingest.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from sitewatch.core import contract
from sitewatch.core.lineprotocol import quote_string
from sitewatch.core.profiles import FieldType

Formatter = Callable[[Any, str, str], str]


def telemetry_formatter(name: str, fields: tuple[tuple[str, FieldType], ...]) -> Formatter:
    """Line-protocol formatter for one profile's validated items.

    Identifiers (site, gateway, device, profile) match [A-Za-z0-9_-] and field names
    [a-z][a-z0-9_]*: none needs escaping. Two ways to format the fields:

    - fast: when an item carries only float and bool values, msgspec's JSON encoding of
      the validated values (``{"load_t":3.0,"ok":true}``) is line-protocol field syntax
      once ``":`` becomes ``=``: floats always have a decimal point or exponent (so they
      stay floats), there are no strings whose content could hold JSON syntax, and
      absent (UNSET) fields are omitted. This halves ingest's CPU per reading.
    - generic: per field, for items that carry an int (needs the ``i`` suffix) or a
      string (needs line-protocol quoting).
    """
    encoders: list[tuple[str, Callable[[Any], str]]] = []
    for fname, ftype in fields:
        if ftype is FieldType.FLOAT:
            encoders.append((fname, repr))  # msgspec already made it a float
        elif ftype is FieldType.INT:
            encoders.append((fname, lambda v: f"{v}i"))
        elif ftype is FieldType.BOOL:
            encoders.append((fname, lambda v: "true" if v else "false"))
        else:
            encoders.append((fname, quote_string))
    needs_generic = tuple(f for f, t in fields if t in (FieldType.INT, FieldType.STR))
    unset = msgspec.UNSET
    astuple = msgspec.structs.astuple
    to_json = msgspec.json.Encoder().encode

    def generic(item: Any, site: str, gateway: str) -> str:
        parts = [f"seq={item.seq}i"]
        for (fname, enc), value in zip(encoders, astuple(item.values), strict=True):
            if value is not unset:
                parts.append(f"{fname}={enc(value)}")
        return (
            f"{name},device={item.device},gateway={gateway},site={site} {','.join(parts)} {item.ts}"
        )

    def fmt(item: Any, site: str, gateway: str) -> str:
        values = item.values
        for fname in needs_generic:
            if getattr(values, fname) is not unset:
                return generic(item, site, gateway)
        body = to_json(values)
        if len(body) == 2:  # no values: seq alone
            return (
                f"{name},device={item.device},gateway={gateway},site={site} "
                f"seq={item.seq}i {item.ts}"
            )
        fields_text = body[2:-1].replace(b'":', b"=").replace(b',"', b",").decode()
        return (
            f"{name},device={item.device},gateway={gateway},site={site} "
            f"seq={item.seq}i,{fields_text} {item.ts}"
        )

    return fmt


def attendance_line(item: contract.AttendanceItem, site: str, gateway: str) -> str:
    # worker and direction are tags: dashboards group by them, and two workers passing
    # one terminal in the same millisecond stay two points
    return (
        f"attendance,device={item.device},direction={item.direction},gateway={gateway},"
        f"site={site},worker={item.worker} "
        f'seq={item.seq}i,method="{item.method}" {item.ts}'
    )


def camera_line(item: contract.CameraItem, site: str, gateway: str) -> str:
    parts = [f"seq={item.seq}i"]
    if item.zone is not msgspec.UNSET:
        parts.append(f'zone="{item.zone}"')
    if item.count is not msgspec.UNSET:
        parts.append(f"count={item.count}i")
    if item.confidence is not msgspec.UNSET:
        parts.append(f"confidence={float(item.confidence)!r}")
    if item.snapshot is not msgspec.UNSET:
        parts.append(f'snapshot="{item.snapshot}"')
    if item.method is not msgspec.UNSET:
        parts.append(f'method="{item.method}"')
    return (
        f"camera,device={item.device},event={item.event},gateway={gateway},site={site} "
        f"{','.join(parts)} {item.ts}"
    )


def status_line(status: contract.Status, site: str, gateway: str) -> str:
    return (
        f"gateway_status,gateway={gateway},site={site} "
        f'state="{status.state}",boot={status.boot}i,queued={status.queued}i,'
        f"agent={quote_string(status.agent)} {status.ts}"
    )

"""No control characters in any input: one check, run first on every route.

NUL and the other control characters (Unicode category Cc: U+0000-U+001F, U+007F-U+009F)
belong in no identifier, name, filter, comment or password. Let through, they reach
places that cannot take them: PostgreSQL refuses NUL in text (the request would end in a
500), a line break in a name splits the log line it is written to, InfluxDB and CSV and
XLSX exports mangle them. So every route depends on :func:`refuse_control_characters`
(the app's own dependency, in :mod:`api.main`), which looks at the path parameters, the
query parameters (declared or not), the form fields (the log-in name and password among
them, and an uploaded file's name), every key and string value of a JSON body at any
depth, and the header values; the first control character found is a 422 that names the
field (never its value), counted in ``sitewatch_api_control_characters_total``.

Header values arrive as bytes decoded as Latin-1, where bytes 0x80-0x9F are parts of
UTF-8 characters, not C1 controls: only C0 controls (but TAB) and DEL count there. Real
HTTP servers refuse those before the API sees them; the check covers the other paths in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.params import Form
from prometheus_client import CollectorRegistry, Counter
from starlette.datastructures import UploadFile

from api.errors import ApiError

#: control characters in decoded text (Unicode category Cc)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: control characters in a header value (RFC 9110 field values allow HTAB)
HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

Loc = tuple[str | int, ...]


class ControlCharacter(ApiError):
    """A control character in an input: 422, in the shape of every validation error."""

    status_code = 422
    code = "invalid_request"

    def __init__(self, location: str, loc: Loc, char: str) -> None:
        what = f"control character U+{ord(char):04X} is not allowed"
        super().__init__(f"{_describe(location, loc)}: {what}", [{"loc": list(loc), "msg": what}])
        self.location = location


def _describe(location: str, loc: Loc) -> str:
    path = ".".join(_printable(str(x)) for x in loc[1:])
    kind = {
        "path": "path parameter",
        "query": "query parameter",
        "header": "header",
        "form": "form field",
        "body": "body field",
    }[location]
    return f"{kind} {path}" if path else "body"


def _printable(name: str) -> str:
    """A field name as it can be shown: its control characters escaped."""
    return CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", name)


def _json_strings(value: Any) -> Iterator[tuple[Loc, str]]:
    """Every key and string value of a parsed JSON document, with where it is (a key is
    reported at its own location). Iterative: no recursion limit to reach."""
    stack: list[tuple[Loc, Any]] = [((), value)]
    while stack:
        loc, v = stack.pop()
        if isinstance(v, str):
            yield loc, v
        elif isinstance(v, dict):
            for k, item in v.items():
                yield (*loc, str(k)), str(k)
                stack.append(((*loc, str(k)), item))
        elif isinstance(v, list):
            stack.extend(((*loc, i), item) for i, item in enumerate(v))


def _first(text: str, pattern: re.Pattern[str] = CONTROL) -> str | None:
    m = pattern.search(text)
    return m.group() if m else None


async def _inputs(request: Request) -> Iterator[tuple[str, Loc, str]]:
    """(location, loc, text) of every text input of the request."""
    found: list[tuple[str, Loc, str]] = []
    found += (("path", ("path", k), str(v)) for k, v in request.path_params.items())
    found += (("query", ("query", k), k) for k in request.query_params)
    found += (("query", ("query", k), v) for k, v in request.query_params.multi_items())
    route = request.scope.get("route")
    body_field = getattr(route, "body_field", None)
    if body_field is not None:  # the body FastAPI has already read for this route
        if isinstance(body_field.field_info, Form):
            form = await request.form()  # parsed once, kept by the request
            for k, v in form.multi_items():
                found.append(("form", ("body", k), k))
                if isinstance(v, UploadFile):
                    found.append(("form", ("body", k, "filename"), v.filename or ""))
                else:
                    found.append(("form", ("body", k), v))
        elif _is_json(request.headers.get("content-type")) and await request.body():
            try:  # parsed by FastAPI already, kept by the request
                document = await request.json()
            except ValueError:  # not JSON: the route's own validation refuses it
                document = None
            found += (("body", ("body", *loc), s) for loc, s in _json_strings(document))
    return iter(found)


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return True  # FastAPI reads a body without a content type as JSON
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def refuse_control_characters(request: Request) -> None:
    """The app-wide dependency: a 422 naming the first input with a control character."""
    for name, value in request.headers.items():
        char = _first(value, HEADER_CONTROL)
        if char is not None:
            _refuse(request, ControlCharacter("header", ("header", name), char))
    for location, loc, text in await _inputs(request):
        char = _first(text)
        if char is not None:
            _refuse(request, ControlCharacter(location, loc, char))


def _refuse(request: Request, exc: ControlCharacter) -> None:
    counter: Counter | None = getattr(request.app.state, "control_characters", None)
    if counter is not None:
        counter.labels(exc.location).inc()
    raise exc


def count_refusals(app: FastAPI, registry: CollectorRegistry) -> None:
    """Count what the check refuses in ``app``, in ``registry``."""
    app.state.control_characters = Counter(
        "sitewatch_api_control_characters_total",
        "Requests refused (422) for a control "
        "character, by where it was: path, query, header, form, body",
        ["location"],
        registry=registry,
    )

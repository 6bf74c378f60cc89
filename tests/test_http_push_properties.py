"""The HTTP push listener is a trust boundary: properties against the real listener.

Driven with arbitrary bytes and with structured but hostile requests (nesting depth,
size, wrong types, duplicate keys, control characters, numbers at the edges, truncated
requests, lying lengths), the listener may only answer 2xx, or 4xx with a JSON reason
(``{"error": code, "message": ...}``); never a 5xx, never a connection dropped without
an answer to a complete request, and it goes on serving a good request afterwards.

The listener runs on a free loopback port in an event loop of its own thread, so that
hypothesis drives it from plain synchronous tests over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import wait_listening
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edge.drivers.base import Values
from edge.drivers.http_push import MAX_BODY, HttpPushDriver, HttpPushOptions
from sitewatch.core.profiles import load_profiles
from sitewatch.programs.localstack import free_port

GATE_TOKEN = "gate-01-secret-token"
METER_TOKEN = "cam-status-secret-token"
PROFILES = load_profiles()


class Sink:
    """Takes everything (the spool is not what is tested here)."""

    def __init__(self) -> None:
        self.taken = 0

    def now_ms(self) -> int:
        return 1_764_000_000_000

    def emit(self, values: Values, ts_ms: int) -> bool:
        self.taken += 1
        return True

    def emit_attendance(self, worker: str, direction: str, method: str, ts_ms: int) -> bool:
        self.taken += 1
        return True

    async def emit_camera(self, *a: object) -> bool:
        return False

    async def durable(self) -> bool:
        return True


class Listener:
    """Two http_push devices (an attendance gate, a telemetry device with int, bool and
    float fields) on one listener, in a thread's event loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.sink = Sink()
        self.errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, ctx: self.errors.append(ctx))
        self.drivers = [
            HttpPushDriver(
                "GATE01",
                PROFILES["attendance_gate"],
                60,
                HttpPushOptions(token=GATE_TOKEN, host="127.0.0.1", port=self.port),
            ),
            HttpPushDriver(
                "CAM01",
                PROFILES["camera_status"],
                60,
                HttpPushOptions(
                    token=METER_TOKEN, kind="telemetry", host="127.0.0.1", port=self.port
                ),
            ),
        ]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.thread.start()

        async def begin() -> None:
            self.tasks = [asyncio.create_task(d.run(self.sink)) for d in self.drivers]
            await wait_listening(self.port, what="the HTTP push listener")

        asyncio.run_coroutine_threadsafe(begin(), self.loop).result(30)

    def stop(self) -> None:
        async def end() -> None:
            for t in self.tasks:
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(end(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    @property
    def counters(self) -> dict[str, int]:
        return dict(self.drivers[0].listener.counters)


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    running = Listener()
    running.start()
    yield running
    running.stop()


def exchange(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data``, end our side, and read everything the listener answers until it
    closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # it answered and closed before reading all (413): read the answer
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def responses(raw: bytes, *, head: bool = False) -> list[tuple[int, dict[str, Any] | None]]:
    """(status, JSON body) of each response in ``raw``; every one must be complete. The
    answer to a HEAD request has no body (HTTP), only its length."""
    out: list[tuple[int, dict[str, Any] | None]] = []
    while raw:
        top, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, f"an incomplete response: {raw[:200]!r}"
        lines = top.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
        length = 0 if head else int(headers[b"content-length"])
        head = False  # pipelined requests after it are not HEAD
        body, raw = rest[:length], rest[length:]
        assert len(body) == length, "a truncated response body"
        out.append((status, json.loads(body) if body else None))
    return out


def request(
    path: str,
    body: bytes,
    *,
    token: str | None = GATE_TOKEN,
    ctype: str = "application/json",
    extra: bytes = b"",
) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Length: {len(body)}\r\n"
    if token is not None:
        head += f"Authorization: Bearer {token}\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    return head.encode() + extra + b"Connection: close\r\n\r\n" + body


GOOD = request(
    "/v1/push/GATE01",
    json.dumps({"worker": "W000123", "direction": "in", "method": "face"}).encode(),
)


def assert_allowed(answers: list[tuple[int, dict[str, Any] | None]], *, head: bool = False) -> None:
    for status, body in answers:
        assert status < 500, (status, body)
        if status >= 400:
            assert (body is None and head) or (
                body is not None and body.get("error") and body.get("message")
            ), body
        else:
            assert 200 <= status < 300 and body is not None and "accepted" in body
        event(f"status {status}" + (f" {body['error']}" if body and "error" in body else ""))


def assert_still_serving(listener: Listener) -> None:
    assert responses(exchange(listener.port, GOOD)) == [(202, {"accepted": 1})]
    assert listener.errors == [], listener.errors


# -- JSON bodies ---------------------------------------------------------------------

_EDGE_NUMBERS = st.sampled_from(
    [
        0,
        -1,
        2**31,
        2**53 + 1,
        2**63 - 1,
        2**63,
        2**64,
        -(2**63) - 1,
        10**30,
        -(10**400),
        1e308,
        -1e308,
        5e-324,
        -0.0,
        0.1,
        1.7976931348623157e308,
    ]
)
_RAW_NUMBERS = st.sampled_from(
    [
        b"1e400",
        b"-1e400",
        b"1E-400",
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"01",
        b"1.",
        b".5",
        b"+1",
        b"0x10",
        b"1" * 5000,
        b"-" + b"9" * 400,
    ]
)
_CONTROL_TEXT = st.text(st.characters(max_codepoint=0x9F), max_size=12)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | _EDGE_NUMBERS
    | st.floats(allow_nan=False, allow_infinity=False)
    | _CONTROL_TEXT
    | st.sampled_from(["W000123", "in", "out", "face", "card", "manual", "W 1", ""]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "worker",
                    "direction",
                    "method",
                    "ts",
                    "values",
                    "events",
                    "online",
                    "people",
                    "frozen",
                    "x",
                    "\x00",
                    "é",
                ]
            )
            | _CONTROL_TEXT,
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@st.composite
def event_docs(draw: st.DrawFn) -> Any:
    """Mostly events of the right shape with one part hostile; sometimes anything."""
    if draw(st.integers(0, 3)) == 0:
        return draw(json_values)
    # one part hostile, or none (a good event, to be taken)
    hostile = draw(st.sampled_from(["worker", "direction", "method", "none"]))
    gate = {
        "worker": draw(
            _CONTROL_TEXT if hostile == "worker" else st.sampled_from(["W000123", "W000001"])
        ),
        "direction": draw(
            json_values if hostile == "direction" else st.sampled_from(["in", "out"])
        ),
        "method": draw(json_values if hostile == "method" else st.sampled_from(["face", "card"])),
    }
    if draw(st.booleans()):
        gate["ts"] = draw(_EDGE_NUMBERS | st.integers() | json_values)
    telemetry = {
        "values": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "online": st.booleans() | json_values,
                    "people": _EDGE_NUMBERS | json_values,
                    "frozen": st.booleans(),
                },
            )
        ),
        "ts": draw(_EDGE_NUMBERS | json_values),
    }
    doc = draw(st.sampled_from([gate, telemetry]))
    n = draw(st.integers(0, 3))
    return {"events": [doc] * n} if n else doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_docs(), st.sampled_from(["GATE01", "CAM01"]))
def test_hostile_json_events(listener: Listener, doc: Any, device: str) -> None:
    token = GATE_TOKEN if device == "GATE01" else METER_TOKEN
    body = json.dumps(doc).encode()
    answers = responses(exchange(listener.port, request(f"/v1/push/{device}", body, token=token)))
    assert len(answers) == 1
    assert_allowed(answers)
    assert_still_serving(listener)


@st.composite
def raw_json_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(
        st.sampled_from(["deep", "duplicate", "control", "number", "truncated", "huge", "bytes"])
    )
    return kind, draw(_raw_json_body(kind))


@st.composite
def _raw_json_body(draw: st.DrawFn, kind: str) -> bytes:
    """JSON text no serializer writes: nesting thousands deep, keys twice, raw control
    characters and escaped ones, numbers beyond every range, truncation, huge bodies."""
    if kind == "deep":
        n = draw(st.integers(10, 60_000))
        opener = draw(st.sampled_from([b"[", b'{"a":']))
        closer = b"]" if opener == b"[" else b"}"
        return opener * n + b"1" + closer * draw(st.sampled_from([n, 0, n // 2]))
    if kind == "duplicate":  # a key twice, at the top or nested
        key = draw(st.sampled_from([b"worker", b"direction", b"method", b"ts"]))
        value = draw(st.sampled_from([b'"W000124"', b'"out"', b'"card"', b"1", b"[]"]))
        top = (
            b'{"worker":"W000123","direction":"in","method":"face","ts":5,"'
            + key
            + b'":'
            + value
            + b"}"
        )
        nested = b'{"values":{"online":true,"people":1,"online":false},"ts":1}'
        return top if draw(st.booleans()) else b'{"events":[' + nested + b"]}"
    if kind == "control":
        char = draw(
            st.sampled_from(
                [
                    b"\x00",
                    b"\x1b",
                    b"\x7f",
                    b"\\u0000",
                    b"\\u001b",
                    b"\\u007f",
                    b"\\u0085",
                    b"\xc2\x85",
                    b"\\n",
                    b"\t",
                ]
            )
        )
        return b'{"worker":"W0001' + char + b'","direction":"in","method":"face"}'
    if kind == "number":
        number = draw(_RAW_NUMBERS)
        return draw(
            st.sampled_from(
                [
                    b'{"worker":"W000123","direction":"in","method":"face","ts":' + number + b"}",
                    b'{"values":{"people":' + number + b',"online":true},"ts":1}',
                ]
            )
        )
    if kind == "truncated":
        good = b'{"events":[{"worker":"W000123","direction":"in","method":"face"}]}'
        return good[: draw(st.integers(0, len(good) - 1))]
    if kind == "huge":
        size = draw(st.sampled_from([MAX_BODY - 10, MAX_BODY + 1, 3 * MAX_BODY]))
        return b'{"worker":"' + b"W" * size + b'"}'
    return draw(st.binary(max_size=200))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_json_bodies(), st.sampled_from(["GATE01", "CAM01"]))
def test_hostile_json_text(listener: Listener, kind_body: tuple[str, bytes], device: str) -> None:
    kind, body = kind_body
    token = GATE_TOKEN if device == "GATE01" else METER_TOKEN
    answers = responses(exchange(listener.port, request(f"/v1/push/{device}", body, token=token)))
    assert len(answers) == 1
    assert_allowed(answers)
    assert_still_serving(listener)
    _, reply = answers[0]
    error = (reply or {}).get("error")
    if kind == "deep" and 16 < body.count(b"[") + body.count(b"{") and len(body) <= MAX_BODY:
        assert error == "too_deep"
    elif kind == "duplicate":
        assert error == "duplicate_key"  # a key twice is refused, not guessed at
    elif kind == "control":
        assert error in ("control_character", "bad_json")  # raw ones are not JSON


# -- HTTP itself ---------------------------------------------------------------------


@st.composite
def hostile_requests(draw: st.DrawFn) -> bytes:
    """Requests broken at the HTTP level: lying or absurd lengths, bad header names and
    values, bad methods and targets, stray bytes, pipelining, truncation."""
    body = b'{"worker":"W000123","direction":"in","method":"face"}'
    kind = draw(
        st.sampled_from(
            [
                "length",
                "header",
                "target",
                "method",
                "version",
                "truncate",
                "pipeline",
                "chunked",
                "noise",
            ]
        )
    )
    if kind == "length":
        value = draw(
            st.sampled_from(
                [
                    b"-1",
                    b"abc",
                    b"99999999999999999999",
                    b"1, 2",
                    b"",
                    b"0",
                    str(len(body) + 5).encode(),
                    b" 5",
                ]
            )
        )
        head = (
            b"POST /v1/push/GATE01 HTTP/1.1\r\nHost: gw\r\nContent-Length: "
            + value
            + b"\r\nAuthorization: Bearer "
            + GATE_TOKEN.encode()
            + b"\r\n\r\n"
        )
        return head + body
    if kind == "header":
        name, value = draw(
            st.tuples(
                st.sampled_from([b"X-A", b"X A", b"", b"X\x00", b":", b"\xff", b"Content-Type"]),
                st.sampled_from(
                    [
                        b"1",
                        b"\x00",
                        b"a\rb",
                        b"\xff\xfe",
                        b" " * 3,
                        b"x" * 70_000,
                        b"application/json; charset=\xff",
                        b"text/plain",
                    ]
                ),
            )
        )
        return request("/v1/push/GATE01", body, extra=name + b": " + value + b"\r\n")
    if kind == "target":
        target = draw(
            st.sampled_from(
                [
                    "/",
                    "*",
                    "/v1/push/",
                    "/v1/push/GATE01/x",
                    "/v1/push/%00",
                    "/v1/push/GATE01?" + "a" * 10_000,
                    "/v1/push/..%2f..",
                    "http://evil/v1/push/GATE01",
                    "/v1/push/GATE01#x",
                    "/v1//push/GATE01",
                ]
            )
        )
        return request(target, body)
    if kind == "method":
        method = draw(
            st.sampled_from(
                [b"GET", b"PUT", b"DELETE", b"OPTIONS", b"HEAD", b"P\x00ST", b"post", b"BREW"]
            )
        )
        return request("/v1/push/GATE01", body).replace(b"POST", method, 1)
    if kind == "version":
        version = draw(st.sampled_from([b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTX/1.1", b""]))
        return request("/v1/push/GATE01", body).replace(b"HTTP/1.1", version, 1)
    if kind == "truncate":
        full = request("/v1/push/GATE01", body)
        return full[: draw(st.integers(1, len(full) - 1))]
    if kind == "pipeline":
        first = request("/v1/push/GATE01", body).replace(b"Connection: close\r\n", b"")
        return first + draw(st.binary(min_size=1, max_size=100))
    if kind == "chunked":
        chunks = draw(
            st.sampled_from(
                [b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"ffffffff\r\n", b"-1\r\n", b"3\r\n{}\r\n"]
            )
        )
        return (
            b"POST /v1/push/GATE01 HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked"
            b"\r\nAuthorization: Bearer " + GATE_TOKEN.encode() + b"\r\n\r\n" + chunks
        )
    return draw(st.binary(min_size=1, max_size=300))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_requests())
def test_hostile_http(listener: Listener, data: bytes) -> None:
    head = data.startswith(b"HEAD ")
    answers = responses(exchange(listener.port, data), head=head)
    assert_allowed(answers, head=head)
    assert_still_serving(listener)
    # something that is not a complete request gets an answer too, once the client has
    # ended its side: a 4xx with the reason, not a silently closed connection
    if data.strip(b"\r\n"):
        assert answers, f"no answer to {data[:120]!r}"
    assert_still_serving(listener)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(listener: Listener, data: bytes) -> None:
    head = data.startswith(b"HEAD ")
    assert_allowed(responses(exchange(listener.port, data), head=head), head=head)
    assert_still_serving(listener)


def test_the_listener_still_serves(listener: Listener) -> None:
    """Run last in this module: after all of the above, a good request is taken, and no
    error escaped to the event loop."""
    assert_still_serving(listener)
    assert listener.sink.taken > 0

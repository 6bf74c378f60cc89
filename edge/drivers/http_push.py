"""``driver: http_push``: terminals and devices that POST JSON to the gateway.

``POST /v1/push/{device}`` with ``Authorization: Bearer <token>`` (each device its own
token). The body is one event or ``{"events": [...]}``:

- attendance terminals (``kind: attendance``): ``{"worker": "W000123", "direction": "in",
  "method": "face", "ts": 1763900000000}`` (``ts`` optional: the gateway's clock);
- other devices (``kind: telemetry``): ``{"values": {...}, "ts": ...}``, values checked
  against the device's profile.

The answer is ``202 {"accepted": n}`` once every event is committed to the spool, so a
terminal that gets no 202 keeps its events and sends them again. Errors are JSON
``{"error": code, "message": ...}``: 401 (no or wrong token), 404 (unknown device or
path), 405, 413 (body over 256 KiB), 415, 422 (invalid event: nothing of the request is
taken; also JSON nested deeper than 16 levels, a key given twice, a string with a control
character), 507 (the spool refused). A request that is not valid HTTP/1.1 is answered
400 (431 for headers over 16 KiB) with the reason, and its connection closed. One small
HTTP/1.1 server (h11) per host and port serves every ``http_push`` device of the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from typing import Any, Literal

import h11
import msgspec
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from edge.drivers.base import Values
from edge.drivers.listener import ListeningDriver, SharedListener
from sitewatch.core import contract, strictjson
from sitewatch.core.ids import Ident
from sitewatch.core.profiles import Profile

log = logging.getLogger("sitewatch.edge.http_push")
MAX_BODY = 256 * 1024


class HttpPushOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: this device's bearer token (at least 16 characters)
    token: SecretStr = Field(min_length=16)
    kind: Literal["attendance", "telemetry"] = "attendance"
    host: str = "0.0.0.0"
    port: int = Field(default=8081, ge=1, le=65535)


class GateEvent(msgspec.Struct, forbid_unknown_fields=True):
    worker: Ident
    direction: Literal["in", "out"]
    method: Literal["face", "card", "fingerprint", "manual"]
    ts: contract.Millis | None = None


class _Reject(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class HttpPushListener(SharedListener["HttpPushDriver"]):
    protocol = "HTTP push"
    #: a connection that sends nothing for this long is closed (terminals keep idle
    #: keep-alive connections open)
    idle_timeout_s = 30.0

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await self._read_request(conn, reader)
                if request is None:
                    return
                status, payload = await self._handle(request, body)
                # a body not read to its end (too large) leaves nothing to read the next
                # request from: answer and close
                close = conn.their_state is not h11.DONE
                await self._respond(
                    conn, writer, status, payload, close=close, head=request.method == b"HEAD"
                )
                if close or conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            # not HTTP/1.1 as h11 reads it: answered with the reason when an answer can
            # still be sent (nothing of this request answered yet), then closed
            self.counters["bad_http"] += 1
            log.debug("HTTP push: bad request: %s", exc)
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                status = exc.error_status_hint if 400 <= exc.error_status_hint < 500 else 400
                with contextlib.suppress(ConnectionError, h11.LocalProtocolError):
                    await self._respond(
                        conn,
                        writer,
                        status,
                        {
                            "error": "bad_http",
                            "message": str(exc) or "not a valid HTTP/1.1 request",
                        },
                        close=True,
                    )
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.counters["bad_http"] += 1
            log.debug("HTTP push: connection dropped: %s", exc)
        except TimeoutError:  # an idle keep-alive connection, or a client that stalled
            self.counters["idle_closed"] += 1
            log.debug("HTTP push: nothing for %.0fs: connection closed", self.idle_timeout_s)
        finally:
            writer.close()

    @staticmethod
    async def _respond(
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        status: int,
        payload: dict[str, Any],
        *,
        close: bool,
        head: bool = False,
    ) -> None:
        data = json.dumps(payload).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
        if close:
            headers.append(("connection", "close"))
        writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
        if not head:  # the answer to HEAD has the body's length but not the body
            writer.write(conn.send(h11.Data(data=data)) or b"")
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()

    async def _read_request(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
    ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = b""
        ended = False
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if ended:  # h11 reports half a request at the end as a protocol error
                    return None, b""
                async with asyncio.timeout(self.idle_timeout_s):
                    data = await reader.read(65536)
                conn.receive_data(data)
                ended = not data
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    return request, body  # refused as too large, without reading the rest
            elif isinstance(event, h11.EndOfMessage):
                return request, body
            elif isinstance(event, h11.ConnectionClosed):
                return None, b""

    async def _handle(self, request: h11.Request, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            accepted = await self._route(request, body)
        except _Reject as r:
            self.counters[r.code] += 1
            log.warning(
                "HTTP push %s %s: %d %s: %s",
                request.method.decode(),
                request.target.decode(errors="replace"),
                r.status,
                r.code,
                r.message,
            )
            return r.status, {"error": r.code, "message": r.message}
        self.counters["accepted"] += accepted
        return 202, {"accepted": accepted}

    async def _route(self, request: h11.Request, body: bytes) -> int:
        path = request.target.decode(errors="replace").split("?", 1)[0]
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[:2] != ["v1", "push"]:
            raise _Reject(404, "not_found", f"no such path {path!r}; POST /v1/push/{{device}}")
        if request.method != b"POST":
            raise _Reject(405, "method_not_allowed", "use POST")
        driver = self.devices.get(parts[2])
        headers = {k.lower(): v for k, v in request.headers}
        token = headers.get(b"authorization", b"").removeprefix(b"Bearer ").strip()
        # unknown device and wrong token look the same from outside
        expected = driver.opts.token.get_secret_value().encode() if driver else b"\0" * 32
        if driver is None or not token or not hmac.compare_digest(token, expected):
            raise _Reject(401, "unauthorized", "missing or wrong bearer token for this device")
        if len(body) > MAX_BODY:
            raise _Reject(413, "too_large", f"body over {MAX_BODY} bytes")
        ctype = headers.get(b"content-type", b"application/json").split(b";")[0].strip()
        if ctype != b"application/json":
            raise _Reject(415, "unsupported_media_type", "send application/json")
        return await driver.take(body)


def _decode(body: bytes) -> Any:
    """The request's JSON, refusing what a parser would take but guess at (the rules of
    sitewatch.core.strictjson, which ingest applies to the wire contract)."""
    if strictjson.too_deep(body):
        raise _Reject(422, "too_deep", f"JSON nested deeper than {strictjson.MAX_DEPTH} levels")
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise _Reject(422, "bad_json", str(exc)) from None
    if not strictjson.same_keys(body, msgspec.json.encode(doc)):
        try:
            key = strictjson.repeated_key(strictjson.loads(body))
        except ValueError:
            key = None
        if key is not None:
            raise _Reject(422, "duplicate_key", f"key {key!r} given twice in one object")
    if strictjson.may_hold_control(body):
        text = strictjson.control_in(doc)
        if text is not None:
            raise _Reject(422, "control_character", f"a string holds a control character: {text!r}")
    return doc


class HttpPushDriver(ListeningDriver):
    Options = HttpPushOptions

    def __init__(
        self, device_id: str, profile: Profile, interval_s: float, options: BaseModel
    ) -> None:
        super().__init__(device_id, profile, interval_s, options)
        assert isinstance(options, HttpPushOptions)
        self.opts = options
        self.listener = HttpPushListener.shared(options.host, options.port)
        self._values = msgspec.json.Decoder(contract.build_profile_types(profile).values)

    @property
    def listener_key(self) -> str:
        return self.device_id

    async def take(self, body: bytes) -> int:
        """Validate every event of a request, then spool them all; 202 needs all."""
        doc = _decode(body)
        raw_events = doc.get("events") if isinstance(doc, dict) and "events" in doc else [doc]
        if not isinstance(raw_events, list) or not 1 <= len(raw_events) <= 5000:
            raise _Reject(422, "bad_request", "'events' must be a list of 1 to 5000 events")
        assert self._sink is not None
        sink = self._sink
        now = sink.now_ms()
        if self.opts.kind == "attendance":
            try:
                gates = [msgspec.convert(e, GateEvent) for e in raw_events]
            except msgspec.ValidationError as exc:
                raise _Reject(422, "invalid_event", str(exc)) from None
            taken = [
                sink.emit_attendance(g.worker, g.direction, g.method, g.ts or now) for g in gates
            ]
        else:
            readings: list[tuple[Values, int]] = []
            for e in raw_events:
                if not isinstance(e, dict) or "values" not in e:
                    raise _Reject(422, "invalid_event", "each event needs 'values'")
                try:
                    values = msgspec.structs.asdict(
                        self._values.decode(msgspec.json.encode(e["values"]))
                    )
                    ts = msgspec.convert(e.get("ts", now), contract.Millis)
                except msgspec.ValidationError as exc:
                    raise _Reject(422, "invalid_event", str(exc)) from None
                readings.append(({k: v for k, v in values.items() if v is not msgspec.UNSET}, ts))
            taken = [sink.emit(v, ts) for v, ts in readings]
        if not all(taken):
            raise _Reject(
                507,
                "spool_refused",
                "the gateway's spool refused the events; keep them and send again later",
            )
        if not await sink.durable():
            raise _Reject(507, "spool_failed", "the gateway could not store the events")
        return len(taken)

"""Turn one MQTT message into InfluxDB lines, rejected items and an ack entry.

Fast path: a good batch is decoded and validated in one msgspec call (see
``sitewatch.core.contract``) and formatted. Only a batch that fails takes the slow path,
which decodes the envelope and each item on its own so that the good items of a batch
are stored and each bad one is dead-lettered with its own reason.

JSON the contract calls ambiguous (``sitewatch.core.strictjson``: too deep, a key twice, a
control character in a string) is refused, never guessed at. A good batch pays for that
with one re-encoding and a few byte searches; the exact checks run on the slow path.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from sitewatch.core import contract, strictjson
from sitewatch.core.points import attendance_line, camera_line, telemetry_formatter
from sitewatch.core.reasons import Reason, classify
from sitewatch.core.topics import GatewayChannel

_BATCH_NO = re.compile(rb'"batch"\s*:\s*(\d{1,19})')
_MAX_ITEM_COPY = 16 * 1024


@dataclass(slots=True)
class Rejected:
    reason: Reason
    detail: str
    payload: bytes
    device: str | None = None
    seq: int | None = None


@dataclass(slots=True)
class Decoded:
    """What a message becomes: lines to write, items refused, and the batch to ack."""

    batch: int | None
    lines: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    items: int = 0
    #: the valid items, before they are formatted as lines
    good: list[Any] = field(default_factory=list)
    #: the valid gate events (attendance channel): they also go to the ledger
    gate_events: list[contract.AttendanceItem] = field(default_factory=list)
    #: digest of the batch's items (:func:`content_digest`), to tell a resend from a reused
    #: batch number; None for a message refused whole
    digest: bytes | None = None


@dataclass(frozen=True)
class TimeWindow:
    max_future_ms: int
    retention_ms: int

    def check(self, ts: int, now_ms: int) -> Reason | None:
        if ts > now_ms + self.max_future_ms:
            return Reason.TS_FUTURE
        if ts < now_ms - self.retention_ms:
            return Reason.TS_TOO_OLD
        return None


def _has_non_finite(obj: Any) -> bool:
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_has_non_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_non_finite(v) for v in obj)
    return False


def _no_items(parsed: Any) -> str:
    """Why a parsed message has no list of items to split."""
    if not isinstance(parsed, dict):
        return f"the message is a JSON {_json_type(parsed)}, not an object"
    if "items" not in parsed:
        return "items missing"
    return f"items is a JSON {_json_type(parsed['items'])}, not an array"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def content_digest(content: bytes) -> bytes:
    """The digest a batch's content is remembered by (``ingest.acked``): SHA-256, first
    16 bytes."""
    return hashlib.sha256(content).digest()[:16]


def _canonical(item_objs: list[Any] | None, raw_items: list[bytes]) -> bytes:
    """A batch's items (on the slow path) as bytes that do not depend on spacing or
    key order, for its digest."""
    if item_objs is not None:
        try:
            return json.dumps(
                item_objs, sort_keys=True, separators=(",", ":"), allow_nan=True
            ).encode()
        except (TypeError, ValueError):
            pass
    return b"\n".join(raw_items)


class _Recover:
    """Default of ``_whole``'s batch: read it from the payload as well as one can."""


_RECOVER = _Recover()


def recover_batch(payload: bytes) -> int | None:
    """The batch number of a message too broken to decode, so that it can be acked."""
    m = _BATCH_NO.search(payload[:4096])
    if m is None:
        return None
    n = int(m.group(1))
    return n if n < 2**63 else None


class _Kind:
    """Decoders and line format for one batch channel."""

    def __init__(
        self,
        batch_decoder: msgspec.json.Decoder[Any],
        item_decoder: msgspec.json.Decoder[Any],
        line: Callable[[Any, str, str], str],
    ) -> None:
        self.batch_decoder = batch_decoder
        self.item_decoder = item_decoder
        self.line = line


class BatchDecoder:
    """Decoding of every batch channel, built once from the device profiles."""

    def __init__(self, codec: contract.TelemetryCodec, window: TimeWindow) -> None:
        self.window = window
        formatters = {
            cls: telemetry_formatter(name, codec.types[name].fields)
            for cls, name in codec.item_by_class.items()
        }

        def telemetry_line(item: Any, site: str, gateway: str) -> str:
            return formatters[type(item)](item, site, gateway)

        self.kinds = {
            GatewayChannel.TELEMETRY: _Kind(
                codec.batch_decoder, codec.item_decoder, telemetry_line
            ),
            GatewayChannel.ATTENDANCE: _Kind(
                contract.attendance_decoder, contract.attendance_item_decoder, attendance_line
            ),
            GatewayChannel.CAMERA: _Kind(
                contract.camera_decoder, contract.camera_item_decoder, camera_line
            ),
        }

    def decode(
        self, channel: GatewayChannel, site: str, gateway: str, payload: bytes, now_ms: int
    ) -> Decoded:
        kind = self.kinds[channel]
        out = self._decode(kind, payload, now_ms)
        line = kind.line
        out.lines = [line(item, site, gateway) for item in out.good]
        if channel is GatewayChannel.ATTENDANCE:
            out.gate_events = out.good
        out.good = []
        return out

    def items(self, channel: GatewayChannel, payload: bytes, now_ms: int) -> tuple[list[Any], int]:
        """The valid items of a batch (what ingest stores) and how many were refused."""
        out = self._decode(self.kinds[channel], payload, now_ms)
        return out.good, len(out.rejected)

    def _decode(self, kind: _Kind, payload: bytes, now_ms: int) -> Decoded:
        if len(payload) > contract.MAX_PAYLOAD_BYTES:
            return self._whole(
                payload, Reason.TOO_LARGE, f"{len(payload)} bytes > {contract.MAX_PAYLOAD_BYTES}"
            )
        try:
            batch = kind.batch_decoder.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            # RecursionError: nested too deep for the parser; the slow path says so
            return self._slow(kind, payload, now_ms)
        encoded = contract.encode(batch)
        if not strictjson.same_keys(payload, encoded) or strictjson.may_hold_control(payload):
            return self._slow(kind, payload, now_ms)  # finds the items at fault
        # the items as msgspec writes them back (keys in declared order, no spaces,
        # floats as floats): the same readings re-encoded by a gateway digest the same;
        # v, batch and sent are integers, so the first ',"items":' is the key
        out = Decoded(
            batch=batch.batch,
            items=len(batch.items),
            digest=content_digest(encoded[encoded.index(b',"items":') :]),
        )
        window = self.window
        good = out.good
        for item in batch.items:
            late = window.check(item.ts, now_ms)
            if late is None:
                good.append(item)
            else:
                out.rejected.append(self._ts_reject(late, item, now_ms))
        return out

    def _ts_reject(self, reason: Reason, item: Any, now_ms: int) -> Rejected:
        return Rejected(
            reason,
            f"ts {item.ts} vs ingest clock {now_ms}",
            contract.encode(item),
            item.device,
            item.seq,
        )

    def _whole(
        self, payload: bytes, reason: Reason, detail: str, batch: int | _Recover | None = _RECOVER
    ) -> Decoded:
        if isinstance(batch, _Recover):
            batch = recover_batch(payload)
        d = Decoded(batch=batch, items=0)
        d.rejected.append(Rejected(reason, detail, payload[: contract.MAX_PAYLOAD_BYTES]))
        return d

    def _slow(self, kind: _Kind, payload: bytes, now_ms: int) -> Decoded:
        if strictjson.too_deep(payload):
            return self._whole(
                payload, Reason.TOO_DEEP, f"JSON nested deeper than {strictjson.MAX_DEPTH} levels"
            )
        # Python's parser, bounded by the depth check, also reads NaN/Infinity and knows
        # repeated keys; None when even it cannot read the payload
        parsed: Any
        try:
            parsed = strictjson.loads(payload)
        except ValueError:
            parsed = None
        if isinstance(parsed, strictjson.Object) and parsed.repeated:
            # which batch a repeated "batch" means is a guess: no ack then
            b = parsed.get("batch")
            batch = (
                b if "batch" not in parsed.repeated and type(b) is int and 0 <= b < 2**63 else None
            )
            return self._whole(
                payload,
                Reason.DUPLICATE_KEY,
                f"key(s) {parsed.repeated} repeated in the envelope",
                batch,
            )
        raw_items: list[bytes]
        item_objs: list[Any] | None = None
        try:
            env = contract.envelope_decoder.decode(payload)
            raw_items = [bytes(r) for r in env.items]
            batch_no = env.batch
            if (
                isinstance(parsed, dict)
                and isinstance(parsed.get("items"), list)
                and len(parsed["items"]) == len(raw_items)
            ):
                item_objs = parsed["items"]
        except msgspec.DecodeError as exc:  # ValidationError included
            # Not strict JSON, or a bad envelope. A device that sends NaN/Infinity gets
            # the good items of its batch stored and those dead-lettered.
            if parsed is None:
                return self._whole(payload, Reason.BAD_JSON, str(exc))
            if not isinstance(parsed, dict) or not isinstance(parsed.get("items"), list):
                if isinstance(exc, msgspec.ValidationError) and isinstance(parsed, dict):
                    return self._envelope_error(payload, exc, parsed.get("v"))
                return self._whole(payload, Reason.BAD_ENVELOPE, _no_items(parsed))
            try:
                env_any = msgspec.convert(parsed, contract.EnvelopeAny)
            except msgspec.ValidationError as exc2:
                return self._envelope_error(payload, exc2, parsed.get("v"))
            item_objs = env_any.items
            raw_items = [json.dumps(i, allow_nan=True).encode() for i in item_objs]
            batch_no = env_any.batch
        out = Decoded(
            batch=batch_no,
            items=len(raw_items),
            digest=content_digest(_canonical(item_objs, raw_items)),
        )
        for i, raw in enumerate(raw_items):
            repeated = strictjson.repeated_key(item_objs[i]) if item_objs is not None else None
            if repeated is not None:
                out.rejected.append(
                    self._item_reject(
                        raw, Reason.DUPLICATE_KEY, f"key {repeated!r} repeated in the item"
                    )
                )
                continue
            try:
                item = kind.item_decoder.decode(raw)
            except msgspec.ValidationError as exc:
                out.rejected.append(self._item_reject(raw, classify(exc), str(exc)))
                continue
            except msgspec.DecodeError as exc:
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = None
                if _has_non_finite(parsed):
                    out.rejected.append(
                        self._item_reject(
                            raw, Reason.NON_FINITE, "NaN or Infinity is not a reading"
                        )
                    )
                else:
                    out.rejected.append(self._item_reject(raw, Reason.BAD_JSON, str(exc)))
                continue
            control = strictjson.control_in(msgspec.to_builtins(item))
            if control is not None:
                out.rejected.append(
                    self._item_reject(
                        raw,
                        Reason.CONTROL_CHARACTER,
                        f"string {control[:80]!r} holds a control character",
                    )
                )
                continue
            late = self.window.check(item.ts, now_ms)
            if late is None:
                out.good.append(item)
            else:
                out.rejected.append(self._ts_reject(late, item, now_ms))
        return out

    def _envelope_error(self, payload: bytes, exc: msgspec.ValidationError, v: Any) -> Decoded:
        if v is not None and v != contract.CONTRACT_VERSION and "`$.v`" in str(exc):
            return self._whole(
                payload, Reason.UNSUPPORTED_VERSION, f"contract version {v!r}; this ingest speaks 1"
            )
        return self._whole(payload, Reason.BAD_ENVELOPE, str(exc))

    @staticmethod
    def _item_reject(raw: bytes, reason: Reason, detail: str) -> Rejected:
        device: str | None = None
        seq: int | None = None
        try:
            obj = json.loads(raw)
            if isinstance(obj, dict):
                d, s = obj.get("device"), obj.get("seq")
                device = d[:64] if isinstance(d, str) else None
                seq = s if isinstance(s, int) and not isinstance(s, bool) else None
        except ValueError:
            pass
        return Rejected(reason, detail, raw[:_MAX_ITEM_COPY], device, seq)


def decode_status(payload: bytes) -> contract.Status | Rejected:
    """A gateway status message, or why it is refused (the same JSON rules as batches)."""
    if strictjson.too_deep(payload):
        return Rejected(
            Reason.TOO_DEEP,
            f"status: JSON nested deeper than {strictjson.MAX_DEPTH} levels",
            payload,
        )
    try:
        status = contract.status_decoder.decode(payload)
    except (msgspec.DecodeError, RecursionError) as exc:  # ValidationError included
        return Rejected(Reason.BAD_ENVELOPE, f"status: {exc}", payload)
    repeated = strictjson.repeated_key(strictjson.loads(payload))  # msgspec read it
    if repeated is not None:
        return Rejected(Reason.DUPLICATE_KEY, f"status: key {repeated!r} repeated", payload)
    if strictjson.CONTROL.search(status.agent):
        return Rejected(
            Reason.CONTROL_CHARACTER, "status: agent holds a control character", payload
        )
    return status

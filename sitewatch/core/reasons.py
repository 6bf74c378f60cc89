"""Why an item or a message was refused: one code per cause, counted and dead-lettered."""

from __future__ import annotations

from enum import StrEnum

import msgspec


class Reason(StrEnum):
    BAD_TOPIC = "bad_topic"  # not a contract topic / invalid id in topic
    TOO_LARGE = "too_large"  # batch over 256 KiB, snapshot over max_snapshot_bytes
    BAD_JSON = "bad_json"  # not JSON at all
    TOO_DEEP = "too_deep"  # JSON nested deeper than 16 levels
    DUPLICATE_KEY = "duplicate_key"  # a key given twice in one object
    BAD_ENVELOPE = "bad_envelope"  # v/batch/sent/items missing or wrong
    UNSUPPORTED_VERSION = "unsupported_version"
    BAD_ITEM = "bad_item"  # item misses a key or has an unknown one
    BAD_IDENTIFIER = "bad_identifier"  # device/worker/zone outside [A-Za-z0-9_-]{1,64}
    UNKNOWN_PROFILE = "unknown_profile"
    UNDECLARED_FIELD = "undeclared_field"  # a value the profile does not declare
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"  # outside the field's physical range
    NON_FINITE = "non_finite"  # NaN or +-Infinity
    CONTROL_CHARACTER = "control_character"  # a string holding U+0000-U+001F, U+007F-U+009F
    TS_FUTURE = "ts_future"  # more than max_future_s ahead of ingest's clock
    TS_TOO_OLD = "ts_too_old"  # older than the retention period
    INFLUX_REJECTED = "influx_rejected"  # InfluxDB refused the point (e.g. type conflict)
    EMPTY_SNAPSHOT = "empty_snapshot"  # a snapshot message without bytes
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # a snapshot that is not JPEG or PNG
    SNAPSHOT_HASH_MISMATCH = "snapshot_hash_mismatch"  # its SHA-256 is not the topic's
    BATCH_REUSED = "batch_reused"  # a batch number acked before, other content
    INTERNAL_ERROR = "internal_error"  # handling it raised (a bug): detail names it


def classify(exc: msgspec.ValidationError) -> Reason:
    """Map msgspec's validation message of one item to a reason code."""
    msg = str(exc)
    path = msg.rsplit(" - at `", 1)[-1] if " - at `" in msg else ""
    if "matching regex" in msg:
        return Reason.BAD_IDENTIFIER
    if path.endswith(".profile`") and msg.startswith("Invalid value"):
        return Reason.UNKNOWN_PROFILE
    if "unknown field" in msg:
        return Reason.UNDECLARED_FIELD if path.endswith(".values`") else Reason.BAD_ITEM
    if "out of range" in msg or any(op in msg for op in (">=", "<=", " > ", " < ")):
        return Reason.OUT_OF_RANGE
    if "of length" in msg:
        return Reason.OUT_OF_RANGE
    if msg.startswith("Expected `"):
        return Reason.WRONG_TYPE
    if msg.startswith("Invalid enum value") or msg.startswith("Invalid value"):
        return Reason.WRONG_TYPE
    return Reason.BAD_ITEM

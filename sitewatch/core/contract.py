"""Wire contract v1 (docs/wire-contract.md): typed messages used by edge and ingest alike.

Telemetry items are validated against the device profiles: for each profile a msgspec
Struct is built whose ``values`` accept exactly the declared fields with their type and
physical range, and all of them form one union tagged by ``profile``. A whole batch of
good items is therefore decoded *and* validated in one call into C; only a batch with a
bad item takes the slow path that finds which items are bad and why (see ingest).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

import msgspec

from sitewatch.core.ids import Ident
from sitewatch.core.profiles import FieldSpec, FieldType, Profile, ProfileSet

CONTRACT_VERSION = 1
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_ITEMS = 5000

Millis = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Counter64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_FLOAT_MAX = sys.float_info.max  # a bound that excludes +-inf


class _Msg(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class Envelope(_Msg):
    """A batch whose items are not decoded yet (used to find the bad items of a batch)."""

    v: Literal[1]
    batch: Counter64
    sent: Millis
    items: Annotated[list[msgspec.Raw], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)]


class EnvelopeAny(_Msg):
    """The same envelope checked on an already parsed object (items left as they are)."""

    v: Literal[1]
    batch: Counter64
    sent: Millis
    items: Annotated[list[Any], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)]


class AttendanceItem(_Msg):
    device: Ident
    ts: Millis
    seq: Counter64
    worker: Ident
    direction: Literal["in", "out"]
    method: Literal["face", "card", "fingerprint", "manual"]


CameraEvent = Literal["no_helmet", "no_vest", "intrusion", "person_count", "fire_smoke"]
#: how a camera event was found: a trained model, or a classical check (a heuristic)
DetectionMethod = Literal["model", "classical"]


class CameraItem(_Msg):
    device: Ident
    ts: Millis
    seq: Counter64
    event: CameraEvent
    zone: Ident | msgspec.UnsetType = msgspec.UNSET
    count: Annotated[int, msgspec.Meta(ge=0, le=10_000)] | msgspec.UnsetType = msgspec.UNSET
    confidence: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | msgspec.UnsetType = msgspec.UNSET
    snapshot: Annotated[str, msgspec.Meta(pattern=r"\A[0-9a-f]{64}\Z")] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    method: DetectionMethod | msgspec.UnsetType = msgspec.UNSET


class AttendanceBatch(_Msg):
    v: Literal[1]
    batch: Counter64
    sent: Millis
    items: Annotated[list[AttendanceItem], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)]


class CameraBatch(_Msg):
    v: Literal[1]
    batch: Counter64
    sent: Millis
    items: Annotated[list[CameraItem], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)]


class Status(_Msg):
    state: Literal["online", "offline"]
    ts: Millis
    boot: Counter64
    agent: Annotated[str, msgspec.Meta(max_length=64)] = ""
    queued: Counter64 = 0
    #: readings the gateway's spool dropped (full or too old) since it was created
    dropped: Counter64 = 0


class AckEntry(msgspec.Struct, omit_defaults=True):
    """One batch's ack. Unknown keys are ignored (since the ``refused`` list was added):
    agents before that refused an entry with a key they did not know, so new fields go
    at the top of :class:`Ack`, which every agent reads leniently."""

    batch: Counter64
    stored: Annotated[int, msgspec.Meta(ge=0, le=MAX_ITEMS)]
    rejected: Annotated[int, msgspec.Meta(ge=0, le=MAX_ITEMS)]


#: at most this many refused items of one batch are named in an ack ...
MAX_REFUSED_PER_BATCH = 20
#: ... and of one ack message; the rest are in the dead-letter store
MAX_REFUSED_PER_ACK = 100
#: a refusal's detail is cut to this many characters
MAX_REFUSED_DETAIL = 160


class Refused(msgspec.Struct, omit_defaults=True):
    """One refused item (or a whole message refused) named in an ack: why ingest
    dead-lettered it. ``device`` and ``seq`` are absent when the item could not be read
    that far, or when the whole message was refused."""

    batch: Counter64
    reason: Annotated[str, msgspec.Meta(max_length=32)]
    detail: Annotated[str, msgspec.Meta(max_length=MAX_REFUSED_DETAIL)] = ""
    #: as the gateway sent it (so possibly not a valid identifier), cut to 64 characters
    device: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    seq: int | None = None


class Ack(msgspec.Struct, omit_defaults=True):
    """What ingest sends a gateway. Unlike the other messages, unknown fields are
    ignored: a gateway must keep working when a newer ingest adds one."""

    acks: list[AckEntry]
    #: ingest's clock when it sent the ack (ms since the epoch, UTC); gateways measure
    #: their clock's offset from it. Absent from ingests before it was added.
    now: Millis | None = None
    #: refused items of the acked batches, with their reasons (bounded: at most
    #: MAX_REFUSED_PER_BATCH per batch and MAX_REFUSED_PER_ACK in all)
    refused: list[Refused] = msgspec.field(default_factory=list)


class TelemetryItem(_Msg):
    """A telemetry item as a gateway builds it (values not yet checked against a profile)."""

    device: Ident
    profile: Ident
    ts: Millis
    seq: Counter64
    values: dict[str, float | int | bool | str]


class TelemetryBatchOut(_Msg):
    """What a gateway publishes."""

    v: Literal[1]
    batch: Counter64
    sent: Millis
    items: list[TelemetryItem]


def _value_type(spec: FieldSpec) -> Any:
    if spec.type is FieldType.FLOAT:
        lo = -_FLOAT_MAX if spec.min is None else spec.min
        hi = _FLOAT_MAX if spec.max is None else spec.max
        # ints are accepted for float fields and become floats: a reading of 3 must
        # never create an integer field in InfluxDB.
        return Annotated[float, msgspec.Meta(ge=lo, le=hi)]
    if spec.type is FieldType.INT:
        lo_i = -(2**63) if spec.min is None else math.ceil(spec.min)
        hi_i = 2**63 - 1 if spec.max is None else math.floor(spec.max)
        return Annotated[int, msgspec.Meta(ge=lo_i, le=hi_i)]
    if spec.type is FieldType.BOOL:
        return bool
    if spec.choices:
        return Literal[spec.choices]
    return Annotated[str, msgspec.Meta(max_length=spec.max_length)]


@dataclass(frozen=True)
class ProfileTypes:
    """msgspec types for one profile."""

    values: type[msgspec.Struct]
    item: type[msgspec.Struct]
    #: (field name, field type) in declaration order, for encoders
    fields: tuple[tuple[str, FieldType], ...]


def build_profile_types(profile: Profile) -> ProfileTypes:
    name = profile.profile
    values = msgspec.defstruct(
        f"{name}__values",
        [
            (f, _value_type(spec) | msgspec.UnsetType, msgspec.UNSET)
            for f, spec in profile.fields.items()
        ],
        forbid_unknown_fields=True,
        omit_defaults=True,
    )
    item = msgspec.defstruct(
        f"{name}__item",
        [("device", Ident), ("ts", Millis), ("seq", Counter64), ("values", values)],
        tag_field="profile",
        tag=name,
        forbid_unknown_fields=True,
    )
    fields = tuple((f, spec.type) for f, spec in profile.fields.items())
    return ProfileTypes(values=values, item=item, fields=fields)


class TelemetryCodec:
    """Decoders for telemetry built from a profile set."""

    def __init__(self, profiles: ProfileSet) -> None:
        profiles = profiles.of_devices()  # a gateway cannot send derived readings
        self.profiles = profiles
        self.types = {name: build_profile_types(p) for name, p in profiles.items()}
        self.item_by_class = {t.item: name for name, t in self.types.items()}
        item_union: Any = Union[tuple(t.item for t in self.types.values())]  # noqa: UP007
        batch = msgspec.defstruct(
            "TelemetryBatch",
            [
                ("v", Literal[1]),
                ("batch", Counter64),
                ("sent", Millis),
                (
                    "items",
                    Annotated[list[item_union], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)],
                ),
            ],
            forbid_unknown_fields=True,
        )
        self.batch_type: type[msgspec.Struct] = batch
        self.batch_decoder = msgspec.json.Decoder(batch)
        self.item_decoder = msgspec.json.Decoder(item_union)


envelope_decoder = msgspec.json.Decoder(Envelope)
attendance_decoder = msgspec.json.Decoder(AttendanceBatch)
attendance_item_decoder = msgspec.json.Decoder(AttendanceItem)
camera_decoder = msgspec.json.Decoder(CameraBatch)
camera_item_decoder = msgspec.json.Decoder(CameraItem)
status_decoder = msgspec.json.Decoder(Status)
ack_decoder = msgspec.json.Decoder(Ack)
encoder = msgspec.json.Encoder()


def encode(msg: msgspec.Struct) -> bytes:
    return encoder.encode(msg)

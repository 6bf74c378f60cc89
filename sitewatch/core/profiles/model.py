"""Typed schema of a device profile (``device_profiles/*.yaml``) and its rule format.

A profile declares the fields a device of that kind reports (type, unit, physical range),
the standard it follows and its default alert rules. Rules are data: each kind is a
pydantic model in one discriminated union, interpreted later by typed code (no ``eval``).

Rule kinds (see docs/profiles.md for the operator description):

- ``threshold``   field compared to a limit, with hysteresis, optionally sustained for
                  ``for_s`` seconds, optionally only while other conditions hold (``when``)
                  and with limits that switch by local time of day (``schedule``)
- ``window``      aggregate of a field over a sliding window (arithmetic ``mean``, ``energy``
                  mean for sound levels such as Leq, ``max``, ``min``), compared to a limit
                  once readings cover ``min_coverage`` of the window
- ``rate``        change of a field per period (e.g. mm per day); optionally only an alert
                  when it holds on ``consecutive`` periods running
- ``cumulative``  change of a field since a baseline (first reading or a configured value)
- ``count``       number of readings meeting a condition per period
- ``silent``      no reading from the device for ``intervals`` sampling intervals
- ``offline``     gateway Last Will received (the status topic says ``offline``)
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sitewatch.core.ids import IDENT_PATTERN

FIELD_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class Strict(BaseModel):
    """Base for profile models: unknown keys are an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldType(StrEnum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    STR = "str"


class FieldSpec(Strict):
    type: FieldType
    unit: str = Field(default="", max_length=32)
    description: str = ""
    min: float | None = None
    max: float | None = None
    max_length: int = Field(default=64, ge=1, le=256)
    choices: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _range(self) -> Self:
        numeric = self.type in (FieldType.FLOAT, FieldType.INT)
        if not numeric and (self.min is not None or self.max is not None):
            raise ValueError(f"min/max only apply to numeric fields, not {self.type.value}")
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                raise ValueError("min and max must be finite numbers")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        if self.choices is not None and self.type is not FieldType.STR:
            raise ValueError("choices only apply to str fields")
        return self

    def admits(self, value: float) -> bool:
        """Is ``value`` inside this field's physical range?"""
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class Severity(StrEnum):
    WARNING = "warning"
    ALARM = "alarm"


class Op(StrEnum):
    GE = ">="
    GT = ">"
    LE = "<="
    LT = "<"
    EQ = "=="
    NE = "!="


class Condition(Strict):
    """``field op value``; used for ``when`` guards and ``count`` rules."""

    field: str
    op: Op
    value: float | bool | str


class TimeOfDay(Strict):
    """A limit that applies between two local site times; ``from`` may be after ``to``
    (a window across midnight, e.g. night noise 22:00-06:00)."""

    from_: str = Field(alias="from")
    to: str
    value: float

    @field_validator("from_", "to")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _TIME_RE.match(v):
            raise ValueError(f"time {v!r} must be HH:MM (00:00-23:59)")
        return v

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.from_ == self.to:
            raise ValueError("'from' and 'to' must differ")
        return self


class RuleBase(Strict):
    id: Annotated[str, Field(pattern=IDENT_PATTERN)]
    severity: Severity
    title: str = ""
    source: str = ""
    #: rules of one condition at different severities (e.g. load 90 % warning and 100 %
    #: alarm) share a group: they make one alert that escalates, not two alerts
    group: Annotated[str, Field(pattern=IDENT_PATTERN)] | None = None

    @property
    def condition_key(self) -> str:
        """What an alert is raised once for: the group, or the rule itself."""
        return self.group or self.id


class Limit(RuleBase):
    """Common part of rules that compare a number with a limit."""

    field: str
    op: Op
    value: float | bool | str | None = None
    schedule: tuple[TimeOfDay, ...] | None = None

    @model_validator(mode="after")
    def _limit_given(self) -> Self:
        if (self.value is None) == (self.schedule is None):
            raise ValueError("give exactly one of 'value' or 'schedule'")
        if self.schedule is not None and self.op in (Op.EQ, Op.NE):
            raise ValueError("a schedule needs an ordering op (>=, >, <=, <)")
        return self


class ThresholdRule(Limit):
    kind: Literal["threshold"]
    hysteresis: float = Field(default=0.0, ge=0.0)
    for_s: float = Field(default=0.0, ge=0.0, le=7 * 86400)
    when: tuple[Condition, ...] = ()


class WindowAggregate(StrEnum):
    MEAN = "mean"
    ENERGY = "energy"  # 10*log10(mean(10^(L/10))): Leq for sound levels in dB
    MAX = "max"
    MIN = "min"


#: the share of a window that readings must cover before it is judged, unless a rule
#: says otherwise: GB 3095-2012 (table 4) asks at least 45 min of sampling per hourly mean
DEFAULT_MIN_COVERAGE = 0.75


class WindowRule(Limit):
    kind: Literal["window"]
    window_s: float = Field(gt=0, le=7 * 86400)
    aggregate: WindowAggregate = WindowAggregate.MEAN
    hysteresis: float = Field(default=0.0, ge=0.0)
    #: the share of ``window_s`` the readings must cover (0-1) before the window is judged
    min_coverage: float = Field(default=DEFAULT_MIN_COVERAGE, ge=0.0, le=1.0)
    #: the longest gap between two readings that still counts as covered (the rest of a
    #: longer gap does not); default: the profile's ``sample_interval_s``
    max_gap_s: float | None = Field(default=None, gt=0, le=86400)

    @model_validator(mode="after")
    def _gap_in_window(self) -> Self:
        if self.max_gap_s is not None and self.max_gap_s > self.window_s:
            raise ValueError(
                f"max_gap_s ({self.max_gap_s}) must not exceed window_s ({self.window_s})"
            )
        return self


class RateRule(Limit):
    kind: Literal["rate"]
    per_s: float = Field(default=86400.0, gt=0)
    consecutive: int = Field(default=1, ge=1, le=30)
    #: readings must span this long before a rate is computed (default: a quarter of per_s)
    min_span_s: float | None = Field(default=None, gt=0)


class CumulativeRule(Limit):
    kind: Literal["cumulative"]
    baseline: Literal["first"] | float = "first"


class CountRule(RuleBase):
    kind: Literal["count"]
    condition: Condition
    per_s: float = Field(default=86400.0, gt=0)
    count: int = Field(ge=1)


class SilentRule(RuleBase):
    kind: Literal["silent"]
    intervals: int = Field(ge=1, le=10_000)


class OfflineRule(RuleBase):
    kind: Literal["offline"]
    grace_s: float = Field(default=0.0, ge=0)


Rule = Annotated[
    ThresholdRule | WindowRule | RateRule | CumulativeRule | CountRule | SilentRule | OfflineRule,
    Field(discriminator="kind"),
]

#: Rule kinds in one visible place (used by docs and by the evaluator registry later).
RULE_KINDS: tuple[str, ...] = (
    "threshold",
    "window",
    "rate",
    "cumulative",
    "count",
    "silent",
    "offline",
)


class Hj212Factor(Strict):
    """An HJ 212 factor code's profile field, and the factor to multiply its value by."""

    field: str
    scale: float = 1.0


RegisterType = Literal["int16", "uint16", "int32", "uint32", "float32", "float64"]
REGISTER_WIDTH: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "float64": 4,
}


class ModbusRegister(Strict):
    """Where a field is in a Modbus device: value = raw * scale + offset."""

    address: int = Field(ge=0, le=65535)
    type: RegisterType = "uint16"
    scale: float = 1.0
    offset: float = 0.0
    #: byte order inside each 16-bit register (Modbus itself is big-endian)
    byte_order: Literal["big", "little"] = "big"
    #: order of the registers of a 32/64-bit value ("little": low word first)
    word_order: Literal["big", "little"] = "big"

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if self.address + REGISTER_WIDTH[self.type] > 65536:
            raise ValueError("the value runs past register 65535")
        if self.scale == 0 or not math.isfinite(self.scale):
            raise ValueError("scale must be a finite number other than 0")
        return self


class ModbusMap(Strict):
    #: holding registers (function 3) or input registers (function 4)
    table: Literal["holding", "input"] = "holding"
    registers: dict[str, ModbusRegister] = Field(min_length=1)


class Profile(Strict):
    profile: Annotated[str, Field(pattern=IDENT_PATTERN)]
    title: str
    standard: str
    description: str = ""
    sample_interval_s: float = Field(gt=0, le=86400)
    #: made by the platform from other data (attendance), never sent by a device: not
    #: part of the wire contract, only of the alert rules
    derived: bool = False
    fields: dict[Annotated[str, Field(pattern=FIELD_NAME_PATTERN)], FieldSpec] = Field(
        min_length=1, max_length=200
    )
    rules: tuple[Rule, ...] = ()
    #: HJ 212 factor code -> field (``a34002: pm10`` or ``a34001: {field: tsp, scale: 1000}``)
    hj212: dict[str, Hj212Factor] | None = None
    #: the default Modbus register map of devices of this kind (overridable per device)
    modbus: ModbusMap | None = None

    @field_validator("hj212", mode="before")
    @classmethod
    def _short_factors(cls, v: object) -> object:
        if isinstance(v, dict):
            return {k: {"field": f} if isinstance(f, str) else f for k, f in v.items()}
        return v

    @model_validator(mode="after")
    def _rules_consistent(self) -> Self:
        for name in self.modbus.registers if self.modbus else {}:
            spec = self.fields.get(name)
            if spec is None or spec.type not in (FieldType.FLOAT, FieldType.INT):
                raise ValueError(
                    f"modbus.registers.{name}: not a numeric field declared in 'fields'"
                )
        for code, factor in (self.hj212 or {}).items():
            spec = self.fields.get(factor.field)
            if spec is None or spec.type not in (FieldType.FLOAT, FieldType.INT):
                raise ValueError(
                    f"hj212.{code}: {factor.field!r} is not a numeric field declared in 'fields'"
                )
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            where = f"rules[{index}] ({rule.id})"
            if rule.id in seen:
                raise ValueError(f"{where}: duplicate rule id")
            seen.add(rule.id)
            for cond in _conditions(rule):
                self._check_condition(where, cond.field, cond.op, cond.value)
        return self

    def _check_condition(self, where: str, field: str, op: Op, value: object) -> None:
        spec = self.fields.get(field)
        if spec is None:
            raise ValueError(f"{where}: field {field!r} is not declared in 'fields'")
        if spec.type in (FieldType.BOOL, FieldType.STR):
            if op not in (Op.EQ, Op.NE):
                raise ValueError(f"{where}: field {field!r} is {spec.type.value}: use == or !=")
            wanted = bool if spec.type is FieldType.BOOL else str
            if value is not None and not isinstance(value, wanted):
                raise ValueError(f"{where}: value {value!r} is not a {spec.type.value}")
            return
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: value {value!r} is not a number for field {field!r}")
        if not spec.admits(float(value)):
            raise ValueError(
                f"{where}: limit {value} is outside the physical range of {field!r} "
                f"[{spec.min}, {spec.max}]"
            )


def _conditions(rule: Rule) -> list[Condition]:
    """Every (field, op, value) a rule tests, so that one check covers all kinds."""
    out: list[Condition] = []
    if isinstance(rule, ThresholdRule | WindowRule):
        out.extend(_limit_conditions(rule))
    if isinstance(rule, ThresholdRule):
        out.extend(rule.when)
    if isinstance(rule, RateRule | CumulativeRule):
        # rates and changes are not bounded by the field's range; only the field must exist
        out.append(Condition(field=rule.field, op=rule.op, value=0.0))
    if isinstance(rule, CountRule):
        out.append(rule.condition)
    return out


def _limit_conditions(rule: Limit) -> list[Condition]:
    if rule.schedule is None:
        assert rule.value is not None
        return [Condition(field=rule.field, op=rule.op, value=rule.value)]
    return [Condition(field=rule.field, op=rule.op, value=s.value) for s in rule.schedule]

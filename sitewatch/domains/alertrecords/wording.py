"""How an alert's measurement is worded for people, Chinese first then English: the value
with its unit and meaning, the limit with its unit, how far over, and the standard the
rule names (``载荷 112 %（额定），超过限值 100 %，超出 12 %``), never ``112.0 vs 100.0``
or ``true vs true``. The notifiers' messages and ``sitewatch alerts list`` both use it.

The words come from the alert's rule in its device profile (kind, field, unit, window,
period, schedule, source). An alert whose profile or rule is not known (a profile removed
since) is worded plainly: value and limit without units."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from sitewatch.core.profiles.model import (
    Condition,
    CountRule,
    CumulativeRule,
    FieldSpec,
    FieldType,
    Limit,
    OfflineRule,
    Op,
    Profile,
    RateRule,
    SilentRule,
    ThresholdRule,
    WindowAggregate,
    WindowRule,
)
from sitewatch.core.text import one_line
from sitewatch.domains.alertrecords.model import Scalar

NONE = "—"


@dataclass(frozen=True, slots=True)
class Wording:
    """An alert's measurement in words: ``zh`` and ``en`` say the same thing, ``standard``
    is the rule's source (empty if it names none)."""

    zh: str
    en: str
    standard: str = ""

    def line(self) -> str:
        """On one line: ``zh / en [standard]``."""
        std = f" [{self.standard}]" if self.standard else ""
        return f"{self.zh} / {self.en}{std}"


@dataclass(frozen=True, slots=True)
class _Name:
    zh: str
    en: str
    #: what a % (or other) value is a share of: ``额定`` / ``of rated``
    of_zh: str = ""
    of_en: str = ""
    #: a counting word for fields without a unit (``人`` / ``people``)
    count_zh: str = ""
    count_en: str = ""


#: people's names of the fields that rules compare (the profiles describe them in English)
_NAMES: dict[str, _Name] = {
    "load_pct": _Name("载荷", "load", "额定", "of rated"),
    "moment_pct": _Name("力矩", "moment", "额定", "of rated"),
    "wind_ms": _Name("风速", "wind"),
    "tilt_permille": _Name("倾斜", "tilt"),
    "residual_ma": _Name("剩余电流", "residual current"),
    "cable_temp_c": _Name("线缆温度", "cable temperature"),
    "pm10": _Name("PM10", "PM10"),
    "pm25": _Name("PM2.5", "PM2.5"),
    "tsp": _Name("TSP", "TSP"),
    "noise_dba": _Name("噪声", "noise"),
    "displacement_mm": _Name("位移", "displacement"),
    "settlement_mm": _Name("沉降", "settlement"),
    "strut_force_pct": _Name("支撑轴力", "strut force", "设计值", "of design"),
    "groundwater_mm": _Name("地下水位", "groundwater level"),
    "spool_used_pct": _Name("缓存占用", "spool use"),
    "disk_free_pct": _Name("磁盘剩余", "disk free"),
    "clock_offset_s": _Name("时钟偏差", "clock offset"),
    "dropped": _Name("丢弃读数", "dropped readings", count_zh="条", count_en="readings"),
    "spool_resets": _Name("缓存重置", "spool resets", count_zh="次", count_en="times"),
    "limit_pct": _Name("在场时长", "time on site", "日限", "of the daily limit"),
    "headcount_pct": _Name("在场人数", "headcount", "计划", "of the planned headcount"),
    "no_helmet": _Name("未戴安全帽", "without a hard hat", count_zh="人", count_en="people"),
    "no_vest": _Name(
        "未穿反光衣", "without a high-visibility vest", count_zh="人", count_en="people"
    ),
    "intrusion": _Name("进入禁区", "in the restricted zone", count_zh="人", count_en="people"),
    "speed_ms": _Name("梯笼速度", "cage speed"),
}

#: yes/no fields worded as the condition they report: field -> {state: (zh, en)}
_FLAGS: dict[str, dict[bool, tuple[str, str]]] = {
    "door_closed": {
        True: ("梯笼门已关闭", "cage door closed"),
        False: ("梯笼门未关闭", "cage door open"),
    },
    "crane_swing_intrusion": {
        True: ("塔吊回转时回转区域内有人", "someone in the crane swing area while the crane slews"),
        False: ("塔吊回转区域无人", "nobody in the crane swing area"),
    },
    "fire_smoke": {
        True: ("画面中有烟雾或明火", "smoke or fire in view"),
        False: ("无烟火", "no smoke or fire"),
    },
    "online": {
        True: ("摄像头有画面", "camera online"),
        False: ("摄像头无画面", "camera offline, no picture"),
    },
    "frozen": {True: ("画面冻结", "picture frozen"), False: ("画面正常", "picture moving")},
    "covered": {
        True: ("镜头被遮挡或过暗", "lens covered or dark"),
        False: ("镜头正常", "lens clear"),
    },
    "unregistered": {
        True: ("未登记的工人在闸机", "worker not in the site's registry at the gate"),
        False: ("已登记", "registered"),
    },
    "training_lapsed": {
        True: ("安全培训已过期仍在场", "on site with safety training expired"),
        False: ("安全培训有效", "safety training valid"),
    },
    "certificate_lapsed": {
        True: ("特种作业证书已过期仍在场", "on site with an expired certificate"),
        False: ("证书有效", "certificate valid"),
    },
    "disk_full": {
        True: (
            "网关缓存无法写入（磁盘满或故障）",
            "gateway spool cannot write (disk full or failing)",
        ),
        False: ("网关缓存可写", "gateway spool writable"),
    },
}

_OP_TEXT = {Op.GE: "≥", Op.GT: ">", Op.LE: "≤", Op.LT: "<", Op.EQ: "=", Op.NE: "≠"}
_AGGREGATE = {
    WindowAggregate.MEAN: ("均值", "mean"),
    WindowAggregate.ENERGY: (" Leq", "Leq"),
    WindowAggregate.MAX: ("最大值", "max"),
    WindowAggregate.MIN: ("最小值", "min"),
}


def word_measurement(
    profiles: Mapping[str, Profile] | None,
    *,
    profile: str,
    rule: str,
    value: Scalar,
    limit: Scalar,
) -> Wording:
    """The measurement of an alert of ``rule`` (an id) of ``profile`` in words, from its
    ``value`` and ``limit`` as the alert records them (see the module docstring)."""
    p = profiles.get(profile) if profiles is not None else None
    r = next((x for x in p.rules if x.id == rule), None) if p is not None else None
    if p is None or r is None:
        return _plain(value, limit)
    source = one_line(r.source, 120)
    if isinstance(r, SilentRule):
        return Wording(*_silence(value, limit, "允许", "allowed"), source)
    if isinstance(r, OfflineRule):
        zh, en = _silence(value, limit, "宽限", "grace")
        return Wording(f"网关离线，{zh}", f"gateway offline, {en}", source)
    if isinstance(r, CountRule):
        return Wording(*_count(p, r, value, limit), source)
    assert isinstance(r, Limit)
    spec = p.fields.get(r.field)
    if spec is None:
        return _plain(value, limit, source)
    if spec.type is FieldType.BOOL or isinstance(value, bool) or isinstance(limit, bool):
        return Wording(*_flag(p, r, spec, value, limit), source)
    return Wording(*_compare(p, r, spec, value, limit), source)


# --- the kinds ---------------------------------------------------------------------------


def _plain(value: Scalar, limit: Scalar, source: str = "") -> Wording:
    if isinstance(value, bool) or isinstance(limit, bool):
        return Wording("条件成立", "condition met", source)
    v, lim = num(value), num(limit)
    return Wording(f"数值 {v}，限值 {lim}", f"value {v}, limit {lim}", source)


def _silence(value: Scalar, limit: Scalar, allow_zh: str, allow_en: str) -> tuple[str, str]:
    """``无数据 12 分钟（允许 5 分钟）`` / ``silent for 12 min (allowed 5 min)``."""
    v_zh, v_en = duration(value)
    l_zh, l_en = duration(limit)
    return f"无数据 {v_zh}（{allow_zh} {l_zh}）", f"silent for {v_en} ({allow_en} {l_en})"


def _count(p: Profile, r: CountRule, value: Scalar, limit: Scalar) -> tuple[str, str]:
    """``今日 PM10 > 150 µg/m³ 的读数 34 次，限值 30 次`` / ``34 readings today ...``."""
    c = r.condition
    spec = p.fields.get(c.field)
    name = _name(c.field, spec)
    cond_zh = f"{name.zh} {_OP_TEXT[c.op]} {_with_unit(c.value, spec)}"
    cond_en = f"{name.en} {_OP_TEXT[c.op]} {_with_unit(c.value, spec)}"
    day = r.per_s == 86400
    per_zh, per_en = (
        ("今日", "today") if day else ("每 " + duration(r.per_s)[0], "per " + duration(r.per_s)[1])
    )
    v, lim = num(value), num(limit)
    return (
        f"{per_zh} {cond_zh} 的读数 {v} 次，限值 {lim} 次",
        f"{v} readings {per_en} with {cond_en}, limit {lim}",
    )


def _flag(p: Profile, r: Limit, spec: FieldSpec, value: Scalar, limit: Scalar) -> tuple[str, str]:
    """A yes/no rule is worded as the condition it reports, with its guards."""
    if isinstance(value, bool):
        state = value
    elif isinstance(limit, bool):
        state = limit if r.op is Op.EQ else not limit
    else:
        state = True
    words = _FLAGS.get(r.field, {}).get(state)
    if words is None:
        name = _name(r.field, spec)
        words = (f"{name.zh}：{'是' if state else '否'}", f"{name.en}: {'yes' if state else 'no'}")
    zh, en = words
    guards = r.when if isinstance(r, ThresholdRule) else ()
    if guards:
        zh += "，且" + "、".join(_condition(p, g)[0] for g in guards)
        en += " while " + " and ".join(_condition(p, g)[1] for g in guards)
    return zh, en


def _compare(
    p: Profile, r: Limit, spec: FieldSpec, value: Scalar, limit: Scalar
) -> tuple[str, str]:
    """A number compared with a limit: what, how much, the limit, how far past it."""
    name = _name(r.field, spec)
    unit_zh, unit_en = (spec.unit, spec.unit) if spec.unit else (name.count_zh, name.count_en)
    what_zh, what_en = name.zh, name.en
    #: how the value is put: "{v}" is the value with its unit
    head_zh, head_en = "{what} {v}", "{what} {v}"
    if isinstance(r, WindowRule):
        agg_zh, agg_en = _AGGREGATE[r.aggregate]
        span_zh, span_en = _span(r.window_s)
        what_zh = f"{name.zh} {span_zh}{agg_zh}"
        what_en = f"{name.en} {span_en} {agg_en}"
    elif isinstance(r, RateRule):
        per = _per(r.per_s)
        unit_zh = f"{unit_zh}{per}" if unit_zh else per.lstrip("/")
        unit_en = f"{unit_en}{per}" if unit_en else per.lstrip("/")
        what_zh, what_en = f"{name.zh}速率", f"{name.en} rate"
        if r.consecutive > 1:
            what_zh += f"（连续 {r.consecutive} 天中最小）"
            what_en += f" (lowest of {r.consecutive} days running)"
    elif isinstance(r, CumulativeRule):
        if r.baseline == "first":
            head_zh, head_en = (
                "{what}较首个读数变化 {v}",
                "{what} changed by {v} since the first reading",
            )
        else:
            base_zh, base_en = _u(r.baseline, unit_zh), _u(r.baseline, unit_en)
            head_zh = f"{{what}}较基准 {base_zh} 变化 {{v}}"
            head_en = f"{{what}} changed by {{v}} from {base_en}"
    # a count of people (no_helmet >= 1): the count is the news, the limit is "any"
    if (
        name.count_zh
        and isinstance(r, ThresholdRule)
        and r.op in (Op.GE, Op.GT)
        and isinstance(limit, int | float)
        and limit <= 1
    ):
        return f"{name.zh} {_u(value, unit_zh)}", f"{_u(value, unit_en)} {name.en}"
    slot = _slot(r, limit)
    zh = _past(r.op, value, limit, unit_zh, _ZH)
    en = _past(r.op, value, limit, unit_en, _EN)
    known = value is not None
    v_zh = _u(value, unit_zh) + (f"（{name.of_zh}）" if name.of_zh and known else "")
    v_en = _u(value, unit_en) + (f" {name.of_en}" if name.of_en and known else "")
    slot_zh = f" {slot}" if slot else ""
    return (
        head_zh.replace("{what}", what_zh).replace("{v}", v_zh)
        + "，"
        + zh.replace("{slot}", slot_zh).strip(),
        head_en.replace("{what}", what_en).replace("{v}", v_en) + ", " + en.replace("{slot}", slot),
    )


#: how a value stands against its limit, per language: {lim} the limit, {by} how far
#: past it, {slot} the hours of a scheduled limit
_ZH = {
    "plain": "{slot}限值 {lim}",
    "at": "达到{slot}限值 {lim}",
    "over": "超过{slot}限值 {lim}，超出 {by}",
    "below": "低于{slot}限值 {lim}，低 {by}",
}
_EN = {
    "plain": "{slot}limit {lim}",
    "at": "at the {slot}limit of {lim}",
    "over": "{by} over the {slot}limit of {lim}",
    "below": "{by} below the {slot}limit of {lim}",
}


def _past(op: Op, value: Scalar, limit: Scalar, unit: str, words: dict[str, str]) -> str:
    """The limit, and how far past it the value is, in one language (``{slot}`` left
    to fill in)."""
    lim = _u(limit, unit)
    if not (isinstance(value, int | float) and isinstance(limit, int | float)):
        return words["plain"].replace("{lim}", lim)
    below = op in (Op.LE, Op.LT)
    past = float(limit) - float(value) if below else float(value) - float(limit)
    if abs(past) < 1e-9:
        form = "at"
    elif past < 0:  # not past the limit (the last value of an alert that cleared)
        form = "plain"
    else:
        form = "below" if below else "over"
    return words[form].replace("{lim}", lim).replace("{by}", _u(past, unit))


# --- pieces ------------------------------------------------------------------------------


def _name(field: str, spec: FieldSpec | None) -> _Name:
    return _NAMES.get(field) or _Name(field, field)


def _u(value: Scalar, unit: str) -> str:
    """A number with its unit: ``112 %``, ``12.3 m/s``; ``—`` for no value."""
    text = num(value)
    if value is None or not unit:
        return text
    return f"{text} {unit}"


def _with_unit(value: float | bool | str, spec: FieldSpec | None) -> str:
    return _u(value, spec.unit if spec is not None else "")


def _condition(p: Profile, c: Condition) -> tuple[str, str]:
    spec = p.fields.get(c.field)
    name = _name(c.field, spec)
    op, v = _OP_TEXT[c.op], _with_unit(c.value, spec)
    return f"{name.zh} {op} {v}", f"{name.en} {op} {v}"


def _slot(r: Limit, limit: Scalar) -> str:
    """The hours a scheduled limit applies (``22:00–06:00 ``), found by its value."""
    if r.schedule is None or not isinstance(limit, int | float):
        return ""
    for s in r.schedule:
        if abs(s.value - float(limit)) < 1e-9:
            return f"{s.from_}–{s.to} "
    return ""


def _span(seconds: float) -> tuple[str, str]:
    """A window's length: ``1 小时``/``1 h``, ``20 分钟``/``20 min``, ``90 秒``/``90 s``."""
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)} 小时", f"{int(seconds // 3600)} h"
    if seconds >= 120 and seconds % 60 == 0:
        return f"{int(seconds // 60)} 分钟", f"{int(seconds // 60)} min"
    return f"{num(seconds)} 秒", f"{num(seconds)} s"


def _per(per_s: float) -> str:
    if per_s == 86400:
        return "/d"
    if per_s == 3600:
        return "/h"
    return f"/{num(per_s)} s"


def num(value: Scalar) -> str:
    """A number for people: ``112``, ``104.5``, ``12.35``, ``0.042``; never float noise
    (``112.00000001`` is ``112``); ``—`` for none."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "是 yes" if value else "否 no"
    if isinstance(value, str):
        return one_line(value, 64) or NONE
    if not math.isfinite(value):
        return str(value)
    x = float(value)
    if abs(x) >= 10:
        text = f"{round(x, 1):.1f}"
    elif abs(x) >= 1:
        text = f"{round(x, 2):.2f}"
    else:
        text = f"{x:.2g}"
        if "e" in text:
            text = f"{x:.6f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def duration(seconds: Scalar) -> tuple[str, str]:
    """``(zh, en)``: ``45 秒``/``45 s`` below 2 min, minutes (rounded down) below 2 h,
    hours above; ``—`` for none."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return NONE, NONE
    s = float(seconds)
    if s < 120:
        return f"{num(s)} 秒", f"{num(s)} s"
    if s < 7200:
        m = math.floor(s / 60 + 1e-9)
        return f"{m} 分钟", f"{m} min"
    h = num(math.floor(s / 360 + 1e-9) / 10)
    return f"{h} 小时", f"{h} h"

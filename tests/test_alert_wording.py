"""How alerts are worded for people (alertrecords/wording.py): every rule of every device
profile, a few exact texts, the robots' message built with them, and ``sitewatch alerts
list`` saying the same."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import make_event

from sitewatch.core.profiles import load_profiles
from sitewatch.core.profiles.model import (
    CountRule,
    FieldType,
    Limit,
    OfflineRule,
    Op,
    Profile,
    RateRule,
    Rule,
    SilentRule,
)
from sitewatch.domains.alertrecords.messages import render_markdown
from sitewatch.domains.alertrecords.model import AlertEvent, Change, EventKind, Scalar
from sitewatch.domains.alertrecords.store import AlertStore
from sitewatch.domains.alertrecords.wording import Wording, num, word_measurement
from sitewatch.domains.notifications import WECOM_MARKDOWN_MAX_BYTES
from sitewatch.programs.cli import main

PROFILES = load_profiles()
RULES = [(p, r) for p in PROFILES.values() for r in p.rules]
FLOAT_NOISE = re.compile(r"\d\.\d{4,}")  # 112.00000001, 16.432100000000005


def words(profile: str, rule: str, value: Scalar, limit: Scalar) -> Wording:
    return word_measurement(PROFILES, profile=profile, rule=rule, value=value, limit=limit)


def over_the_limit(p: Profile, r: Rule) -> tuple[Scalar, Scalar]:
    """A value past the rule's limit, as the engine would record it, and the limit."""
    if isinstance(r, SilentRule):
        limit = r.intervals * p.sample_interval_s
        return limit * 10 + 0.123, limit
    if isinstance(r, OfflineRule):
        return r.grace_s + 125.4, r.grace_s
    if isinstance(r, CountRule):
        return r.count + 4, r.count
    assert isinstance(r, Limit)
    limit = r.value if r.schedule is None else r.schedule[0].value
    if isinstance(limit, bool):
        return limit if r.op is Op.EQ else not limit, limit
    assert isinstance(limit, float)
    step = 12.3456789 if not isinstance(r, RateRule) else 1.23456789
    if p.fields[r.field].type is FieldType.INT:
        step = 12 if limit > 1 else 1  # a count; >= 1 (people in view) gets a second one
    return (limit - step if r.op in (Op.LE, Op.LT) else limit + step), limit


@pytest.mark.parametrize(("profile", "rule"), RULES, ids=[f"{p.profile}.{r.id}" for p, r in RULES])
def test_every_rule_reads_well(profile: Profile, rule: Rule) -> None:
    value, limit = over_the_limit(profile, rule)
    w = words(profile.profile, rule.id, value, limit)
    text = w.line()
    assert w.zh and w.en
    for bad in ("True", "False", "true vs", " vs ", "None"):
        assert bad not in text
    assert not FLOAT_NOISE.search(text), text
    assert w.standard == rule.source.strip()
    if isinstance(rule, SilentRule | OfflineRule):
        assert "无数据" in w.zh and "silent for" in w.en
        return
    if isinstance(rule, CountRule):
        assert f" {num(value)} " in w.zh and f"限值 {num(limit)} 次" in w.zh
        return
    assert isinstance(rule, Limit)
    spec = profile.fields[rule.field]
    if spec.type is FieldType.BOOL:
        return  # a condition: no value, no limit (below, exactly)
    unit = spec.unit + ("/d" if isinstance(rule, RateRule) and rule.per_s == 86400 else "")
    if not spec.unit:  # a count: "2 people without a hard hat", "dropped 12 readings"
        assert f" {num(value)} " in f" {w.zh} " and f" {num(value)} " in f" {w.en} "
        return
    for lang in (w.zh, w.en):
        assert f"{num(value)} {unit}" in lang
        assert f"{num(limit)} {unit}" in lang


@pytest.mark.parametrize(
    ("profile", "rule", "value", "limit", "zh", "en"),
    [
        (
            "tower_crane",
            "load_alarm",
            112.00000001,
            100.0,
            "载荷 112 %（额定），超过限值 100 %，超出 12 %",
            "load 112 % of rated, 12 % over the limit of 100 %",
        ),
        (
            "tower_crane",
            "wind_alarm",
            12.3,
            10.8,
            "风速 12.3 m/s，超过限值 10.8 m/s，超出 1.5 m/s",
            "wind 12.3 m/s, 1.5 m/s over the limit of 10.8 m/s",
        ),
        (
            "environment",
            "pm10_hourly",
            96.4321,
            80.0,
            "PM10 1 小时均值 96.4 µg/m³，超过限值 80 µg/m³，超出 16.4 µg/m³",
            "PM10 1 h mean 96.4 µg/m³, 16.4 µg/m³ over the limit of 80 µg/m³",
        ),
        (
            "environment",
            "noise_leq",
            62.4,
            55.0,
            "噪声 20 分钟 Leq 62.4 dB(A)，超过 22:00–06:00 限值 55 dB(A)，超出 7.4 dB(A)",
            "noise 20 min Leq 62.4 dB(A), 7.4 dB(A) over the 22:00–06:00 limit of 55 dB(A)",
        ),
        (
            "foundation_pit",
            "displacement_rate",
            4.2,
            3.0,
            "位移速率 4.2 mm/d，超过限值 3 mm/d，超出 1.2 mm/d",
            "displacement rate 4.2 mm/d, 1.2 mm/d over the limit of 3 mm/d",
        ),
        (
            "construction_hoist",
            "door_open_moving",
            False,
            False,
            "梯笼门未关闭，且梯笼速度 > 0.05 m/s",
            "cage door open while cage speed > 0.05 m/s",
        ),
        (
            "gateway",
            "offline",
            185.3,
            60.0,
            "网关离线，无数据 3 分钟（宽限 60 秒）",
            "gateway offline, silent for 3 min (grace 60 s)",
        ),
        (
            "attendance_worker",
            "over_daily_limit",
            146.0,
            100.0,
            "在场时长 146 %（日限），超过限值 100 %，超出 46 %",
            "time on site 146 % of the daily limit, 46 % over the limit of 100 %",
        ),
        (
            "gateway",
            "disk_low",
            4.0,
            10.0,
            "磁盘剩余 4 %，低于限值 10 %，低 6 %",
            "disk free 4 %, 6 % below the limit of 10 %",
        ),
        (
            "camera_zone",
            "no_helmet",
            2,
            1.0,
            "未戴安全帽 2 人",
            "2 people without a hard hat",
        ),
    ],
)
def test_exact_texts(
    profile: str, rule: str, value: Scalar, limit: Scalar, zh: str, en: str
) -> None:
    w = words(profile, rule, value, limit)
    assert (w.zh, w.en) == (zh, en)


def test_standard_in_brackets_and_unknown_rules_plain() -> None:
    w = words("foundation_pit", "displacement_rate", 4.2, 3.0)
    assert w.line().endswith(" [GB 50497-2019]")
    assert words("gateway", "spool_disk_full", True, True).line() == (
        "网关缓存无法写入（磁盘满或故障） / gateway spool cannot write (disk full or failing)"
    )
    # a profile or rule not (any more) known, and no profiles at all: plain numbers
    assert (
        words("gone", "load_alarm", 146.0, 100.0).line()
        == "数值 146，限值 100 / value 146, limit 100"
    )
    plain = word_measurement(None, profile="tower_crane", rule="x", value=True, limit=True)
    assert plain.line() == "条件成立 / condition met"


def test_none_reads_as_a_dash() -> None:
    w = words("tower_crane", "load_alarm", None, 100.0)
    assert (w.zh, w.en) == ("载荷 —，限值 100 %", "load —, limit 100 %")
    assert words("gateway", "offline", None, None).en == "gateway offline, silent for — (grace —)"
    assert words("environment", "pm10_exceedances", None, 30).zh.startswith("今日 PM10 > 150 µg/m³")


def test_cleared_alert_keeps_its_last_value_without_claiming_an_excess() -> None:
    w = words("tower_crane", "load_alarm", 92.0, 100.0)
    assert (w.zh, w.en) == ("载荷 92 %（额定），限值 100 %", "load 92 % of rated, limit 100 %")


def event(**changes: object) -> AlertEvent:
    """A crane overload at 112.00000001 % of rated (float noise the text must not show)."""
    base: dict[str, object] = {
        "rule": "load_alarm",
        "group": "load",
        "title": "Overload",
        "value": 112.00000001,
    }
    return make_event(**(base | changes))


def test_the_robots_message_words_the_measurement() -> None:
    _, body = render_markdown(event(), profiles=PROFILES)
    lines = body.split("  \n")
    assert "数值: 载荷 112 %（额定），超过限值 100 %，超出 12 %" in lines
    assert "value: load 112 % of rated, 12 % over the limit of 100 %" in lines
    assert "依据 standard: JGJ 332-2014 (cut-off 100-110 %, uncertain)" in lines
    assert " vs " not in body and "112.0" not in body


@pytest.mark.parametrize(("profile", "rule"), RULES, ids=[f"{p.profile}.{r.id}" for p, r in RULES])
def test_every_rules_message_fits_the_robots(profile: Profile, rule: Rule) -> None:
    value, limit = over_the_limit(profile, rule)
    e = event(
        profile=profile.profile,
        rule=rule.id,
        value=value,
        limit=limit,
        title="塔吊" * 200,
        event=EventKind.ACKNOWLEDGED,
        actor="x" * 200,
        ack_comment="备注" * 400,
    )
    _, body = render_markdown(e, profiles=PROFILES)
    assert len(body.encode()) < WECOM_MARKDOWN_MAX_BYTES
    assert "True" not in body and "False" not in body


def test_alerts_list_says_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    store = AlertStore(url)
    store.create_schema()
    raised = [
        Change(EventKind.RAISED, "A1", 1714543385000, "SITE01", "GW01", "TC01", "tower_crane",
               "load", "load_alarm", "alarm", "Overload", 112.00000001, 100.0),
        Change(EventKind.RAISED, "A2", 1714543386000, "SITE01", "GW01", "HO01",
               "construction_hoist", "door_open_moving", "door_open_moving", "alarm",
               "Door open while the cage moves", False, False),
    ]  # fmt: skip
    store.apply(raised, 1714543386000)
    store.dispose()
    assert main(["alerts", "list", "--database-url", url]) == 0
    out = capsys.readouterr().out.splitlines()
    hoist, crane = out  # newest first
    assert crane.endswith(
        "SITE01/TC01 load: Overload (载荷 112 %（额定），超过限值 100 %，超出 12 % / "
        "load 112 % of rated, 12 % over the limit of 100 % "
        "[JGJ 332-2014 (cut-off 100-110 %, uncertain)])"
    )
    assert hoist.endswith(
        "(梯笼门未关闭，且梯笼速度 > 0.05 m/s / cage door open while cage speed > 0.05 m/s "
        "[JGJ 215-2010])"
    )
    assert "vs" not in "\n".join(out)

"""Panels the dashboards share: a device field over time with the limits its profile's
rules apply, the alert annotations, site and device variables, stats of the feed."""

from __future__ import annotations

from collections.abc import Sequence

from dashboards import influxql as iq
from dashboards.model import (
    Annotation,
    Color,
    Expect,
    Override,
    Panel,
    Query,
    Step,
    Thresholds,
    ValueText,
    Variable,
)
from sitewatch.core.profiles import Profile
from sitewatch.core.profiles.model import Op

#: profile units -> Grafana unit ids (anything else is shown as a suffix)
UNITS = {
    "%": "percent",
    "t": "masst",
    "kg": "masskg",
    "m": "lengthm",
    "mm": "lengthmm",
    "m/s": "velocityms",
    "°": "degree",
    "°C": "celsius",
    "µg/m³": "conμgm3",
    "dB(A)": "dBA",
    "kPa": "pressurekpa",
    "A": "amp",
    "V": "volt",
    "mA": "mamp",
    "s": "s",
}
#: limit series drawn from the ``limits`` feed: dashed, red, no fill
LIMIT_STYLE = {
    "custom.lineStyle": {"fill": "dash", "dash": [10, 10]},
    "color": {"mode": "fixed", "fixedColor": "red"},
    "custom.fillOpacity": 0,
    "custom.lineWidth": 2,
}
SEVERITY_STEP: dict[str, Color] = {"warning": "orange", "alarm": "red"}
#: a device's series: its site and id (ids are unique within a site only)
SERIES = ("site", "device")
SERIES_ALIAS = "$tag_site $tag_device"


def unit(profile: Profile, field: str) -> str:
    u = profile.fields[field].unit or ""
    return UNITS.get(u, f"suffix: {u}" if u else "")


def site_var(measurement: str) -> Variable:
    return Variable("site", "Site", iq.tag_values(measurement, "site"))


def device_var(measurement: str) -> Variable:
    return Variable("device", "Device", iq.tag_values(measurement, "device", iq.is_var("site")))


def alert_annotation(*, device: bool = True, device_match: str = "") -> Annotation:
    """Alerts raised, escalated and resolved, on every time series of the dashboard;
    of the selected devices (``device``), or of those ``device_match`` selects."""
    cond = [iq.is_var("site"), '"event" =~ /^(raised|escalated|resolved)$/']
    if device or device_match:
        cond.insert(1, device_match or iq.is_var("device"))
    sql = iq.select(
        [('"title"', ""), ('"event"', ""), ('"severity"', ""), ('"device"', ""), ('"rule"', "")],
        iq.ALERTS,
        cond,
        interval=None,
    )
    return Annotation(
        "Alerts",
        Query(sql, Expect(("title", "event", "severity"))),
        color="red",
        text_column="title",
        tags_column="device,event,severity",
    )


def limit_steps(profile: Profile, field: str, kinds: Sequence[str]) -> tuple[Step, ...]:
    """Thresholds from the profile's fixed-value rules on ``field`` of these kinds: an
    upper limit (``>=``, ``>``) turns the line orange or red from its value on."""
    steps: dict[float, Color] = {}
    for rule in profile.rules:
        value = getattr(rule, "value", None)
        if (
            getattr(rule, "kind", "") in kinds
            and getattr(rule, "field", None) == field
            and getattr(rule, "op", None) in (Op.GE, Op.GT)
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            color = SEVERITY_STEP[rule.severity.value]
            if steps.get(float(value)) != "red":
                steps[float(value)] = color
    return (Step(None, "green"), *(Step(v, c) for v, c in sorted(steps.items())))


def scheduled(profile: Profile, field: str) -> bool:
    """Does a rule on ``field`` change its limit with the time of day?"""
    return any(
        getattr(r, "field", None) == field and getattr(r, "schedule", None) for r in profile.rules
    )


def device_series(
    profile: Profile,
    field: str,
    title: str,
    *,
    w: int = 12,
    h: int = 8,
    agg: str = "mean",
    expr: str = "",
    rate_of: str = "",
    min_interval: str = "",
    description: str = "",
    devices: bool = True,
) -> Panel:
    """``field`` of every selected device over time, one line per device, with the
    profile's limits: fixed ones as thresholds, time-of-day ones (night noise) as the
    limit series the alert service writes (``limits``), so the line steps where the
    rule's limit does. ``devices=False``: every device of the selected sites (dashboards
    without a device variable)."""
    measurement = profile.profile
    cond = [iq.is_var("site"), iq.is_var("device")] if devices else [iq.is_var("site")]
    if rate_of:
        # a rate per day: the rate rules' limits on the field
        select = f"derivative(mean({iq.q(rate_of)}), 1d)"
        steps = limit_steps(profile, rate_of, ("rate",))
    else:
        select = expr or f"{agg}({iq.q(field)})"
        steps = limit_steps(profile, field, ("threshold", "window", "cumulative"))
    # device ids are unique within a site only: a series per site and device
    queries = [
        Query(
            iq.select([(select, field)], measurement, cond, by=SERIES),
            Expect((field,), SERIES),
            alias=SERIES_ALIAS,
        )
    ]
    overrides: tuple[Override, ...] = ()
    if not rate_of and scheduled(profile, field):
        limit_cond = [*cond, f"{iq.q('field')} = '{field}'"]
        queries.append(
            Query(
                iq.select(
                    [('last("value")', "limit")],
                    iq.LIMITS,
                    limit_cond,
                    by=(*SERIES, "rule"),
                    fill="previous",
                ),
                Expect(("limit",), (*SERIES, "rule")),
                alias=f"limit $tag_rule ({SERIES_ALIAS})",
            )
        )
        overrides = (Override("byFrameRefID", "B", LIMIT_STYLE),)
    field_unit = unit(profile, rate_of or field) if not rate_of else _per_day(profile, rate_of)
    return Panel(
        "timeseries",
        title,
        tuple(queries),
        w=w,
        h=h,
        unit=field_unit,
        description=description or _describe(profile, rate_of or field, bool(rate_of)),
        thresholds=Thresholds(steps, style="dashed" if len(steps) > 1 else "off"),
        overrides=overrides,
        min_interval=min_interval,
        custom={"lineWidth": 1, "fillOpacity": 8, "spanNulls": True, "showPoints": "never"},
        options={
            "legend": {
                "displayMode": "list",
                "placement": "bottom",
                "showLegend": True,
                "calcs": [],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def _per_day(profile: Profile, field: str) -> str:
    return f"suffix: {profile.fields[field].unit}/d"


def _describe(profile: Profile, field: str, rate: bool) -> str:
    spec = profile.fields[field]
    rules = [
        r
        for r in profile.rules
        if getattr(r, "field", None) == field and (getattr(r, "kind", "") == "rate") == rate
    ]
    text = spec.description + (" per day" if rate else "")
    if rules:
        text += ". Limits: " + "; ".join(
            f"{r.title or r.id} ({r.severity.value}{', ' + r.source if r.source else ''})"
            for r in rules
        )
    return text + "."


def stat(
    title: str,
    sql: str,
    column: str,
    *,
    w: int = 6,
    h: int = 4,
    unit: str = "",
    steps: tuple[Step, ...] = (Step(None, "green"),),
    alias: str = "",
    mappings: tuple[ValueText, ...] = (),
    description: str = "",
    tags: tuple[str, ...] = (),
) -> Panel:
    return Panel(
        "stat",
        title,
        (Query(sql, Expect((column,), tags), alias=alias),),
        w=w,
        h=h,
        unit=unit,
        thresholds=Thresholds(steps),
        mappings=mappings,
        color_mode="thresholds",
        description=description,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value_and_name" if tags else "value",
            "justifyMode": "auto",
            "orientation": "auto",
        },
    )


#: the feed's ``worst`` field: 0 nothing open, 1 a warning, 2 an alarm
WORST = (
    ValueText("0", "ok", "green"),
    ValueText("1", "warning", "orange"),
    ValueText("2", "alarm", "red"),
)
WORST_STEPS = (Step(None, "green"), Step(1, "orange"), Step(2, "red"))
STATE_TEXT = (
    ValueText("active", "active", "red"),
    ValueText("clearing", "clearing", "orange"),
    ValueText("resolved", "resolved", "green"),
)
SEVERITY_TEXT = (ValueText("alarm", "alarm", "red"), ValueText("warning", "warning", "orange"))
LINK_TEXT = (ValueText("online", "online", "green"), ValueText("offline", "offline", "red"))


def open_alerts_table(title: str, *conditions: str, w: int = 24, h: int = 8) -> Panel:
    """Every open alert (active or clearing, acknowledged or not) with its last event."""
    return Panel(
        "table",
        title,
        (
            Query(
                iq.open_alerts(*conditions),
                Expect(("state", "severity", "level", "title", "rule"), ("site", "device")),
                format="table",
            ),
        ),
        w=w,
        h=h,
        mappings=(*STATE_TEXT, *SEVERITY_TEXT),
        description="Alerts not yet resolved (last change within "
        f"{iq.OPEN_ALERTS_WINDOW}); acknowledge and resolve them in the API.",
        overrides=(
            Override("byName", "severity", {"custom.cellOptions": {"type": "color-background"}}),
            Override("byName", "raised_at", {"unit": "dateTimeAsIso"}),
            Override("byName", "Time", {"displayName": "last change", "unit": "dateTimeAsIso"}),
        ),
        options={
            "showHeader": True,
            "cellHeight": "sm",
            "sortBy": [{"displayName": "severity", "desc": False}],
        },
        transformations=({"id": "merge", "options": {}},),
    )

"""Every alert: what is open now, what happened in the range, which rules fire most.

Reads the ``alerts`` measurement (one point per alert change, written by the alert
service; docs/alerts.md)."""

from __future__ import annotations

from dashboards import influxql as iq
from dashboards.model import Dashboard, Expect, Override, Panel, Query, Variable
from dashboards.overview import ALARM_STEPS, SITE_VAR, WARNING_STEPS
from dashboards.panels import (
    SEVERITY_TEXT,
    STATE_TEXT,
    alert_annotation,
    open_alerts_table,
    stat,
)

SEVERITY_VAR = Variable("severity", "Severity", iq.tag_values(iq.ALERTS, "severity"))
FILTER = [iq.is_var("site"), iq.is_var("severity")]
HISTORY_COLUMNS = (
    "event",
    "state",
    "severity",
    "level",
    "site",
    "device",
    "title",
    "rule",
    "value",
    "limit",
    "actor",
)


def _counts() -> tuple[Panel, ...]:
    return (
        stat("Open alarms", iq.county_total("open_alarm"), "open_alarm", steps=ALARM_STEPS),
        stat("Open warnings", iq.county_total("open_warning"), "open_warning", steps=WARNING_STEPS),
        stat(
            "Escalated to the county",
            iq.county_total("open_county"),
            "open_county",
            steps=ALARM_STEPS,
        ),
        stat(
            "Raised in the range",
            iq.select(
                [('count("state")', "raised")],
                iq.ALERTS,
                [*FILTER, "\"event\" = 'raised'"],
                interval=None,
            ),
            "raised",
            steps=WARNING_STEPS,
        ),
    )


def _raised_over_time() -> Panel:
    return Panel(
        "timeseries",
        "Alerts raised",
        (
            Query(
                iq.select(
                    [('count("state")', "raised")],
                    iq.ALERTS,
                    [*FILTER, "\"event\" = 'raised'"],
                    by=("severity",),
                    fill="0",
                ),
                Expect(("raised",), ("severity",)),
                alias="$tag_severity",
            ),
        ),
        w=12,
        min_interval="5m",
        overrides=(
            Override("byName", "alarm", {"color": {"mode": "fixed", "fixedColor": "red"}}),
            Override("byName", "warning", {"color": {"mode": "fixed", "fixedColor": "orange"}}),
        ),
        custom={
            "drawStyle": "bars",
            "fillOpacity": 70,
            "stacking": {"mode": "normal", "group": "A"},
        },
    )


def _by_rule() -> Panel:
    return Panel(
        "bargauge",
        "Most frequent rules",
        (
            Query(
                iq.select(
                    [('count("state")', "raised")],
                    iq.ALERTS,
                    [*FILTER, "\"event\" = 'raised'"],
                    by=("profile", "rule"),
                    interval=None,
                ),
                Expect(("raised",), ("profile", "rule")),
                alias="$tag_profile / $tag_rule",
            ),
        ),
        w=12,
        options={
            "orientation": "horizontal",
            "displayMode": "basic",
            "reduceOptions": {"calcs": ["sum"], "fields": "", "values": False},
            "showUnfilled": True,
            "namePlacement": "left",
            "sizing": "auto",
        },
    )


def _history() -> Panel:
    cols = ", ".join(iq.q(c) for c in HISTORY_COLUMNS)
    sql = f"SELECT {cols} FROM {iq.q(iq.ALERTS)}{iq.where(*FILTER)} ORDER BY time DESC LIMIT 1000"
    return Panel(
        "table",
        "Alert history",
        (Query(sql, Expect(HISTORY_COLUMNS), format="table"),),
        w=24,
        h=12,
        mappings=(*STATE_TEXT, *SEVERITY_TEXT),
        description="Every change of every alert in the range, newest first: raised, "
        "escalated, acknowledged (by whom), cleared, resolved.",
        overrides=(
            Override("byName", "severity", {"custom.cellOptions": {"type": "color-background"}}),
            Override("byName", "state", {"custom.cellOptions": {"type": "color-text"}}),
        ),
        options={"showHeader": True, "cellHeight": "sm"},
    )


def alerts() -> Dashboard:
    items = (
        *_counts(),
        open_alerts_table("Open alerts", *FILTER, h=10),
        _raised_over_time(),
        _by_rule(),
        _history(),
    )
    return Dashboard(
        "sitewatch-alerts",
        "SiteWatch · Alerts",
        "Open alerts with their state and severity, and the history of every alert change.",
        items,
        variables=(SITE_VAR, SEVERITY_VAR),
        annotations=(alert_annotation(device=False),),
        time_from="now-24h",
    )

"""Real-name attendance: who is on site now, arrivals per hour, hours per team.

Gate events come from ingest (``attendance``: tags site, device, direction, worker); the
workers on site and each team's credited hours per attendance day come from the alert
service's feed (``site_summary``, ``attendance_team``), computed by the same rules as the
day-labour sheets (docs/attendance.md)."""

from __future__ import annotations

from dashboards import influxql as iq
from dashboards.model import Dashboard, Expect, Panel, Query, Step
from dashboards.overview import SITE_VAR, headcount
from dashboards.panels import open_alerts_table, stat

BLUE = (Step(None, "blue"),)
ENTRIES = [iq.is_var("site"), "\"direction\" = 'in'"]


def _stats() -> tuple[Panel, ...]:
    workers = (
        'SELECT count("seq") AS "workers" FROM (SELECT first("seq") AS "seq" '
        f'FROM {iq.q(iq.ATTENDANCE)}{iq.where(*ENTRIES)} GROUP BY "worker")'
    )
    return (
        stat("On site now", iq.county_total("on_site"), "on_site", steps=BLUE),
        stat(
            "Planned headcount",
            iq.county_total("planned_headcount"),
            "planned_headcount",
            steps=BLUE,
        ),
        stat(
            "Entries in the range",
            iq.select([('count("seq")', "entries")], iq.ATTENDANCE, ENTRIES, interval=None),
            "entries",
            steps=BLUE,
        ),
        stat("Workers who came in the range", workers, "workers", steps=BLUE),
    )


def _arrivals() -> Panel:
    return Panel(
        "timeseries",
        "Arrivals per hour",
        (
            Query(
                iq.select(
                    [('count("seq")', "entries")],
                    iq.ATTENDANCE,
                    ENTRIES,
                    by=("site",),
                    interval="1h",
                    fill="0",
                ),
                Expect(("entries",), ("site",)),
                alias="$tag_site",
            ),
        ),
        w=12,
        description="Entries through the gates per hour (duplicate swipes included).",
        custom={
            "drawStyle": "bars",
            "fillOpacity": 70,
            "lineWidth": 1,
            "stacking": {"mode": "normal", "group": "A"},
        },
    )


def _hours() -> tuple[Panel, ...]:
    cond = [iq.is_var("site")]
    total = Panel(
        "bargauge",
        "Hours per team in the range",
        (
            Query(
                iq.select(
                    [('sum("hours")', "hours")], iq.TEAM_HOURS, cond, by=("team",), interval=None
                ),
                Expect(("hours",), ("team",)),
                alias="$tag_team",
            ),
        ),
        w=12,
        unit="h",
        decimals=1,
        color_mode="palette-classic",
        description="Credited hours per team, summed over the attendance days in the range "
        "(the day-labour sheets' rules).",
        options={
            "orientation": "horizontal",
            "displayMode": "basic",
            "showUnfilled": True,
            "reduceOptions": {"calcs": ["sum"], "fields": "", "values": False},
            "valueMode": "color",
            "namePlacement": "left",
            "sizing": "auto",
        },
    )
    per_day = Panel(
        "timeseries",
        "Hours per team per attendance day",
        (
            Query(
                iq.select([('"hours"', "hours")], iq.TEAM_HOURS, cond, by=("team",), interval=None),
                Expect(("hours",), ("team",)),
                alias="$tag_team",
            ),
        ),
        w=12,
        unit="h",
        description="One bar per team at the start of each attendance day; "
        "today's grows until the day ends.",
        custom={
            "drawStyle": "bars",
            "fillOpacity": 70,
            "barAlignment": 1,
            "stacking": {"mode": "normal", "group": "A"},
        },
    )
    return total, per_day


def _swipes() -> Panel:
    sql = (
        f'SELECT "worker", "direction", "device", "method" FROM {iq.q(iq.ATTENDANCE)}'
        f"{iq.where(iq.is_var('site'))} ORDER BY time DESC LIMIT 500"
    )
    return Panel(
        "table",
        "Latest gate events",
        (Query(sql, Expect(("worker", "direction", "device", "method")), format="table"),),
        w=12,
        h=10,
        description="The last 500 swipes in the range (worker ids only: "
        "ID numbers never leave the registry).",
        options={"showHeader": True, "cellHeight": "sm"},
    )


def attendance() -> Dashboard:
    items = (
        *_stats(),
        headcount(w=12),
        _arrivals(),
        *_hours(),
        _swipes(),
        open_alerts_table(
            "Attendance alerts",
            iq.is_var("site"),
            '"profile" =~ /^attendance_(worker|site)$/',
            w=12,
            h=10,
        ),
    )
    return Dashboard(
        "sitewatch-attendance",
        "SiteWatch · Attendance",
        "Real-name attendance: the workforce on site now, arrivals per hour and the hours "
        "each team is credited for the day-labour sheets.",
        items,
        variables=(SITE_VAR,),
        time_from="now-7d",
        refresh="1m",
    )

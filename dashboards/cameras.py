"""Site cameras: their status (picture, frozen, covered, people in view) and the events
of their edge analytics (intrusions, bare heads, smoke) with the snapshot of each.

Reads ``camera_status`` (the cameras' status readings) and ``camera`` (their events;
docs/camera.md). A snapshot is served by the API at ``/sites/{site}/snapshots/{sha256}``;
the table shows its hash."""

from __future__ import annotations

from dashboards import influxql as iq
from dashboards.devices import Field, field_panel
from dashboards.model import (
    Dashboard,
    Expect,
    Override,
    Panel,
    Query,
    Row,
    ValueText,
    Variable,
)
from dashboards.panels import (
    alert_annotation,
    device_series,
    open_alerts_table,
    site_var,
)
from sitewatch.core.profiles import ProfileSet

STATUS = "camera_status"
EVENTS = "camera"
CAMERA_VAR = Variable("device", "Camera", iq.tag_values(STATUS, "device", iq.is_var("site")))
#: a camera's own readings, and the alerts of its zones (device {camera}-{zone})
OWN = [iq.is_var("site"), iq.is_var("device")]
ITS_DEVICES = f"{iq.q('device')} =~ /^$device(-.*)?$/"
ITS_ALERTS = [iq.is_var("site"), ITS_DEVICES]
EVENT_COLUMNS = ("device", "event", "zone", "count", "confidence", "method", "snapshot")
EVENT_TEXT = (
    ValueText("intrusion", "intrusion", "orange"),
    ValueText("no_helmet", "no hard hat", "red"),
    ValueText("no_vest", "no vest", "orange"),
    ValueText("fire_smoke", "smoke / fire", "red"),
    ValueText("person_count", "people count", "blue"),
)


def _events_table() -> Panel:
    cols = ", ".join(iq.q(c) for c in EVENT_COLUMNS)
    sql = f"SELECT {cols} FROM {iq.q(EVENTS)}{iq.where(*OWN)} ORDER BY time DESC LIMIT 500"
    return Panel(
        "table",
        "Camera events",
        (Query(sql, Expect(EVENT_COLUMNS), format="table"),),
        w=24,
        h=10,
        mappings=EVENT_TEXT,
        description="Newest first. An occurrence is two events: its start (count = people "
        "involved, with a snapshot) and its end (count 0). method: 'classical' "
        "is a heuristic check (no model configured). The API serves a snapshot "
        "at /sites/{site}/snapshots/{snapshot}, and lists these events at "
        "/sites/{site}/camera-events with that address.",
        overrides=(
            Override("byName", "event", {"custom.cellOptions": {"type": "color-text"}}),
            Override("byName", "Time", {"unit": "dateTimeAsIso"}),
        ),
        options={"showHeader": True, "cellHeight": "sm"},
    )


def _events_over_time() -> Panel:
    started = [*OWN, f"{iq.q('count')} > 0", f"{iq.q('event')} != 'person_count'"]
    return Panel(
        "timeseries",
        "Occurrences started",
        (
            Query(
                iq.select(
                    [('count("count")', "started")], EVENTS, started, by=("event",), fill="0"
                ),
                Expect(("started",), ("event",)),
                alias="$tag_event",
            ),
        ),
        w=12,
        min_interval="10m",
        custom={
            "drawStyle": "bars",
            "fillOpacity": 70,
            "stacking": {"mode": "normal", "group": "A"},
        },
    )


def cameras(profiles: ProfileSet) -> Dashboard:
    profile = profiles[STATUS]
    items = (
        open_alerts_table("Open camera alerts", *ITS_ALERTS, h=6),
        Row("Status"),
        field_panel(profile, Field("online", "Picture", w=8, states=("online", "offline"))),
        field_panel(profile, Field("frozen", "Frozen", w=8, states=("frozen", "live"))),
        field_panel(profile, Field("covered", "Lens", w=8, states=("covered", "clear"))),
        device_series(profile, "people", "People in view", agg="max"),
        device_series(profile, "fps", "Frames analysed per second"),
        Row("Events"),
        _events_over_time(),
        _events_table(),
    )
    return Dashboard(
        "sitewatch-cameras",
        "SiteWatch · Cameras",
        "Site cameras and their edge analytics: whether each camera sees the site, and the "
        "events it found (intrusion into zones, bare heads, smoke) with their snapshots.",
        items,
        variables=(site_var(STATUS), CAMERA_VAR),
        annotations=(alert_annotation(device_match=ITS_DEVICES),),
        time_from="now-6h",
    )

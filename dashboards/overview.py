"""The county supervisor's overview of every site, and one site at a glance.

Both read the alert service's dashboard feed (``site_summary``: open alerts, worst
severity, gateways offline and workers on site per site, with the site's location from
the registry) besides the telemetry."""

from __future__ import annotations

from dashboards import influxql as iq
from dashboards.model import (
    Dashboard,
    Expect,
    Item,
    Override,
    Panel,
    Query,
    Row,
    Step,
    Thresholds,
    ValueText,
    Variable,
)
from dashboards.panels import (
    LINK_TEXT,
    WORST,
    WORST_STEPS,
    alert_annotation,
    device_series,
    open_alerts_table,
    site_var,
    stat,
)
from sitewatch.core.profiles import ProfileSet

SITE_VAR = site_var(iq.SITE_SUMMARY)
ONE_SITE = Variable(
    "site", "Site", iq.tag_values(iq.SITE_SUMMARY, "site"), multi=False, include_all=False
)
#: what the ranked table and the map show per site
SITE_COLUMNS = (
    "name",
    "county",
    "worst",
    "open_alarm",
    "open_warning",
    "open_county",
    "gateways_offline",
    "on_site",
    "latitude",
    "longitude",
)
ALARM_STEPS = (Step(None, "green"), Step(1, "red"))
WARNING_STEPS = (Step(None, "green"), Step(1, "orange"))


def _totals(*, county: bool) -> tuple[Panel, ...]:
    w = 4
    panels = [
        stat(
            "Open alarms",
            iq.county_total("open_alarm"),
            "open_alarm",
            w=w,
            steps=ALARM_STEPS,
            description="Open alerts of severity alarm, acknowledged or "
            "not, at the selected sites.",
        ),
        stat(
            "Open warnings",
            iq.county_total("open_warning"),
            "open_warning",
            w=w,
            steps=WARNING_STEPS,
        ),
        stat(
            "Escalated to the county",
            iq.county_total("open_county"),
            "open_county",
            w=w,
            steps=ALARM_STEPS,
            description="Open alerts left unacknowledged at the site past their escalation time.",
        ),
        stat(
            "Gateways offline",
            iq.county_total("gateways_offline"),
            "gateways_offline",
            w=w,
            steps=ALARM_STEPS,
        ),
        stat(
            "Workers on site now",
            iq.county_total("on_site"),
            "on_site",
            w=w,
            steps=(Step(None, "blue"),),
            description="Workers who entered through a gate and have not left, from the "
            "real-name attendance gates (registered or not).",
        ),
    ]
    if county:
        panels.append(
            stat(
                "Sites",
                f'SELECT count("worst") AS "sites" FROM ({iq.latest_per_site(["worst"])})',
                "sites",
                w=w,
                steps=(Step(None, "blue"),),
            )
        )
    else:
        panels.append(
            stat(
                "Planned headcount",
                iq.county_total("planned_headcount"),
                "planned_headcount",
                w=w,
                steps=(Step(None, "blue"),),
            )
        )
    return tuple(panels)


def _sites_query() -> Query:
    return Query(iq.latest_per_site(SITE_COLUMNS), Expect(SITE_COLUMNS, ("site",)), format="table")


#: Grafana serves its own ``public/`` folder; every map file is a path under it, so the
#: browser asks Grafana and nothing outside (docs/dashboards.md, "The map")
WORLD_OUTLINE = "public/maps/countries.geojson"
#: deploy/grafana/maps/ as docker-compose mounts it: the operator's county boundary
COUNTY_BOUNDARY = "public/maps/sitewatch/county.geojson"
#: the base layer a panel draws when Grafana lets panels choose theirs: the country
#: outlines Grafana ships. docker-compose has Grafana use deploy/grafana/basemap.json for
#: every map instead (the same outline until the operator points it at a tile server).
BASEMAP = {
    "type": "geojson",
    "name": "Outline",
    "tooltip": False,
    "config": {
        "src": WORLD_OUTLINE,
        "rules": [],
        "style": {"color": {"fixed": "#3d4b5c"}, "opacity": 0.25, "lineWidth": 1},
    },
}


def county_boundary() -> dict[str, object]:
    """The county's boundary over the base layer, from the file the operator puts in
    deploy/grafana/maps/ (shipped empty: no line until then)."""
    return {
        "type": "geojson",
        "name": "County boundary",
        "tooltip": False,
        "config": {
            "src": COUNTY_BOUNDARY,
            "rules": [],
            "style": {"color": {"fixed": "#8ab8ff"}, "opacity": 0.08, "lineWidth": 2},
        },
    }


def _map() -> Panel:
    layer = {
        "type": "markers",
        "name": "Sites",
        "tooltip": True,
        "location": {"mode": "coords", "latitude": "latitude", "longitude": "longitude"},
        "config": {
            "showLegend": True,
            "style": {
                "color": {"field": "worst", "fixed": "green"},
                "size": {"fixed": 10, "min": 6, "max": 20},
                "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                "opacity": 0.9,
                "text": {"field": "name", "mode": "field", "fixed": ""},
                "textConfig": {
                    "fontSize": 11,
                    "offsetY": -14,
                    "textAlign": "center",
                    "textBaseline": "middle",
                },
            },
        },
    }
    return Panel(
        "geomap",
        "Sites by their worst open alert",
        (_sites_query(),),
        w=14,
        h=14,
        description="Every site at its registered location, green with nothing open, orange "
        "with an open warning, red with an open alarm. The map is drawn from "
        "files this Grafana serves; nothing is loaded from the internet.",
        thresholds=Thresholds(WORST_STEPS),
        color_mode="thresholds",
        overrides=(worst_field("worst"),),
        # fitted to the sites: the world outline under them would zoom out to the globe
        options={
            "view": {
                "id": "fit",
                "lat": 0,
                "lon": 0,
                "zoom": 8,
                "allLayers": False,
                "layer": "Sites",
                "padding": 10,
            },
            "controls": {
                "showZoom": True,
                "mouseWheelZoom": True,
                "showScale": True,
                "showAttribution": False,
            },
            "basemap": BASEMAP,
            "layers": [county_boundary(), layer],
            "tooltip": {"mode": "details"},
        },
        transformations=({"id": "merge", "options": {}},),
    )


def worst_field(name: str) -> Override:
    """The ``worst`` column as words on its colour (only that column: a mapping in the
    panel's defaults would turn every 1 and 2 of the counts into words too)."""
    return Override(
        "byName",
        name,
        {
            "mappings": ValueText.to_json(WORST),
            "thresholds": Thresholds(WORST_STEPS).to_json(),
            "color": {"mode": "thresholds"},
            "custom.cellOptions": {"type": "color-background"},
        },
    )


def _ranked() -> Panel:
    hidden = {"Time": True, "latitude": True, "longitude": True}
    names = {
        "site": "site",
        "name": "name",
        "county": "county",
        "worst": "worst open",
        "open_alarm": "alarms",
        "open_warning": "warnings",
        "open_county": "at county",
        "gateways_offline": "gateways offline",
        "on_site": "on site",
    }
    return Panel(
        "table",
        "Sites ranked by open alarms",
        (_sites_query(),),
        w=10,
        h=14,
        overrides=(worst_field("worst open"),),
        options={
            "showHeader": True,
            "cellHeight": "sm",
            "sortBy": [{"displayName": "alarms", "desc": True}],
        },
        transformations=(
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": hidden,
                    "renameByName": names,
                    "indexByName": {k: i for i, k in enumerate(names)},
                },
            },
            {"id": "sortBy", "options": {"sort": [{"field": "alarms", "desc": True}]}},
        ),
    )


def _over_time() -> tuple[Panel, ...]:
    inner = (
        'SELECT last("open_alarm") AS "open_alarm", last("open_warning") AS '
        f'"open_warning" FROM {iq.q(iq.SITE_SUMMARY)} WHERE {iq.is_var("site")} AND '
        '$timeFilter GROUP BY time($__interval), "site"'
    )
    alerts = Panel(
        "timeseries",
        "Open alerts over time",
        (
            Query(
                'SELECT sum("open_alarm") AS "alarms", sum("open_warning") AS "warnings"'
                f" FROM ({inner}) WHERE $timeFilter GROUP BY time($__interval) fill(none)",
                Expect(("alarms", "warnings")),
            ),
        ),
        w=12,
        min_interval="1m",
        overrides=(
            Override("byName", "alarms", {"color": {"mode": "fixed", "fixedColor": "red"}}),
            Override("byName", "warnings", {"color": {"mode": "fixed", "fixedColor": "orange"}}),
        ),
        custom={
            "drawStyle": "line",
            "lineInterpolation": "stepAfter",
            "fillOpacity": 20,
            "stacking": {"mode": "normal", "group": "A"},
        },
    )
    return (alerts, headcount(w=12))


def headcount(*, w: int) -> Panel:
    return Panel(
        "timeseries",
        "Workers on site",
        (
            Query(
                iq.select(
                    [('max("on_site")', "on_site")],
                    iq.SITE_SUMMARY,
                    [iq.is_var("site")],
                    by=("site",),
                ),
                Expect(("on_site",), ("site",)),
                alias="$tag_site",
            ),
        ),
        w=w,
        min_interval="1m",
        custom={"lineInterpolation": "stepAfter", "fillOpacity": 10},
    )


def county() -> Dashboard:
    items: list[Item] = [*_totals(county=True), _map(), _ranked(), *_over_time()]
    return Dashboard(
        "sitewatch-county",
        "SiteWatch · County overview",
        "Every supervised site: where the open alarms are, gateways that stopped reporting "
        "and the workforce on site now.",
        tuple(items),
        variables=(SITE_VAR,),
        annotations=(alert_annotation(device=False),),
        time_from="now-24h",
        refresh="1m",
    )


#: device measurements whose readings show a device is alive
DEVICE_MEASUREMENTS = (
    "tower_crane",
    "construction_hoist",
    "environment",
    "foundation_pit",
    "high_formwork",
    "electrical",
    "attendance_gate",
    "gateway",
)


def _devices_reporting() -> Panel:
    return Panel(
        "state-timeline",
        "Devices reporting",
        (
            Query(
                iq.select(
                    [('count("seq")', "readings")],
                    iq.any_of(DEVICE_MEASUREMENTS),
                    [iq.is_var("site")],
                    by=("device",),
                    fill="0",
                ),
                Expect(("readings",), ("device",)),
                alias="$tag_device",
            ),
        ),
        w=24,
        h=8,
        min_interval="10m",
        color_mode="thresholds",
        thresholds=Thresholds((Step(None, "red"), Step(1, "green"))),
        description="Readings per interval of every device of the site; red: none (a "
        "foundation pit point reports every 10 minutes).",
        options={
            "showValue": "never",
            "mergeValues": False,
            "rowHeight": 0.8,
            "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom"},
        },
    )


def site(profiles: ProfileSet) -> Dashboard:
    gateway = profiles["gateway"]
    link = stat(
        "Gateway link",
        iq.select(
            [('last("state")', "state")],
            iq.GATEWAY_STATUS,
            [iq.is_var("site"), f"time > now() - {iq.STATUS_WINDOW}"],
            by=("gateway",),
            interval=None,
            time=False,
        ),
        "state",
        w=4,
        mappings=LINK_TEXT,
        alias="$tag_gateway",
        tags=("gateway",),
        description="Each gateway's last status: online when it connects, offline "
        "when it says goodbye or the broker sends its will. Sent only "
        "when the link changes, so looked for over "
        f"{iq.STATUS_WINDOW}, whatever the dashboard's range.",
    )
    items: list[Item] = [
        *_totals(county=False),
        Row("Devices and alerts"),
        _devices_reporting(),
        open_alerts_table("Open alerts", iq.is_var("site")),
        Row("Gateway link and spool"),
        link,
        device_series(gateway, "spool_used_pct", "Spool use", w=7, agg="max", devices=False),
        device_series(
            gateway, "queued", "Batches waiting for acknowledgement", w=7, agg="max", devices=False
        ),
        device_series(
            gateway, "oldest_unsent_s", "Oldest unacknowledged batch", w=6, agg="max", devices=False
        ),
        Row("People"),
        headcount(w=24),
    ]
    return Dashboard(
        "sitewatch-site",
        "SiteWatch · Site overview",
        "One site at a glance: open alerts, which devices report, the gateway's link and "
        "spool, and the workforce on site.",
        tuple(items),
        variables=(ONE_SITE,),
        annotations=(alert_annotation(device=False),),
    )

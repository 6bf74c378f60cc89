"""One dashboard per kind of safety monitor: tower crane, hoist, environment, foundation
pit, high formwork, electrical. Each field over time per device, with the limits of the
device profile's rules (so a changed profile changes the drawn limits), alerts as
annotations, and the site and device variables."""

from __future__ import annotations

from dataclasses import dataclass

from dashboards import influxql as iq
from dashboards.model import Dashboard, Expect, Item, Panel, Query, Row, ValueText
from dashboards.panels import (
    SERIES,
    SERIES_ALIAS,
    alert_annotation,
    device_series,
    device_var,
    open_alerts_table,
    site_var,
)
from sitewatch.core.profiles import Profile, ProfileSet


@dataclass(frozen=True)
class Field:
    """A panel of a field: its title, and how it is drawn."""

    name: str
    title: str
    w: int = 12
    agg: str = "mean"
    #: draw the field's rate per day instead (foundation pit, rate rules)
    rate: bool = False
    min_interval: str = ""
    #: a true/false field, drawn as a state timeline with these words for true and false
    states: tuple[str, str] | None = None


@dataclass(frozen=True)
class Spec:
    uid: str
    title: str
    profile: str
    description: str
    sections: tuple[tuple[str, tuple[Field, ...]], ...]


SPECS = (
    Spec(
        "sitewatch-crane",
        "SiteWatch · Tower crane",
        "tower_crane",
        "Tower crane safety monitors (JGJ 332): load and moment against rated, wind at the "
        "jib, mast tilt, geometry. Dashed lines: the alert rules' warning and alarm limits.",
        (
            (
                "Safety",
                (
                    Field("load_pct", "Load (% of rated at the radius)", agg="max"),
                    Field("moment_pct", "Load moment (% of rated)", agg="max"),
                    Field("wind_ms", "Wind at the jib", agg="max"),
                    Field("tilt_permille", "Mast tilt", agg="max"),
                ),
            ),
            (
                "Operation",
                (
                    Field("load_t", "Hook load", w=6),
                    Field("radius_m", "Trolley radius", w=6),
                    Field("height_m", "Hook height", w=6),
                    Field("slew_deg", "Slew angle", w=6),
                ),
            ),
        ),
    ),
    Spec(
        "sitewatch-hoist",
        "SiteWatch · Construction hoist",
        "construction_hoist",
        "Construction hoists: cage load against rated, speed, height and riders; door "
        "interlock while moving raises an alarm (see the alert annotations).",
        (
            (
                "Safety",
                (
                    Field("load_pct", "Cage load (% of rated)", agg="max"),
                    Field("speed_ms", "Cage speed (up positive)"),
                    Field("door_closed", "Cage door", w=24, states=("closed", "open")),
                ),
            ),
            (
                "Operation",
                (
                    Field("height_m", "Cage height", w=8),
                    Field("riders", "Riders", w=8, agg="max"),
                    Field("load_kg", "Cage load", w=8),
                ),
            ),
        ),
    ),
    Spec(
        "sitewatch-environment",
        "SiteWatch · Environment",
        "environment",
        "Dust, noise and weather at the site boundary. Noise limits follow GB 12523-2011: "
        "70 dB(A) by day and 55 dB(A) at night (22:00-06:00 site time), drawn as the alert "
        "service applies them, per device and with any override.",
        (
            (
                "Dust",
                (Field("pm10", "PM10", w=8), Field("pm25", "PM2.5", w=8), Field("tsp", "TSP", w=8)),
            ),
            (
                "Noise and weather",
                (
                    Field("noise_dba", "Noise (1 s Leq) and its day/night limits", w=24, agg="max"),
                    Field("wind_ms", "Wind speed", w=8, agg="max"),
                    Field("temp_c", "Air temperature", w=8),
                    Field("rh_pct", "Relative humidity", w=8),
                ),
            ),
        ),
    ),
    Spec(
        "sitewatch-pit",
        "SiteWatch · Foundation pit",
        "foundation_pit",
        "Deep excavation monitoring points (GB 50497-2019): cumulative values and their "
        "rate per day, each against the designer's alarm values.",
        (
            (
                "Wall-top displacement",
                (
                    Field("displacement_mm", "Cumulative displacement", min_interval="10m"),
                    Field("displacement_mm", "Displacement rate", rate=True, min_interval="1h"),
                ),
            ),
            (
                "Settlement",
                (
                    Field("settlement_mm", "Cumulative settlement", min_interval="10m"),
                    Field("settlement_mm", "Settlement rate", rate=True, min_interval="1h"),
                ),
            ),
            (
                "Struts and groundwater",
                (
                    Field("strut_force_pct", "Strut force (% of design)", w=8, min_interval="10m"),
                    Field("groundwater_mm", "Groundwater level change", w=8, min_interval="10m"),
                    Field(
                        "groundwater_mm",
                        "Groundwater change rate",
                        w=8,
                        rate=True,
                        min_interval="1h",
                    ),
                ),
            ),
        ),
    ),
    Spec(
        "sitewatch-formwork",
        "SiteWatch · High formwork",
        "high_formwork",
        "High formwork support monitoring: displacement, settlement and pole tilt at 80 % "
        "(warning) and 100 % (alarm) of their limits, and axial force.",
        (
            (
                "Support",
                (
                    Field("displacement_mm", "Horizontal displacement", agg="max"),
                    Field("settlement_mm", "Settlement", agg="max"),
                    Field("tilt_permille", "Pole tilt", agg="max"),
                    Field("axial_force_kn", "Axial force", agg="max"),
                ),
            ),
        ),
    ),
    Spec(
        "sitewatch-electrical",
        "SiteWatch · Electrical",
        "electrical",
        "Temporary power distribution: residual (leakage) current and cable temperature "
        "against their alarm limits, phase current and voltage.",
        (
            (
                "Safety",
                (
                    Field("residual_ma", "Residual current", agg="max"),
                    Field("cable_temp_c", "Cable temperature", agg="max"),
                ),
            ),
            ("Load", (Field("current_a", "Phase current"), Field("voltage_v", "Phase voltage"))),
        ),
    ),
)


def field_panel(profile: Profile, f: Field) -> Panel:
    """A field of a profile over time (a true/false one as a state timeline)."""
    if f.states is not None:
        return _state_timeline(profile, f, f.states)
    return device_series(
        profile,
        f.name,
        f.title,
        w=f.w,
        agg=f.agg,
        rate_of=f.name if f.rate else "",
        min_interval=f.min_interval,
    )


def _state_timeline(profile: Profile, f: Field, words: tuple[str, str]) -> Panel:
    cond = [iq.is_var("site"), iq.is_var("device")]
    good, bad = words
    return Panel(
        "state-timeline",
        f.title,
        (
            Query(
                iq.select([(f"last({iq.q(f.name)})", f.name)], profile.profile, cond, by=SERIES),
                Expect((f.name,), SERIES),
                alias=SERIES_ALIAS,
            ),
        ),
        w=f.w,
        h=5,
        description=profile.fields[f.name].description + ".",
        mappings=(ValueText("true", good, "green"), ValueText("false", bad, "red")),
        options={
            "showValue": "never",
            "mergeValues": True,
            "rowHeight": 0.8,
            "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom"},
        },
    )


def _status(profile: Profile) -> tuple[Item, ...]:
    """Per device: the last reading and the open alerts."""
    cond = [iq.is_var("site"), iq.is_var("device")]
    last = Panel(
        "table",
        "Devices: last reading",
        (
            Query(
                iq.select(
                    [('last("seq")', "seq")],
                    profile.profile,
                    cond,
                    by=("site", "device"),
                    interval=None,
                ),
                Expect(("seq",), ("site", "device")),
                format="table",
            ),
        ),
        w=8,
        h=6,
        description="When each selected device last reported (in the range).",
        transformations=({"id": "merge", "options": {}},),
        options={"showHeader": True, "cellHeight": "sm"},
        overrides=(),
    )
    alerts = open_alerts_table(
        "Open alerts", *cond, f"{iq.q('profile')} = '{profile.profile}'", w=16, h=6
    )
    return (last, alerts)


def device_dashboard(spec: Spec, profiles: ProfileSet) -> Dashboard:
    profile = profiles[spec.profile]
    items: list[Item] = [*_status(profile)]
    for heading, fields in spec.sections:
        items.append(Row(heading))
        items.extend(field_panel(profile, f) for f in fields)
    return Dashboard(
        spec.uid,
        spec.title,
        spec.description,
        tuple(items),
        variables=(site_var(spec.profile), device_var(spec.profile)),
        annotations=(alert_annotation(),),
    )

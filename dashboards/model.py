"""A small typed layer over Grafana's dashboard JSON (classic model, schema version 42).

Only what SiteWatch's dashboards use, so every field here is one we mean. Dashboards are
built from these values and rendered by :meth:`Dashboard.to_json`; the same values give
the tests every query of every panel (:meth:`Dashboard.queries`) and what each one must
return (:class:`Expect`), which never reaches Grafana.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

#: the schema version Grafana 12.2+ writes (the last of the classic, v1 dashboard API)
SCHEMA_VERSION = 42
#: the provisioned InfluxDB data source (provisioning/datasources/sitewatch.yaml)
DATASOURCE_UID = "sitewatch-influxdb"
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
GRID_WIDTH = 24

Json = dict[str, Any]
Format = Literal["time_series", "table"]
PanelType = Literal[
    "timeseries", "stat", "table", "geomap", "bargauge", "barchart", "state-timeline", "text"
]
Color = Literal["green", "orange", "red", "blue", "purple", "yellow", "text", "transparent"]

#: colours by alert severity, used wherever a severity or a limit is drawn
SEVERITY_COLORS: Mapping[str, Color] = {"ok": "green", "warning": "orange", "alarm": "red"}


@dataclass(frozen=True)
class Expect:
    """What a query must return against a filled database (checked by the tests, not sent
    to Grafana): its columns, the tags it groups by and whether it may be a single row."""

    columns: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Query:
    """One InfluxQL query of a panel (raw mode), with Grafana's macros in it."""

    influxql: str
    expect: Expect
    alias: str = ""
    format: Format = "time_series"

    def to_json(self, ref_id: str) -> Json:
        out: Json = {
            "datasource": DATASOURCE,
            "refId": ref_id,
            "rawQuery": True,
            "resultFormat": self.format,
            "query": self.influxql,
        }
        if self.alias:
            out["alias"] = self.alias
        return out


@dataclass(frozen=True)
class Step:
    """A threshold step: from ``value`` on (None: the base), this colour."""

    value: float | None
    color: Color


@dataclass(frozen=True)
class Thresholds:
    steps: tuple[Step, ...] = (Step(None, "green"),)
    #: draw them on time series: "line+area", "dashed", "line", "off"
    style: Literal["off", "line", "dashed", "line+area", "dashed+area"] = "off"

    def to_json(self) -> Json:
        return {
            "mode": "absolute",
            "steps": [{"color": s.color, "value": s.value} for s in self.steps],
        }


@dataclass(frozen=True)
class Override:
    """Field config for the fields a matcher picks (``byName``, ``byRegexp``, ``byFrameRefID``)."""

    matcher: Literal["byName", "byRegexp", "byFrameRefID"]
    pattern: str
    properties: Mapping[str, Any]

    def to_json(self) -> Json:
        return {
            "matcher": {"id": self.matcher, "options": self.pattern},
            "properties": [{"id": k, "value": v} for k, v in self.properties.items()],
        }


@dataclass(frozen=True)
class ValueText:
    """A value mapping: this value shows as ``text`` in ``color``."""

    value: str
    text: str
    color: Color

    @staticmethod
    def to_json(maps: Sequence[ValueText]) -> list[Json]:
        if not maps:
            return []
        return [
            {
                "type": "value",
                "options": {
                    m.value: {"text": m.text, "color": m.color, "index": i}
                    for i, m in enumerate(maps)
                },
            }
        ]


@dataclass(frozen=True)
class Panel:
    type: PanelType
    title: str
    queries: tuple[Query, ...] = ()
    #: width and height in grid units (24 wide); placed by :class:`Dashboard`
    w: int = 12
    h: int = 8
    description: str = ""
    unit: str = ""
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    thresholds: Thresholds = Thresholds()
    mappings: tuple[ValueText, ...] = ()
    overrides: tuple[Override, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    custom: Mapping[str, Any] = field(default_factory=dict)
    transformations: tuple[Json, ...] = ()
    #: Grafana's minimum interval: ``$__interval`` is never below it
    min_interval: str = ""
    #: the panel's colour scheme ("thresholds" colours values by the steps)
    color_mode: Literal["palette-classic", "thresholds", "fixed"] = "palette-classic"

    def to_json(self, panel_id: int, x: int, y: int) -> Json:
        custom = dict(self.custom)
        if self.type in ("timeseries", "barchart") and self.thresholds.style != "off":
            custom["thresholdsStyle"] = {"mode": self.thresholds.style}
        defaults: Json = {
            "color": {"mode": self.color_mode},
            "thresholds": self.thresholds.to_json(),
            "mappings": ValueText.to_json(self.mappings),
        }
        for key, value in (
            ("unit", self.unit),
            ("decimals", self.decimals),
            ("min", self.min),
            ("max", self.max),
        ):
            if value not in ("", None):
                defaults[key] = value
        if custom:
            defaults["custom"] = custom
        out: Json = {
            "id": panel_id,
            "type": self.type,
            "title": self.title,
            "gridPos": {"h": self.h, "w": self.w, "x": x, "y": y},
        }
        if self.description:
            out["description"] = self.description
        if self.type != "text":
            out["datasource"] = DATASOURCE
            out["targets"] = [q.to_json(chr(ord("A") + i)) for i, q in enumerate(self.queries)]
            out["fieldConfig"] = {
                "defaults": defaults,
                "overrides": [o.to_json() for o in self.overrides],
            }
        if self.min_interval:
            out["interval"] = self.min_interval
        out["options"] = dict(self.options)
        if self.transformations:
            out["transformations"] = list(self.transformations)
        return out


@dataclass(frozen=True)
class Row:
    """A full-width heading that groups the panels after it."""

    title: str


@dataclass(frozen=True)
class Variable:
    """A template variable filled by an InfluxQL ``SHOW TAG VALUES`` query."""

    name: str
    label: str
    query: str
    multi: bool = True
    include_all: bool = True

    def to_json(self) -> Json:
        current = (
            {"selected": True, "text": ["All"], "value": ["$__all"]} if self.include_all else {}
        )
        return {
            "name": self.name,
            "label": self.label,
            "type": "query",
            "datasource": DATASOURCE,
            "query": self.query,
            "definition": self.query,
            "refresh": 2,
            "sort": 1,
            "multi": self.multi,
            "includeAll": self.include_all,
            "current": current,
            "options": [],
            "hide": 0,
        }


@dataclass(frozen=True)
class Annotation:
    """Events drawn on every time series panel of the dashboard, from an InfluxQL query."""

    name: str
    query: Query
    color: str = "red"
    text_column: str = ""
    tags_column: str = ""

    def to_json(self) -> Json:
        return {
            "name": self.name,
            "datasource": DATASOURCE,
            "enable": True,
            "hide": False,
            "iconColor": self.color,
            "query": self.query.influxql,
            "target": {"query": self.query.influxql, "rawQuery": True, "refId": "Anno"},
            "textColumn": self.text_column,
            "tagsColumn": self.tags_column,
        }


Item = Panel | Row


@dataclass(frozen=True)
class Link:
    """Links to the other SiteWatch dashboards (by tag), shown at the top."""

    tag: str = "sitewatch"

    def to_json(self) -> Json:
        return {
            "title": "SiteWatch",
            "type": "dashboards",
            "tags": [self.tag],
            "asDropdown": True,
            "includeVars": True,
            "keepTime": True,
            "icon": "external link",
            "targetBlank": False,
            "tooltip": "",
            "url": "",
        }


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    items: tuple[Item, ...]
    variables: tuple[Variable, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    time_from: str = "now-6h"
    refresh: str = "30s"
    tags: tuple[str, ...] = ("sitewatch",)

    def placed(self) -> Iterator[tuple[int, int, int, Item]]:
        """(id, x, y, item): panels flow left to right in rows of 24 columns; a
        :class:`Row` starts a new line."""
        x = y = line_h = 0
        for i, item in enumerate(self.items, start=1):
            if isinstance(item, Row):
                y += line_h
                yield i, 0, y, item
                x, line_h = 0, 0
                y += 1
                continue
            if x + item.w > GRID_WIDTH:
                x, y, line_h = 0, y + line_h, 0
            yield i, x, y, item
            x += item.w
            line_h = max(line_h, item.h)

    def panels(self) -> Iterator[Panel]:
        return (item for item in self.items if isinstance(item, Panel))

    def queries(self) -> Iterator[tuple[str, Query, str]]:
        """Every query of the dashboard: (where, query, min interval)."""
        for p in self.panels():
            for i, q in enumerate(p.queries):
                yield f"{self.uid} / {p.title} / {chr(ord('A') + i)}", q, p.min_interval
        for a in self.annotations:
            yield f"{self.uid} / annotation {a.name}", a.query, ""

    def to_json(self) -> Json:
        panels: list[Json] = []
        for panel_id, x, y, item in self.placed():
            if isinstance(item, Row):
                panels.append(
                    {
                        "id": panel_id,
                        "type": "row",
                        "title": item.title,
                        "collapsed": False,
                        "panels": [],
                        "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                    }
                )
            else:
                panels.append(item.to_json(panel_id, x, y))
        builtin: Json = {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "editable": False,
            "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "timezone": "browser",
            "refresh": self.refresh,
            "liveNow": False,
            "fiscalYearStartMonth": 0,
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {"refresh_intervals": ["10s", "30s", "1m", "5m", "15m", "1h"]},
            "templating": {"list": [v.to_json() for v in self.variables]},
            "annotations": {"list": [builtin, *(a.to_json() for a in self.annotations)]},
            "links": [Link().to_json()],
            "panels": panels,
        }

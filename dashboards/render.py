"""Pictures of the dashboards without Grafana: each panel's queries, filled as Grafana
fills them, run against InfluxDB, and drawn with matplotlib where Grafana would put the
panel (its grid position), in Grafana's dark theme colours. For the README (a newcomer
sees what they will get) and for eyeballing a change; ``scripts/render-dashboards``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dashboards.grafana import (
    Selection,
    default_range,
    interpolate,
    variable_values,
)
from dashboards.model import Dashboard, Panel, Query, Row, Step, ValueText
from sitewatch.core.influx import InfluxClient

BG, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
COLORS = {
    "green": "#73bf69",
    "orange": "#ff9830",
    "red": "#f2495c",
    "blue": "#5794f2",
    "purple": "#b877d9",
    "yellow": "#fade2a",
    "text": TEXT,
    "transparent": PANEL,
}
PALETTE = [
    "#73bf69",
    "#f2cc0c",
    "#8ab8ff",
    "#ff780a",
    "#f2495c",
    "#5794f2",
    "#b877d9",
    "#705da0",
    "#37872d",
    "#fade2a",
]
ROW_PX = 30  # one grid unit of height, in Grafana's pixels


@dataclass
class Frame:
    """One series of a query's result."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    rows: list[list[Any]]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]


async def fetch(
    client: InfluxClient,
    d: Dashboard,
    end_ms: int,
    start_ms: int | None = None,
    *,
    pick: Mapping[str, Sequence[str]] | None = None,
) -> tuple[dict[tuple[int, int], list[Frame]], list[dict[str, Any]], int]:
    """Every query's frames by (panel index, query index), the annotations' rows. The
    variables start as Grafana starts them (All, or the first option) unless ``pick``
    chooses their values."""
    start = start_ms if start_ms is not None else default_range(d.time_from, end_ms)[0]
    variables = await variable_values(client, d, start, end_ms, pick=pick)
    frames: dict[tuple[int, int], list[Frame]] = {}
    for i, item in enumerate(d.items):
        if not isinstance(item, Panel):
            continue
        for k, q in enumerate(item.queries):
            frames[(i, k)] = await _run(client, q, start, end_ms, variables, item.min_interval)
    notes: list[dict[str, Any]] = []
    for a in d.annotations:
        for f in await _run(client, a.query, start, end_ms, variables, ""):
            notes += [dict(zip(f.columns, r, strict=True)) for r in f.rows]
    return frames, notes, start


async def _run(
    client: InfluxClient,
    q: Query,
    start: int,
    end: int,
    variables: dict[str, Selection],
    min_interval: str,
) -> list[Frame]:
    sql = interpolate(
        q.influxql,
        start_ms=start,
        end_ms=end,
        variables=variables,
        min_interval=min_interval,
        max_points=300,
    )
    result = (await client.query(sql))[0]
    return [
        Frame(s["name"], s.get("tags") or {}, s["columns"], s["values"])
        for s in result.get("series", [])
    ]


def draw(
    d: Dashboard,
    frames: dict[tuple[int, int], list[Frame]],
    notes: list[dict[str, Any]],
    start_ms: int,
    end_ms: int,
    out: Path,
    *,
    utc_offset_h: float = 8.0,
    width_in: float = 16.0,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    placed = list(d.placed())
    rows = max(y + (1 if isinstance(it, Row) else it.h) for _, _, y, it in placed)
    height_in = width_in * rows * ROW_PX / 1900 + 0.5
    fig = plt.figure(figsize=(width_in, height_in), facecolor=BG)
    fig.text(0.01, 1 - 0.2 / height_in, d.title, color=TEXT, fontsize=15, va="top", weight="bold")
    tz = timedelta(hours=utc_offset_h)
    top = 1 - 0.7 / height_in
    for panel_id, x, y, item in placed:
        index = panel_id - 1
        h = 1 if isinstance(item, Row) else item.h
        x0, y0 = x / 24, top - (y + h) / rows * top
        w0, h0 = (24 if isinstance(item, Row) else item.w) / 24, h / rows * top
        if isinstance(item, Row):
            fig.text(
                x0 + 0.004,
                y0 + h0 / 2,
                item.title,
                color=TEXT,
                fontsize=11,
                weight="bold",
                va="center",
            )
            continue
        # room for the title above and, on charts, tick labels left and below
        chart = item.type in ("timeseries", "geomap", "state-timeline", "bargauge")
        left = (0.045 if item.type == "bargauge" else 0.028) if chart else 0.004
        bottom = 0.22 / height_in if chart else 0.006
        ax = fig.add_axes(
            (x0 + left, y0 + bottom, w0 - left - 0.006, h0 - bottom - 0.3 / height_in),
            facecolor=PANEL,
        )
        ax.set_title(item.title, color=TEXT, fontsize=9, loc="left", pad=4)
        for spine in ax.spines.values():
            spine.set_color(GRID)
        ax.tick_params(colors=TEXT, labelsize=7)
        panel_frames = [frames.get((index, k), []) for k in range(len(item.queries))]
        drawer = _DRAWERS.get(item.type, _nothing)
        drawer(ax, item, panel_frames, notes, start_ms, end_ms, tz)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, facecolor=BG)
    plt.close(fig)
    return out


# -- one function per panel type ------------------------------------------------------


def _label(q: Query, f: Frame) -> str:
    if not q.alias:
        return f.columns[-1]
    text = q.alias
    for k, v in f.tags.items():
        text = text.replace(f"$tag_{k}", v)
    return text


def _times(f: Frame, tz: timedelta) -> list[datetime]:
    return [datetime.fromtimestamp(t / 1000, UTC) + tz for t in f.column("time")]


def _step_color(steps: Sequence[Step], value: float | None) -> str:
    color = steps[0].color
    for s in steps:
        if s.value is not None and value is not None and value >= s.value:
            color = s.color
    return COLORS.get(color, color)


def _mapped(maps: Sequence[ValueText], value: Any) -> tuple[str, str | None]:
    for m in maps:
        if str(value) == m.value:
            return m.text, COLORS[m.color]
    if isinstance(value, float):
        return (f"{value:.0f}" if value == int(value) else f"{value:.2f}"), None
    return str(value), None


def _fixed_color(p: Panel, name: str) -> str | None:
    for o in p.overrides:
        color = o.properties.get("color", {})
        if o.matcher == "byName" and o.pattern == name and color.get("mode") == "fixed":
            fixed = str(color["fixedColor"])
            return COLORS.get(fixed, fixed)
    return None


def _timeseries(
    ax: Any,
    p: Panel,
    frames: list[list[Frame]],
    notes: list[dict[str, Any]],
    start: int,
    end: int,
    tz: timedelta,
) -> None:

    n = 0
    bars = p.custom.get("drawStyle") == "bars"
    for k, q in enumerate(p.queries):
        limit = any(o.matcher == "byFrameRefID" and o.pattern == chr(65 + k) for o in p.overrides)
        for f in frames[k]:
            xs = _times(f, tz)
            values = [c for c in f.columns if c != "time"]
            for col in values:
                ys = f.column(col)
                label = _label(q, f) if len(values) == 1 else col
                color = _fixed_color(p, label) or PALETTE[n % len(PALETTE)]
                if limit:
                    ax.step(xs, ys, where="post", color=COLORS["red"], lw=1.5, ls="--", label=label)
                elif bars:
                    ax.bar(xs, ys, width=0.03, color=color, label=label)
                else:
                    ax.plot(xs, ys, lw=1, color=color, label=label)
                n += 1
    for s in p.thresholds.steps[1:]:
        if p.thresholds.style != "off" and s.value is not None:
            ax.axhline(s.value, color=COLORS[s.color], ls="--", lw=1)
    for note in notes:
        t = datetime.fromtimestamp(note["time"] / 1000, UTC) + tz
        color = COLORS["red"] if note.get("event") != "resolved" else COLORS["green"]
        ax.axvline(t, color=color, lw=0.6, alpha=0.5)
    ax.set_xlim(
        datetime.fromtimestamp(start / 1000, UTC) + tz, datetime.fromtimestamp(end / 1000, UTC) + tz
    )
    ax.xaxis.set_major_formatter(_date_format("%H:%M" if end - start <= 86_400_000 else "%m-%d"))
    ax.grid(color=GRID, lw=0.5)
    if n:
        ax.legend(
            fontsize=6,
            loc="upper left",
            facecolor=PANEL,
            edgecolor=GRID,
            labelcolor=TEXT,
            ncol=min(n, 4),
        )


def _stat(ax: Any, p: Panel, frames: list[list[Frame]], *_: Any) -> None:
    values = [(f.tags, f.rows[-1][-1]) for f in frames[0] if f.rows] if frames else []
    ax.set_xticks([])
    ax.set_yticks([])
    if not values:
        ax.text(0.5, 0.4, "no data", color=TEXT, ha="center", va="center", fontsize=12)
        return
    for i, (tags, v) in enumerate(values):
        text, color = _mapped(p.mappings, v)
        num = v if isinstance(v, int | float) else None
        color = color or _step_color(p.thresholds.steps, num)
        w = 1 / len(values)
        ax.add_patch(_rect(i * w, 0, w, 1, color))
        name = next(iter(tags.values()), "")
        ax.text(
            i * w + w / 2,
            0.4,
            text,
            color="white",
            ha="center",
            va="center",
            fontsize=20,
            weight="bold",
        )
        if name:
            ax.text(i * w + w / 2, 0.8, name, color="white", ha="center", fontsize=8)


def _rect(x: float, y: float, w: float, h: float, color: str) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, facecolor=color, alpha=0.85)


def _maps_for(p: Panel, name: str) -> Sequence[ValueText]:
    """The value mappings Grafana applies to field ``name``: an override's, else the
    panel's."""
    for o in p.overrides:
        if o.matcher == "byName" and o.pattern == name and "mappings" in o.properties:
            return [
                ValueText(v, m["text"], m["color"])
                for group in o.properties["mappings"]
                for v, m in group["options"].items()
            ]
    return p.mappings


def _table_rows(p: Panel, frames: list[list[Frame]]) -> tuple[list[str], list[list[Any]]]:
    hidden: set[str] = {"time"}
    names: dict[str, str] = {}
    sort: tuple[str, bool] | None = None
    for t in p.transformations:
        if t["id"] == "organize":
            hidden |= {k.lower() for k, v in t["options"]["excludeByName"].items() if v}
            names = t["options"]["renameByName"]
        if t["id"] == "sortBy":
            s = t["options"]["sort"][0]
            sort = (s["field"], s["desc"])
    cols: list[str] = []
    rows: list[dict[str, Any]] = []
    for f in frames[0] if frames else []:
        for r in f.rows:
            row = {**f.tags, **dict(zip(f.columns, r, strict=True))}
            rows.append(row)
            cols += [c for c in row if c not in cols and c not in hidden]
    if names:
        cols = [c for c in names if c in cols] + [c for c in cols if c not in names]
    header = [names.get(c, c) for c in cols]
    table = [[row.get(c) for c in cols] for row in rows]
    if sort and sort[0] in header:
        i = header.index(sort[0])
        table.sort(key=lambda r: (r[i] is None, r[i]), reverse=sort[1])
    return header, table


def _cell(name: str, maps: Sequence[ValueText], value: Any, tz: timedelta) -> str:
    if value is None:
        return ""
    if name in ("raised_at", "Time") and isinstance(value, int | float):
        return (datetime.fromtimestamp(value / 1000, UTC) + tz).strftime("%m-%d %H:%M")
    return _mapped(maps, value)[0]


def _table(
    ax: Any,
    p: Panel,
    frames: list[list[Frame]],
    notes: list[Any],
    start: int,
    end: int,
    tz: timedelta,
) -> None:
    ax.axis("off")
    header, rows = _table_rows(p, frames)
    if not rows:
        return
    shown = rows[: max(1, p.h * 2 - 3)]
    maps = [_maps_for(p, name) for name in header]
    cells = [
        [_cell(name, m, v, tz) for name, m, v in zip(header, maps, r, strict=True)] for r in shown
    ]
    colors = [[_mapped(m, v)[1] or PANEL for m, v in zip(maps, r, strict=True)] for r in shown]
    t = ax.table(
        cellText=[[c[:28] for c in r] for r in cells],
        colLabels=header,
        cellColours=colors,
        loc="upper center",
        cellLoc="left",
    )
    t.auto_set_font_size(False)
    t.set_fontsize(7)
    for cell in t.get_celld().values():
        cell.set_edgecolor(GRID)
        cell.get_text().set_color(TEXT)
        if cell.get_facecolor()[:3] == (1.0, 1.0, 1.0):
            cell.set_facecolor(PANEL)


def _geomap(ax: Any, p: Panel, frames: list[list[Frame]], *_: Any) -> None:
    sites = [
        {**f.tags, **dict(zip(f.columns, r, strict=True))}
        for f in (frames[0] if frames else [])
        for r in f.rows
    ]
    sites = [s for s in sites if s.get("latitude") is not None]
    ax.set_facecolor("#1f2a36")
    ax.grid(color=GRID, lw=0.4)
    for s in sites:
        text, color = _mapped(_maps_for(p, "worst"), s.get("worst"))
        ax.scatter(
            s["longitude"],
            s["latitude"],
            s=260,
            color=color or COLORS["green"],
            edgecolors="white",
            linewidths=0.8,
            zorder=3,
        )
        ax.annotate(
            f"{s.get('name') or s['site']}\n{text}",
            (s["longitude"], s["latitude"]),
            textcoords="offset points",
            xytext=(0, 14),
            ha="center",
            color=TEXT,
            fontsize=7,
        )
    if sites:
        lats = [s["latitude"] for s in sites]
        lons = [s["longitude"] for s in sites]
        pad = max(0.05, (max(lats) - min(lats)) * 0.3)
        ax.set_xlim(min(lons) - pad * 1.5, max(lons) + pad * 1.5)
        ax.set_ylim(min(lats) - pad, max(lats) + pad * 1.5)
        ax.set_aspect(1 / math.cos(math.radians(sum(lats) / len(lats))))
    ax.set_xlabel("longitude", color=TEXT, fontsize=7)
    ax.set_ylabel("latitude", color=TEXT, fontsize=7)


def _bargauge(ax: Any, p: Panel, frames: list[list[Frame]], *_: Any) -> None:
    q = p.queries[0]
    items = sorted(
        ((_label(q, f), sum(r[-1] or 0 for r in f.rows)) for f in frames[0]), key=lambda kv: kv[1]
    )
    ax.barh(
        [k for k, _ in items],
        [v for _, v in items],
        color=[PALETTE[i % len(PALETTE)] for i in range(len(items))],
    )
    ax.tick_params(labelsize=6)
    ax.grid(color=GRID, lw=0.4, axis="x")


def _state_timeline(
    ax: Any,
    p: Panel,
    frames: list[list[Frame]],
    notes: list[Any],
    start: int,
    end: int,
    tz: timedelta,
) -> None:

    q = p.queries[0]
    series = sorted(frames[0], key=lambda f: _label(q, f)) if frames else []
    for i, f in enumerate(series):
        xs = _times(f, tz)
        for j, (t, v) in enumerate(zip(xs, f.column(f.columns[-1]), strict=True)):
            nxt = xs[j + 1] if j + 1 < len(xs) else (datetime.fromtimestamp(end / 1000, UTC) + tz)
            _, mapped = _mapped(p.mappings, "true" if v is True else "false" if v is False else v)
            color = mapped or _step_color(
                p.thresholds.steps, v if isinstance(v, int | float) else None
            )
            ax.barh(i, _date_num(nxt) - _date_num(t), left=_date_num(t), color=color, height=0.8)
    ax.set_yticks(range(len(series)), [_label(q, f) for f in series])
    ax.xaxis_date()
    ax.xaxis.set_major_formatter(_date_format("%H:%M"))


def _date_format(fmt: str) -> Any:
    import matplotlib.dates as mdates

    return mdates.DateFormatter(fmt)  # type: ignore[no-untyped-call]


def _date_num(t: datetime) -> float:
    import matplotlib.dates as mdates

    return float(mdates.date2num(t))  # type: ignore[no-untyped-call]


def _nothing(ax: Any, *_: Any) -> None:
    ax.axis("off")


_DRAWERS: dict[str, Any] = {
    "timeseries": _timeseries,
    "stat": _stat,
    "table": _table,
    "geomap": _geomap,
    "bargauge": _bargauge,
    "state-timeline": _state_timeline,
}

"""What Grafana does with our dashboards, done here: fill a query's macros and template
variables the way Grafana's InfluxDB data source does (so tests and the README pictures
run exactly the queries users' panels run), and upload dashboards over Grafana's HTTP API
(``sitewatch dashboards push``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dashboards.model import DATASOURCE_UID, Dashboard, Json
from sitewatch.core.influx import InfluxClient

#: Grafana's interval rounding (kbn.roundInterval): below the bound -> this interval, ms
_ROUND = (
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (180_000, 120_000),
    (450_000, 300_000),
    (1_050_000, 600_000),
    (1_500_000, 900_000),
    (2_700_000, 1_200_000),
    (5_400_000, 1_800_000),
    (9_000_000, 3_600_000),
    (16_200_000, 7_200_000),
    (27_000_000, 18_000_000),
    (43_200_000, 36_000_000),
    (64_800_000, 43_200_000),
    (129_600_000, 86_400_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)
_UNITS_MS = {
    "ms": 1,
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
    "y": 31_536_000_000,
}
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|{}\[\]/]")


def round_interval(ms: float) -> int:
    for bound, interval in _ROUND:
        if ms < bound:
            return interval
    return 31_536_000_000


def parse_interval(text: str) -> int:
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if m is None:
        raise ValueError(f"not an interval: {text!r}")
    return int(m.group(1)) * _UNITS_MS[m.group(2)]


def format_interval(ms: int) -> str:
    for unit in ("y", "w", "d", "h", "m", "s"):
        if ms % _UNITS_MS[unit] == 0:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"


def default_range(time_from: str, end_ms: int) -> tuple[int, int]:
    """The range a dashboard opens on (``now-6h``) as (start, end) ms, ending at ``end_ms``."""
    if not time_from.startswith("now-"):
        raise ValueError(f"not a relative range: {time_from!r}")
    return end_ms - parse_interval(time_from[4:]), end_ms


def interval_ms(
    start_ms: int, end_ms: int, *, max_points: int = 1000, min_interval: str = ""
) -> int:
    """``$__interval``: the range over the panel's data points, rounded as Grafana rounds
    it, never below the panel's minimum interval."""
    ms = round_interval((end_ms - start_ms) / max_points)
    return max(ms, parse_interval(min_interval)) if min_interval else ms


@dataclass(frozen=True)
class Selection:
    """A template variable's current values, and whether it is multi-value or has All
    (then Grafana formats values as a regex alternation)."""

    values: tuple[str, ...]
    regex: bool = True

    def format(self) -> str:
        if not self.regex:
            return self.values[0] if self.values else ""
        escaped = [_REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), v) for v in self.values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _literal(text: str) -> Callable[[re.Match[str]], str]:
    return lambda _m: text


def interpolate(
    sql: str,
    *,
    start_ms: int,
    end_ms: int,
    variables: Mapping[str, Selection] | None = None,
    min_interval: str = "",
    max_points: int = 1000,
) -> str:
    """The query Grafana sends to InfluxDB for this range and these variable values."""
    step = interval_ms(start_ms, end_ms, max_points=max_points, min_interval=min_interval)
    out = (
        sql.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
        .replace("$__interval_ms", str(step))
        .replace("$__interval", format_interval(step))
    )
    for name, sel in sorted((variables or {}).items(), key=lambda kv: -len(kv[0])):
        # a function as the replacement: the value is taken as it is, never as a template
        out = re.sub(rf"\$(?:{{{name}}}|{name}\b)", _literal(sel.format()), out)
    left = re.findall(r"\$(?!tag_)[A-Za-z_]\w*", out)
    if left:
        raise ValueError(f"unfilled variables {sorted(set(left))} in {out!r}")
    return out


async def variable_values(
    client: InfluxClient,
    d: Dashboard,
    start_ms: int,
    end_ms: int,
    *,
    pick: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Selection]:
    """Each variable's options from its own query, in order (``device`` depends on
    ``site``), and the values Grafana starts with: All, or the first option, unless
    ``pick`` chooses them. A variable without options gets none (its queries then
    match nothing)."""
    chosen: dict[str, Selection] = {}
    for v in d.variables:
        rows = await client.series(
            interpolate(v.query, start_ms=start_ms, end_ms=end_ms, variables=chosen)
        )
        options = sorted({str(r["value"]) for r in rows})
        values = tuple(options) if v.include_all else tuple(options[:1])
        if pick and v.name in pick:
            values = tuple(o for o in options if o in pick[v.name])
        chosen[v.name] = Selection(values, regex=v.multi or v.include_all)
    return chosen


# -- pushing to a running Grafana --------------------------------------------------------


def datasource(
    *, url: str, database: str = "sitewatch", token: str = "", name: str = "SiteWatch InfluxDB"
) -> Json:
    """The InfluxDB data source, InfluxQL over the v1 ``/query`` (InfluxDB 1.x, 2.x, 3.x).
    The same definition goes into the provisioning file (with ``$INFLUX_TOKEN``)."""
    ds: Json = {
        "name": name,
        "uid": DATASOURCE_UID,
        "type": "influxdb",
        "access": "proxy",
        "url": url,
        "isDefault": True,
        "jsonData": {"dbName": database, "httpMode": "POST", "httpHeaderName1": "Authorization"},
    }
    if token:
        ds["secureJsonData"] = {"httpHeaderValue1": f"Token {token}"}
    return ds


@dataclass(frozen=True)
class PushResult:
    folder_uid: str
    dashboards: tuple[str, ...]
    datasource: str | None


def push(
    api: Any,
    dashboards: Sequence[Dashboard],
    *,
    folder: str = "SiteWatch",
    folder_uid: str = "sitewatch",
    source: Json | None = None,
    message: str = "sitewatch dashboards push",
) -> PushResult:
    """Create or update the folder, the data source (if given) and every dashboard.
    ``api`` is a ``grafana_client.GrafanaApi``; its errors propagate."""
    from grafana_client.client import GrafanaClientError

    try:
        api.folder.get_folder(folder_uid)
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        api.folder.create_folder(folder, uid=folder_uid)
    ds_name = None
    if source is not None:
        try:
            api.datasource.get_datasource_by_uid(source["uid"])
            api.datasource.update_datasource_by_uid(source["uid"], source)
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.datasource.create_datasource(source)
        ds_name = str(source["name"])
    for d in dashboards:
        api.dashboard.update_dashboard(
            {
                "dashboard": {**d.to_json(), "id": None},
                "folderUid": folder_uid,
                "overwrite": True,
                "message": message,
            }
        )
    return PushResult(folder_uid, tuple(d.uid for d in dashboards), ds_name)

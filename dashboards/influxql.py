"""InfluxQL for the dashboards: the measurements SiteWatch writes (docs/ingest.md, the
dashboard feed in docs/alerts.md) and the filters every panel shares.

Queries keep Grafana's macros (``$timeFilter``, ``$__interval``) and template variables
(``$site``, ``$device``) for Grafana to fill; ``dashboards.grafana.interpolate``
fills them the same way for the tests and the README pictures.
"""

from __future__ import annotations

from collections.abc import Sequence

#: measurements written by ingest (one per device profile) and by the alert service
ALERTS = "alerts"
ATTENDANCE = "attendance"
GATEWAY_STATUS = "gateway_status"
LIMITS = "limits"
SITE_SUMMARY = "site_summary"
TEAM_HOURS = "attendance_team"
#: how far back the open-alert list looks for an alert's last change
OPEN_ALERTS_WINDOW = "30d"
#: how far back a gateway's last status is looked for (sent when its link changes only)
STATUS_WINDOW = "365d"


def q(name: str) -> str:
    """An identifier, double-quoted."""
    return '"' + name.replace('"', '\\"') + '"'


def is_var(var: str) -> str:
    """``"var" =~ /^$var$/``: the tag matches the variable (one value, several, or All)."""
    return f"{q(var)} =~ /^${var}$/"


def where(*conditions: str, time: bool = True) -> str:
    parts = [*conditions, "$timeFilter"] if time else list(conditions)
    return " WHERE " + " AND ".join(parts) if parts else ""


def group_by(*tags: str, interval: str | None = "$__interval", fill: str = "none") -> str:
    keys = ([f"time({interval})"] if interval else []) + [q(t) for t in tags]
    if not keys:
        return ""
    return " GROUP BY " + ", ".join(keys) + (f" fill({fill})" if interval else "")


def select(
    exprs: Sequence[tuple[str, str]],
    measurement: str,
    conditions: Sequence[str] = (),
    *,
    by: Sequence[str] = (),
    interval: str | None = "$__interval",
    fill: str = "none",
    time: bool = True,
    tail: str = "",
) -> str:
    """``SELECT expr AS alias, ... FROM measurement WHERE ... GROUP BY ...``"""
    cols = ", ".join(f"{e} AS {q(a)}" if a else e for e, a in exprs)
    source = measurement if measurement.startswith(("/", "(")) else q(measurement)
    return (
        f"SELECT {cols} FROM {source}"
        f"{where(*conditions, time=time)}{group_by(*by, interval=interval, fill=fill)}{tail}"
    )


def any_of(measurements: Sequence[str]) -> str:
    """A FROM clause over several measurements: ``/^(a|b)$/``."""
    return "/^(" + "|".join(measurements) + ")$/"


def tag_values(measurement: str, key: str, *conditions: str) -> str:
    """A template variable's query."""
    cond = " WHERE " + " AND ".join(conditions) if conditions else ""
    return f"SHOW TAG VALUES FROM {q(measurement)} WITH KEY = {q(key)}{cond}"


def latest_per_site(fields: Sequence[str], *, agg: str = "last") -> str:
    """The feed's latest value of each field per site in the range (a subquery)."""
    cols = ", ".join(f"{agg}({q(f)}) AS {q(f)}" for f in fields)
    return (
        f"SELECT {cols} FROM {q(SITE_SUMMARY)} WHERE {is_var('site')} AND $timeFilter "
        f"GROUP BY {q('site')}"
    )


def county_total(field: str) -> str:
    """The sum over the selected sites of each site's latest value of ``field``."""
    return f"SELECT sum({q(field)}) AS {q(field)} FROM ({latest_per_site([field])})"


def open_alerts(*conditions: str) -> str:
    """Alerts whose last change is not their resolution: each alert slot (site, device,
    group) and the columns of its last event."""
    inner = select(
        [
            ('last("state")', "state"),
            ('"title"', ""),
            ('"severity"', ""),
            ('"level"', ""),
            ('"rule"', ""),
            ('"event"', ""),
            ('"value"', ""),
            ('"limit"', ""),
            ('"actor"', ""),
            ('"raised_at"', ""),
        ],
        ALERTS,
        [*conditions, f"time > now() - {OPEN_ALERTS_WINDOW}"],
        by=("site", "device", "group"),
        interval=None,
        time=False,
    )
    return (
        'SELECT "state", "severity", "level", "title", "rule", "value", "limit", '
        f'"event", "actor", "raised_at" FROM ({inner}) WHERE "state" != \'resolved\' '
        f'GROUP BY "site", "device"'
    )

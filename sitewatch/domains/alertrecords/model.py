"""What an alert is, and the message every output gets when one changes.

The same :class:`AlertEvent` is published on ``{p}/{site}/alerts``, posted to generic
webhooks, written to InfluxDB's ``alerts`` measurement and kept in each history entry,
so a display, a webhook receiver and an auditor all see the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import msgspec


class State(StrEnum):
    ACTIVE = "active"  # the condition holds
    CLEARING = "clearing"  # it cleared; resolves once it stays clear for the hold time
    RESOLVED = "resolved"


class Level(StrEnum):
    """Graded handling: the site handles an alert first; unacknowledged past a time it
    goes to the county bureau."""

    SITE = "site"
    COUNTY = "county"


class EventKind(StrEnum):
    RAISED = "raised"
    ESCALATED = "escalated"  # worse severity (warning -> alarm) or level (site -> county)
    CLEARED = "cleared"  # the condition cleared; the hold time runs
    REACTIVATED = "reactivated"  # it came back within the hold time: the same alert
    RESOLVED = "resolved"
    ACKNOWLEDGED = "acknowledged"
    LATE = "late"  # a record from late (backlog) readings; never live


SEVERITY_RANK = {"warning": 1, "alarm": 2}

Scalar = float | bool | str | None


class AlertEvent(msgspec.Struct, kw_only=True):
    """One change of one alert, with the alert's state after it."""

    v: Literal[1] = 1
    event: EventKind
    at: int  # ms since the epoch: when this change happened
    actor: str  # "sitewatch" or the person who acknowledged / resolved
    id: str
    site: str
    gateway: str
    device: str
    profile: str
    rule: str  # the rule whose condition set the current severity
    group: str  # what the alert is raised once for (rule group or id)
    severity: Literal["warning", "alarm"]
    level: Level
    state: State
    late: bool
    title: str
    value: Scalar
    limit: Scalar
    raised_at: int
    cleared_at: int | None = None
    resolved_at: int | None = None
    acked_at: int | None = None
    acked_by: str | None = None
    ack_comment: str | None = None
    resolved_by: str | None = None
    resolve_comment: str | None = None


event_encoder = msgspec.json.Encoder()
event_decoder = msgspec.json.Decoder(AlertEvent)


@dataclass(slots=True)
class Change:
    """One change of one alert, as the store records it."""

    event: EventKind
    alert_id: str
    at: int
    site: str
    gateway: str
    device: str
    profile: str
    group: str
    rule: str = ""
    severity: str = ""
    title: str = ""
    value: Any = None
    limit: Any = None
    late: bool = False


@dataclass(slots=True)
class OpenAlert:
    """What the engine remembers of an alert that is not resolved."""

    id: str
    site: str
    gateway: str
    device: str
    profile: str
    group: str
    severity: str
    state: State
    raised_at: int
    cleared_at: int | None = None

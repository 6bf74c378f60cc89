"""The ``alerts`` table: one row per alert with its current state (at most one open alert
per site, device and condition, enforced by a partial unique index), and a row read back
as the event model and as an open alert."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from sitewatch.core.db import Base
from sitewatch.domains.alertrecords.model import AlertEvent, EventKind, Level, OpenAlert, State

#: the actor of every change the alert service makes (not a person)
SYSTEM_ACTOR = "sitewatch"


class AlertRow(Base):
    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    profile: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    group: Mapped[str] = mapped_column("rule_group", String(64))
    severity: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    late: Mapped[bool] = mapped_column(Boolean)
    title: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(Text)  # JSON: a number, bool, string or null
    limit: Mapped[str] = mapped_column("limit_value", Text)
    raised_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    cleared_at: Mapped[int | None] = mapped_column(BigInteger)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)
    acked_at: Mapped[int | None] = mapped_column(BigInteger)
    acked_by: Mapped[str | None] = mapped_column(String(64))
    ack_comment: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolve_comment: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index(
            "alerts_one_open",
            "site",
            "device",
            "rule_group",
            unique=True,
            sqlite_where=text("state != 'resolved'"),
            postgresql_where=text("state != 'resolved'"),
        ),
        Index("alerts_state", "state", "level"),
        Index("alerts_site_raised", "site", "raised_at"),
        Index("alerts_raised", "raised_at", "id"),  # the county-wide list, newest first
    )


def json_text(value: Any) -> str:
    """A reading's value or limit as the row keeps it (JSON)."""
    return json.dumps(value, ensure_ascii=False)


def to_event(row: AlertRow, event: EventKind, at: int, actor: str) -> AlertEvent:
    return AlertEvent(
        event=event,
        at=at,
        actor=actor,
        id=row.id,
        site=row.site,
        gateway=row.gateway,
        device=row.device,
        profile=row.profile,
        rule=row.rule,
        group=row.group,
        severity=row.severity,  # type: ignore[arg-type]
        level=Level(row.level),
        state=State(row.state),
        late=row.late,
        title=row.title,
        value=json.loads(row.value),
        limit=json.loads(row.limit),
        raised_at=row.raised_at,
        cleared_at=row.cleared_at,
        resolved_at=row.resolved_at,
        acked_at=row.acked_at,
        acked_by=row.acked_by,
        ack_comment=row.ack_comment,
        resolved_by=row.resolved_by,
        resolve_comment=row.resolve_comment,
    )


def row_state(row: AlertRow) -> tuple[Any, ...]:
    """The fields of a row that its history must reproduce."""
    e = to_event(row, EventKind.RAISED, 0, "")
    return event_state(e)


def event_state(e: AlertEvent) -> tuple[Any, ...]:
    """The fields of an event that its alert's row must hold (see :func:`row_state`)."""
    return (
        e.site,
        e.gateway,
        e.device,
        e.profile,
        e.rule,
        e.group,
        e.severity,
        e.level,
        e.state,
        e.late,
        e.title,
        e.value,
        e.limit,
        e.raised_at,
        e.cleared_at,
        e.resolved_at,
        e.acked_at,
        e.acked_by,
        e.ack_comment,
        e.resolved_by,
        e.resolve_comment,
    )


def to_open_alert(r: AlertRow) -> OpenAlert:
    return OpenAlert(
        r.id,
        r.site,
        r.gateway,
        r.device,
        r.profile,
        r.group,
        r.severity,
        State(r.state),
        r.raised_at,
        r.cleared_at,
    )

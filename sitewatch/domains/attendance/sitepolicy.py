"""Each site's attendance policy, kept in the registry (set with the API or
``sitewatch attendance policy``); a site without one uses the defaults."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from sitewatch.core.db import Base
from sitewatch.domains.attendance.policy import AttendancePolicy


class PolicyRow(Base):
    __tablename__ = "attendance_policies"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[int] = mapped_column(BigInteger)


def get_policy(s: Session, site: str) -> AttendancePolicy:
    row = s.get(PolicyRow, site)
    return AttendancePolicy() if row is None else AttendancePolicy.model_validate(row.policy)


def put_policy(s: Session, site: str, policy: AttendancePolicy, now: int) -> None:
    data = policy.model_dump(mode="json")
    row = s.get(PolicyRow, site)
    if row is None:
        s.add(PolicyRow(site=site, policy=data, updated_at=now))
    else:
        row.policy, row.updated_at = data, now
    s.flush()

"""The text of an alert event for people: the title and markdown body the notifiers send
(WeCom, DingTalk and webhooks), Chinese first then English, times in the site's time;
the measurement worded by :mod:`sitewatch.domains.alertrecords.wording`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone

from sitewatch.core.profiles.model import Profile
from sitewatch.core.text import one_line
from sitewatch.domains.alertrecords.model import AlertEvent, EventKind, Level
from sitewatch.domains.alertrecords.wording import word_measurement

_SEVERITY = {"alarm": "告警 alarm", "warning": "预警 warning"}
_SEVERITY_SHORT = {"alarm": "告警", "warning": "预警"}
_EVENT = {
    EventKind.RAISED: "新告警 raised",
    EventKind.ESCALATED: "升级 escalated",
    EventKind.RESOLVED: "已解除 resolved",
    EventKind.LATE: "补报 late (record from delayed data)",
    EventKind.ACKNOWLEDGED: "已确认 acknowledged",
    EventKind.CLEARED: "条件消失 cleared",
    EventKind.REACTIVATED: "再次触发 reactivated",
}
_EVENT_SHORT = {
    EventKind.RAISED: "新告警",
    EventKind.ESCALATED: "升级",
    EventKind.RESOLVED: "已解除",
    EventKind.LATE: "补报",
    EventKind.ACKNOWLEDGED: "已确认",
    EventKind.CLEARED: "条件消失",
    EventKind.REACTIVATED: "再次触发",
}
_LEVEL = {Level.SITE: "现场 site", Level.COUNTY: "县住建局 county"}
_BR = "  \n"  # a hard line break in both robots' markdown


def render_markdown(
    event: AlertEvent,
    *,
    utc_offset_h: float = 8.0,
    profiles: Mapping[str, Profile] | None = None,
) -> tuple[str, str]:
    """``(title, markdown body)`` of an alert event, Chinese first then English.

    Short lines for a phone screen; times in the site's local time (``utc_offset_h``,
    China is UTC+8); the value and limit worded with the units and meaning of the
    alert's rule in ``profiles`` (plain numbers without them). Free text (rule title,
    acknowledgement comment) is put on one line and capped so the message stays well
    inside the robots' size limits.
    """
    words = word_measurement(
        profiles, profile=event.profile, rule=event.rule, value=event.value, limit=event.limit
    )
    tz = timezone(timedelta(hours=utc_offset_h))
    rule_title = one_line(event.title, 120)
    title = (
        f"【{_SEVERITY_SHORT[event.severity]}·{_EVENT_SHORT[event.event]}】"
        f"{event.site} {rule_title}"
    )
    lines = [
        f"### 【{_SEVERITY[event.severity]}】{rule_title}",
        f"**{_EVENT[event.event]}**",
        f"工地 site: {event.site}",
        f"设备 device: {event.device} ({event.profile})",
        f"规则 rule: {event.rule}",
        f"数值: {words.zh}",
        f"value: {words.en}",
        *([f"依据 standard: {words.standard}"] if words.standard else []),
        f"级别 level: {_LEVEL[event.level]}",
        f"时间 time: {_local_time(event.at, tz)}",
    ]
    if event.event is not EventKind.RAISED:
        lines.append(f"首次 raised: {_local_time(event.raised_at, tz)}")
    if event.actor != "sitewatch":
        lines.append(f"操作人 by: {one_line(event.actor, 64)}")
    if event.event is EventKind.ACKNOWLEDGED and event.ack_comment:
        lines.append(f"备注 comment: {one_line(event.ack_comment, 300)}")
    lines.append(f"编号 id: {event.id} · SiteWatch")
    return title, _BR.join(lines)


def _local_time(ms: int, tz: timezone) -> str:
    local = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(tz)
    offset = tz.utcoffset(None)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    zone = f"UTC{sign}{hours}" + (f":{mins:02d}" if mins else "")
    return f"{local:%Y-%m-%d %H:%M:%S} ({zone})"

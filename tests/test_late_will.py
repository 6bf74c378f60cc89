"""A late Last Will (docs/wire-contract.md#status-and-last-will-retained): the alert
service, one of the platform's consumers of the status topic, is not fooled by a will of
a replaced session of the same boot that the gateway's next status follows, and still
raises a real loss of the link (pure logic, default gateway profile)."""

from __future__ import annotations

import itertools

from alerts.engine import AlertEngine
from edge.config import PublishSettings
from sitewatch.core.profiles import load_profiles
from sitewatch.domains.alertrecords.model import EventKind
from sitewatch.domains.rulebook import RuleBook

T0 = 1_780_000_000_000
STATUS_MS = int(PublishSettings().status_interval_s * 1000)


def engine() -> AlertEngine:
    counter = itertools.count(1)
    return AlertEngine(RuleBook(load_profiles(), []), hold_s=10, new_id=lambda: f"A{next(counter)}")


def ticks(e: AlertEngine, start: int, end: int) -> list[tuple[EventKind, str]]:
    return [(c.event, c.group) for t in range(start, end + 1, 1000) for c in e.tick(t)]


def test_a_late_will_followed_by_the_next_status_raises_nothing() -> None:
    e = engine()
    assert e.status("S1", "GW1", "online", 7, T0) == []  # the new session
    e.status("S1", "GW1", "offline", 7, T0 + 500)  # the old session's will, late
    assert ticks(e, T0 + 1000, T0 + STATUS_MS) == []
    e.status("S1", "GW1", "online", 7, T0 + STATUS_MS)  # the gateway's next status
    assert ticks(e, T0 + STATUS_MS, T0 + 5 * STATUS_MS) == []
    assert not e.gateway_offline("S1", "GW1")


def test_a_real_loss_of_the_link_is_still_raised() -> None:
    e = engine()
    e.status("S1", "GW1", "online", 7, T0)
    e.status("S1", "GW1", "offline", 7, T0 + 500)
    raised = ticks(e, T0 + 1000, T0 + 5 * STATUS_MS)
    assert raised == [(EventKind.RAISED, "offline")]

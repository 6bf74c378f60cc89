"""The alert store on SQLite and on a real PostgreSQL: lifecycle rows, the hash-chained
history and its verification, acknowledgement, escalation to the county, the outbox."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from sitewatch.domains.alertrecords.model import Change, EventKind, event_decoder
from sitewatch.domains.alertrecords.store import AlertError, AlertStore

T0 = 1_780_000_000_000


@pytest.fixture
def store(database_url: str) -> Iterator[AlertStore]:
    s = AlertStore(
        database_url, router=lambda e: ["mqtt", "hook"] if e.severity == "alarm" else ["mqtt"]
    )
    s.create_schema()
    yield s
    s.dispose()


def change(event: EventKind, alert_id: str, at: int, **kw: Any) -> Change:
    base: dict[str, Any] = dict(
        site="S1", gateway="GW1", device="TC1", profile="tower_crane", group="load"
    )
    base.update(kw)
    return Change(event, alert_id, at, **base)


RAISE = dict(rule="load_warning", severity="warning", title="Load at 90 %", value=92.0, limit=90.0)


def test_lifecycle_history_and_verify(store: AlertStore, database_url: str) -> None:
    out = store.apply([change(EventKind.RAISED, "a1", T0, **RAISE)], T0)
    assert [o.target for o in out] == ["mqtt"]
    out = store.apply(
        [
            change(
                EventKind.ESCALATED,
                "a1",
                T0 + 1000,
                rule="load_alarm",
                severity="alarm",
                title="Overload",
                value=101.0,
                limit=100.0,
            )
        ],
        T0 + 1000,
    )
    assert sorted(o.target for o in out) == ["hook", "mqtt"]
    ev, _ = store.acknowledge("a1", "officer-wang", "crane stopped, load reduced", T0 + 2000)
    assert (ev.acked_by, ev.ack_comment, ev.severity) == (
        "officer-wang",
        "crane stopped, load reduced",
        "alarm",
    )
    with pytest.raises(AlertError, match="acknowledged by officer-wang"):
        store.acknowledge("a1", "someone", "", T0 + 2500)
    store.apply(
        [change(EventKind.CLEARED, "a1", T0 + 3000), change(EventKind.RESOLVED, "a1", T0 + 9000)],
        T0 + 9000,
    )
    row = store.get("a1")
    assert row is not None and (row.state, row.resolved_at) == ("resolved", T0 + 9000)
    hist = store.history("a1")
    assert [h.event for h in hist] == ["raised", "escalated", "acknowledged", "cleared", "resolved"]
    assert [h.actor for h in hist][2] == "officer-wang"
    assert event_decoder.decode(hist[-1].data).state == "resolved"
    report = store.verify()
    assert report.ok, report.problems
    assert (report.entries, report.alerts) == (5, 1)
    assert store.open_alerts() == []


def test_tampering_is_detected(store: AlertStore, database_url: str) -> None:
    store.apply(
        [
            change(EventKind.RAISED, "a1", T0, **RAISE),
            change(EventKind.RAISED, "a2", T0, device="TC2", **RAISE),
        ],
        T0,
    )
    store.acknowledge("a1", "officer-wang", "ok", T0 + 1000)
    store.apply([change(EventKind.CLEARED, "a2", T0 + 2000)], T0 + 2000)
    assert store.verify().ok
    eng = create_engine(database_url)
    with eng.begin() as c:  # someone edits who acknowledged, in the history
        c.execute(
            text(
                "UPDATE alert_history SET data = replace(data, 'officer-wang', "
                "'officer-li') WHERE n = 3"
            )
        )
    problems = store.verify().problems
    assert any("entry 3: content does not match" in p for p in problems), problems
    with eng.begin() as c:  # put it back, then remove an entry instead
        c.execute(
            text(
                "UPDATE alert_history SET data = replace(data, 'officer-li', "
                "'officer-wang') WHERE n = 3"
            )
        )
    assert store.verify().ok
    with eng.begin() as c:
        c.execute(text("DELETE FROM alert_history WHERE n = 2"))
    assert any("entry 2 missing" in p for p in store.verify().problems)
    eng.dispose()


def test_rows_edited_behind_the_history_and_truncation_are_detected(
    store: AlertStore, database_url: str
) -> None:
    store.apply([change(EventKind.RAISED, "a1", T0, **RAISE)], T0)
    store.acknowledge("a1", "officer-wang", "ok", T0 + 1000)
    eng = create_engine(database_url)
    with eng.begin() as c:
        c.execute(text("UPDATE alerts SET severity = 'warning', acked_by = 'nobody'"))
    assert any("row differs from its history" in p for p in store.verify().problems)
    with eng.begin() as c:
        c.execute(text("UPDATE alerts SET acked_by = 'officer-wang'"))
        c.execute(text("DELETE FROM alert_history WHERE n = 2"))
    assert any("removed from the end" in p for p in store.verify().problems)
    eng.dispose()


def test_escalation_to_county_unless_acknowledged(store: AlertStore) -> None:
    store.apply(
        [
            change(EventKind.RAISED, "a1", T0, **RAISE),
            change(EventKind.RAISED, "a2", T0, device="TC2", **RAISE),
            change(EventKind.RAISED, "a3", T0, device="TC3", **{**RAISE, "severity": "alarm"}),
        ],
        T0,
    )
    store.acknowledge("a2", "officer-wang", "", T0 + 10)
    after = {"warning": 60.0, "alarm": 10.0}
    events, _ = store.escalate_due(T0 + 30_000, after)
    assert [(e.id, e.level) for e in events] == [("a3", "county")]
    events, _ = store.escalate_due(T0 + 61_000, after)
    assert [(e.id, e.level, e.event) for e in events] == [("a1", "county", "escalated")]
    assert store.escalate_due(T0 + 120_000, after) == ([], [])
    assert store.verify().ok


def test_one_open_alert_per_condition_is_enforced(store: AlertStore) -> None:
    from sqlalchemy.exc import IntegrityError

    store.apply([change(EventKind.RAISED, "a1", T0, **RAISE)], T0)
    with pytest.raises(IntegrityError):
        store.apply([change(EventKind.RAISED, "a2", T0 + 1, **RAISE)], T0 + 1)
    assert store.verify().ok  # the failed transaction left nothing behind
    store.apply([change(EventKind.LATE, "a3", T0 - 5000, **RAISE)], T0 + 2)  # late: resolved


def test_apply_each_leaves_out_what_the_store_refuses_and_stores_the_rest(
    store: AlertStore,
) -> None:
    """A batch with a change the store can never take (here a second open alert for a
    condition, and an id already used) is stored change by change: the refused changes,
    and the later changes of their alerts, are left out and reported; the others are
    stored, with a history chain that still verifies and outbox rows for them only."""
    from sqlalchemy.exc import IntegrityError

    store.apply([change(EventKind.RAISED, "a1", T0, **RAISE)], T0)
    batch = [
        change(EventKind.RAISED, "b1", T0 + 1000, **RAISE),  # TC1's load: a1 is open
        change(EventKind.RAISED, "c1", T0 + 1000, device="TC2", **RAISE),
        change(
            EventKind.ESCALATED,
            "b1",
            T0 + 1500,
            rule="load_alarm",
            severity="alarm",
            title="Overload",
            value=101.0,
            limit=100.0,
        ),
        change(EventKind.RAISED, "a1", T0 + 1600, device="TC3", **RAISE),  # a1 exists
        change(EventKind.CLEARED, "a1", T0 + 2000),
        change(EventKind.RAISED, "d1", T0 + 2000, device="TC4", **RAISE),
    ]
    with pytest.raises(IntegrityError):
        store.apply(batch, T0 + 2000)
    out, refused = store.apply_each(batch, T0 + 2000)
    assert [(r.change.event, r.change.alert_id, r.first) for r in refused] == [
        ("raised", "b1", True),
        ("escalated", "b1", False),
        ("raised", "a1", True),
        ("cleared", "a1", False),
    ]
    assert "alerts" in refused[0].reason and "alerts" in refused[2].reason, refused
    assert store.get("b1") is None
    a1 = store.get("a1")
    assert a1 is not None and (a1.device, a1.state) == ("TC1", "active")
    assert [(h.alert_id, h.event) for h in store.history()] == [
        ("a1", "raised"),
        ("c1", "raised"),
        ("d1", "raised"),
    ]
    assert sorted(event_decoder.decode(o.payload).id for o in out) == ["c1", "d1"]
    assert sorted(event_decoder.decode(o.payload).id for o in store.pending(set())) == [
        "a1",
        "c1",
        "d1",
    ]  # a1's from its first apply: nothing of a refused change
    report = store.verify()
    assert report.ok, report.problems
    assert (report.entries, report.alerts) == (3, 3)
    # nothing refused: the same as apply
    out, refused = store.apply_each([change(EventKind.CLEARED, "a1", T0 + 3000)], T0 + 3000)
    assert refused == [] and [event_decoder.decode(o.payload).event for o in out] == ["cleared"]
    assert store.verify().ok


def test_outbox_pending_delivered_and_failed(store: AlertStore) -> None:
    store.apply([change(EventKind.RAISED, "a1", T0, **{**RAISE, "severity": "alarm"})], T0)
    rows = store.pending(set())
    assert sorted(r.target for r in rows) == ["hook", "mqtt"]
    mqtt_row = next(r for r in rows if r.target == "mqtt")
    store.delivered([mqtt_row.id])
    hook_row = next(r for r in rows if r.target == "hook")
    store.attempt_failed(hook_row.id, "HTTP 400", permanent=True)
    assert store.pending(set()) == []
    assert store.outbox_counts() == {"hook": (0, 1)}


def test_cli_verify_exit_codes(store: AlertStore, database_url: str) -> None:
    store.apply([change(EventKind.RAISED, "a1", T0, **RAISE)], T0)
    cmd = [
        sys.executable,
        "-m",
        "sitewatch.programs.cli",
        "alerts",
        "verify",
        "--database-url",
        database_url,
    ]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "1 history entries, 1 alerts: intact" in ok.stdout
    eng = create_engine(database_url)
    with eng.begin() as c:
        c.execute(text("UPDATE alert_history SET at = at + 1"))
    eng.dispose()
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "entry 1: content does not match its hash" in bad.stdout

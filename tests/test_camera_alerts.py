"""Camera alerts: camera events and crane slewing through the CameraWatch and the alert
engine (pure logic), then once through the alert service against the suite's real
Mosquitto and SQLite."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from conftest import RunningAlerts, now_ms, wait_for
from test_alerts_e2e import MARK, AlertListener, later_alert
from test_ingest_integration import batch, mosquitto_pub

from alerts.camera import CameraWatch, slew_between, zone_device
from alerts.engine import AlertEngine
from sitewatch.core import contract
from sitewatch.core.profiles import load_profiles
from sitewatch.domains.alertrecords.model import Change
from sitewatch.domains.alertrecords.settings import AlertSettings, CameraSettings
from sitewatch.domains.attendance.watch import Derived
from sitewatch.domains.rulebook import RuleBook
from sitewatch.programs.localstack import MosquittoServer

BOOK = RuleBook(load_profiles(), [])
T = 1_780_000_000_000  # ms: the tests' "now"
S = 1000


def cam(
    seq: int,
    event: str,
    ts: int,
    *,
    zone: str | None = "crane-swing",
    count: int | None = None,
    device: str = "CAM03",
) -> contract.CameraItem:
    item: dict[str, Any] = {"device": device, "ts": ts, "seq": seq, "event": event}
    if zone is not None:
        item["zone"] = zone
    if count is not None:
        item["count"] = count
    return msgspec.convert(item, contract.CameraItem)


class Site:
    """A site with cameras and cranes, the watch and the engine, as the service wires
    them (derived readings stamped with the service's clock)."""

    def __init__(self, **settings: Any) -> None:
        self.watch = CameraWatch(CameraSettings(**settings))
        self.engine = AlertEngine(BOOK, hold_s=300)
        self.seq = 0
        self.derived: list[Derived] = []

    def feed(self, derived: list[Derived], now: int) -> list[tuple[str, str, str]]:
        self.derived += derived
        changes: list[Change] = []
        for d in derived:
            self.seq += 1
            changes += self.engine.observe(
                d.site, d.gateway, d.device, d.profile, now, self.seq, d.values, now
            )
        return [(c.event.value, c.device, c.group) for c in changes]

    def camera(
        self, *items: contract.CameraItem, now: int | None = None
    ) -> list[tuple[str, str, str]]:
        t = now if now is not None else max(i.ts for i in items)
        return self.feed(self.watch.observe("S1", "GW1", list(items), t), t)

    def crane(
        self, ts: int, slew: float, *, crane: str = "TC01", site: str = "S1", now: int | None = None
    ) -> list[tuple[str, str, str]]:
        t = now if now is not None else ts
        return self.feed(self.watch.observe_crane(site, crane, ts, slew, t), t)

    def tick(self, now: int) -> list[tuple[str, str, str]]:
        return self.feed(self.watch.tick(now), now)


SWING = "CAM03-crane-swing"


def test_an_occurrence_raises_on_its_start_item_and_clears_on_its_end_item() -> None:
    site = Site()
    assert site.camera(cam(1, "no_helmet", T, zone="gate", count=2)) == [
        ("raised", "CAM03-gate", "no_helmet")
    ]
    assert site.derived[-1].values == {"no_helmet": 2}  # only what the camera reported
    assert site.camera(cam(2, "no_vest", T + S, zone="gate")) == [  # no count: 1 person
        ("raised", "CAM03-gate", "no_vest")
    ]
    assert site.camera(cam(3, "no_helmet", T + 5 * S, zone="gate", count=0)) == [
        ("cleared", "CAM03-gate", "no_helmet")
    ]
    # the engine's hold time applies as usual: resolved 300 s after it cleared
    assert site.engine.tick(T + 304 * S) == []
    assert [c.event.value for c in site.engine.tick(T + 305 * S)] == ["resolved"]


def test_fire_smoke_is_a_whole_frame_event_of_the_cameras_picture() -> None:
    site = Site()
    assert site.camera(cam(1, "fire_smoke", T, zone=None, count=1)) == [
        ("raised", "CAM03-picture", "fire_smoke")
    ]
    assert site.derived[-1].values["fire_smoke"] is True
    assert site.camera(cam(2, "fire_smoke", T + 60 * S, zone=None, count=0)) == [
        ("cleared", "CAM03-picture", "fire_smoke")
    ]


def test_a_resent_batch_and_an_unchanged_state_derive_nothing() -> None:
    site = Site()
    items = [
        cam(1, "intrusion", T, zone="pit-edge", count=1),
        cam(2, "no_helmet", T, zone="pit-edge", count=1),
    ]
    assert sorted(site.camera(*items)) == [
        ("raised", "CAM03-pit-edge", "intrusion"),
        ("raised", "CAM03-pit-edge", "no_helmet"),
    ]
    n = len(site.derived)
    assert site.camera(*items) == []  # the same (camera, seq): a resend
    assert len(site.derived) == n and site.watch.stats.duplicates == 2
    # a new item that changes nothing the profile holds: no reading at all
    assert site.camera(cam(3, "person_count", T + S, zone="pit-edge", count=4)) == []
    assert site.camera(cam(4, "intrusion", T + 2 * S, zone="pit-edge", count=1)) == []
    assert len(site.derived) == n
    # the same seq from another camera is another item
    assert site.camera(
        cam(1, "intrusion", T + 3 * S, zone="pit-edge", count=1, device="CAM04")
    ) == [("raised", "CAM04-pit-edge", "intrusion")]


def test_a_late_item_never_clears_or_reraises_what_holds_now() -> None:
    site = Site()
    assert site.camera(cam(10, "no_helmet", T, zone="gate")) == [
        ("raised", "CAM03-gate", "no_helmet")
    ]
    # the backlog of an outage, drained next to live data: an older occurrence's end
    assert site.camera(cam(5, "no_helmet", T - 60 * S, zone="gate", count=0), now=T) == []
    assert site.watch.stats.late == 1
    assert site.camera(cam(11, "no_helmet", T + S, zone="gate", count=0)) == [
        ("cleared", "CAM03-gate", "no_helmet")
    ]
    assert site.camera(cam(6, "no_helmet", T - 30 * S, zone="gate", count=1), now=T + 2 * S) == []


def test_person_first_then_the_crane_starts_slewing() -> None:
    site = Site()
    assert site.crane(T - 10 * S, 90.0) == []  # first reading: nothing to compare with
    assert site.camera(cam(1, "intrusion", T, count=1)) == [("raised", SWING, "intrusion")]
    assert site.crane(T + 5 * S, 90.4) == []  # below slew_min_deg: not slewing
    assert site.crane(T + 6 * S, 91.4) == [("raised", SWING, "crane_swing_intrusion")]
    assert site.derived[-1].values["crane_swing_intrusion"] is True
    assert site.crane(T + 7 * S, 92.4) == []  # still slewing: nothing changed
    # the person leaves: both clear
    assert sorted(site.camera(cam(2, "intrusion", T + 20 * S, count=0))) == [
        ("cleared", SWING, "crane_swing_intrusion"),
        ("cleared", SWING, "intrusion"),
    ]


def test_crane_slewing_then_the_person_enters() -> None:
    site = Site()
    site.crane(T, 10.0)
    site.crane(T + S, 12.0)  # slews
    # another crane of the same site, still: the site slewed all the same
    site.crane(T + 2 * S, 200.0, crane="TC02")
    assert sorted(site.camera(cam(1, "intrusion", T + 50 * S, count=2))) == [
        ("raised", SWING, "crane_swing_intrusion"),
        ("raised", SWING, "intrusion"),
    ]


def test_crane_slewed_longer_ago_than_the_window_is_not_slewing() -> None:
    site = Site()
    site.crane(T, 10.0)
    site.crane(T + S, 12.0)
    assert site.camera(cam(1, "intrusion", T + 62 * S, count=1)) == [("raised", SWING, "intrusion")]


def test_no_slewing_for_the_window_clears_the_crane_swing_alarm() -> None:
    site = Site()
    site.crane(T, 10.0)
    site.crane(T + S, 12.0)
    site.camera(cam(1, "intrusion", T + 2 * S, count=1))
    assert site.tick(T + 61 * S) == []  # slewed 60 s ago: still within the window
    assert site.tick(T + 62 * S) == [("cleared", SWING, "crane_swing_intrusion")]
    assert site.derived[-1].values["intrusion"] == 1  # the person is still there
    assert site.tick(T + 70 * S) == []
    # the crane slews again while the person is still in: back within the hold time
    site.crane(T + 80 * S, 12.0)  # still
    assert site.crane(T + 81 * S, 14.0) == [("reactivated", SWING, "crane_swing_intrusion")]


def test_a_crane_of_another_site_or_a_zone_that_is_no_swing_area_raises_no_swing_alarm() -> None:
    site = Site()
    site.crane(T, 10.0, site="S2")
    site.crane(T + S, 30.0, site="S2")
    assert site.camera(cam(1, "intrusion", T + 2 * S, count=1)) == [("raised", SWING, "intrusion")]
    site.crane(T + 3 * S, 10.0)
    site.crane(T + 4 * S, 30.0)
    assert site.camera(cam(2, "intrusion", T + 5 * S, zone="pit-edge", count=1)) == [
        ("raised", "CAM03-pit-edge", "intrusion")
    ]
    assert site.derived[-1].values["crane_swing_intrusion"] is False


def test_crane_swing_zones_are_glob_patterns_from_the_settings() -> None:
    site = Site(crane_swing_zones=["tc*-swing"])
    assert site.watch.is_crane_swing("TC1-Swing")  # case does not matter
    assert not site.watch.is_crane_swing("crane-swing")
    assert not site.watch.is_crane_swing(None)
    assert Site().watch.is_crane_swing("crane_swing_north")


def test_slewing_across_north_is_measured_the_short_way_round() -> None:
    assert slew_between(359.5, 0.5) == pytest.approx(1.0)
    assert slew_between(0.2, 359.9) == pytest.approx(0.3)
    assert slew_between(10.0, 190.0) == pytest.approx(180.0)
    site = Site()
    site.camera(cam(1, "intrusion", T, count=1))
    assert site.crane(T + S, 359.8) == []
    assert site.crane(T + 2 * S, 0.3) == []  # 0.5° across north: not slewing
    assert site.crane(T + 3 * S, 1.3) == [("raised", SWING, "crane_swing_intrusion")]


def test_a_late_or_resent_crane_reading_says_nothing_about_now() -> None:
    site = Site()
    site.camera(cam(1, "intrusion", T, count=1))
    site.crane(T + 10 * S, 50.0)
    assert site.crane(T + 5 * S, 80.0, now=T + 11 * S) == []  # late
    assert site.crane(T + 10 * S, 80.0) == []  # the same time again
    assert site.crane(T + 11 * S, 50.5) == []  # compared with 50.0, not 80.0


def test_slewing_stops_counting_at_the_ingest_clock_not_the_camera_item_time() -> None:
    """A camera item replayed from a queue, after the crane slewed longer ago than the
    window, raises no crane swing alarm (nothing is slewing now)."""
    site = Site()
    site.crane(T, 10.0)
    site.crane(T + S, 12.0)
    assert site.camera(cam(1, "intrusion", T + 2 * S, count=1), now=T + 120 * S) == [
        ("raised", SWING, "intrusion")
    ]


def test_zone_device_ids_stay_valid_identifiers() -> None:
    assert zone_device("CAM03", "crane-swing") == "CAM03-crane-swing"
    # not the camera's own id, which its camera_status readings use
    assert zone_device("CAM03", None) == "CAM03-picture"
    zone = "z" * 60  # CAM03-zzz… would be 66 characters
    digest = hashlib.sha256(zone.encode()).hexdigest()[:8]
    assert zone_device("CAM03", zone) == f"CAM03-{digest}"
    long_camera = "C" * 60
    dev = zone_device(long_camera, "gate")
    assert len(dev) == 64 and dev.startswith("C" * 55 + "-")
    assert dev != zone_device("C" * 59, "gate")  # not the same camera's first 55 chars
    site = Site()
    assert site.camera(cam(1, "no_helmet", T, zone=zone)) == [
        ("raised", f"CAM03-{digest}", "no_helmet")
    ]


def test_the_watch_derives_exactly_the_fields_of_the_profile() -> None:
    site = Site()
    site.camera(
        *(
            cam(n, event, T)
            for n, event in enumerate(
                ("no_helmet", "no_vest", "intrusion", "fire_smoke", "person_count"), start=1
            )
        )
    )
    assert site.derived[-1].values == {
        "no_helmet": 1,
        "no_vest": 1,
        "intrusion": 1,
        "crane_swing_intrusion": False,
        "fire_smoke": True,
    }
    assert set(site.derived[-1].values) == set(BOOK.profiles["camera_zone"].fields)


def test_after_a_restart_one_occurrence_ending_leaves_the_others_open() -> None:
    """The service restarted: its open alerts are taken over, the new watch knows no
    occurrence. The end of one must not clear the alerts of the others."""
    site = Site()
    assert sorted(
        site.camera(cam(1, "intrusion", T, zone="gate"), cam(2, "no_helmet", T, zone="gate"))
    ) == [("raised", "CAM03-gate", "intrusion"), ("raised", "CAM03-gate", "no_helmet")]
    site.watch = CameraWatch()  # the restart (the engine stands for the restored store)
    assert site.camera(cam(3, "no_helmet", T + 10 * S, zone="gate", count=0)) == [
        ("cleared", "CAM03-gate", "no_helmet")
    ]
    assert site.camera(cam(4, "intrusion", T + 20 * S, zone="gate", count=0)) == [
        ("cleared", "CAM03-gate", "intrusion")
    ]


def test_camera_settings_refuse_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError, match=r"camera\.slew_windw_s"):
        AlertSettings(camera={"slew_windw_s": 30})
    with pytest.raises(ValueError, match=r"camera\.slew_min_deg"):
        AlertSettings(camera={"slew_min_deg": 0})
    assert AlertSettings().camera == CameraSettings()


# -- through the alert service: real Mosquitto and SQLite ----------------------------------
async def test_crane_swing_intrusion_through_the_alert_service(
    start_alerts: Callable[..., Awaitable[RunningAlerts]],
    mosquitto: MosquittoServer,
    prefix: str,
) -> None:
    # MQTT out and the SQLite store; no InfluxDB output or dashboard feed
    alerts = await start_alerts(hold_s=60, influx_enabled=False, board_interval_s=0)
    svc = alerts.service
    t = now_ms()
    telemetry = f"{prefix}/S1/GW1/telemetry"
    camera = f"{prefix}/S1/GW2/camera"

    def crane(seq: int, ts: int, slew: float) -> dict[str, Any]:
        return {
            "device": "TC01",
            "profile": "tower_crane",
            "ts": ts,
            "seq": seq,
            "values": {"slew_deg": slew, "load_pct": 40.0},
        }

    async with AlertListener(mosquitto, prefix) as listener:
        # the crane slews (across north), then a worker without a hard hat walks into
        # the crane swing area
        mosquitto_pub(
            mosquitto, telemetry, batch(1, crane(1, t - 2000, 359.0), crane(2, t - 1000, 1.0))
        )
        await wait_for(lambda: svc.engine.stats.readings == 2, what="crane readings")
        mosquitto_pub(
            mosquitto,
            camera,
            batch(
                1,
                {
                    "device": "CAM03",
                    "ts": t,
                    "seq": 1,
                    "event": "intrusion",
                    "zone": "crane-swing",
                    "count": 1,
                    "confidence": 0.91,
                    "snapshot": "ab" * 32,
                },
                {
                    "device": "CAM03",
                    "ts": t,
                    "seq": 2,
                    "event": "no_helmet",
                    "zone": "crane-swing",
                    "count": 1,
                    "confidence": 0.87,
                },
            ),
        )
        await wait_for(
            lambda: (
                sorted(e.rule for e in listener.events)
                == ["crane_swing_intrusion", "intrusion", "no_helmet"]
            ),
            timeout=10,
            what=lambda: f"three alerts raised ({listener.events})",
        )
        raised = {e.rule: e for e in listener.events}
        assert raised["crane_swing_intrusion"].severity == "alarm"
        assert raised["crane_swing_intrusion"].title == (
            "Person in the crane swing area while the crane slews"
        )
        assert raised["no_helmet"].severity == "alarm"
        assert raised["intrusion"].severity == "warning"
        assert {(e.device, e.profile, e.gateway) for e in listener.events} == {
            ("CAM03-crane-swing", "camera_zone", "GW2")
        }
        # the same batch resent: nothing new
        mosquitto_pub(
            mosquitto,
            camera,
            batch(
                1,
                {
                    "device": "CAM03",
                    "ts": t,
                    "seq": 1,
                    "event": "intrusion",
                    "zone": "crane-swing",
                    "count": 1,
                },
            ),
        )
        await wait_for(lambda: svc.cameras.stats.duplicates == 1, what="resend seen")
        # the edge's end items: everything clears
        mosquitto_pub(
            mosquitto,
            camera,
            batch(
                2,
                {
                    "device": "CAM03",
                    "ts": t + 1000,
                    "seq": 3,
                    "event": "intrusion",
                    "zone": "crane-swing",
                    "count": 0,
                },
                {
                    "device": "CAM03",
                    "ts": t + 1000,
                    "seq": 4,
                    "event": "no_helmet",
                    "zone": "crane-swing",
                    "count": 0,
                },
            ),
        )
        await wait_for(
            lambda: (
                sorted(e.rule or e.group for e in listener.events if e.event == "cleared")
                == ["crane_swing_intrusion", "intrusion", "no_helmet"]
            ),
            timeout=10,
            what=lambda: f"three alerts cleared ({listener.events})",
        )
        # a later alert of another device: anything more of these would be in by now
        await later_alert(mosquitto, prefix, listener, 3)
    assert [e.event for e in listener.events if e.device != MARK].count("raised") == 3
    stored = [a for a in svc.store.list_alerts() if a.device != MARK]
    assert sorted((a.device, a.group, a.state) for a in stored) == [
        ("CAM03-crane-swing", g, "clearing")
        for g in ("crane_swing_intrusion", "intrusion", "no_helmet")
    ]
    await alerts.stop()

"""Hours of a simulated fleet's past, as its gateways would have sent them.

The fleet simulator (``fleet.py``) publishes live; this builds the contract messages of
the last HOURS in one go: every device's readings (the same signal models and scenarios,
one reading per STEP or per the device's own sample interval if longer), each gateway's
health readings and status, and the last days of gate events of a simulated workforce.
Ingest and the alert service take them like any backlog, so InfluxDB and the alerts fill
as if the sites had run. The dashboard tests and the README pictures use it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import msgspec

from edge.drivers.camera.events import Event, Observation
from edge.drivers.camera.snapshot import SnapshotConfig, draw, encode
from edge.drivers.camera.zones import Zone
from edge.drivers.simulated.scenarios import SimulatedDevice
from simulators.attendance_days import (
    SimWorker,
    Swipe,
    batches,
    gate_events,
    simulate,
)
from simulators.camera_video import SWING_ZONE, site_scene
from simulators.fleet import FleetOptions, build_fleet
from sitewatch import __version__
from sitewatch.core import contract
from sitewatch.core.contract import CameraEvent
from sitewatch.core.profiles import ProfileSet
from sitewatch.core.topics import GatewayChannel, gateway_topic, snapshot_topic
from sitewatch.domains.attendance.policy import AttendancePolicy

GATEWAY = "GW01"


@dataclass(frozen=True)
class HistoryOptions:
    prefix: str = "sitewatch/v1"
    sites: int = 3
    devices: int = 6
    hours: float = 6.0
    #: seconds between a device's readings (a device that samples slower keeps its pace)
    step_s: float = 60.0
    #: ``NAME[@SITE[/DEVICE]][:START_S[:DURATION_S]]``, START from the history's start
    scenarios: tuple[str, ...] = ()
    seed: int = 1
    batch_items: int = 200
    #: sites whose gateway says it is offline at the end (its will)
    offline: tuple[str, ...] = ()


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = False


@dataclass
class _Stream:
    site: str
    device: SimulatedDevice
    every_s: float
    seq: int = 0
    items: list[contract.TelemetryItem] = field(default_factory=list)


def telemetry(opts: HistoryOptions, profiles: ProfileSet, end_ms: int) -> Iterator[Message]:
    """Status, then readings batch by batch in time order across all sites, then the
    last status of the gateways in ``offline``."""
    start_s = end_ms / 1000 - opts.hours * 3600
    fleet = build_fleet(
        FleetOptions(
            sites=opts.sites, devices=opts.devices, scenarios=opts.scenarios, seed=opts.seed
        ),
        start_s,
    )
    streams: list[_Stream] = []
    for g in fleet:
        health = SimulatedDevice("gateway", g.gateway, f"{opts.seed}/{g.site}", start_s)
        for dev in [*g.devices, health]:
            every = max(opts.step_s, profiles[dev.profile].sample_interval_s)
            streams.append(_Stream(g.site, dev, every))
        yield Message(
            gateway_topic(opts.prefix, g.site, g.gateway, GatewayChannel.STATUS),
            contract.encode(
                contract.Status(state="online", ts=int(start_s * 1000), boot=1, agent=__version__)
            ),
            retain=True,
        )
    batch = 0
    chunk_s = opts.step_s * max(1, opts.batch_items // max(1, len(streams) // opts.sites))
    t0 = start_s
    while t0 < end_ms / 1000:
        t1 = min(t0 + chunk_s, end_ms / 1000)
        for site in sorted({s.site for s in streams}):
            items: list[contract.TelemetryItem] = []
            for s in (s for s in streams if s.site == site):
                k = math.ceil((t0 - start_s) / s.every_s)
                while start_s + k * s.every_s < t1:
                    t = start_s + k * s.every_s
                    values = s.device.sample(t)
                    if values is not None:
                        s.seq += 1
                        items.append(
                            contract.TelemetryItem(
                                device=s.device.device,
                                profile=s.device.profile,
                                seq=s.seq,
                                ts=int(t * 1000),
                                values=values,
                            )
                        )
                    k += 1
            items.sort(key=lambda i: i.ts)
            for i in range(0, len(items), opts.batch_items):
                batch += 1
                part = items[i : i + opts.batch_items]
                yield Message(
                    gateway_topic(opts.prefix, site, GATEWAY, GatewayChannel.TELEMETRY),
                    contract.encode(
                        contract.TelemetryBatchOut(v=1, batch=batch, sent=part[-1].ts, items=part)
                    ),
                )
        t0 = t1
    for site in opts.offline:
        yield Message(
            gateway_topic(opts.prefix, site, GATEWAY, GatewayChannel.STATUS),
            contract.encode(contract.Status(state="offline", ts=end_ms, boot=1, agent=__version__)),
            retain=True,
        )


#: the unregistered visitor ``attendance(visitor_at_ms=...)`` lets in
VISITOR = "VISITOR01"


def attendance(
    prefix: str,
    site: str,
    workers: list[SimWorker],
    *,
    days: int,
    end_ms: int,
    policy: AttendancePolicy | None = None,
    seed: int = 7,
    visitor_at_ms: int | None = None,
) -> Iterator[Message]:
    """The gate events of the last ``days`` attendance days up to ``end_ms`` (today's
    only as far as they have happened), in contract batches; with ``visitor_at_ms``, an
    unregistered visitor comes in then and is still on site."""
    policy = policy or AttendancePolicy()
    today = policy.day_of(end_ms)
    sim = simulate(workers, today - timedelta(days=days - 1), days, policy=policy, seed=seed)
    sim.swipes[:] = [s for s in sim.swipes if s.ts <= end_ms]
    if visitor_at_ms is not None:
        sim.swipes.append(Swipe(visitor_at_ms, VISITOR, "in", "GATE01", "card"))
        sim.swipes.sort(key=lambda s: s.ts)
    for payload in batches(gate_events(sim), sent_ms=end_ms, first_batch=ATTENDANCE_BATCHES):
        yield Message(gateway_topic(prefix, site, GATEWAY, GatewayChannel.ATTENDANCE), payload)


#: A gateway's batch numbers are one counter across its channels (ingest refuses a
#: number reused with other content, batch_reused): the history's telemetry counts from
#: 1, its other batches from these, far apart
CAMERA_STATUS_BATCHES = 1_000_000_000
CAMERA_BATCHES = 2_000_000_000
ATTENDANCE_BATCHES = 3_000_000_000

#: the camera of every simulated site, watching its crane's swing area
CAMERA = "CAM01"
CAMERA_ZONE = "crane-swing"


def camera(
    prefix: str, site: str, *, hours: float, end_ms: int, seed: int = 1, offline_min: float = 0.0
) -> Iterator[Message]:
    """A site camera's last ``hours``: its ``camera_status`` each minute (offline for the
    last ``offline_min`` minutes if given), and events as its edge analytics send them —
    intrusions into the crane swing area and bare heads in it (each a start item with a
    snapshot and an end item), smoke once, person counts as they change — with the
    snapshots, drawn from the synthetic site video. The last intrusion is still going
    on at the end."""
    rng = random.Random(f"{seed}/{site}/camera")
    start_ms = end_ms - int(hours * 3_600_000)
    offline_from = end_ms - int(offline_min * 60_000) if offline_min else end_ms + 1
    statuses: list[contract.TelemetryItem] = []
    seq = 0
    for ts in range(start_ms, end_ms, 60_000):
        seq += 1
        online = ts < offline_from
        values: dict[str, float | int | bool | str] = {
            "online": online,
            "frozen": False,
            "covered": False,
            "fps": round(rng.uniform(1.9, 2.0), 2) if online else 0.0,
        }
        if online:
            values["people"] = rng.randint(0, 6)
        statuses.append(
            contract.TelemetryItem(
                device=CAMERA, profile="camera_status", ts=ts, seq=seq, values=values
            )
        )
    for k in range(0, len(statuses), 200):
        part = statuses[k : k + 200]
        yield Message(
            gateway_topic(prefix, site, GATEWAY, GatewayChannel.TELEMETRY),
            contract.encode(
                contract.TelemetryBatchOut(
                    v=1, batch=CAMERA_STATUS_BATCHES + k // 200, sent=part[-1].ts, items=part
                )
            ),
        )

    scene, zone = site_scene(frames=300, plume=True), Zone(CAMERA_ZONE, SWING_ZONE)
    items: list[contract.CameraItem] = []
    seq = 0

    def item(
        ts: int, event: CameraEvent, count: int, zone_name: str | None, frame: int | None = None
    ) -> contract.CameraItem:
        nonlocal seq
        seq += 1
        snapshot: str | msgspec.UnsetType = msgspec.UNSET
        if frame is not None:
            ev = Event(
                event,
                zone_name,
                count,
                ts / 1000,
                0.8,
                "classical",
                Observation(event, zone_name, count, 0.8),
            )
            jpeg, snapshot = encode(
                draw(scene.frame(frame), ev, [zone], CAMERA),
                SnapshotConfig(max_width=640, quality=70),
            )
            snaps.append(Message(snapshot_topic(prefix, site, GATEWAY, snapshot), jpeg))
        return contract.CameraItem(
            device=CAMERA,
            ts=ts,
            seq=seq,
            event=event,
            count=count,
            snapshot=snapshot,
            zone=zone_name if zone_name is not None else msgspec.UNSET,
            confidence=0.8 if count else msgspec.UNSET,
            method="classical" if count else msgspec.UNSET,
        )

    snaps: list[Message] = []
    live_until = min(offline_from, end_ms)
    t = start_ms + 10 * 60_000
    people = 0
    while t < live_until - 10 * 60_000:
        n = rng.randint(1, 3)
        items.append(item(t, "person_count", people + n, None))
        items.append(item(t + 1_000, "intrusion", n, CAMERA_ZONE, frame=150))
        if rng.random() < 0.4:
            items.append(item(t + 2_000, "no_helmet", 1, CAMERA_ZONE, frame=120))
            items.append(item(t + 62_000, "no_helmet", 0, CAMERA_ZONE))
        items.append(item(t + 120_000, "intrusion", 0, CAMERA_ZONE))
        items.append(item(t + 121_000, "person_count", people, None))
        t += rng.randint(20, 50) * 60_000
    mid = start_ms + (live_until - start_ms) // 2
    items.append(item(mid + 30_000, "fire_smoke", 1, None, frame=200))
    items.append(item(mid + 330_000, "fire_smoke", 0, None))
    # someone in the swing area now: the intrusion is still open at the end
    items.append(item(live_until - 3 * 60_000, "intrusion", 1, CAMERA_ZONE, frame=100))
    items.sort(key=lambda i: i.ts)
    yield from snaps  # each before the batch that names it, as the agent sends them
    for k in range(0, len(items), 200):
        events = items[k : k + 200]
        yield Message(
            gateway_topic(prefix, site, GATEWAY, GatewayChannel.CAMERA),
            contract.encode(
                contract.CameraBatch(
                    v=1, batch=CAMERA_BATCHES + k // 200, sent=events[-1].ts, items=events
                )
            ),
        )

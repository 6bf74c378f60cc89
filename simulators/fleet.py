"""``sitewatch simulate``: a fleet of simulated sites publishing straight to a broker.

For demos and load: SITES sites with one gateway each and DEVICES devices per site,
RATE readings per second per device, batched as the contract says. Unlike the edge
agent it keeps no spool and ignores acks; it is a traffic source, not a gateway.

Counters (``batch``, ``seq``) start from the wall clock in milliseconds, so a second run
against the same platform continues upward instead of reusing numbers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from edge.drivers.simulated.scenarios import ActiveScenario, SimulatedDevice
from sitewatch import __version__
from sitewatch.core import contract, mqtt
from sitewatch.core.devicetime import DeviceClock
from sitewatch.core.topics import GatewayChannel, gateway_topic

log = logging.getLogger("sitewatch.simulate")

#: the device mix of a simulated site, cycled: (profile, id prefix)
SITE_MIX = [
    ("tower_crane", "TC"),
    ("construction_hoist", "HOIST"),
    ("environment", "ENV"),
    ("foundation_pit", "PIT"),
    ("high_formwork", "HF"),
    ("electrical", "EL"),
]


@dataclass(frozen=True)
class FleetOptions:
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "sitewatch/v1"
    sites: int = 3
    devices: int = 6
    rate: float = 1.0
    duration_s: float = 0.0
    scenarios: tuple[str, ...] = ()
    seed: int = 1
    batch_items: int = 50
    username: str = ""
    password: str = ""


@dataclass(frozen=True)
class ScenarioSpec:
    """``NAME[@SITE[/DEVICE]][:START_S[:DURATION_S]]``"""

    scenario: ActiveScenario
    site: str | None = None
    device: str | None = None

    @classmethod
    def parse(cls, text: str) -> ScenarioSpec:
        head, *times = text.split(":")
        name, _, target = head.partition("@")
        site, _, device = target.partition("/")
        try:
            start = float(times[0]) if times else 0.0
            duration = float(times[1]) if len(times) > 1 else float("inf")
        except ValueError:
            raise ValueError(f"scenario {text!r}: start and duration are seconds") from None
        return cls(ActiveScenario(name, start, duration), site or None, device or None)

    def matches(self, site: str, device: str, profile: str) -> bool:
        return (
            (self.site is None or self.site == site)
            and (self.device is None or self.device == device)
            and self.scenario.applies_to(profile)
        )


@dataclass
class _Gateway:
    site: str
    gateway: str
    devices: list[SimulatedDevice]
    seq: dict[str, int] = field(default_factory=dict)
    clock: DeviceClock = field(default_factory=DeviceClock)
    pending: list[contract.TelemetryItem] = field(default_factory=list)


def build_fleet(opts: FleetOptions, start: float) -> list[_Gateway]:
    specs = [ScenarioSpec.parse(s) for s in opts.scenarios]
    gateways = []
    for s in range(1, opts.sites + 1):
        site = f"SITE{s:02d}"
        devices = []
        for d in range(opts.devices):
            profile, code = SITE_MIX[d % len(SITE_MIX)]
            device = f"{code}{d // len(SITE_MIX) + 1:02d}"
            active = tuple(sp.scenario for sp in specs if sp.matches(site, device, profile))
            devices.append(SimulatedDevice(profile, device, f"{opts.seed}/{site}", start, active))
        gateways.append(_Gateway(site, "GW01", devices))
    unmatched = [
        sp
        for sp in specs
        if not any(sp.matches(g.site, d.device, d.profile) for g in gateways for d in g.devices)
    ]
    if unmatched:
        raise ValueError(f"scenario(s) match no device: {[s.scenario.name for s in unmatched]}")
    return gateways


async def run_fleet(opts: FleetOptions) -> None:
    start = time.time()
    gateways = build_fleet(opts, start)
    first = int(start * 1000)
    batch_no = first
    settings = mqtt.MqttSettings(
        host=opts.host,
        port=opts.port,
        topic_prefix=opts.prefix,
        username=opts.username,
        password=opts.password or None,
    )
    tick = min(1.0, max(0.02, 1.0 / opts.rate))
    published = 0
    async with mqtt.Client(settings, client_id=f"sw-fleet-{first}", max_inflight=1000) as c:
        for g in gateways:
            status = contract.Status(state="online", ts=first, boot=1, agent=__version__)
            await c.publish(
                gateway_topic(opts.prefix, g.site, g.gateway, GatewayChannel.STATUS),
                contract.encode(status),
                retain=True,
            )
        log.info(
            "simulating %d sites x %d devices at %.2f readings/s each (%.0f/s in all)",
            opts.sites,
            opts.devices,
            opts.rate,
            opts.sites * opts.devices * opts.rate,
        )
        due = 0.0
        next_tick = time.monotonic()
        last_report = time.monotonic()
        while not opts.duration_s or time.time() - start < opts.duration_s:
            due += opts.rate * tick
            n = int(due)
            due -= n
            now = time.time()
            for g in gateways:
                for dev in g.devices:
                    for k in range(n):
                        values = dev.sample(now - (n - 1 - k) * (1.0 / opts.rate))
                        if values is None:
                            continue
                        seq = g.seq[dev.device] = g.seq.get(dev.device, first) + 1
                        # ticks catching up after a stall fall in one millisecond
                        ts = g.clock.stamp(dev.device, int((now - (n - 1 - k) / opts.rate) * 1000))
                        g.pending.append(
                            contract.TelemetryItem(
                                device=dev.device,
                                profile=dev.profile,
                                seq=seq,
                                values=values,
                                ts=ts,
                            )
                        )
                while g.pending:
                    items, g.pending = g.pending[: opts.batch_items], g.pending[opts.batch_items :]
                    batch_no += 1
                    payload = contract.encode(
                        contract.TelemetryBatchOut(
                            v=1, batch=batch_no, sent=int(now * 1000), items=items
                        )
                    )
                    c.publish_nowait(
                        gateway_topic(opts.prefix, g.site, g.gateway, GatewayChannel.TELEMETRY),
                        payload,
                    )
                    published += len(items)
            if time.monotonic() - last_report >= 10:
                log.info("published %d readings", published)
                last_report = time.monotonic()
            next_tick += tick
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    log.info("done: published %d readings", published)

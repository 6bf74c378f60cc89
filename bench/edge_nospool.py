"""The edge baseline: the same simulated devices, encoding and batching as the agent,
published straight to the broker (QoS 1) with no spool. Runs until killed.

    python bench/edge_nospool.py HOST PORT PREFIX DEVICES INTERVAL_S

Like the agent, every device's readings go into one batch per channel, which is
published when it holds ``MAX_ITEMS`` items or its oldest has waited ``MAX_DELAY_S``
(the agent's ``publish`` defaults), stamped with a per-device seq and the wall clock.
What the agent does on top is the spool's cost: its timeline (``GatewayClock``),
strictly increasing timestamps per device, admission to the bounded spool, the fsynced
commit of each batch (in a worker thread), and the acks that let it delete them.
"""

from __future__ import annotations

import asyncio
import sys
import time

from edge.drivers.base import Values
from edge.drivers.simulated import SimulatedDriver, SimulatedOptions
from sitewatch.core import contract, mqtt
from sitewatch.core.profiles import load_profiles

MAX_ITEMS = 50
MAX_DELAY_S = 1.0


class Batcher:
    """One channel's batch being filled, shared by every device (as the agent's is)."""

    def __init__(self, client: mqtt.Client, topic: str) -> None:
        self.client, self.topic = client, topic
        self.items: list[contract.TelemetryItem] = []
        self.first = 0.0
        self.batch = 0

    def add(self, item: contract.TelemetryItem) -> None:
        if not self.items:
            self.first = time.monotonic()
        self.items.append(item)
        if len(self.items) >= MAX_ITEMS:
            self.publish()

    def publish(self) -> None:
        if not self.items:
            return
        self.batch += 1
        payload = contract.encode(
            contract.TelemetryBatchOut(
                v=1, batch=self.batch, sent=int(time.time() * 1000), items=self.items
            )
        )
        self.client.publish_nowait(self.topic, payload).add_done_callback(_ignore)
        self.items = []

    async def flush_late(self) -> None:
        """A partial batch goes out once its oldest item has waited MAX_DELAY_S."""
        while True:
            wait = MAX_DELAY_S if not self.items else self.first + MAX_DELAY_S - time.monotonic()
            await asyncio.sleep(max(wait, 0.0) + 0.001)
            if self.items and time.monotonic() - self.first >= MAX_DELAY_S:
                self.publish()


class DirectSink:
    def __init__(self, batcher: Batcher, device: str) -> None:
        self.batcher, self.device = batcher, device
        self.seq = 0

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def emit(self, values: Values, ts_ms: int) -> bool:
        self.seq += 1
        self.batcher.add(
            contract.TelemetryItem(
                device=self.device, profile="tower_crane", ts=ts_ms, seq=self.seq, values=values
            )
        )
        return True

    def emit_attendance(self, *a: object) -> bool:
        return False

    async def emit_camera(self, *a: object) -> bool:
        return False

    async def durable(self) -> bool:
        return True


def _ignore(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()


async def main(host: str, port: int, prefix: str, devices: int, interval_s: float) -> None:
    profile = load_profiles()["tower_crane"]
    settings = mqtt.MqttSettings(host=host, port=port, topic_prefix=prefix)
    async with mqtt.Client(settings, client_id="nospool", max_inflight=200) as client:
        print("ready", flush=True)
        batcher = Batcher(client, f"{prefix}/SB/GB/telemetry")
        tasks = [asyncio.create_task(batcher.flush_late())]
        for d in range(devices):
            drv = SimulatedDriver(f"TC{d:02d}", profile, interval_s, SimulatedOptions(seed=d))
            tasks.append(asyncio.create_task(drv.run(DirectSink(batcher, f"TC{d:02d}"))))
        await asyncio.gather(*tasks)


if __name__ == "__main__":
    h, p, pre, n, iv = sys.argv[1:6]
    asyncio.run(main(h, int(p), pre, int(n), float(iv)))

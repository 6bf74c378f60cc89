"""The edge baseline: the same simulated devices, encoding and batching as the agent,
published straight to the broker (QoS 1) with no spool. Runs until killed.

    python bench/edge_nospool.py HOST PORT PREFIX DEVICES INTERVAL_S
"""

from __future__ import annotations

import asyncio
import sys
import time

from sitewatch import contract, mqtt
from sitewatch.edge.drivers.base import Values
from sitewatch.edge.drivers.simulated import SimulatedDriver, SimulatedOptions
from sitewatch.profiles import load_profiles


class DirectSink:
    def __init__(self, client: mqtt.Client, topic: str, device: str) -> None:
        self.client, self.topic, self.device = client, topic, device
        self.items: list[contract.TelemetryItem] = []
        self.seq = 0
        self.batch = 0

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def emit(self, values: Values, ts_ms: int) -> bool:
        self.seq += 1
        self.items.append(contract.TelemetryItem(device=self.device, profile="tower_crane",
                                                 ts=ts_ms, seq=self.seq, values=values))
        if len(self.items) >= 50:
            self.batch += 1
            payload = contract.encode(contract.TelemetryBatchOut(
                v=1, batch=self.batch, sent=int(time.time() * 1000), items=self.items))
            self.client.publish_nowait(self.topic, payload).add_done_callback(lambda f: None)
            self.items = []
        return True

    def emit_attendance(self, *a: object) -> bool:
        return False

    async def emit_camera(self, *a: object) -> bool:
        return False

    async def durable(self) -> bool:
        return True


async def main(host: str, port: int, prefix: str, devices: int, interval_s: float) -> None:
    profile = load_profiles()["tower_crane"]
    settings = mqtt.MqttSettings(host=host, port=port, topic_prefix=prefix)
    async with mqtt.Client(settings, client_id="nospool", max_inflight=200) as client:
        print("ready", flush=True)
        tasks = []
        for d in range(devices):
            drv = SimulatedDriver(f"TC{d:02d}", profile, interval_s, SimulatedOptions(seed=d))
            sink = DirectSink(client, f"{prefix}/SB/GB/telemetry", f"TC{d:02d}")
            tasks.append(asyncio.create_task(drv.run(sink)))
        await asyncio.gather(*tasks)


if __name__ == "__main__":
    h, p, pre, n, iv = sys.argv[1:6]
    asyncio.run(main(h, int(p), pre, int(n), float(iv)))

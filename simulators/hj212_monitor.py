"""An HJ 212-2017 dust and noise monitor: connects to a gateway and pushes CN=2011 frames.

It behaves like the monitors on site: values from the environment signal model, Flag=5
(acknowledgement wanted), and a frame that is not acknowledged within ``ack_timeout_s``
is sent again (monitors store and forward too).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass

from edge.drivers.hj212 import protocol as hj212
from edge.drivers.simulated.signals import Environment, SiteClock

#: environment field -> factor code the monitor uses
FACTORS = {
    "pm25": "a34004",
    "pm10": "a34002",
    "tsp": "a34001",
    "noise_dba": "LA",
    "temp_c": "a01001",
    "rh_pct": "a01002",
    "pressure_kpa": "a01006",
    "wind_ms": "a01007",
    "wind_dir_deg": "a01008",
}


@dataclass
class MonitorStats:
    sent: int = 0
    acked: int = 0
    resent: int = 0


async def run_monitor(
    host: str,
    port: int,
    *,
    mn: str,
    pw: str = "123456",
    count: int = 10,
    interval_s: float = 1.0,
    seed: int = 1,
    ack_timeout_s: float = 5.0,
    utc_offset_h: float = 8.0,
    st: str = "39",
) -> MonitorStats:
    import random

    model = Environment(random.Random(seed), SiteClock(utc_offset_h=utc_offset_h))
    stats = MonitorStats()
    tz = dt.timezone(dt.timedelta(hours=utc_offset_h))
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for i in range(count):
            # DataTime has 1 s resolution: step it so every frame has its own second
            now = dt.datetime.fromtimestamp(time.time(), tz) + dt.timedelta(seconds=i)
            values = model.sample(now.timestamp())
            frame = hj212.data_frame(
                qn=now.strftime("%Y%m%d%H%M%S") + f"{i % 1000:03d}",
                st=st,
                pw=pw,
                mn=mn,
                flag=5,
                data_time=now.strftime("%Y%m%d%H%M%S"),
                factors={FACTORS[k]: float(v) for k, v in values.items() if k in FACTORS},
            )
            while True:
                writer.write(frame)
                await writer.drain()
                stats.sent += 1
                try:
                    line = await asyncio.wait_for(reader.readline(), ack_timeout_s)
                except TimeoutError:
                    stats.resent += 1
                    continue
                if not line:
                    raise ConnectionError("gateway closed the connection")
                ack = hj212.parse_frame(line)
                if ack.cn == "9014":
                    stats.acked += 1
                    break
            await asyncio.sleep(interval_s)
    finally:
        writer.close()
    return stats

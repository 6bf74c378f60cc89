"""The minimal pipeline ingest is compared with: subscribe, decode, write line protocol.

Nothing else: no validation against profiles, no dead letters, no acks to gateways, no
PUBACK held until stored. Same MQTT client, same InfluxDB batch size and writer count as
ingest, so the ratio shows what SiteWatch's guarantees cost. It reports progress as a
QoS 0 message on ``{prefix}/bench/progress`` after each write (one per 5000 points).

    python bench/baseline_pipeline.py HOST PORT PREFIX INFLUX_URL DB CLIENT_ID
"""

from __future__ import annotations

import asyncio
import sys

import httpx
import msgspec

from sitewatch.core import mqtt


async def main(host: str, port: int, prefix: str, influx_url: str, db: str, cid: str) -> None:
    settings = mqtt.MqttSettings(host=host, port=port, topic_prefix=prefix)
    client = mqtt.Client(
        settings, client_id=cid, clean_start=False, session_expiry_s=3600, receive_maximum=1000
    )
    http = httpx.AsyncClient(base_url=influx_url, timeout=60)
    writers = asyncio.Semaphore(2)
    written = 0
    decode = msgspec.json.decode

    async def write(lines: list[str]) -> None:
        nonlocal written
        try:
            r = await http.post(
                "/write",
                params={"db": db, "precision": "ms"},
                content=("\n".join(lines) + "\n").encode(),
            )
            r.raise_for_status()
            written += len(lines)
            client.publish_nowait(f"{prefix}/bench/progress", str(written).encode(), qos=0)
        finally:
            writers.release()

    async with client:
        await client.subscribe(f"{prefix}/+/+/telemetry", qos=1)
        print("ready", flush=True)
        lines: list[str] = []
        tasks = set()
        async for m in client.messages():
            _, site, gw, _ = m.topic.rsplit("/", 3)
            batch = decode(m.payload)
            for it in batch["items"]:
                fields = ",".join(f"{k}={v}" for k, v in it["values"].items())
                lines.append(
                    f"{it['profile']},device={it['device']},gateway={gw},site={site} "
                    f"seq={it['seq']}i,{fields} {it['ts']}"
                )
            if len(lines) >= 5000:
                await writers.acquire()
                t = asyncio.create_task(write(lines))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                lines = []


if __name__ == "__main__":
    h, p, pre, url, db, cid = sys.argv[1:7]
    asyncio.run(main(h, int(p), pre, url, db, cid))

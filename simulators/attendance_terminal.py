"""An attendance terminal pushing gate events to the gateway over HTTP (``http_push``).

Like a real terminal it keeps what it could not deliver and sends it again later.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Terminal:
    url: str  # e.g. http://127.0.0.1:8081/v1/push/GATE01
    token: str
    workers: list[str]
    seed: int = 1
    outbox: list[dict[str, Any]] = field(default_factory=list)
    accepted: int = 0

    def swipe(self, n: int) -> None:
        """Queue ``n`` gate events: workers coming in, then going out."""
        rng = random.Random(self.seed + len(self.outbox) + self.accepted)
        inside: set[str] = set()
        for _ in range(n):
            worker = rng.choice(self.workers)
            direction = "out" if worker in inside else "in"
            (inside.discard if direction == "out" else inside.add)(worker)
            self.outbox.append(
                {
                    "worker": worker,
                    "direction": direction,
                    "method": rng.choice(["face", "card", "fingerprint"]),
                    "ts": int(time.time() * 1000),
                }
            )

    async def send(self, client: httpx.AsyncClient, batch: int = 20) -> int:
        """Deliver the outbox; what is refused stays for the next try."""
        while self.outbox:
            chunk = self.outbox[:batch]
            r = await client.post(
                self.url, json={"events": chunk}, headers={"Authorization": f"Bearer {self.token}"}
            )
            if r.status_code != 202:
                return r.status_code
            self.outbox = self.outbox[len(chunk) :]
            self.accepted += int(r.json()["accepted"])
        return 202

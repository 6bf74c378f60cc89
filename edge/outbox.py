"""Camera snapshots at the gateway, from the event that took them to ingest's ack.

A snapshot is written (fsynced) to ``state_dir/snapshots`` under its SHA-256 before its
event enters the spool; it is published on ``{p}/{site}/{gateway}/snapshot/{sha256}``
just before each (re)send of the batch that names it, so it is at ingest when the event
is; it is deleted once ingest has acknowledged that batch. Files left by a stop before
the ack age out with the spool's ``max_age_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import msgspec

from edge.spool import SpooledBatch
from sitewatch.core import mqtt
from sitewatch.domains.snapshots import SHA256_RE, SnapshotError, SnapshotStore

log = logging.getLogger("sitewatch.edge")


class SnapshotOutbox:
    def __init__(self, directory: Path, topic: Callable[[str], str]) -> None:
        self.store = SnapshotStore(directory)
        self._topic = topic
        self._by_batch: dict[int, list[str]] = {}
        self.sent = 0
        self.failed = 0  # not written, or gone before they were sent

    async def keep(self, device: str, jpeg: bytes, sha256: str) -> bool:
        """Write an event's snapshot; False (logged, counted) if it could not be kept."""
        try:
            await asyncio.to_thread(self.store.put, jpeg, sha256)
        except (OSError, SnapshotError) as exc:
            self.failed += 1
            log.error("camera %s: snapshot not kept (%s); the event goes without it", device, exc)
            return False
        return True

    def drop(self, sha256: str) -> None:
        """The event was refused by the spool: its snapshot goes too."""
        self.store.delete(sha256)

    def publish(
        self, client: mqtt.Client, batch: SpooledBatch, done: Callable[[asyncio.Future[None]], None]
    ) -> None:
        """Publish the snapshots a camera batch names (call just before the batch)."""
        try:  # leniently: one item ingest will refuse must not cost the others theirs
            items = msgspec.json.decode(batch.payload).get("items", [])
            names = [
                sha
                for i in items
                if isinstance(i, dict)
                and isinstance(sha := i.get("snapshot"), str)
                and SHA256_RE.fullmatch(sha)
            ]
        except (msgspec.DecodeError, AttributeError) as exc:
            self.failed += 1
            log.error(
                "camera batch %d unreadable (%s): its snapshots are not sent", batch.batch, exc
            )
            return
        self._by_batch[batch.batch] = names
        for sha in names:
            snap = self.store.get(sha)
            if snap is None:
                self.failed += 1
                log.error(
                    "snapshot %s of batch %d is gone; the event is sent without its picture",
                    sha,
                    batch.batch,
                )
                continue
            fut = client.publish_nowait(self._topic(sha), snap.path.read_bytes(), qos=1)
            fut.add_done_callback(done)
            self.sent += 1

    def acknowledged(self, batches: list[int]) -> None:
        for b in batches:
            for sha in self._by_batch.pop(b, []):
                self.store.delete(sha)

    def expire(self, max_age_s: float) -> None:
        self.store.expire(max_age_s)

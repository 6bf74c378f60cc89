"""The picture that goes with an event: the frame with the zones and what was found
drawn on it, as a JPEG, and its SHA-256 (the name it is published and stored under)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np

from edge.drivers.camera.events import Event
from edge.drivers.camera.zones import Zone

RED, GREEN, AMBER, WHITE = (40, 40, 230), (60, 200, 60), (0, 190, 255), (255, 255, 255)

#: what the snapshot says of how an event was found
METHOD_LABEL = {"model": "ONNX model", "classical": "classical check (no model)"}


@dataclass(frozen=True, slots=True)
class SnapshotConfig:
    #: the picture is scaled down to at most this width
    max_width: int = 1280
    #: JPEG quality 1-100
    quality: int = 80


def draw(frame: Any, event: Event, zones: Sequence[Zone], camera: str) -> Any:
    img = frame.copy()
    overlay = img.copy()
    for z in zones:
        pts = np.array(z.polygon, np.int32)
        hit = z.name == event.zone
        if hit:
            cv2.fillPoly(overlay, [pts], RED)
        cv2.polylines(img, [pts], True, RED if hit else AMBER, 2)
        x, y = pts.min(axis=0)
        cv2.putText(
            img,
            z.name,
            (int(x) + 4, int(y) + 18),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            RED if hit else AMBER,
            2,
        )
    img = cv2.addWeighted(overlay, 0.25, img, 0.75, 0)
    if event.seen is not None:
        for x, y, w, h in event.seen.boxes:
            cv2.rectangle(img, (x, y), (x + w, y + h), RED, 2)
    when = datetime.fromtimestamp(event.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    method = METHOD_LABEL[event.method] if event.method else ""
    lines = [
        f"{camera}  {event.event}"
        + (f" in {event.zone}" if event.zone else "")
        + f"  x{event.count}",
        f"{when}  {method}",
    ]
    for k, text in enumerate(lines):
        y = 28 + 26 * k
        cv2.putText(img, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4)
        cv2.putText(img, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, WHITE, 2)
    return img


def encode(img: Any, config: SnapshotConfig) -> tuple[bytes, str]:
    """JPEG bytes and their SHA-256 (lowercase hex)."""
    h, w = img.shape[:2]
    if w > config.max_width:
        img = cv2.resize(
            img, (config.max_width, round(h * config.max_width / w)), interpolation=cv2.INTER_AREA
        )
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, config.quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    data = buf.tobytes()
    return data, hashlib.sha256(data).hexdigest()

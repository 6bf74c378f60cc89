"""The classical hard-hat check, for sites with no helmet model: is the top of a
detected person hard-hat coloured?

Chinese site hard hats are red, yellow, blue, orange or white (GB 2811): strongly
saturated and bright, or bright white. Hair and skin are neither. The share of such
pixels in the head region (:attr:`edge.drivers.camera.people.Person.head`) is
averaged over a person's last few frames (a hat is small; one frame can miss it) and
compared with a threshold. Events from this check say ``method: classical``: it is a
colour heuristic, not a trained detector, and a bare head under a coloured awning or a
worker in a yellow hood fool it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edge.drivers.camera.people import Box


@dataclass(frozen=True, slots=True)
class HardHatConfig:
    #: share of hard-hat-coloured pixels in the head region of a person with a hat
    min_hat_fraction: float = 0.08
    #: frames a person's verdict is averaged over
    samples: int = 5
    #: frames needed before a verdict
    min_samples: int = 3
    min_saturation: int = 110
    min_value: int = 110
    #: white hats: low saturation, very bright
    white_max_saturation: int = 45
    white_min_value: int = 205


def hat_fraction(frame: Any, head: Box, config: HardHatConfig) -> float:
    x, y, w, h = head
    x0, y0 = max(0, x), max(0, y)
    roi = frame[y0 : y + h, x0 : x + w]
    if roi.size == 0:
        return 0.0
    hsv = cv2.cvtColor(roi, cv2.COLOR_BGR2HSV)
    s, v = hsv[..., 1], hsv[..., 2]
    coloured = (s >= config.min_saturation) & (v >= config.min_value)
    white = (s <= config.white_max_saturation) & (v >= config.white_min_value)
    return float(np.count_nonzero(coloured | white)) / float(s.size)


@dataclass
class HardHatCheck:
    """Per tracked person: hat or not, from their last frames."""

    config: HardHatConfig = field(default_factory=HardHatConfig)
    _seen: dict[int, deque[float]] = field(default_factory=dict)

    def wears_hat(self, frame: Any, track: int, head: Box) -> bool | None:
        """True/False once enough frames are seen, None before."""
        samples = self._seen.setdefault(track, deque(maxlen=self.config.samples))
        samples.append(hat_fraction(frame, head, self.config))
        if len(samples) < self.config.min_samples:
            return None
        return sum(samples) / len(samples) >= self.config.min_hat_fraction

    def forget(self, alive: set[int]) -> None:
        for track in [t for t in self._seen if t not in alive]:
            del self._seen[track]

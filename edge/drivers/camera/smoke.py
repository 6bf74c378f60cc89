"""The classical smoke check, for sites with no smoke/fire model: a growing grey, soft,
moving region.

Smoke is low in saturation, mid to light grey, has no sharp edges and is not part of the
background. The share of the picture that is all of these (at 320 px wide) must stay
above a threshold for a while (the event debouncing's ``on_s``). Events from this check
say ``method: classical``: it sees smoke-like haze (dust from a breaker, steam, fog
moving in), and no flame at all — fire needs a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class SmokeConfig:
    #: share of the picture that must look like moving smoke
    min_fraction: float = 0.004
    max_saturation: int = 40
    min_value: int = 120
    max_value: int = 235
    #: smoothed edge strength under which a pixel is soft
    max_edges: float = 6.0
    #: frames the background model learns before anything is judged
    warmup_frames: int = 5
    width: int = 320


@dataclass
class SmokeCheck:
    config: SmokeConfig = field(default_factory=SmokeConfig)
    _frames: int = 0
    _mask: np.ndarray[Any, Any] | None = None

    def __post_init__(self) -> None:
        self._bg = cv2.createBackgroundSubtractorMOG2(
            history=300, varThreshold=25, detectShadows=False
        )

    def fraction(self, frame: Any) -> float | None:
        """The smoke-like share of ``frame``; None while the background is learnt."""
        c = self.config
        h, w = frame.shape[:2]
        small = cv2.resize(
            frame, (c.width, max(1, round(h * c.width / w))), interpolation=cv2.INTER_AREA
        )
        moving = self._bg.apply(small) > 0
        self._frames += 1
        if self._frames <= c.warmup_frames:
            return None
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
        grey = (
            (hsv[..., 1] < c.max_saturation)
            & (hsv[..., 2] > c.min_value)
            & (hsv[..., 2] < c.max_value)
        )
        edges = cv2.Laplacian(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), cv2.CV_32F)
        soft = np.abs(cv2.GaussianBlur(edges, (0, 0), 2)) < c.max_edges
        smoke = moving & grey & soft
        self._mask = smoke.astype(np.uint8)
        return float(np.count_nonzero(smoke)) / float(smoke.size)

    def region(self, frame_width: int) -> tuple[int, int, int, int] | None:
        """Where the last frame's smoke-like pixels are (for the snapshot), in frame
        pixels of a picture ``frame_width`` wide."""
        if self._mask is None:
            return None
        pts = cv2.findNonZero(self._mask)
        if pts is None:
            return None
        x, y, bw, bh = cv2.boundingRect(pts)
        k = frame_width / self.config.width
        return (int(x * k), int(y * k), int(bw * k), int(bh * k))

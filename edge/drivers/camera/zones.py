"""Zones of a camera's picture: named polygons in frame pixels (a crane's swing area,
a pit edge, a restricted store). A person is in a zone when their feet are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    polygon: tuple[Point, ...]
    _poly: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.polygon) < 3:
            raise ValueError(f"zone {self.name!r}: a polygon needs at least 3 points")
        poly = np.array(self.polygon, np.float32)
        if abs(cv2.contourArea(poly)) < 1.0:
            raise ValueError(f"zone {self.name!r}: the polygon encloses no area")
        object.__setattr__(self, "_poly", poly)

    def contains(self, point: Point) -> bool:
        return cv2.pointPolygonTest(self._poly, (float(point[0]), float(point[1])), False) >= 0

    def fits(self, width: int, height: int) -> bool:
        """Whether every corner lies inside a ``width`` x ``height`` picture."""
        return all(0 <= x <= width and 0 <= y <= height for x, y in self.polygon)

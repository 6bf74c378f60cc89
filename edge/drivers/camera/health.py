"""Is the camera still watching? Offline (no frame), frozen (the same picture) and
covered (a dark or featureless picture), each reported once when it has lasted its
configured time and once when it is over.

Pure: frames and their times go in, status changes come out; the camera driver turns
them into status events. A frame is an ``H x W x 3`` (BGR) or ``H x W`` ``uint8`` array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import cv2
import numpy as np


class Problem(StrEnum):
    OFFLINE = "offline"
    FROZEN = "frozen"
    COVERED = "covered"


@dataclass(frozen=True, slots=True)
class HealthConfig:
    #: seconds without a frame before the camera is offline
    offline_s: float = 30.0
    #: seconds of the same picture before it is frozen
    frozen_s: float = 60.0
    #: seconds of a covered lens (dark or featureless) before it is reported
    covered_s: float = 20.0
    #: mean absolute difference (0-255) under which two frames are the same picture; a
    #: live camera's sensor noise alone stays above it (compared on every fourth pixel
    #: of the green channel, not on an averaged picture, which would smooth the noise
    #: away)
    still_diff: float = 0.5
    #: mean brightness under which a picture is dark
    dark_level: float = 12.0
    #: variance of the Laplacian (edges) under which a picture is featureless
    flat_edges: float = 4.0

    def __post_init__(self) -> None:
        for name in ("offline_s", "frozen_s", "covered_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")


@dataclass(frozen=True, slots=True)
class Change:
    problem: Problem
    started: bool  # True: it began (lasted its time); False: it is over
    at: float  # seconds, the frame time that decided it
    since: float  # when the condition began


@dataclass
class _Watch:
    since: float | None = None
    reported: bool = False


def gray_small(frame: Any) -> np.ndarray[Any, Any]:
    """The frame in grey at 160 px wide: enough to tell a scene from a lens cap, and cheap."""
    img = np.asarray(frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    h, w = img.shape[:2]
    if w > 160:
        img = np.asarray(
            cv2.resize(img, (160, max(1, round(h * 160 / w))), interpolation=cv2.INTER_AREA)
        )
    return img


def is_covered(gray: np.ndarray[Any, Any], config: HealthConfig) -> bool:
    dark = float(gray.mean()) < config.dark_level
    flat = float(cv2.Laplacian(gray, cv2.CV_64F).var()) < config.flat_edges
    return dark or flat


@dataclass
class CameraHealth:
    config: HealthConfig = field(default_factory=HealthConfig)
    _last_frame_at: float | None = None
    _previous: np.ndarray[Any, Any] | None = None
    _watch: dict[Problem, _Watch] = field(default_factory=lambda: {p: _Watch() for p in Problem})

    def frame(self, at: float, frame: Any) -> list[Change]:
        """A frame arrived at ``at`` (seconds)."""
        changes = self._set(Problem.OFFLINE, False, at)
        self._last_frame_at = at
        gray = gray_small(frame)
        sample = np.ascontiguousarray(
            (frame if frame.ndim == 2 else frame[..., 1])[::4, ::4]
        )  # green ~ brightness
        still = (
            self._previous is not None
            and self._previous.shape == sample.shape
            and float(cv2.absdiff(sample, self._previous).mean()) < self.config.still_diff
        )
        self._previous = sample
        changes += self._set(Problem.FROZEN, still, at)
        changes += self._set(Problem.COVERED, is_covered(gray, self.config), at)
        return changes

    def tick(self, at: float) -> list[Change]:
        """Time passes with no frame (a read failed, or the stream is silent)."""
        w = self._watch[Problem.OFFLINE]
        if w.since is None:
            # silent since its last frame (or since we started waiting for one)
            w.since = self._last_frame_at if self._last_frame_at is not None else at
        return self._due(Problem.OFFLINE, at)

    def problems(self) -> set[Problem]:
        return {p for p, w in self._watch.items() if w.reported}

    def _set(self, problem: Problem, holds: bool, at: float) -> list[Change]:
        w = self._watch[problem]
        if not holds:
            out = (
                [Change(problem, False, at, w.since)] if w.reported and w.since is not None else []
            )
            w.since, w.reported = None, False
            return out
        if w.since is None:
            w.since = at
        return self._due(problem, at)

    def _due(self, problem: Problem, at: float) -> list[Change]:
        w = self._watch[problem]
        limit = {
            Problem.OFFLINE: self.config.offline_s,
            Problem.FROZEN: self.config.frozen_s,
            Problem.COVERED: self.config.covered_s,
        }[problem]
        if w.since is not None and not w.reported and at - w.since >= limit:
            w.reported = True
            return [Change(problem, True, at, w.since)]
        return []

"""Synthetic site-camera video with known ground truth, made here (nothing downloaded).

A fixed camera over a site: a textured ground, a static mast and fence, and people who
walk straight lines between two points, some with a hard hat (a coloured cap on the
head), some without; optionally a grey smoke-like plume that grows and drifts. Frames
are deterministic for a seed. For every frame the scene knows each person's bounding
box and whether their feet are inside a zone polygon: the truth that the camera
analytics' precision and recall are measured against.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np

Point = tuple[float, float]
Frame = np.ndarray[Any, np.dtype[np.uint8]]
#: hard-hat colours of Chinese sites (BGR): red, yellow, blue, white, orange
HAT_COLORS = ((40, 40, 220), (40, 210, 240), (200, 90, 30), (235, 235, 235), (30, 140, 250))


@dataclass(frozen=True, slots=True)
class Walker:
    """A person walking from ``start`` to ``end`` (feet, pixels) between two frames."""

    id: str
    start: Point
    end: Point
    first: int
    last: int
    #: standing height in pixels (a person 20 m away in 720p is about 120 px)
    height: int = 140
    helmet: bool = True
    hat: tuple[int, int, int] = HAT_COLORS[0]
    vest: tuple[int, int, int] = (0, 200, 255)

    def feet(self, i: int) -> Point | None:
        if not self.first <= i <= self.last:
            return None
        p = (i - self.first) / max(1, self.last - self.first)
        return (
            self.start[0] + (self.end[0] - self.start[0]) * p,
            self.start[1] + (self.end[1] - self.start[1]) * p,
        )

    def box(self, i: int) -> tuple[int, int, int, int] | None:
        """(x, y, w, h) around the whole person in frame ``i``."""
        f = self.feet(i)
        if f is None:
            return None
        w = round(self.height * 0.42)
        return (round(f[0] - w / 2), round(f[1] - self.height), w, self.height)


@dataclass(frozen=True, slots=True)
class Plume:
    """Smoke rising from ``origin`` from frame ``first`` on, growing and drifting."""

    origin: Point
    first: int
    growth_px: float = 1.2
    drift: Point = (0.6, -1.0)


@dataclass(frozen=True)
class Scene:
    width: int = 1280
    height: int = 720
    fps: float = 10.0
    frames: int = 300
    walkers: tuple[Walker, ...] = ()
    plume: Plume | None = None
    seed: int = 1
    #: sensor noise (standard deviation, grey levels): a live camera is never still
    noise: float = 3.0

    @cached_property
    def ground(self) -> Frame:
        """The static background (drawn once)."""
        return _ground(self.width, self.height, self.seed)

    @cached_property
    def noise_bank(self) -> list[np.ndarray[Any, np.dtype[np.int16]]]:
        """Sensor noise, drawn once: frame ``i`` gets noise ``i % 7``, so no two
        consecutive frames are alike, and rendering is not dominated by the draws."""
        rng = np.random.default_rng((self.seed, 99))
        return [
            np.rint(
                rng.standard_normal((self.height, self.width, 3), np.float32) * self.noise
            ).astype(np.int16)
            for _ in range(7)
        ]

    def frame(self, i: int) -> Frame:
        img = self.ground.copy()
        if self.plume is not None and i >= self.plume.first:
            _plume(img, self.plume, i - self.plume.first, self.seed)
        for w in sorted(self.walkers, key=lambda w: (w.feet(i) or (0, 0))[1]):
            if w.feet(i) is not None:
                _person(img, w, i)
        noisy: np.ndarray[Any, np.dtype[np.int16]] = (
            img.astype(np.int16) + self.noise_bank[i % len(self.noise_bank)]
        )
        out: Frame = np.clip(noisy, 0, 255).astype(np.uint8)
        return out

    def __iter__(self) -> Iterator[Frame]:
        return (self.frame(i) for i in range(self.frames))

    def inside(self, i: int, zone: Sequence[Point]) -> set[str]:
        """Who has their feet inside ``zone`` in frame ``i`` (the intrusion truth)."""
        poly = np.array(zone, np.float32)
        return {
            w.id
            for w in self.walkers
            if (f := w.feet(i)) is not None
            and cv2.pointPolygonTest(poly, (float(f[0]), float(f[1])), False) >= 0
        }

    def visible(self, i: int) -> list[Walker]:
        return [w for w in self.walkers if w.feet(i) is not None]

    def write(self, path: Path) -> Path:
        """The scene as a video file (MJPG in AVI: OpenCV writes and reads it everywhere)."""
        out = cv2.VideoWriter(
            str(path), cv2.VideoWriter.fourcc(*"MJPG"), self.fps, (self.width, self.height)
        )
        if not out.isOpened():
            raise OSError(f"cannot write video {path}")
        try:
            for f in self:
                out.write(f)
        finally:
            out.release()
        return path


def _ground(width: int, height: int, seed: int) -> Frame:
    rng = np.random.default_rng(seed)
    # dusty ground getting lighter towards the horizon, gravel texture, a mast, a fence
    rows = np.linspace(150, 105, height, dtype=np.float32)[:, None]
    base = np.repeat(rows, width, axis=1)
    texture = cv2.GaussianBlur(rng.normal(0, 14, (height, width)).astype(np.float32), (0, 0), 2)
    grey = np.clip(base + texture, 0, 255)
    img = np.dstack([grey * 0.9, grey, grey * 1.05]).clip(0, 255).astype(np.uint8)
    x = width * 3 // 4
    cv2.rectangle(img, (x, 0), (x + 26, height // 2), (60, 160, 210), -1)  # a crane mast
    for k in range(0, height // 2, 40):
        cv2.line(img, (x, k), (x + 26, k + 40), (40, 110, 150), 3)
    cv2.line(img, (0, height // 5), (width, height // 5), (90, 90, 90), 4)  # a fence
    for k in range(0, width, 64):
        cv2.line(img, (k, height // 5 - 30), (k, height // 5), (90, 90, 90), 3)
    return img


def _person(img: Frame, w: Walker, i: int) -> None:
    box = w.box(i)
    assert box is not None
    x, y, bw, h = box
    cx = x + bw // 2
    skin, trousers = (120, 150, 200), (70, 60, 50)
    head_r = max(3, h // 14)
    phase = sum(map(ord, w.id)) % 7  # stable across runs (hash() of a str is not)
    step = math.sin(i * 0.6 + phase) * bw * 0.18  # legs swing as they walk
    hip_y, shoulder_y = y + int(h * 0.55), y + int(h * 0.2)
    leg = max(2, bw // 6)
    foot_y = y + h - leg // 2 - 1  # the soles end at the box's bottom (the feet)
    cv2.line(img, (cx - bw // 8, hip_y), (int(cx - bw // 8 - step), foot_y), trousers, leg)
    cv2.line(img, (cx + bw // 8, hip_y), (int(cx + bw // 8 + step), foot_y), trousers, leg)
    cv2.rectangle(img, (cx - bw // 4, shoulder_y), (cx + bw // 4, hip_y), w.vest, -1)
    # arms: they swing too, and stay inside the person's box (the truth)
    cv2.line(
        img,
        (cx - bw // 4, shoulder_y + 3),
        (int(cx - bw * 0.35 + step * 0.3), hip_y),
        w.vest,
        max(2, bw // 9),
    )
    cv2.line(
        img,
        (cx + bw // 4, shoulder_y + 3),
        (int(cx + bw * 0.35 - step * 0.3), hip_y),
        w.vest,
        max(2, bw // 9),
    )
    head = (cx, y + 2 * head_r + 2)
    cv2.circle(img, head, head_r, skin, -1)
    if w.helmet:  # a hard hat: a dome over the head, a brim
        cv2.ellipse(
            img, (cx, head[1] - head_r // 3), (head_r + 2, head_r + 1), 0, 180, 360, w.hat, -1
        )
        cv2.line(
            img,
            (cx - head_r - 4, head[1] - head_r // 3),
            (cx + head_r + 4, head[1] - head_r // 3),
            w.hat,
            2,
        )
    else:  # dark hair
        cv2.ellipse(
            img, (cx, head[1] - head_r // 3), (head_r, head_r - 1), 0, 180, 360, (30, 30, 35), -1
        )


def _plume(img: Frame, plume: Plume, age: int, seed: int) -> None:
    rng = np.random.default_rng((seed, 7))
    q = 4  # drawn and blurred at a quarter of the size: smoke has no fine detail
    h, w = img.shape[:2]
    layer = np.zeros((h // q, w // q), np.float32)
    for k in range(12):
        t = age - k * 6
        if t <= 0:
            continue
        r = 10 + plume.growth_px * t * 0.6 + rng.uniform(0, 6)
        cx = plume.origin[0] + plume.drift[0] * t + rng.normal(0, 3)
        cy = plume.origin[1] + plume.drift[1] * t
        cv2.circle(layer, (int(cx / q), int(cy / q)), max(1, int(r / q)), 1.0, -1)
    soft = cv2.resize(cv2.GaussianBlur(layer, (0, 0), 9 / q), (w, h))
    alpha = soft[..., None] * 0.7
    smoke = np.full_like(img, 175)
    img[:] = (img * (1 - alpha) + smoke * alpha).astype(np.uint8)


def site_scene(*, frames: int = 300, seed: int = 1, plume: bool = False) -> Scene:
    """A standard test scene: six people, two without hard hats, crossing the frame and
    the crane's swing zone (:data:`SWING_ZONE`) at different times."""
    walkers = (
        Walker("P1", (100, 600), (1150, 560), 0, 160, helmet=True, hat=HAT_COLORS[1]),
        Walker("P2", (1200, 650), (300, 420), 20, 200, helmet=False, vest=(40, 180, 40)),
        Walker("P3", (640, 700), (700, 300), 60, 260, helmet=True, hat=HAT_COLORS[0], height=150),
        Walker("P4", (200, 350), (600, 330), 120, 280, helmet=True, hat=HAT_COLORS[3], height=110),
        Walker("P5", (1100, 380), (900, 690), 180, 299, helmet=False, vest=(0, 140, 255)),
        Walker("P6", (50, 450), (50, 450), 240, 299, helmet=True, hat=HAT_COLORS[2]),
    )
    return Scene(
        frames=frames, walkers=walkers, seed=seed, plume=Plume((300, 300), 100) if plume else None
    )


#: the crane's swing area in :func:`site_scene` (pixels), a polygon
SWING_ZONE: tuple[Point, ...] = ((520, 380), (980, 380), (1060, 700), (440, 700))


def random_scene(
    seed: int, *, frames: int = 600, people: int = 8, fps: float = 10.0, plume: bool = False
) -> Scene:
    """A scene of ``people`` walkers with random paths, times and hats (deterministic
    for ``seed``); people further up the picture (further away) are smaller. Used to
    measure the analytics on more than the one standard scene."""
    rng = np.random.default_rng(seed)
    walkers = []
    for k in range(people):
        y0, y1 = (float(v) for v in rng.uniform(300, 700, 2))
        x0, x1 = (float(v) for v in rng.uniform(60, 1220, 2))
        first = int(rng.integers(0, frames - 80))
        last = min(frames - 1, first + int(rng.integers(60, 240)))
        helmet = bool(rng.random() < 0.7)
        walkers.append(
            Walker(
                f"R{k + 1}",
                (x0, y0),
                (x1, y1),
                first,
                last,
                height=int(110 + (min(y0, y1) - 300) * 0.12),
                helmet=helmet,
                hat=HAT_COLORS[int(rng.integers(0, len(HAT_COLORS)))],
                vest=((0, 200, 255), (40, 180, 40), (0, 140, 255))[int(rng.integers(0, 3))],
            )
        )
    return Scene(
        frames=frames,
        fps=fps,
        walkers=tuple(walkers),
        seed=seed,
        plume=Plume((float(rng.uniform(200, 1000)), 300.0), frames // 3) if plume else None,
    )


Interval = tuple[float, float]


def occupied(scene: Scene, zone: Sequence[Point], *, gap_s: float = 3.0) -> list[Interval]:
    """The truth of intrusions: from when to when (seconds) someone's feet are in
    ``zone``, absences shorter than ``gap_s`` bridged (as the edge debounces them)."""
    out: list[list[float]] = []
    for i in range(scene.frames):
        if scene.inside(i, zone):
            t = i / scene.fps
            if out and t - out[-1][1] <= gap_s:
                out[-1][1] = t
            else:
                out.append([t, t])
    return [(a, b) for a, b in out]


@dataclass(frozen=True, slots=True)
class Score:
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        real = self.true_positives + self.false_negatives
        return self.true_positives / real if real else 1.0


def score(
    truth: Sequence[Interval],
    found: Sequence[Interval],
    *,
    min_s: float = 1.0,
    slack_s: float = 1.0,
) -> Score:
    """Occurrences matched by overlap (with ``slack_s`` at either end for the debounce
    delays). Each true occurrence is found once: a second event over the same one (an
    occurrence split into fragments) is a false positive. A true occurrence shorter
    than ``min_s`` (the debounce's ``on_s``) need not be found, and finding it is no
    false positive either."""

    def overlaps(a: Interval, b: Interval) -> bool:
        return a[0] - slack_s <= b[1] and b[0] <= a[1] + slack_s

    claimed: set[int] = set()
    tp = fp = 0
    for f in sorted(found):
        hits = {k for k, t in enumerate(truth) if overlaps(t, f)}
        if hits - claimed:
            tp += 1
            claimed |= hits
        else:
            fp += 1
    fn = sum(1 for k, t in enumerate(truth) if t[1] - t[0] >= min_s and k not in claimed)
    return Score(tp, fp, fn)

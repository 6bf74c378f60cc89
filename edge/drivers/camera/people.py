"""People in a camera's picture: background subtraction finds what moves, OpenCV's
built-in HOG people detector confirms people there, a small tracker keeps them.

HOG over a whole 1280x720 frame takes about a second on a gateway core; run only where
something moved (plus where a person was recently, so one who stops stays found) it is
a few tens of milliseconds. The foreground is computed at :attr:`PeopleConfig.motion_width`
pixels wide; HOG runs on full-resolution regions.

HOG's window is larger than the person in it: :func:`person_box` maps it to the person
(fractions measured on the synthetic walkers, whose truth boxes are known), so the feet
(the bottom centre) decide which zone a person stands in, and the head (the top) is where
a hard hat is looked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels
Point = tuple[float, float]

#: the person inside a HOG detection window, as fractions of the window (x, y, w, h)
_PERSON_IN_WINDOW = (0.19, 0.093, 0.62, 0.74)


@dataclass(frozen=True, slots=True)
class PeopleConfig:
    #: the foreground (motion) is computed on the frame scaled to this width
    motion_width: int = 640
    #: frames of history of the background model
    history: int = 300
    #: MOG2 variance threshold: higher ignores more noise
    var_threshold: float = 25.0
    #: a moving blob smaller than this (pixels at full resolution) is not looked at
    min_blob_px: int = 240
    #: pixels added around a region before HOG looks at it
    pad_px: int = 32
    #: HOG step and pyramid scale
    win_stride: int = 8
    scale: float = 1.05
    #: HOG's SVM score a detection needs
    hit_threshold: float = 0.0
    #: the tallest person looked for (pixels): bounds HOG's scale pyramid, its cost
    max_person_px: int = 320
    #: a person is reported once seen in this many analysed frames ...
    min_hits: int = 2
    #: ... and kept this long (seconds) after last seen (occlusion, a missed frame)
    keep_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Person:
    track: int
    box: Box
    confidence: float

    @property
    def feet(self) -> Point:
        x, y, w, h = self.box
        return (x + w / 2, float(y + h))

    @property
    def head(self) -> Box:
        """The top of the person, where a hard hat is."""
        x, y, w, h = self.box
        hh = max(4, round(h * 0.2))
        return (x + w // 6, y - hh // 4, w - w // 3, hh)


def person_box(window: Box) -> Box:
    x, y, w, h = window
    fx, fy, fw, fh = _PERSON_IN_WINDOW
    return (round(x + fx * w), round(y + fy * h), round(fw * w), round(fh * h))


def iou(a: Box, b: Box) -> float:
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _merge(regions: list[Box]) -> list[Box]:
    """Overlapping regions become one (so a person is looked at once)."""
    out = list(regions)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if (
                    a[0] <= b[0] + b[2]
                    and b[0] <= a[0] + a[2]
                    and a[1] <= b[1] + b[3]
                    and b[1] <= a[1] + a[3]
                ):
                    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
                    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
                    out[i] = (x0, y0, x1 - x0, y1 - y0)
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return out


#: how far a person may get between two analysed frames, in their heights per second
#: (a brisk walk is about one height a second), plus half a height for the detector's
#: own jitter
WALK_HEIGHTS_PER_S = 1.5


def _distance(a: Box, b: Box) -> float:
    return math.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2)


@dataclass
class _Track:
    id: int
    box: Box
    confidence: float
    hits: int
    seen: float


def _follows(track: _Track, box: Box, at: float) -> bool:
    """Whether ``box`` can be the tracked person: overlapping, or within walking reach
    of where they were and of about their size (frames at 2/s are 0.5 s apart: a person
    crossing the picture no longer overlaps their last box)."""
    if iou(track.box, box) > 0.2:
        return True
    h = max(track.box[3], 1)
    if not 0.7 <= box[3] / h <= 1.4:
        return False
    reach = h * (0.5 + WALK_HEIGHTS_PER_S * max(0.0, at - track.seen))
    return _distance(track.box, box) <= reach


@dataclass
class PeopleDetector:
    config: PeopleConfig = field(default_factory=PeopleConfig)
    #: the last frame's foreground mask at ``motion_width`` (for inspection and tests)
    foreground: np.ndarray[Any, Any] | None = None
    _tracks: list[_Track] = field(default_factory=list)
    _next_id: int = 1

    def __post_init__(self) -> None:
        # the default people detector's geometry; only the pyramid's depth differs: a
        # person fills about 0.74 of the 128 px window, so levels up to max_person_px
        levels = (
            math.ceil(
                math.log(max(1.0, self.config.max_person_px / (0.74 * 128)))
                / math.log(self.config.scale)
            )
            + 1
        )
        self._hog = cv2.HOGDescriptor(
            (64, 128),
            (16, 16),
            (8, 8),
            (8, 8),
            9,
            1,
            -1.0,
            cv2.HOGDescriptor_L2Hys,
            0.2,
            True,
            levels,
        )
        self._hog.setSVMDetector(
            np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32)
        )
        self._bg = cv2.createBackgroundSubtractorMOG2(
            history=self.config.history, varThreshold=self.config.var_threshold, detectShadows=False
        )
        self._open = np.ones((3, 3), np.uint8)
        self._grow = np.ones((9, 9), np.uint8)

    def detect(self, frame: Any, at: float) -> list[Person]:
        """People in ``frame`` (BGR, full resolution), seen at ``at`` seconds."""
        regions = self._moving(frame) + [
            t.box for t in self._tracks if at - t.seen <= self.config.keep_s
        ]
        windows: list[Box] = []
        weights: list[float] = []
        h, w = frame.shape[:2]
        for x, y, rw, rh in _merge([self._padded(r, w, h) for r in regions]):
            found, score = self._hog_in(frame, (x, y, rw, rh))
            windows += found
            weights += score
        keep = cv2.dnn.NMSBoxes([list(b) for b in windows], weights, 0.0, 0.4) if windows else []
        boxes = [(person_box(windows[i]), weights[i]) for i in np.asarray(keep).reshape(-1)]
        return self._track(boxes, at)

    # -- steps ---------------------------------------------------------------------
    def _moving(self, frame: Any) -> list[Box]:
        h, w = frame.shape[:2]
        k = self.config.motion_width / w
        small = (
            cv2.resize(
                frame,
                (self.config.motion_width, max(1, round(h * k))),
                interpolation=cv2.INTER_AREA,
            )
            if k < 1
            else frame
        )
        mask = self._bg.apply(small)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open)
        self.foreground = mask
        grown = cv2.dilate(mask, self._grow)
        contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        inv = 1 / min(k, 1.0)
        out = []
        for c in contours:
            x, y, bw, bh = cv2.boundingRect(c)
            if bw * bh * inv * inv < self.config.min_blob_px:
                continue
            out.append((int(x * inv), int(y * inv), math.ceil(bw * inv), math.ceil(bh * inv)))
        return out

    def _padded(self, r: Box, w: int, h: int) -> Box:
        p = self.config.pad_px
        x0, y0 = max(0, r[0] - p), max(0, r[1] - p)
        x1, y1 = min(w, r[0] + r[2] + p), min(h, r[1] + r[3] + p)
        return (x0, y0, x1 - x0, y1 - y0)

    def _hog_in(self, frame: Any, region: Box) -> tuple[list[Box], list[float]]:
        x, y, w, h = region
        roi = frame[y : y + h, x : x + w]
        # HOG needs a 64x128 window with a margin: regions at the picture's edge or
        # smaller than that get a mirrored border, and their coordinates a shift
        bx, by = max(0, (80 - w + 1) // 2), max(0, (144 - h + 1) // 2)
        bx = max(bx, 16 if x == 0 or x + w >= frame.shape[1] else 0)
        by = max(by, 16 if y == 0 or y + h >= frame.shape[0] else 0)
        if bx or by:
            roi = cv2.copyMakeBorder(roi, by, by, bx, bx, cv2.BORDER_REPLICATE)
        s = self.config.win_stride
        rects, scores = self._hog.detectMultiScale(
            roi,
            hitThreshold=self.config.hit_threshold,
            winStride=(s, s),
            padding=(8, 8),
            scale=self.config.scale,
        )
        found = [(int(r[0]) + x - bx, int(r[1]) + y - by, int(r[2]), int(r[3])) for r in rects]
        return found, [float(v) for v in np.asarray(scores).reshape(-1)]

    def _track(self, boxes: list[tuple[Box, float]], at: float) -> list[Person]:
        cfg = self.config
        self._tracks = [t for t in self._tracks if at - t.seen <= cfg.keep_s]
        free = list(self._tracks)
        for box, weight in sorted(boxes, key=lambda b: -b[1]):
            conf = 1 / (1 + math.exp(-2 * weight))
            best = min(
                (t for t in free if _follows(t, box, at)),
                key=lambda t: _distance(t.box, box),
                default=None,
            )
            if best is not None:
                free.remove(best)
                best.box, best.confidence, best.seen = box, conf, at
                best.hits += 1
            else:
                self._tracks.append(_Track(self._next_id, box, conf, 1, at))
                self._next_id += 1
        return [Person(t.id, t.box, t.confidence) for t in self._tracks if t.hits >= cfg.min_hits]

"""A YOLO-style ONNX object detector run with OpenCV's ``cv2.dnn``, and the decoding of
its output.

Users bring their own model file (helmets, smoke/fire, people); nothing is downloaded.
Two output layouts are understood, the two that YOLO exports produce:

- ``yolov5``: ``(1, N, 5 + C)``: per candidate ``cx, cy, w, h, objectness, C class
  scores``; a candidate's score is objectness x its best class score;
- ``yolov8``: ``(1, 4 + C, N)``: per candidate ``cx, cy, w, h, C class scores`` (no
  objectness), candidates along the last axis.

Boxes are in the model's input pixels; the frame is letterboxed to that size (scaled to
fit, padded evenly), so boxes are mapped back by undoing the padding and the scale.
Candidates under ``score_threshold`` are dropped, then non-maximum suppression per class
(``nms_threshold``, intersection over union) keeps the best of overlapping boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

Layout = Literal["yolov5", "yolov8"]
#: (x, y, width, height) in frame pixels
Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    score: float
    box: Box


@dataclass(frozen=True, slots=True)
class YoloConfig:
    #: class index -> label, in the model's order (its class map)
    classes: tuple[str, ...]
    #: the model's input width and height
    input_size: tuple[int, int] = (640, 640)
    layout: Layout = "yolov8"
    score_threshold: float = 0.4
    nms_threshold: float = 0.45

    def __post_init__(self) -> None:
        if not self.classes:
            raise ValueError("classes: the model's class map is empty")
        if not (0 < self.score_threshold <= 1 and 0 < self.nms_threshold <= 1):
            raise ValueError("score_threshold and nms_threshold must be in (0, 1]")
        if min(self.input_size) <= 0:
            raise ValueError(f"input_size {self.input_size}: must be positive")


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a frame was fitted into the model's input: scale, then padding (pixels)."""

    scale: float
    pad_x: float
    pad_y: float

    @classmethod
    def fit(cls, frame_w: int, frame_h: int, input_w: int, input_h: int) -> Letterbox:
        scale = min(input_w / frame_w, input_h / frame_h)
        return cls(scale, (input_w - frame_w * scale) / 2, (input_h - frame_h * scale) / 2)

    def to_frame(self, cx: float, cy: float, w: float, h: float) -> Box:
        return (
            (cx - w / 2 - self.pad_x) / self.scale,
            (cy - h / 2 - self.pad_y) / self.scale,
            w / self.scale,
            h / self.scale,
        )


Array = npt.NDArray[np.float32]


def candidates(output: Array, layout: Layout, n_classes: int) -> tuple[Array, Array]:
    """(boxes ``N x 4`` as cx, cy, w, h; scores ``N x C``) from a raw output."""
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 3:
        if out.shape[0] != 1:
            raise ValueError(f"output of shape {out.shape}: one image per run expected")
        out = out[0]
    if out.ndim != 2:
        raise ValueError(f"output of shape {np.shape(output)}: not a YOLO output")
    if layout == "yolov8":
        if out.shape[0] != 4 + n_classes:
            raise ValueError(
                f"yolov8 output {np.shape(output)}: expected (1, 4 + {n_classes} classes, N)"
            )
        out = out.T
        return out[:, :4], out[:, 4:]
    if out.shape[1] != 5 + n_classes:
        raise ValueError(
            f"yolov5 output {np.shape(output)}: expected (1, N, 5 + {n_classes} classes)"
        )
    return out[:, :4], out[:, 5:] * out[:, 4:5]


def decode(output: Array, config: YoloConfig, letterbox: Letterbox) -> list[Detection]:
    """The detections of one frame, best first."""
    boxes, scores = candidates(output, config.layout, len(config.classes))
    best = scores.argmax(axis=1)
    score = scores[np.arange(len(scores)), best]
    keep = score >= config.score_threshold
    boxes, best, score = boxes[keep], best[keep], score[keep]
    if not len(score):
        return []
    frame_boxes = [letterbox.to_frame(*map(float, b)) for b in boxes]
    kept = cv2.dnn.NMSBoxesBatched(
        [list(b) for b in frame_boxes],
        score.tolist(),
        best.tolist(),
        config.score_threshold,
        config.nms_threshold,
    )
    found = [
        Detection(config.classes[int(best[i])], float(score[i]), frame_boxes[i])
        for i in np.asarray(kept).reshape(-1)
    ]
    return sorted(found, key=lambda d: -d.score)


class OnnxDetector:
    """A YOLO-style ONNX model, run with ``cv2.dnn`` on BGR frames."""

    def __init__(self, model: Path, config: YoloConfig) -> None:
        if not model.is_file():
            raise FileNotFoundError(
                f"model file {model} does not exist (bring your own "
                "ONNX model: nothing is downloaded)"
            )
        try:
            self.net = cv2.dnn.readNetFromONNX(str(model))
        except cv2.error as exc:
            raise ValueError(
                f"model file {model}: OpenCV cannot read it as ONNX: "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from None
        self.config = config

    def detect(self, frame: Any) -> list[Detection]:
        h, w = frame.shape[:2]
        in_w, in_h = self.config.input_size
        box = Letterbox.fit(w, h, in_w, in_h)
        resized = cv2.resize(frame, (round(w * box.scale), round(h * box.scale)))
        top, left = round(box.pad_y - 0.1), round(box.pad_x - 0.1)
        canvas = cv2.copyMakeBorder(
            resized,
            top,
            in_h - resized.shape[0] - top,
            left,
            in_w - resized.shape[1] - left,
            cv2.BORDER_CONSTANT,
            value=(114, 114, 114),
        )
        blob = cv2.dnn.blobFromImage(canvas, 1 / 255.0, (in_w, in_h), swapRB=True)
        self.net.setInput(blob)
        output = np.asarray(self.net.forward(), dtype=np.float32)
        return decode(output, self.config, box)

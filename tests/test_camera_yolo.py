"""YOLO-style ONNX output decoding, with tiny ONNX models the test builds itself: their
output is a constant the test chose (plus 0 x the input, so the graph uses its input),
so the detections they must give are known exactly. Run through ``cv2.dnn`` as a user's
model is; no model is downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.drivers.camera.yolo import (
    Detection,
    Letterbox,
    OnnxDetector,
    YoloConfig,
    candidates,
    decode,
)

CLASSES = ("person", "helmet", "smoke")
INPUT = (64, 64)


def tiny_model(path: Path, output: np.ndarray) -> Path:
    """An ONNX model: images (1, 3, 64, 64) -> ``output`` + 0 * sum(images)."""
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *INPUT[::-1]])
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, list(output.shape))
    const = numpy_helper.from_array(output.astype(np.float32), "constant")
    zero = numpy_helper.from_array(np.zeros((1,), np.float32), "zero")
    axes = numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes")
    nodes = [
        helper.make_node("ReduceSum", ["images", "axes"], ["total"], keepdims=0),  # (1,)
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["constant", "nothing"], ["output"]),
    ]
    graph = helper.make_graph(nodes, "tiny_yolo", [images], [out], initializer=[const, zero, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


#: candidates in model-input pixels: cx, cy, w, h and class scores
V8_CANDIDATES = [
    # a person, and a weaker overlapping box of the same person (suppressed)
    (20.0, 30.0, 10.0, 20.0, 0.90, 0.05, 0.0),
    (21.0, 31.0, 10.0, 20.0, 0.70, 0.05, 0.0),
    # a helmet overlapping the person: another class, kept
    (20.0, 22.0, 6.0, 4.0, 0.10, 0.80, 0.0),
    # smoke under the threshold: dropped
    (50.0, 40.0, 12.0, 12.0, 0.0, 0.0, 0.30),
]


def v8_output() -> np.ndarray:
    return np.array(V8_CANDIDATES, np.float32).T[None]  # (1, 4 + C, N)


def v5_output() -> np.ndarray:
    rows = [(cx, cy, w, h, 1.0, *scores) for cx, cy, w, h, *scores in V8_CANDIDATES]
    rows[2] = (*rows[2][:4], 0.5, *rows[2][5:])  # objectness 0.5: helmet at 0.5 x 0.8
    return np.array(rows, np.float32)[None]  # (1, N, 5 + C)


def frame_box(cx: float, cy: float, w: float, h: float, lb: Letterbox) -> tuple[float, ...]:
    return (
        (cx - w / 2 - lb.pad_x) / lb.scale,
        (cy - h / 2 - lb.pad_y) / lb.scale,
        w / lb.scale,
        h / lb.scale,
    )


def test_letterbox_fits_and_maps_back() -> None:
    lb = Letterbox.fit(320, 240, 64, 64)
    assert (lb.scale, lb.pad_x, lb.pad_y) == (0.2, 0.0, 8.0)
    assert lb.to_frame(32, 32, 64, 48) == pytest.approx((0, 0, 320, 240))


@pytest.mark.parametrize("layout,output", [("yolov8", v8_output()), ("yolov5", v5_output())])
def test_decode_thresholds_suppresses_and_maps_boxes_to_the_frame(
    layout: str, output: np.ndarray
) -> None:
    cfg = YoloConfig(CLASSES, INPUT, layout, score_threshold=0.35)  # type: ignore[arg-type]
    lb = Letterbox.fit(320, 240, *INPUT)
    found = decode(output, cfg, lb)
    helmet = 0.8 if layout == "yolov8" else 0.4
    assert [(d.label, round(d.score, 3)) for d in found] == [("person", 0.9), ("helmet", helmet)]
    assert found[0].box == pytest.approx(frame_box(20, 30, 10, 20, lb))
    assert found[1].box == pytest.approx(frame_box(20, 22, 6, 4, lb))


def test_a_higher_threshold_keeps_less_and_nothing_is_fine() -> None:
    lb = Letterbox.fit(64, 64, *INPUT)
    assert [
        d.label for d in decode(v8_output(), YoloConfig(CLASSES, INPUT, score_threshold=0.85), lb)
    ] == ["person"]
    assert decode(v8_output(), YoloConfig(CLASSES, INPUT, score_threshold=0.99), lb) == []


def test_an_output_that_does_not_fit_the_class_map_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"expected \(1, 4 \+ 2 classes, N\)"):
        candidates(v8_output(), "yolov8", 2)
    with pytest.raises(ValueError, match=r"expected \(1, N, 5 \+ 3 classes\)"):
        candidates(v8_output(), "yolov5", 3)
    with pytest.raises(ValueError, match="class map is empty"):
        YoloConfig(())


@pytest.mark.parametrize("layout,output", [("yolov8", v8_output()), ("yolov5", v5_output())])
def test_a_tiny_onnx_model_through_cv2_dnn_gives_its_known_detections(
    tmp_path: Path, layout: str, output: np.ndarray
) -> None:
    model = tiny_model(tmp_path / "tiny.onnx", output)
    detector = OnnxDetector(
        model,
        YoloConfig(
            CLASSES,
            INPUT,
            layout,  # type: ignore[arg-type]
            score_threshold=0.35,
        ),
    )
    frame = np.full((240, 320, 3), 90, np.uint8)  # a BGR frame, 320 x 240
    found = detector.detect(frame)
    lb = Letterbox.fit(320, 240, *INPUT)
    assert found == [
        Detection("person", pytest.approx(0.9), pytest.approx(frame_box(20, 30, 10, 20, lb))),
        Detection(
            "helmet",
            pytest.approx(0.8 if layout == "yolov8" else 0.4),
            pytest.approx(frame_box(20, 22, 6, 4, lb)),
        ),
    ]


def test_a_missing_or_broken_model_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        OnnxDetector(tmp_path / "none.onnx", YoloConfig(CLASSES))
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot read it as ONNX"):
        OnnxDetector(tmp_path / "bad.onnx", YoloConfig(CLASSES))

"""The camera driver: OpenCV analytics at the edge (people, hard hats, zones, smoke, an
ONNX detector), debounced events and JPEG snapshots. ``driver`` reads the options and
runs the pipeline the other modules of this folder make up; the camera evaluation
(``simulators.camera_eval``) runs the same ``build_analysis``."""

from __future__ import annotations

from edge.drivers.camera.driver import CameraDriver, CameraOptions

__all__ = ["CameraDriver", "CameraOptions"]

"""Frames from an RTSP/HTTP stream, a video file or a local device, with OpenCV, at the
analysis rate.

``source`` is a URL (``rtsp://…``, ``http://…``), a file path, or ``device:N`` (a local
camera, ``/dev/videoN``). A file plays once unless it loops; once it has ended the
camera is gone (offline). Live sources are read continuously (a stream that is not read
falls behind) and a frame is decoded for analysis every ``1 / analysis_fps`` seconds; its
time is the clock's. A file is played at its own frame rate (``pace: realtime``, for
demos) or as fast as the analysis goes (``pace: fast``, for tests and benchmarks), and
its frames' times are then the start time plus their position in the video.

Blocking (OpenCV reads block): the camera driver calls :meth:`VideoSource.next` in a
worker thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import cv2

Pace = Literal["realtime", "fast"]


def is_live(source: str) -> bool:
    return source.startswith("device:") or "://" in source


@dataclass
class VideoSource:
    source: str
    analysis_fps: float = 2.0
    pace: Pace = "realtime"
    #: a file starts again when it ends
    loop: bool = False

    def __post_init__(self) -> None:
        self._cap: Any = None
        self._fps = 0.0
        self._fps_was = 1.0
        self._pos = 0  # frames of this file read since it was opened
        self._start = 0.0  # wall time of its first frame
        self._next_due = 0.0
        self.opens = 0
        #: a file that ended (not looping): it is not played again
        self.ended = False

    @property
    def live(self) -> bool:
        return is_live(self.source)

    def open(self) -> bool:
        self.close()
        target: str | int = (int(self.source.split(":", 1)[1])
                             if self.source.startswith("device:") else self.source)
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            return False
        self._cap = cap
        self._fps_was = self._fps or 1.0
        self._fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        if self._fps > 240:  # some streams report nonsense
            self._fps = 25.0
        # a looping file's time goes on from where the last round ended
        self._start = max(time.time(), self._start + self._pos / self._fps_was)
        self._pos = 0
        self._next_due = 0.0
        self.opens += 1
        return True

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def next(self) -> tuple[float, Any] | None:
        """The next frame due for analysis and its time (seconds since the epoch);
        None when the stream failed or the file ended (not looping)."""
        if self.ended or (self._cap is None and not self.open()):
            return None
        while True:
            if not self._cap.grab():
                if not self.live and self._pos > 0:
                    if self.loop and self.open():
                        continue
                    self.ended = not self.loop  # played once: the camera is gone
                self.close()
                return None
            if self.live:
                at = time.time()
            else:
                at = self._start + self._pos / self._fps
                self._pos += 1
                if self.pace == "realtime":
                    wait = at - time.time()
                    if wait > 0:
                        time.sleep(wait)
            if at + 1e-6 < self._next_due:
                continue  # not due: read past it
            ok, frame = self._cap.retrieve()
            if not ok:
                continue
            step = 1.0 / self.analysis_fps
            due = self._next_due + step
            self._next_due = due if self._next_due and due > at else at + step
            return at, frame

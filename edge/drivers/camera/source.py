"""Frames from an RTSP/HTTP stream, a video file or a local device, with OpenCV, at the
analysis rate.

``source`` is a URL (``rtsp://…``, ``http://…``), a file path, or ``device:N`` (a local
camera, ``/dev/videoN``). A file plays once unless it loops; once it has ended the
camera is gone (offline).

A live source is read by its own thread, all the time (a stream that is not read falls
behind, and a slow analysis must not make it): the thread keeps only the newest frame
and the time it was read, and :meth:`VideoSource.next` hands out the newest frame once
it is due (every ``1 / analysis_fps`` s), never an old one. The thread owns the capture:
it releases it when the stream fails or the source is closed.

A file is played at its own frame rate (``pace: realtime``, for demos) or as fast as the
analysis goes (``pace: fast``, for tests and benchmarks), and its frames' times are the
start time plus their position in the video.

Blocking: the camera driver calls :meth:`VideoSource.next` in a worker thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import cv2

Pace = Literal["realtime", "fast"]
Frame = tuple[float, Any]  # (seconds since the epoch, BGR picture)


def is_live(source: str) -> bool:
    return source.startswith("device:") or "://" in source


def capture_target(source: str) -> str | int:
    """What OpenCV opens: a device index for ``device:N``, else the URL or path."""
    if source.startswith("device:"):
        number = source.split(":", 1)[1]
        if not number.isdigit():
            raise ValueError(f"source {source!r}: a local camera is device:N (N = 0, 1, ...)")
        return int(number)
    return source


class FrameSource(Protocol):
    """What the camera driver reads (a seam: tests give their own)."""

    def next(self) -> Frame | None:
        """The next frame due for analysis, or None when the source failed or ended."""

    def close(self) -> None: ...


@dataclass
class VideoSource:
    source: str
    analysis_fps: float = 2.0
    pace: Pace = "realtime"
    #: a file starts again when it ends
    loop: bool = False
    #: a live source: how long ``next`` waits for a frame before it says the stream failed
    stall_s: float = 10.0

    def __post_init__(self) -> None:
        self._target = capture_target(self.source)
        self._lock = threading.Lock()  # a file's capture: next() and close() take turns
        self._cap: Any = None
        self._fps = 0.0
        self._fps_was = 1.0
        self._pos = 0  # frames of this file read since it was opened
        self._start = 0.0  # wall time of its first frame
        self._next_due = 0.0
        self.opens = 0
        #: a file that ended (not looping): it is not played again
        self.ended = False
        # a live source's reader thread and the newest frame it read
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self._newest = threading.Condition()
        self._frame: Frame | None = None
        self._failed = False
        self._handed: float = 0.0  # time of the last frame handed out

    @property
    def live(self) -> bool:
        return is_live(self.source)

    def next(self) -> Frame | None:
        return self._next_live() if self.live else self._next_file()

    def close(self) -> None:
        self._stop.set()  # a live reader releases its capture itself
        with self._lock:
            self._release()

    # -- live --------------------------------------------------------------------------
    def _next_live(self) -> Frame | None:
        if self._reader is None or not self._reader.is_alive():
            if self._stop.is_set() or not self._start_reader():
                return None
        step = 1.0 / self.analysis_fps
        deadline = time.monotonic() + self.stall_s
        with self._newest:
            while True:
                frame = self._frame
                if (
                    frame is not None
                    and frame[0] > self._handed
                    and frame[0] + 1e-6 >= self._next_due
                ):
                    self._handed = frame[0]
                    due = self._next_due + step
                    self._next_due = due if self._next_due and due > frame[0] else frame[0] + step
                    return frame
                if self._failed or self._stop.is_set() or time.monotonic() > deadline:
                    return None  # the reader ends (or ended): a next call opens anew
                self._newest.wait(0.1)

    def _start_reader(self) -> bool:
        cap = cv2.VideoCapture(self._target)
        if not cap.isOpened():
            cap.release()
            return False
        self.opens += 1
        with self._newest:
            self._frame, self._failed, self._next_due = None, False, 0.0
        self._reader = threading.Thread(
            target=self._read_all, args=(cap,), daemon=True, name=f"camera {self.source}"
        )
        self._reader.start()
        return True

    def _read_all(self, cap: Any) -> None:
        try:
            while not self._stop.is_set():
                ok, picture = cap.read()
                if not ok:
                    break
                with self._newest:
                    self._frame = (time.time(), picture)
                    self._newest.notify_all()
        finally:
            cap.release()
            with self._newest:
                self._failed = True
                self._newest.notify_all()

    # -- files -------------------------------------------------------------------------
    def _open_file(self) -> bool:
        self._release()
        cap = cv2.VideoCapture(self._target)
        if not cap.isOpened():
            cap.release()
            return False
        self._cap = cap
        self._fps_was = self._fps or 1.0
        self._fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        if self._fps > 240:  # some files report nonsense
            self._fps = 25.0
        # a looping file's time goes on from where the last round ended
        self._start = max(time.time(), self._start + self._pos / self._fps_was)
        self._pos = 0
        self._next_due = 0.0
        self.opens += 1
        return True

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _next_file(self) -> Frame | None:
        with self._lock:
            if self.ended or self._stop.is_set() or (self._cap is None and not self._open_file()):
                return None
            while True:
                if not self._cap.grab():
                    if self._pos > 0:
                        if self.loop and self._open_file():
                            continue
                        self.ended = not self.loop  # played once: the camera is gone
                    self._release()
                    return None
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

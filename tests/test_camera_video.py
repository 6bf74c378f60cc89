"""The synthetic camera video: deterministic, people where the truth says, the zone
truth right, and a video file OpenCV reads back frame for frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from simulators.camera_video import SWING_ZONE, Scene, Walker, site_scene


def test_frames_are_deterministic_and_never_still() -> None:
    a, b = site_scene(frames=50), site_scene(frames=50)
    assert np.array_equal(a.frame(30), b.frame(30))
    assert a.frame(30).shape == (720, 1280, 3)
    # sensor noise: two frames of an empty moment still differ a little
    empty = Scene(frames=3)
    diff = cv2.absdiff(empty.frame(1), empty.frame(2)).mean()
    assert 0.5 < diff < 10


def test_a_person_is_drawn_inside_their_truth_box_and_nowhere_else() -> None:
    walker = Walker("W", (400, 500), (400, 500), 0, 10)
    with_person = Scene(frames=11, walkers=(walker,), noise=0).frame(5)
    without = Scene(frames=11, noise=0).frame(5)
    changed = np.argwhere(cv2.absdiff(with_person, without).max(axis=2) > 0)
    x, y, w, h = walker.box(5)  # type: ignore[misc]
    assert len(changed) > 0.3 * w * h
    ys, xs = changed[:, 0], changed[:, 1]
    assert xs.min() >= x - 2 and xs.max() <= x + w + 2
    assert ys.min() >= y - 2 and ys.max() <= y + h + 2


def test_zone_truth_follows_the_feet() -> None:
    scene = site_scene()
    p3 = next(w for w in scene.walkers if w.id == "P3")
    inside = [i for i in range(scene.frames) if "P3" in scene.inside(i, SWING_ZONE)]
    assert inside and p3.first <= min(inside) and max(inside) <= p3.last
    # P3 walks from y 700 up to 300: inside the zone (y 380-700) first, then out
    assert min(inside) == p3.first
    assert all("P6" not in scene.inside(i, SWING_ZONE) for i in range(scene.frames))


def test_a_video_file_reads_back_frame_for_frame(tmp_path: Path) -> None:
    scene = site_scene(frames=20, plume=True)
    path = scene.write(tmp_path / "site.avi")
    cap = cv2.VideoCapture(str(path))
    try:
        n = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            assert frame.shape == (720, 1280, 3)
            # MJPG is lossy: close to what was drawn, not equal
            assert cv2.absdiff(frame, scene.frame(n)).mean() < 6
            n += 1
    finally:
        cap.release()
    assert n == 20


def test_opencv_people_detector_finds_every_synthetic_person() -> None:
    """The walkers are people to OpenCV's HOG detector (what the intrusion analytic
    uses), so the video can measure it: each truth box overlaps a detection."""
    scene = site_scene()
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    rects, _ = hog.detectMultiScale(scene.frame(150), winStride=(8, 8), padding=(8, 8), scale=1.05)
    truth = [w.box(150) for w in scene.visible(150)]
    assert len(truth) == 4

    def overlaps(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
        ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
        iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
        return ix > 0 and iy > 0 and ix * iy > 0.5 * a[2] * a[3]

    assert all(any(overlaps(t, tuple(r)) for r in rects) for t in truth if t), (truth, rects)
    assert len(rects) == len(truth)

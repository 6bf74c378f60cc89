"""Camera health without a camera: frames made here, times given; a camera that goes
away, freezes or is covered is reported once, when it has lasted its configured time,
and once when it is over."""

from __future__ import annotations

import numpy as np

from edge.drivers.camera.health import CameraHealth, Change, HealthConfig, Problem

CFG = HealthConfig(offline_s=10, frozen_s=30, covered_s=5)


def scene(seed: int) -> np.ndarray:
    """A textured scene with sensor noise: every call a slightly different picture."""
    rng = np.random.default_rng(seed)
    base = np.tile(np.linspace(40, 220, 320, dtype=np.float32), (240, 1))
    base[60:180, 100:140] = 30  # a mast
    noisy = base + rng.normal(0, 4, base.shape)
    return np.dstack([np.clip(noisy, 0, 255).astype(np.uint8)] * 3)


def run(health: CameraHealth, frames: list[tuple[float, np.ndarray | None]]) -> list[Change]:
    out: list[Change] = []
    for at, f in frames:
        out += health.tick(at) if f is None else health.frame(at, f)
    return out


def test_a_live_camera_reports_nothing() -> None:
    assert run(CameraHealth(CFG), [(t, scene(t)) for t in range(100)]) == []


def test_a_frozen_picture_is_reported_after_frozen_s_and_cleared_once() -> None:
    still = scene(1)
    frames = (
        [(t, scene(t)) for t in range(5)]
        + [(t, still) for t in range(5, 60)]
        + [(60, scene(60)), (61, scene(61))]
    )
    changes = run(CameraHealth(CFG), frames)
    assert changes == [Change(Problem.FROZEN, True, 36, 6), Change(Problem.FROZEN, False, 60, 6)]


def test_a_covered_lens_dark_or_featureless_is_reported_after_covered_s() -> None:
    dark = np.zeros((240, 320, 3), np.uint8)
    grey = np.full((240, 320, 3), 128, np.uint8)  # a cap: bright but no edges at all
    for cover in (dark, grey):
        frames = [(0, scene(0)), *((t, cover + (t % 2)) for t in range(1, 10)), (10, scene(10))]
        changes = [c for c in run(CameraHealth(CFG), frames) if c.problem is Problem.COVERED]
        assert changes == [
            Change(Problem.COVERED, True, 6, 1),
            Change(Problem.COVERED, False, 10, 1),
        ]


def test_no_frames_is_offline_after_offline_s_counted_from_the_last_frame() -> None:
    health = CameraHealth(CFG)
    frames: list[tuple[float, np.ndarray | None]] = [(0, scene(0)), (1, scene(1))]
    frames += [(t, None) for t in range(2, 20)]
    frames += [(20, scene(20))]
    assert run(health, frames) == [
        Change(Problem.OFFLINE, True, 11, 1),
        Change(Problem.OFFLINE, False, 20, 1),
    ]
    assert health.problems() == set()


def test_a_camera_never_seen_is_offline_from_when_we_started_waiting() -> None:
    health = CameraHealth(CFG)
    assert run(health, [(t, None) for t in range(100, 111)]) == [
        Change(Problem.OFFLINE, True, 110, 100)
    ]
    assert health.problems() == {Problem.OFFLINE}

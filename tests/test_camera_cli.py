"""``sitewatch simulate camera-video``: the synthetic site video a simulated gateway's
camera reads (the demo, docker-compose), as an operator runs it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from simulators.camera_video import site_scene
from sitewatch.programs.cli import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it: its own process."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SITEWATCH_")}
    return subprocess.run(
        [sys.executable, "-m", "sitewatch.programs.cli", "simulate", "camera-video", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
    )


def call(*args: str) -> int:
    """The same in this process (a second less per call than a new interpreter with
    OpenCV and NumPy)."""
    try:
        return main(["simulate", "camera-video", *args])
    except SystemExit as exc:  # argparse refusing an argument
        return int(exc.code or 0)


def frames_of(path: Path) -> tuple[int, float, tuple[int, int]]:
    """Frames decoded (counted by reading, not from the header), fps and size."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    try:
        n, size = 0, (0, 0)
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            n += 1
            size = (frame.shape[1], frame.shape[0])
        return n, float(cap.get(cv2.CAP_PROP_FPS)), size
    finally:
        cap.release()


def test_writes_a_readable_video_of_the_requested_length(tmp_path: Path) -> None:
    out = tmp_path / "video" / "site.avi"  # the folder is made
    r = run("--out", str(out), "--seconds", "1.5")
    assert r.returncode == 0, r.stderr
    assert frames_of(out) == (15, 10.0, (1280, 720))
    assert f"wrote {out}: 15 frames at 10 fps" in r.stdout
    # the crane swing area, for a camera's zone
    assert "[[520, 380], [980, 380], [1060, 700], [440, 700]]" in r.stdout
    assert [p.name for p in out.parent.iterdir()] == ["site.avi"]  # no partial file left


def test_the_video_is_the_standard_scene_and_deterministic(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.avi", tmp_path / "b.avi", tmp_path / "c.avi"
    for out, seed in ((a, "7"), (b, "7"), (c, "8")):
        assert call("--out", str(out), "--seconds", "0.5", "--seed", seed, "--plume") == 0

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    assert digest(a) == digest(b) != digest(c)
    cap = cv2.VideoCapture(str(a))
    ok, first = cap.read()
    cap.release()
    assert ok
    # the scene's first frame, through MJPG: only compression's small differences
    drawn = site_scene(seed=7, plume=True).frame(0)
    assert float(cv2.absdiff(first, drawn).mean()) < 4.0


def test_if_missing_keeps_an_existing_video(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site.avi"
    assert call("--out", str(out), "--seconds", "0.3") == 0
    before = out.stat().st_mtime_ns
    assert call("--out", str(out), "--seconds", "2", "--if-missing") == 0
    assert f"{out} exists: kept" in capsys.readouterr().out
    assert out.stat().st_mtime_ns == before and frames_of(out)[0] == 3
    assert call("--out", str(out), "--seconds", "0.2") == 0  # without it: written again
    assert frames_of(out)[0] == 2


def test_refuses_what_it_cannot_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert call("--out", str(tmp_path / "site.mp4")) == 2
    assert "--out must end in .avi" in capsys.readouterr().err
    for seconds in ("0", "-1", "3601", "many"):
        assert call("--out", str(tmp_path / "site.avi"), "--seconds", seconds) == 2
        assert "argument --seconds" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_simulate_without_a_subcommand_is_still_the_fleet() -> None:
    from sitewatch.programs.cli import build_parser
    from sitewatch.programs.simulatecmd import cmd_camera_video, cmd_simulate

    args = build_parser().parse_args(["simulate", "--sites", "2", "--seed", "4"])
    assert args.fn is cmd_simulate and (args.sites, args.seed) == (2, 4)
    args = build_parser().parse_args(["simulate", "camera-video", "--out", "x.avi"])
    assert args.fn is cmd_camera_video and args.seconds == 30.0 and not args.plume

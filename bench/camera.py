"""bench/camera: frames per second per core of each camera analytic at 1280x720, against
plain decoding of the same video in the same run.

The video: ``simulators.camera_video``'s site scene (six walkers, two without
hard hats, crossing the crane's swing zone, and a smoke plume; ``--scene random`` for a
random scene of ``--people`` walkers), 1280x720 at ``--fps`` for ``--seconds``, written
once as MJPG AVI before anything is timed (rendering costs ~30 ms a frame).

What is measured, each in a fresh process (spawned, so that one measurement's caches,
threads and memory are not another's), OpenCV pinned to one thread
(``cv2.setNumThreads(1)``, decoder ``CAP_PROP_N_THREADS`` 1, OpenCL off), so that CPU
seconds are one core's:

- **decode** (the baseline): ``cv2.VideoCapture.read`` of every frame, nothing else;
- **each analytic alone** and **all four together**: the same read loop, and
  ``CameraAnalysis.analyse`` (``edge.drivers.camera.driver.build_analysis``, the
  camera driver's own code: health watch, analytics, debouncer, snapshots of events) on
  every decoded frame, the zone ``crane-swing`` (``SWING_ZONE``) configured, each
  analytic with its default options (helmet and smoke without a model: their classical
  checks). intrusion, person_count and helmet share one people detector (background
  subtraction, HOG on what moved, a tracker), so each alone costs about what the three
  together cost;
- **at the analysis rate** (``--analysis-fps``, 2 as deployed; 0 skips it): the camera
  driver's ``VideoSource`` (``pace: fast``) reads the same file, decoding every frame of
  the stream and analysing ``--analysis-fps`` of them a second: what one camera costs.
  Its baseline is the same source with nothing analysed (it grabs every frame but
  converts to BGR only the ones due, so it costs less than decoding every frame).

CPU is the process's own (``time.process_time``, every thread), timed from the first
frame read to the last, after the analysis is built and the file opened. fps per core =
frames / CPU seconds; the ratio is an analytic's fps per core over decoding's, both medians
of ``--rounds`` rounds (the order alternates between rounds). Cameras per core at
``--analysis-fps``: fps per core / analysis fps (the analysis alone; a live stream is also
decoded at its full rate, which the last table measures: video seconds per CPU second).
Peak memory is each process's peak RSS (VmHWM; interpreter, numpy and OpenCV included: the
decode process's is the floor). The last line says how much CPU other processes used during
the rounds (/proc/stat less this process and its measurements).

    .venv/bin/python bench/camera.py                         # 30 s at 10 fps, 3 rounds
    .venv/bin/python bench/camera.py --rounds 1 --seconds 10 # smoke run
    .venv/bin/python bench/camera.py --quick                 # CI: 1 round, a 4 s video
    .venv/bin/python bench/camera.py --scene random --seed 3 --seconds 60
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

import cv2

from edge.drivers.camera.camera import CameraAnalysis
from edge.drivers.camera.driver import CameraOptions, build_analysis
from edge.drivers.camera.source import VideoSource
from simulators.camera_video import SWING_ZONE, Scene, random_scene, site_scene

ALL = ("intrusion", "person_count", "helmet", "smoke")
#: what is measured: "decode" (the baseline) or the analytics run together
KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decode", ()),
    *((a, (a,)) for a in ALL),
    ("all four", ALL),
)
T0 = 1_764_000_000.0  # the video's first frame, seconds since the epoch


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    kind: str
    frames: int  # frames decoded
    analysed: int
    wall_s: float
    cpu_s: float
    events: int
    peak_mb: float


def _pin() -> None:
    cv2.setNumThreads(1)
    cv2.ocl.setUseOpenCL(False)


def _analysis(path: Path, analytics: tuple[str, ...]) -> CameraAnalysis:
    return build_analysis(
        "BENCH-CAM",
        CameraOptions.model_validate(
            {
                "source": str(path),
                "pace": "fast",
                "zones": [{"name": "crane-swing", "polygon": [list(p) for p in SWING_ZONE]}],
                "analytics": {a: {} for a in analytics},
            }
        ),
    )


def _peak_mb() -> float:
    """This process's peak resident memory. VmHWM, not ``ru_maxrss``: Linux carries
    ``ru_maxrss`` across exec, so a spawned child would report at least its parent's
    size when it forked (the rendered video's buffers)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure_full(path: str, kind: str, analytics: tuple[str, ...], fps: float) -> Result:
    """In a fresh process: read every frame, and analyse each (nothing for decode)."""
    _pin()
    analysis = _analysis(Path(path), analytics) if analytics else None
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not cap.isOpened():
        raise OSError(f"cannot open {path}")
    frames = events = 0
    w0, c0 = time.perf_counter(), time.process_time()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if analysis is not None:
            events += len(analysis.analyse(frame, T0 + frames / fps).events)
        frames += 1
    w1, c1 = time.perf_counter(), time.process_time()
    cap.release()
    return Result(kind, frames, frames if analysis else 0, w1 - w0, c1 - c0, events, _peak_mb())


def measure_rate(
    path: str, kind: str, analytics: tuple[str, ...], analysis_fps: float, frames: int
) -> Result:
    """In a fresh process: the camera driver's source at its analysis rate (every frame
    of the file's ``frames`` grabbed, i.e. decoded; ``analysis_fps`` a second of video
    retrieved, i.e. converted to BGR, and analysed; with no analytics only read)."""
    _pin()
    analysis = _analysis(Path(path), analytics) if analytics else None
    source = VideoSource(path, analysis_fps, "fast")
    analysed = events = 0
    # the source's first next() opens the file (its public API has no separate open):
    # the timing includes opening it, a few milliseconds
    w0, c0 = time.perf_counter(), time.process_time()
    while (got := source.next()) is not None:
        if analysis is not None:
            at, frame = got
            events += len(analysis.analyse(frame, at).events)
        analysed += 1
    w1, c1 = time.perf_counter(), time.process_time()
    source.close()
    if source.opens == 0:
        raise OSError(f"cannot open {path}")
    return Result(kind, frames, analysed if analysis else 0, w1 - w0, c1 - c0, events, _peak_mb())


def write_video(scene: Scene, path: str) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    scene.write(Path(path))
    return time.perf_counter() - t0, time.process_time() - c0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (every core, /proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    """CPU seconds of this process and its finished children (the measurements)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--scene",
        choices=("site", "random"),
        default="site",
        help="site: the standard scene (its walkers are all in the first 30 s); "
        "random: --people walkers on random paths (default: site)",
    )
    ap.add_argument("--seconds", type=float, default=30, help="video length (default: 30)")
    ap.add_argument("--fps", type=float, default=10, help="video frame rate (default: 10)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--people", type=int, default=8, help="walkers of --scene random")
    ap.add_argument("--no-plume", action="store_true", help="no smoke in the video")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every kind (default: 3)")
    ap.add_argument(
        "--analysis-fps",
        type=float,
        default=2.0,
        help="the camera's analysis rate for cameras per core and the "
        "last table; 0 skips that table (default: 2)",
    )
    ap.add_argument(
        "--only",
        nargs="+",
        choices=[k for k, _ in KINDS[1:]],
        help="measure only these (and decode)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run (CI): one round of a 4 s video, every kind measured",
    )
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 4
    if args.rounds < 1 or args.seconds <= 0 or args.fps <= 0 or args.analysis_fps < 0:
        ap.error("--rounds, --seconds and --fps must be positive, --analysis-fps not negative")
    kinds = [(k, a) for k, a in KINDS if k == "decode" or not args.only or k in args.only]

    frames = max(1, round(args.seconds * args.fps))
    if args.scene == "random" and frames <= 80:
        ap.error("--scene random needs more than 80 frames (its walkers walk 60 or more)")
    plume = not args.no_plume
    scene = (
        site_scene(frames=frames, seed=args.seed, plume=plume)
        if args.scene == "site"
        else random_scene(args.seed, frames=frames, people=args.people, fps=args.fps, plume=plume)
    )
    if args.scene == "site" and args.fps != scene.fps:
        scene = dataclasses.replace(scene, fps=args.fps)
    _pin()
    cores = len(os.sched_getaffinity(0))
    ctx = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="sw-camera-bench-") as tmp,
        ProcessPoolExecutor(1, mp_context=ctx, max_tasks_per_child=1) as pool,
    ):
        path = str(Path(tmp) / "site.avi")
        wall, _cpu = write_video(scene, path)
        size = Path(path).stat().st_size
        print(f"bench/camera  {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
        print(
            f"machine: {cores} core(s) ({_cpu_model()}), Python {platform.python_version()}, "
            f"OpenCV {cv2.__version__}"
        )
        print(
            "every measurement in a fresh process, OpenCV pinned to 1 thread "
            "(setNumThreads(1), decoder threads 1, OpenCL off): CPU seconds are one core's"
        )
        print(
            f"video: {args.scene} scene (seed {args.seed}{', smoke plume' if plume else ''}"
            f", {len(scene.walkers)} walkers), {scene.width}x{scene.height} at "
            f"{scene.fps:g} fps, {scene.frames} frames ({scene.frames / scene.fps:g} s), "
            f"MJPG AVI {size / 1e6:.1f} MB ({size / scene.frames / 1e3:.0f} kB a frame), "
            f"rendered in {wall:.1f} s before timing"
        )
        print(f"{args.rounds} round(s), the order alternating\n", flush=True)

        m0, o0, t0 = _machine_busy_s(), _own_cpu_s(), time.monotonic()
        full: dict[str, list[Result]] = {k: [] for k, _ in kinds}
        rate: dict[str, list[Result]] = {k: [] for k, _ in kinds}
        for r in range(args.rounds):
            order = kinds if r % 2 == 0 else kinds[::-1]
            for kind, analytics in order:
                res = pool.submit(measure_full, path, kind, analytics, scene.fps).result()
                full[kind].append(res)
                print(
                    f"round {r + 1}  {kind:12} every frame: {res.frames} frames, "
                    f"{res.cpu_s:6.2f} s CPU, {res.frames / res.wall_s:7.1f} fps wall, "
                    f"{res.frames / res.cpu_s:7.1f} fps per core, {res.events} events, "
                    f"peak {res.peak_mb:.0f} MB",
                    flush=True,
                )
            if args.analysis_fps > 0:
                for kind, analytics in order:
                    res = pool.submit(
                        measure_rate, path, kind, analytics, args.analysis_fps, scene.frames
                    ).result()
                    rate[kind].append(res)
                    print(
                        f"round {r + 1}  {kind:12} at {args.analysis_fps:g} fps: "
                        f"{res.analysed} of {res.frames} frames analysed, "
                        f"{res.cpu_s:6.2f} s CPU, {res.events} events, "
                        f"peak {res.peak_mb:.0f} MB",
                        flush=True,
                    )

    m1, o1, t1 = _machine_busy_s(), _own_cpu_s(), time.monotonic()  # workers reaped

    dec = full["decode"]
    dec_fps = _median([x.frames / x.cpu_s for x in dec])
    dec_peak = max(x.peak_mb for x in dec)
    n_af = args.analysis_fps or 2.0
    print(
        f"\nmedians of {args.rounds} round(s), every decoded frame analysed "
        f"({scene.width}x{scene.height}, 1 thread):"
    )
    print(
        f"{'':14}{'frames':>7}{'fps wall':>10}{'fps/core':>10}{'ms CPU/frame':>14}"
        f"{'vs decode':>11}{f'cameras/core @{n_af:g} fps':>24}{'peak MB':>9}"
    )
    for kind, _ in kinds:
        rs = full[kind]
        fpc = _median([x.frames / x.cpu_s for x in rs])
        wall = _median([x.frames / x.wall_s for x in rs])
        cams = "" if kind == "decode" else f"{fpc / n_af:.1f}"
        ratio = "1 (base)" if kind == "decode" else f"{fpc / dec_fps:.3f}"
        print(
            f"{kind:14}{rs[0].frames:>7}{wall:>10.1f}{fpc:>10.1f}{1000 / fpc:>14.1f}"
            f"{ratio:>11}{cams:>24}{max(x.peak_mb for x in rs):>9.0f}"
        )
    print(
        f"(cameras/core = fps per core / {n_af:g}: the analysis alone; peak MB of a process "
        f"that only decodes: {dec_peak:.0f})"
    )

    if args.analysis_fps > 0 and args.rounds > 0:
        video_s = scene.frames / scene.fps
        print(
            f"\na camera at analysis_fps {args.analysis_fps:g} on this {scene.fps:g} fps "
            f"video (VideoSource, pace fast: every frame decoded, "
            f"{args.analysis_fps:g} a second analysed), medians:"
        )
        print(
            f"{'':14}{'analysed':>9}{'CPU s':>8}{'CPU s per video s':>19}"
            f"{'ms/analysed frame':>19}{'cameras/core':>14}{'vs decode':>11}{'peak MB':>9}"
        )
        base_cpu = _median([x.cpu_s for x in rate["decode"]])
        for kind, _ in kinds:
            rs = rate[kind]
            cpu = _median([x.cpu_s for x in rs])
            ratio = "1 (base)" if kind == "decode" else f"{base_cpu / cpu:.3f}"
            per = "" if not rs[0].analysed else f"{(cpu - base_cpu) / rs[0].analysed * 1000:.1f}"
            print(
                f"{kind:14}{rs[0].analysed:>9}{cpu:>8.2f}{cpu / video_s:>19.4f}{per:>19}"
                f"{video_s / cpu:>14.1f}{ratio:>11}{max(x.peak_mb for x in rs):>9.0f}"
            )
        print(
            "(decode here: the same source reading the same frames, none analysed; "
            "ms/analysed frame: CPU above it; cameras/core = video seconds per CPU second)"
        )
    other = max(0.0, (m1 - m0) - (o1 - o0)) / (t1 - t0)
    print(
        f"\nduring the rounds ({t1 - t0:.0f} s) other processes kept {other:.0%} of a core "
        f"busy (of {cores}; the figures are for an otherwise idle machine when that is ~0)"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

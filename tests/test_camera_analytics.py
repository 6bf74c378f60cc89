"""Camera analytics without servers: debouncing, zones, snapshots, configuration errors,
the model path of the helmet and smoke analytics, and precision/recall on generated
video with known truth."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_camera_yolo import tiny_model

from edge.config import EdgeSettings
from edge.devices import build_drivers
from edge.drivers.camera.driver import CameraOptions, build_analysis
from edge.drivers.camera.events import DebounceConfig, Debouncer, Event, Observation
from edge.drivers.camera.snapshot import SnapshotConfig, draw, encode
from edge.drivers.camera.zones import Zone
from simulators.camera_eval import evaluate
from simulators.camera_video import (
    SWING_ZONE,
    Scene,
    Score,
    random_scene,
    score,
    site_scene,
)
from sitewatch.core.profiles import load_profiles
from sitewatch.core.settings import ConfigError


def seen(n: int, zone: str = "crane-swing") -> list[Observation]:
    return [Observation("intrusion", zone, n, 0.9, ((1, 2, 3, 4),) * n)]


class TestDebouncer:
    def test_one_event_per_occurrence_not_per_frame(self) -> None:
        d = Debouncer(DebounceConfig(on_s=1.0, off_s=3.0))
        events: list[Event] = []
        for k in range(60):  # 30 s at 2 frames/s, someone in the zone from 5 s to 20 s
            t = k * 0.5
            events += d.update(seen(2 if 5 <= t <= 20 else 0), t)
        assert [(e.count, e.at) for e in events] == [(2, 6.0), (0, 23.0)]
        assert events[0].seen is not None and events[0].confidence == 0.9
        assert events[0].starts and not events[1].starts

    def test_short_gaps_do_not_split_and_a_blip_is_no_event(self) -> None:
        d = Debouncer(DebounceConfig(on_s=1.0, off_s=3.0))
        timeline = {
            0: 1,
            1: 1,
            2: 1,
            3: 0,
            4: 0,
            5: 1,
            6: 1,  # a 1 s gap: one occurrence
            20: 1,
        }  # a single frame later: under on_s, nothing
        events = [e for k in range(0, 60) for e in d.update(seen(timeline.get(k, 0)), k / 2)]
        assert [e.count for e in events] == [1, 0]

    def test_on_s_counts_continuous_presence_only(self) -> None:
        """Two single sightings on_s apart (a flicker, noise) are no occurrence."""
        d = Debouncer(DebounceConfig(on_s=1.0, off_s=3.0))
        timeline = {0: 1, 2: 1, 8: 1}  # frames 0.5 s apart: seen at 0 s, 1 s and 4 s
        assert [e for k in range(20) for e in d.update(seen(timeline.get(k, 0)), k / 2)] == []

    def test_the_biggest_count_of_the_run_up_is_reported(self) -> None:
        d = Debouncer(DebounceConfig(on_s=1.0, off_s=3.0))
        events = [e for k, n in enumerate([1, 3, 2]) for e in d.update(seen(n), k * 0.5)]
        assert [(e.count, e.at) for e in events] == [(3, 1.0)]

    def test_zones_are_separate(self) -> None:
        d = Debouncer(DebounceConfig(on_s=0.0, off_s=1.0))
        events = d.update(seen(1, "a") + seen(0, "b"), 0.0)
        assert [(e.zone, e.count) for e in events] == [("a", 1)]
        assert d.open() == [("intrusion", "a")]
        assert [(e.zone, e.count) for e in d.close_all(0.5)] == [("a", 0)]

    def test_person_count_reports_a_new_count_once_it_held(self) -> None:
        d = Debouncer(DebounceConfig(on_s=1.0, off_s=3.0))
        counts = [0, 0, 0, 2, 2, 2, 3, 2, 2, 2, 2]  # the 3 lasts one frame only
        events = [
            e
            for k, n in enumerate(counts)
            for e in d.update([Observation("person_count", None, n)], k * 0.5)
        ]
        assert [(e.count, e.at) for e in events] == [(0, 1.0), (2, 2.5)]


def test_zones_contain_by_the_feet_and_refuse_bad_polygons() -> None:
    z = Zone("pit-edge", ((0, 0), (100, 0), (100, 50), (0, 50)))
    assert z.contains((50, 25)) and z.contains((100, 50)) and not z.contains((50, 51))
    assert z.fits(100, 50) and not z.fits(99, 50)
    with pytest.raises(ValueError, match="at least 3 points"):
        Zone("x", ((0, 0), (1, 1)))
    with pytest.raises(ValueError, match="no area"):
        Zone("x", ((0, 0), (1, 1), (2, 2)))


def test_a_snapshot_is_a_jpeg_named_by_its_sha256_with_the_zone_and_boxes_drawn() -> None:
    frame = site_scene(frames=10).frame(5)
    ev = Event(
        "intrusion",
        "crane-swing",
        1,
        12.0,
        0.9,
        "classical",
        Observation("intrusion", "crane-swing", 1, 0.9, ((600, 400, 60, 140),)),
    )
    img = draw(frame, ev, [Zone("crane-swing", SWING_ZONE)], "CAM01")
    jpeg, digest = encode(img, SnapshotConfig(max_width=640, quality=70))
    assert jpeg[:3] == b"\xff\xd8\xff" and hashlib.sha256(jpeg).hexdigest() == digest
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (360, 640, 3)
    # the box's red edge is drawn where the detection is (scaled by 1/2)
    b, g, r = (int(v) for v in decoded[200, 300])
    assert r > 150 and g < 120 and b < 120


def camera_settings(tmp_path: Path, options: dict[str, object]) -> EdgeSettings:
    return EdgeSettings.model_validate(
        {
            "site": "S1",
            "gateway": "GW1",
            "state_dir": str(tmp_path),
            "devices": [
                {"id": "CAM01", "driver": "camera", "profile": "camera_status", "options": options}
            ],
        }
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"source": "x.avi", "analytics": {"facial": {}}},
            "analytics.facial: unknown analytic; available: helmet, intrusion, person_count, smoke",
        ),
        (
            {"source": "x.avi", "analytics": {"helmet": {"min_hat_fractoin": 0.1}}},
            "analytics.helmet.min_hat_fractoin: Extra inputs are not permitted",
        ),
        (
            {"source": "x.avi", "analytics": {"intrusion": {}}},
            "analytics.intrusion: intrusion needs at least one zone",
        ),
        (
            {
                "source": "x.avi",
                "zones": [{"name": "a", "polygon": [[0, 0], [9, 0], [9, 9]]}],
                "analytics": {"intrusion": {"zones": ["b"]}},
            },
            "analytics.intrusion: zones: unknown zone(s) b; the camera has a",
        ),
        (
            {
                "source": "x.avi",
                "analytics": {"smoke": {"model": {"path": "/nowhere.onnx", "classes": ["smoke"]}}},
            },
            "analytics.smoke.model.path: model file /nowhere.onnx does not exist",
        ),
        ({"source": "x.avi", "analytics": {}}, "analytics: Dictionary should have at least 1"),
        (
            {"source": "x.avi", "analytic_fps": 2, "analytics": {"smoke": {}}},
            "analytic_fps: Extra inputs are not permitted",
        ),
    ],
)
def test_camera_configuration_errors_name_the_key(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    settings = camera_settings(tmp_path, options)
    with pytest.raises(ConfigError) as err:
        build_drivers(settings, load_profiles(None))
    assert "devices[0] (CAM01).options" in str(err.value)
    assert message in str(err.value)


def test_the_camera_driver_reports_only_the_camera_profile(tmp_path: Path) -> None:
    settings = camera_settings(tmp_path, {"source": "x.avi", "analytics": {"smoke": {}}})
    settings.devices[0].profile = "environment"
    with pytest.raises(ConfigError, match="reports the 'camera_status' profile"):
        build_drivers(settings, load_profiles(None))


def test_helmet_and_smoke_models_give_events_labelled_model(tmp_path: Path) -> None:
    """With a model configured the analytics use its detections (here a tiny ONNX model
    whose output is known: one bare head in the zone, one fire), and say so."""
    # yolov8 layout (1, 4 + 3 classes, N): head, helmet, fire; model input 64x64, the
    # 1280x720 frame is letterboxed to 64x36 (scale 0.05) below a 14 px band
    candidates = np.array(
        [
            [37.5, 14 + 22.0, 1.0, 1.0, 0.9, 0.0, 0.0],  # a head
            [10.0, 14 + 10.0, 4.0, 4.0, 0.0, 0.0, 0.8],
        ],  # fire
        np.float32,
    )
    model = tiny_model(tmp_path / "site.onnx", candidates.T[None])
    spec = {"path": str(model), "classes": ["head", "helmet", "fire"], "input_size": [64, 64]}
    options = CameraOptions.model_validate(
        {
            "source": "x",
            "zones": [{"name": "crane-swing", "polygon": SWING_ZONE}],
            "analytics": {"helmet": {"model": spec}, "smoke": {"model": spec}},
            "events": {"on_s": 0.0},
        }
    )
    analysis = build_analysis("CAM01", options)
    assert len(analysis.models) == 1  # one model file, loaded and run once per frame
    other = options.model_copy(
        update={
            "analytics": {
                "helmet": {"model": spec},
                "smoke": {"model": {**spec, "score_threshold": 0.6}},
            }
        }
    )
    with pytest.raises(
        ValueError,
        match=r"analytics.smoke.model: .* is also "
        r"analytics.helmet.model, with other settings",
    ):
        build_analysis("CAM01", other)
    out = analysis.analyse(site_scene(frames=2).frame(0), 100.0)
    events = {e.event: (e, snap) for e, snap in out.events}
    no_helmet, snap = events["no_helmet"]
    assert no_helmet.zone == "crane-swing" and no_helmet.count == 1
    assert no_helmet.method == "model" and no_helmet.confidence == pytest.approx(0.9)
    assert snap is not None and hashlib.sha256(snap.jpeg).hexdigest() == snap.sha256
    fire, _ = events["fire_smoke"]
    assert fire.zone is None and fire.method == "model"


def test_scoring_counts_a_split_occurrence_once() -> None:
    truth = [(10.0, 40.0), (60.0, 70.0)]
    assert score(truth, [(11.0, 41.0), (61.0, 70.0)]) == Score(2, 0, 0)
    # one occurrence reported as three events: one found, two made up
    assert score(truth, [(11.0, 20.0), (22.0, 30.0), (32.0, 41.0)]) == Score(1, 2, 1)
    assert score(truth, [(50.0, 52.0)]) == Score(0, 1, 2)
    assert score([(5.0, 5.5)], []) == Score(0, 0, 0)  # shorter than on_s: need not be found


def test_the_first_frame_ends_whatever_a_stop_left_open() -> None:
    options = CameraOptions.model_validate(
        {
            "source": "x",
            "zones": [
                {"name": "crane-swing", "polygon": SWING_ZONE},
                {"name": "store", "polygon": [[0, 0], [99, 0], [99, 99]]},
            ],
            "analytics": {"intrusion": {}, "person_count": {}, "smoke": {}},
        }
    )
    analysis = build_analysis("CAM01", options)
    scene = Scene(frames=3)
    first = [(e.event, e.zone, e.count) for e, _ in analysis.analyse(scene.frame(0), 0).events]
    assert first == [
        ("intrusion", "crane-swing", 0),
        ("intrusion", "store", 0),
        ("fire_smoke", None, 0),
    ]
    assert analysis.analyse(scene.frame(1), 0.5).events == []


def total(scores: list[Score]) -> Score:
    return Score(
        sum(s.true_positives for s in scores),
        sum(s.false_positives for s in scores),
        sum(s.false_negatives for s in scores),
    )


def test_zone_intrusion_precision_and_recall_on_generated_video() -> None:
    """The standard scene and random scenes (people crossing the crane's swing area at
    random): debounced intrusion events against the true occupations, and each analysed
    frame's observation against that frame's truth, both above 0.9."""
    runs = [evaluate(site_scene(), SWING_ZONE)]
    runs += [
        evaluate(random_scene(seed, frames=300, people=3), SWING_ZONE) for seed in (1, 2, 3, 7)
    ]
    events = total([r.intrusion_events for r in runs])
    frames = total([r.intrusion_frames for r in runs])
    print(
        f"\nintrusion occurrences: precision {events.precision:.3f} recall "
        f"{events.recall:.3f} {events}\nintrusion frames: precision "
        f"{frames.precision:.3f} recall {frames.recall:.3f} {frames}"
    )
    assert events.true_positives >= 7
    assert events.precision > 0.9 and events.recall > 0.9
    assert frames.precision > 0.9 and frames.recall > 0.9
    # debounced: an occurrence split into several events would count as false
    # positives above; and there are a handful of events, not one per analysed frame
    intrusions = [e for r in runs for e in r.events if e.event == "intrusion" and e.count]
    assert len(intrusions) == events.true_positives + events.false_positives
    assert sum(r.frames for r in runs) > 10 * len(intrusions)


def test_the_classical_checks_find_bare_heads_and_smoke_and_say_so() -> None:
    run = evaluate(site_scene(plume=True), SWING_ZONE, analytics={"helmet": {}, "smoke": {}})
    bare = [e for e in run.events if e.event == "no_helmet" and e.count]
    assert bare and all(e.method == "classical" for e in bare)
    assert run.helmet_events.recall == 1.0
    smoke = [e for e in run.events if e.event == "fire_smoke" and e.count]
    # the plume starts at 10 s; it is found within a few seconds and is one occurrence
    assert len(smoke) == 1 and 10.0 < smoke[0].at < 16.0 and smoke[0].method == "classical"
    calm = evaluate(site_scene(frames=200), SWING_ZONE, analytics={"smoke": {}})
    assert not [e for e in calm.events if e.event == "fire_smoke" and e.count]

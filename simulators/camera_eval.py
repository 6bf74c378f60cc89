"""How well the camera analytics do on synthetic video with known truth.

Runs the edge's own analysis (:func:`edge.drivers.camera.driver.build_analysis`) over
a :class:`~simulators.camera_video.Scene` at the analysis rate and scores:

- **intrusion, per occurrence**: the debounced intrusion events (start .. end) against
  the true occupations of the zone (:func:`~simulators.camera_video.occupied`);
- **intrusion, per analysed frame**: "someone is in the zone" as the analytic observed it
  (before debouncing) against the truth of that frame;
- **hard hats, per person and frame**: each person the helmet analytic reports bare
  headed is matched to a walker by overlap; precision over those, recall over the bare
  headed walkers seen for at least 2 s.

Used by the tests (which hold the figures above 0.9) and ``scripts/camera-accuracy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from edge.drivers.camera.driver import CameraOptions, build_analysis
from edge.drivers.camera.events import Event
from edge.drivers.camera.people import iou
from simulators.camera_video import (
    Interval,
    Point,
    Scene,
    Score,
    occupied,
    score,
)

ZONE = "crane-swing"


@dataclass
class Evaluation:
    intrusion_events: Score
    intrusion_frames: Score
    helmet_events: Score
    helmet: Score
    events: list[Event] = field(default_factory=list)
    frames: int = 0

    def lines(self) -> list[str]:
        def row(name: str, s: Score) -> str:
            return (
                f"{name:<24} precision {s.precision:.3f}  recall {s.recall:.3f}  "
                f"(tp {s.true_positives}, fp {s.false_positives}, "
                f"fn {s.false_negatives})"
            )

        return [
            row("intrusion occurrences", self.intrusion_events),
            row("intrusion frames", self.intrusion_frames),
            row("no hard hat occurrences", self.helmet_events),
            row("no hard hat persons", self.helmet),
        ]


def evaluate(
    scene: Scene,
    zone: Sequence[Point],
    *,
    analysis_fps: float = 2.0,
    analytics: dict[str, dict[str, Any]] | None = None,
    on_s: float = 1.0,
    off_s: float = 3.0,
) -> Evaluation:
    options = CameraOptions.model_validate(
        {
            "source": "synthetic",
            "zones": [{"name": ZONE, "polygon": list(zone)}],
            "analytics": analytics if analytics is not None else {"intrusion": {}, "helmet": {}},
            "events": {"on_s": on_s, "off_s": off_s},
        }
    )
    analysis = build_analysis("CAM-EVAL", options)
    step = max(1, round(scene.fps / analysis_fps))
    found: dict[str, list[Interval]] = {"intrusion": [], "no_helmet": []}
    start: dict[str, float] = {}
    ftp = ffp = ffn = 0
    htp = hfp = 0
    bare_in_zone = 0  # bare heads seen for 2 s and in the zone, per analysed frame
    bare_found: set[tuple[str, int]] = set()
    events: list[Event] = []
    frames = 0
    for i in range(0, scene.frames, step):
        at = i / scene.fps
        outcome = analysis.analyse(scene.frame(i), at)
        frames += 1
        inside = scene.inside(i, zone)
        truth = bool(inside)
        seen = any(
            o.count for o in outcome.observations if o.event == "intrusion" and o.zone == ZONE
        )
        ftp += truth and seen
        ffp += seen and not truth
        ffn += truth and not seen
        visible = scene.visible(i)
        # the helmet analytic watches the zone: only bare heads in it count as missed
        bare_in_zone += sum(
            1 for w in visible if not w.helmet and w.id in inside and i - w.first >= 2 * scene.fps
        )
        for o in outcome.observations:
            if o.event != "no_helmet" or o.zone != ZONE:
                continue
            for box in o.boxes:
                match = max(visible, key=lambda w: iou(w.box(i) or (0, 0, 1, 1), box), default=None)
                if (
                    match is not None
                    and iou(match.box(i) or (0, 0, 1, 1), box) > 0.3
                    and not match.helmet
                ):
                    htp += 1
                    bare_found.add((match.id, i))
                else:
                    hfp += 1
        for ev, _ in outcome.events:
            events.append(ev)
            if ev.event not in found or ev.zone != ZONE:
                continue
            if ev.count:
                start[ev.event] = ev.at
            elif ev.event in start:
                found[ev.event].append((start.pop(ev.event), ev.at))
    for name, began in start.items():
        found[name].append((began, scene.frames / scene.fps))
    bare = replace(scene, walkers=tuple(w for w in scene.walkers if not w.helmet))
    helmet = Score(htp, hfp, max(0, bare_in_zone - len(bare_found)))
    # a hat is judged over a few frames: a bare head must be in the zone that much longer
    judged_s = on_s + 3 / analysis_fps
    return Evaluation(
        score(occupied(scene, zone, gap_s=off_s), found["intrusion"], min_s=on_s),
        Score(ftp, ffp, ffn),
        score(occupied(bare, zone, gap_s=off_s), found["no_helmet"], min_s=judged_s),
        helmet,
        events,
        frames,
    )

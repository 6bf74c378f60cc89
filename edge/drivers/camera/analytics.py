"""Camera analytics, registered in one place (:data:`ANALYTICS`).

Each analytic has its own options model (validated at start-up with the rest of the
camera's configuration) and, per analysed frame, returns :class:`Observation` s: for each
zone it watches, how many it sees there (0 when none). What several analytics need from
one frame (the people in it, a model's detections) is computed once per frame by the
:class:`FrameContext`.

- ``intrusion``: people whose feet are inside a zone (background subtraction + HOG);
- ``person_count``: people in the picture and in each listed zone;
- ``helmet``: people in a zone without a hard hat, by a helmet model if one is
  configured, else by the classical hard-hat colour check (``method: classical``);
- ``smoke``: smoke or fire by a model, else the classical smoke check (no flames).

Adding one: a class with ``name``, ``Options`` and ``observe``, and a line in
:data:`ANALYTICS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.drivers.camera.events import Method, Observation
from edge.drivers.camera.hardhat import HardHatCheck, HardHatConfig
from edge.drivers.camera.people import Box, PeopleDetector, Person
from edge.drivers.camera.smoke import SmokeCheck, SmokeConfig
from edge.drivers.camera.yolo import Detection, OnnxDetector, YoloConfig
from edge.drivers.camera.zones import Zone
from sitewatch.core.contract import CameraEvent


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelOptions(_Options):
    """A YOLO-style ONNX model the site brings (nothing is downloaded)."""

    path: Path
    #: class index -> label, in the model's order
    classes: list[str] = Field(min_length=1)
    layout: Literal["yolov5", "yolov8"] = "yolov8"
    input_size: tuple[int, int] = (640, 640)
    score_threshold: float = Field(default=0.4, gt=0, le=1)
    nms_threshold: float = Field(default=0.45, gt=0, le=1)

    def load(self) -> OnnxDetector:
        return OnnxDetector(
            self.path,
            YoloConfig(
                tuple(self.classes),
                self.input_size,
                self.layout,
                self.score_threshold,
                self.nms_threshold,
            ),
        )


class FrameContext:
    """One analysed frame and what is computed from it, once."""

    def __init__(
        self, frame: Any, at: float, people: PeopleDetector, models: dict[Path, OnnxDetector]
    ) -> None:
        self.frame, self.at = frame, at
        self._detector, self._models = people, models
        self._people: list[Person] | None = None
        self._detections: dict[Path, list[Detection]] = {}

    @property
    def people_looked_for(self) -> bool:
        return self._people is not None

    @property
    def people(self) -> list[Person]:
        if self._people is None:
            self._people = self._detector.detect(self.frame, self.at)
        return self._people

    def detections(self, model: Path) -> list[Detection]:
        if model not in self._detections:
            self._detections[model] = self._models[model].detect(self.frame)
        return self._detections[model]


class Analytic(ABC):
    name: ClassVar[str]
    Options: ClassVar[type[_Options]]

    def __init__(self, options: Any, zones: Sequence[Zone]) -> None:
        self.options = options
        wanted: list[str] | None = getattr(options, "zones", None)
        known = {z.name: z for z in zones}
        unknown = [n for n in wanted or [] if n not in known]
        if unknown:
            raise ValueError(
                f"zones: unknown zone(s) {', '.join(unknown)}; the camera has "
                f"{', '.join(known) or 'none'}"
            )
        self.zones = [known[n] for n in wanted] if wanted is not None else list(zones)

    def models(self) -> list[ModelOptions]:
        """The models this analytic runs (loaded once per camera)."""
        return []

    @abstractmethod
    def observe(self, ctx: FrameContext) -> list[Observation]: ...

    def _per_zone(
        self,
        event: CameraEvent,
        people: list[Person],
        method: Method = "classical",
        whole_frame: bool = False,
    ) -> list[Observation]:
        out = []
        if whole_frame:
            out.append(_observation(event, None, people, method))
        for z in self.zones:
            out.append(
                _observation(event, z.name, [p for p in people if z.contains(p.feet)], method)
            )
        return out


def _observation(
    event: CameraEvent, zone: str | None, people: Sequence[Person], method: Method
) -> Observation:
    conf = _unit(max((p.confidence for p in people), default=1.0))
    return Observation(
        event, zone, len(people), round(conf, 3), tuple(p.box for p in people), method
    )


class ZoneSelection(_Options):
    #: the zones watched (default: every zone of the camera)
    zones: list[str] | None = None


class Intrusion(Analytic):
    name = "intrusion"
    Options = ZoneSelection

    def __init__(self, options: Any, zones: Sequence[Zone]) -> None:
        super().__init__(options, zones)
        if not self.zones:
            raise ValueError("intrusion needs at least one zone")

    def observe(self, ctx: FrameContext) -> list[Observation]:
        return self._per_zone("intrusion", ctx.people)


class CountOptions(_Options):
    #: zones counted besides the whole picture (default: none)
    zones: list[str] = Field(default_factory=list)


class PersonCount(Analytic):
    name = "person_count"
    Options = CountOptions

    def observe(self, ctx: FrameContext) -> list[Observation]:
        return self._per_zone("person_count", ctx.people, whole_frame=True)


class HelmetOptions(ZoneSelection):
    #: a helmet model; without one, the classical hard-hat colour check runs
    model: ModelOptions | None = None
    #: labels of the model that mean a bare head
    no_helmet_labels: list[str] = Field(
        default_factory=lambda: ["head", "no_helmet", "no-helmet", "nohat"]
    )
    min_hat_fraction: float = Field(default=0.08, gt=0, lt=1)


class Helmet(Analytic):
    """People in a zone (the whole picture when the camera has no zones) without a hat."""

    name = "helmet"
    Options = HelmetOptions

    def __init__(self, options: Any, zones: Sequence[Zone]) -> None:
        super().__init__(options, zones)
        self.check = HardHatCheck(HardHatConfig(min_hat_fraction=options.min_hat_fraction))

    def models(self) -> list[ModelOptions]:
        return [self.options.model] if self.options.model else []

    def observe(self, ctx: FrameContext) -> list[Observation]:
        bare, method = self._bare(ctx)
        return self._per_zone("no_helmet", bare, method, whole_frame=not self.zones)

    def _bare(self, ctx: FrameContext) -> tuple[list[Person], Method]:
        o: HelmetOptions = self.options
        if o.model is not None:
            heads = [d for d in ctx.detections(o.model.path) if d.label in o.no_helmet_labels]
            return [_person_of(d, ctx.people) for d in heads], "model"
        people = ctx.people
        self.check.forget({p.track for p in people})
        return [
            p for p in people if self.check.wears_hat(ctx.frame, p.track, p.head) is False
        ], "classical"


def _person_of(head: Detection, people: list[Person]) -> Person:
    """The person a detected bare head belongs to (for their feet), or one made up below
    the head (a standing person is about 7 heads tall)."""
    x, y, w, h = _int_box(head.box)
    cx = x + w / 2
    for p in people:
        px, py, pw, ph = p.box
        if px <= cx <= px + pw and py - h <= y <= py + ph / 3:
            return Person(p.track, p.box, head.score)
    body: Box = (x - w, y, 3 * w, 7 * h)
    return Person(0, body, head.score)


class SmokeOptions(_Options):
    #: a smoke/fire model; without one, the classical smoke check runs (no flames)
    model: ModelOptions | None = None
    #: labels of the model that mean smoke or fire
    labels: list[str] = Field(default_factory=lambda: ["smoke", "fire", "flame"])
    min_fraction: float = Field(default=0.004, gt=0, lt=1)


class Smoke(Analytic):
    name = "smoke"
    Options = SmokeOptions

    def __init__(self, options: Any, zones: Sequence[Zone]) -> None:
        super().__init__(options, [])
        self.check = SmokeCheck(SmokeConfig(min_fraction=options.min_fraction))

    def models(self) -> list[ModelOptions]:
        return [self.options.model] if self.options.model else []

    def observe(self, ctx: FrameContext) -> list[Observation]:
        o: SmokeOptions = self.options
        if o.model is not None:
            found = [d for d in ctx.detections(o.model.path) if d.label in o.labels]
            boxes = tuple(_int_box(d.box) for d in found)
            conf = _unit(max((d.score for d in found), default=1.0))
            return [
                Observation("fire_smoke", None, min(1, len(found)), round(conf, 3), boxes, "model")
            ]
        share = self.check.fraction(ctx.frame)
        seen = share is not None and share >= o.min_fraction
        region = self.check.region(ctx.frame.shape[1]) if seen else None
        conf = min(1.0, (share or 0.0) / (4 * o.min_fraction))
        return [
            Observation(
                "fire_smoke",
                None,
                int(seen),
                round(conf, 3),
                (region,) if region else (),
                "classical",
            )
        ]


def _unit(score: float) -> float:
    """A confidence in [0, 1], whatever a model's scores are (the contract's range)."""
    return min(1.0, max(0.0, float(score)))


def _int_box(box: tuple[float, float, float, float]) -> Box:
    x, y, w, h = box
    return (round(x), round(y), round(w), round(h))


ANALYTICS: dict[str, type[Analytic]] = {a.name: a for a in (Intrusion, PersonCount, Helmet, Smoke)}

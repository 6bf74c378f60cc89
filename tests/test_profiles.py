"""The shipped device profiles, and the suite every profile must pass."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest

from edge.drivers.simulated.signals import SIGNALS, signal_for
from sitewatch.core import contract
from sitewatch.core.profiles import ProfileError, load_profiles
from sitewatch.core.profiles.loader import default_profiles_dir, load_profile_file
from sitewatch.core.profiles.model import RULE_KINDS

PROFILES = load_profiles()
EXPECTED = {
    "tower_crane",
    "construction_hoist",
    "environment",
    "foundation_pit",
    "high_formwork",
    "electrical",
    "gateway",
    "attendance_gate",
    "camera_status",
}
#: made by the alert service from gate events and camera events: not devices, no
#: simulator of their own
DERIVED = {"attendance_worker", "attendance_site", "camera_zone"}


def test_every_expected_profile_ships() -> None:
    assert set(PROFILES) == EXPECTED | DERIVED
    assert set(PROFILES.of_devices()) == EXPECTED


def test_a_gateway_cannot_send_derived_readings() -> None:
    codec = contract.TelemetryCodec(PROFILES)
    raw = msgspec.json.encode(
        {
            "device": "W1",
            "profile": "attendance_worker",
            "ts": 1,
            "seq": 1,
            "values": {"unregistered": True},
        }
    )
    with pytest.raises(msgspec.ValidationError):
        codec.item_decoder.decode(raw)


@pytest.mark.parametrize("name", sorted(DERIVED))
def test_derived_profiles_are_checked_like_the_others(name: str) -> None:
    p = PROFILES[name]
    assert p.derived and p.standard and p.title
    for field, spec in p.fields.items():
        if spec.type.value in ("float", "int"):
            assert spec.min is not None and spec.max is not None, field
    for rule in p.rules:
        assert getattr(rule, "field", None) in p.fields
        assert rule.title, rule.id  # what the alert says to people
    codec = contract.TelemetryCodec(PROFILES)
    raw = msgspec.json.encode({"device": "D1", "profile": name, "ts": 1, "seq": 1, "values": {}})
    with pytest.raises(msgspec.ValidationError):
        codec.item_decoder.decode(raw)


def test_shipped_rules_use_every_rule_kind() -> None:
    used = {r.kind for p in PROFILES.values() for r in p.rules}
    assert used == set(RULE_KINDS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
class TestEveryProfile:
    def test_names_a_standard_and_units(self, name: str) -> None:
        p = PROFILES[name]
        assert p.standard and p.title
        for field, spec in p.fields.items():
            if spec.type.value in ("float", "int"):
                assert spec.min is not None and spec.max is not None, field

    def test_has_a_simulator_whose_readings_validate(self, name: str) -> None:
        assert name in SIGNALS
        codec = contract.TelemetryCodec(PROFILES)
        model = signal_for(name, seed=7, start=1_763_900_000.0)
        t = 1_763_900_000.0
        for i in range(2000):  # a day and a half of readings at varied times
            values = model.sample(t + i * 67.0)
            raw = msgspec.json.encode(
                {"device": "D1", "profile": name, "ts": 1, "seq": i, "values": values}
            )
            codec.item_decoder.decode(raw)  # raises if out of range / undeclared / wrong type

    def test_rules_only_name_declared_fields(self, name: str) -> None:
        p = PROFILES[name]
        for rule in p.rules:
            field = getattr(rule, "field", None)
            if field is not None:
                assert field in p.fields


def write(tmp_path: Path, text: str, name: str = "thing") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


BASE = """profile: thing
title: Thing
standard: none
sample_interval_s: 1
fields:
  load_pct: {type: float, unit: "%", min: 0, max: 200}
  door: {type: bool}
"""


@pytest.mark.parametrize(
    "extra, message",
    [
        ("colour: red\n", "key colour: Extra inputs are not permitted"),
        (
            "rules:\n  - {id: r, kind: threshold, field: load_pct, op: '>=', value: 90, severity: bad}\n",
            "key rules[0].threshold.severity",
        ),
        (
            "rules:\n  - {id: r, kind: threshold, field: nope, op: '>=', value: 1, severity: alarm}\n",
            "field 'nope' is not declared",
        ),
        (
            "rules:\n  - {id: r, kind: threshold, field: load_pct, op: '>=', value: 500, severity: alarm}\n",
            "outside the physical range",
        ),
        (
            "rules:\n  - {id: r, kind: threshold, field: door, op: '>=', value: 1, severity: alarm}\n",
            "use == or !=",
        ),
        (
            "rules:\n  - {id: r, kind: fancy, severity: alarm}\n",
            "does not match any of the expected",
        ),
        (
            "rules:\n  - {id: r, kind: silent, intervals: 0, severity: alarm}\n",
            "key rules[0].silent.intervals",
        ),
        (
            "rules:\n  - {id: r, kind: window, field: load_pct, op: '>', window_s: 60, severity: alarm,"
            " schedule: [{from: '25:00', to: '06:00', value: 1}]}\n",
            "must be HH:MM",
        ),
        (
            "rules:\n  - {id: r, kind: silent, intervals: 3, severity: alarm}\n"
            "  - {id: r, kind: silent, intervals: 4, severity: alarm}\n",
            "duplicate rule id",
        ),
        (
            "rules:\n  - {id: r, kind: threshold, field: load_pct, op: '>', severity: alarm}\n",
            "exactly one of 'value' or 'schedule'",
        ),
        (
            "rules:\n  - {id: r, kind: window, field: load_pct, op: '>', value: 1, window_s: 60,"
            " min_coverage: 1.5, severity: alarm}\n",
            "key rules[0].window.min_coverage",
        ),
        (
            "rules:\n  - {id: r, kind: window, field: load_pct, op: '>', value: 1, window_s: 60,"
            " min_coverage: -0.1, severity: alarm}\n",
            "key rules[0].window.min_coverage",
        ),
        (
            "rules:\n  - {id: r, kind: window, field: load_pct, op: '>', value: 1, window_s: 60,"
            " max_gap_s: 0, severity: alarm}\n",
            "key rules[0].window.max_gap_s",
        ),
        (
            "rules:\n  - {id: r, kind: window, field: load_pct, op: '>', value: 1, window_s: 60,"
            " max_gap_s: 120, severity: alarm}\n",
            "max_gap_s (120.0) must not exceed window_s",
        ),
    ],
)
def test_bad_profile_names_file_key_and_reason(tmp_path: Path, extra: str, message: str) -> None:
    path = write(tmp_path, BASE + extra)
    with pytest.raises(ProfileError) as err:
        load_profile_file(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "field, message",
    [
        ("{type: float, min: 10, max: 1}", "min (10.0) must be below max"),
        ("{type: float, min: .nan, max: 1}", "finite"),
        ("{type: bool, min: 0}", "min/max only apply to numeric"),
        ("{type: complex}", "key fields.x.type"),
    ],
)
def test_impossible_field_values(tmp_path: Path, field: str, message: str) -> None:
    path = write(tmp_path, BASE.replace("door: {type: bool}", f"x: {field}"))
    with pytest.raises(ProfileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_profile_file(path)


def test_profile_name_must_match_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="must equal the file name"):
        load_profile_file(write(tmp_path, BASE, name="other"))


def test_missing_directory_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="does not exist"):
        load_profiles(tmp_path / "none")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile_file(write(tmp_path, "a: [unclosed"))


def test_default_dir_is_the_checkout() -> None:
    assert default_profiles_dir().name == "device_profiles"
    assert random


def test_window_rules_wait_for_their_coverage_by_default() -> None:
    """Every shipped window rule names its coverage; 0.75 unless a rule says otherwise."""
    windows = [(p.profile, r) for p in PROFILES.values() for r in p.rules if r.kind == "window"]
    assert windows
    for _, r in windows:
        assert 0 < r.min_coverage <= 1
    env = {r.id: r for _, r in windows}
    assert env["noise_leq"].min_coverage == 0.75  # 15 of the 20 min (GB 12523-2011)
    assert env["pm10_hourly"].min_coverage == 0.75  # 45 of 60 min (GB 3095-2012)

"""Loading ``device_profiles/*.yaml`` with errors that name file, key and reason."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from sitewatch.core.profiles.model import Profile


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names file, key and reason."""


def default_profiles_dir() -> Path:
    """``$SITEWATCH_PROFILES_DIR`` or the ``device_profiles/`` folder of this checkout."""
    env = os.environ.get("SITEWATCH_PROFILES_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "device_profiles"


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid"]
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        lines.append(f"  key {_loc(loc)}: {err['msg']}")
    return "\n".join(lines)


def load_profile_file(path: Path) -> Profile:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: key (top level): expected a mapping")
    try:
        profile = Profile.model_validate(raw)
    except ValidationError as exc:
        raise ProfileError(format_validation_error(str(path), exc)) from None
    if profile.profile != path.stem:
        raise ProfileError(
            f"{path}: key profile: {profile.profile!r} must equal the file name {path.stem!r}"
        )
    return profile


@dataclass(frozen=True)
class ProfileSet(Mapping[str, Profile]):
    """All loaded profiles by name."""

    by_name: Mapping[str, Profile]
    directory: Path | None = None

    def __getitem__(self, name: str) -> Profile:
        return self.by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)

    def of_devices(self) -> ProfileSet:
        """The profiles a device can have (the derived ones left out)."""
        return ProfileSet({n: p for n, p in self.by_name.items() if not p.derived}, self.directory)


def load_profiles(directory: Path | None = None) -> ProfileSet:
    directory = directory or default_profiles_dir()
    if not directory.is_dir():
        raise ProfileError(f"{directory}: profile directory does not exist")
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ProfileError(f"{directory}: no *.yaml profiles found")
    return ProfileSet({p.stem: load_profile_file(p) for p in files}, directory)

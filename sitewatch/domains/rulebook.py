"""Per-site and per-device rule settings, without editing the profile files.

Operators write them in the alert service's configuration::

    sites:
      S-001: {utc_offset_h: 8}
    overrides:
      - {site: S-001, rule: pm10_hourly, set: {value: 150}}       # a local dust limit
      - {site: S-001, device: TC-1, rule: load_alarm, set: {value: 95}}
      - {profile: environment, rule: pm10_exceedances, enabled: false}

An override applies to the rules of that id in every profile it matches (``profile``
narrows it); more specific overrides win (profile-wide < site < device), then later ones.
Every override is checked against every profile it can apply to when the service starts,
with the same validation as the profile files, so a bad value fails at start naming the
override and the key - never at 2 a.m. when the reading arrives.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sitewatch.core.ids import Ident
from sitewatch.core.profiles import Profile, ProfileSet
from sitewatch.core.profiles.model import Rule
from sitewatch.core.settings import ConfigError

#: keys an override may not change: they identify the rule
_FIXED = ("id", "kind")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteRules(_Strict):
    #: the site's offset from UTC: day/night limits and per-day periods use local time
    utc_offset_h: float = Field(default=8.0, ge=-12, le=14)


class Override(_Strict):
    site: Ident | None = None
    device: Ident | None = None
    profile: Ident | None = None
    rule: Ident
    enabled: bool = True
    #: rule keys to change (``value``, ``schedule``, ``hysteresis``, ``for_s``, ``window_s``,
    #: ``severity``, ...): anything the rule's kind has, except ``id`` and ``kind``
    set: dict[str, Any] = Field(default_factory=dict)

    @property
    def specificity(self) -> int:
        return 2 if self.device else 1 if self.site else 0

    def matches(self, site: str, device: str, profile: str) -> bool:
        return (
            (self.site is None or self.site == site)
            and (self.device is None or self.device == device)
            and (self.profile is None or self.profile == profile)
        )


def _patched(profile: Profile, rule_id: str, changes: dict[str, Any]) -> Profile:
    """``profile`` with one rule's keys changed, validated as a profile file is."""
    data = profile.model_dump(by_alias=True)
    for rule in data["rules"]:
        if rule["id"] == rule_id:
            # a fixed value replaces a schedule and the other way round
            if "value" in changes and "schedule" not in changes:
                rule["schedule"] = None
            if "schedule" in changes and "value" not in changes:
                rule["value"] = None
            rule.update(changes)
    return Profile.model_validate(data)


class RuleBook:
    """The rules in force for each (site, device, profile), cached."""

    def __init__(
        self,
        profiles: ProfileSet,
        overrides: list[Override] | tuple[Override, ...] = (),
        sites: dict[str, SiteRules] | None = None,
        default_utc_offset_h: float = 8.0,
    ) -> None:
        self.profiles = profiles
        self.sites = sites or {}
        self.default_utc_offset_h = default_utc_offset_h
        # stable sort: by specificity, then file order
        self.overrides = sorted(overrides, key=lambda o: o.specificity)
        self._cache: dict[tuple[str, str, str], tuple[Rule, ...]] = {}
        self._check(list(overrides))

    def _check(self, overrides: list[Override]) -> None:
        for index, o in enumerate(overrides):
            where = f"overrides[{index}] (rule {o.rule})"
            fixed = [k for k in o.set if k in _FIXED]
            if fixed:
                raise ConfigError(f"{where}: key set.{fixed[0]} cannot be overridden")
            if o.profile is not None and o.profile not in self.profiles:
                raise ConfigError(f"{where}: key profile: no profile {o.profile!r}")
            targets = [
                p
                for name, p in self.profiles.items()
                if (o.profile is None or o.profile == name) and any(r.id == o.rule for r in p.rules)
            ]
            if not targets:
                raise ConfigError(f"{where}: key rule: no profile has a rule {o.rule!r}")
            for p in targets:
                try:
                    _patched(p, o.rule, o.set)
                except ValidationError as exc:
                    err = exc.errors()[0]
                    tail = [str(x) for x in err["loc"][3:]] if len(err["loc"]) > 3 else []
                    key = "set." + ".".join(tail) if tail else "set"
                    raise ConfigError(
                        f"{where} in profile {p.profile}: key {key}: {err['msg']}"
                    ) from None

    def utc_offset_h(self, site: str) -> float:
        s = self.sites.get(site)
        return s.utc_offset_h if s is not None else self.default_utc_offset_h

    def rules_for(self, site: str, device: str, profile: str) -> tuple[Rule, ...]:
        key = (site, device, profile)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        p = self.profiles[profile]
        disabled: set[str] = set()
        for o in self.overrides:
            if not o.matches(site, device, profile) or all(r.id != o.rule for r in p.rules):
                continue
            if not o.enabled:
                disabled.add(o.rule)
                continue
            disabled.discard(o.rule)
            if o.set:
                p = _patched(p, o.rule, o.set)
        rules = tuple(r for r in p.rules if r.id not in disabled)
        self._cache[key] = rules
        return rules

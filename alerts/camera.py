"""Camera alerts: camera analytics events and crane slewing in, derived readings out.
Pure logic.

The edge debounces what its analytics see: ONE item when an occurrence starts (``count``
people involved, 1 for ``fire_smoke``; a missing ``count`` means 1) and ONE item with
``count: 0`` when it is over. Per camera and zone the watch keeps what is open and, when
that changes, returns a reading of the derived profile ``camera_zone`` (device
``{camera}-{zone}``, see :func:`zone_device`), which the alert engine evaluates like any
device's readings: same lifecycle, hold time, escalation, overrides and outputs.

``crane_swing_intrusion`` is the one field that needs more than the camera: someone is in
a crane swing zone (its name matches ``camera.crane_swing_zones``) while a crane of the
same site slews. A crane slews at a ``tower_crane`` reading whose ``slew_deg`` differs
from that crane's previous reading by ``slew_min_deg`` or more (across 0/360), and counts
as slewing for ``slew_window_s`` after it. So it holds, in either order, while the
intrusion is open and some crane of the site slewed within the window of now (and of the
intrusion's item); it clears when the person leaves or, at :meth:`CameraWatch.tick`,
when no crane has slewed for the window.

Items are deduplicated by (site, camera, seq) (a resent batch), and applied in device
time per camera, zone and event: an item older than the newest applied one (a backlog
drained next to live data) is late and changes nothing, so it can never clear or
re-raise what holds now. ``person_count`` items raise nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from hashlib import sha256
from typing import Any

import msgspec

from alerts.seqset import SeqSet
from sitewatch.core import contract
from sitewatch.core.ids import is_ident
from sitewatch.domains.alertrecords.settings import CameraSettings
from sitewatch.domains.attendance.watch import Derived

CAMERA_PROFILE = "camera_zone"
#: the profile whose ``slew_deg`` says a crane slews
CRANE_PROFILE = "tower_crane"
#: events that open and close an occurrence (the field of each is its name)
OCCURRENCES = ("no_helmet", "no_vest", "intrusion", "fire_smoke")
#: room an id keeps for "-" and 8 hex digits of a hash
_HASHED_ID = 64 - 9


#: the "zone" of events about the whole picture (no zone in the item)
WHOLE_PICTURE = "picture"


def zone_device(camera: str, zone: str | None) -> str:
    """The derived device of a camera's zone: ``{camera}-{zone}``, ``{camera}-picture``
    for whole-frame events (not the camera's own id: its ``camera_status`` readings are
    that device, and one device id with two profiles would reset the engine's state of
    each, losing the status's ``silent`` alert). Too long an id (over 64 characters)
    becomes ``{camera}-`` and the first 8 hex digits of the zone's SHA-256; for a camera
    id over 55 characters, its first 55, ``-`` and 8 hex digits of the SHA-256 of
    ``{camera}/{zone}``."""
    if zone is None:
        zone = WHOLE_PICTURE
    device = f"{camera}-{zone}"
    if is_ident(device):
        return device
    if len(camera) <= _HASHED_ID:
        return f"{camera}-{sha256(zone.encode()).hexdigest()[:8]}"
    return f"{camera[:_HASHED_ID]}-{sha256(f'{camera}/{zone}'.encode()).hexdigest()[:8]}"


def slew_between(a: float, b: float) -> float:
    """Degrees between two slew angles, the short way round (359.5 to 0.5 is 1)."""
    d = abs(a - b) % 360
    return min(d, 360 - d)


@dataclass(slots=True)
class _Zone:
    """One camera's zone (or its whole frame): one derived device."""

    site: str
    gateway: str
    device: str
    crane_swing: bool
    #: per occurrence event: people involved now (fire_smoke: 1); 0 once it is over
    counts: dict[str, int] = field(default_factory=dict)
    #: per event: device time of the newest item applied
    newest: dict[str, int] = field(default_factory=dict)
    reported: dict[str, Any] | None = None


@dataclass
class CameraStats:
    items: int = 0  # applied
    duplicates: int = 0  # (camera, seq) seen before: a resent batch
    late: int = 0  # older than the newest applied item of its camera, zone and event


class CameraWatch:
    def __init__(self, settings: CameraSettings | None = None) -> None:
        s = settings or CameraSettings()
        self.swing_patterns = tuple(p.lower() for p in s.crane_swing_zones)
        self.slew_min_deg = s.slew_min_deg
        self.window_ms = int(s.slew_window_s * 1000)
        self.stats = CameraStats()
        self._zones: dict[tuple[str, str, str | None], _Zone] = {}
        self._seqs: dict[tuple[str, str], SeqSet] = {}
        #: per (site, crane): device time and slew_deg of its newest reading
        self._cranes: dict[tuple[str, str], tuple[int, float]] = {}
        #: per site: device time of the newest reading at which a crane slewed
        self._slewed: dict[str, int] = {}
        #: per site: crane swing zones with an intrusion open (the only ones cranes move)
        self._swing_open: dict[str, dict[tuple[str, str, str | None], _Zone]] = {}

    def is_crane_swing(self, zone: str | None) -> bool:
        return zone is not None and any(fnmatchcase(zone.lower(), p) for p in self.swing_patterns)

    # -- input ------------------------------------------------------------------------
    def observe(
        self, site: str, gateway: str, items: list[contract.CameraItem], now_ms: int
    ) -> list[Derived]:
        """A camera batch's items: readings of the zones whose state changed."""
        touched: dict[tuple[str, str, str | None], _Zone] = {}
        for i in items:
            seqs = self._seqs.get((site, i.device))
            if seqs is None:
                seqs = self._seqs[(site, i.device)] = SeqSet()
            if not seqs.add(i.seq):
                self.stats.duplicates += 1
                continue
            if i.event not in OCCURRENCES:
                continue  # person_count: a figure for the dashboards, no alert
            zone = None if i.zone is msgspec.UNSET else i.zone
            key = (site, i.device, zone)
            z = self._zones.get(key)
            if z is None:
                z = self._zones[key] = _Zone(
                    site, gateway, zone_device(i.device, zone), self.is_crane_swing(zone)
                )
            if i.ts < z.newest.get(i.event, -1):
                self.stats.late += 1
                continue
            self.stats.items += 1
            z.newest[i.event] = i.ts
            z.counts[i.event] = 1 if i.count is msgspec.UNSET else i.count
            z.gateway = gateway
            if z.crane_swing and i.event == "intrusion":
                open_here = self._swing_open.setdefault(site, {})
                if z.counts["intrusion"]:
                    open_here[key] = z
                else:
                    open_here.pop(key, None)
            touched[key] = z
        return [d for z in touched.values() for d in self._report(z, now_ms)]

    def observe_crane(
        self, site: str, crane: str, ts_ms: int, slew_deg: float, now_ms: int
    ) -> list[Derived]:
        """A tower crane's reading with ``slew_deg``: if it slewed, the crane swing zones
        of the site with someone in them are derived again."""
        before = self._cranes.get((site, crane))
        if before is not None and ts_ms <= before[0]:
            return []  # resent or late: says nothing about now
        self._cranes[(site, crane)] = (ts_ms, slew_deg)
        if before is None or slew_between(before[1], slew_deg) < self.slew_min_deg:
            return []
        if ts_ms > self._slewed.get(site, -1):
            self._slewed[site] = ts_ms
        return [d for z in self._swing_open.get(site, {}).values() for d in self._report(z, now_ms)]

    def tick(self, now_ms: int) -> list[Derived]:
        """Time passes: a crane that no longer slews clears the crane swing alarms."""
        return [
            d
            for zones in self._swing_open.values()
            for z in zones.values()
            if z.reported is not None and z.reported.get("crane_swing_intrusion")
            for d in self._report(z, now_ms)
        ]

    # -- derivation -------------------------------------------------------------------
    def slewing(self, site: str, at_ms: int) -> bool:
        """Did a crane of ``site`` slew within the window before ``at_ms`` (or after)?"""
        last = self._slewed.get(site)
        return last is not None and last >= at_ms - self.window_ms

    def _report(self, z: _Zone, now_ms: int) -> list[Derived]:
        # only the events seen since the service started: after a restart, the end of
        # one occurrence must not clear the alert of another taken over from the store
        values: dict[str, Any] = {
            event: count > 0 if event == "fire_smoke" else count
            for event, count in z.counts.items()
        }
        if "intrusion" in values:
            values["crane_swing_intrusion"] = (
                z.crane_swing
                and values["intrusion"] > 0
                and self.slewing(z.site, max(z.newest["intrusion"], now_ms))
            )
        if values == z.reported:
            return []
        z.reported = values
        return [Derived(z.site, z.gateway, z.device, CAMERA_PROFILE, values)]

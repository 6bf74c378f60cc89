"""What the alert service makes of a gateway's message: the alert changes it causes.

Decode and validate as ingest does (what ingest dead-letters is skipped here), feed each
reading to the :class:`AlertEngine`. Gate events, camera events and tower cranes'
``slew_deg`` go through their watches first (``AttendanceWatch``, ``camera.CameraWatch``),
which turn them into readings of derived profiles. A message whose handling raises (a
bug) is caught at the message boundary, counted by exception type, logged with its topic
and size, and yields no change: ingest dead-letters it as ``internal_error``; the
service, and every other site's alerts, go on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import msgspec

from alerts.camera import CRANE_PROFILE, CameraWatch
from alerts.engine import AlertEngine
from sitewatch.core import contract
from sitewatch.core.decode import BatchDecoder, Rejected, TimeWindow, decode_status
from sitewatch.core.topics import GatewayChannel, TopicError, parse_gateway_topic
from sitewatch.domains.alertrecords.model import Change
from sitewatch.domains.attendance.watch import AttendanceWatch, Derived

log = logging.getLogger("sitewatch.alerts")


def current_ms() -> int:
    """The service's clock: wall-clock milliseconds."""
    return int(time.time() * 1000)


class Intake:
    def __init__(
        self,
        prefix: str,
        codec: contract.TelemetryCodec,
        engine: AlertEngine,
        watch: AttendanceWatch,
        cameras: CameraWatch,
    ) -> None:
        self.prefix = prefix
        self.decoder = BatchDecoder(
            codec, TimeWindow(max_future_ms=300_000, retention_ms=730 * 86_400_000)
        )
        self.engine = engine
        self.watch = watch
        self.cameras = cameras
        self._profile_of = codec.item_by_class
        self.skipped = 0  # messages or items that ingest dead-letters
        #: messages whose handling raised, by exception type (they are skipped)
        self.internal_errors: Counter[str] = Counter()
        self._derived_seq = current_ms() * 1000  # increasing across restarts

    def handle_guarded(self, topic: str, payload: bytes, now_ms: int) -> list[Change]:
        """:meth:`handle`, with the message boundary no exception crosses."""
        try:
            return self.handle(topic, payload, now_ms)
        except Exception as exc:
            kind = type(exc).__name__
            self.internal_errors[kind] += 1
            log.error(
                "alerts: handling the message on %r (%d bytes) raised %s; skipped",
                topic,
                len(payload),
                kind,
                exc_info=exc,
            )
            return []

    def handle(self, topic: str, payload: bytes, now_ms: int) -> list[Change]:
        try:
            t = parse_gateway_topic(self.prefix, topic)
        except TopicError:
            self.skipped += 1
            return []
        if t.channel is GatewayChannel.STATUS:
            if not payload:
                return []
            st = decode_status(payload)
            if isinstance(st, Rejected):
                self.skipped += 1
                return []
            return self.engine.status(t.site, t.gateway, st.state, st.boot, now_ms)
        if t.channel is GatewayChannel.ATTENDANCE:
            gate_events, rejected = self.decoder.items(t.channel, payload, now_ms)
            self.skipped += rejected
            return self.observe_derived(
                self.watch.observe(t.site, t.gateway, gate_events, now_ms), now_ms
            )
        if t.channel is GatewayChannel.CAMERA:
            camera_events, rejected = self.decoder.items(t.channel, payload, now_ms)
            self.skipped += rejected
            return self.observe_derived(
                self.cameras.observe(t.site, t.gateway, camera_events, now_ms), now_ms
            )
        if t.channel is not GatewayChannel.TELEMETRY:
            return []
        items, rejected = self.decoder.items(t.channel, payload, now_ms)
        self.skipped += rejected
        changes: list[Change] = []
        derived: list[Derived] = []
        to_dict, observe = msgspec.to_builtins, self.engine.observe
        for item in items:
            # the reading's fields as a dict; fields the device did not send are left out
            values: dict[str, Any] = to_dict(item.values)
            profile = self._profile_of[type(item)]
            changes += observe(
                t.site, t.gateway, item.device, profile, item.ts, item.seq, values, now_ms
            )
            slew = values.get("slew_deg") if profile == CRANE_PROFILE else None
            if slew is not None:  # crane swing intrusions need to know it slews
                derived += self.cameras.observe_crane(
                    t.site, item.device, item.ts, float(slew), now_ms
                )
        if derived:
            changes += self.observe_derived(derived, now_ms)
        return changes

    def observe_derived(self, derived: list[Derived], now_ms: int) -> list[Change]:
        """Derived readings (attendance, cameras) are evaluated like a device's, stamped
        now."""
        changes: list[Change] = []
        for d in derived:
            self._derived_seq += 1
            changes += self.engine.observe(
                d.site, d.gateway, d.device, d.profile, now_ms, self._derived_seq, d.values, now_ms
            )
        return changes

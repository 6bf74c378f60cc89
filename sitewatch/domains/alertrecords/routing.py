"""Which outputs an alert change goes to: the alert service routes its own changes with it,
and every other process that changes alerts (``sitewatch alerts ack``, the API) routes
its changes the same way, from the same configuration file, so their outbox rows go where
the service would send them."""

from __future__ import annotations

from collections.abc import Mapping

from sitewatch.domains.alertrecords.model import AlertEvent
from sitewatch.domains.alertrecords.settings import AlertSettings
from sitewatch.domains.alertrecords.store import Router
from sitewatch.domains.notifications import Notifier, build_notifier


def make_router(settings: AlertSettings, notifiers: Mapping[str, Notifier]) -> Router:
    """Which outputs get an event: MQTT, InfluxDB (if on), the notifiers that want it."""
    fixed = ["mqtt", "influx"] if settings.influx_enabled else ["mqtt"]

    def route(event: AlertEvent) -> list[str]:
        return fixed + [name for name, n in notifiers.items() if n.wants(event)]

    return route


def router_for(settings: AlertSettings) -> Router:
    """The service's routing, for other processes that change alerts (``sitewatch alerts
    ack``, the API): their outbox rows go where the service would send them."""
    return make_router(settings, {n.name: build_notifier(n) for n in settings.notifiers})

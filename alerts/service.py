"""``sitewatch alerts serve``: the alert service, assembled from its parts.

It has its own persistent MQTT session on the telemetry, attendance, camera and status
topics, next to ingest's (``session.py``): alerts keep coming while InfluxDB is down or
slow, and evaluating rules never takes CPU from the write path (on a small server, they
run on the other core).

Each message becomes alert changes (``intake.py``: decoded as ingest does, the gate and
camera events through their watches, fed to the :class:`AlertEngine`); the committer
(``committer.py``) stores them in small transactions before the message is PUBACKed, and
the dispatcher (``dispatch.py``) delivers them to MQTT, InfluxDB and the notifiers. The
ticker (``ticker.py``) does what time brings: holds and clears, the attendance refresh
(``attendance.py``), escalations. Every ``board_interval_s`` the dashboard feed
(``boardfeed.py``) is written.

At start the service takes over the store's open alerts, the registry's device overrides
(``overrides.py``) and who is on site today. It stops only once no transaction of it is
under way (``storecalls.py``): the next one, on the same store, must find every alert
this one opened.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
from sqlalchemy.exc import SQLAlchemyError

from alerts.attendance import AttendanceRefresh
from alerts.boardfeed import BoardFeed
from alerts.camera import CameraWatch
from alerts.committer import Committer
from alerts.dispatch import (
    Deliver,
    Dispatcher,
    MqttPublisher,
    influx_output,
    mqtt_output,
    notifier_output,
)
from alerts.engine import AlertEngine
from alerts.intake import Intake, current_ms
from alerts.metrics import AlertCollector
from alerts.overrides import with_registry_overrides
from alerts.session import AlertConsumer, alert_session
from alerts.storecalls import StoreCalls
from alerts.ticker import Ticker
from sitewatch.core import contract, mqtt
from sitewatch.core.backoff import Backoff
from sitewatch.core.decode import BatchDecoder
from sitewatch.core.influx import InfluxClient
from sitewatch.core.metrics import MetricsEndpoint, new_registry, serve_metrics
from sitewatch.core.profiles import load_profiles
from sitewatch.core.signals import stop_on_signals
from sitewatch.domains.alertrecords.model import Change
from sitewatch.domains.alertrecords.routing import make_router
from sitewatch.domains.alertrecords.settings import AlertSettings
from sitewatch.domains.alertrecords.store import AlertStore
from sitewatch.domains.attendance.watch import AttendanceWatch
from sitewatch.domains.notifications import Notifier, build_notifier
from sitewatch.domains.rulebook import RuleBook
from sitewatch.domains.schema import create_tables

log = logging.getLogger("sitewatch.alerts")


class AlertService:
    def __init__(self, settings: AlertSettings) -> None:
        s = settings
        self.settings = s
        profiles = load_profiles(s.profiles_dir)
        self.book = RuleBook(profiles, s.overrides, s.sites, s.default_utc_offset_h)
        self.engine = AlertEngine(self.book, hold_s=s.hold_s)
        self.codec = contract.TelemetryCodec(profiles)
        self.prefix = s.mqtt.topic_prefix
        self.notifiers: dict[str, Notifier] = {
            n.name: build_notifier(n, site_utc_offset_h=self.book.utc_offset_h, profiles=profiles)
            for n in s.notifiers
        }
        self.route = make_router(s, self.notifiers)
        self.store = AlertStore(s.database_url, self.route)
        self._stop = asyncio.Event()
        self.session = alert_session(s, self._stop)
        self.connected = self.session.connected
        #: attendance alerts: gate events -> derived readings for the engine
        self.watch = AttendanceWatch()
        #: camera alerts: camera events and cranes slewing -> derived readings
        self.cameras = CameraWatch(s.camera)
        self.intake = Intake(self.prefix, self.codec, self.engine, self.watch, self.cameras)
        #: messages whose handling raised, by exception type (they are skipped)
        self.internal_errors = self.intake.internal_errors
        self.in_store = StoreCalls()
        self.committer = Committer(self.store, self.engine, self.in_store)
        #: alert changes committed by this service, by event kind (for the metrics)
        self.changes_by_kind = self.committer.changes_by_kind
        #: alert changes the store refused for good and that were left out, by kind
        self.refused_by_kind = self.committer.refused_by_kind
        self.attendance = AttendanceRefresh(
            self.store.engine, self.watch, self.intake, self.in_store, s.attendance_refresh_s
        )
        self.ticker = Ticker(
            s,
            self.store,
            self.engine,
            self.intake,
            self.attendance,
            self.cameras,
            self.committer,
            self.in_store,
        )
        self.feed = BoardFeed(
            self.store.engine,
            self.engine,
            self.watch,
            self.in_store,
            interval_s=s.board_interval_s,
            days=s.board_days,
        )
        #: the dashboard feed: rounds written, by outcome ("ok", "error")
        self.board_writes = self.feed.writes
        self._failure: BaseException | None = None
        self.metrics = AlertCollector(self)
        self.registry = new_registry("alerts")
        self.registry.register(self.metrics)
        self.metrics_endpoint: MetricsEndpoint | None = None

    # -- what tests, metrics and tools read of the parts ---------------------------------
    @property
    def decoder(self) -> BatchDecoder:
        return self.intake.decoder

    @decoder.setter
    def decoder(self, decoder: BatchDecoder) -> None:
        self.intake.decoder = decoder

    @property
    def skipped(self) -> int:
        """Messages or items that ingest dead-letters."""
        return self.intake.skipped

    @property
    def dispatcher(self) -> Dispatcher | None:
        return self.committer.dispatcher

    @property
    def _pending(self) -> list[Change]:
        return self.committer.pending

    @property
    def _committing(self) -> int:
        return self.committer.committing

    def handle(self, topic: str, payload: bytes, now_ms: int) -> list[Change]:
        return self.intake.handle(topic, payload, now_ms)

    async def write_board(self, influx: InfluxClient, now: int) -> None:
        await self.feed.write(influx, now)

    def stop(self) -> None:
        self._stop.set()

    # -- running ------------------------------------------------------------------------
    async def run(self) -> None:
        s = self.settings
        async with serve_metrics(
            s.metrics, self.registry, service="alerts", before_scrape=self.metrics.refresh
        ) as endpoint:
            self.metrics_endpoint = endpoint
            await self._run()

    def _apply_registry_overrides(self) -> None:
        self.book = self.engine.book = with_registry_overrides(
            self.store.engine, self.book, self.settings
        )

    async def _run(self) -> None:
        s = self.settings
        backoff = Backoff(0.5, 30)
        while True:
            try:
                await asyncio.to_thread(self.store.create_schema)
                # the registry, worker and ledger tables it reads, if it starts first
                await asyncio.to_thread(create_tables, self.store.engine)
                opened = await asyncio.to_thread(self.store.open_alerts)
                self.ticker.history_n = await asyncio.to_thread(self.store.head)
                attendance = await asyncio.to_thread(
                    self.attendance.read, current_ms(), restore=True
                )
                break
            except SQLAlchemyError as exc:
                delay = backoff.next_delay()
                log.warning("alert store not reachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
        self._apply_registry_overrides()
        log.info("alerts: %d open alerts taken over", self.engine.restore(opened))
        # who is on site today, after the open alerts: an alert that still holds stays
        restored = self.attendance.apply(attendance, current_ms())
        if restored:
            self.committer.pending.extend(restored)  # committed once the committer runs
        async with InfluxClient(s.influx) as influx, httpx.AsyncClient() as http:
            publisher = MqttPublisher(s.mqtt, f"{s.client_id}-out")
            outputs: dict[str, Deliver] = {"mqtt": mqtt_output(publisher, self.prefix)}
            if s.influx_enabled:
                outputs["influx"] = influx_output(influx)
            for name, n in self.notifiers.items():
                outputs[name] = notifier_output(n, http)
            dispatcher = Dispatcher(self.store, outputs, max_retry_delay_s=s.max_retry_delay_s)
            self.committer.dispatcher = dispatcher
            background = [
                asyncio.create_task(c, name=n)
                for n, c in (
                    ("dispatch", dispatcher.run()),
                    ("commit", self.committer.run()),
                    ("tick", self.ticker.run()),
                    ("stats", self.ticker.log_stats()),
                )
            ]
            if s.board_interval_s:
                background.append(
                    asyncio.create_task(self.feed.run(influx, self.connected), name="board")
                )
            for task in background:
                task.add_done_callback(self._background_done)
            try:
                await mqtt.reconnecting(self._session, self._stop, self.connected.clear)
                # let what is committed go out before stopping
                await self.committer.drain()
            finally:
                for t in background:
                    t.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                # a transaction under way commits even though its task was cancelled:
                # not stopped before it has (the next service must see what it stores)
                await self.in_store.settle()
                await publisher.close()
                self.store.dispose()
        if self._failure is not None:
            raise self._failure

    async def _session(self) -> None:
        await self.session.run(lambda client: AlertConsumer(client, self.intake, self.committer))

    def _background_done(self, task: asyncio.Task[None]) -> None:
        """A background task must never die quietly: stop the service, report why."""
        if not task.cancelled() and task.exception() is not None:
            self._failure = task.exception()
            log.error("alert service task %s failed: %r", task.get_name(), self._failure)
            self._stop.set()


async def run_alerts(settings: AlertSettings) -> None:
    service = AlertService(settings)
    stop_on_signals(service.stop)
    await service.run()

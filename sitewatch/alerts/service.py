"""``sitewatch alerts serve``: the alert service.

It has its own persistent MQTT session on the telemetry, attendance, camera and status
topics, next to ingest's: alerts keep coming while InfluxDB is down or slow, and
evaluating rules never takes CPU from the write path (on a small server, they run on the
other core).

Per message: decode and validate as ingest does (what ingest dead-letters is skipped
here), feed each reading to the :class:`AlertEngine`. A message whose handling raises
(a bug) is caught at the message boundary, counted by exception type, logged with its
topic and size, and PUBACKed without changes: ingest dead-letters it as
``internal_error``; the service, and every other site's alerts, go on. Gate events,
camera events and tower cranes' ``slew_deg`` go through their watches first (``AttendanceWatch``,
``camera.CameraWatch``), which turn them into readings of derived profiles. The changes
are committed to the store - with their history entries and outbox rows - in small
transactions by the committer task, and only then is the message PUBACKed: a crash
redelivers what was not committed, and the store's open alerts make the replay raise
nothing twice. The dispatcher then delivers to MQTT, InfluxDB and the notifiers.

A batch the store cannot take because the database is out (or locked) is held and
retried; one it refuses for good (a constraint: a second open alert for one condition) is
stored change by change, the refused ones logged, counted and left out. The service
stops only once no transaction of it is under way: the next one, on the same store, must
find every alert this one opened.

Every ``board_interval_s`` it also writes the dashboard feed (``board.py``): derived
state, rewritten each round, so a failed write is not kept for later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from datetime import date
from typing import Any, ParamSpec, TypeVar

import httpx
import msgspec
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from sitewatch.alerts import board
from sitewatch.alerts.camera import CRANE_PROFILE, CameraWatch
from sitewatch.alerts.dispatch import (
    Deliver,
    Dispatcher,
    MqttPublisher,
    influx_output,
    mqtt_output,
    notifier_output,
)
from sitewatch.alerts.engine import AlertEngine
from sitewatch.alerts.metrics import AlertCollector
from sitewatch.core import contract, mqtt
from sitewatch.core.backoff import Backoff
from sitewatch.core.decode import BatchDecoder, Rejected, TimeWindow, decode_status
from sitewatch.core.influx import InfluxClient, InfluxError
from sitewatch.core.lineprotocol import join_lines
from sitewatch.core.metrics import MetricsEndpoint, new_registry, serve_metrics
from sitewatch.core.profiles import load_profiles
from sitewatch.core.settings import ConfigError
from sitewatch.core.signals import stop_on_signals
from sitewatch.core.topics import GatewayChannel, TopicError, parse_gateway_topic, subscription
from sitewatch.domains.alertrecords.model import Change, EventKind
from sitewatch.domains.alertrecords.routing import make_router
from sitewatch.domains.alertrecords.settings import AlertSettings
from sitewatch.domains.alertrecords.store import REFUSALS, AlertStore, Outgoing, Refused
from sitewatch.domains.attendance import reports
from sitewatch.domains.attendance.ledger import LedgerRow
from sitewatch.domains.attendance.watch import AttendanceWatch, Derived, SiteInfo
from sitewatch.domains.notifications import Notifier, build_notifier
from sitewatch.domains.rulebook import Override, RuleBook
from sitewatch.domains.schema import create_tables

log = logging.getLogger("sitewatch.alerts")

#: what the attendance alerts read from the store: sites' workers, policies and plans,
#: and at start today's gate events
AttendanceState = tuple[dict[str, SiteInfo], list[LedgerRow]]

#: lines per InfluxDB write of the dashboard feed (the batch size InfluxDB suggests)
BOARD_LINES_PER_WRITE = 5000

#: at stop, how long to wait for store transactions still under way (they take
#: milliseconds; SQLite waits up to 10 s for a lock)
STORE_SETTLE_S = 30.0

P = ParamSpec("P")
T = TypeVar("T")


def _now_ms() -> int:
    return int(time.time() * 1000)


class AlertService:
    def __init__(self, settings: AlertSettings) -> None:
        s = settings
        self.settings = s
        profiles = load_profiles(s.profiles_dir)
        self.book = RuleBook(profiles, s.overrides, s.sites, s.default_utc_offset_h)
        self.engine = AlertEngine(self.book, hold_s=s.hold_s)
        self.codec = contract.TelemetryCodec(profiles)
        self.decoder = BatchDecoder(
            self.codec, TimeWindow(max_future_ms=300_000, retention_ms=730 * 86_400_000)
        )
        self.prefix = s.mqtt.topic_prefix
        self.notifiers: dict[str, Notifier] = {
            n.name: build_notifier(n, site_utc_offset_h=self.book.utc_offset_h) for n in s.notifiers
        }
        self.route = make_router(s, self.notifiers)
        self.store = AlertStore(s.database_url, self.route)
        self.connected = asyncio.Event()
        self.skipped = 0  # messages or items that ingest dead-letters
        #: messages whose handling raised, by exception type (they are skipped)
        self.internal_errors: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._client: mqtt.Client | None = None
        self._pending: list[Change] = []
        self._round: asyncio.Future[None] | None = None
        self._committing = 0  # changes in the committer's transaction under way
        #: store calls running in worker threads (see _in_store)
        self._store_calls: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._history_n = 0
        self.dispatcher: Dispatcher | None = None
        self._failure: BaseException | None = None
        self._profile_of = self.codec.item_by_class
        #: alert changes committed by this service, by event kind (for the metrics)
        self.changes_by_kind: Counter[str] = Counter()
        #: alert changes the store refused for good and that were left out, by kind
        self.refused_by_kind: Counter[str] = Counter()
        self.metrics = AlertCollector(self)
        self.registry = new_registry("alerts")
        self.registry.register(self.metrics)
        self.metrics_endpoint: MetricsEndpoint | None = None
        #: attendance alerts: gate events -> derived readings for the engine
        self.watch = AttendanceWatch()
        self._derived_seq = _now_ms() * 1000  # increasing across restarts
        self._attendance_loaded = 0.0
        #: camera alerts: camera events and cranes slewing -> derived readings
        self.cameras = CameraWatch(s.camera)
        #: the dashboard feed: rounds written, by outcome ("ok", "error")
        self.board_writes: Counter[str] = Counter()
        self._board_view = board.StoreView()  # the last one read: kept if the store fails
        self._board_written: dict[str, date] = {}  # per site: "today" of the last round
        self._board_store = board.Outage("reading the store")
        self._board_influx = board.Outage("writing to InfluxDB")

    def stop(self) -> None:
        self._stop.set()

    # -- message -> changes -------------------------------------------------------------
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

    def read_attendance(self, now_ms: int, *, restore: bool = False) -> AttendanceState:
        """The worker registry, policies and plans (and at start, today's gate events
        from the ledger). Blocking: run it in a worker thread."""
        with Session(self.store.engine) as s:
            infos = reports.site_infos(s)
            today = reports.todays_gate_events(s, infos, now_ms) if restore else []
        return infos, today

    def apply_attendance(self, state: AttendanceState, now_ms: int) -> list[Change]:
        infos, today = state
        self._attendance_loaded = time.monotonic()
        derived = self.watch.update_sites(infos, now_ms)
        if today:  # at start: who is on site now, not each moment of the day again
            derived += self.watch.restore([(r.site, r.gateway, r.item()) for r in today], now_ms)
        return self.observe_derived(derived, now_ms)

    def read_board(self, now_ms: int) -> board.StoreView:
        """What the dashboard feed reads from the store. Blocking: run it in a worker
        thread."""
        with Session(self.store.engine) as s:
            return board.read_store(s, dict(self._board_written), now_ms, self.settings.board_days)

    def _queue_changes(self, changes: list[Change]) -> asyncio.Future[None]:
        """Hand changes to the committer; the future is done once they are committed."""
        self._pending.extend(changes)
        if self._round is None:
            self._round = asyncio.get_running_loop().create_future()
        self._wake.set()
        return self._round

    # -- the store ----------------------------------------------------------------------
    async def _in_store(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store call in a worker thread. Cancelling the caller cannot stop the
        thread, whose transaction then commits whenever it gets there: so the call is
        tracked, and the service does not stop before it has ended (:meth:`_settle`).
        Otherwise a service started next on the same store could read the open alerts
        before this one's last commit, and raise them a second time."""
        task = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
        self._store_calls.add(task)
        task.add_done_callback(self._store_call_done)
        return await asyncio.shield(task)

    def _store_call_done(self, task: asyncio.Task[Any]) -> None:
        self._store_calls.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its caller may have been cancelled meanwhile

    async def _settle(self) -> None:
        """Wait for the store calls still under way (at stop)."""
        calls = set(self._store_calls)
        if not calls:
            return
        log.info("alerts: stopping once %d store call(s) under way have ended", len(calls))
        _, pending = await asyncio.wait(calls, timeout=STORE_SETTLE_S)
        if pending:
            log.error(
                "alerts: %d store call(s) still under way after %.0fs; stopping without them",
                len(pending),
                STORE_SETTLE_S,
            )

    async def _store_changes(self, changes: list[Change]) -> tuple[list[Outgoing], list[Refused]]:
        """Store a batch of changes: held and retried while the store is out, stored
        change by change if it refuses some of them for good (those are left out and
        returned)."""
        backoff = Backoff(0.2, 10)
        each = False
        while True:
            self._committing = len(changes)
            try:
                if not each:
                    return await self._in_store(self.store.apply, changes, _now_ms()), []
                return await self._in_store(self.store.apply_each, changes, _now_ms())
            except SQLAlchemyError as exc:
                if isinstance(exc, REFUSALS) and not each:
                    # not an outage: the same batch would be refused forever
                    log.warning(
                        "alert store refused a batch of %d changes (%s); storing them one by one",
                        len(changes),
                        type(exc).__name__,
                    )
                    each = True
                    continue
                delay = backoff.next_delay()
                log.warning(
                    "alert store failed (%s); retrying in %.1fs holding %d changes",
                    type(exc).__name__,
                    delay,
                    len(changes),
                )
            finally:
                self._committing = 0
            await asyncio.sleep(delay)

    async def _refused(self, refused: list[Refused]) -> None:
        """Log and count changes the store refused; where the engine raised an alert the
        store would not take, it takes over the store's alert of that condition."""
        for r in refused:
            c = r.change
            self.refused_by_kind[c.event.value] += 1
            log.error(
                "alert store refused change %s of alert %s (site %s, device %s, "
                "group %s, rule %s, at %d): %s; left out",
                c.event.value,
                c.alert_id,
                c.site,
                c.device,
                c.group,
                c.rule or "-",
                c.at,
                r.reason,
            )
            if c.event is not EventKind.RAISED or not r.first:
                continue
            try:
                stored = await self._in_store(self.store.open_alert, c.site, c.device, c.group)
            except SQLAlchemyError as exc:
                log.warning(
                    "alerts: cannot read the open alert of %s/%s/%s: %s",
                    c.site,
                    c.device,
                    c.group,
                    exc,
                )
                stored = None
            if self.engine.refused(c.alert_id, stored) and stored is not None:
                log.warning(
                    "alerts: took over alert %s of %s/%s/%s from the store instead",
                    stored.id,
                    c.site,
                    c.device,
                    c.group,
                )

    # -- tasks ------------------------------------------------------------------------
    async def _committer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                continue
            changes, self._pending = self._pending, []
            done, self._round = self._round, None
            rows, refused = await self._store_changes(changes)
            left_out = {id(r.change) for r in refused}
            self.changes_by_kind.update(c.event.value for c in changes if id(c) not in left_out)
            assert self.dispatcher is not None
            self.dispatcher.submit(rows)
            if done is not None and not done.done():
                done.set_result(None)
            if refused:
                await self._refused(refused)

    async def _ticker(self) -> None:
        s = self.settings
        after = {"warning": s.escalate_after_s.warning, "alarm": s.escalate_after_s.alarm}
        while True:
            await asyncio.sleep(s.tick_s)
            now = _now_ms()
            try:
                n, resolved = await self._in_store(self.store.resolved_by_people, self._history_n)
                self._history_n = n
                for alert_id in resolved:
                    self.engine.forget(alert_id)
                changes = self.engine.tick(now)
                changes += await self._attendance_tick(now)
                changes += self.observe_derived(self.cameras.tick(now), now)
                if changes:
                    await self._queue_changes(changes)
                escalated, rows = await self._in_store(self.store.escalate_due, now, after)
                self.changes_by_kind.update(e.event.value for e in escalated)
                assert self.dispatcher is not None
                self.dispatcher.submit(rows)
            except SQLAlchemyError as exc:
                log.warning("alert store failed in tick: %s", exc)

    async def _attendance_tick(self, now: int) -> list[Change]:
        if time.monotonic() - self._attendance_loaded >= self.settings.attendance_refresh_s:
            try:
                state = await self._in_store(self.read_attendance, now)
                return self.apply_attendance(state, now)
            except SQLAlchemyError as exc:  # keep what was loaded; the rest of the tick runs
                self._attendance_loaded = time.monotonic()
                log.warning("alerts: worker registry not readable: %s", exc)
        return self.observe_derived(self.watch.tick(now), now)

    async def _board(self, influx: InfluxClient) -> None:
        """The dashboard feed: once the session is up (or after one interval without
        it) and the state restored, then every ``board_interval_s``."""
        interval = self.settings.board_interval_s
        with suppress(TimeoutError):
            async with asyncio.timeout(interval):  # not wait_for: see _drain's callers
                await self.connected.wait()
        while True:
            started = time.monotonic()
            try:
                await self.write_board(influx, _now_ms())
            except Exception:  # a fault in the feed must never stop the safety alerts
                self.board_writes["error"] += 1
                log.exception("dashboard feed: round failed")
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def write_board(self, influx: InfluxClient, now: int) -> None:
        """One round of the dashboard feed."""
        try:
            view = self._board_view = await self._in_store(self.read_board, now)
            self._board_store.ok()
        except SQLAlchemyError as exc:
            # limits and summaries go out all the same, with the registry as last read
            view = replace(self._board_view, teams=(), today={})
            self._board_store.failed(type(exc).__name__, "no team hours until it is back")
        # the engine is read on the event loop; the bulk of the formatting is done off it
        lines = board.site_summary_lines(self.engine, self.watch, view, now)
        lines += await asyncio.to_thread(
            board.bulk_lines, list(self.engine.limits(now)), view.teams, now
        )
        try:
            for i in range(0, len(lines), BOARD_LINES_PER_WRITE):
                await influx.write(join_lines(lines[i : i + BOARD_LINES_PER_WRITE]))
        except InfluxError as exc:
            self.board_writes["error"] += 1
            self._board_influx.failed(exc, "not kept: the next round writes it all again")
            return
        self.board_writes["ok"] += 1
        self._board_influx.ok()
        # the days written as today: next round starts there (the day just ended, once
        # more, when the attendance day has rolled over)
        self._board_written.update(view.today)

    async def _consume(self, client: mqtt.Client) -> None:
        acks: asyncio.Queue[tuple[mqtt.Message, asyncio.Future[None] | None]] = asyncio.Queue()

        async def acker() -> None:
            while True:
                message, fut = await acks.get()
                if fut is not None:
                    await fut
                client.ack(message)

        ack_task = asyncio.create_task(acker(), name="puback")
        try:
            async for message in client.messages():
                changes = self.handle_guarded(message.topic, message.payload, _now_ms())
                acks.put_nowait((message, self._queue_changes(changes) if changes else None))
        finally:
            ack_task.cancel()

    async def _log_stats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_interval_s)
            st = self.engine.stats
            d = self.dispatcher
            cam = self.cameras.stats
            log.info(
                "alerts: readings=%d duplicates=%d late=%d changes=%d skipped=%d "
                "stale_wills=%d camera_items=%d camera_duplicates=%d camera_late=%d "
                "delivered=%s retries=%s failed=%s",
                st.readings,
                st.duplicates,
                st.late,
                st.changes,
                self.skipped,
                st.stale_wills,
                cam.items,
                cam.duplicates,
                cam.late,
                d.stats.delivered if d else {},
                d.stats.retries if d else {},
                d.stats.failed if d else {},
            )

    async def run(self) -> None:
        s = self.settings
        async with serve_metrics(
            s.metrics, self.registry, service="alerts", before_scrape=self.metrics.refresh
        ) as endpoint:
            self.metrics_endpoint = endpoint
            await self._run()

    def _apply_registry_overrides(self) -> None:
        """Per-device overrides set through the API (the registry), after the config's:
        read at start, so a change there takes effect when the service restarts."""
        from sitewatch.domains.registry import Registry

        s = self.settings
        try:
            with Session(self.store.engine) as session:
                found = Registry(session).device_overrides()
        except SQLAlchemyError as exc:  # no registry tables: an alert-only database
            log.info("alerts: no device overrides from the registry (%s)", type(exc).__name__)
            return
        extra: list[Override] = []
        for dev, rule, o in found:
            try:
                candidate = Override(
                    site=dev.site, device=dev.id, profile=dev.profile, rule=rule, **o
                )
                RuleBook(self.book.profiles, [candidate])  # checked alone, to name it
            except (ValidationError, ConfigError) as exc:
                log.error(
                    "alerts: ignoring the registry's override of rule %s of device %s/%s: %s",
                    rule,
                    dev.site,
                    dev.id,
                    exc,
                )
                continue
            extra.append(candidate)
        if extra:
            self.book = RuleBook(
                self.book.profiles, [*s.overrides, *extra], s.sites, s.default_utc_offset_h
            )
            self.engine.book = self.book
            log.info("alerts: %d device rule override(s) from the registry", len(extra))

    async def _run(self) -> None:
        s = self.settings
        backoff = Backoff(0.5, 30)
        while True:
            try:
                await asyncio.to_thread(self.store.create_schema)
                # the registry, worker and ledger tables it reads, if it starts first
                await asyncio.to_thread(create_tables, self.store.engine)
                opened = await asyncio.to_thread(self.store.open_alerts)
                self._history_n = await asyncio.to_thread(self.store.head)
                attendance = await asyncio.to_thread(self.read_attendance, _now_ms(), restore=True)
                break
            except SQLAlchemyError as exc:
                delay = backoff.next_delay()
                log.warning("alert store not reachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
        self._apply_registry_overrides()
        log.info("alerts: %d open alerts taken over", self.engine.restore(opened))
        # who is on site today, after the open alerts: an alert that still holds stays
        restored = self.apply_attendance(attendance, _now_ms())
        if restored:
            self._pending.extend(restored)  # committed once the committer runs
        async with InfluxClient(s.influx) as influx, httpx.AsyncClient() as http:
            publisher = MqttPublisher(s.mqtt, f"{s.client_id}-out")
            outputs: dict[str, Deliver] = {"mqtt": mqtt_output(publisher, self.prefix)}
            if s.influx_enabled:
                outputs["influx"] = influx_output(influx)
            for name, n in self.notifiers.items():
                outputs[name] = notifier_output(n, http)
            self.dispatcher = Dispatcher(self.store, outputs, max_retry_delay_s=s.max_retry_delay_s)
            background = [
                asyncio.create_task(c, name=n)
                for n, c in (
                    ("dispatch", self.dispatcher.run()),
                    ("commit", self._committer()),
                    ("tick", self._ticker()),
                    ("stats", self._log_stats()),
                )
            ]
            if s.board_interval_s:
                background.append(asyncio.create_task(self._board(influx), name="board"))
            for task in background:
                task.add_done_callback(self._background_done)
            try:
                await mqtt.reconnecting(self._session, self._stop, self.connected.clear)
                # let what is committed go out before stopping (asyncio.timeout, not
                # wait_for, which on Python 3.11 swallows a cancellation that comes as
                # what it waits for ends)
                with suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await self._drain()
            finally:
                for t in background:
                    t.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                # a transaction under way commits even though its task was cancelled:
                # not stopped before it has (the next service must see what it stores)
                await self._settle()
                await publisher.close()
                self.store.dispose()
        if self._failure is not None:
            raise self._failure

    def _background_done(self, task: asyncio.Task[None]) -> None:
        """A background task must never die quietly: stop the service, report why."""
        if not task.cancelled() and task.exception() is not None:
            self._failure = task.exception()
            log.error("alert service task %s failed: %r", task.get_name(), self._failure)
            self._stop.set()

    async def _drain(self) -> None:
        """Commit what is pending, and deliver what is committed (the caller bounds it).
        A batch being committed counts, and so does a row being delivered: its rows go
        out before the service stops, and the stop then finds every worker idle rather
        than cancelling one in the middle of a delivery."""
        if self._committing:
            log.info(
                "alerts: stopping once the commit under way (%d changes) is stored",
                self._committing,
            )
        while self._pending or self._committing or (self.dispatcher and self.dispatcher.busy()):
            self._wake.set()
            await asyncio.sleep(0.05)

    async def _session(self) -> None:
        s = self.settings
        client = mqtt.Client(
            s.mqtt,
            client_id=s.client_id,
            clean_start=False,
            session_expiry_s=s.session_expiry_s,
            receive_maximum=s.receive_maximum,
            manual_ack=True,
            max_inflight=100,
        )
        async with client:
            await client.subscribe(
                subscription(self.prefix, GatewayChannel.TELEMETRY),
                subscription(self.prefix, GatewayChannel.ATTENDANCE),
                subscription(self.prefix, GatewayChannel.CAMERA),
                subscription(self.prefix, GatewayChannel.STATUS),
                qos=1,
            )
            self._client = client
            self.connected.set()
            log.info("alerts connected to %s:%d as %s", s.mqtt.host, s.mqtt.port, s.client_id)
            consumer = asyncio.create_task(self._consume(client), name="consume")
            stopper = asyncio.create_task(self._stop.wait(), name="stop")
            try:
                await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if self._stop.is_set():
                    consumer.cancel()  # take nothing more; deliver what is committed
                    with suppress(TimeoutError):
                        async with asyncio.timeout(5):
                            await self._drain()
            finally:
                for t in (consumer, stopper):
                    t.cancel()
                await asyncio.gather(consumer, stopper, return_exceptions=True)
                self.connected.clear()
                self._client = None
            if not consumer.cancelled() and consumer.exception() is not None:
                raise consumer.exception()  # type: ignore[misc]


async def run_alerts(settings: AlertSettings) -> None:
    service = AlertService(settings)
    stop_on_signals(service.stop)
    await service.run()

"""Prometheus metrics of a service: its settings, a registry, and ``/metrics`` over HTTP.

Each service instance has its own :class:`CollectorRegistry` (not prometheus_client's
global one): tests run several services in one process, and a service exports only what
is its own. The services already keep their counters (ingest's ``IngestStats``, the
alert engine's ``EngineStats``, the spool's ``dropped`` ...); their collectors read those
when Prometheus scrapes, so every counter has one implementation and the per-reading
paths do no extra work for metrics.

The endpoint is a small asyncio server in the service's own event loop: collectors read
the service's state in the thread that changes it (no locks, no torn reads), and it
stops with the service. What needs I/O (a spool or database query) is done by the
``before_scrape`` hook, off the event loop, before the collectors run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field

from sitewatch import __version__
from sitewatch.core.settings import ConfigError

log = logging.getLogger("sitewatch.metrics")

LabelValues = TypeVar("LabelValues", bound=tuple[str, ...])

#: a request head larger than this, or slower than the timeout, is dropped
MAX_REQUEST_HEAD = 16 * 1024
REQUEST_TIMEOUT_S = 10.0


class MetricsSettings(BaseModel):
    """The ``metrics`` block of a service's settings."""

    model_config = ConfigDict(extra="forbid")

    #: serve ``GET /metrics`` (Prometheus text format)
    enabled: bool = False
    #: the address to listen on; ``0.0.0.0`` for a Prometheus on another machine
    host: str = "127.0.0.1"
    #: 0: any free port, logged at start
    port: int = Field(default=0, ge=0, le=65535)


@dataclass(frozen=True, slots=True)
class MetricsEndpoint:
    """Where a service's metrics are served."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"


class _Fixed:
    """Metrics that never change (build info)."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self._families = families

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return self._families


def new_registry(service: str) -> CollectorRegistry:
    """A registry of one service instance, with the process's own metrics (CPU, memory,
    open files, start time) and ``sitewatch_build_info``."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    info = GaugeMetricFamily(
        "sitewatch_build_info", "SiteWatch version of this service", labels=["service", "version"]
    )
    info.add_metric([service, __version__], 1)
    registry.register(_Fixed([info]))
    return registry


# -- building metric families from counters ------------------------------------------------


def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    """A counter; ``name`` ends in ``_total``."""
    return CounterMetricFamily(name, documentation, value=value)


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def counter_by(
    name: str,
    documentation: str,
    label: str,
    values: Mapping[str, float],
    known: Iterable[str] = (),
) -> CounterMetricFamily:
    """A counter per value of one label; every ``known`` value is exported, at 0 if it
    was never counted, so that a rate over it exists before the first event."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key in sorted(set(known) | set(values)):
        family.add_metric([key], values.get(key, 0))
    return family


def gauge_by(
    name: str, documentation: str, labels: list[str], values: Mapping[LabelValues, float]
) -> GaugeMetricFamily:
    """A gauge per combination of label values (the keys of ``values``)."""
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for key in sorted(values):
        family.add_metric(list(key), values[key])
    return family


# -- serving -------------------------------------------------------------------------------


@asynccontextmanager
async def serve_metrics(
    settings: MetricsSettings,
    registry: Collector,
    *,
    service: str,
    before_scrape: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[MetricsEndpoint | None]:
    """Serve ``registry`` on ``GET /metrics`` while the block runs; yields where (None
    when metrics are not enabled).

    ``before_scrape`` runs before each scrape (e.g. to query a spool off the event loop);
    if it fails, the scrape still answers with what the collectors have.
    Raises :class:`ConfigError` naming ``metrics.port`` if the address cannot be bound.
    """
    if not settings.enabled:
        yield None
        return
    connections: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await _answer(reader, writer, registry, service, before_scrape)
        finally:
            connections.discard(task)
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()

    try:
        server = await asyncio.start_server(
            handle, settings.host, settings.port, limit=MAX_REQUEST_HEAD
        )
    except OSError as exc:
        raise ConfigError(
            f"key metrics.port: {service} cannot serve metrics on "
            f"{settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None
    port = int(server.sockets[0].getsockname()[1])
    endpoint = MetricsEndpoint(settings.host, port)
    log.info("%s metrics at %s", service, endpoint.url)
    try:
        yield endpoint
    finally:
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()


async def _answer(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    registry: Collector,
    service: str,
    before_scrape: Callable[[], Awaitable[None]] | None,
) -> None:
    """One request, one answer, then the connection is closed."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
        return
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        await _respond(writer, 400, b"bad request\n")
        return
    method, target, _ = parts
    accept = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "accept":
            accept = value.strip()
    if target.split("?", 1)[0] != "/metrics":
        await _respond(writer, 404, b"metrics are at /metrics\n", head_only=method == "HEAD")
        return
    if method not in ("GET", "HEAD"):
        await _respond(writer, 405, b"GET or HEAD\n", extra=[("Allow", "GET, HEAD")])
        return
    if before_scrape is not None:
        try:
            await before_scrape()
        except Exception:
            log.exception("%s metrics: refreshing before the scrape failed", service)
    encoder, content_type = choose_encoder(accept)
    try:
        body = encoder(registry)
    except Exception:
        log.exception("%s metrics: a collector failed", service)
        await _respond(writer, 500, b"a collector failed; see the service's log\n")
        return
    await _respond(writer, 200, body, content_type=content_type, head_only=method == "HEAD")


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}


async def _respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    *,
    content_type: str = "text/plain; charset=utf-8",
    head_only: bool = False,
    extra: Sequence[tuple[str, str]] = (),
) -> None:
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
        *extra,
    ]
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers)
        + "\r\n"
    )
    writer.write(head.encode("latin-1") + (b"" if head_only else body))
    with suppress(ConnectionError):
        await writer.drain()

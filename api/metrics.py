"""``GET /metrics`` of the API, and a count and latency histogram of its requests.

Requests are labelled with their route template (``/sites/{site}/latest``), never the
raw path, so a scan of random URLs cannot grow the number of series: a path no route
matches is ``route="unmatched"``, a method outside the usual ones ``method="other"``.
Each app has its own registry (tests build several).
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sitewatch.core.metrics import new_registry

#: seconds; the API answers from InfluxDB and the store, mostly in milliseconds
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"
#: any other method a client sends is counted as "other" (clients choose the method)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def install(app: FastAPI) -> CollectorRegistry:
    """Add ``GET /metrics`` (Prometheus text format, not in the OpenAPI schema) and the
    request metrics to ``app``, and answer the registry (for the API's other metrics).
    Call it where the app is built, before it starts."""
    registry = new_registry("api")
    labels = ["method", "route", "status"]
    requests = Counter(
        "sitewatch_api_requests_total",
        "HTTP requests answered, by method, route template and status",
        labels,
        registry=registry,
    )
    duration = Histogram(
        "sitewatch_api_request_duration_seconds",
        "Time to answer HTTP requests, by method, route template and status",
        labels,
        registry=registry,
        buckets=BUCKETS,
    )
    app.add_middleware(RequestMetrics, requests=requests, duration=duration, router=app.router)

    # a plain function: FastAPI runs it in a worker thread (the process collector reads
    # /proc), and prometheus_client's metrics are thread-safe
    def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), media_type=content_type)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    return registry


class RequestMetrics:
    """ASGI middleware: counts and times every HTTP request by its route template."""

    def __init__(
        self, app: ASGIApp, *, requests: Counter, duration: Histogram, router: Router
    ) -> None:
        self.app = app
        self.requests = requests
        self.duration = duration
        self.router = router  # its routes, as they are when a request comes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # the router rewrites the scope; keep what matching a route needs
        probe = {
            "type": "http",
            "path": scope["path"],
            "method": scope["method"],
            "root_path": scope.get("root_path", ""),
        }
        status = 500  # if the app raises before it answers, the server says 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = self._template(scope, probe)
            method = scope["method"] if scope["method"] in METHODS else "other"
            values = (method, route, str(status))
            self.duration.labels(*values).observe(time.perf_counter() - start)
            self.requests.labels(*values).inc()

    def _template(self, scope: Scope, probe: Scope) -> str:
        # FastAPI's routes put themselves in the scope; others (/docs) are matched again
        route = scope.get("route")
        if route is None:
            route = next(
                (r for r in self.router.routes if r.matches(probe)[0] is not Match.NONE), None
            )
        path = getattr(route, "path", None)
        return path if isinstance(path, str) else UNMATCHED

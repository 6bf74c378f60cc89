"""InfluxDB over the endpoints that 1.x, 2.x and 3.x all serve: ``/write`` and ``/query``.

Write errors are sorted the way Telegraf's influxdb output does: network errors, 429 and
5xx are retryable (the caller keeps the data and tries again); 4xx are permanent (the
data is refused, e.g. a field-type conflict, and must be dead-lettered). Except 401, 403
and 404: a token InfluxDB does not accept (or one without write access), or a database
or bucket that is not there, is the installation's fault, not the data's. Those are
:class:`InfluxAccessError`: retryable, with a message that says what to fix, so that a
changed ``INFLUX_TOKEN`` holds every reading in the spools instead of dead-lettering it.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

log = logging.getLogger("sitewatch.influx")


class InfluxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = "http://127.0.0.1:8086"
    database: str = Field(default="sitewatch", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    retention_policy: str = ""
    #: InfluxDB 2.x/3.x API token (sent as ``Authorization: Token ...``)
    token: SecretStr | None = None
    username: str = ""
    password: SecretStr | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    #: issue ``CREATE DATABASE`` at start (1.x); 2.x maps a bucket of the same name
    create_database: bool = True


class InfluxError(Exception):
    pass


class RetryableWriteError(InfluxError):
    """Try again later: the data is not lost, the database is just not taking it now."""


class InfluxAccessError(RetryableWriteError):
    """InfluxDB refused the credentials or does not have the database: held and retried
    until an operator fixes the configuration (docs/operations.md)."""

    def __init__(self, status: int, body: str, database: str) -> None:
        super().__init__(f"HTTP {status}: {access_problem(status, database)}; {body.strip()[:200]}")
        self.status = status


def access_problem(status: int, database: str) -> str:
    """What an operator must fix when InfluxDB answers 401, 403 or 404."""
    if status == 404:
        return (
            f"database (bucket) {database!r} not found: create it, or map it "
            "(InfluxDB 2.x: influx v1 dbrp create)"
        )
    return (
        "credentials refused: the influx token (INFLUX_TOKEN in docker-compose) or "
        "username/password is not one this InfluxDB accepts (docs/operations.md)"
    )


#: statuses that say the configuration is wrong, not the data
ACCESS_STATUSES = frozenset({401, 403, 404})


class PermanentWriteError(InfluxError):
    """InfluxDB refused the data itself (4xx); resending it cannot succeed."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body.strip()[:500]}")
        self.status = status
        self.body = body


class InfluxClient:
    def __init__(self, settings: InfluxSettings, *, client: httpx.AsyncClient | None = None):
        self.settings = settings
        headers = {}
        if settings.token is not None:
            headers["Authorization"] = f"Token {settings.token.get_secret_value()}"
        auth = None
        if settings.username:
            pw = settings.password.get_secret_value() if settings.password else ""
            auth = httpx.BasicAuth(settings.username, pw)
        self._http = client or httpx.AsyncClient(
            base_url=settings.url.rstrip("/"),
            headers=headers,
            auth=auth,
            timeout=settings.timeout_s,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
        )
        self._write_params = {"db": settings.database, "precision": "ms"}
        if settings.retention_policy:
            self._write_params["rp"] = settings.retention_policy

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> InfluxClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def ping(self) -> bool:
        try:
            r = await self._http.get("/ping")
        except httpx.HTTPError:
            return False
        return r.status_code == 204

    async def ensure_database(self) -> None:
        if not self.settings.create_database:
            return
        await self.query(f'CREATE DATABASE "{self.settings.database}"', method="POST")

    async def write(self, body: bytes) -> None:
        """Write line protocol (ms precision). Raises Retryable/PermanentWriteError."""
        try:
            r = await self._http.post("/write", params=self._write_params, content=body)
        except httpx.HTTPError as exc:
            raise RetryableWriteError(f"{type(exc).__name__}: {exc}") from exc
        if r.status_code == 204:
            return
        if r.status_code == 429 or r.status_code >= 500:
            raise RetryableWriteError(f"HTTP {r.status_code}: {r.text.strip()[:500]}")
        if r.status_code in ACCESS_STATUSES:
            raise InfluxAccessError(r.status_code, r.text, self.settings.database)
        raise PermanentWriteError(r.status_code, r.text)

    async def query(
        self, q: str, *, method: str = "GET", params: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Run InfluxQL; return the ``results`` list. Raises InfluxError on any error."""
        p = {"db": self.settings.database, "q": q, "epoch": "ms", **(params or {})}
        try:
            if method == "GET":
                r = await self._http.get("/query", params=p)
            else:
                r = await self._http.post("/query", data=p)
        except httpx.HTTPError as exc:
            raise InfluxError(f"query failed: {type(exc).__name__}: {exc}") from exc
        if r.status_code in (401, 403):
            raise InfluxError(
                f"query failed: HTTP {r.status_code}: "
                f"{access_problem(r.status_code, self.settings.database)}"
            )
        if r.status_code != 200:
            raise InfluxError(f"query failed: HTTP {r.status_code}: {r.text.strip()[:500]}")
        results: list[dict[str, Any]] = r.json().get("results", [])
        for res in results:
            if "error" in res:
                raise InfluxError(f"query error: {res['error']}")
        return results

    async def series(self, q: str) -> list[dict[str, Any]]:
        """Rows of the first statement as dicts, with ``tags`` merged in."""
        results = await self.query(q)
        rows: list[dict[str, Any]] = []
        for s in results[0].get("series", []) if results else []:
            cols = s["columns"]
            for values in s["values"]:
                row = dict(zip(cols, values, strict=True))
                row.update(s.get("tags", {}))
                row["_measurement"] = s.get("name")
                rows.append(row)
        return rows

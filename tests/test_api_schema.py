"""Schemathesis over every operation of the API's own OpenAPI schema, against the API as a
real uvicorn process (a free loopback port) on a real InfluxDB, on SQLite and on a real
PostgreSQL. Each generated request (valid and invalid data) also gets a control
character (NUL among them) put into one of its strings - a path or query parameter, a
form or JSON body field at any depth, or an undeclared query parameter - and must be
answered with a 4xx naming that field: never a 5xx, never a dropped connection.
(scripts/api_schema_check.py runs every Schemathesis check with a larger budget.)
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
import schemathesis
from conftest import started_api, wait_for  # noqa: F401
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from sitewatch.programs.localstack import InfluxServer, free_port

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 8
CONTROLS = st.characters(categories=["Cc"])
SECRET = "s" * 40


def _prepare(database_url: str, influx_url: str) -> str:
    """Tables, an admin API key and a site with a gateway and a device: what
    scripts/api_schema_check.py prepares for its run."""
    spec = importlib.util.spec_from_file_location(
        "api_schema_check", Path(__file__).parent.parent / "scripts" / "api_schema_check.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return str(script.prepare(database_url, influx_url))


class ApiProcess:
    def __init__(self, base: str, key: str, log: Path) -> None:
        self.base, self.key, self.log = base, key, log


@pytest.fixture
def api_process(database_url: str, influxdb: InfluxServer, tmp_path: Path) -> Iterator[ApiProcess]:
    port = free_port()
    config = {
        "environment": "production",
        "auth": {"secret_key": SECRET},
        "host": "127.0.0.1",
        "port": port,
        "database_url": database_url,
        "snapshots_dir": str(tmp_path / "snaps"),
        "log_level": "WARNING",
        "influx": {"url": influxdb.url, "database": "schemathesis"},
        "rate_limit": {"enabled": False},
    }
    key = _prepare(database_url, influxdb.url)
    with started_api(config, tmp_path) as base:
        yield ApiProcess(base, key, tmp_path / "api.log")


def _slots(case: Any) -> list[tuple[list[Any], Any]]:
    """(loc, parent container) of every string of a generated request that a control
    character can be put into (a path, query or body value)."""
    found: list[tuple[list[Any], Any]] = []
    for name, value in (case.path_parameters or {}).items():
        if isinstance(value, str):
            found.append((["path", name], case.path_parameters))
    for name, value in (case.query or {}).items():
        if isinstance(value, str):
            found.append((["query", name], case.query))
    if isinstance(case.body, dict | list) and case.media_type in (
        "application/json",
        "application/x-www-form-urlencoded",
    ):
        stack: list[tuple[list[Any], Any]] = [(["body"], case.body)]
        while stack:
            loc, container = stack.pop()
            items = container.items() if isinstance(container, dict) else enumerate(container)
            for k, v in items:
                if isinstance(v, str):
                    found.append(([*loc, k], container))
                elif isinstance(v, dict | list):
                    stack.append(([*loc, k], v))
    return found


def _has_control(value: Any) -> bool:
    if isinstance(value, str):
        return any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)
    if isinstance(value, dict):
        return any(_has_control(k) or _has_control(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_control(v) for v in value)
    return False


def _send(client: httpx.Client, kwargs: dict[str, Any]) -> httpx.Response:
    """Schemathesis's request (as keyword arguments for requests) sent with httpx."""
    data = kwargs.get("data")
    # a path parameter's control character as a client sends it: percent-encoded
    url = re.sub(r"[\x00-\x20\x7f-\x9f]", lambda m: quote(m.group(), safe=""), kwargs["url"])
    return client.request(
        kwargs["method"],
        url,
        params=kwargs.get("params"),
        headers=dict(kwargs.get("headers") or {}),
        json=kwargs.get("json"),
        files=_files(kwargs.get("files")),
        data=data if isinstance(data, dict) else None,
        content=data if isinstance(data, bytes | str) else None,
    )


def _files(files: list[tuple[str, Any]] | None) -> list[tuple[str, Any]] | None:
    """Multipart parts as httpx takes them (invalid data may give a part a number)."""
    if files is None:
        return None
    out = []
    for name, part in files:
        filename, content, *rest = part if isinstance(part, tuple) else (None, part)
        if not isinstance(content, bytes | str):
            content = str(content)
        out.append((name, (filename, content, *rest)))
    return out


def _operations(base: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    return [r.ok() for r in schema.get_all_operations()]  # type: ignore[union-attr]


def test_no_route_answers_a_control_character_with_a_5xx(api_process: ApiProcess) -> None:
    operations = _operations(api_process.base)
    assert len(operations) >= 40, [op.label for op in operations]
    headers = {"X-API-Key": api_process.key}
    client = httpx.Client(timeout=30)
    tried: dict[str, int] = {}
    refused: dict[str, int] = {}
    for op in operations:
        _fuzz(op, client, api_process.base, headers, tried, refused)
    assert set(tried) == {op.label for op in operations}
    print(
        f"schemathesis: {len(operations)} operations, {sum(tried.values())} requests, "
        f"{sum(refused.values())} refused naming the field"
    )
    log = api_process.log.read_text(errors="replace")
    assert "Traceback" not in log and " 500 " not in log, log[-3000:]


def _fuzz(
    op: Any,
    client: httpx.Client,
    base: str,
    headers: dict[str, str],
    tried: dict[str, int],
    refused: dict[str, int],
) -> None:
    strategies = {mode: op.as_strategy(mode) for mode in GenerationMode}

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(mode=st.sampled_from(GenerationMode), char=CONTROLS, data=st.data())
    def check(mode: GenerationMode, char: str, data: st.DataObject) -> None:
        case = data.draw(strategies[mode])
        slots = _slots(case)
        before = case.as_transport_kwargs(base_url=base)
        clean = not any(
            _has_control(v)
            for v in (
                unquote(before["url"]),
                before.get("params"),
                before.get("json"),
                before.get("data"),
            )
        )
        into_slot: bool = data.draw(st.booleans()) if slots else False
        if into_slot:
            loc, container = data.draw(st.sampled_from(slots))
            key = loc[-1]
            value = container[key]
            at = data.draw(st.integers(0, len(value)))
            container[key] = value[:at] + char + value[at:]
        else:  # an undeclared query parameter: every route checks those too
            case.query = {**(case.query or {}), "extra": f"x{char}y"}
            loc = ["query", "extra"]
        try:
            r = _send(client, case.as_transport_kwargs(base_url=base, headers=headers))
        except httpx.TransportError as exc:
            pytest.fail(f"{op.label}: connection dropped for {case.as_curl_command()}: {exc}")
        tried[op.label] = tried.get(op.label, 0) + 1
        assert 400 <= r.status_code < 500, (
            f"{op.label}: {r.status_code} {r.text} for {case.as_curl_command()}"
        )
        error = r.json()["error"]
        if error["code"] in ("http_404", "http_405"):
            return  # a path the routes do not match (a parameter holding a "/")
        named = error["code"] == "invalid_request" and error["detail"][0]["msg"].startswith(
            "control character U+"
        )
        # invalid data may be refused for another reason first (a body that is not JSON)
        assert named or mode is GenerationMode.NEGATIVE, (op.label, r.text)
        if named:
            refused[op.label] = refused.get(op.label, 0) + 1
        if named and clean:  # the only control character is the one put in: it is named
            assert error["detail"][0]["loc"] == loc, (op.label, loc, r.text)

    check()

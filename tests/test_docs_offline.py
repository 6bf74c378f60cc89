"""``/docs`` and ``/redoc`` render in a real browser (Debian's Chromium, driven by
Playwright) with every request that would leave the machine refused: the API serves
Swagger UI's and ReDoc's scripts, styles and icon itself (api/static/vendor).
Without that, both pages stay blank on a county intranet. The vendored files are also
checked against the hashes their manifest records."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import started_api
from playwright.sync_api import Route, expect, sync_playwright

from api.docs import STATIC
from sitewatch.programs.localstack import InfluxServer, free_port

CHROMIUM = Path("/usr/bin/chromium")
#: what a headless Chromium needs on a machine with a closed network (no background
#: calls home, no sandbox as root)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def api_base(influxdb: InfluxServer, tmp_path: Path) -> Iterator[str]:
    """A real ``sitewatch api`` process on a free loopback port."""
    port = free_port()
    config = {
        "environment": "production",
        "auth": {"secret_key": "s" * 40},
        "host": "127.0.0.1",
        "port": port,
        "database_url": f"sqlite:///{tmp_path / 'api.db'}",
        "snapshots_dir": str(tmp_path / "snaps"),
        "log_level": "WARNING",
        "influx": {"url": influxdb.url, "database": "docs"},
    }
    with started_api(config, tmp_path, ready="/openapi.json") as base:
        yield base


def test_vendored_files_are_the_ones_the_manifest_names() -> None:
    manifest = json.loads((STATIC / "vendor" / "manifest.json").read_text())
    for folder, entry in manifest.items():
        for name, f in entry["files"].items():
            data = (STATIC / "vendor" / folder / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == f["sha256"], f"{folder}/{name}"
        assert "LICENSE" in entry["files"], f"{folder}: its licence is shipped with it"


def test_doc_pages_name_only_the_platforms_own_assets(api_base: str) -> None:
    for page in ("/docs", "/redoc"):
        response = httpx.get(api_base + page)
        # the browser refuses what the page's scripts would still fetch from outside
        assert "default-src 'self'" in response.headers["content-security-policy"]
        html = response.text
        assert "cdn.jsdelivr.net" not in html and "fonts.googleapis.com" not in html
        assert "/static/vendor/" in html
    js = httpx.get(api_base + "/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert httpx.get(api_base + "/static/vendor/../docs.py").status_code == 404


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_doc_page_renders_with_the_network_blocked(
    api_base: str, page: str, tmp_path: Path
) -> None:
    assert CHROMIUM.exists(), "scripts/setup.sh installs Debian's chromium"
    own = urlsplit(api_base).netloc
    left_machine: list[str] = []
    failed: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})

            def only_this_machine(route: Route) -> None:
                request = route.request
                if urlsplit(request.url).netloc == own or request.url.startswith(
                    ("data:", "blob:")
                ):
                    route.continue_()
                else:
                    left_machine.append(request.url)
                    route.abort()

            context.route("**/*", only_this_machine)
            tab = context.new_page()
            tab.on("requestfailed", lambda r: failed.append(r.url))
            tab.goto(api_base + page)
            # as a reader sees it: the API's title as a heading, and an operation of it
            expect(
                tab.get_by_role("heading", name=re.compile("SiteWatch API")).first
            ).to_be_visible(timeout=30_000)
            expect(tab.get_by_text("/sites/{site}/latest").first).to_be_attached()
            tab.screenshot(path=str(tmp_path / f"{page.strip('/')}.png"))
        finally:
            browser.close()
    assert left_machine == [], "a request left the machine"
    assert failed == []

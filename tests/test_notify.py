"""Notifiers against a real local HTTP server: payload shapes, signatures, error mapping,
filters, message size limits and config validation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import make_event
from pydantic import TypeAdapter, ValidationError

from sitewatch.core.settings import describe_errors
from sitewatch.core.text import truncate_utf8
from sitewatch.domains.alertrecords.messages import render_markdown
from sitewatch.domains.alertrecords.model import EventKind, Level, event_decoder
from sitewatch.domains.notifications import (
    NOTIFIERS,
    WECOM_MARKDOWN_MAX_BYTES,
    DeliveryError,
    DingTalkConfig,
    DingTalkNotifier,
    NotifierConfig,
    WebhookConfig,
    WebhookNotifier,
    WeComConfig,
    WeComNotifier,
    build_notifier,
)

OK = (200, b'{"errcode":0,"errmsg":"ok"}')


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    """A loopback HTTP server that records requests and answers from a script."""

    base: str
    requests: list[Received] = field(default_factory=list)
    replies: list[tuple[int, bytes]] = field(default_factory=list)  # then OK
    delay_s: float = 0.0

    def url(self, path: str = "/hook") -> str:
        return self.base + path


@pytest.fixture
def server() -> Iterator[Recorder]:
    rec = Recorder(base="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rec.requests.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            time.sleep(rec.delay_s)
            status, reply = rec.replies.pop(0) if rec.replies else OK
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


# --- generic webhook --------------------------------------------------------------------


async def test_webhook_posts_the_event_signed(server: Recorder, client: httpx.AsyncClient) -> None:
    config = WebhookConfig(
        kind="webhook",
        name="ops",
        url=server.url("/in?x=1"),
        secret="s3cret",
        headers={"Authorization": "Bearer t"},
    )
    event = make_event(ack_comment="已通知司机")
    await WebhookNotifier(config).send(event, client)

    (req,) = server.requests
    assert req.path == "/in?x=1"
    assert event_decoder.decode(req.body) == event
    assert req.headers["content-type"] == "application/json"
    assert req.headers["authorization"] == "Bearer t"
    assert req.headers["x-sitewatch-event"] == "raised"
    expected = hmac.new(b"s3cret", req.body, hashlib.sha256).hexdigest()
    assert req.headers["x-sitewatch-signature"] == f"sha256={expected}"


async def test_webhook_without_secret_is_unsigned(
    server: Recorder, client: httpx.AsyncClient
) -> None:
    config = WebhookConfig(kind="webhook", name="ops", url=server.url())
    await WebhookNotifier(config).send(make_event(event=EventKind.RESOLVED), client)
    (req,) = server.requests
    assert "x-sitewatch-signature" not in req.headers
    assert req.headers["x-sitewatch-event"] == "resolved"


# --- WeCom ------------------------------------------------------------------------------


async def test_wecom_sends_markdown(server: Recorder, client: httpx.AsyncClient) -> None:
    config = WeComConfig(kind="wecom", name="site", url=server.url("/cgi-bin/webhook/send?key=K"))
    await WeComNotifier(config).send(make_event(), client)
    (req,) = server.requests
    assert req.query == {"key": ["K"]}
    payload = req.json()
    assert payload["msgtype"] == "markdown"
    assert set(payload) == {"msgtype", "markdown"}
    assert payload["markdown"]["content"] == render_markdown(make_event())[1]


async def test_wecom_mentions_by_mobile_in_a_text_message(
    server: Recorder, client: httpx.AsyncClient
) -> None:
    config = WeComConfig(
        kind="wecom",
        name="site",
        url=server.url(),
        mentioned_mobile_list=("13800001111", "13800002222"),
    )
    await WeComNotifier(config).send(make_event(), client)
    markdown, text = (r.json() for r in server.requests)
    assert markdown["msgtype"] == "markdown"
    assert text == {
        "msgtype": "text",
        "text": {
            "content": render_markdown(make_event())[0],
            "mentioned_mobile_list": ["13800001111", "13800002222"],
        },
    }


async def test_wecom_failed_mention_is_a_failure(
    server: Recorder, client: httpx.AsyncClient
) -> None:
    server.replies = [OK, (200, b'{"errcode":45009,"errmsg":"api freq out of limit"}')]
    config = WeComConfig(
        kind="wecom", name="site", url=server.url(), mentioned_mobile_list=("138",)
    )
    with pytest.raises(DeliveryError) as exc:
        await WeComNotifier(config).send(make_event(), client)
    assert exc.value.retryable
    assert len(server.requests) == 2


async def test_wecom_markdown_is_cut_to_4096_bytes(
    server: Recorder, client: httpx.AsyncClient
) -> None:
    config = WeComConfig(kind="wecom", name="site", url=server.url())
    await WeComNotifier(config).send(make_event(device="塔吊" * 1500), client)
    content = server.requests[0].json()["markdown"]["content"]
    assert len(content.encode()) <= WECOM_MARKDOWN_MAX_BYTES
    assert content.endswith("…") and "塔吊塔吊" in content


async def test_times_are_in_the_sites_local_time(
    server: Recorder, client: httpx.AsyncClient
) -> None:
    config = WeComConfig(kind="wecom", name="site", url=server.url())
    offsets = {"SITE01": 5.5}
    notifier = build_notifier(config, site_utc_offset_h=lambda site: offsets.get(site, 8.0))
    await notifier.send(make_event(), client)
    await notifier.send(make_event(site="SITE02"), client)
    first, second = (r.json()["markdown"]["content"] for r in server.requests)
    assert "2024-05-01 11:33:05 (UTC+5:30)" in first
    assert "2024-05-01 14:03:05 (UTC+8)" in second


# --- DingTalk ---------------------------------------------------------------------------


async def test_dingtalk_signed_markdown_with_mentions(
    server: Recorder, client: httpx.AsyncClient
) -> None:
    config = DingTalkConfig(
        kind="dingtalk",
        name="county",
        url=server.url("/robot/send?access_token=T"),
        secret="SECabc+/=",
        at_mobiles=("13800001111",),
    )
    before = time.time() * 1000
    await DingTalkNotifier(config).send(make_event(), client)
    (req,) = server.requests

    query = req.query
    assert query["access_token"] == ["T"]
    (ts,) = query["timestamp"]
    assert before - 1000 <= int(ts) <= time.time() * 1000 + 1000
    mac = hmac.new(b"SECabc+/=", f"{ts}\nSECabc+/=".encode(), hashlib.sha256).digest()
    assert query["sign"] == [base64.b64encode(mac).decode()]  # parse_qs undid the URL encoding

    title, body = render_markdown(make_event())
    assert req.json() == {
        "msgtype": "markdown",
        "markdown": {"title": title, "text": body + "\n\n@13800001111"},
        "at": {"atMobiles": ["13800001111"], "isAtAll": False},
    }


async def test_dingtalk_without_secret_keeps_the_url(
    server: Recorder, client: httpx.AsyncClient
) -> None:
    config = DingTalkConfig(
        kind="dingtalk", name="site", url=server.url("/robot/send?access_token=T")
    )
    await DingTalkNotifier(config).send(make_event(), client)
    (req,) = server.requests
    assert req.query == {"access_token": ["T"]}
    assert req.json()["at"] == {"atMobiles": [], "isAtAll": False}


async def test_dingtalk_cut_keeps_the_mentions(server: Recorder, client: httpx.AsyncClient) -> None:
    config = DingTalkConfig(
        kind="dingtalk", name="site", url=server.url(), at_mobiles=("13800001111",)
    )
    await DingTalkNotifier(config).send(make_event(device="塔吊" * 1500), client)
    text = server.requests[0].json()["markdown"]["text"]
    assert len(text.encode()) <= 4096
    assert text.endswith("…\n\n@13800001111")


# --- errors -----------------------------------------------------------------------------


def notifier_for(kind: str, url: str) -> Any:
    return build_notifier(
        TypeAdapter(NotifierConfig).validate_python(
            {"kind": kind, "name": kind, "url": url, "timeout_s": 0.5}
        )
    )


@pytest.mark.parametrize(
    ("kind", "reply", "retryable"),
    [
        ("wecom", b'{"errcode":45009,"errmsg":"api freq out of limit"}', True),
        ("wecom", b'{"errcode":93000,"errmsg":"invalid webhook url"}', False),
        ("wecom", b'{"errcode":40058,"errmsg":"markdown.content exceed max length 4096"}', False),
        ("wecom", b'{"errcode":-1,"errmsg":"system busy"}', True),
        ("wecom", b"<html>proxy</html>", True),
        ("dingtalk", b'{"errcode":130101,"errmsg":"send too fast"}', True),
        ("dingtalk", b'{"errcode":310000,"errmsg":"sign not match"}', False),
        ("dingtalk", b'{"errcode":300001,"errmsg":"token is not exist"}', False),
    ],
)
async def test_errcodes(
    server: Recorder, client: httpx.AsyncClient, kind: str, reply: bytes, retryable: bool
) -> None:
    server.replies = [(200, reply)]
    with pytest.raises(DeliveryError) as exc:
        await notifier_for(kind, server.url("/send?key=SECRETKEY")).send(make_event(), client)
    assert exc.value.retryable is retryable
    assert str(exc.value).startswith(f"{kind}: ")
    assert "SECRETKEY" not in str(exc.value)


@pytest.mark.parametrize("kind", sorted(NOTIFIERS))
@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (500, True),
        (503, True),
        (429, True),
        (408, True),
        (400, False),
        (404, False),
    ],
)
async def test_http_status(
    server: Recorder, client: httpx.AsyncClient, kind: str, status: int, retryable: bool
) -> None:
    server.replies = [(status, b'{"error":"nope"}')]
    with pytest.raises(DeliveryError) as exc:
        await notifier_for(kind, server.url()).send(make_event(), client)
    assert exc.value.retryable is retryable
    assert f"HTTP {status}" in str(exc.value)


@pytest.mark.parametrize("kind", sorted(NOTIFIERS))
async def test_connection_refused_is_retryable(client: httpx.AsyncClient, kind: str) -> None:
    with socket.socket() as s:  # a free port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DeliveryError) as exc:
        await notifier_for(kind, f"http://127.0.0.1:{port}/hook").send(make_event(), client)
    assert exc.value.retryable


async def test_timeout_is_retryable(server: Recorder, client: httpx.AsyncClient) -> None:
    server.delay_s = 1.0  # timeout_s is 0.5
    with pytest.raises(DeliveryError) as exc:
        await notifier_for("webhook", server.url()).send(make_event(), client)
    assert exc.value.retryable
    assert "Timeout" in str(exc.value)


# --- filters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "event", "wanted"),
    [
        ({}, {}, True),
        ({}, {"severity": "warning"}, True),
        ({"min_severity": "alarm"}, {"severity": "warning"}, False),
        ({"min_severity": "alarm"}, {"severity": "alarm"}, True),
        ({"levels": ["county"]}, {"level": Level.SITE}, False),
        ({"levels": ["county"]}, {"level": Level.COUNTY, "event": EventKind.ESCALATED}, True),
        ({}, {"event": EventKind.ACKNOWLEDGED}, False),
        ({}, {"event": EventKind.CLEARED}, False),
        ({}, {"event": EventKind.LATE, "late": True}, True),
        ({"events": ["acknowledged"]}, {"event": EventKind.ACKNOWLEDGED}, True),
        ({"events": ["acknowledged"]}, {"event": EventKind.RAISED}, False),
        ({"sites": ["SITE01", "SITE02"]}, {"site": "SITE02"}, True),
        ({"sites": ["SITE01"]}, {"site": "SITE09"}, False),
    ],
)
def test_wants(config: dict[str, Any], event: dict[str, Any], wanted: bool) -> None:
    notifier = WeComNotifier(
        WeComConfig(kind="wecom", name="n", url="https://example.invalid/", **config)
    )
    assert notifier.wants(make_event(**event)) is wanted


# --- message text -----------------------------------------------------------------------


def test_render_markdown_is_bilingual_in_local_time() -> None:
    title, body = render_markdown(make_event())
    assert title == "【告警·新告警】SITE01 Moment overload"
    for part in (
        "告警 alarm",
        "新告警 raised",
        "工地 site: SITE01",
        "TC01 (tower_crane)",
        "104.5",
        "限值 100",
        "limit 100",
        "现场 site",
        "2024-05-01 14:03:05 (UTC+8)",
        "A-SITE01-0001",
        "SiteWatch",
    ):
        assert part in body
    assert "首次 raised" not in body

    _, body = render_markdown(
        make_event(
            event=EventKind.ACKNOWLEDGED,
            severity="warning",
            level=Level.COUNTY,
            actor="zhang.san",
            ack_comment="已通知\n# 停止吊装",
            at=1714543385000 + 600_000,
        ),
        utc_offset_h=5.5,
    )
    for part in (
        "预警 warning",
        "已确认 acknowledged",
        "县住建局 county",
        "操作人 by: zhang.san",
        "备注 comment: 已通知 # 停止吊装",
        "2024-05-01 11:43:05 (UTC+5:30)",
        "首次 raised: 2024-05-01 11:33:05 (UTC+5:30)",
    ):
        assert part in body


@pytest.mark.parametrize("text", ["塔吊力矩超限" * 10, "a🏗️b" * 20, "ascii only " * 10])
def test_truncate_utf8_never_splits_a_character(text: str) -> None:
    for limit in range(1, len(text.encode()) + 2):
        cut = truncate_utf8(text, limit)
        assert len(cut.encode()) <= limit
        if cut != text:
            assert text.startswith(cut.removesuffix("…"))
            assert cut.endswith("…") or limit < len("…".encode())
    assert truncate_utf8(text, 10_000) == text


# --- configuration ----------------------------------------------------------------------


def config_errors(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as exc:
        TypeAdapter(NotifierConfig).validate_python(data)
    return describe_errors("notifiers", exc.value)


def test_config_errors_name_the_key() -> None:
    base = {
        "kind": "wecom",
        "name": "site",
        "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K",
    }
    assert "key wecom.mentioned_mobiles: Extra inputs are not permitted" in config_errors(
        {**base, "mentioned_mobiles": ["138"]}
    )
    assert "key wecom.url: " in config_errors({**base, "url": "ftp://qyapi.weixin.qq.com/"})
    assert "key wecom.url: " in config_errors({**base, "url": "qyapi.weixin.qq.com/send"})
    assert "key wecom.timeout_s: " in config_errors({**base, "timeout_s": 0})
    assert "key wecom.levels.0: " in config_errors({**base, "levels": ["province"]})
    assert "key wecom.sites.0: " in config_errors({**base, "sites": ["SITE 01"]})
    assert "key wecom.name: " in config_errors({**base, "name": "site robot"})
    assert "'webhook', 'wecom', 'dingtalk'" in config_errors({**base, "kind": "slack"})


def test_registry_builds_each_kind() -> None:
    for kind, cls in NOTIFIERS.items():
        config = TypeAdapter(NotifierConfig).validate_python(
            {"kind": kind, "name": "n", "url": "https://example.invalid/"}
        )
        assert type(config) is cls.config_type
        assert type(build_notifier(config)) is cls
    with pytest.raises(TypeError, match="WebhookNotifier needs a WebhookConfig"):
        WebhookNotifier(WeComConfig(kind="wecom", name="n", url="https://x/"))


def test_secrets_stay_out_of_reprs() -> None:
    config = DingTalkConfig(
        kind="dingtalk",
        name="n",
        secret="SECxyz",
        url="https://oapi.dingtalk.com/robot/send?access_token=TOKEN",
    )
    assert "SECxyz" not in repr(config) and "TOKEN" not in repr(config)

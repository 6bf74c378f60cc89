"""Notifiers: send alert events to people (generic webhook, WeCom and DingTalk group robots).

Each notifier kind is a pydantic config (``kind`` selects it in :data:`NotifierConfig`) and
a class registered in :data:`NOTIFIERS`, the one place that lists the kinds. A notifier
makes exactly one delivery attempt per :meth:`Notifier.send` and raises
:class:`DeliveryError` on failure; retry and backoff belong to the caller (the dispatcher),
which uses :attr:`DeliveryError.retryable` to decide between "try again later" and "give
up and tell an operator".

Robot limits that matter (WeCom and DingTalk docs): about 20 messages a minute per robot
(WeCom errcode 45009; DingTalk errcode 130101, after which the robot is throttled for
10 minutes); a WeCom markdown ``content`` is at most 4096 bytes of UTF-8 and a text
``content`` at most 2048; WeCom can @ people by mobile number only in a *text* message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sitewatch.core.ids import IDENT_PATTERN
from sitewatch.core.profiles.model import Profile
from sitewatch.core.text import one_line, truncate_utf8
from sitewatch.domains.alertrecords.messages import render_markdown
from sitewatch.domains.alertrecords.model import (
    SEVERITY_RANK,
    AlertEvent,
    EventKind,
    Level,
    event_encoder,
)

#: WeCom group robot: max bytes of a markdown / text ``content`` (UTF-8).
WECOM_MARKDOWN_MAX_BYTES = 4096
WECOM_TEXT_MAX_BYTES = 2048
#: DingTalk documents no markdown size limit; stay within the same budget as WeCom.
DINGTALK_MARKDOWN_MAX_BYTES = 4096

#: errcodes that mean "later may work": -1 is "system busy" in both APIs' global codes.
WECOM_RETRYABLE_ERRCODES = frozenset({-1, 45009})  # 45009: over 20 messages / minute
DINGTALK_RETRYABLE_ERRCODES = frozenset({-1, 130101})  # 130101: send too fast

SiteId = Annotated[str, Field(pattern=IDENT_PATTERN)]


class DeliveryError(Exception):
    """One delivery attempt failed. ``retryable`` is False when repeating the same request
    cannot succeed (bad key, rejected payload): an operator has to fix the configuration."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


# --- configuration ----------------------------------------------------------------------


class NotifierBase(BaseModel):
    """What every notifier has: where to send, and which alert events it wants.

    The filters look at the alert's state *after* the change: an alert raised as a warning
    reaches a ``min_severity: alarm`` notifier when it escalates to alarm, and a site alert
    reaches a ``levels: [county]`` notifier when it escalates to the county.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    name: str = Field(pattern=IDENT_PATTERN)  # shown in logs and outbox rows
    # The robots' URLs carry their key; secrets and headers stay out of reprs and logs.
    url: str = Field(repr=False)
    timeout_s: float = Field(default=10, gt=0, le=120)
    min_severity: Literal["warning", "alarm"] = "warning"
    levels: tuple[Level, ...] = Field(default=(Level.SITE, Level.COUNTY), min_length=1)
    events: tuple[EventKind, ...] = Field(
        default=(EventKind.RAISED, EventKind.ESCALATED, EventKind.RESOLVED, EventKind.LATE),
        min_length=1,
    )
    sites: tuple[SiteId, ...] = ()  # empty: every site

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value


class WebhookConfig(NotifierBase):
    """Generic webhook: the :class:`AlertEvent` as JSON, optionally HMAC-signed."""

    kind: Literal["webhook"] = "webhook"
    secret: str | None = Field(default=None, repr=False)
    headers: dict[str, str] = Field(default_factory=dict, repr=False)


class WeComConfig(NotifierBase):
    """WeCom (企业微信) group robot; ``url`` is ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY``."""

    kind: Literal["wecom"] = "wecom"
    mentioned_mobile_list: tuple[str, ...] = ()


class DingTalkConfig(NotifierBase):
    """DingTalk (钉钉) custom robot; ``url`` is ``https://oapi.dingtalk.com/robot/send?access_token=T``.

    ``secret`` is the robot's "加签" key (``SEC...``); without it the robot must be secured
    by keyword ("SiteWatch" appears in every message) or IP allow-list.
    """

    kind: Literal["dingtalk"] = "dingtalk"
    secret: str | None = Field(default=None, repr=False)
    at_mobiles: tuple[str, ...] = ()


NotifierConfig = Annotated[
    WebhookConfig | WeComConfig | DingTalkConfig, Field(discriminator="kind")
]


# --- notifiers --------------------------------------------------------------------------


class Notifier(ABC):
    """Sends alert events to one destination; :meth:`send` is a single attempt.

    Each subclass names its config class in ``config_type`` and narrows ``config``.
    ``site_utc_offset_h(site)`` gives the site's UTC offset for the times in messages
    (default: China, +8); ``profiles`` the device profiles whose units and rules word the
    measurement (without them, plain numbers).
    """

    config_type: ClassVar[type[NotifierBase]]
    config: NotifierBase

    def __init__(
        self,
        config: NotifierBase,
        *,
        site_utc_offset_h: Callable[[str], float] | None = None,
        profiles: Mapping[str, Profile] | None = None,
    ) -> None:
        if not isinstance(config, self.config_type):
            raise TypeError(
                f"{type(self).__name__} needs a {self.config_type.__name__}, "
                f"not a {type(config).__name__}"
            )
        self.config = config
        self.site_utc_offset_h = site_utc_offset_h or (lambda site: 8.0)
        self.profiles = profiles

    def wants(self, event: AlertEvent) -> bool:
        """Whether this event passes the severity, level, event-kind and site filters."""
        c = self.config
        return (
            SEVERITY_RANK[event.severity] >= SEVERITY_RANK[c.min_severity]
            and event.level in c.levels
            and event.event in c.events
            and (not c.sites or event.site in c.sites)
        )

    @abstractmethod
    async def send(self, event: AlertEvent, client: httpx.AsyncClient) -> None:
        """Deliver ``event`` once; raise :class:`DeliveryError` if it was not accepted."""

    async def _post(
        self, client: httpx.AsyncClient, url: httpx.URL | str, **kwargs: Any
    ) -> httpx.Response:
        """POST once; transport failures and non-2xx statuses become DeliveryError.

        Messages name the notifier, never the URL: robot URLs carry their key.
        """
        try:
            resp = await client.post(url, timeout=self.config.timeout_s, **kwargs)
        except httpx.TransportError as exc:  # connect refused, timeout, reset, ...
            raise DeliveryError(
                f"{self.config.name}: {type(exc).__name__}: {exc}", retryable=True
            ) from exc
        status = resp.status_code
        if 200 <= status < 300:
            return resp
        retryable = status in (408, 429) or status >= 500
        raise DeliveryError(
            f"{self.config.name}: HTTP {status}: {snippet(resp.text)}", retryable=retryable
        )

    def _render(self, event: AlertEvent) -> tuple[str, str]:
        return render_markdown(
            event, utc_offset_h=self.site_utc_offset_h(event.site), profiles=self.profiles
        )

    def _check_errcode(self, resp: httpx.Response, retryable_codes: frozenset[int]) -> None:
        """WeCom and DingTalk answer HTTP 200 with ``{"errcode": 0}`` or an error code."""
        try:
            data = resp.json()
            errcode = int(data["errcode"])
        except (ValueError, KeyError, TypeError):
            raise DeliveryError(
                f"{self.config.name}: unexpected reply: {snippet(resp.text)}", retryable=True
            ) from None
        if errcode != 0:
            raise DeliveryError(
                f"{self.config.name}: errcode {errcode}: {snippet(str(data.get('errmsg', '')))}",
                retryable=errcode in retryable_codes,
            )


class WebhookNotifier(Notifier):
    """POSTs the event JSON exactly as published on MQTT.

    With a ``secret``, ``X-SiteWatch-Signature: sha256=<hex>`` is the HMAC-SHA256 of the
    raw body under the secret, so the receiver can check who sent it. ``X-SiteWatch-Event``
    (the event kind) is always sent, to route without parsing the body.
    """

    config_type = WebhookConfig
    config: WebhookConfig

    async def send(self, event: AlertEvent, client: httpx.AsyncClient) -> None:
        body = event_encoder.encode(event)
        headers = dict(self.config.headers)
        headers["Content-Type"] = "application/json"
        headers["X-SiteWatch-Event"] = str(event.event)
        if self.config.secret is not None:
            digest = hmac.new(self.config.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-SiteWatch-Signature"] = f"sha256={digest}"
        await self._post(client, self.config.url, content=body, headers=headers)


class WeComNotifier(Notifier):
    """WeCom group robot: a markdown message, then, if ``mentioned_mobile_list`` is set, a
    short text message that @-mentions those people (markdown cannot mention by mobile).

    If the mention fails after the markdown went out, the error is raised all the same: a
    retry repeats the markdown, and a duplicate is better than an alarm nobody was @'d for.
    """

    config_type = WeComConfig
    config: WeComConfig

    async def send(self, event: AlertEvent, client: httpx.AsyncClient) -> None:
        title, body = self._render(event)
        markdown = {"content": truncate_utf8(body, WECOM_MARKDOWN_MAX_BYTES)}
        await self._send(client, {"msgtype": "markdown", "markdown": markdown})
        if self.config.mentioned_mobile_list:
            text = {
                "content": truncate_utf8(title, WECOM_TEXT_MAX_BYTES),
                "mentioned_mobile_list": list(self.config.mentioned_mobile_list),
            }
            await self._send(client, {"msgtype": "text", "text": text})

    async def _send(self, client: httpx.AsyncClient, payload: dict[str, Any]) -> None:
        resp = await self._post(client, self.config.url, json=payload)
        self._check_errcode(resp, WECOM_RETRYABLE_ERRCODES)


class DingTalkNotifier(Notifier):
    """DingTalk custom robot: one markdown message; ``at_mobiles`` go both in ``at`` and,
    as ``@mobile``, at the end of the text (DingTalk only highlights mentions found there).

    With a ``secret``, ``timestamp`` (ms) and ``sign`` = base64(HMAC-SHA256(secret,
    "timestamp\\nsecret")) are added to the URL's query, next to ``access_token``. DingTalk
    rejects a timestamp more than an hour off, so the sending host's clock must be right.
    """

    config_type = DingTalkConfig
    config: DingTalkConfig

    async def send(self, event: AlertEvent, client: httpx.AsyncClient) -> None:
        title, body = self._render(event)
        mobiles = list(self.config.at_mobiles)
        mentions = ("\n\n" + " ".join(f"@{m}" for m in mobiles)) if mobiles else ""
        budget = DINGTALK_MARKDOWN_MAX_BYTES - len(mentions.encode())
        payload = {
            "msgtype": "markdown",
            "markdown": {"title": title, "text": truncate_utf8(body, budget) + mentions},
            "at": {"atMobiles": mobiles, "isAtAll": False},
        }
        url = httpx.URL(self.config.url)
        if self.config.secret is not None:
            # copy_merge_params keeps access_token: httpx's params= would replace the query
            url = url.copy_merge_params(dingtalk_sign(self.config.secret))
        resp = await self._post(client, url, json=payload)
        self._check_errcode(resp, DINGTALK_RETRYABLE_ERRCODES)


#: The notifier kinds: ``kind`` in the configuration -> the class that sends.
NOTIFIERS: dict[str, type[Notifier]] = {
    "webhook": WebhookNotifier,
    "wecom": WeComNotifier,
    "dingtalk": DingTalkNotifier,
}


def build_notifier(
    config: NotifierBase,
    *,
    site_utc_offset_h: Callable[[str], float] | None = None,
    profiles: Mapping[str, Profile] | None = None,
) -> Notifier:
    """The notifier for a validated config (one of :data:`NotifierConfig`)."""
    cls = NOTIFIERS.get(config.kind)
    if cls is None:
        raise ValueError(f"no notifier of kind {config.kind!r}")
    return cls(config, site_utc_offset_h=site_utc_offset_h, profiles=profiles)


def dingtalk_sign(secret: str, timestamp_ms: int | None = None) -> dict[str, str]:
    """The ``timestamp`` and ``sign`` query parameters of a signed DingTalk request.

    ``sign`` is returned plain base64: the URL encoding happens when it is put in the URL.
    """
    ts = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    return {"timestamp": ts, "sign": base64.b64encode(mac).decode("ascii")}


def snippet(text: str) -> str:
    """A reply body shortened for an error message (logs, outbox rows)."""
    return one_line(text, 200) or "(empty body)"

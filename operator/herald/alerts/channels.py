"""Delivery of notifications to one channel over HTTP (httpx), with retries.

A :class:`Sender` turns :class:`Notification` s into HTTP requests for its
channel type. Retries (tenacity, bounded attempts, exponential backoff) cover
network errors, HTTP 5xx and 429; any other 4xx fails at once. Nothing here
raises past :meth:`Sender.deliver` except :class:`DeliveryError`, whose text
is redacted.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from .book import Notification
from .config import (
    AlertmanagerChannel,
    DeliveryRetry,
    DiscordChannel,
    TelegramChannel,
    WebhookChannel,
)
from .formatting import (
    Redactor,
    alertmanager_alert,
    canonical_json,
    discord_payload,
    sign,
    slack_payload,
    telegram_payload,
    webhook_digest,
    webhook_payload,
)

__all__ = [
    "USER_AGENT",
    "DeliveryError",
    "Notification",
    "RetryableDeliveryError",
    "Sender",
    "make_sender",
]

log = logging.getLogger("herald.alerts")


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"herald-alerts/{version('herald')}"
    except PackageNotFoundError:  # pragma: no cover
        return "herald-alerts"


USER_AGENT = _user_agent()


class DeliveryError(Exception):
    """A notification could not be delivered (message is redacted)."""


class RetryableDeliveryError(DeliveryError):
    """A failure worth retrying: network error, 5xx, 429."""


class Sender:
    """Base class: subclasses build the request for a batch of notifications of one channel.

    A batch is one notification, or several when the channel was rate limited: a digest, one
    message that carries them all (Alertmanager takes several alerts per request anyway).
    """

    def __init__(
        self,
        channel: Any,
        *,
        client: httpx.AsyncClient,
        redactor: Redactor,
        retry: DeliveryRetry,
        extra_labels: Mapping[str, str] = {},
    ) -> None:
        self.channel = channel
        self.name: str = channel.channel_name
        self.client = client
        self.redactor = redactor
        self.retry = retry
        self.extra_labels = dict(extra_labels)

    # --- subclass API ---------------------------------------------------------

    def build(self, batch: Sequence[Notification], now: float) -> tuple[str, bytes, dict[str, str]]:
        """(url, body, headers) for ``batch``."""
        raise NotImplementedError

    # --- delivery ---------------------------------------------------------------

    def _json_body(self, payload: Any) -> bytes:
        return canonical_json(self.redactor.redact_obj(payload))

    async def _post_once(self, batch: Sequence[Notification]) -> None:
        url, body, headers = self.build(batch, time.time())
        hdrs = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
        try:
            resp = await self.client.post(url, content=body, headers=hdrs, timeout=self.channel.timeout_seconds)
        except httpx.HTTPError as exc:
            raise RetryableDeliveryError(
                f"{self.name}: {type(exc).__name__}: {self.redactor.redact(str(exc))}"
            ) from None
        if resp.status_code < 300:
            return
        detail = self.redactor.redact(resp.text[:200])
        msg = f"{self.name}: HTTP {resp.status_code}: {detail}"
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise RetryableDeliveryError(msg)
        raise DeliveryError(msg)

    async def deliver(self, batch: Sequence[Notification]) -> None:
        """Send ``batch``, retrying as the policy says; raises :class:`DeliveryError`."""
        policy = self.retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.attempts),
            wait=wait_exponential(
                multiplier=policy.initial_backoff_seconds,
                min=policy.initial_backoff_seconds,
                max=max(policy.max_backoff_seconds, policy.initial_backoff_seconds),
            ),
            retry=retry_if_exception_type(RetryableDeliveryError),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                n = attempt.retry_state.attempt_number
                if n > 1:
                    log.info("retrying alert delivery to %s (attempt %d of %d)", self.name, n, policy.attempts)
                await self._post_once(batch)


class AlertmanagerSender(Sender):
    def ends_at(self, n: Notification, now: float) -> float:
        """A firing alert expires unless re-sent: 4 resend intervals, at least 10 minutes (longer
        than any alert's hysteresis, during which nothing is re-sent)."""
        if not n.event.firing:
            return n.ends_at if n.ends_at is not None else now
        interval = self.channel.resend_interval or 60.0
        return now + max(4 * interval, 600.0)

    def build(self, batch: Sequence[Notification], now: float) -> tuple[str, bytes, dict[str, str]]:
        alerts = [
            alertmanager_alert(
                n.event, started_at=n.started_at, ends_at=self.ends_at(n, now), extra_labels=self.extra_labels
            )
            for n in batch
        ]
        headers: dict[str, str] = {}
        ch: AlertmanagerChannel = self.channel
        if ch.bearer_token:
            headers["Authorization"] = f"Bearer {ch.bearer_token}"
        elif ch.username is not None and ch.password is not None:
            token = base64.b64encode(f"{ch.username}:{ch.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return ch.url.rstrip("/") + "/api/v2/alerts", self._json_body(alerts), headers


class WebhookSender(Sender):
    def build(self, batch: Sequence[Notification], now: float) -> tuple[str, bytes, dict[str, str]]:
        ch: WebhookChannel = self.channel
        docs = [
            webhook_payload(
                n.event, started_at=n.started_at, now=now, ends_at=n.ends_at, extra_labels=self.extra_labels
            )
            for n in batch
        ]
        body = self._json_body(docs[0] if len(docs) == 1 else webhook_digest(docs, now=now))
        ts = str(int(now))
        headers = dict(ch.headers)
        headers[ch.timestamp_header] = ts
        headers[ch.signature_header] = sign(ch.secret, ts, body)
        return ch.url, body, headers


class SlackSender(Sender):
    def build(self, batch: Sequence[Notification], now: float) -> tuple[str, bytes, dict[str, str]]:
        payload = slack_payload([n.event for n in batch], self.extra_labels)
        return self.channel.url, self._json_body(payload), {}


class DiscordSender(Sender):
    def build(self, batch: Sequence[Notification], now: float) -> tuple[str, bytes, dict[str, str]]:
        ch: DiscordChannel = self.channel
        payload = discord_payload([n.event for n in batch], self.extra_labels, username=ch.username, now=now)
        return ch.url, self._json_body(payload), {}


class TelegramSender(Sender):
    def build(self, batch: Sequence[Notification], now: float) -> tuple[str, bytes, dict[str, str]]:
        ch: TelegramChannel = self.channel
        payload = telegram_payload([n.event for n in batch], ch.chat_id, self.extra_labels)
        return ch.send_url, self._json_body(payload), {}


_SENDERS: dict[str, type[Sender]] = {
    "alertmanager": AlertmanagerSender,
    "webhook": WebhookSender,
    "slack": SlackSender,
    "discord": DiscordSender,
    "telegram": TelegramSender,
}


def make_sender(channel: Any, **kwargs: Any) -> Sender:
    return _SENDERS[channel.type](channel, **kwargs)

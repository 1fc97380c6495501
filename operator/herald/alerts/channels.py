"""Delivery of notifications to one channel, through the adapters' platform code, with retries.

A :class:`Sender` builds its channel's message for a batch of notifications (``formatting``) and
hands it to the same function the platform's adapter posts with (``herald_adapters.slack``,
``discord``, ``telegram``, ``webhook``; Alertmanager's API is a JSON POST through
``webhook.post_json``), over the adapters' HTTP client. That code is synchronous: a delivery runs
in the alerter's thread pool. Retries (tenacity, bounded attempts, exponential backoff) cover the
error classes worth retrying (network, a 5xx or 408, 429, a lost response); any other refusal
fails at once. Nothing here raises past :meth:`Sender.deliver` except :class:`DeliveryError`,
whose text is scrubbed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from herald_adapters import AdapterError, discord, slack, telegram, webhook
from herald_adapters._http import Http, Refused
from herald_contract.errors import ErrorClass

from .book import Notification
from .config import (
    AlertmanagerChannel,
    AnyChannel,
    DeliveryRetry,
    DiscordChannel,
    SlackChannel,
    TelegramChannel,
    WebhookChannel,
)
from .formatting import (
    alertmanager_alert,
    canonical_json,
    discord_payload,
    slack_payload,
    telegram_text,
    webhook_digest,
    webhook_payload,
)
from .scrub import Scrubber

__all__ = ["USER_AGENT", "DeliveryError", "Notification", "RetryableDeliveryError", "Sender", "make_sender"]

log = logging.getLogger("herald.alerts")

#: Failures worth trying again at once: the platform or the way there, not the request.
RETRYABLE = frozenset(
    {ErrorClass.NETWORK, ErrorClass.SERVER_ERROR, ErrorClass.RATE_LIMITED, ErrorClass.UNKNOWN_OUTCOME}
)


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"herald-alerts/{version('herald')}"
    except PackageNotFoundError:  # pragma: no cover
        return "herald-alerts"


USER_AGENT = _user_agent()


class DeliveryError(Exception):
    """A notification could not be delivered (message is scrubbed)."""


class RetryableDeliveryError(DeliveryError):
    """A failure worth retrying: network error, 5xx, 408, 429."""


class Sender:
    """Base class: subclasses post a batch of notifications of one channel.

    A batch is one notification, or several when the channel was rate limited: a digest, one
    message that carries them all (Alertmanager takes several alerts per request anyway).
    """

    def __init__(
        self,
        channel: AnyChannel,
        *,
        scrubber: Scrubber,
        retry: DeliveryRetry,
        executor: Executor,
        extra_labels: Mapping[str, str] = {},
    ) -> None:
        self.channel = channel
        self.name: str = channel.channel_name
        self.scrubber = scrubber
        self.retry = retry
        self.executor = executor
        self.extra_labels = dict(extra_labels)
        self.http = Http(channel.timeout_seconds, scrubber.redactor, user_agent=USER_AGENT)

    def close(self) -> None:
        self.http.close()

    # --- subclass API ---------------------------------------------------------

    def send(self, batch: Sequence[Notification], now: float) -> None:
        """Post ``batch`` (in a worker thread); raises Refused or AdapterError."""
        raise NotImplementedError

    # --- delivery ---------------------------------------------------------------

    def _json(self, payload: Any) -> dict[str, Any]:
        scrubbed: dict[str, Any] = self.scrubber.obj(payload)
        return scrubbed

    def _send_once(self, batch: Sequence[Notification]) -> None:
        try:
            self.send(batch, time.time())
        except Refused as exc:
            self._fail(exc.error_class, str(exc))
        except AdapterError as exc:  # no answer: the adapters' client classified the transport failure
            self._fail(exc.result.error_class or ErrorClass.NETWORK, str(exc))

    def _fail(self, error_class: ErrorClass, message: str) -> None:
        text = f"{self.name}: {self.scrubber.text(message)[:300]}"
        if error_class in RETRYABLE:
            raise RetryableDeliveryError(text)
        raise DeliveryError(text)

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
        loop = asyncio.get_running_loop()
        async for attempt in retrying:
            with attempt:
                n = attempt.retry_state.attempt_number
                if n > 1:
                    log.info("retrying alert delivery to %s (attempt %d of %d)", self.name, n, policy.attempts)
                await loop.run_in_executor(self.executor, self._send_once, batch)


class AlertmanagerSender(Sender):
    channel: AlertmanagerChannel

    def ends_at(self, n: Notification, now: float) -> float:
        """A firing alert expires unless re-sent: 4 resend intervals, at least 10 minutes (longer
        than any alert's hysteresis, during which nothing is re-sent)."""
        if not n.event.firing:
            return n.ends_at if n.ends_at is not None else now
        interval = self.channel.resend_interval or 60.0
        return now + max(4 * interval, 600.0)

    def send(self, batch: Sequence[Notification], now: float) -> None:
        alerts = [
            alertmanager_alert(
                n.event, started_at=n.started_at, ends_at=self.ends_at(n, now), extra_labels=self.extra_labels
            )
            for n in batch
        ]
        ch = self.channel
        headers: dict[str, str] = {}
        if ch.bearer_token:
            headers["Authorization"] = f"Bearer {ch.bearer_token}"
        elif ch.username is not None and ch.password is not None:
            token = base64.b64encode(f"{ch.username}:{ch.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        url = ch.url.rstrip("/") + "/api/v2/alerts"
        body = canonical_json(self.scrubber.obj(alerts))
        webhook.post_json(self.http, url, body, headers=headers, what="Alertmanager POST /api/v2/alerts")


class WebhookSender(Sender):
    channel: WebhookChannel

    def send(self, batch: Sequence[Notification], now: float) -> None:
        ch = self.channel
        docs = [
            webhook_payload(
                n.event, started_at=n.started_at, now=now, ends_at=n.ends_at, extra_labels=self.extra_labels
            )
            for n in batch
        ]
        body = canonical_json(self._json(docs[0] if len(docs) == 1 else webhook_digest(docs, now=now)))
        webhook.send_signed(
            self.http,
            ch.url,
            body,
            ch.secret,
            headers=ch.headers,
            what="alert webhook POST",
            signature_header=ch.signature_header,
            timestamp_header=ch.timestamp_header,
        )


class SlackSender(Sender):
    channel: SlackChannel

    def send(self, batch: Sequence[Notification], now: float) -> None:
        payload = slack_payload([n.event for n in batch], self.extra_labels)
        slack.send_webhook(self.http, self.channel.url, self._json(payload))


class DiscordSender(Sender):
    channel: DiscordChannel

    def send(self, batch: Sequence[Notification], now: float) -> None:
        ch = self.channel
        payload = discord_payload([n.event for n in batch], self.extra_labels, username=ch.username, now=now)
        discord.send_webhook(self.http, ch.url, self._json(payload))


class TelegramSender(Sender):
    channel: TelegramChannel

    def send(self, batch: Sequence[Notification], now: float) -> None:
        ch = self.channel
        text = self.scrubber.text(telegram_text([n.event for n in batch], self.extra_labels))
        telegram.send_text(
            self.http, ch.bot_token, ch.chat_id, text, endpoint=ch.api_url, disable_web_page_preview=True
        )


_SENDERS: dict[str, type[Sender]] = {
    "alertmanager": AlertmanagerSender,
    "webhook": WebhookSender,
    "slack": SlackSender,
    "discord": DiscordSender,
    "telegram": TelegramSender,
}


def make_sender(channel: AnyChannel, **kwargs: Any) -> Sender:
    return _SENDERS[channel.type](channel, **kwargs)

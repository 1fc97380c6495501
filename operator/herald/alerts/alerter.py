"""The alert sender: deduplicates, rate limits and delivers in the background.

``notify()`` and ``resolve()`` only put an item on an in-memory queue and
return at once; they never raise and never wait, so reconciliation is never
blocked by a slow or failing channel. A dispatcher task applies deduplication
(:class:`~herald.alerts.dedup.DedupState`) and fans notifications out to one
queue per channel; one worker task per channel applies its token bucket and
delivers with bounded retries. A full queue drops the notification and counts
it as ``suppressed`` in ``herald_alerts_sent_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .. import metrics
from .channels import DeliveryError, Notification, Sender, make_sender
from .config import AlertsConfig, config_from_env, load_config, parse_config
from .dedup import ActiveAlert, DedupState
from .events import ALERT_NAMES, AlertEvent, AlertKey
from .formatting import Redactor
from .ratelimit import TokenBucket

__all__ = ["Alerter"]

log = logging.getLogger("herald.alerts")

_FIRE = "fire"
_RESOLVE = "resolve"
_TICK = "tick"


@dataclass
class _Channel:
    sender: Sender
    bucket: TokenBucket
    queue: asyncio.Queue[tuple[Notification, ...]]
    task: asyncio.Task[None] | None = None
    config: Any = field(default=None)

    @property
    def name(self) -> str:
        return self.sender.name

    def accepts(self, event: AlertEvent) -> bool:
        return event.severity.rank >= self.config.min_severity.rank


class Alerter:
    """Herald's own alert sender.

    Typical use in the operator::

        alerter = Alerter.from_config()          # HERALD_ALERTS_CONFIG, or disabled
        await alerter.start()
        alerter.notify(events.credentials_invalid(adapter="mastodon-main"))
        alerter.resolve(AlertKey(events.ADAPTER_CREDENTIALS_INVALID, "mastodon-main"))
        await alerter.stop()
    """

    def __init__(
        self,
        config: AlertsConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config if config is not None else AlertsConfig(enabled=False)
        self._clock = clock
        self._own_client = client is None
        self._client = client
        self._redactor = Redactor(self.config.secrets())
        self._dedup = DedupState()
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=self.config.queue_size)
        self._channels: list[_Channel] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False

    # --- construction -----------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        source: AlertsConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Alerter:
        """An alerter from a config object, a mapping, a file path, or (``None``)
        the file named by ``HERALD_ALERTS_CONFIG`` — disabled if that is unset.

        Raises :class:`~herald.alerts.config.ConfigError` for an invalid file.
        """
        if source is None:
            config = config_from_env()
        elif isinstance(source, AlertsConfig):
            config = source
        elif isinstance(source, Mapping):
            config = parse_config(source)
        else:
            config = load_config(Path(source))
        return cls(config, **kwargs)

    @property
    def enabled(self) -> bool:
        return self.config.enabled and bool(self.config.channels)

    @property
    def channel_names(self) -> list[str]:
        return [c.channel_name for c in self.config.channels]

    @property
    def active(self) -> list[ActiveAlert]:
        """The alerts firing now (as far as the dispatcher has processed)."""
        return self._dedup.active()

    # --- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Start the background tasks on the running loop (idempotent)."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._started = True
        if not self.enabled:
            return
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        for ch in self.config.channels:
            sender = make_sender(
                ch,
                client=self._client,
                redactor=self._redactor,
                retry=self.config.retry,
                extra_labels=self.config.extra_labels,
            )
            state = _Channel(
                sender=sender,
                bucket=TokenBucket(ch.rate_limit.per_minute / 60.0, ch.rate_limit.burst, time.monotonic()),
                queue=asyncio.Queue(maxsize=self.config.queue_size),
                config=ch,
            )
            # Zero series, so that increase()/rate() see the first failure.
            for name in ALERT_NAMES:
                for result in metrics.ALERT_RESULTS:
                    metrics.ALERTS_SENT.labels(state.name, name, result)
            state.task = asyncio.create_task(self._channel_worker(state), name=f"herald-alerts-{state.name}")
            self._channels.append(state)
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="herald-alerts-dispatcher")
        intervals = [c.resend_interval for c in self.config.channels if c.resend_interval > 0]
        if intervals:
            tick = min(15.0, max(0.05, min(intervals) / 4))
            self._ticker = asyncio.create_task(self._tick_loop(tick), name="herald-alerts-ticker")

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything notified so far was delivered, failed or dropped.

        Returns ``False`` if ``timeout`` seconds passed first.
        """
        if not self._started or not self.enabled or self._dispatcher is None:
            return True

        async def drained() -> None:
            await self._inbox.join()
            for ch in self._channels:
                await ch.queue.join()

        try:
            await asyncio.wait_for(drained(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout`` s), then stop the tasks.

        Firing alerts are not resolved: in Alertmanager they expire on their
        own (``endsAt``) once no longer re-sent.
        """
        self._closed = True
        if not self._started:
            return
        if self._ticker is not None:
            self._ticker.cancel()
        if not await self.flush(timeout):
            log.warning("alert notifications still queued at shutdown were dropped")
        tasks = [t for t in [self._ticker, self._dispatcher, *(c.task for c in self._channels)] if t]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._own_client and self._client is not None:
            await self._client.aclose()

    # --- the non-blocking API ---------------------------------------------------

    def notify(self, event: AlertEvent) -> None:
        """Raise (or, with ``firing=False``, clear) an alert. Never blocks or raises."""
        try:
            if not isinstance(event, AlertEvent):
                raise TypeError(f"notify() takes an AlertEvent, not {type(event).__name__}")
            if not self.enabled:
                return
            if event.firing:
                self._submit((_FIRE, event))
            else:
                self._submit((_RESOLVE, (event.key, event)))
        except Exception:
            log.exception("could not queue an alert notification")

    def resolve(
        self,
        key: AlertKey | AlertEvent | tuple[str, ...] | str,
        *,
        adapter: str | None = None,
        namespace: str | None = None,
    ) -> None:
        """Clear the alert with this key (an :class:`AlertKey`, an event, or a name
        plus ``adapter``/``namespace``). Never blocks or raises."""
        try:
            if not self.enabled:
                return
            if isinstance(key, AlertEvent):
                k, ev = key.key, key
            elif isinstance(key, str):
                k, ev = AlertKey(key, adapter or "", namespace or ""), None
            else:
                k, ev = AlertKey(*key), None
            self._submit((_RESOLVE, (k, ev)))
        except Exception:
            log.exception("could not queue an alert resolution")

    def _submit(self, op: tuple[str, Any]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                # Called from another thread (e.g. a synchronous kopf handler).
                loop.call_soon_threadsafe(self._put, op)
                return
        self._put(op)

    def _put(self, op: tuple[str, Any]) -> None:
        if self._closed:
            self._count_dropped(op)
            return
        try:
            self._inbox.put_nowait(op)
        except asyncio.QueueFull:
            self._count_dropped(op)

    def _count_dropped(self, op: tuple[str, Any]) -> None:
        kind, payload = op
        if kind == _FIRE:
            name, event = payload.name, payload
        elif kind == _RESOLVE:
            name, event = payload[0].alertname, payload[1]
        else:
            return
        log.warning("alert queue full or closed: dropped a notification for %s", name)
        for ch in self.config.channels:
            if event is None or event.severity.rank >= ch.min_severity.rank:
                metrics.record_alert_sent(ch.channel_name, name, "suppressed")

    # --- background tasks -------------------------------------------------------

    async def _tick_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(asyncio.QueueFull):
                self._inbox.put_nowait((_TICK, None))

    async def _dispatch_loop(self) -> None:
        while True:
            op = await self._inbox.get()
            try:
                self._dispatch(op)
            except Exception:
                log.exception("alert dispatch failed")
            finally:
                self._inbox.task_done()

    def _dispatch(self, op: tuple[str, Any]) -> None:
        kind, payload = op
        now = self._clock()
        if kind == _FIRE:
            self._on_fire(self._redactor.redact_event(payload), now)
        elif kind == _RESOLVE:
            key, event = payload
            self._on_resolve(key, event, now)
        elif kind == _TICK:
            self._on_tick(now)

    def _on_fire(self, event: AlertEvent, now: float) -> None:
        is_new = self._dedup.fire(event, now)
        active = self._dedup.get(event.key)
        assert active is not None
        for ch in self._channels:
            if not ch.accepts(active.event):
                continue
            if is_new or not self._dedup.was_sent(event.key, ch.name):
                self._dedup.mark_sent(event.key, ch.name, now)
                self._enqueue(ch, (Notification(active.event, active.started_at),))
            else:
                metrics.record_alert_sent(ch.name, event.name, "suppressed")

    def _on_resolve(self, key: AlertKey, event: AlertEvent | None, now: float) -> None:
        active = self._dedup.resolve(key)
        if active is None:
            return
        resolved = active.event.resolved()
        if event is not None and event.description:
            resolved = self._redactor.redact_event(
                AlertEvent(
                    name=resolved.name,
                    severity=resolved.severity,
                    summary=resolved.summary,
                    description=event.description,
                    adapter=resolved.adapter,
                    namespace=resolved.namespace,
                    labels=resolved.labels,
                    annotations=resolved.annotations,
                    firing=False,
                )
            )
        for ch in self._channels:
            if ch.name in active.last_sent:
                self._enqueue(ch, (Notification(resolved, active.started_at),))

    def _on_tick(self, now: float) -> None:
        for ch in self._channels:
            due = self._dedup.due(ch.name, ch.config.resend_interval, now)
            if not due:
                continue
            notes = [Notification(a.event, a.started_at) for a in due]
            for a in due:
                self._dedup.mark_sent(a.key, ch.name, now)
            if ch.sender.batches:
                self._enqueue(ch, tuple(notes))
            else:
                for n in notes:
                    self._enqueue(ch, (n,))

    def _enqueue(self, ch: _Channel, batch: tuple[Notification, ...]) -> None:
        try:
            ch.queue.put_nowait(batch)
        except asyncio.QueueFull:
            log.warning("alert queue of channel %s is full: dropped %d notification(s)", ch.name, len(batch))
            for n in batch:
                metrics.record_alert_sent(ch.name, n.event.name, "suppressed")

    async def _channel_worker(self, ch: _Channel) -> None:
        while True:
            batch = await ch.queue.get()
            try:
                await self._deliver(ch, batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("unexpected error delivering alerts to %s", ch.name)
            finally:
                ch.queue.task_done()

    async def _deliver(self, ch: _Channel, batch: tuple[Notification, ...]) -> None:
        if not ch.bucket.try_take(time.monotonic()):
            log.warning("alert channel %s is rate limited: dropped %d notification(s)", ch.name, len(batch))
            for n in batch:
                metrics.record_alert_sent(ch.name, n.event.name, "suppressed")
            return
        try:
            await ch.sender.deliver(batch)
        except DeliveryError as exc:
            log.warning("alert delivery to %s failed: %s", ch.name, exc)
            for n in batch:
                metrics.record_alert_sent(ch.name, n.event.name, "failed")
            return
        for n in batch:
            metrics.record_alert_sent(ch.name, n.event.name, "sent")

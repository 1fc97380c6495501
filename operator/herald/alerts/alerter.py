"""The alert sender: from what the operator reports to delivered notifications, in the background.

``notify()``, ``condition()`` and ``resolve()`` append to an in-memory list and return at once;
they never raise and never wait, and may be called from any thread. One loop task applies them to
the :class:`~herald.alerts.book.AlertBook` (hysteresis, expiry, reminders, retries), saves the book
through a :class:`~herald.alerts.state.StateStore` whenever it changed, and hands each channel
what is due. One worker task per channel delivers, so a slow channel delays no other.

A channel whose configuration is invalid is left out (``from_config`` never raises): the others
run, and the problem is logged once as a Warning and shown by ``herald_alerts_config_invalid``.

Rate limits never drop anything: while a channel's token bucket is empty, its notifications wait
(each one logged and counted as ``rate_limited`` with its alert name) and go out together as one
digest as soon as a token is back, and at the latest ``digest_seconds`` (60) after the first one
waited. A delivery that fails is tried again, with backoff, until it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .. import metrics
from .book import AlertBook, ChannelPolicy, Notification
from .channels import DeliveryError, Sender, make_sender
from .config import WHOLE_FILE, AlertsConfig, ConfigReport, check_config, read_config
from .events import ALERT_NAMES, AlertEvent, AlertKey, Timing
from .formatting import who
from .ratelimit import TokenBucket
from .scrub import Scrubber
from .state import MemoryStateStore, StateStore

__all__ = ["DIGEST_SECONDS", "Alerter"]

log = logging.getLogger("herald.alerts")

#: A rate-limited channel gets its digest at the latest this long after the first notification waited.
DIGEST_SECONDS = 60.0

_REASONS = {
    "duplicate": "already firing, so not sent again",
    "flapping": "its condition came back within the hysteresis: no resolve and re-fire sent",
    "overload": "refused: more alerts than queueSize are kept",
}


@dataclass
class _Channel:
    sender: Sender
    bucket: TokenBucket
    batches: bool
    outbox: list[Notification] = field(default_factory=list)
    held: set[tuple[AlertKey, bool]] = field(default_factory=set)
    held_since: float | None = None
    sending: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.sender.name


class Alerter:
    """Herald's own alert sender.

    Typical use in the operator::

        alerter = Alerter.from_config(config.alerts_config, store=state_store(config))  # None: disabled
        await alerter.start()
        alerter.condition(events.platform_down(namespace="news", adapter="mastodon-main"), True)
        alerter.notify(events.dead_lettered(namespace="news", adapter="mastodon-main", publication="launch"))
        await alerter.stop()
    """

    def __init__(
        self,
        config: AlertsConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        store: StateStore | None = None,
        timings: Mapping[str, Timing] | None = None,
        digest_seconds: float = DIGEST_SECONDS,
        retry_seconds: float = 15.0,
    ) -> None:
        self.config = config if config is not None else AlertsConfig(enabled=False)
        self._clock = clock
        self._scrubber = Scrubber(self.config.secrets())
        self._executor: ThreadPoolExecutor | None = None
        self.store: StateStore = store if store is not None else MemoryStateStore()
        policies = {c.channel_name: ChannelPolicy(c.min_severity, c.resend_interval) for c in self.config.channels}
        self._book = AlertBook(policies, timings, max_alerts=self.config.queue_size, retry_base=retry_seconds)
        self._digest_seconds = digest_seconds
        self._ops: deque[tuple[str, Any, Any]] = deque()
        self._submitted = self._applied = 0
        self._delivered = self._planned = 0  # deliveries finished / seen by the last pass
        self._channels: list[_Channel] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._saved: dict[str, Any] | None = None
        self._save_failing = False
        self._started = False
        self._closed = False

    # --- construction -----------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        source: AlertsConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Alerter:
        """An alerter from a config object, a mapping or a file path (the operator passes
        ``OperatorConfig.alerts_config``); ``None``: disabled.

        Never raises for an invalid configuration: what is invalid is left out and reported
        (:func:`report_config`), so Herald's alerts never stop the operator.
        """
        if source is None:
            config = AlertsConfig(enabled=False)
        elif isinstance(source, AlertsConfig):
            config = source
        else:
            report = check_config(source) if isinstance(source, Mapping) else read_config(source)
            report_config(report)
            config = report.config
        return cls(config, **kwargs)

    @property
    def enabled(self) -> bool:
        return self.config.enabled and bool(self.config.channels)

    @property
    def channel_names(self) -> list[str]:
        return [c.channel_name for c in self.config.channels]

    @property
    def active(self) -> list[Any]:
        """The alerts firing now (as far as the loop has processed), as :class:`~herald.alerts.book.ActiveAlert`."""
        return self._book.firing()

    # --- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Restore the saved state and start the background tasks on the running loop (idempotent)."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._started = True
        if not self.enabled:
            return
        try:
            restored = self._book.load(await self.store.load())
        except Exception:
            log.warning("cannot load the saved alert state; starting afresh", exc_info=True)
            restored = 0
        if restored:
            log.info("restored %d alert(s) from the saved state", restored)
        self._saved = self._book.document()
        # The platform code is synchronous: deliveries run here, one thread per channel at most.
        self._executor = ThreadPoolExecutor(max_workers=len(self.config.channels), thread_name_prefix="herald-alerts")
        for ch in self.config.channels:
            sender = make_sender(
                ch,
                scrubber=self._scrubber,
                retry=self.config.retry,
                executor=self._executor,
                extra_labels=self.config.extra_labels,
            )
            bucket = TokenBucket(ch.rate_limit.per_minute / 60.0, ch.rate_limit.burst, time.monotonic())
            state = _Channel(sender, bucket, batches=ch.type == "alertmanager")
            metrics.init_alert_channel(state.name, ALERT_NAMES)
            state.task = asyncio.create_task(self._channel_worker(state), name=f"herald-alerts-{state.name}")
            self._channels.append(state)
        self._task = asyncio.create_task(self._run(), name="herald-alerts")

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything reported so far was applied and every channel has delivered (or
        failed to deliver) what was due; ``False`` if ``timeout`` seconds passed first."""
        if not self._started or not self.enabled or self._task is None:
            return True

        async def quiet() -> None:
            self._wake.set()
            while not self._quiet():
                self._progress.clear()
                await self._progress.wait()

        try:
            await asyncio.wait_for(quiet(), timeout)
        except TimeoutError:
            return False
        return True

    def _quiet(self) -> bool:
        return (
            self._applied == self._submitted
            and self._planned == self._delivered
            and all(not c.outbox and not c.sending for c in self._channels)
        )

    async def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is due (up to ``timeout`` s), save the state, stop the tasks.

        Firing alerts are not resolved: the next operator takes them over from the saved state
        (in Alertmanager they expire by themselves if none does).
        """
        if self._closed:
            return
        self._closed = True
        if not self._started:
            return
        if not await self.flush(timeout):
            log.warning("alert notifications still due at shutdown are left for the next start")
        tasks = [t for t in [self._task, *(c.task for c in self._channels)] if t]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.enabled:
            for c in self._channels:
                for n in c.outbox:
                    self._book.delivered(c.name, [n], False, self._clock())
            await self._persist()
        if self._executor is not None:
            # A delivery still hanging in a thread ends at its timeout; nobody waits for it.
            self._executor.shutdown(wait=False, cancel_futures=True)
        for c in self._channels:
            c.sender.close()

    # --- the non-blocking API ---------------------------------------------------

    def notify(self, event: AlertEvent) -> None:
        """An occurrence (a target dead-lettered, …): fires the alert, or refreshes a firing one.
        An event with ``firing=False`` resolves it. Never blocks or raises."""
        try:
            if not isinstance(event, AlertEvent):
                raise TypeError(f"notify() takes an AlertEvent, not {type(event).__name__}")
            if event.firing:
                self._submit("occur", event, None)
            else:
                self._submit("resolve", event.key, event)
        except Exception:
            log.exception("could not queue an alert notification")

    def condition(self, event: AlertEvent, active: bool | None) -> None:
        """The level of the condition behind ``event``: True holds, False does not, None keeps the
        alert as it is. The alert's :class:`~herald.alerts.events.Timing` decides when it fires and
        resolves. Never blocks or raises."""
        try:
            if not isinstance(event, AlertEvent):
                raise TypeError(f"condition() takes an AlertEvent, not {type(event).__name__}")
            self._submit("condition", event, active)
        except Exception:
            log.exception("could not queue an alert condition")

    def resolve(
        self,
        key: AlertKey | AlertEvent | tuple[str, ...] | str,
        *,
        namespace: str | None = None,
        adapter: str | None = None,
    ) -> None:
        """Clear the alert with this key (an :class:`AlertKey`, an event, or a name plus
        ``namespace``/``adapter``) at once, hysteresis or not. Never blocks or raises."""
        try:
            if isinstance(key, AlertEvent):
                k, ev = key.key, key
            elif isinstance(key, str):
                k, ev = AlertKey(key, namespace or "", adapter or ""), None
            else:
                k, ev = AlertKey(*key), None
            self._submit("resolve", k, ev)
        except Exception:
            log.exception("could not queue an alert resolution")

    def adapters_present(self, keys: Iterable[tuple[str, str]]) -> None:
        """Resolve the alerts of every adapter not among ``keys`` ((namespace, name)): it was deleted."""
        try:
            self._submit("keep", frozenset(keys), None)
        except Exception:
            log.exception("could not queue the adapters present")

    def _submit(self, kind: str, a: Any, b: Any) -> None:
        if not self.enabled:
            return
        if self._closed:
            log.warning("alerter stopped: %s for %s not applied", kind, getattr(a, "name", a))
            return
        self._ops.append((kind, a, b))
        self._submitted += 1
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:  # another thread, e.g. a synchronous kopf handler
            loop.call_soon_threadsafe(self._wake.set)

    # --- the loop -----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                self._pass()
                await self._persist()
            except Exception:
                log.exception("alert processing failed")
            self._progress.set()
            deadline = self._book.next_deadline(self._clock())
            timeout = 30.0 if deadline is None else min(30.0, max(0.01, deadline - self._clock()))
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation (stop()).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()

    def _pass(self) -> None:
        book, now = self._book, self._clock()
        delivered = self._delivered
        while self._ops:
            kind, a, b = self._ops.popleft()
            try:
                if kind == "occur":
                    book.occur(self._scrubber.event(a), now)
                elif kind == "condition":
                    book.condition(self._scrubber.event(a), b, now)
                elif kind == "resolve":
                    book.resolve(a, now, self._scrubber.event(b) if b is not None else None)
                elif kind == "keep":
                    book.resolve_where(a, now)
            finally:
                self._applied += 1
        book.advance(now)
        for reason, event, channel in book.suppressed:
            log.info("alert %s (%s) %s on channel %s", event.name, who(event) or "-", _REASONS[reason], channel)
            metrics.record_alert_suppressed(channel, event.name, reason)
        book.suppressed.clear()
        for ch in self._channels:
            due = book.due(ch.name, now)
            if due:
                ch.outbox.extend(due)
                ch.wake.set()
        self._planned = delivered

    async def _persist(self) -> None:
        doc = self._book.document()
        if doc == self._saved:
            return
        try:
            await self.store.save(doc)
        except Exception:
            if not self._save_failing:
                log.warning("cannot save the alert state; trying again on the next change", exc_info=True)
            self._save_failing = True
            return
        self._save_failing = False
        self._saved = doc

    # --- the channels ---------------------------------------------------------------

    async def _channel_worker(self, ch: _Channel) -> None:
        while True:
            if not ch.outbox:
                ch.held_since = None
                ch.held.clear()
                self._progress.set()
                await ch.wake.wait()
                ch.wake.clear()
                continue
            now = time.monotonic()
            needed = 1 if ch.batches else len(ch.outbox)
            if ch.held_since is None and ch.bucket.tokens(now) >= needed:
                batches = [list(ch.outbox)] if ch.batches else [[n] for n in ch.outbox]
                for _ in batches:
                    ch.bucket.try_take(now)
            elif ch.bucket.try_take(now) or (ch.held_since is not None and now - ch.held_since >= self._digest_seconds):
                self._hold(ch, now)
                batches = [list(ch.outbox)]  # the digest: everything that waited, in one message
            else:
                self._hold(ch, now)
                wait = min(ch.bucket.wait_time(now), (ch.held_since or now) + self._digest_seconds - now)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.01, wait)):
                        await ch.wake.wait()
                ch.wake.clear()
                continue
            ch.outbox.clear()
            ch.sending = True
            try:
                for batch in batches:
                    await self._deliver(ch, batch)
            finally:
                ch.sending = False
                self._wake.set()
                self._progress.set()

    def _hold(self, ch: _Channel, now: float) -> None:
        """Not enough tokens for one message each: the notifications go in a digest, now or when a
        token is back (at the latest ``digest_seconds`` after the first waited); each is logged and
        counted once."""
        if ch.held_since is None:
            ch.held_since = now
        for n in ch.outbox:
            mark = (n.event.key, n.event.firing)
            if mark in ch.held:
                continue
            ch.held.add(mark)
            log.warning(
                "alert channel %s is rate limited: %s %s (%s) goes out in a digest (within %.0fs)",
                ch.name,
                n.event.status,
                n.event.name,
                who(n.event) or "-",
                self._digest_seconds,
            )
            metrics.record_alert_suppressed(ch.name, n.event.name, "rate_limited")

    async def _deliver(self, ch: _Channel, batch: list[Notification]) -> None:
        names = ", ".join(sorted({n.event.name for n in batch}))
        try:
            await ch.sender.deliver(batch)
            ok = True
        except DeliveryError as exc:
            log.warning("alert delivery to %s failed (%s): %s; it will be tried again", ch.name, names, exc)
            ok = False
        except Exception:
            log.exception("unexpected error delivering alerts (%s) to %s", names, ch.name)
            ok = False
        self._book.delivered(ch.name, batch, ok, self._clock())
        self._delivered += 1
        for n in batch:
            metrics.record_alert_sent(ch.name, n.event.name, "sent" if ok else "failed")


def report_config(report: ConfigReport) -> None:
    """One Warning per part of the configuration left out (channel and fields, never a value),
    and ``herald_alerts_config_invalid``: 1 per invalid channel, 0 per valid one."""
    for ch in report.config.channels:
        metrics.set_alerts_config_invalid(ch.channel_name, False)
    for problem in report.problems:
        metrics.set_alerts_config_invalid(problem.channel, True)
        if problem.channel != WHOLE_FILE:
            log.warning(
                "alerts channel %s is left out (the other channels run): invalid configuration: %s",
                problem.channel,
                problem.message,
            )
        elif problem.fields:
            log.warning(
                "alerts configuration: the default is used for %s: %s", ", ".join(problem.fields), problem.message
            )
        else:
            log.warning("alerts configuration unusable, no alert channel runs: %s", problem.message)

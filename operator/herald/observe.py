"""Turns what the engine decides into metrics and into Herald's own alerts.

The engine calls :class:`Observer` once per decided unit (``observer(plan, now)``), once per tick
(``tick``, ``adapters_present``) and when it degrades (``degraded``); only the acting replica's
engine does, so Herald's own alerts start with the first call (a standby sends none). ``queue_depth`` and
``watch_event`` are for the engine's loop and the watch handlers; the operator's API client reports
its requests with :func:`herald.metrics.record_api_request`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from . import metrics
from .alerts import Alerter, state_store
from .alerts import events as alerts
from .circuit import CircuitState
from .config import OperatorConfig
from .reconciler import AttemptObservation, Plan

log = logging.getLogger("herald.observe")
CONTROLLER = "publications"
# Reconcile results are counted per kind: a failure is the kind of the object that failed.
CONTROLLERS = ("publications", "platformadapters")
REPEATED_FAILURES = 3
DEGRADED_AFTER_TICKS = 3
#: Job creations whose outcome was not seen after this long are forgotten (the Job was refused,
#: deleted, or its attempt decided by another operator).
CREATED_TTL_SECONDS = 86400.0

AttemptKey = tuple[str, str, str, int]  # namespace, publication, adapter, attempt


class Observer:
    def __init__(self, config: OperatorConfig, alerter: Alerter | None = None):
        self.config = config
        self.alerter = alerter
        self._server: metrics.MetricsServer | None = None
        self._known: dict[tuple[str, str], str] = {}  # (namespace, adapter) -> platform
        self._created: dict[AttemptKey, datetime] = {}
        self._created_pruned = 0.0
        self._failed_ticks = 0
        self._alerter_started: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._server = metrics.start_metrics_server(self.config.metrics_port)
        for controller in CONTROLLERS:
            metrics.init_controller(controller)
        metrics.init_operator()
        install_watch_restart_counter()
        if self.alerter is None:
            self.alerter = Alerter.from_config(self.config.alerts_config, store=state_store(self.config))

    def _acting(self) -> None:
        """The engine reports: this replica acts (a standby never does). Its alerter starts now, so
        a standby neither sends alerts nor writes the saved alert state."""
        if self._alerter_started is None and isinstance(self.alerter, Alerter):
            self._alerter_started = asyncio.get_running_loop().create_task(self.alerter.start())

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until Herald's own alerts reported so far are delivered (tests; see Alerter.flush)."""
        if self._alerter_started is None or self.alerter is None:
            return True
        await self._alerter_started
        return await self.alerter.flush(timeout)

    async def stop(self) -> None:
        if self._alerter_started is not None and self.alerter is not None:
            await self._alerter_started
            await self.alerter.stop()
        if self._server is not None:
            self._server.stop()

    # --- calls of the engine ------------------------------------------------------------------

    def degraded(self, reason: str) -> None:
        self._acting()
        if self.alerter is not None:
            self.alerter.condition(alerts.operator_degraded(reason=reason, component="engine"), True)

    def tick(self, seconds: float, failed_units: int) -> None:
        """One tick ended: its duration, and whether any unit in it failed to be decided."""
        self._acting()
        if failed_units:
            self._failed_ticks += 1
            if self._failed_ticks >= DEGRADED_AFTER_TICKS:
                self.degraded(f"{self._failed_ticks} reconcile ticks in a row had units that failed")
            return
        self._failed_ticks = 0
        metrics.record_reconcile(CONTROLLER, "success", seconds)
        if self.alerter is not None:
            self.alerter.condition(alerts.operator_degraded(reason="", component="engine"), False)

    def adapters_present(self, keys: set[tuple[str, str]]) -> None:
        """Forget the series and resolve the alerts of adapters that no longer exist."""
        for key in [k for k in self._known if k not in keys]:
            del self._known[key]
            metrics.forget_adapter(*key)
        if self.alerter is not None:
            self.alerter.adapters_present(keys)

    def queue_depth(self, *, ready: int, deferred: int, scheduled: int, in_flight: int) -> None:
        """The reconcile loop's queues (``herald_workqueue_depth``), once per tick."""
        metrics.set_workqueue_depth(
            {"ready": ready, "deferred": deferred, "scheduled": scheduled, "in_flight": in_flight}
        )

    def watch_event(self, resource: str, event: Mapping[str, Any], now: datetime | None = None) -> None:
        """A watch event arrived: how long after the API server recorded the change (Event lag)."""
        obj = event.get("object") if isinstance(event, Mapping) else None
        if event.get("type") not in ("ADDED", "MODIFIED", "DELETED") or not isinstance(obj, Mapping):
            return  # the initial listing (type None) and bookmarks are not changes
        changed = last_change(obj)
        if changed is not None:
            metrics.observe_event_lag(resource, ((now or datetime.now(UTC)) - changed).total_seconds())

    def event_posted(self, seconds: float) -> None:
        """A Kubernetes Event reached the API server, ``seconds`` after the decision that made it."""
        metrics.observe_decision_event_lag(seconds)

    def request_slot_waited(self, pool: str, seconds: float) -> None:
        """An engine request waited ``seconds`` for a slot of its pool (writes or events)."""
        metrics.observe_request_slot_wait(pool, seconds)

    def __call__(self, plan: Plan, now: datetime) -> None:
        """One unit's plan: its failures, its adapters' gauges and alerts, its Jobs, its finished attempts."""
        self._acting()
        for failure in plan.failures:
            metrics.record_reconcile(failure.kind, "error")
        for (ns, name), g in plan.gauges.items():
            self._adapter(ns, name, g)
        for jc in plan.creates:
            # Decided now; the engine creates the Job right after: the start of the operator's measure.
            self._created[(jc.publication[0], jc.publication[1], jc.target, jc.previous_attempt + 1)] = now
        for obs in plan.attempts:
            self._attempt(obs, now)
        self._prune(now)

    # --- adapters -----------------------------------------------------------------------------

    def _adapter(self, ns: str, name: str, g: Mapping[str, Any]) -> None:
        platform = str(g["platform"])
        if self._known.get((ns, name)) != platform:
            if (ns, name) in self._known:  # the platform changed: the old series go
                metrics.forget_adapter(ns, name)
            metrics.init_adapter(ns, name, platform)
            self._known[(ns, name)] = platform
        circuit: CircuitState = g["circuit"]
        metrics.set_queue_depth(ns, name, g["pending"])
        metrics.set_running_jobs(ns, name, g["running"])
        metrics.set_dead_letter_targets(ns, name, g["dead_letter"])
        metrics.set_circuit_state(ns, name, circuit.value)
        if g["remaining"] is not None:
            metrics.set_rate_limit_remaining(ns, name, g["remaining"])
        metrics.set_adapter_rate_limited(ns, name, g["rate_limited"])
        metrics.set_adapter_available(ns, name, g["available"])
        metrics.set_adapter_credentials_valid(ns, name, g["credentials_valid"])
        alerter = self.alerter
        if alerter is None:
            return
        # The conditions of the Prometheus rules of the same names (alert-rules/herald.rules.yml).
        down = {CircuitState.OPEN: True, CircuitState.HALF_OPEN: None}.get(circuit, False)
        alerter.condition(alerts.platform_down(namespace=ns, adapter=name, platform=platform), down)
        alerter.condition(
            alerts.credentials_invalid(
                namespace=ns, adapter=name, platform=platform, reason=str(g.get("credentials_message") or "")
            ),
            not g["credentials_valid"],
        )
        threshold = self.config.queue_alert_threshold
        alerter.condition(
            alerts.queue_overloaded(namespace=ns, adapter=name, depth=g["pending"], threshold=threshold),
            g["pending"] > threshold,
        )
        alerter.condition(alerts.rate_limited_too_long(namespace=ns, adapter=name), bool(g["rate_limited"]))

    # --- attempts -----------------------------------------------------------------------------

    def _attempt(self, obs: AttemptObservation, now: datetime) -> None:
        ns, name, platform = obs.namespace, obs.adapter, obs.platform
        o = obs.outcome
        error_class = o.error_class.value if o.error_class else None
        result = "published" if o.published else "failed"
        created = self._created.pop((ns, obs.publication, name, obs.attempt), None)
        duration = (now - created).total_seconds() if created is not None else None
        container = (o.finished - o.started).total_seconds() if o.started and o.finished else None
        metrics.record_attempt(
            ns,
            name,
            platform,
            result,
            error_class,
            duration_seconds=duration,
            container_seconds=container,
            response_seconds=o.response_seconds,
        )
        if o.published:
            metrics.record_publication(ns, name, platform, "published")
            if obs.latency is not None:
                metrics.observe_publish_latency(ns, name, platform, obs.latency)
            return
        if obs.retried:
            metrics.record_retry(ns, name, platform, error_class)
        if obs.failed_attempts == REPEATED_FAILURES and self.alerter is not None:
            self.alerter.notify(
                alerts.repeated_failure(
                    namespace=ns,
                    adapter=name,
                    publication=obs.publication,
                    attempts=obs.failed_attempts,
                    error_class=error_class or "",
                )
            )
        if obs.dead_letter:
            metrics.record_publication(ns, name, platform, "failed")
            metrics.record_dead_letter(ns, name, platform, error_class)
            if self.alerter is not None:
                self.alerter.notify(
                    alerts.dead_lettered(
                        namespace=ns,
                        adapter=name,
                        publication=obs.publication,
                        error_class=error_class or "",
                        message=o.message,
                    )
                )

    def _prune(self, now: datetime) -> None:
        mono = time.monotonic()
        if mono - self._created_pruned < 60:
            return
        self._created_pruned = mono
        for key in [k for k, at in self._created.items() if (now - at).total_seconds() > CREATED_TTL_SECONDS]:
            del self._created[key]


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def last_change(obj: Mapping[str, Any]) -> datetime | None:
    """When the API server last recorded a change of ``obj``: the latest managedFields time (or its
    deletion or creation timestamp). Whole seconds, as the API keeps them."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    times = [_parse_time(f.get("time")) for f in meta.get("managedFields") or [] if isinstance(f, Mapping)]
    times += [_parse_time(meta.get("deletionTimestamp")), _parse_time(meta.get("creationTimestamp"))]
    known = [t for t in times if t is not None]
    return max(known) if known else None


class _WatchRestartCounter(logging.Filter):
    """Counts kopf's watch-stream restarts from its (debug) log records, which it drops unless
    debug logging is on. kopf logs a restart after ``410 Gone`` and after an inactive stream."""

    PATTERNS = (("Restarting the watch-stream for ", "expired"), ("Watch-stream for ", "inactive"))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.DEBUG:
            message = record.getMessage()
            for prefix, reason in self.PATTERNS:
                if message.startswith(prefix) and (reason != "inactive" or "is inactive" in message):
                    resource = message[len(prefix) :].split(" ", 1)[0].split(".", 1)[0]
                    if resource in metrics.WATCHED_RESOURCES:
                        metrics.record_watch_restart(resource, reason)
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


_WATCHING_LOGGER = "kopf._cogs.clients.watching"


def install_watch_restart_counter() -> None:
    """Count kopf's watch restarts in ``herald_watch_restarts_total`` (idempotent)."""
    logger = logging.getLogger(_WATCHING_LOGGER)
    if not any(isinstance(f, _WatchRestartCounter) for f in logger.filters):
        logger.addFilter(_WatchRestartCounter())
    logger.setLevel(logging.DEBUG)

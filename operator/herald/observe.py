"""Turns each tick's plan into metrics and into Herald's own alerts."""

from __future__ import annotations

import logging
from datetime import datetime

from . import metrics
from .alerts import Alerter, AlertKey
from .alerts import events as alerts
from .circuit import CircuitState
from .config import OperatorConfig
from .reconciler import Plan

log = logging.getLogger("herald.observe")
CONTROLLER = "publications"
# Reconcile results are counted per kind: a failure is the kind of the object that failed.
CONTROLLERS = ("publications", "platformadapters")
REPEATED_FAILURES = 3


def adapter_label(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


class Observer:
    def __init__(self, config: OperatorConfig, alerter: Alerter | None = None):
        self.config = config
        self.alerter = alerter
        self._server: metrics.MetricsServer | None = None
        self._known: dict[str, str] = {}
        self._firing: set[AlertKey] = set()
        self._failed_ticks = 0

    async def start(self) -> None:
        self._server = metrics.start_metrics_server(self.config.metrics_port)
        for controller in CONTROLLERS:
            metrics.init_controller(controller)
        if self.alerter is None:
            self.alerter = Alerter.from_config(self.config.alerts_config)
        await self.alerter.start()

    async def stop(self) -> None:
        if self.alerter is not None:
            await self.alerter.stop()
        if self._server is not None:
            self._server.stop()

    def degraded(self, reason: str) -> None:
        self._alert(
            True,
            AlertKey(alerts.OPERATOR_DEGRADED),
            lambda: alerts.operator_degraded(reason=reason, component="engine"),
        )

    def _alert(self, firing: bool, key: AlertKey, make) -> None:
        """Notify when a condition starts, resolve when it ends (the alerter re-sends while firing)."""
        if self.alerter is None or firing == (key in self._firing):
            return
        if firing:
            self._firing.add(key)
            self.alerter.notify(make())
        else:
            self._firing.discard(key)
            self.alerter.resolve(key)

    def tick(self, seconds: float, failed_units: int) -> None:
        """One tick ended: its duration, and whether any unit in it failed to be decided."""
        if failed_units:
            self._failed_ticks += 1
            if self._failed_ticks >= 3:
                self.degraded(f"{self._failed_ticks} reconcile ticks in a row had units that failed")
            return
        self._failed_ticks = 0
        metrics.record_reconcile(CONTROLLER, "success", seconds)
        self._alert(False, AlertKey(alerts.OPERATOR_DEGRADED), None)

    def adapters_present(self, keys: set[tuple[str, str]]) -> None:
        """Forget the series of adapters that no longer exist."""
        for label in [k for k in self._known if tuple(k.split("/", 1)) not in keys]:
            metrics.forget_adapter(label, self._known.pop(label))

    def __call__(self, plan: Plan, now: datetime) -> None:
        """One unit's plan: its adapters' gauges, its finished attempts, its failures."""
        for failure in plan.failures:
            metrics.record_reconcile(failure.kind, "error")
        for (ns, name), g in plan.gauges.items():
            label = adapter_label(ns, name)
            if label not in self._known:
                metrics.init_adapter(label, g["platform"])
                self._known[label] = g["platform"]
            metrics.set_queue_depth(label, g["pending"])
            metrics.set_running_jobs(label, g["running"])
            metrics.set_dead_letter_targets(label, g["dead_letter"])
            metrics.set_circuit_state(label, g["circuit"].value)
            if g["remaining"] is not None:
                metrics.set_rate_limit_remaining(label, g["remaining"])
            metrics.set_adapter_rate_limited(label, g["rate_limited"])
            metrics.set_adapter_available(label, g["available"])
            metrics.set_adapter_credentials_valid(label, g["credentials_valid"])
            self._adapter_alerts(ns, label, g)
        for obs in plan.attempts:
            self._attempt(obs)

    def _adapter_alerts(self, ns: str, label: str, g: dict) -> None:
        platform = g["platform"]
        self._alert(
            g["circuit"] is CircuitState.OPEN,
            AlertKey(alerts.ADAPTER_CIRCUIT_OPEN, label, ns),
            lambda: alerts.circuit_opened(adapter=label, namespace=ns, platform=platform),
        )
        self._alert(
            not g["credentials_valid"],
            AlertKey(alerts.ADAPTER_CREDENTIALS_INVALID, label, ns),
            lambda: alerts.credentials_invalid(
                adapter=label, namespace=ns, platform=platform, reason=g["credentials_message"]
            ),
        )
        threshold = self.config.queue_alert_threshold
        self._alert(
            g["pending"] > threshold,
            AlertKey(alerts.ADAPTER_QUEUE_OVERLOADED, label, ns),
            lambda: alerts.queue_overloaded(adapter=label, namespace=ns, depth=g["pending"], threshold=threshold),
        )
        exhausted = g["rate_limited"] or g["remaining"] == 0
        self._alert(
            exhausted,
            AlertKey(alerts.ADAPTER_RATE_LIMIT_EXHAUSTED, label, ns),
            lambda: alerts.rate_limit_exhausted(adapter=label, namespace=ns),
        )

    def _attempt(self, obs) -> None:
        label = adapter_label(obs.namespace, obs.adapter)
        o = obs.outcome
        error_class = o.error_class.value if o.error_class else None
        duration = (o.finished - o.started).total_seconds() if o.started and o.finished else None
        result = "published" if o.published else "failed"
        metrics.record_attempt(
            label, obs.platform, result, error_class, duration_seconds=duration, response_seconds=o.response_seconds
        )
        if o.published:
            metrics.record_publication(label, obs.platform, "published")
            if obs.latency is not None:
                metrics.observe_publish_latency(label, obs.latency)
            return
        if obs.retried:
            metrics.record_retry(label, error_class)
        if obs.failed_attempts == REPEATED_FAILURES and self.alerter is not None:
            self.alerter.notify(
                alerts.repeated_failure(
                    adapter=label,
                    namespace=obs.namespace,
                    publication=obs.publication,
                    attempts=obs.failed_attempts,
                    error_class=error_class,
                )
            )
        if obs.dead_letter:
            metrics.record_publication(label, obs.platform, "failed")
            if self.alerter is not None:
                self.alerter.notify(
                    alerts.publication_dead_lettered(
                        adapter=label,
                        namespace=obs.namespace,
                        publication=obs.publication,
                        error_class=error_class,
                        message=o.message,
                    )
                )

"""Turns each tick's plan into metrics (and, through the alerter, Herald's own alerts)."""
from __future__ import annotations

import logging
from datetime import datetime

from . import metrics
from .config import OperatorConfig
from .reconciler import Plan

log = logging.getLogger("herald.observe")
CONTROLLER = "publications"


def adapter_label(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


class Observer:
    def __init__(self, config: OperatorConfig):
        self.config = config
        self._server = None
        self._known: dict[str, str] = {}

    def start(self) -> None:
        self._server = metrics.start_metrics_server(self.config.metrics_port)
        metrics.init_controller(CONTROLLER)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def __call__(self, plan: Plan, now: datetime, seconds: float) -> None:
        metrics.record_reconcile(CONTROLLER, "success", seconds)
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
        for label in [k for k in self._known if tuple(k.split("/", 1)) not in plan.gauges]:
            metrics.forget_adapter(label, self._known.pop(label))
        for obs in plan.attempts:
            label = adapter_label(obs.namespace, obs.adapter)
            o = obs.outcome
            duration = (o.finished - o.started).total_seconds() if o.started and o.finished else None
            result = "published" if o.published else "failed"
            metrics.record_attempt(label, obs.platform, result, o.error_class.value if o.error_class else None,
                                   duration_seconds=duration, response_seconds=o.response_seconds)
            if o.published:
                metrics.record_publication(label, obs.platform, "published")
                if obs.latency is not None:
                    metrics.observe_publish_latency(label, obs.latency)
            elif obs.dead_letter:
                metrics.record_publication(label, obs.platform, "failed")
            if obs.retried:
                metrics.record_retry(label, o.error_class.value if o.error_class else None)

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from herald import metrics
from herald.alerts import Alerter

FAST_RETRY = {"attempts": 3, "initialBackoffSeconds": 0.01, "maxBackoffSeconds": 0.05}


def unique(prefix: str) -> str:
    """A channel name of its own, so metric counters are per test."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sent(channel: str, alertname: str, result: str) -> float:
    return (
        metrics.REGISTRY.get_sample_value(
            "herald_alerts_sent_total", {"channel": channel, "alertname": alertname, "result": result}
        )
        or 0.0
    )


def suppressed(channel: str, alertname: str, reason: str) -> float:
    return (
        metrics.REGISTRY.get_sample_value(
            "herald_alerts_suppressed_total", {"channel": channel, "alertname": alertname, "reason": reason}
        )
        or 0.0
    )


def config(*channels: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {"channels": list(channels), "retry": FAST_RETRY, **extra}


@contextlib.asynccontextmanager
async def running(cfg: Mapping[str, Any], **kwargs: Any) -> AsyncIterator[Alerter]:
    alerter = Alerter.from_config(cfg, **kwargs)
    await alerter.start()
    try:
        yield alerter
    finally:
        await alerter.stop(timeout=5)

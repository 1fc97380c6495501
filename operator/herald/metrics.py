"""Herald's Prometheus metrics.

Every metric lives on the dedicated :data:`REGISTRY` (with the process and
platform collectors), never on prometheus-client's global default registry,
so tests and embedders get exactly Herald's series.

No label is per publication: the label values are adapter names (one per
``PlatformAdapter``), platform names, controller names and small fixed enums,
so the number of series stays bounded by the number of adapters.

The operator calls the helper functions below; they validate and normalise
label values (an unknown error class counts as ``unknown_outcome``, like the
adapter contract says) so a typo cannot mint a new series.

The metrics and their meaning are listed in ``docs/observability.md``.
"""

from __future__ import annotations

import contextlib
import platform as _platform
import threading
import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .errors import ErrorClass

__all__ = [
    "ADAPTER_AVAILABLE",
    "ADAPTER_CREDENTIALS_VALID",
    "ADAPTER_RATE_LIMITED",
    "ALERTS_SENT",
    "ALERT_RESULTS",
    "ATTEMPTS",
    "ATTEMPT_DURATION",
    "ATTEMPT_RESULTS",
    "BUILD_INFO",
    "CIRCUIT_STATE",
    "CIRCUIT_STATES",
    "CONTENT_TYPE_LATEST",
    "DEAD_LETTER_TARGETS",
    "DURATION_BUCKETS",
    "ERROR_CLASSES",
    "FAILURE_ERROR_CLASSES",
    "LAST_RECONCILE_TIMESTAMP",
    "OUTCOMES",
    "PLATFORM_RESPONSE",
    "PUBLICATIONS",
    "PUBLISH_LATENCY",
    "QUEUE_DEPTH",
    "RATE_LIMIT_REMAINING",
    "RECONCILE_ERRORS",
    "RECONCILE_RESULTS",
    "RECONCILE_TIME",
    "RECONCILE_TOTAL",
    "REGISTRY",
    "RETRIES",
    "RUNNING_JOBS",
    "MetricsServer",
    "exposition",
    "forget_adapter",
    "init_adapter",
    "init_controller",
    "normalise_error_class",
    "observe_attempt_duration",
    "observe_platform_response",
    "observe_publish_latency",
    "record_alert_sent",
    "record_attempt",
    "record_publication",
    "record_reconcile",
    "record_retry",
    "set_adapter_available",
    "set_adapter_credentials_valid",
    "set_adapter_rate_limited",
    "set_circuit_state",
    "set_dead_letter_targets",
    "set_queue_depth",
    "set_rate_limit_remaining",
    "set_running_jobs",
    "start_metrics_server",
]

# Counters and histograms would otherwise each carry an extra ``*_created``
# series; Herald's dashboards and rules never use them.
disable_created_metrics()

#: The dedicated registry every Herald metric is registered on.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

#: Histogram buckets (seconds) shared by every duration metric: 50 ms to 10 min.
DURATION_BUCKETS: tuple[float, ...] = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)

#: ``error_class`` label values. ``none`` is for published attempts.
ERROR_CLASSES: tuple[str, ...] = ("none", *tuple(c.value for c in ErrorClass))
FAILURE_ERROR_CLASSES: tuple[str, ...] = ERROR_CLASSES[1:]
OUTCOMES: tuple[str, ...] = ("published", "failed")
ATTEMPT_RESULTS: tuple[str, ...] = ("published", "failed")
ALERT_RESULTS: tuple[str, ...] = ("sent", "failed", "suppressed")
RECONCILE_RESULTS: tuple[str, ...] = ("success", "error")
#: ``herald_circuit_state`` values.
CIRCUIT_STATES: dict[str, int] = {"Closed": 0, "HalfOpen": 1, "Open": 2}

# --- publications and attempts ---------------------------------------------

PUBLICATIONS = Counter(
    "herald_publications_total",
    "Publication targets that reached a terminal state, by outcome (published or failed).",
    ["adapter", "platform", "outcome"],
    registry=REGISTRY,
)
ATTEMPTS = Counter(
    "herald_attempts_total",
    "Finished publication attempts (one Job each), by result and error class "
    "(error_class is none for published attempts).",
    ["adapter", "platform", "result", "error_class"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "herald_retries_total",
    "Retries scheduled after a failed attempt, by the error class that caused them.",
    ["adapter", "error_class"],
    registry=REGISTRY,
)

# --- queues -----------------------------------------------------------------

QUEUE_DEPTH = Gauge(
    "herald_queue_depth",
    "Publication targets that are due and waiting for a Job slot of the adapter.",
    ["adapter"],
    registry=REGISTRY,
)
RUNNING_JOBS = Gauge(
    "herald_running_jobs",
    "Attempt Jobs of the adapter that are running now.",
    ["adapter"],
    registry=REGISTRY,
)
DEAD_LETTER_TARGETS = Gauge(
    "herald_dead_letter_targets",
    "Publication targets of the adapter that are in the dead letter now.",
    ["adapter"],
    registry=REGISTRY,
)

# --- durations --------------------------------------------------------------

ATTEMPT_DURATION = Histogram(
    "herald_attempt_duration_seconds",
    "Duration of an attempt Job, from its start to its finish.",
    ["adapter"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
PLATFORM_RESPONSE = Histogram(
    "herald_platform_response_seconds",
    "Platform call duration reported by the adapter (responseSeconds in its result).",
    ["adapter", "platform"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
PUBLISH_LATENCY = Histogram(
    "herald_publish_latency_seconds",
    "End-to-end latency from a target's due time to its publication.",
    ["adapter"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)

# --- adapter health ---------------------------------------------------------

CIRCUIT_STATE = Gauge(
    "herald_circuit_state",
    "Circuit breaker state of the adapter: 0 Closed, 1 HalfOpen, 2 Open.",
    ["adapter"],
    registry=REGISTRY,
)
RATE_LIMIT_REMAINING = Gauge(
    "herald_rate_limit_remaining",
    "Requests left in the platform's current rate-limit window, as last reported by the adapter.",
    ["adapter"],
    registry=REGISTRY,
)
ADAPTER_RATE_LIMITED = Gauge(
    "herald_adapter_rate_limited",
    "1 while the adapter is blocked by a platform rate limit, else 0.",
    ["adapter"],
    registry=REGISTRY,
)
ADAPTER_AVAILABLE = Gauge(
    "herald_adapter_available",
    "1 when the adapter is available to publish (Available condition true), else 0.",
    ["adapter"],
    registry=REGISTRY,
)
ADAPTER_CREDENTIALS_VALID = Gauge(
    "herald_adapter_credentials_valid",
    "1 when the adapter's credentials are valid as far as Herald knows, 0 after an auth failure or a missing Secret.",
    ["adapter"],
    registry=REGISTRY,
)

# --- Herald's own alerts ----------------------------------------------------

ALERTS_SENT = Counter(
    "herald_alerts_sent_total",
    "Herald's own alert notifications by channel and result (sent, failed, suppressed).",
    ["channel", "alertname", "result"],
    registry=REGISTRY,
)

# --- the operator itself (after controller-runtime's metrics) ---------------

RECONCILE_TOTAL = Counter(
    "herald_reconcile_total",
    "Reconciliations per controller, by result (success, error).",
    ["controller", "result"],
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "herald_reconcile_errors_total",
    "Reconciliations per controller that ended in an error.",
    ["controller"],
    registry=REGISTRY,
)
RECONCILE_TIME = Histogram(
    "herald_reconcile_time_seconds",
    "Duration of a reconciliation per controller.",
    ["controller"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
LAST_RECONCILE_TIMESTAMP = Gauge(
    "herald_last_reconcile_timestamp_seconds",
    "Unix time at which the last reconciliation (of any controller) finished.",
    registry=REGISTRY,
)
BUILD_INFO = Gauge(
    "herald_build_info",
    "Always 1; the labels tell Herald's version and the Python version it runs on.",
    ["version", "python_version"],
    registry=REGISTRY,
)


def _herald_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("herald")
    except PackageNotFoundError:  # pragma: no cover - not installed as a distribution
        return "unknown"


BUILD_INFO.labels(version=_herald_version(), python_version=_platform.python_version()).set(1)


# --- helpers ----------------------------------------------------------------


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def normalise_error_class(error_class: str | None, *, published: bool = False) -> str:
    """Map an attempt's error class to a label value.

    Published attempts are ``none``; a failed attempt with a missing or unknown
    class counts as ``unknown_outcome`` (as the adapter contract classifies it).
    """
    if published:
        return "none"
    if error_class in FAILURE_ERROR_CLASSES:
        return error_class
    return "unknown_outcome"


def init_adapter(adapter: str, platform: str) -> None:
    """Create the adapter's counter series at zero.

    A counter that first appears at 1 loses that first increment in
    ``rate()``/``increase()`` (and a dead-letter gauge that first appears at 1
    never "grows"); calling this when an adapter is first seen makes the alert
    rules exact from the first failure on. Existing values are kept.
    """
    for outcome in OUTCOMES:
        PUBLICATIONS.labels(adapter, platform, outcome)
    # Gauges whose zero is "nothing there" start at 0 (an existing value is
    # kept); the health gauges are left unset until the operator knows them.
    for gauge in (QUEUE_DEPTH, RUNNING_JOBS, DEAD_LETTER_TARGETS):
        gauge.labels(adapter)
    ATTEMPTS.labels(adapter, platform, "published", "none")
    for ec in FAILURE_ERROR_CLASSES:
        ATTEMPTS.labels(adapter, platform, "failed", ec)
        RETRIES.labels(adapter, ec)


def forget_adapter(adapter: str, platform: str | None = None) -> None:
    """Remove every series of a deleted adapter (so stale gauges do not alert)."""
    single: tuple[Gauge | Histogram, ...] = (
        QUEUE_DEPTH,
        RUNNING_JOBS,
        DEAD_LETTER_TARGETS,
        CIRCUIT_STATE,
        RATE_LIMIT_REMAINING,
        ADAPTER_RATE_LIMITED,
        ADAPTER_AVAILABLE,
        ADAPTER_CREDENTIALS_VALID,
        ATTEMPT_DURATION,
        PUBLISH_LATENCY,
    )
    for metric in single:
        with contextlib.suppress(KeyError):
            metric.remove(adapter)
    for ec in FAILURE_ERROR_CLASSES:
        with contextlib.suppress(KeyError):
            RETRIES.remove(adapter, ec)
    # Series labelled with a platform: remove those matching the adapter.
    labelled: tuple[tuple[Counter | Gauge | Histogram, tuple[str, ...]], ...] = (
        (PUBLICATIONS, ("adapter", "platform", "outcome")),
        (ATTEMPTS, ("adapter", "platform", "result", "error_class")),
        (PLATFORM_RESPONSE, ("adapter", "platform")),
    )
    for series, labelnames in labelled:
        for labels in _label_sets(series, labelnames):
            if labels[0] == adapter and (platform is None or labels[1] == platform):
                with contextlib.suppress(KeyError):
                    series.remove(*labels)


def _label_sets(metric: Any, labelnames: tuple[str, ...]) -> set[tuple[str, ...]]:
    """The label values of every child of ``metric`` (from its public samples)."""
    out: set[tuple[str, ...]] = set()
    for family in metric.collect():
        for sample in family.samples:
            if all(n in sample.labels for n in labelnames):
                out.add(tuple(sample.labels[n] for n in labelnames))
    return out


def record_publication(adapter: str, platform: str, outcome: str) -> None:
    """A publication target reached a terminal state (``published`` or ``failed``)."""
    PUBLICATIONS.labels(adapter, platform, _check(outcome, OUTCOMES, "outcome")).inc()


def record_attempt(
    adapter: str,
    platform: str,
    result: str,
    error_class: str | None = None,
    *,
    duration_seconds: float | None = None,
    response_seconds: float | None = None,
) -> None:
    """An attempt Job finished.

    ``error_class`` is ignored (``none``) for published attempts and normalised
    for failed ones. ``duration_seconds`` (Job start to finish) and
    ``response_seconds`` (the adapter's ``responseSeconds``) are observed in
    their histograms when given.
    """
    _check(result, ATTEMPT_RESULTS, "result")
    ec = normalise_error_class(error_class, published=result == "published")
    ATTEMPTS.labels(adapter, platform, result, ec).inc()
    if duration_seconds is not None:
        observe_attempt_duration(adapter, duration_seconds)
    if response_seconds is not None:
        observe_platform_response(adapter, platform, response_seconds)


def record_retry(adapter: str, error_class: str | None) -> None:
    """A retry was scheduled after a failed attempt of class ``error_class``."""
    RETRIES.labels(adapter, normalise_error_class(error_class)).inc()


def observe_attempt_duration(adapter: str, seconds: float) -> None:
    ATTEMPT_DURATION.labels(adapter).observe(max(0.0, float(seconds)))


def observe_platform_response(adapter: str, platform: str, seconds: float) -> None:
    PLATFORM_RESPONSE.labels(adapter, platform).observe(max(0.0, float(seconds)))


def observe_publish_latency(adapter: str, seconds: float) -> None:
    """A target was published ``seconds`` after its due time."""
    PUBLISH_LATENCY.labels(adapter).observe(max(0.0, float(seconds)))


def set_queue_depth(adapter: str, depth: int) -> None:
    QUEUE_DEPTH.labels(adapter).set(depth)


def set_running_jobs(adapter: str, running: int) -> None:
    RUNNING_JOBS.labels(adapter).set(running)


def set_dead_letter_targets(adapter: str, count: int) -> None:
    DEAD_LETTER_TARGETS.labels(adapter).set(count)


def set_circuit_state(adapter: str, state: str | int) -> None:
    """Set the circuit state from ``Closed``/``HalfOpen``/``Open`` (or 0/1/2)."""
    if isinstance(state, str):
        if state not in CIRCUIT_STATES:
            raise ValueError(f"circuit state must be one of {', '.join(CIRCUIT_STATES)}; got {state!r}")
        value = CIRCUIT_STATES[state]
    else:
        value = int(state)
        if value not in CIRCUIT_STATES.values():
            raise ValueError(f"circuit state must be 0, 1 or 2; got {state!r}")
    CIRCUIT_STATE.labels(adapter).set(value)


def set_rate_limit_remaining(adapter: str, remaining: float) -> None:
    RATE_LIMIT_REMAINING.labels(adapter).set(remaining)


def set_adapter_rate_limited(adapter: str, limited: bool) -> None:
    ADAPTER_RATE_LIMITED.labels(adapter).set(1 if limited else 0)


def set_adapter_available(adapter: str, available: bool) -> None:
    ADAPTER_AVAILABLE.labels(adapter).set(1 if available else 0)


def set_adapter_credentials_valid(adapter: str, valid: bool) -> None:
    ADAPTER_CREDENTIALS_VALID.labels(adapter).set(1 if valid else 0)


def record_alert_sent(channel: str, alertname: str, result: str) -> None:
    """Count one of Herald's own alert notifications (``sent``/``failed``/``suppressed``)."""
    ALERTS_SENT.labels(channel, alertname, _check(result, ALERT_RESULTS, "result")).inc()


_controllers_seen: set[str] = set()


def init_controller(controller: str) -> None:
    """Create the controller's reconcile counters at zero (done on first use too)."""
    for result in RECONCILE_RESULTS:
        RECONCILE_TOTAL.labels(controller, result)
    RECONCILE_ERRORS.labels(controller)
    _controllers_seen.add(controller)


def record_reconcile(controller: str, result: str, seconds: float | None = None) -> None:
    """Count a finished reconciliation of ``controller``."""
    _check(result, RECONCILE_RESULTS, "result")
    if controller not in _controllers_seen:
        init_controller(controller)
    RECONCILE_TOTAL.labels(controller, result).inc()
    if result == "error":
        RECONCILE_ERRORS.labels(controller).inc()
    if seconds is not None:
        RECONCILE_TIME.labels(controller).observe(max(0.0, seconds))
    LAST_RECONCILE_TIMESTAMP.set(time.time())


def exposition() -> bytes:
    """The text exposition of :data:`REGISTRY` (what ``/metrics`` serves)."""
    return generate_latest(REGISTRY)


class MetricsServer:
    """A running metrics HTTP server (see :func:`start_metrics_server`)."""

    def __init__(self, httpd: Any, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self._stopped = False

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def address(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def url(self) -> str:
        host = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Shut the server down (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_metrics_server(port: int = 8080, addr: str = "0.0.0.0") -> MetricsServer:
    """Serve :data:`REGISTRY` over HTTP at ``/metrics`` on ``addr:port``.

    Runs in a daemon thread; ``port=0`` picks a free port (see
    :attr:`MetricsServer.port`). Returns a handle whose ``stop()`` shuts the
    server down.
    """
    httpd, thread = start_http_server(port, addr=addr, registry=REGISTRY)
    return MetricsServer(httpd, thread)

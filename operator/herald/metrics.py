"""Herald's Prometheus metrics.

Every metric lives on the dedicated :data:`REGISTRY` (with the process and
platform collectors), never on prometheus-client's global default registry,
so tests and embedders get exactly Herald's series.

Identity: an adapter is ``namespace`` + ``adapter`` (the ``PlatformAdapter``'s
namespace and name), two labels. No label is per publication: label values
are adapter and platform names, controller, resource and channel names and
small fixed enums, so the number of series grows with the number of adapters
only.

Every series a dashboard or an alert rule reads exists from the first scrape
of an adapter (:func:`init_adapter`): counters at 0 for every outcome and
error class, histograms with empty buckets, the circuit state with one series
per state. ``rate()``/``increase()`` then see the first failure, and a new
operator pod (a restart) starts its own series at 0 instead of appearing at 1.

The operator calls the helper functions below; they validate and normalise
label values (an unknown error class counts as ``unknown_outcome``, as the
adapter contract says) so that a typo cannot mint a new series.

The metrics and their meaning are listed in ``docs/observability.md``.
"""

from __future__ import annotations

import contextlib
import platform as _platform
import threading
import time
from collections.abc import Mapping
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

from .errors import BREAKER_CLASSES, ErrorClass

__all__ = [
    "ADAPTER_AVAILABLE",
    "ADAPTER_CREDENTIALS_VALID",
    "ADAPTER_FIRST_SEEN",
    "ADAPTER_INFO",
    "ADAPTER_RATE_LIMITED",
    "ALERTS_SENT",
    "ALERTS_SUPPRESSED",
    "ALERT_RESULTS",
    "API_REQUESTS",
    "API_REQUEST_DURATION",
    "API_REQUEST_SLOT_WAIT",
    "API_VERBS",
    "ATTEMPTS",
    "ATTEMPT_CONTAINER_DURATION",
    "ATTEMPT_DURATION",
    "ATTEMPT_RESULTS",
    "BUILD_INFO",
    "CIRCUIT_STATE",
    "CIRCUIT_STATES",
    "CONTENT_TYPE_LATEST",
    "DEAD_LETTERS",
    "DEAD_LETTER_TARGETS",
    "DURATION_BUCKETS",
    "ERROR_CLASSES",
    "EVENT_LAG",
    "FAILURE_ERROR_CLASSES",
    "LAST_RECONCILE_TIMESTAMP",
    "OUTCOMES",
    "PLATFORM_ERROR_CLASSES",
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
    "REQUEST_POOLS",
    "RETRIES",
    "RUNNING_JOBS",
    "SUPPRESSION_REASONS",
    "WATCHED_RESOURCES",
    "WATCH_RESTARTS",
    "WATCH_RESTART_REASONS",
    "WORKQUEUES",
    "WORKQUEUE_DEPTH",
    "MetricsServer",
    "api_verb",
    "exposition",
    "forget_adapter",
    "init_adapter",
    "init_alert_channel",
    "init_controller",
    "init_operator",
    "normalise_error_class",
    "observe_attempt_container_duration",
    "observe_attempt_duration",
    "observe_decision_event_lag",
    "observe_event_lag",
    "observe_platform_response",
    "observe_publish_latency",
    "observe_request_slot_wait",
    "record_alert_sent",
    "record_alert_suppressed",
    "record_api_request",
    "record_attempt",
    "record_dead_letter",
    "record_publication",
    "record_reconcile",
    "record_retry",
    "record_watch_restart",
    "set_adapter_available",
    "set_adapter_credentials_valid",
    "set_adapter_rate_limited",
    "set_alerts_config_invalid",
    "set_circuit_state",
    "set_dead_letter_targets",
    "set_queue_depth",
    "set_rate_limit_remaining",
    "set_running_jobs",
    "set_workqueue_depth",
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
#: Buckets of the API request and Event lag histograms: 5 ms to 1 min.
FAST_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: ``error_class`` label values: ``none`` for published attempts, then every
#: :class:`~herald.errors.ErrorClass` (the single source of class names).
ERROR_CLASSES: tuple[str, ...] = ("none", *tuple(c.value for c in ErrorClass))
FAILURE_ERROR_CLASSES: tuple[str, ...] = ERROR_CLASSES[1:]
#: The classes that point at the platform or at Herald (they also feed the circuit breaker):
#: what ``HeraldHighErrorRate`` counts. ``auth``, ``rate_limited``, ``rejected``,
#: ``destination_forbidden`` and ``invalid_spec`` are the user's or the account's business.
PLATFORM_ERROR_CLASSES: tuple[str, ...] = tuple(c.value for c in ErrorClass if c in BREAKER_CLASSES)
OUTCOMES: tuple[str, ...] = ("published", "failed")
ATTEMPT_RESULTS: tuple[str, ...] = ("published", "failed")
ALERT_RESULTS: tuple[str, ...] = ("sent", "failed")
#: Why one of Herald's own notifications was not sent as it came (each is logged too).
SUPPRESSION_REASONS: tuple[str, ...] = ("duplicate", "rate_limited", "flapping", "overload")
RECONCILE_RESULTS: tuple[str, ...] = ("success", "error")
#: ``herald_circuit_state`` ``state`` label values (one series each, 1 for the current state).
CIRCUIT_STATES: tuple[str, ...] = ("Closed", "HalfOpen", "Open")
#: ``herald_workqueue_depth`` ``queue`` label values.
WORKQUEUES: tuple[str, ...] = ("ready", "deferred", "scheduled", "in_flight")
API_VERBS: tuple[str, ...] = ("get", "list", "watch", "create", "update", "patch", "delete")
#: ``herald_api_request_slot_wait_seconds`` ``pool`` label values: the engine's two request budgets.
REQUEST_POOLS: tuple[str, ...] = ("writes", "events")
#: The resources the operator watches (``herald_watch_restarts_total``, ``herald_event_lag_seconds``).
WATCHED_RESOURCES: tuple[str, ...] = ("publications", "platformadapters", "jobs", "pods")
WATCH_RESTART_REASONS: tuple[str, ...] = ("expired", "inactive")

ADAPTER = ("namespace", "adapter")

# --- publications and attempts ---------------------------------------------

PUBLICATIONS = Counter(
    "herald_publications_total",
    "Publication targets that reached a terminal state, by outcome (published or failed).",
    [*ADAPTER, "platform", "outcome"],
    registry=REGISTRY,
)
ATTEMPTS = Counter(
    "herald_attempts_total",
    "Finished publication attempts (one Job each), by result and error class "
    "(error_class is none for published attempts).",
    [*ADAPTER, "platform", "result", "error_class"],
    registry=REGISTRY,
)
RETRIES = Counter(
    "herald_retries_total",
    "Retries scheduled after a failed attempt, by the error class that caused them.",
    [*ADAPTER, "platform", "error_class"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "herald_dead_letters_total",
    "Publication targets moved to the dead letter, by the error class of their last attempt.",
    [*ADAPTER, "platform", "error_class"],
    registry=REGISTRY,
)

# --- queues -----------------------------------------------------------------

QUEUE_DEPTH = Gauge(
    "herald_queue_depth",
    "Publication targets that are due and waiting for a Job slot of the adapter.",
    list(ADAPTER),
    registry=REGISTRY,
)
RUNNING_JOBS = Gauge(
    "herald_running_jobs",
    "Attempt Jobs of the adapter that are running now.",
    list(ADAPTER),
    registry=REGISTRY,
)
DEAD_LETTER_TARGETS = Gauge(
    "herald_dead_letter_targets",
    "Publication targets of the adapter that are in the dead letter now.",
    list(ADAPTER),
    registry=REGISTRY,
)

# --- durations --------------------------------------------------------------

ATTEMPT_DURATION = Histogram(
    "herald_attempt_duration_seconds",
    "Duration of an attempt as the operator measured it (sub-second): from its decision to create "
    "the Job to the decision that saw its outcome.",
    [*ADAPTER, "platform", "result"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
ATTEMPT_CONTAINER_DURATION = Histogram(
    "herald_attempt_container_duration_seconds",
    "Duration of an attempt's container as Kubernetes reports it (startedAt to finishedAt; whole seconds).",
    [*ADAPTER, "platform", "result"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
PLATFORM_RESPONSE = Histogram(
    "herald_platform_response_seconds",
    "Platform call duration reported by the adapter (responseSeconds in its result).",
    [*ADAPTER, "platform"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
PUBLISH_LATENCY = Histogram(
    "herald_publish_latency_seconds",
    "End-to-end latency from a target's due time to its publication.",
    [*ADAPTER, "platform"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)

# --- adapter health ---------------------------------------------------------

ADAPTER_INFO = Gauge(
    "herald_adapter_info",
    "Always 1 for each PlatformAdapter the operator knows; the platform label tells its platform.",
    [*ADAPTER, "platform"],
    registry=REGISTRY,
)
ADAPTER_FIRST_SEEN = Gauge(
    "herald_adapter_first_seen_timestamp_seconds",
    "Unix time at which this operator process created the adapter's series (at 0): a counter of a "
    "series younger than a rule's window counts whole (HeraldDeadLetterGrowing).",
    list(ADAPTER),
    registry=REGISTRY,
)
CIRCUIT_STATE = Gauge(
    "herald_circuit_state",
    "Circuit breaker of the adapter: 1 for the state it is in (Closed, HalfOpen, Open), 0 for the others.",
    [*ADAPTER, "state"],
    registry=REGISTRY,
)
RATE_LIMIT_REMAINING = Gauge(
    "herald_rate_limit_remaining",
    "Requests left in the platform's current rate-limit window, as last reported by the adapter.",
    list(ADAPTER),
    registry=REGISTRY,
)
ADAPTER_RATE_LIMITED = Gauge(
    "herald_adapter_rate_limited",
    "1 while the adapter is blocked by a platform rate limit, else 0.",
    list(ADAPTER),
    registry=REGISTRY,
)
ADAPTER_AVAILABLE = Gauge(
    "herald_adapter_available",
    "1 when the adapter is available to publish (Available condition true), else 0.",
    list(ADAPTER),
    registry=REGISTRY,
)
ADAPTER_CREDENTIALS_VALID = Gauge(
    "herald_adapter_credentials_valid",
    "1 when the adapter's credentials are valid as far as Herald knows, 0 after an auth failure or a missing Secret.",
    list(ADAPTER),
    registry=REGISTRY,
)

# --- Herald's own alerts ----------------------------------------------------

ALERTS_SENT = Counter(
    "herald_alerts_sent_total",
    "Herald's own alert notifications by channel and result (sent, or failed after the retries).",
    ["channel", "alertname", "result"],
    registry=REGISTRY,
)
ALERTS_SUPPRESSED = Counter(
    "herald_alerts_suppressed_total",
    "Herald's own alert notifications not sent as they came, by reason: duplicate (the alert was "
    "already firing), rate_limited (held for the channel's next digest), flapping (a resolve and "
    "re-fire absorbed by the hysteresis), overload (more alerts than queueSize; never a critical one).",
    ["channel", "alertname", "reason"],
    registry=REGISTRY,
)

ALERTS_CONFIG_INVALID = Gauge(
    "herald_alerts_config_invalid",
    "1 for a channel of Herald's own alerts whose configuration is invalid: the operator runs without it "
    '(channel "*": the file itself or a top-level key, whose default is used); 0 for a valid channel.',
    ["channel"],
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
WORKQUEUE_DEPTH = Gauge(
    "herald_workqueue_depth",
    "Units of work in the reconcile loop: ready (changed, decided at the next tick), deferred (changed "
    "while their writes were in flight), scheduled (timers: retries, schedules, retention), in_flight "
    "(units whose writes are running).",
    ["queue"],
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "herald_api_requests_total",
    "Requests of the operator's own API client to the Kubernetes API server, by verb and HTTP code "
    "(code 0: no answer).",
    ["verb", "code"],
    registry=REGISTRY,
)
API_REQUEST_DURATION = Histogram(
    "herald_api_request_duration_seconds",
    "Duration of the operator's own Kubernetes API requests, by verb.",
    ["verb"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)
API_REQUEST_SLOT_WAIT = Histogram(
    "herald_api_request_slot_wait_seconds",
    "Seconds a request of the engine waited for a slot of its pool (HERALD_REQUESTS each) before it "
    "was sent, by pool (writes: Job creates, status writes, deletes and Secret reads; events: Kubernetes Events).",
    ["pool"],
    buckets=(0.001, *FAST_BUCKETS),
    registry=REGISTRY,
)
WATCH_RESTARTS = Counter(
    "herald_watch_restarts_total",
    "Watch streams restarted after a problem, by resource and reason (expired: 410 Gone, the "
    "resourceVersion was too old; inactive: no event for the inactivity timeout).",
    ["resource", "reason"],
    registry=REGISTRY,
)
DECISION_EVENT_LAG = Histogram(
    "herald_decision_event_lag_seconds",
    "Seconds from the decision that made a Kubernetes Event (AttemptStarted, AttemptFailed, ...) to "
    "the API server accepting it.",
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)
EVENT_LAG = Histogram(
    "herald_event_lag_seconds",
    "Seconds from the API server recording a change (the latest managedFields time, whole seconds) "
    "to the operator receiving its watch event, by resource.",
    ["resource"],
    buckets=FAST_BUCKETS,
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

#: Every metric with an adapter identity, with its label names (for :func:`forget_adapter`).
_ADAPTER_METRICS: tuple[Any, ...] = (
    PUBLICATIONS,
    ATTEMPTS,
    RETRIES,
    DEAD_LETTERS,
    QUEUE_DEPTH,
    RUNNING_JOBS,
    DEAD_LETTER_TARGETS,
    ATTEMPT_DURATION,
    ATTEMPT_CONTAINER_DURATION,
    PLATFORM_RESPONSE,
    PUBLISH_LATENCY,
    ADAPTER_INFO,
    ADAPTER_FIRST_SEEN,
    CIRCUIT_STATE,
    RATE_LIMIT_REMAINING,
    ADAPTER_RATE_LIMITED,
    ADAPTER_AVAILABLE,
    ADAPTER_CREDENTIALS_VALID,
)


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


def init_adapter(namespace: str, adapter: str, platform: str) -> None:
    """Create every series of an adapter at zero (existing values are kept).

    A counter that first appears at 1 loses that increment in ``rate()`` and
    ``increase()``; a histogram without series gives no quantile (and the
    dashboard shows NaN). Call this when the adapter is first seen, so every
    series a rule or a panel reads exists from the first scrape. The health
    gauges (circuit, availability, credentials, rate limit) are set by the
    caller right after, from what it knows.
    """
    ADAPTER_INFO.labels(namespace, adapter, platform).set(1)
    if (
        REGISTRY.get_sample_value(
            "herald_adapter_first_seen_timestamp_seconds", {"namespace": namespace, "adapter": adapter}
        )
        is None
    ):
        ADAPTER_FIRST_SEEN.labels(namespace, adapter).set(time.time())
    for outcome in OUTCOMES:
        PUBLICATIONS.labels(namespace, adapter, platform, outcome)
    ATTEMPTS.labels(namespace, adapter, platform, "published", "none")
    for ec in FAILURE_ERROR_CLASSES:
        ATTEMPTS.labels(namespace, adapter, platform, "failed", ec)
        RETRIES.labels(namespace, adapter, platform, ec)
        DEAD_LETTERS.labels(namespace, adapter, platform, ec)
    for gauge in (QUEUE_DEPTH, RUNNING_JOBS, DEAD_LETTER_TARGETS):
        gauge.labels(namespace, adapter)
    for result in ATTEMPT_RESULTS:
        ATTEMPT_DURATION.labels(namespace, adapter, platform, result)
        ATTEMPT_CONTAINER_DURATION.labels(namespace, adapter, platform, result)
    PLATFORM_RESPONSE.labels(namespace, adapter, platform)
    PUBLISH_LATENCY.labels(namespace, adapter, platform)


def forget_adapter(namespace: str, adapter: str) -> None:
    """Remove every series of a deleted adapter (so stale gauges do not alert)."""
    for metric in _ADAPTER_METRICS:
        names: tuple[str, ...] = tuple(metric._labelnames)
        for labels in _label_sets(metric, names):
            if labels[0] == namespace and labels[1] == adapter:
                with contextlib.suppress(KeyError):
                    metric.remove(*labels)


def _label_sets(metric: Any, labelnames: tuple[str, ...]) -> set[tuple[str, ...]]:
    """The label values of every child of ``metric`` (from its public samples)."""
    out: set[tuple[str, ...]] = set()
    for family in metric.collect():
        for sample in family.samples:
            if all(n in sample.labels for n in labelnames):
                out.add(tuple(sample.labels[n] for n in labelnames))
    return out


def record_publication(namespace: str, adapter: str, platform: str, outcome: str) -> None:
    """A publication target reached a terminal state (``published`` or ``failed``)."""
    PUBLICATIONS.labels(namespace, adapter, platform, _check(outcome, OUTCOMES, "outcome")).inc()


def record_attempt(
    namespace: str,
    adapter: str,
    platform: str,
    result: str,
    error_class: str | None = None,
    *,
    duration_seconds: float | None = None,
    container_seconds: float | None = None,
    response_seconds: float | None = None,
) -> None:
    """An attempt Job finished.

    ``error_class`` is ignored (``none``) for published attempts and normalised
    for failed ones. ``duration_seconds`` (the operator's own measure),
    ``container_seconds`` (the container's reported run time) and
    ``response_seconds`` (the adapter's ``responseSeconds``) are observed in
    their histograms when given.
    """
    _check(result, ATTEMPT_RESULTS, "result")
    ec = normalise_error_class(error_class, published=result == "published")
    ATTEMPTS.labels(namespace, adapter, platform, result, ec).inc()
    if duration_seconds is not None:
        observe_attempt_duration(namespace, adapter, platform, result, duration_seconds)
    if container_seconds is not None:
        observe_attempt_container_duration(namespace, adapter, platform, result, container_seconds)
    if response_seconds is not None:
        observe_platform_response(namespace, adapter, platform, response_seconds)


def record_retry(namespace: str, adapter: str, platform: str, error_class: str | None) -> None:
    """A retry was scheduled after a failed attempt of class ``error_class``."""
    RETRIES.labels(namespace, adapter, platform, normalise_error_class(error_class)).inc()


def record_dead_letter(namespace: str, adapter: str, platform: str, error_class: str | None) -> None:
    """A target moved to the dead letter after a failure of class ``error_class``."""
    DEAD_LETTERS.labels(namespace, adapter, platform, normalise_error_class(error_class)).inc()


def observe_attempt_duration(namespace: str, adapter: str, platform: str, result: str, seconds: float) -> None:
    ATTEMPT_DURATION.labels(namespace, adapter, platform, _check(result, ATTEMPT_RESULTS, "result")).observe(
        max(0.0, float(seconds))
    )


def observe_attempt_container_duration(
    namespace: str, adapter: str, platform: str, result: str, seconds: float
) -> None:
    ATTEMPT_CONTAINER_DURATION.labels(namespace, adapter, platform, _check(result, ATTEMPT_RESULTS, "result")).observe(
        max(0.0, float(seconds))
    )


def observe_platform_response(namespace: str, adapter: str, platform: str, seconds: float) -> None:
    PLATFORM_RESPONSE.labels(namespace, adapter, platform).observe(max(0.0, float(seconds)))


def observe_publish_latency(namespace: str, adapter: str, platform: str, seconds: float) -> None:
    """A target was published ``seconds`` after its due time."""
    PUBLISH_LATENCY.labels(namespace, adapter, platform).observe(max(0.0, float(seconds)))


def set_queue_depth(namespace: str, adapter: str, depth: int) -> None:
    QUEUE_DEPTH.labels(namespace, adapter).set(depth)


def set_running_jobs(namespace: str, adapter: str, running: int) -> None:
    RUNNING_JOBS.labels(namespace, adapter).set(running)


def set_dead_letter_targets(namespace: str, adapter: str, count: int) -> None:
    DEAD_LETTER_TARGETS.labels(namespace, adapter).set(count)


def set_circuit_state(namespace: str, adapter: str, state: str) -> None:
    """1 for ``state`` (``Closed``, ``HalfOpen`` or ``Open``), 0 for the other two."""
    _check(state, CIRCUIT_STATES, "circuit state")
    for s in CIRCUIT_STATES:
        CIRCUIT_STATE.labels(namespace, adapter, s).set(1 if s == state else 0)


def set_rate_limit_remaining(namespace: str, adapter: str, remaining: float) -> None:
    RATE_LIMIT_REMAINING.labels(namespace, adapter).set(remaining)


def set_adapter_rate_limited(namespace: str, adapter: str, limited: bool) -> None:
    ADAPTER_RATE_LIMITED.labels(namespace, adapter).set(1 if limited else 0)


def set_adapter_available(namespace: str, adapter: str, available: bool) -> None:
    ADAPTER_AVAILABLE.labels(namespace, adapter).set(1 if available else 0)


def set_adapter_credentials_valid(namespace: str, adapter: str, valid: bool) -> None:
    ADAPTER_CREDENTIALS_VALID.labels(namespace, adapter).set(1 if valid else 0)


def init_alert_channel(channel: str, alertnames: tuple[str, ...]) -> None:
    """Zero series for a channel of Herald's own alerts (so ``increase()`` sees the first failure)."""
    for name in alertnames:
        for result in ALERT_RESULTS:
            ALERTS_SENT.labels(channel, name, result)
        for reason in SUPPRESSION_REASONS:
            ALERTS_SUPPRESSED.labels(channel, name, reason)


def set_alerts_config_invalid(channel: str, invalid: bool) -> None:
    """Report whether a channel of Herald's own alerts was left out for an invalid configuration."""
    ALERTS_CONFIG_INVALID.labels(channel).set(1 if invalid else 0)


def record_alert_sent(channel: str, alertname: str, result: str) -> None:
    """Count one of Herald's own alert notifications (``sent`` or ``failed``)."""
    ALERTS_SENT.labels(channel, alertname, _check(result, ALERT_RESULTS, "result")).inc()


def record_alert_suppressed(channel: str, alertname: str, reason: str) -> None:
    """Count a notification of Herald's own alerts that was not sent as it came (see SUPPRESSION_REASONS)."""
    ALERTS_SUPPRESSED.labels(channel, alertname, _check(reason, SUPPRESSION_REASONS, "reason")).inc()


_controllers_seen: set[str] = set()


def init_controller(controller: str) -> None:
    """Create the controller's reconcile series at zero (done on first use too)."""
    for result in RECONCILE_RESULTS:
        RECONCILE_TOTAL.labels(controller, result)
    RECONCILE_ERRORS.labels(controller)
    RECONCILE_TIME.labels(controller)
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


def init_operator() -> None:
    """Zero series of the controller metrics: work queues, API requests (as code 200), watches and Event lag."""
    for queue in WORKQUEUES:
        WORKQUEUE_DEPTH.labels(queue)
    for verb in API_VERBS:
        API_REQUESTS.labels(verb, "200")
        API_REQUEST_DURATION.labels(verb)
    for pool in REQUEST_POOLS:
        API_REQUEST_SLOT_WAIT.labels(pool)
    for resource in WATCHED_RESOURCES:
        EVENT_LAG.labels(resource)
        for reason in WATCH_RESTART_REASONS:
            WATCH_RESTARTS.labels(resource, reason)


def set_workqueue_depth(depths: Mapping[str, int]) -> None:
    """The reconcile loop's queues (keys from :data:`WORKQUEUES`; the ones not given are left as they are)."""
    for queue, depth in depths.items():
        WORKQUEUE_DEPTH.labels(_check(queue, WORKQUEUES, "queue")).set(depth)


def api_verb(method: str, params: Mapping[str, str] | None = None) -> str:
    """The Kubernetes verb of a request: GET with ``watch`` is watch, GET with ``limit``,
    ``labelSelector`` or ``continue`` is list (Herald's client lists with a limit), other GETs get."""
    method = method.upper()
    p = params or {}
    if method == "GET":
        if str(p.get("watch", "")).lower() in ("1", "true"):
            return "watch"
        return "list" if {"limit", "labelSelector", "continue", "fieldSelector"} & set(p) else "get"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "get")


def record_api_request(verb: str, code: int | str, seconds: float | None = None) -> None:
    """One request of the operator's API client: its verb (:func:`api_verb`), the HTTP status
    (0 when no answer came) and its duration."""
    API_REQUESTS.labels(_check(verb, API_VERBS, "verb"), str(int(code))).inc()
    if seconds is not None:
        API_REQUEST_DURATION.labels(verb).observe(max(0.0, float(seconds)))


def record_watch_restart(resource: str, reason: str) -> None:
    WATCH_RESTARTS.labels(resource, _check(reason, WATCH_RESTART_REASONS, "reason")).inc()


def observe_request_slot_wait(pool: str, seconds: float) -> None:
    API_REQUEST_SLOT_WAIT.labels(_check(pool, REQUEST_POOLS, "pool")).observe(max(0.0, float(seconds)))


def observe_decision_event_lag(seconds: float) -> None:
    DECISION_EVENT_LAG.observe(max(0.0, float(seconds)))


def observe_event_lag(resource: str, seconds: float) -> None:
    EVENT_LAG.labels(resource).observe(max(0.0, float(seconds)))


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

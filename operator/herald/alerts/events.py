"""Herald's own alert events: what the operator raises, their identity and their timing."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import NamedTuple

__all__ = [
    "ALERT_NAMES",
    "CREDENTIALS_INVALID",
    "DEAD_LETTER_GROWING",
    "OPERATOR_DEGRADED",
    "PLATFORM_DOWN",
    "QUEUE_OVERLOADED",
    "RATE_LIMITED_TOO_LONG",
    "RUNBOOK_BASE_URL",
    "TARGET_REPEATED_FAILURE",
    "TIMINGS",
    "AlertEvent",
    "AlertKey",
    "Severity",
    "Timing",
    "credentials_invalid",
    "dead_lettered",
    "operator_degraded",
    "platform_down",
    "queue_overloaded",
    "rate_limited_too_long",
    "repeated_failure",
    "runbook_url",
]


class Severity(enum.StrEnum):
    """Alert severity, ordered: info < warning < critical."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __str__(self) -> str:
        return self.value


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}

# The alerts the operator raises itself. Five have the names of the Prometheus rules
# (alert-rules/herald.rules.yml) and the same identifying labels (alertname, severity, namespace,
# adapter), so an Alertmanager that gets both sees one alert per cause. The last two exist only here.
PLATFORM_DOWN = "HeraldPlatformDown"
CREDENTIALS_INVALID = "HeraldCredentialsInvalid"
QUEUE_OVERLOADED = "HeraldQueueOverloaded"
RATE_LIMITED_TOO_LONG = "HeraldRateLimitedTooLong"
DEAD_LETTER_GROWING = "HeraldDeadLetterGrowing"
TARGET_REPEATED_FAILURE = "HeraldTargetRepeatedFailure"
OPERATOR_DEGRADED = "HeraldOperatorDegraded"

ALERT_NAMES: tuple[str, ...] = (
    PLATFORM_DOWN,
    CREDENTIALS_INVALID,
    QUEUE_OVERLOADED,
    RATE_LIMITED_TOO_LONG,
    DEAD_LETTER_GROWING,
    TARGET_REPEATED_FAILURE,
    OPERATOR_DEGRADED,
)


class Timing(NamedTuple):
    """When an alert fires and resolves.

    * ``for_seconds``: a condition must hold this long before the alert fires (as a rule's ``for``);
    * ``hold_seconds``: hysteresis. A firing alert resolves only once its condition has been false
      this long, and a pending one starts over only then; a condition that comes back sooner
      changes nothing (the rule's ``max_over_time(...[hold])``);
    * ``expire_seconds``: for occurrences (:meth:`Alerter.notify`), the alert resolves this long
      after the last one (the rule's ``increase(...[15m]) > 0``); 0 never.
    """

    for_seconds: float = 0.0
    hold_seconds: float = 120.0
    expire_seconds: float = 900.0


#: The timing of each alert, matching its Prometheus rule where there is one.
TIMINGS: dict[str, Timing] = {
    PLATFORM_DOWN: Timing(0.0, 120.0),
    CREDENTIALS_INVALID: Timing(0.0, 120.0),
    QUEUE_OVERLOADED: Timing(300.0, 120.0),
    RATE_LIMITED_TOO_LONG: Timing(900.0, 120.0),
    DEAD_LETTER_GROWING: Timing(expire_seconds=900.0),
    TARGET_REPEATED_FAILURE: Timing(expire_seconds=900.0),
    OPERATOR_DEGRADED: Timing(0.0, 120.0),
}

RUNBOOK_BASE_URL = "https://github.com/herald-dev/herald/blob/main/docs/runbooks.md"


def runbook_url(alertname: str) -> str:
    """Every alert has a section of docs/runbooks.md named after it."""
    return f"{RUNBOOK_BASE_URL}#{alertname.lower()}"


class AlertKey(NamedTuple):
    """The root cause an alert is about: its name and the adapter (namespace, name) if any."""

    alertname: str
    namespace: str = ""
    adapter: str = ""


@dataclass(frozen=True)
class AlertEvent:
    """One alert raised (``firing=True``) or cleared (``firing=False``) by the operator.

    The identifying labels are the name, severity, namespace, adapter and ``labels`` (keep
    ``labels`` empty for the alerts the rules also raise, so both are one alert in Alertmanager);
    per-occurrence details (a publication, the last error, the platform) go in ``description``
    or ``annotations``, never in labels.
    """

    name: str
    severity: Severity
    summary: str
    description: str = ""
    adapter: str | None = None
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    firing: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an alert needs a name")
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "labels", {str(k): str(v) for k, v in dict(self.labels).items()})
        object.__setattr__(self, "annotations", {str(k): str(v) for k, v in dict(self.annotations).items()})

    @property
    def key(self) -> AlertKey:
        return AlertKey(self.name, self.namespace or "", self.adapter or "")

    @property
    def status(self) -> str:
        return "firing" if self.firing else "resolved"

    @property
    def timing(self) -> Timing:
        return TIMINGS.get(self.name, Timing())

    def resolved(self) -> AlertEvent:
        return replace(self, firing=False)

    @property
    def runbook_url(self) -> str:
        return self.annotations.get("runbook_url") or runbook_url(self.name)


# --- constructors for the events the operator raises -------------------------


def _adapter_event(
    name: str, severity: Severity, summary: str, description: str, namespace: str, adapter: str, **annotations: str
) -> AlertEvent:
    return AlertEvent(
        name=name,
        severity=severity,
        summary=summary,
        description=description,
        adapter=adapter,
        namespace=namespace,
        annotations={k: v for k, v in annotations.items() if v},
    )


def platform_down(*, namespace: str, adapter: str, platform: str = "", reason: str = "") -> AlertEvent:
    """The adapter's circuit breaker is open: the platform is considered down."""
    desc = f"The circuit breaker of adapter {adapter} in namespace {namespace} is open"
    desc += f" ({platform} is considered down)" if platform else ""
    desc += f": {reason}" if reason else ": Herald stopped starting attempts and probes again after the cool-down."
    return _adapter_event(
        PLATFORM_DOWN,
        Severity.CRITICAL,
        "A platform is down; Herald's circuit breaker for it is open.",
        desc,
        namespace,
        adapter,
        platform=platform,
    )


def credentials_invalid(*, namespace: str, adapter: str, platform: str = "", reason: str = "") -> AlertEvent:
    """The adapter's credentials were refused (an auth failure) or are missing."""
    desc = f"The credentials of adapter {adapter} in namespace {namespace} are invalid or missing"
    desc += f": {reason}" if reason else "."
    return _adapter_event(
        CREDENTIALS_INVALID,
        Severity.CRITICAL,
        "Herald adapter credentials are invalid.",
        desc,
        namespace,
        adapter,
        platform=platform,
    )


def queue_overloaded(*, namespace: str, adapter: str, depth: int, threshold: int) -> AlertEvent:
    """More targets are waiting for a Job slot of the adapter than ``threshold``."""
    return _adapter_event(
        QUEUE_OVERLOADED,
        Severity.WARNING,
        "A Herald adapter queue is overloaded.",
        f"{depth} publication targets of adapter {adapter} in namespace {namespace} are due and waiting "
        f"for a Job slot (threshold {threshold}).",
        namespace,
        adapter,
    )


def rate_limited_too_long(*, namespace: str, adapter: str, reset_at: str = "") -> AlertEvent:
    """The adapter has been blocked by the platform's rate limit for a long time."""
    desc = f"Adapter {adapter} in namespace {namespace} has been blocked by the platform rate limit for a long time"
    desc += f"; the window resets at {reset_at}." if reset_at else "."
    return _adapter_event(
        RATE_LIMITED_TOO_LONG,
        Severity.WARNING,
        "A Herald adapter has been blocked by a platform rate limit for a long time.",
        desc,
        namespace,
        adapter,
    )


def dead_lettered(
    *, namespace: str, adapter: str, publication: str = "", error_class: str = "", message: str = ""
) -> AlertEvent:
    """A publication target moved to the dead letter (one alert per adapter, not per publication)."""
    what = f"Publication {publication}" if publication else "A publication"
    why = f" after a {error_class} failure" if error_class else ""
    desc = f"{what} was moved to the dead letter of adapter {adapter} in namespace {namespace}{why}."
    if message:
        desc += f" Last error: {message}"
    return _adapter_event(
        DEAD_LETTER_GROWING,
        Severity.WARNING,
        "Publications are being moved to Herald's dead letter.",
        desc,
        namespace,
        adapter,
        publication=publication,
    )


def repeated_failure(
    *, namespace: str, adapter: str, publication: str = "", attempts: int = 3, error_class: str = ""
) -> AlertEvent:
    """A target failed ``attempts`` times in a row (one alert per adapter)."""
    what = f"publication {publication}" if publication else "a publication"
    desc = f"The {adapter} target of {what} in namespace {namespace} failed {attempts} attempts in a row"
    desc += f" (last error class {error_class})." if error_class else "."
    return _adapter_event(
        TARGET_REPEATED_FAILURE,
        Severity.WARNING,
        "A Herald publication target keeps failing.",
        desc,
        namespace,
        adapter,
        publication=publication,
    )


def operator_degraded(*, reason: str, component: str = "") -> AlertEvent:
    """The operator itself is degraded (e.g. its reconcile ticks keep failing)."""
    return AlertEvent(
        name=OPERATOR_DEGRADED,
        severity=Severity.CRITICAL,
        summary="The Herald operator is degraded.",
        description=f"The Herald operator is degraded: {reason}",
        annotations={"component": component} if component else {},
    )

"""Herald's own alert events: what the operator raises, and their dedup keys."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

__all__ = [
    "ADAPTER_CIRCUIT_OPEN",
    "ADAPTER_CREDENTIALS_INVALID",
    "ADAPTER_QUEUE_OVERLOADED",
    "ADAPTER_RATE_LIMIT_EXHAUSTED",
    "ALERT_NAMES",
    "OPERATOR_DEGRADED",
    "PUBLICATION_DEAD_LETTERED",
    "RUNBOOK_ANCHORS",
    "RUNBOOK_BASE_URL",
    "TARGET_REPEATED_FAILURE",
    "AlertEvent",
    "AlertKey",
    "Severity",
    "circuit_opened",
    "credentials_invalid",
    "operator_degraded",
    "publication_dead_lettered",
    "queue_overloaded",
    "rate_limit_exhausted",
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

# The alerts the operator raises itself. Their names differ from the
# Prometheus rules' (alert-rules/herald.rules.yml) so that both can be routed
# to the same Alertmanager without being merged.
PUBLICATION_DEAD_LETTERED = "HeraldPublicationDeadLettered"
ADAPTER_CIRCUIT_OPEN = "HeraldAdapterCircuitOpen"
ADAPTER_CREDENTIALS_INVALID = "HeraldAdapterCredentialsInvalid"
ADAPTER_QUEUE_OVERLOADED = "HeraldAdapterQueueOverloaded"
ADAPTER_RATE_LIMIT_EXHAUSTED = "HeraldAdapterRateLimitExhausted"
TARGET_REPEATED_FAILURE = "HeraldTargetRepeatedFailure"
OPERATOR_DEGRADED = "HeraldOperatorDegraded"

ALERT_NAMES: tuple[str, ...] = (
    PUBLICATION_DEAD_LETTERED,
    ADAPTER_CIRCUIT_OPEN,
    ADAPTER_CREDENTIALS_INVALID,
    ADAPTER_QUEUE_OVERLOADED,
    ADAPTER_RATE_LIMIT_EXHAUSTED,
    TARGET_REPEATED_FAILURE,
    OPERATOR_DEGRADED,
)

RUNBOOK_BASE_URL = "https://github.com/herald-dev/herald/blob/main/docs/runbooks.md"
#: Section of docs/runbooks.md for each of the operator's own alerts.
RUNBOOK_ANCHORS: dict[str, str] = {
    PUBLICATION_DEAD_LETTERED: "heraldpublicationdeadlettered",
    ADAPTER_CIRCUIT_OPEN: "heraldplatformdown",
    ADAPTER_CREDENTIALS_INVALID: "heraldcredentialsinvalid",
    ADAPTER_QUEUE_OVERLOADED: "heraldqueueoverloaded",
    ADAPTER_RATE_LIMIT_EXHAUSTED: "heraldratelimitedtoolong",
    TARGET_REPEATED_FAILURE: "heraldtargetrepeatedfailure",
    OPERATOR_DEGRADED: "heraldoperatordegraded",
}


def runbook_url(alertname: str) -> str | None:
    anchor = RUNBOOK_ANCHORS.get(alertname)
    return f"{RUNBOOK_BASE_URL}#{anchor}" if anchor else None


class AlertKey(NamedTuple):
    """The root cause an alert is about; notifications are deduplicated by it."""

    alertname: str
    adapter: str = ""
    namespace: str = ""


@dataclass(frozen=True)
class AlertEvent:
    """One alert raised (``firing=True``) or cleared (``firing=False``) by the operator.

    ``labels`` identify the alert together with the name, adapter and
    namespace and must have a small, bounded set of values (never a
    publication name); per-occurrence details such as the publication go in
    ``description`` or ``annotations``. Deduplication is by :attr:`key`: while
    an alert with the same key is firing, further events only update its text.
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
    starts_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an alert needs a name")
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "labels", {str(k): str(v) for k, v in dict(self.labels).items()})
        object.__setattr__(self, "annotations", {str(k): str(v) for k, v in dict(self.annotations).items()})

    @property
    def key(self) -> AlertKey:
        return AlertKey(self.name, self.adapter or "", self.namespace or "")

    @property
    def status(self) -> str:
        return "firing" if self.firing else "resolved"

    def resolved(self) -> AlertEvent:
        return replace(self, firing=False)

    @property
    def runbook_url(self) -> str | None:
        return self.annotations.get("runbook_url") or runbook_url(self.name)


# --- constructors for the events the operator raises -------------------------


def publication_dead_lettered(
    *,
    adapter: str,
    namespace: str | None = None,
    publication: str | None = None,
    error_class: str | None = None,
    message: str = "",
    severity: Severity = Severity.WARNING,
) -> AlertEvent:
    """A publication target moved to the dead letter (one alert per adapter)."""
    what = f"Publication {publication}" if publication else "A publication"
    why = f" after a {error_class} failure" if error_class else ""
    desc = f"{what} was moved to the dead letter of adapter {adapter}{why}."
    if message:
        desc += f" Last error: {message}"
    ann = {"publication": publication} if publication else {}
    return AlertEvent(
        name=PUBLICATION_DEAD_LETTERED,
        severity=severity,
        summary="Publications are being moved to Herald's dead letter.",
        description=desc,
        adapter=adapter,
        namespace=namespace,
        annotations=ann,
    )


def circuit_opened(
    *, adapter: str, namespace: str | None = None, platform: str | None = None, reason: str = ""
) -> AlertEvent:
    """The adapter's circuit breaker opened: the platform is considered down."""
    desc = f"The circuit breaker of adapter {adapter} opened"
    desc += f" ({platform} is considered down)" if platform else ""
    desc += f": {reason}" if reason else "."
    return AlertEvent(
        name=ADAPTER_CIRCUIT_OPEN,
        severity=Severity.CRITICAL,
        summary="A platform is down; Herald's circuit breaker for it is open.",
        description=desc,
        adapter=adapter,
        namespace=namespace,
        labels={"platform": platform} if platform else {},
    )


def credentials_invalid(
    *, adapter: str, namespace: str | None = None, platform: str | None = None, reason: str = ""
) -> AlertEvent:
    """The adapter's credentials were rejected (an auth failure) or are missing."""
    desc = f"The credentials of adapter {adapter} are invalid or missing"
    desc += f": {reason}" if reason else "."
    return AlertEvent(
        name=ADAPTER_CREDENTIALS_INVALID,
        severity=Severity.CRITICAL,
        summary="Herald adapter credentials are invalid.",
        description=desc,
        adapter=adapter,
        namespace=namespace,
        labels={"platform": platform} if platform else {},
    )


def queue_overloaded(*, adapter: str, depth: int, threshold: int, namespace: str | None = None) -> AlertEvent:
    """More targets are waiting for a Job slot of the adapter than ``threshold``."""
    return AlertEvent(
        name=ADAPTER_QUEUE_OVERLOADED,
        severity=Severity.WARNING,
        summary="A Herald adapter queue is overloaded.",
        description=(
            f"{depth} publication targets of adapter {adapter} are waiting for a Job slot (threshold {threshold})."
        ),
        adapter=adapter,
        namespace=namespace,
    )


def rate_limit_exhausted(*, adapter: str, namespace: str | None = None, reset_at: str | None = None) -> AlertEvent:
    """The platform's rate limit for the adapter is exhausted."""
    desc = f"The platform rate limit of adapter {adapter} is exhausted"
    desc += f" until {reset_at}." if reset_at else "."
    return AlertEvent(
        name=ADAPTER_RATE_LIMIT_EXHAUSTED,
        severity=Severity.WARNING,
        summary="A Herald adapter is blocked by a platform rate limit.",
        description=desc,
        adapter=adapter,
        namespace=namespace,
    )


def repeated_failure(
    *,
    adapter: str,
    namespace: str | None = None,
    publication: str | None = None,
    attempts: int = 3,
    error_class: str | None = None,
) -> AlertEvent:
    """A target failed ``attempts`` times in a row (one alert per adapter)."""
    what = f"publication {publication}" if publication else "a publication"
    desc = f"The {adapter} target of {what} failed {attempts} attempts in a row"
    desc += f" (last error class {error_class})." if error_class else "."
    ann = {"publication": publication} if publication else {}
    return AlertEvent(
        name=TARGET_REPEATED_FAILURE,
        severity=Severity.WARNING,
        summary="A Herald publication target keeps failing.",
        description=desc,
        adapter=adapter,
        namespace=namespace,
        annotations=ann,
    )


def operator_degraded(*, reason: str, component: str | None = None) -> AlertEvent:
    """The operator itself is degraded (e.g. it cannot reach the API server)."""
    return AlertEvent(
        name=OPERATOR_DEGRADED,
        severity=Severity.CRITICAL,
        summary="The Herald operator is degraded.",
        description=f"The Herald operator is degraded: {reason}",
        labels={"component": component} if component else {},
    )

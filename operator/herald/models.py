"""Typed status: what Herald writes to a Publication's and a PlatformAdapter's status.

Python names are snake_case; the API's are camelCase (pydantic aliases). ``to_status()`` gives
the merge-patch body, with every field present (None where the API should drop it).
``from_status()`` reads what the API holds — which may have been edited, damaged or written by an
older operator — field by field: a field of the wrong type falls back to its fresh value, so one
bad field never stops the decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .errors import ErrorClass
from .status import Phase

_PHASES = frozenset(v for k, v in vars(Phase).items() if k.isupper())
_CLASSES = frozenset(c.value for c in ErrorClass)
_MAX_INT = 2**31 - 1
# maxLength of the target's string fields in the Publication CRD's status schema.
_TARGET_LIMITS = {"reason": 1024, "message": 32768, "lastError": 32768, "jobName": 253, "postId": 1024, "url": 4096}


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", validate_assignment=False
    )

    def to_status(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class TargetStatus(_Model):
    """One target (adapter) of a Publication."""

    adapter: str
    phase: str = Phase.PENDING
    reason: str = ""
    message: str = ""
    attempts: int = 0
    retries: int = 0
    job_name: str | None = None
    last_error_class: str | None = None
    last_error: str | None = None
    last_backoff_seconds: float | None = None
    next_attempt_at: str | None = None
    post_id: str | None = None
    url: str | None = None
    published_time: str | None = None
    observed_attempt: int = 0
    verify_next: bool = False
    budget_start: int = 0
    failures: dict[str, int] = Field(default_factory=dict)
    dead_letter: bool = False
    waiting_since: str | None = None

    def set(self, phase: str, reason: str = "", message: str = "") -> None:
        self.phase, self.reason, self.message = phase, reason, message

    def to_status(self) -> dict[str, Any]:
        """The API form, each string within the CRD's limit (a status write is never refused)."""
        out = super().to_status()
        for key, limit in _TARGET_LIMITS.items():
            if isinstance(out.get(key), str) and len(out[key]) > limit:
                out[key] = out[key][: limit - 1] + "…"
        return out

    @classmethod
    def from_status(cls, adapter: str, stored: Mapping[str, Any] | None) -> TargetStatus:
        t = cls(adapter=adapter)
        if not isinstance(stored, Mapping):
            return t
        for name, info in cls.model_fields.items():
            alias = info.alias or name
            if alias not in stored or name == "adapter":
                continue
            value = _lenient(name, stored[alias], getattr(t, name))
            setattr(t, name, value)
        if t.phase == Phase.CANCELLED:  # written by older operators
            t.phase = Phase.SUSPENDED
        if t.phase not in _PHASES:
            t.phase = Phase.PENDING
        return t


def _lenient(name: str, value: Any, fresh: Any) -> Any:
    """``value`` when it has the field's type and range, else the fresh value."""
    if name == "failures":
        if not isinstance(value, Mapping):
            return fresh
        return {
            c: n
            for c, n in value.items()
            if c in _CLASSES and isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= _MAX_INT
        }
    if name == "last_backoff_seconds":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e9
        return float(value) if ok else None
    if isinstance(fresh, bool):
        return value if isinstance(value, bool) else fresh
    if isinstance(fresh, int):
        return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_INT else fresh
    return value if isinstance(value, str) else fresh


class Condition(_Model):
    """A metav1.Condition."""

    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str | None
    observed_generation: int


class PublicationStatus(_Model):
    phase: str
    reason: str
    message: str
    observed_generation: int
    observed_redrive: str | None
    observed_retry_now: str | None = None
    published_targets: int
    total_targets: int
    attempts: int
    next_attempt_at: str | None
    completion_time: str | None
    targets: list[TargetStatus]
    conditions: list[Condition] = Field(default_factory=list)


class QueueStatus(_Model):
    pending: int
    running: int


class RateLimitStatus(_Model):
    blocked_until: str | None
    remaining: int | None
    reset_at: str | None


class CredentialsStatus(_Model):
    valid: bool
    reason: str
    invalid_since: str | None
    secret_resource_version: str | None
    message: str
    probes: int = 0
    next_probe_time: str | None = None


class CircuitStatus(_Model):
    state: str
    consecutive_failures: int
    opened_at: str | None
    next_probe_at: str | None
    opens: int


class AdapterStatus(_Model):
    observed_generation: int
    queue: QueueStatus
    last_published_time: str | None
    circuit: CircuitStatus
    rate_limit: RateLimitStatus
    credentials: CredentialsStatus
    conditions: list[Condition] = Field(default_factory=list)

"""The per-adapter circuit breaker. Pure: state in, state out; the caller persists it in status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from .durations import InvalidValue, format_time, parse_duration, safe_time
from .fields import whole


class CircuitState(StrEnum):
    CLOSED = "Closed"
    OPEN = "Open"
    HALF_OPEN = "HalfOpen"


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    cooldown: float = 120.0
    max_cooldown: float = 1800.0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> BreakerConfig:
        """Raises ``InvalidValue`` naming the field (relative to circuitBreaker)."""
        if spec is not None and not isinstance(spec, Mapping):
            raise InvalidValue("must be an object")
        spec = spec or {}

        def duration(key: str, default: float) -> float:
            try:
                return parse_duration(spec.get(key), default)
            except InvalidValue as e:
                raise InvalidValue(f"{key}: {e}") from None

        return cls(
            failure_threshold=whole(spec.get("failureThreshold"), 5, low=1, high=1_000_000, path="failureThreshold"),
            cooldown=duration("cooldown", 120.0),
            max_cooldown=duration("maxCooldown", 1800.0),
        )


@dataclass(frozen=True)
class Circuit:
    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    opened_at: datetime | None = None
    next_probe_at: datetime | None = None
    opens: int = 0  # consecutive openings without a success in between; doubles the cooldown

    def at(self, now: datetime) -> Circuit:
        """The circuit as time passes: an Open circuit turns HalfOpen when its cooldown is over."""
        if self.state is CircuitState.OPEN and self.next_probe_at is not None and now >= self.next_probe_at:
            return replace(self, state=CircuitState.HALF_OPEN)
        return self

    def allows(self, now: datetime, running: int) -> int:
        """How many new attempts may start now (a very large number: no limit from the breaker)."""
        c = self.at(now)
        if c.state is CircuitState.OPEN:
            return 0
        if c.state is CircuitState.HALF_OPEN:
            return 0 if running > 0 else 1
        return 1 << 30

    def record_success(self) -> Circuit:
        return Circuit()

    def record_failure(self, now: datetime, config: BreakerConfig) -> Circuit:
        c = self.at(now)
        failures = c.consecutive_failures + 1
        if c.state is CircuitState.HALF_OPEN or (
            c.state is CircuitState.CLOSED and failures >= config.failure_threshold
        ):
            opens = c.opens + 1
            cooldown = min(config.cooldown * (2 ** (opens - 1)), config.max_cooldown)
            return Circuit(CircuitState.OPEN, failures, now, now + timedelta(seconds=cooldown), opens)
        return replace(c, consecutive_failures=failures)

    def to_status(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "consecutiveFailures": self.consecutive_failures,
            "openedAt": format_time(self.opened_at),
            # Only an Open circuit waits for a time; a HalfOpen one probes now.
            "nextProbeAt": format_time(self.next_probe_at) if self.state is CircuitState.OPEN else None,
            "opens": self.opens,
        }

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> Circuit:
        """The circuit recorded in status; a damaged record reads as what it can be, never raises."""
        if not status or not isinstance(status, Mapping):
            return cls()
        try:
            state = CircuitState(status.get("state") or "Closed")
        except ValueError:
            state = CircuitState.CLOSED
        next_probe = safe_time(status.get("nextProbeAt"))
        if state is CircuitState.OPEN and next_probe is None:
            state = CircuitState.HALF_OPEN  # no known end of the cooldown: probe
        return cls(
            state=state,
            consecutive_failures=whole(status.get("consecutiveFailures"), 0, low=0, high=2**31 - 1, clamp=True),
            opened_at=safe_time(status.get("openedAt")),
            next_probe_at=next_probe,
            opens=whole(status.get("opens"), 0, low=0, high=64, clamp=True),
        )

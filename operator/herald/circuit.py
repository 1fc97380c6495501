"""The per-adapter circuit breaker. Pure: state in, state out; the caller persists it in status."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Mapping

from .durations import format_time, parse_duration, parse_time


class CircuitState(str, Enum):
    CLOSED = "Closed"
    OPEN = "Open"
    HALF_OPEN = "HalfOpen"


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    cooldown: float = 120.0
    max_cooldown: float = 1800.0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> "BreakerConfig":
        spec = spec or {}
        return cls(
            failure_threshold=int(spec.get("failureThreshold", 5)),
            cooldown=parse_duration(spec.get("cooldown"), 120.0),
            max_cooldown=parse_duration(spec.get("maxCooldown"), 1800.0),
        )


@dataclass(frozen=True)
class Circuit:
    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    opened_at: datetime | None = None
    next_probe_at: datetime | None = None
    opens: int = 0  # consecutive openings without a success in between; doubles the cooldown

    def at(self, now: datetime) -> "Circuit":
        """The circuit as time passes: an Open circuit turns HalfOpen when its cooldown is over."""
        if self.state is CircuitState.OPEN and self.next_probe_at is not None and now >= self.next_probe_at:
            return replace(self, state=CircuitState.HALF_OPEN)
        return self

    def allows(self, now: datetime, running: int) -> int:
        """How many new attempts may start now (None means no limit from the breaker)."""
        c = self.at(now)
        if c.state is CircuitState.OPEN:
            return 0
        if c.state is CircuitState.HALF_OPEN:
            return 0 if running > 0 else 1
        return 1 << 30

    def record_success(self) -> "Circuit":
        return Circuit()

    def record_failure(self, now: datetime, config: BreakerConfig) -> "Circuit":
        c = self.at(now)
        failures = c.consecutive_failures + 1
        if c.state is CircuitState.HALF_OPEN or (c.state is CircuitState.CLOSED and failures >= config.failure_threshold):
            opens = c.opens + 1
            cooldown = min(config.cooldown * (2 ** (opens - 1)), config.max_cooldown)
            return Circuit(CircuitState.OPEN, failures, now, now + timedelta(seconds=cooldown), opens)
        return replace(c, consecutive_failures=failures)

    def to_status(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "consecutiveFailures": self.consecutive_failures,
            "openedAt": format_time(self.opened_at),
            "nextProbeAt": format_time(self.next_probe_at),
            "opens": self.opens,
        }

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> "Circuit":
        if not status:
            return cls()
        return cls(
            state=CircuitState(status.get("state") or "Closed"),
            consecutive_failures=int(status.get("consecutiveFailures") or 0),
            opened_at=parse_time(status.get("openedAt")),
            next_probe_at=parse_time(status.get("nextProbeAt")),
            opens=int(status.get("opens") or 0),
        )

"""Queue admission per PlatformAdapter: who may start an attempt now, and who waits and why. Pure."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .circuit import Circuit, CircuitState


class Wait:
    """Reasons a due target waits Queued (they appear as the target's `reason`)."""

    PAUSED = "AdapterPaused"
    CIRCUIT_OPEN = "CircuitOpen"
    RATE_LIMITED = "RateLimited"
    CREDENTIALS = "CredentialsInvalid"
    CONCURRENCY = "ConcurrencyLimit"
    RATE_LIMIT = "RateLimitWindow"
    NO_ADAPTER = "AdapterNotFound"
    INVALID_ADAPTER = "AdapterInvalid"


@dataclass(frozen=True)
class Candidate:
    key: Hashable
    priority: int
    due: datetime
    created: datetime

    def order(self) -> tuple:
        return (-self.priority, self.due, self.created, str(self.key))


@dataclass(frozen=True)
class Gate:
    """Everything about one adapter that limits how many attempts may start."""

    concurrency: int = 1
    rate_limit: int | None = None
    rate_period: float = 60.0
    recent_starts: Sequence[datetime] = ()  # attempt start times (any age; older ones are ignored)
    running: int = 0
    paused: bool = False
    circuit: Circuit = field(default_factory=Circuit)
    blocked_until: datetime | None = None
    credentials_valid: bool = True
    # While the credentials are refused, one probe attempt may start at this time (None: none).
    credentials_probe_at: datetime | None = None
    exists: bool = True


@dataclass(frozen=True)
class Admission:
    start: list[Hashable]
    waiting: dict[Hashable, str]
    wake_at: datetime | None  # when admission may change even without new events


def admit(
    gate: Gate, candidates: Iterable[Candidate], now: datetime, ahead: Mapping[Hashable, int] | None = None
) -> Admission:
    """Admit due candidates in priority order, then publishAt, then creation time.

    ``ahead``: per candidate, how many others (not among ``candidates``) wait ahead of it in the
    same queue; they take their slots first. Without it, the candidates are the whole queue."""
    ordered = sorted(candidates, key=Candidate.order)
    if not ordered:
        return Admission([], {}, None)

    def everyone(reason: str, wake: datetime | None = None) -> Admission:
        return Admission([], {c.key: reason for c in ordered}, wake)

    if not gate.exists:
        return everyone(Wait.NO_ADAPTER)
    if gate.paused:
        return everyone(Wait.PAUSED)
    probing = not gate.credentials_valid
    if probing and (gate.credentials_probe_at is None or now < gate.credentials_probe_at or gate.running):
        return everyone(Wait.CREDENTIALS, gate.credentials_probe_at if not gate.running else None)
    if gate.blocked_until is not None and now < gate.blocked_until:
        return everyone(Wait.RATE_LIMITED, gate.blocked_until)
    circuit = gate.circuit.at(now)
    if circuit.state is CircuitState.OPEN:
        return everyone(Wait.CIRCUIT_OPEN, circuit.next_probe_at)

    slots = max(0, gate.concurrency - gate.running)
    slots = min(slots, circuit.allows(now, gate.running))
    wake: datetime | None = None
    reason = Wait.CONCURRENCY
    if gate.rate_limit is not None:
        window_start = now - timedelta(seconds=gate.rate_period)
        in_window = sorted(t for t in gate.recent_starts if t > window_start)
        room = max(0, gate.rate_limit - len(in_window))
        if room < slots:
            slots = room
            reason = Wait.RATE_LIMIT
            # With the starts admitted now, the window is full; the next slot frees when the
            # oldest start in it ages out.
            full = in_window + [now] * slots
            wake = full[len(full) - gate.rate_limit] + timedelta(seconds=gate.rate_period)
    if circuit.state is CircuitState.HALF_OPEN:
        reason = Wait.CIRCUIT_OPEN
    if probing:  # the credentials probe: one attempt; the others wait for its outcome
        slots, reason = min(slots, 1), Wait.CREDENTIALS
    first = ahead or {}
    # Admitted: those whose place in the whole queue is within the slots (a prefix of ``ordered``).
    admitted = sum(1 for i, c in enumerate(ordered) if i + first.get(c.key, 0) < slots)
    start = [c.key for c in ordered[:admitted]]
    waiting = {c.key: reason for c in ordered[admitted:]}
    return Admission(start, waiting, wake if waiting else None)

"""Status computation: target phases roll up into the publication's phase and conditions. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .durations import format_time


class Phase:
    PENDING = "Pending"
    SCHEDULED = "Scheduled"
    QUEUED = "Queued"
    PUBLISHING = "Publishing"
    RETRYING = "Retrying"
    PUBLISHED = "Published"
    PARTIALLY_PUBLISHED = "PartiallyPublished"
    FAILED = "Failed"
    SUSPENDED = "Suspended"  # spec.suspend: nothing new starts until it is resumed
    CANCELLED = "Cancelled"  # a target's phase written by older operators for Suspended


# Reasons a target waits that only a user can clear (the Publication is then Stalled).
USER_FIX_REASONS = frozenset({"CredentialsInvalid", "AdapterNotFound", "AdapterInvalid"})


# metav1.Condition's limits (the CRDs declare the same).
MAX_REASON = 1024
MAX_CONDITION_MESSAGE = 32768

TERMINAL = frozenset({Phase.PUBLISHED, Phase.FAILED})
# Publication phases after which nothing more happens unless the spec or a redrive says so.
FINISHED = frozenset({Phase.PUBLISHED, Phase.FAILED, Phase.PARTIALLY_PUBLISHED})


def publication_phase(target_phases: list[str], suspended: bool) -> str:
    if not target_phases:
        return Phase.PENDING
    if all(p == Phase.PUBLISHED for p in target_phases):
        return Phase.PUBLISHED
    if all(p in TERMINAL for p in target_phases):
        return Phase.PARTIALLY_PUBLISHED if Phase.PUBLISHED in target_phases else Phase.FAILED
    if suspended:
        return Phase.SUSPENDED
    for phase in (Phase.PUBLISHING, Phase.RETRYING, Phase.QUEUED, Phase.SCHEDULED):
        if phase in target_phases:
            return phase
    return Phase.PENDING


def condition(
    type_: str,
    ok: bool,
    reason: str,
    message: str,
    generation: int,
    previous: Iterable[Mapping[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """A metav1.Condition that keeps its lastTransitionTime while its status does not change."""
    status = "True" if ok else "False"
    old = next((c for c in previous if c.get("type") == type_), None)
    since = (
        old["lastTransitionTime"]
        if old and old.get("status") == status and old.get("lastTransitionTime")
        else format_time(now)
    )
    return {
        "type": type_,
        "status": status,
        "reason": reason[:MAX_REASON],
        "message": message if len(message) <= MAX_CONDITION_MESSAGE else message[: MAX_CONDITION_MESSAGE - 1] + "…",
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def upsert_condition(previous: Iterable[Mapping[str, Any]], new: dict[str, Any]) -> list[dict[str, Any]]:
    """``previous`` with ``new`` in place of the condition of its type (appended if absent)."""
    out = [dict(c) for c in previous if c.get("type") != new["type"]]
    return [*out, new]


def publication_conditions(
    targets: list[dict[str, Any]],
    phase: str,
    publish_at: datetime | None,
    generation: int,
    previous: list[Mapping[str, Any]],
    now: datetime,
) -> list[dict[str, Any]]:
    total = len(targets)
    published = sum(1 for t in targets if t["phase"] == Phase.PUBLISHED)
    retrying = sorted((t for t in targets if t["phase"] == Phase.RETRYING), key=lambda t: t.get("nextAttemptAt") or "")
    failed = [t for t in targets if t["phase"] == Phase.FAILED]
    return [
        condition(
            "Published",
            published == total and total > 0,
            "AllTargetsPublished" if published == total else phase,
            f"{published} of {total} targets published",
            generation,
            previous,
            now,
        ),
        condition(
            "Scheduled",
            phase == Phase.SCHEDULED,
            "PublishAtInFuture" if phase == Phase.SCHEDULED else "NotScheduled",
            f"publishing at {format_time(publish_at)}" if phase == Phase.SCHEDULED else "",
            generation,
            previous,
            now,
        ),
        condition(
            "Retrying",
            bool(retrying),
            "BackoffScheduled" if retrying else "NotRetrying",
            "; ".join(f"{t['adapter']}: {t.get('message', '')}" for t in retrying),
            generation,
            previous,
            now,
        ),
        condition(
            "Failed",
            bool(failed),
            "DeadLetter" if failed else "NoFailures",
            "; ".join(f"{t['adapter']}: {t.get('message', '')}" for t in failed),
            generation,
            previous,
            now,
        ),
    ]


@dataclass(frozen=True)
class Readiness:
    """The kstatus view of an object: Ready, Reconciling and Stalled, with one reason and message.

    kstatus (and with it Flux, Argo CD and ``kubectl wait --for=condition=Ready``) reads: Stalled
    True is Failed; Reconciling True is InProgress; Ready True, with observedGeneration current, is
    Current."""

    ready: bool
    reconciling: bool
    stalled: bool
    reason: str
    message: str

    def conditions(self, generation: int, previous: list[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
        return [
            condition("Ready", self.ready, self.reason, self.message, generation, previous, now),
            condition(
                "Reconciling",
                self.reconciling,
                self.reason if self.reconciling else "Idle",
                self.message if self.reconciling else "",
                generation,
                previous,
                now,
            ),
            condition(
                "Stalled",
                self.stalled,
                self.reason if self.stalled else "NotStalled",
                self.message if self.stalled else "",
                generation,
                previous,
                now,
            ),
        ]


def _listing(targets: list[dict[str, Any]]) -> str:
    return "; ".join(f"{t['adapter']}: {t.get('message') or t.get('reason') or t['phase']}" for t in targets)


def publication_readiness(targets: list[dict[str, Any]], phase: str, name: str) -> Readiness:
    """Why a Publication is where it is, for kstatus and for ``kubectl get pub`` (REASON, MESSAGE)."""
    total = len(targets)
    if phase == Phase.PUBLISHED:
        return Readiness(True, False, False, "Published", f"{total} of {total} targets published")
    if phase in (Phase.FAILED, Phase.PARTIALLY_PUBLISHED):
        dead = [t for t in targets if t["phase"] == Phase.FAILED]
        return Readiness(
            False,
            False,
            True,
            "DeadLetter",
            f"{len(dead)} of {total} targets in the dead letter ({_listing(dead)}); fix the cause, then "
            f"kubectl herald redrive {name}",
        )
    stuck = [t for t in targets if t["phase"] == Phase.QUEUED and t.get("reason") in USER_FIX_REASONS]
    if stuck:
        return Readiness(False, False, True, stuck[0]["reason"], _listing(stuck))
    if phase == Phase.SUSPENDED:
        return Readiness(False, False, False, "Suspended", "spec.suspend is true: no new attempt starts")
    for wanted in (Phase.RETRYING, Phase.QUEUED, Phase.PUBLISHING, Phase.SCHEDULED):
        found = [t for t in targets if t["phase"] == wanted]
        if found:
            reason = found[0].get("reason") or wanted
            return Readiness(False, True, False, reason, _listing(found))
    return Readiness(False, True, False, phase, "")

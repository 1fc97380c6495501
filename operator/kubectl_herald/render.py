"""Text output: kubectl-style tables, relative times, and the ``status`` report. Pure (no API calls)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from herald.durations import safe_time
from herald.reconciler import DEAD_LETTER_LABEL
from herald.status import Phase

NONE = "-"
KSTATUS = ("Ready", "Reconciling", "Stalled")

# What a user can do about a target waiting for a reason, with {pub} for the publication's name.
HINTS: dict[str, str] = {
    "CredentialsInvalid": "fix the credentials in the adapter's Secret (a change to the Secret lets attempts start)",
    "AdapterNotFound": "create the PlatformAdapter, or fix the target's name in spec.targets",
    "AdapterInvalid": "fix the PlatformAdapter's spec (its Stalled condition names the field)",
    "AdapterPaused": "the adapter is paused (spec.paused): unpause it when it should post again",
    "InvalidSpec": "fix the publication's spec (the message names the field)",
}


def human_duration(seconds: float) -> str:
    """A duration as kubectl prints ages (its HumanDuration): 45s, 4m10s, 95m, 5h3m, 30h, 3d4h, 45d, 2y."""
    s = int(max(0.0, seconds))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        days = h // 24
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{h // (24 * 365)}y"


def relative(when: datetime, now: datetime) -> str:
    """``in 4m10s``, ``3s ago`` or ``now`` (within a second)."""
    delta = (when - now).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"in {human_duration(delta)}" if delta > 0 else f"{human_duration(-delta)} ago"


def when_cell(value: Any, now: datetime) -> str:
    """An RFC 3339 time from the status as ``in 4m10s (2030-06-01T09:00:04Z)``; ``-`` when unset."""
    when = safe_time(value)
    if when is None:
        return NONE if not value else str(value)
    return f"{relative(when, now)} ({value})"


def age(value: Any, now: datetime) -> str:
    when = safe_time(value)
    return human_duration((now - when).total_seconds()) if when else NONE


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to the widest cell plus three spaces, as kubectl prints them; the last one unpadded."""
    cells = [[str(h) for h in headers]] + [[NONE if c in (None, "") else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [c.ljust(widths[i]) for i, c in enumerate(row[:-1])] + [row[-1]]
        lines.append("   ".join(parts).rstrip())
    return "\n".join(lines)


def _targets(pub: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(adapter, status entry) in spec order; status entries of targets no longer in the spec last."""
    spec_names = [t.get("adapter") for t in (pub.get("spec") or {}).get("targets") or [] if isinstance(t, Mapping)]
    by_name = {t.get("adapter"): t for t in (pub.get("status") or {}).get("targets") or [] if isinstance(t, Mapping)}
    names = [n for n in spec_names if isinstance(n, str)]
    names += [n for n in by_name if isinstance(n, str) and n not in names]
    return [(n, by_name.get(n) or {}) for n in names]


def target_rows(pub: Mapping[str, Any], now: datetime) -> list[list[Any]]:
    rows = []
    for name, t in _targets(pub):
        url = t.get("url") or (f"id {t['postId']}" if t.get("postId") else None)
        rows.append(
            [
                name,
                t.get("phase"),
                t.get("attempts", 0 if t else None),
                t.get("reason"),
                when_cell(t.get("nextAttemptAt"), now),
                url,
            ]
        )
    return rows


def condition_rows(pub: Mapping[str, Any], now: datetime) -> list[list[Any]]:
    conditions = {c.get("type"): c for c in (pub.get("status") or {}).get("conditions") or [] if isinstance(c, Mapping)}
    rows = []
    for type_ in KSTATUS:
        c = conditions.get(type_)
        if c is None:
            rows.append([type_, "Unknown", None, None, "not reported"])
        else:
            rows.append(
                [type_, c.get("status"), c.get("reason"), age(c.get("lastTransitionTime"), now), c.get("message")]
            )
    return rows


def _why(pub: Mapping[str, Any], adapters: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """Per target that is not published: its message, last error and the adapter's own Ready condition."""
    name = (pub.get("metadata") or {}).get("name", "PUB")
    lines: list[str] = []
    for adapter, t in _targets(pub):
        phase = t.get("phase")
        if not t or phase == Phase.PUBLISHED:
            continue
        lines.append(f"  {adapter}: {t.get('message') or t.get('reason') or phase}")
        if t.get("lastErrorClass"):
            lines.append(f"    last error: {t['lastErrorClass']}: {t.get('lastError') or '(no message)'}")
        ready = _condition(adapters.get(adapter), "Ready")
        if ready is not None and ready.get("status") != "True":
            lines.append(
                f"    adapter {adapter}: Ready={ready.get('status')} {ready.get('reason') or ''}: "
                f"{ready.get('message') or ''}".rstrip(": ")
            )
        hint = _hint(phase, t, name, adapters.get(adapter))
        if hint:
            lines.append(f"    next step: {hint}")
    return lines


def _hint(phase: Any, t: Mapping[str, Any], name: str, adapter: Mapping[str, Any] | None) -> str | None:
    if phase == Phase.FAILED or t.get("deadLetter"):
        return f"fix the cause, then kubectl herald redrive {name}"
    if phase == Phase.RETRYING:
        return f"to retry before the backoff ends: kubectl herald retry-now {name} --target {t.get('adapter')}"
    if phase in (Phase.SUSPENDED, Phase.CANCELLED):
        return f"kubectl herald resume {name}"
    secret = (((adapter or {}).get("spec") or {}).get("credentialsSecretRef") or {}).get("name")
    if t.get("reason") == "CredentialsInvalid" and secret:
        if (_condition(adapter, "Ready") or {}).get("reason") == "SecretNotFound":
            return f"create the Secret {secret} (the adapter's spec.credentialsSecretRef)"
        probe = ((adapter or {}).get("status") or {}).get("credentials", {}).get("nextProbeTime")
        if probe:  # the operator does not read the Secret: a probe will try it
            return f"put working credentials in the Secret {secret}; the next credentials probe, at {probe}, tries them"
        return f"put working credentials in the Secret {secret}; attempts start again when it changes"
    return HINTS.get(str(t.get("reason")))


def _condition(obj: Mapping[str, Any] | None, type_: str) -> Mapping[str, Any] | None:
    if not obj:
        return None
    return next(
        (
            c
            for c in (obj.get("status") or {}).get("conditions") or []
            if isinstance(c, Mapping) and c.get("type") == type_
        ),
        None,
    )


def status_report(
    pub: Mapping[str, Any], adapters: Mapping[str, Mapping[str, Any] | None], now: datetime | None = None
) -> str:
    """What ``kubectl herald status`` prints for one publication."""
    now = now or datetime.now(UTC)
    meta = pub.get("metadata") or {}
    spec = pub.get("spec") or {}
    status = pub.get("status") or {}
    head: list[tuple[str, Any]] = [("Publication", f"{meta.get('namespace')}/{meta.get('name')}")]
    if not status:
        head.append(("Phase", "(no status yet: the operator has not processed this publication)"))
    else:
        head += [
            ("Phase", status.get("phase") or NONE),
            ("Reason", status.get("reason") or NONE),
            ("Message", status.get("message") or NONE),
            (
                "Targets",
                f"{status.get('publishedTargets', 0)} of {status.get('totalTargets', len(spec.get('targets') or []))} "
                f"published, {status.get('attempts', 0)} attempt(s)",
            ),
        ]
        if status.get("nextAttemptAt"):
            head.append(("Next attempt", when_cell(status.get("nextAttemptAt"), now)))
        if status.get("completionTime"):
            head.append(("Completed", when_cell(status.get("completionTime"), now)))
    if spec.get("publishAt"):
        head.append(("Publish at", when_cell(spec["publishAt"], now)))
    if spec.get("suspend"):
        head.append(("Suspended", f"yes (spec.suspend); kubectl herald resume {meta.get('name')}"))
    if (meta.get("labels") or {}).get(DEAD_LETTER_LABEL) == "true":
        head.append(("Dead letter", f"yes; kubectl herald redrive {meta.get('name')}"))
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if status and generation is not None and observed != generation:
        head.append(("Note", f"the status is for generation {observed}; the operator has not yet seen {generation}"))
    width = max(len(k) for k, _ in head) + 2
    out = [f"{(k + ':').ljust(width)}{v}" for k, v in head]
    out += ["", table(["ADAPTER", "PHASE", "ATTEMPTS", "REASON", "NEXT ATTEMPT", "POST URL"], target_rows(pub, now))]
    if status:
        out += ["", table(["CONDITION", "STATUS", "REASON", "SINCE", "MESSAGE"], condition_rows(pub, now))]
    why = _why(pub, adapters)
    if why:
        out += ["", "Targets not published:", *why]
    return "\n".join(out) + "\n"

"""Reading an attempt's outcome from its Job and pod, per the adapter contract. Pure."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .durations import safe_time
from .errors import ErrorClass
from .redact import redact, safe_url
from .views import JobView, PodView

# A platform's Retry-After beyond a day is taken as a day.
MAX_RETRY_AFTER = 86400.0

# Container waiting reasons that mean the pod will not run on its own.
STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImageNeverPull",
    }
)


@dataclass(frozen=True)
class Outcome:
    published: bool
    error_class: ErrorClass | None = None
    message: str = ""
    retry_after: float | None = None
    post_id: str | None = None
    url: str | None = None
    rate_limit_remaining: int | None = None
    rate_limit_reset_at: datetime | None = None
    response_seconds: float | None = None
    started: datetime | None = None
    finished: datetime | None = None
    no_result: bool = False
    verified: bool = False
    stop_job: bool = False  # the Job is still there but will never finish on its own


# A result is one small JSON object (Kubernetes keeps at most 4 KiB of a termination message);
# anything larger or deeper than this is not a result.
MAX_RESULT_BYTES = 64 * 1024
MAX_RESULT_DEPTH = 32


def _depth(text: str) -> int:
    """The deepest nesting of JSON arrays and objects in ``text`` (strings are skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_result(message: object) -> dict[str, Any] | None:
    """The adapter's result object, or None when ``message`` holds none. Total: never raises."""
    if not message or not isinstance(message, str) or len(message) > MAX_RESULT_BYTES:
        return None
    if _depth(message) > MAX_RESULT_DEPTH:
        return None
    try:
        data = json.loads(message)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("outcome") not in ("published", "failed"):
        return None
    return data


def _num(v: Any) -> float | None:
    """A finite number, or None: an adapter's result must never be able to break a decision."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _from_result(result: Mapping[str, Any], started, finished, exit_code: int) -> Outcome:
    rl = result.get("rateLimit")
    rl = rl if isinstance(rl, dict) else {}
    remaining = _num(rl.get("remaining"))
    retry_after = _num(result.get("retryAfterSeconds"))
    common = {
        "message": redact(result.get("message") if isinstance(result.get("message"), str) else None),
        "retry_after": None if retry_after is None else min(max(retry_after, 0.0), MAX_RETRY_AFTER),
        "rate_limit_remaining": int(remaining) if remaining is not None and abs(remaining) < 2**53 else None,
        "rate_limit_reset_at": _safe_time(rl.get("resetAt")),
        "response_seconds": _num(result.get("responseSeconds")),
        "started": started,
        "finished": finished,
    }
    if result["outcome"] == "published":
        return Outcome(
            published=True,
            post_id=_str(result.get("postId")),
            url=safe_url(result.get("url")),
            verified=bool(result.get("verified")),
            **common,
        )
    return Outcome(published=False, error_class=ErrorClass.from_result(result.get("errorClass")), **common)


def _str(v: Any) -> str | None:
    """A short identifier from a result: printable, credential shapes masked, at most 512 characters."""
    if v is None or isinstance(v, (dict, list)):
        return None
    return redact(str(v), limit=512) or None


def _safe_time(v: Any) -> datetime | None:
    return safe_time(v) if isinstance(v, str) else None


def read_outcome(job: JobView, pods: Iterable[PodView]) -> Outcome | None:
    """The attempt's outcome, or None while it is still running."""
    pods = sorted(pods, key=lambda p: p.rv)
    terminated = next((p for p in reversed(pods) if p.terminated), None)
    if terminated is not None and (job.done or terminated.phase in ("Succeeded", "Failed")):
        t = terminated.terminated or {}
        exit_code = t.get("exitCode", 1)
        code = exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else 1
        started, finished = (
            _safe_time(t.get("startedAt")) or job.started,
            _safe_time(t.get("finishedAt")) or job.finished,
        )
        result = parse_result(t.get("message"))
        if result is not None:
            return _from_result(result, started, finished, code)
        if code == 0:
            return Outcome(
                published=True,
                no_result=True,
                started=started,
                finished=finished,
                message="the adapter exited 0 without a result",
            )
        reason = redact(t.get("reason") or "Error", limit=64)
        return Outcome(
            published=False,
            error_class=ErrorClass.POD_FAILURE,
            started=started,
            finished=finished,
            message=f"container {reason} with exit code {code} and no result",
        )
    evicted = next((p for p in pods if p.phase == "Failed" and p.reason), None)
    if evicted is not None:
        return Outcome(
            published=False,
            error_class=ErrorClass.POD_FAILURE,
            started=job.started,
            finished=job.finished,
            message=f"pod {evicted.reason}: {redact(evicted.message, limit=200)}".strip(": "),
        )
    if job.failed:
        return Outcome(
            published=False,
            error_class=ErrorClass.POD_FAILURE,
            started=job.started,
            finished=job.finished,
            message=f"job failed: {redact(job.failed_reason, limit=200) or 'no pod result'}",
        )
    if job.complete:
        return Outcome(
            published=True,
            no_result=True,
            started=job.started,
            finished=job.finished,
            message="the job completed without a readable result",
        )
    stuck = next((p for p in pods if p.waiting_reason in STUCK_REASONS), None)
    if stuck is not None:
        return Outcome(
            published=False,
            error_class=ErrorClass.POD_FAILURE,
            started=job.started,
            stop_job=True,
            message=f"{stuck.waiting_reason}: {redact(stuck.waiting_message, limit=200)}".rstrip(": "),
        )
    return None

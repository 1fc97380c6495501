"""Reading an attempt's outcome from its Job and pod, per the adapter contract. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from herald_contract.redact import redact, safe_url
from herald_contract.result import MAX_RETRY_AFTER, ResultModel, read_result

from .durations import clamp_time, safe_time
from .errors import ErrorClass, error_class_from_result
from .views import JobView, PodView

__all__ = ["MAX_RETRY_AFTER", "STUCK_REASONS", "Outcome", "parse_result", "read_outcome"]

# The contract's reader, under the name the operator's modules and tests use.
parse_result = read_result

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


def _from_result(result: ResultModel, started, finished) -> Outcome:
    """The operator's view of an adapter's result: cleaned of what must not reach status or Events."""
    rl = result.rate_limit
    common = {
        "message": redact(result.message),
        "retry_after": result.retry_after_seconds,
        "rate_limit_remaining": rl.remaining if rl is not None else None,
        "rate_limit_reset_at": clamp_time(rl.reset_at) if rl is not None and rl.reset_at is not None else None,
        "response_seconds": result.response_seconds,
        "started": started,
        "finished": finished,
    }
    if result.outcome == "published":
        return Outcome(
            published=True,
            post_id=redact(result.post_id, limit=512) or None,
            url=safe_url(result.url),
            verified=bool(result.verified),
            **common,
        )
    return Outcome(published=False, error_class=error_class_from_result(result.error_class), **common)


def read_outcome(job: JobView, pods: Iterable[PodView]) -> Outcome | None:
    """The attempt's outcome, or None while it is still running."""
    pods = sorted(pods, key=lambda p: p.rv)
    terminated = next((p for p in reversed(pods) if p.terminated), None)
    if terminated is not None and (job.done or terminated.phase in ("Succeeded", "Failed")):
        t = terminated.terminated or {}
        exit_code = t.get("exitCode", 1)
        code = exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else 1
        started, finished = (
            safe_time(t.get("startedAt")) or job.started,
            safe_time(t.get("finishedAt")) or job.finished,
        )
        result = parse_result(t.get("message"))
        if result is not None:
            return _from_result(result, started, finished)
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

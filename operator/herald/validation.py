"""What the operator needs from a spec, checked before any decision. Pure.

Admission (the CRDs' schema and CEL rules) refuses these already, but objects written before a
CRD upgrade, or with admission bypassed, still reach the operator. Each problem names the field,
so the object's condition and Event tell the user what to fix; the object is then left alone
and every other object keeps its pace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .circuit import BreakerConfig
from .durations import InvalidValue, parse_duration, parse_time
from .fields import whole
from .retry import RetryPolicy

MAX_TTL_SECONDS = 10 * 365 * 86400


def _check(problems: list[str], path: str, parse: Callable[[], Any]) -> None:
    try:
        parse()
    except InvalidValue as e:
        problems.append(f"{path}: {e}" if not str(e).startswith(path) else str(e))
    except (TypeError, ValueError, OverflowError, AttributeError, KeyError) as e:
        problems.append(f"{path}: cannot be read ({type(e).__name__})")


def _nested_path(base: str, e: InvalidValue) -> str:
    return f"{base}.{e}"


def _policy(problems: list[str], value: Any) -> None:
    try:
        RetryPolicy.from_spec(value)
    except InvalidValue as e:
        problems.append(f"spec.retryPolicy.{e}")
    except (TypeError, ValueError, OverflowError, AttributeError) as e:
        problems.append(f"spec.retryPolicy: cannot be read ({type(e).__name__})")


def publication_problems(spec: Mapping[str, Any]) -> list[str]:
    """Why the operator cannot act on a Publication with this spec; empty when it can."""
    problems: list[str] = []
    if not isinstance(spec, Mapping):
        return ["spec: must be an object"]
    _check(problems, "spec.publishAt", lambda: parse_time(spec.get("publishAt")))
    _check(problems, "spec.priority", lambda: whole(spec.get("priority"), 0, low=-1000, high=1000))
    _check(
        problems,
        "spec.ttlSecondsAfterFinished",
        lambda: whole(spec.get("ttlSecondsAfterFinished"), 0, low=0, high=MAX_TTL_SECONDS),
    )
    targets = spec.get("targets")
    if not isinstance(targets, list) or not targets:
        problems.append("spec.targets: at least one target is required")
    else:
        seen: set[str] = set()
        for i, t in enumerate(targets):
            name = t.get("adapter") if isinstance(t, Mapping) else None
            if not isinstance(name, str) or not name:
                problems.append(f"spec.targets[{i}].adapter: required")
            elif name in seen:
                problems.append(f"spec.targets[{i}].adapter: {name} is listed twice")
            else:
                seen.add(name)
    if not isinstance(spec.get("content") or {}, Mapping):
        problems.append("spec.content: must be an object")
    _policy(problems, spec.get("retryPolicy"))
    return problems


def adapter_problems(spec: Mapping[str, Any]) -> list[str]:
    """Why the operator cannot start attempts through an adapter with this spec."""
    problems: list[str] = []
    if not isinstance(spec, Mapping):
        return ["spec: must be an object"]
    _check(problems, "spec.concurrency", lambda: whole(spec.get("concurrency"), 1, low=1, high=1000))
    rate = spec.get("rateLimit")
    if rate is not None and not isinstance(rate, Mapping):
        problems.append("spec.rateLimit: must be an object")
    elif rate:
        _check(problems, "spec.rateLimit.limit", lambda: whole(rate.get("limit"), 0, low=0, high=2**31 - 1))
        _check(problems, "spec.rateLimit.period", lambda: parse_duration(rate.get("period"), 60.0))
    try:
        BreakerConfig.from_spec(spec.get("circuitBreaker"))
    except InvalidValue as e:
        problems.append(f"spec.circuitBreaker.{e}" if ":" in str(e) else f"spec.circuitBreaker: {e}")
    _policy(problems, spec.get("retryPolicy"))
    tpl = spec.get("jobTemplate")
    if tpl is not None and not isinstance(tpl, Mapping):
        problems.append("spec.jobTemplate: must be an object")
    elif tpl:
        _check(
            problems,
            "spec.jobTemplate.activeDeadlineSeconds",
            lambda: whole(tpl.get("activeDeadlineSeconds"), 1, low=1, high=2**31 - 1),
        )
        _check(
            problems,
            "spec.jobTemplate.ttlSecondsAfterFinished",
            lambda: whole(tpl.get("ttlSecondsAfterFinished"), 0, low=0, high=2**31 - 1),
        )
        if tpl.get("priorityClassName") is not None and not isinstance(tpl.get("priorityClassName"), str):
            problems.append("spec.jobTemplate.priorityClassName: must be a string")
        if tpl.get("affinity") is not None and not isinstance(tpl.get("affinity"), Mapping):
            problems.append("spec.jobTemplate.affinity: must be an object")
        secrets = tpl.get("imagePullSecrets")
        if secrets is not None and not (
            isinstance(secrets, list)
            and all(isinstance(s, Mapping) and isinstance(s.get("name"), str) for s in secrets)
        ):
            problems.append("spec.jobTemplate.imagePullSecrets: must be a list of {name: ...}")
        if tpl.get("serviceAccountToken") is not None and not isinstance(tpl.get("serviceAccountToken"), bool):
            problems.append("spec.jobTemplate.serviceAccountToken: must be true or false")
        _check(problems, "spec.jobTemplate.runAsUser", lambda: whole(tpl.get("runAsUser"), 1, low=1, high=2**31 - 1))
        for key in ("podLabels", "podAnnotations", "nodeSelector"):
            value = tpl.get(key)
            if value is not None and not (
                isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values())
            ):
                problems.append(f"spec.jobTemplate.{key}: must map names to strings")
    return problems

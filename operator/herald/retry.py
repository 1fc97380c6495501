"""Retry policy: what happens after a failed attempt, decided per error class. Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .durations import InvalidValue, parse_duration
from .errors import POLICY_KEYS, ErrorClass
from .fields import number, whole

DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_RATE_LIMITED_MAX_ATTEMPTS = 20
DEFAULT_RATE_LIMITED_MIN_DELAY = 30.0
DEFAULT_CREDENTIALS_TIMEOUT = 24 * 3600.0


class UnknownOutcomePolicy(StrEnum):
    VERIFY = "Verify"
    FAIL = "Fail"
    RETRY = "Retry"


class Action(StrEnum):
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    WAIT_CREDENTIALS = "wait_credentials"


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0
    factor: float = 2.0
    max: float = 600.0
    jitter: float = 0.0

    def delay(self, retry: int, seed: str = "") -> float:
        """Delay before the ``retry``-th retry (1-based): initial * factor^(retry-1), capped at max.

        Jitter spreads the delay by up to ±jitter (a fraction), deterministically from ``seed``,
        so the same attempt always gets the same delay, also after an operator restart.
        """
        if retry < 1:
            raise ValueError("retry numbers start at 1")
        exponent = min(retry - 1, 64)
        base = min(self.initial * (self.factor**exponent), self.max)
        if self.jitter <= 0:
            return base
        digest = hashlib.sha256(f"{seed}/{retry}".encode()).digest()
        unit = int.from_bytes(digest[:8], "big") / 2**64  # [0, 1)
        return min(max(0.0, base * (1 + self.jitter * (2 * unit - 1))), self.max)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None, base: Backoff | None = None) -> Backoff:
        b = base or cls()
        spec = _mapping(spec, "backoff")
        return cls(
            initial=_duration(spec, "initial", b.initial),
            factor=number(spec.get("factor"), b.factor, low=1.0, high=100.0, path="factor"),
            max=_duration(spec, "max", b.max),
            jitter=number(spec.get("jitter"), b.jitter, low=0.0, high=1.0, path="jitter"),
        )


@dataclass(frozen=True)
class ClassRule:
    max_attempts: int
    backoff: Backoff
    min_delay: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff: Backoff = field(default_factory=Backoff)
    rules: Mapping[ErrorClass, ClassRule] = field(default_factory=dict)
    unknown_outcome: UnknownOutcomePolicy = UnknownOutcomePolicy.VERIFY
    credentials_timeout: float = DEFAULT_CREDENTIALS_TIMEOUT

    def rule(self, error_class: ErrorClass) -> ClassRule:
        if error_class in self.rules:
            return self.rules[error_class]
        if error_class is ErrorClass.RATE_LIMITED:
            return ClassRule(DEFAULT_RATE_LIMITED_MAX_ATTEMPTS, self.backoff, DEFAULT_RATE_LIMITED_MIN_DELAY)
        return ClassRule(self.max_attempts, self.backoff)

    @classmethod
    def from_spec(cls, *specs: Mapping[str, Any] | None) -> RetryPolicy:
        """The policy from specs merged left to right (adapter's, then the publication's override).
        Raises ``InvalidValue`` naming the field (relative to retryPolicy) for anything unusable.
        """
        merged: dict[str, Any] = {}
        for spec in specs:
            merged = _deep_merge(merged, dict(_mapping(spec, "retryPolicy")))
        max_attempts = whole(merged.get("maxAttempts"), DEFAULT_MAX_ATTEMPTS, low=1, high=100, path="maxAttempts")
        backoff = _nested(lambda: Backoff.from_spec(merged.get("backoff")), "backoff")
        rules: dict[ErrorClass, ClassRule] = {}
        for error_class, key in POLICY_KEYS.items():
            override = _mapping(merged.get(key), key)
            is_rl = error_class is ErrorClass.RATE_LIMITED
            default_max = DEFAULT_RATE_LIMITED_MAX_ATTEMPTS if is_rl else max_attempts
            default_min = DEFAULT_RATE_LIMITED_MIN_DELAY if is_rl else 0.0
            rules[error_class] = ClassRule(
                max_attempts=whole(
                    override.get("maxAttempts"), default_max, low=1, high=100, path=f"{key}.maxAttempts"
                ),
                backoff=_nested(
                    lambda override=override: Backoff.from_spec(override.get("backoff"), backoff), f"{key}.backoff"
                ),
                min_delay=_duration(override, "minDelay", default_min, f"{key}."),
            )
        unknown = _mapping(merged.get("unknownOutcome"), "unknownOutcome").get(
            "policy", UnknownOutcomePolicy.VERIFY.value
        )
        try:
            unknown_policy = UnknownOutcomePolicy(unknown)
        except ValueError:
            raise InvalidValue("unknownOutcome.policy: must be Verify, Fail or Retry") from None
        return cls(
            max_attempts=max_attempts,
            backoff=backoff,
            rules=rules,
            unknown_outcome=unknown_policy,
            credentials_timeout=_duration(merged, "credentialsTimeout", DEFAULT_CREDENTIALS_TIMEOUT),
        )


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidValue(f"{path}: must be an object")
    return value


def _duration(spec: Mapping[str, Any], key: str, default: float, prefix: str = "") -> float:
    try:
        return parse_duration(spec.get(key), default)
    except InvalidValue as e:
        raise InvalidValue(f"{prefix}{key}: {e}") from None


def _nested(make: Any, path: str) -> Any:
    try:
        return make()
    except InvalidValue as e:
        raise InvalidValue(f"{path}.{e}") from None


def _deep_merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


# Classes that do not spend the retry budget: they are counted separately.
SEPARATE_BUDGET = frozenset({ErrorClass.RATE_LIMITED, ErrorClass.AUTH})


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0
    verify: bool = False
    attempt_in_budget: int = 0  # which attempt of the budget failed (rate_limited: of its own budget)
    max_attempts: int = 0
    reason: str = ""


def budget_attempts(failures: Mapping[str, int]) -> int:
    """Failed attempts that spent the shared retry budget."""
    return sum(n for k, n in failures.items() if ErrorClass(k) not in SEPARATE_BUDGET)


def decide(
    policy: RetryPolicy,
    error_class: ErrorClass,
    failures: Mapping[str, int],
    retry_after: float | None = None,
    seed: str = "",
) -> Decision:
    """What to do after a failure of ``error_class``, given the failures already in the budget."""
    if error_class is ErrorClass.REJECTED:
        return Decision(Action.DEAD_LETTER, reason="the platform rejected the content; not retried")
    if error_class is ErrorClass.DESTINATION_FORBIDDEN:
        return Decision(
            Action.DEAD_LETTER,
            reason="the account has no access to this destination: give it access (invite the bot to the channel),"
            " then redrive",
        )
    if error_class is ErrorClass.INVALID_SPEC:
        return Decision(
            Action.DEAD_LETTER, reason="the API server refused the attempt's Job; fix the PlatformAdapter, then redrive"
        )
    if error_class is ErrorClass.AUTH:
        return Decision(
            Action.WAIT_CREDENTIALS, reason="credentials were refused; waiting for a credentials probe to pass"
        )

    rule = policy.rule(error_class)
    if error_class is ErrorClass.RATE_LIMITED:
        n = failures.get(error_class.value, 0) + 1
        if n >= rule.max_attempts:
            return Decision(
                Action.DEAD_LETTER,
                attempt_in_budget=n,
                max_attempts=rule.max_attempts,
                reason=f"rate limited {n} times (limit {rule.max_attempts})",
            )
        # The platform's Retry-After when it gave one, else the class's backoff; never below minDelay.
        wait = retry_after if retry_after is not None else rule.backoff.delay(n, seed)
        delay = max(wait, rule.min_delay)
        return Decision(Action.RETRY, delay=delay, attempt_in_budget=n, max_attempts=rule.max_attempts)

    n = budget_attempts(failures) + 1
    if error_class is ErrorClass.UNKNOWN_OUTCOME and policy.unknown_outcome is UnknownOutcomePolicy.FAIL:
        return Decision(
            Action.DEAD_LETTER,
            attempt_in_budget=n,
            max_attempts=rule.max_attempts,
            reason="outcome unknown and unknownOutcome.policy is Fail",
        )
    if n >= rule.max_attempts:
        return Decision(
            Action.DEAD_LETTER,
            attempt_in_budget=n,
            max_attempts=rule.max_attempts,
            reason=f"retries exhausted ({n} of {rule.max_attempts} attempts failed)",
        )
    if error_class is ErrorClass.NETWORK and failures.get(error_class.value, 0) == 0:
        delay = 0.0
    else:
        delay = rule.backoff.delay(n, seed)
    delay = max(delay, rule.min_delay)
    verify = error_class is ErrorClass.UNKNOWN_OUTCOME and policy.unknown_outcome is UnknownOutcomePolicy.VERIFY
    return Decision(Action.RETRY, delay=delay, verify=verify, attempt_in_budget=n, max_attempts=rule.max_attempts)

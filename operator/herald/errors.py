"""Error classes: what an attempt's failure was, from the adapter's result or the pod's fate."""
from __future__ import annotations

from enum import Enum


class ErrorClass(str, Enum):
    RATE_LIMITED = "rate_limited"
    NETWORK = "network"
    SERVER_ERROR = "server_error"
    UNKNOWN_OUTCOME = "unknown_outcome"
    AUTH = "auth"
    REJECTED = "rejected"
    POD_FAILURE = "pod_failure"

    @classmethod
    def from_result(cls, value: object) -> "ErrorClass":
        """An adapter-reported class; anything unrecognised is treated as an unknown outcome,
        so a failure Herald cannot understand is never blindly re-posted."""
        try:
            cls_ = cls(str(value))
        except ValueError:
            return cls.UNKNOWN_OUTCOME
        return cls.UNKNOWN_OUTCOME if cls_ is cls.POD_FAILURE else cls_


# Failures that say the platform (or the path to it) is unhealthy: they feed the circuit breaker.
BREAKER_CLASSES = frozenset(
    {ErrorClass.NETWORK, ErrorClass.SERVER_ERROR, ErrorClass.UNKNOWN_OUTCOME, ErrorClass.POD_FAILURE}
)

# The camelCase key of each class's override under retryPolicy.
POLICY_KEYS = {
    ErrorClass.RATE_LIMITED: "rateLimited",
    ErrorClass.NETWORK: "network",
    ErrorClass.SERVER_ERROR: "serverError",
    ErrorClass.UNKNOWN_OUTCOME: "unknownOutcome",
    ErrorClass.POD_FAILURE: "podFailure",
}

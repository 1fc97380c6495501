"""Error classes: what an attempt's failure was, from the adapter's result or the pod's fate."""

from __future__ import annotations

from enum import StrEnum


class ErrorClass(StrEnum):
    RATE_LIMITED = "rate_limited"
    NETWORK = "network"
    SERVER_ERROR = "server_error"
    UNKNOWN_OUTCOME = "unknown_outcome"
    AUTH = "auth"
    REJECTED = "rejected"
    POD_FAILURE = "pod_failure"
    # The platform says the account has no access to this destination (the bot is not in the
    # channel): only targets of that destination fail; the credentials are fine.
    DESTINATION_FORBIDDEN = "destination_forbidden"
    # The API server refused the attempt's Job (an invalid template, say): no pod ever ran.
    INVALID_SPEC = "invalid_spec"

    @classmethod
    def from_result(cls, value: object) -> ErrorClass:
        """An adapter-reported class; anything unrecognised is treated as an unknown outcome,
        so a failure Herald cannot understand is never blindly re-posted."""
        try:
            cls_ = cls(str(value))
        except ValueError:
            return cls.UNKNOWN_OUTCOME
        return cls.UNKNOWN_OUTCOME if cls_ in OPERATOR_ONLY else cls_


# Classes only the operator assigns; an adapter reporting one is not understood.
OPERATOR_ONLY = frozenset({ErrorClass.POD_FAILURE, ErrorClass.INVALID_SPEC})

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

"""Error classes: what an attempt's failure was, from the adapter's result or the pod's fate."""

from __future__ import annotations

# The error classes are the adapters' contract: defined once, in herald_contract.
from herald_contract.errors import OPERATOR_ONLY, ErrorClass


def error_class_from_result(value: object) -> ErrorClass:
    """An adapter-reported class; anything unrecognised is treated as an unknown outcome, so a
    failure Herald cannot understand is never blindly re-posted."""
    try:
        found = ErrorClass(str(value))
    except ValueError:
        return ErrorClass.UNKNOWN_OUTCOME
    return ErrorClass.UNKNOWN_OUTCOME if found in OPERATOR_ONLY else found


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

"""Error classes: what an attempt's failure was. Adapters report the first seven; the operator
alone assigns ``pod_failure`` and ``invalid_spec``."""

from __future__ import annotations

import enum


class ErrorClass(enum.StrEnum):
    RATE_LIMITED = "rate_limited"
    NETWORK = "network"
    SERVER_ERROR = "server_error"
    UNKNOWN_OUTCOME = "unknown_outcome"
    AUTH = "auth"
    REJECTED = "rejected"
    # The account has no access to this destination (the bot is not in the channel): only
    # targets of that destination fail; the credentials are fine.
    DESTINATION_FORBIDDEN = "destination_forbidden"
    # The pod's fate, when it left no result (OOMKilled, evicted, an image that cannot be pulled).
    POD_FAILURE = "pod_failure"
    # The API server refused the attempt's Job (an invalid template, say): no pod ever ran.
    INVALID_SPEC = "invalid_spec"


# Classes only the operator assigns; an adapter reporting one is not understood.
OPERATOR_ONLY = frozenset({ErrorClass.POD_FAILURE, ErrorClass.INVALID_SPEC})
ADAPTER_CLASSES = tuple(c for c in ErrorClass if c not in OPERATOR_ONLY)

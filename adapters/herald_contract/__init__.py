"""The contract between Herald's operator and its adapters, defined once and imported by both:
the error classes, the result an adapter writes (and its JSON Schema), redaction, and webhook
signing. It imports neither ``herald`` nor ``herald_adapters`` (an import-linter contract)."""

from .errors import OPERATOR_ONLY, ErrorClass
from .redact import MIN_SECRET_LENGTH, REDACTED, Redactor, redact, safe_url
from .result import MAX_RESULT_BYTES, RateLimitInfo, ResultModel, read_result, result_schema
from .signing import sign, verify

__all__ = [
    "MAX_RESULT_BYTES",
    "MIN_SECRET_LENGTH",
    "OPERATOR_ONLY",
    "REDACTED",
    "ErrorClass",
    "RateLimitInfo",
    "Redactor",
    "ResultModel",
    "read_result",
    "redact",
    "result_schema",
    "safe_url",
    "sign",
    "verify",
]

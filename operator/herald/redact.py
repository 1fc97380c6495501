"""Redaction lives in the contract package (herald_contract.redact): one redactor for the
operator and the adapters. This module only re-exports it for the operator's modules."""

from herald_contract.redact import MIN_SECRET_LENGTH, REDACTED, Redactor, clean, safe_url
from herald_contract.redact import redact as _redact


def redact(text: object, secrets: tuple[str, ...] = (), limit: int = 1024) -> str:
    """The contract's redact, keeping line breaks: for text Herald formats itself (its alerts)."""
    return _redact(text, secrets, limit, keep_newlines=True)


__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "Redactor", "clean", "redact", "safe_url"]

"""Redaction lives in the contract package (herald_contract.redact): one redactor for the
operator and the adapters. This module only re-exports it for the operator's modules."""

from herald_contract.redact import MIN_SECRET_LENGTH, REDACTED, Redactor, clean, redact, safe_url

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "Redactor", "clean", "redact", "safe_url"]

"""Keep credentials out of results, logs and exceptions."""

from __future__ import annotations

import logging

from herald_contract.redact import MIN_SECRET_LENGTH, REDACTED, Redactor

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "RedactingFormatter", "Redactor"]


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record, tracebacks included."""

    def __init__(self, redactor: Redactor, fmt: str | None = None):
        super().__init__(fmt)
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))

"""Keep credentials out of results, logs and exceptions."""

from __future__ import annotations

import json
import logging
import threading
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"

# Shorter values are not secrets worth hiding, and hiding them would garble text.
MIN_SECRET_LENGTH = 4


class Redactor:
    """Replaces every known secret, and its URL- and JSON-escaped forms, in text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        if not secret:
            return
        secret = secret.strip()
        if len(secret) < MIN_SECRET_LENGTH:
            return
        forms = {secret, quote(secret, safe=""), quote(secret, safe="/:"), quote_plus(secret)}
        escaped = json.dumps(secret)[1:-1]
        forms.update({escaped, escaped.replace("/", "\\/")})  # JSON, with and without "\/"
        for line in secret.splitlines():  # a multi-line secret may be shown line by line
            if len(line.strip()) >= MIN_SECRET_LENGTH:
                forms.add(line.strip())
        with self._lock:
            self._secrets.update(f for f in forms if len(f) >= MIN_SECRET_LENGTH)

    def __call__(self, text: object) -> str:
        text = str(text)
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def __contains__(self, text: str) -> bool:
        return any(s in text for s in self._secrets)


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record, tracebacks included."""

    def __init__(self, redactor: Redactor, fmt: str | None = None):
        super().__init__(fmt)
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))

"""Log setup: plain text or one JSON object per line (``--log-format json``), with secrets redacted
and the HTTP clients' wire traces kept out even in verbose mode."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from herald_contract.redact import redact

# Loggers that are noise at INFO (and whose DEBUG would print HTTP wire traces).
QUIET = ("kopf.objects", "kopf.activities.probe", "kopf._core.engines.peering", "aiohttp.access")
WIRE = ("httpx", "httpcore", "hpack", "urllib3", "aiohttp.client")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage(), limit=8192),
        }
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info), limit=8192)
        return json.dumps(out, ensure_ascii=False)


class _RedactingText(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), limit=16384)


def setup_logging(log_format: str = "text", verbose: bool = False) -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_RedactingText("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in QUIET + WIRE:
        logging.getLogger(name).setLevel(logging.WARNING)

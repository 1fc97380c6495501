"""Secrets out of every alert text: the contract's redaction (herald_contract.redact), applied to
alert events and payloads.

The configured secrets (tokens, webhook URLs and their parts) go into the contract's ``Redactor``,
which also masks their URL- and JSON-escaped forms; the contract's ``redact`` then masks
credential shapes (``token=…``, ``Bearer …``, bot tokens, webhook paths) and drops control
characters, keeping line breaks (alert texts have them). Channels cut texts to their own limits.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from herald_contract.redact import Redactor, redact

from .events import AlertEvent

__all__ = ["Scrubber"]


class Scrubber:
    """Masks the configured secrets and credential shapes in alert texts."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.redactor = Redactor()
        for secret in secrets:
            self.redactor.add(secret)

    def text(self, value: str) -> str:
        masked = self.redactor(value)
        # No length limit here (channels cut to theirs); mask again in case the patterns joined pieces.
        return self.redactor(redact(masked, limit=sys.maxsize, keep_newlines=True))

    def obj(self, value: Any) -> Any:
        """``value`` (JSON-like) with every string, keys included, scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.obj(k): self.obj(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.obj(v) for v in value]
        return value

    def event(self, event: AlertEvent) -> AlertEvent:
        return replace(
            event,
            summary=self.text(event.summary),
            description=self.text(event.description),
            adapter=self.text(event.adapter) if event.adapter else event.adapter,
            namespace=self.text(event.namespace) if event.namespace else event.namespace,
            labels=self.obj(dict(event.labels)),
            annotations=self.obj(dict(event.annotations)),
        )

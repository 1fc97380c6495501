"""Webhook signatures: ``X-Herald-Signature: sha256=<hex>`` over ``<timestamp>.<body>``."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str | None) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")

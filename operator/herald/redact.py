"""Removes credentials from text before it reaches status, events, logs or alerts."""

from __future__ import annotations

import re

_PATTERNS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [REDACTED]"),
    (
        re.compile(
            r"(?i)(?<![a-z0-9])((?:[a-z0-9]+[_-])*(?:token|password|passwd|secret|api[_-]?key|apppassword))"
            r"(\"?\s*[:=]\s*\"?)[^\s\"',;&]+"
        ),
        r"\1\2[REDACTED]",
    ),
    (re.compile(r"\bbot\d+:[A-Za-z0-9_-]{20,}"), "bot[REDACTED]"),
    (re.compile(r"(?i)(hooks\.slack\.com/services/)[^\s\"']+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)(/api/webhooks/\d+/)[^\s\"'?]+"), r"\1[REDACTED]"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]+"), "xox[REDACTED]"),
    (re.compile(r"(https?://)[^/\s:@]+:[^/\s@]+@"), r"\1[REDACTED]@"),
]


def redact(text: str | None, secrets: tuple[str, ...] = (), limit: int = 1024) -> str:
    """``text`` with known secret values and credential-looking patterns replaced, and shortened."""
    if not text:
        return ""
    out = str(text)
    for s in sorted(secrets, key=len, reverse=True):
        if s and len(s) >= 4:
            out = out.replace(s, "[REDACTED]")
    for pattern, repl in _PATTERNS:
        out = pattern.sub(repl, out)
    if len(out) > limit:
        out = out[: limit - 1] + "…"
    return out

"""Keeping credentials out of what Herald shows: one redactor for the adapters and the operator.

``Redactor`` masks the secret values an adapter holds (and their URL- and JSON-escaped forms).
``redact`` also cleans text from untrusted places (what an adapter reports, before it reaches
status, Events, logs or alerts).

An adapter's result is untrusted text: a third-party image may echo a credential, an ANSI escape
sequence, a CR/LF that forges a log line, or a ``javascript:`` URL. Everything copied from a result
goes through ``clean`` (control characters out, credential shapes masked, length bounded) and
``safe_url`` (http and https only, credential-like query parameters masked).

What Herald guarantees: the shapes below are masked whatever adapter wrote them. What it cannot:
a secret written as plain text with nothing around it that looks like a credential; Herald's own
adapters redact the secret values they hold (docs/adapter-contract.md).
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

REDACTED = "[REDACTED]"
# Shorter values are not secrets worth hiding, and hiding them would garble text.
MIN_SECRET_LENGTH = 4

# Names whose values are credentials, in key=value, key: value, "key": "value" and ?key=value forms.
_SECRET_NAME = r"[a-z0-9_.-]*?(?:token|password|passwd|secret|api[_-]?key|apikey|apppassword|signature|credential|auth)"
_PATTERNS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    # "accessToken": "...", 'api_key': '...'
    (re.compile(rf"(?i)([\"']{_SECRET_NAME}[\"']\s*:\s*[\"'])[^\"']*([\"'])"), r"\1" + REDACTED + r"\2"),
    # token=..., password: ..., x-api-key=...
    (re.compile(rf"(?i)(?<![a-z0-9])({_SECRET_NAME})(\s*[:=]\s*)[^\s\"',;&]+"), r"\1\2" + REDACTED),
    # ?key=... &sig=... in URLs
    (
        re.compile(r"(?i)([?&](?:key|sig|[a-z_]*?(?:token|secret|password|signature|apikey|api_key))=)[^&#\s\"']+"),
        r"\1" + REDACTED,
    ),
    (re.compile(r"\bbot\d+:[A-Za-z0-9_-]{20,}"), "bot" + REDACTED),
    (re.compile(r"(?i)(hooks\.slack\.com/services/)[^\s\"']+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(/api/webhooks/\d+/)[^\s\"'?]+"), r"\1" + REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]+"), "xox" + REDACTED),
    (re.compile(r"(https?://)[^/\s:@]+:[^/\s@]+@"), r"\1" + REDACTED + "@"),
]
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_SECRET_PARAM = re.compile(r"(?i)^(?:key|sig|.*(?:token|secret|password|signature|apikey|api_key|auth).*)$")


def _printable(text: str, keep_newlines: bool = False) -> str:
    """No ANSI sequences; CR, LF and tabs as spaces (LF kept with ``keep_newlines``); no other
    control or bidi-override characters."""
    text = _ANSI.sub("", text)
    out = []
    for ch in text:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch in "\r\n\t":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cs") or ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069":
            continue
        else:
            out.append(ch)
    return "".join(out)


def redact(text: object, secrets: tuple[str, ...] = (), limit: int = 1024, keep_newlines: bool = False) -> str:
    """``text`` printable, with known secret values and credential shapes masked, and shortened.
    ``keep_newlines`` for multi-line text Herald formats itself (alert messages)."""
    if text is None or text == "":
        return ""
    out = _printable(str(text)[: limit * 4 + 256], keep_newlines)
    for s in sorted(secrets, key=len, reverse=True):
        if s and len(s) >= MIN_SECRET_LENGTH:
            out = out.replace(s, REDACTED)
    for pattern, repl in _PATTERNS:
        out = pattern.sub(repl, out)
    if len(out) > limit:
        out = out[: limit - 1] + "…"
    return out


clean = redact


def safe_url(value: object, limit: int = 2048) -> str | None:
    """An http(s) URL fit to show a user, or None: other schemes (javascript:, data:, file:) are
    dropped, credentials in the authority and credential-like query parameters are masked."""
    if not isinstance(value, str) or not value or len(value) > limit * 2:
        return None
    text = _printable(value).strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if _SECRET_PARAM.match(k) else v) for k, v in pairs], safe="[]")
    url = urlunsplit((parts.scheme.lower(), netloc, parts.path, query, parts.fragment))
    return url if len(url) <= limit else None


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

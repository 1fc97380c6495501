"""Go-style durations ("1s", "1m30s", "10m", "24h", "250ms") and RFC 3339 times. Total and bounded.

Every parser here either returns a value or raises ``InvalidValue`` (a ``ValueError``) with a
message fit for a condition; nothing else escapes, whatever the input. Durations are at most
``MAX_DURATION`` (720h, the same bound the CRDs' CEL rules enforce) and times lie in years
1 to 9999 in UTC, the range the API server can store and give back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_PART = re.compile(r"(\d{1,12}(?:\.\d{1,9})?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
MAX_DURATION = 720 * 3600.0
MAX_DURATION_TEXT = "720h"
_MAX_TEXT = 64

# RFC 3339 as the API server writes it: upper-case T and Z, an offset of at most 23:59.
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")
MIN_TIME = datetime(1, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


class InvalidValue(ValueError):
    """A value Herald cannot use; the message says why (callers add the field's path)."""


def parse_duration(text: object, default: float | None = None) -> float:
    """Seconds in ``text`` (numbers are taken as seconds), within 0 and MAX_DURATION."""
    if text is None or text == "":
        if default is None:
            raise InvalidValue("a duration is required")
        return default
    if isinstance(text, bool):
        raise InvalidValue(f"{text!r} is not a duration")
    if isinstance(text, (int, float)):
        total = float(text)
    elif isinstance(text, str) and len(text) <= _MAX_TEXT:
        pos, total = 0, 0.0
        for m in _PART.finditer(text):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(text) or pos == 0:
            raise InvalidValue(f"invalid duration {text[:_MAX_TEXT]!r}: use forms like 500ms, 30s, 10m, 1h30m")
    else:
        raise InvalidValue("not a duration: use forms like 500ms, 30s, 10m, 1h30m")
    if not 0 <= total <= MAX_DURATION:  # also catches inf and nan
        raise InvalidValue(f"duration {str(text)[:_MAX_TEXT]} is above the maximum {MAX_DURATION_TEXT}")
    return total


def format_duration(seconds: float) -> str:
    """A short human form: 0s, 250ms, 4s, 1m30s, 2h."""
    if seconds < 1 and seconds > 0:
        return f"{round(seconds * 1000)}ms"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{sec}s" if sec or not (h or m) else "")
    return out


def parse_time(text: object) -> datetime | None:
    """An RFC 3339 time in UTC, or None for an empty value; ``InvalidValue`` for anything else."""
    if text is None or text == "":
        return None
    if not isinstance(text, str) or len(text) > _MAX_TEXT:
        raise InvalidValue("not an RFC 3339 time")
    if not _RFC3339.match(text):
        raise InvalidValue(f"{text!r} is not an RFC 3339 time such as 2030-06-01T09:00:00Z")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        utc = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidValue(f"{text!r} is not a valid time (years 0001 to 9999 in UTC)") from None
    return utc


def safe_time(text: object) -> datetime | None:
    """``parse_time`` for values from untrusted places where a bad time is as good as none."""
    try:
        return parse_time(text)
    except InvalidValue:
        return None


def clamp_time(t: datetime) -> datetime:
    """``t`` within the range the API server stores (so ``format_time`` always gives RFC 3339)."""
    return min(max(t, MIN_TIME), MAX_TIME)


def format_time(t: datetime | None) -> str | None:
    if t is None:
        return None
    t = clamp_time(t.astimezone(UTC))
    base = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    if t.microsecond:
        return f"{base}.{t.microsecond // 1000:03d}Z"
    return base + "Z"

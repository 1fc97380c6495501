"""Go-style durations ("1s", "1m30s", "10m", "24h", "250ms") and RFC 3339 times."""
from __future__ import annotations

import re
from datetime import datetime, timezone

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"


def parse_duration(text: str | int | float | None, default: float | None = None) -> float:
    """Seconds in ``text``; numbers are taken as seconds."""
    if text is None or text == "":
        if default is None:
            raise ValueError("duration is required")
        return default
    if isinstance(text, (int, float)):
        return float(text)
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"invalid duration {text!r}: use forms like 500ms, 30s, 10m, 1h30m")
    return total


def format_duration(seconds: float) -> str:
    """A short human form: 0s, 250ms, 4s, 1m30s, 2h."""
    if seconds < 1 and seconds > 0:
        return f"{round(seconds * 1000)}ms"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{sec}s" if sec or not (h or m) else "")
    return out


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def format_time(t: datetime | None) -> str | None:
    if t is None:
        return None
    t = t.astimezone(timezone.utc)
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")

"""Pure functions: HTTP status or transport error -> error class, and header parsing."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from ._contract import ErrorClass, RateLimit

# Reset values above this are Unix timestamps; below, seconds from now.
_EPOCH_THRESHOLD = 1_000_000_000


def classify_status(status: int) -> ErrorClass | None:
    """The error class of an HTTP status; None for success (2xx)."""
    if 200 <= status < 300:
        return None
    if status == 429:
        return ErrorClass.RATE_LIMITED
    if status in (401, 403):
        return ErrorClass.AUTH
    if status == 408 or status >= 500:
        return ErrorClass.SERVER_ERROR
    # 400, 413, 422 and every other client error or unfollowed redirect: retrying won't help.
    return ErrorClass.REJECTED


def classify_transport_error(exc: BaseException, *, may_have_posted: bool) -> ErrorClass:
    """A failure without an HTTP response.

    Connect errors happen before any byte of the request was sent: `network`.
    Anything later (write, read, protocol errors, read timeouts) may have left the
    request processed, so for a request that creates a post it is `unknown_outcome`.
    """
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return ErrorClass.REJECTED  # a misconfigured URL: retrying can't help
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return ErrorClass.NETWORK
    if isinstance(exc, httpx.TransportError) and may_have_posted:
        return ErrorClass.UNKNOWN_OUTCOME
    return ErrorClass.NETWORK


def _header(headers: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = headers.get(name)
        if value is None:
            value = headers.get(name.lower())
        if value is not None and value.strip():
            return value.strip()
    return None


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After: delta-seconds or an HTTP-date. Never negative."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    seconds = _number(value)
    if seconds is None:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds > 366 * 86400:  # nonsense
        return None
    return max(0.0, seconds)


def parse_reset(value: str | None, now: datetime) -> datetime | None:
    """A rate-limit reset: RFC 3339 / ISO 8601 time, Unix time, or seconds from now."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    number = _number(value)
    try:
        if number is not None:
            if number >= _EPOCH_THRESHOLD:
                return datetime.fromtimestamp(number, tz=UTC)
            if number < 0:
                return None
            return now + timedelta(seconds=number)
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when


def parse_rate_limit(headers: Mapping[str, str], now: datetime) -> RateLimit | None:
    """`X-RateLimit-*` (Mastodon, Discord, many APIs) or `RateLimit-*` (IETF draft, atproto)."""
    remaining_raw = _header(headers, "X-RateLimit-Remaining", "RateLimit-Remaining")
    if remaining_raw is None:
        return None
    remaining = _number(remaining_raw.split(",")[0].split(";")[0])
    if remaining is None:
        return None
    reset = parse_reset(_header(headers, "X-RateLimit-Reset", "RateLimit-Reset"), now)
    if reset is None:
        reset = parse_reset(_header(headers, "X-RateLimit-Reset-After"), now)
    return RateLimit(remaining=max(0, int(remaining)), reset_at=reset)


def retry_after_seconds(headers: Mapping[str, str], now: datetime, rate_limit: RateLimit | None = None) -> float | None:
    """Retry-After if given; otherwise, when the limit is used up, the time until it resets."""
    seconds = parse_retry_after(_header(headers, "Retry-After"), now)
    if seconds is None and rate_limit is not None and rate_limit.remaining == 0 and rate_limit.reset_at:
        seconds = max(0.0, (rate_limit.reset_at - now).total_seconds())
    return seconds

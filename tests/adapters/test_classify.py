"""HTTP status, transport error and header parsing: pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald_adapters import ErrorClass
from herald_adapters._classify import (
    classify_status,
    classify_transport_error,
    parse_rate_limit,
    parse_reset,
    parse_retry_after,
    retry_after_seconds,
)

NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "status,expected",
    [
        (200, None),
        (201, None),
        (202, None),
        (204, None),
        (429, ErrorClass.RATE_LIMITED),
        (401, ErrorClass.AUTH),
        (403, ErrorClass.AUTH),
        (400, ErrorClass.REJECTED),
        (413, ErrorClass.REJECTED),
        (422, ErrorClass.REJECTED),
        (404, ErrorClass.REJECTED),
        (409, ErrorClass.REJECTED),
        (301, ErrorClass.REJECTED),
        (500, ErrorClass.SERVER_ERROR),
        (502, ErrorClass.SERVER_ERROR),
        (503, ErrorClass.SERVER_ERROR),
        (504, ErrorClass.SERVER_ERROR),
        (408, ErrorClass.SERVER_ERROR),
    ],
)
def test_status_classes(status, expected):
    assert classify_status(status) == expected


@given(st.integers(min_value=100, max_value=599))
def test_every_status_has_exactly_one_meaning(status):
    result = classify_status(status)
    assert (result is None) == (200 <= status < 300)
    if status >= 500:
        assert result is ErrorClass.SERVER_ERROR


def _request() -> httpx.Request:
    return httpx.Request("POST", "http://127.0.0.1/x")


@pytest.mark.parametrize(
    "exc,may_have_posted,expected",
    [
        (httpx.ConnectError("refused"), True, ErrorClass.NETWORK),
        (httpx.ConnectTimeout("slow"), True, ErrorClass.NETWORK),
        (httpx.ReadTimeout("late"), True, ErrorClass.UNKNOWN_OUTCOME),
        (httpx.ReadError("reset"), True, ErrorClass.UNKNOWN_OUTCOME),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            True,
            ErrorClass.UNKNOWN_OUTCOME,
        ),
        (httpx.WriteTimeout("stuck"), True, ErrorClass.UNKNOWN_OUTCOME),
        (httpx.ReadTimeout("late"), False, ErrorClass.NETWORK),
        (httpx.UnsupportedProtocol("ftp"), True, ErrorClass.REJECTED),
    ],
)
def test_transport_errors(exc, may_have_posted, expected):
    assert classify_transport_error(exc, may_have_posted=may_have_posted) is expected


@pytest.mark.parametrize(
    "value,expected",
    [("120", 120.0), ("0", 0.0), ("1.5", 1.5), (" 7 ", 7.0), ("", None), (None, None), ("soon", None), ("-5", 0.0)],
)
def test_retry_after_seconds_form(value, expected):
    assert parse_retry_after(value, NOW) == expected


def test_retry_after_http_date():
    assert parse_retry_after("Mon, 23 Nov 2026 10:02:00 GMT", NOW) == 120.0
    assert parse_retry_after("Mon, 23 Nov 2026 09:00:00 GMT", NOW) == 0.0


@given(st.integers(min_value=0, max_value=86_400 * 30))
def test_retry_after_round_trips_both_forms(seconds):
    assert parse_retry_after(str(seconds), NOW) == seconds
    assert parse_retry_after(format_datetime(NOW + timedelta(seconds=seconds), usegmt=True), NOW) == seconds


@given(st.text(max_size=40))
def test_retry_after_never_raises_or_goes_negative(value):
    result = parse_retry_after(value, NOW)
    assert result is None or result >= 0


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2026-11-23T10:05:00.000Z", NOW + timedelta(minutes=5)),  # Mastodon: ISO 8601
        ("2026-11-23T10:05:00+00:00", NOW + timedelta(minutes=5)),
        ("1795428300", datetime.fromtimestamp(1795428300, tz=UTC)),  # atproto: Unix time
        ("1795428300.250", datetime.fromtimestamp(1795428300.25, tz=UTC)),  # Discord: Unix time, float
        ("60", NOW + timedelta(seconds=60)),  # IETF draft: seconds from now
        ("nonsense", None),
        ("", None),
    ],
)
def test_reset_forms(value, expected):
    assert parse_reset(value, NOW) == expected


def test_rate_limit_from_mastodon_headers():
    headers = httpx.Headers(
        {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "12", "X-RateLimit-Reset": "2026-11-23T10:05:00Z"}
    )
    limit = parse_rate_limit(headers, NOW)
    assert limit.remaining == 12
    assert limit.to_json() == {"remaining": 12, "resetAt": "2026-11-23T10:05:00Z"}


def test_rate_limit_from_ietf_headers_with_policy_suffix():
    headers = httpx.Headers({"RateLimit-Remaining": "4;w=60", "RateLimit-Reset": "30"})
    assert parse_rate_limit(headers, NOW).to_json() == {"remaining": 4, "resetAt": "2026-11-23T10:00:30Z"}


def test_rate_limit_from_discord_reset_after_only():
    headers = httpx.Headers({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "2.5"})
    assert parse_rate_limit(headers, NOW).reset_at == NOW + timedelta(seconds=2.5)


def test_no_rate_limit_headers_means_no_rate_limit():
    assert parse_rate_limit(httpx.Headers({"Content-Type": "application/json"}), NOW) is None


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "X-RateLimit-Reset-After",
                "Retry-After",
            ]
        ),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    )
)
def test_header_parsing_never_raises_on_garbage(headers):
    limit = parse_rate_limit(headers, NOW)
    if limit is not None:
        assert limit.remaining >= 0
        limit.to_json()
    seconds = retry_after_seconds(headers, NOW, limit)
    assert seconds is None or seconds >= 0


def test_retry_after_falls_back_to_reset_when_the_limit_is_used_up():
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2026-11-23T10:02:00Z"}
    assert retry_after_seconds(headers, NOW, parse_rate_limit(headers, NOW)) == 120.0
    headers = {"X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "2026-11-23T10:02:00Z"}
    assert retry_after_seconds(headers, NOW, parse_rate_limit(headers, NOW)) is None

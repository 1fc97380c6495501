"""Durations ("1m30s", "250ms") and RFC 3339 times, as the CRDs write them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.durations import (
    DURATION_PATTERN,
    MAX_DURATION,
    InvalidValue,
    format_duration,
    format_time,
    parse_duration,
    parse_time,
)

from .builders import DETERMINISTIC


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("1s", 1.0),
        ("30s", 30.0),
        ("10m", 600.0),
        ("2m", 120.0),
        ("30m", 1800.0),
        ("24h", 86400.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("250ms", 0.25),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("0s", 0.0),
        ("1h0m1s", 3601.0),
        ("2h45m30s500ms", 9930.5),
    ],
)
def test_parse_duration_reads_go_style_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10", "1d", "s", "1 s", " 1s", "1s ", "-1s", "1.s", "1m-30s", "abc", "1S", "1sx"])
def test_parse_duration_refuses_malformed_text(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_parse_duration_takes_numbers_as_seconds():
    assert parse_duration(90) == 90.0
    assert parse_duration(0.5) == 0.5


def test_parse_duration_missing_value_uses_default_or_fails():
    assert parse_duration(None, 30.0) == 30.0
    assert parse_duration("", 120.0) == 120.0
    with pytest.raises(ValueError):
        parse_duration(None)
    with pytest.raises(ValueError):
        parse_duration("")


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0s"),
        (1, "1s"),
        (4, "4s"),
        (59, "59s"),
        (60, "1m"),
        (90, "1m30s"),
        (120, "2m"),
        (600, "10m"),
        (3600, "1h"),
        (7200, "2h"),
        (3661, "1h1m1s"),
        (86400, "24h"),
        (0.25, "250ms"),
        (0.001, "1ms"),
        (1.4, "1s"),
        (30.0, "30s"),
    ],
)
def test_format_duration_short_human_form(seconds, text):
    assert format_duration(seconds) == text


@DETERMINISTIC
@given(st.integers(min_value=0, max_value=10 * 24 * 3600))
def test_whole_seconds_round_trip(seconds):
    text = format_duration(seconds)
    assert re.match(DURATION_PATTERN, text), text
    assert parse_duration(text) == seconds


@DETERMINISTIC
@given(st.integers(min_value=1, max_value=999))
def test_sub_second_durations_round_trip_in_milliseconds(ms):
    text = format_duration(ms / 1000)
    assert text == f"{ms}ms"
    assert parse_duration(text) == pytest.approx(ms / 1000)


@DETERMINISTIC
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=500), st.sampled_from(["ms", "s", "m", "h"])),
        min_size=1,
        max_size=4,
    )
)
def test_any_text_matching_the_crd_pattern_parses_to_the_sum_of_its_parts(parts):
    text = "".join(f"{n}{u}" for n, u in parts)
    assert re.match(DURATION_PATTERN, text)
    expected = sum(n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u] for n, u in parts)
    if expected > MAX_DURATION:  # above the documented maximum: a classified error naming the bound
        with pytest.raises(InvalidValue, match="720h"):
            parse_duration(text)
        return
    assert parse_duration(text) == pytest.approx(expected)
    # ... and its short form, read back, is within half a second of it (the form rounds to seconds).
    if expected >= 1:
        assert abs(parse_duration(format_duration(expected)) - expected) <= 0.5


@pytest.mark.parametrize("text", ["99999999h", "1e400h", "720h1ms", "9" * 70 + "s", "1.5.5s", "h", "-1s"])
def test_overflowing_or_malformed_durations_are_a_classified_error(text):
    with pytest.raises(InvalidValue):
        parse_duration(text)


def test_the_maximum_duration_is_accepted():
    assert parse_duration("720h") == MAX_DURATION


@DETERMINISTIC
@given(
    st.one_of(
        st.text(max_size=80), st.integers(), st.floats(), st.none(), st.booleans(), st.lists(st.integers(), max_size=2)
    )
)
def test_parse_duration_is_total(value):
    """Any input: a number of seconds within [0, 720h], or InvalidValue; never another exception."""
    try:
        seconds = parse_duration(value, 1.0)
    except InvalidValue:
        return
    assert 0 <= seconds <= MAX_DURATION


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "2030-06-01t09:00:00z",
        "2030-06-01T09:00:00+25:00",
        "2030-02-30T09:00:00Z",
        "2030-06-01",
        "tomorrow",
        "2030-06-01T09:00:00",
        "x" * 1000,
    ],
)
def test_times_the_api_server_may_hold_but_python_cannot_use_are_a_classified_error(text):
    with pytest.raises(InvalidValue):
        parse_time(text)


@DETERMINISTIC
@given(
    st.one_of(
        st.text(max_size=40),
        st.from_regex(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})\Z"),
        st.integers(),
        st.none(),
    )
)
def test_parse_time_is_total_and_what_it_returns_formats_back(value):
    """Any input: None, a UTC time that format_time writes as RFC 3339 with a four-digit year and
    that parses back, or InvalidValue."""
    try:
        t = parse_time(value)
    except InvalidValue:
        return
    if t is None:
        return
    text = format_time(t)
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$", text)
    assert abs((parse_time(text) - t).total_seconds()) < 0.001


def test_format_time_pads_the_year_the_api_server_needs_four_digits():
    assert format_time(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00Z"


def test_parse_time_accepts_z_and_offsets_and_returns_utc():
    t = parse_time("2030-06-01T11:00:00+02:00")
    assert t == datetime(2030, 6, 1, 9, 0, tzinfo=UTC)
    assert t.tzinfo is not None and t.utcoffset() == timedelta(0)
    assert parse_time("2030-06-01T09:00:00Z") == t
    assert parse_time("2030-06-01T09:00:00.250Z") == t + timedelta(milliseconds=250)
    assert parse_time(None) is None
    assert parse_time("") is None


def test_format_time_is_rfc3339_utc_with_optional_milliseconds():
    t = datetime(2030, 6, 1, 11, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(t) == "2030-06-01T09:00:00Z"
    assert format_time(t + timedelta(microseconds=123456)) == "2030-06-01T09:00:00.123Z"
    assert format_time(None) is None


@DETERMINISTIC
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_times_round_trip_to_the_millisecond(t):
    t = t.replace(microsecond=(t.microsecond // 1000) * 1000)
    assert parse_time(format_time(t)) == t

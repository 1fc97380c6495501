"""Deterministic Job names and the idempotency key."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.naming import MAX_NAME, idempotency_key, job_name, label_value

from .builders import DETERMINISTIC

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
# Publication names are DNS subdomains (dots allowed), up to 253 characters.
publication_names = st.one_of(
    st.lists(_label, min_size=1, max_size=5).map(".".join).filter(lambda s: len(s) <= 253),
    # long ones, which always need trimming
    st.text(alphabet="abcxyz0189-", min_size=60, max_size=200).map(lambda s: f"a{s}z"),
)
target_names = _label
attempts = st.integers(min_value=1, max_value=100_000)


def test_short_names_are_readable():
    assert re.fullmatch(r"launch-mastodon-main-[0-9a-f]{12}-1", job_name("launch", "mastodon-main", 1))
    assert job_name("launch", "mastodon-main", 12).endswith("-12")


def test_same_input_same_name():
    assert job_name("launch", "mastodon-main", 3) == job_name("launch", "mastodon-main", 3)


@pytest.mark.parametrize(
    "pub_len, target_len, attempt",
    [
        (253, 63, 1),
        (253, 63, 100),
        (253, 63, 99999),
        (60, 63, 7),
        (63, 1, 1),
        (1, 63, 1),
        (40, 40, 12),
    ],
)
def test_long_names_are_trimmed_to_a_dns_label(pub_len, target_len, attempt):
    name = job_name("a" * pub_len, "b" * target_len, attempt)
    assert MAX_NAME == 63
    assert len(name) <= 63
    assert DNS_LABEL.match(name)
    assert name.endswith(f"-{attempt}")
    # both names stay recognisable in the trimmed head
    assert name.startswith("a") and "b" in name


def test_long_names_differing_only_at_the_end_stay_distinct():
    base = "quarterly-results-announcement-for-investors-and-press-"
    names = {job_name(base + suffix, "mastodon-main", 1) for suffix in ("a", "b", "2030", "2031")}
    assert len(names) == 4
    names = {job_name("launch", "x" * 60 + suffix, 1) for suffix in ("a", "b", "c")}
    assert len(names) == 3


def test_dots_and_dashes_do_not_collide():
    # "a.b" and "a-b" both sanitise to "a-b": only the hash tells them apart
    assert job_name("a.b", "t", 1) != job_name("a-b", "t", 1)
    assert job_name("a", "b-c", 1) != job_name("a-b", "c", 1)


def test_long_publications_in_a_numbered_series_get_distinct_job_names():
    """Two publications of one long-named series, to the same adapter, at attempt 1.

    Both names are trimmed to the same head, so only the 6-hex-digit (24-bit) hash keeps them
    apart; this pair (found by trying ~6,100 names of the series) shares it. The second create
    would then fail with AlreadyExists and be taken for this target's own Job."""
    a = "weekly-engineering-newsletter-for-the-platform-team-2030-733"
    b = "weekly-engineering-newsletter-for-the-platform-team-2030-6097"
    assert job_name(a, "mastodon-main", 1) != job_name(b, "mastodon-main", 1)


@DETERMINISTIC
@given(publication_names, target_names, attempts)
def test_names_are_valid_dns_labels_and_deterministic(pub, target, attempt):
    name = job_name(pub, target, attempt)
    assert len(name) <= 63
    assert DNS_LABEL.match(name), name
    assert name.endswith(f"-{attempt}")
    assert job_name(pub, target, attempt) == name


@DETERMINISTIC
@given(publication_names, target_names, attempts, publication_names, target_names, attempts)
def test_distinct_inputs_give_distinct_names(p1, t1, a1, p2, t2, a2):
    if (p1, t1, a1) != (p2, t2, a2):
        assert job_name(p1, t1, a1) != job_name(p2, t2, a2)


@DETERMINISTIC
@given(
    st.text(alphabet="abcdef-", min_size=0, max_size=8),
    target_names,
    st.lists(st.sampled_from("0123456789"), min_size=1, max_size=3).map("".join),
)
def test_long_shared_prefixes_keep_names_apart(stem, target, tail):
    """Names that must be trimmed and share everything up to the trim point."""
    prefix = "x" * 120 + stem
    names = {job_name(prefix + tail + s, target, n) for s in ("a", "b", "c") for n in (1, 2, 10)}
    assert len(names) == 9
    assert all(len(n) <= 63 and DNS_LABEL.match(n) for n in names)


def test_attempts_of_one_target_get_distinct_names():
    names = [job_name("p" * 200, "t" * 63, n) for n in range(1, 200)]
    assert len(set(names)) == len(names)


def test_idempotency_key_is_stable_32_hex_per_uid_and_target():
    k = idempotency_key("4c1c-uid", "mastodon-main")
    assert re.fullmatch(r"[0-9a-f]{32}", k)
    assert k == idempotency_key("4c1c-uid", "mastodon-main")
    assert k != idempotency_key("4c1c-uid", "bluesky-main")
    assert k != idempotency_key("other-uid", "mastodon-main")


@DETERMINISTIC
@given(st.uuids().map(str), target_names)
def test_idempotency_key_shape(uid, target):
    assert re.fullmatch(r"[0-9a-f]{32}", idempotency_key(uid, target))


@DETERMINISTIC
@given(publication_names)
def test_label_values_are_valid_and_distinct_for_long_names(name):
    v = label_value(name)
    assert len(v) <= 63
    assert LABEL_VALUE.match(v), v
    if len(name) <= 63:
        assert v == name
    else:
        assert label_value(name + "x") != v

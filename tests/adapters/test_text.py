"""Composing, measuring and fitting post text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herald_adapters import AdapterError, Content
from herald_adapters._text import (
    ELLIPSIS,
    Limit,
    compose,
    count_code_points,
    count_graphemes,
    count_mastodon,
    count_utf16,
    find_hashtags,
    find_urls,
    fit,
    graphemes,
    utf8_offsets,
)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("hello", 5),
        ("e\u0301", 1),  # e + combining acute
        ("👍🏽", 1),  # emoji + skin tone
        ("👨‍👩‍👧‍👦", 1),  # ZWJ family
        ("🇫🇷🇩🇪", 2),  # two flags: regional indicators pair up
        ("🇫", 1),
        ("1️⃣", 1),  # keycap: digit, VS16, enclosing keycap
        ("\r\n", 1),
        ("한국어", 3),  # precomposed Hangul
        ("\u1112\u1161\u11ab", 1),  # Hangul jamo L V T
        ("🏴󠁧󠁢󠁳󠁣󠁴󠁿", 1),  # tag sequence (Scotland)
        ("❤️", 1),
        ("a\u0308\u0301b", 2),
    ],
)
def test_grapheme_clusters(text, expected):
    assert count_graphemes(text) == expected


@settings(deadline=None)
@given(st.text())
def test_graphemes_partition_the_text(text):
    clusters = graphemes(text)
    assert "".join(clusters) == text
    assert count_graphemes(text) <= len(text)


def test_utf16_counts_astral_characters_twice():
    assert count_utf16("a😀") == 3
    assert count_code_points("a😀") == 2


def test_mastodon_counts_urls_as_23_and_remote_mentions_by_username():
    assert count_mastodon("see https://example.org/" + "x" * 200) == 4 + 23
    assert count_mastodon("hi @alice@social.example.org") == len("hi @alice")
    assert count_mastodon("plain") == 5


def test_find_urls_excludes_trailing_punctuation():
    text = "Read https://example.org/a_(b) and (https://example.org/c). Done, http://x.y/z!"
    urls = [text[s:e] for s, e in find_urls(text)]
    assert urls == ["https://example.org/a_(b)", "https://example.org/c", "http://x.y/z"]


def test_find_hashtags():
    text = "Release! #herald #k8s, not#this and #123 or #über."
    assert [t for _, _, t in find_hashtags(text)] == ["herald", "k8s", "über"]
    for start, end, tag in find_hashtags(text):
        assert text[start:end] == "#" + tag


def test_utf8_offsets():
    text = "Café 🚀 https://e.org"
    start, end = find_urls(text)[0]
    byte_start, byte_end = utf8_offsets(text, start, end)
    assert text.encode()[byte_start:byte_end] == b"https://e.org"


def test_compose_appends_the_link_and_missing_hashtags_once():
    content = Content(
        text="Herald is out #Release", link="https://e.org/x", tags=["release", "#kubernetes", "two words"]
    )
    body, suffix = compose(content, hashtags=True)
    assert body + suffix == "Herald is out #Release\n\nhttps://e.org/x\n\n#kubernetes #twowords"
    assert compose(content, hashtags=False) == ("Herald is out #Release", "\n\nhttps://e.org/x")


def test_compose_does_not_repeat_a_link_already_in_the_text():
    content = Content(text="Read https://e.org/x now", link="https://e.org/x")
    assert compose(content, hashtags=False) == ("Read https://e.org/x now", "")


LIMIT = Limit("test", 20, count_graphemes, "graphemes")


def test_fit_rejects_over_the_limit_without_truncate():
    with pytest.raises(AdapterError) as raised:
        fit("x" * 21, "", LIMIT, truncate=False)
    result = raised.value.result
    assert result.error_class.value == "rejected"
    assert "21 graphemes" in result.message and "20" in result.message


def test_fit_keeps_text_within_the_limit_untouched():
    assert fit("x" * 20, "", LIMIT, truncate=True) == ("x" * 20, False)


def test_fit_truncates_the_body_and_keeps_the_suffix():
    text, truncated = fit("word " * 10, "\n\n#tag", LIMIT, truncate=True)
    assert truncated
    assert text.endswith(ELLIPSIS + "\n\n#tag")
    assert count_graphemes(text) <= 20


def test_fit_never_splits_a_grapheme():
    text, _ = fit("👨‍👩‍👧" * 30, "", LIMIT, truncate=True)
    assert text == "👨‍👩‍👧" * 19 + ELLIPSIS


def test_fit_cuts_everything_when_the_suffix_alone_is_too_long():
    text, truncated = fit("body", "\n\n" + "#" * 40, LIMIT, truncate=True)
    assert truncated and count_graphemes(text) <= 20 and text.startswith("body")


@settings(deadline=None)
@given(
    st.text(min_size=1, max_size=300),
    st.text(max_size=30),
    st.integers(min_value=5, max_value=120),
    st.sampled_from([count_graphemes, count_code_points, count_utf16, count_mastodon]),
)
def test_truncation_always_fits_and_keeps_a_prefix(body, suffix, limit, measure):
    text, truncated = fit(body, suffix, Limit("test", limit, measure, "units"), truncate=True)
    assert measure(text) <= limit
    if not truncated:
        assert text == body + suffix
    else:
        kept = text.split(ELLIPSIS)[0]
        assert (body + suffix).startswith(kept)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a\u200d😀", 2),  # ZWJ after a letter: no emoji sequence, the emoji stands alone (GB11)
        ("\u0915\u094d\u0937", 1),  # Devanagari conjunct KSSA (GB9c)
        ("\u0600\u0661", 1),  # a prepended character joins what follows (GB9b)
        ("👩\u200d💻", 1),
    ],
)
def test_graphemes_follow_uax_29(text, expected):
    assert count_graphemes(text) == expected


def test_the_fallback_segmenter_no_longer_joins_across_a_zwj_after_a_letter(monkeypatch):
    import herald_adapters._text as text_module

    monkeypatch.setattr(text_module, "_regex", None)
    assert text_module.count_graphemes("a\u200d😀") == 2
    assert text_module.count_graphemes("👨\u200d👩\u200d👧") == 1


@settings(deadline=None)
@given(st.text(alphabet="a😀👩\u200d\u0301\ufe0f🏽🇫🇷 ", max_size=30))
def test_the_fallback_never_counts_fewer_than_uax_29_on_emoji_text(text):
    import regex

    from herald_adapters._text import _approximate_graphemes

    assert len(_approximate_graphemes(text)) >= len(regex.findall(r"\X", text))


def test_a_url_glued_to_a_hash_or_at_sign_is_no_link():
    assert find_urls("#https://e.org/x") == []
    assert find_urls("@https://e.org/x") == []
    assert find_urls("($https://e.org/x") == []
    assert find_urls("(https://e.org/x)") == [(1, 16)]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("http://localhost:3000/x", 23 - 23 + len("http://localhost:3000/x")),  # no TLD: full length
        ("http://127.0.0.1/status", len("http://127.0.0.1/status")),  # an IP: full length
        ("https://example.org/" + "x" * 50, 23),
        ("https://ja.wikipedia.org/wiki/日本", 23 + 2),  # CJK ends the path
        ("https://e.org/?q=日本", 23 + 2),  # a non-ASCII query character ends the URL
        ("ftp://example.org/file", len("ftp://example.org/file")),
        ("https://example.notatld/x", len("https://example.notatld/x")),
    ],
)
def test_mastodon_gives_23_characters_only_to_urls_twitter_text_recognises(text, expected):
    assert count_mastodon(text) == expected

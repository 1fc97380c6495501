"""Composing post text, measuring it the way each platform does, and fitting it to a limit."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from ._contract import Content, ErrorClass, fail

ELLIPSIS = "…"

# --- grapheme clusters -------------------------------------------------------
#
# Extended grapheme clusters (UAX #29) come from the `regex` package's \X. Where it is
# not installed, an approximation built on unicodedata is used: combining marks, ZWJ
# emoji sequences, variation selectors, emoji modifiers, tag sequences, flags, CR LF and
# Hangul jamo join, but not prepended characters or Indic conjuncts.

try:
    import regex as _regex
except ImportError:  # pragma: no cover - exercised by test_text with the module hidden
    _regex = None

_ZWJ = "\u200d"


def _is_regional_indicator(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"


def _is_extender(ch: str) -> bool:
    return (
        unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or ch == _ZWJ
        or "\ufe00" <= ch <= "\ufe0f"  # variation selectors
        or "\U000e0100" <= ch <= "\U000e01ef"
        or "\U0001f3fb" <= ch <= "\U0001f3ff"  # emoji skin-tone modifiers
        or "\U000e0020" <= ch <= "\U000e007f"  # emoji tag sequences
    )


def _is_pictographic(ch: str) -> bool:
    if _is_regional_indicator(ch):
        return False
    return unicodedata.category(ch) == "So" or "\U0001f000" <= ch <= "\U0001faff" or "\u2600" <= ch <= "\u27bf"


def _hangul_kind(ch: str) -> str:
    if "\u1100" <= ch <= "\u115f" or "\ua960" <= ch <= "\ua97c":
        return "L"
    if "\u1160" <= ch <= "\u11a7" or "\ud7b0" <= ch <= "\ud7c6":
        return "V"
    if "\u11a8" <= ch <= "\u11ff" or "\ud7cb" <= ch <= "\ud7fb":
        return "T"
    if "\uac00" <= ch <= "\ud7a3":
        return "LV" if (ord(ch) - 0xAC00) % 28 == 0 else "LVT"
    return ""


def _joins(cluster: str, ch: str) -> bool:
    last = cluster[-1]
    if last == "\r":
        return ch == "\n"
    if last in "\n" or unicodedata.category(last) == "Cc":
        return False
    if _is_extender(ch):
        return unicodedata.category(ch) != "Cc"
    if last == _ZWJ and _is_pictographic(ch):
        # GB11: only an emoji sequence (pictographic, extenders, ZWJ) continues across a ZWJ.
        return _is_pictographic(cluster[0])
    if _is_regional_indicator(ch):
        return len(cluster) == 1 and _is_regional_indicator(last)
    prev, cur = _hangul_kind(last), _hangul_kind(ch)
    if prev == "L" and cur in ("L", "V", "LV", "LVT"):
        return True
    if prev in ("LV", "V") and cur in ("V", "T"):
        return True
    return bool(prev in ("LVT", "T") and cur == "T")


def _approximate_graphemes(text: str) -> list[str]:
    clusters: list[str] = []
    for ch in text:
        if clusters and _joins(clusters[-1], ch):
            clusters[-1] += ch
        else:
            clusters.append(ch)
    return clusters


def graphemes(text: str) -> list[str]:
    if _regex is None:
        return _approximate_graphemes(text)
    return _regex.findall(r"\X", text)


def count_graphemes(text: str) -> int:
    return len(graphemes(text))


def count_code_points(text: str) -> int:
    return len(text)


def count_utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# --- URLs and hashtags --------------------------------------------------------

_URL = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
_TRAILING = ".,:;!?'\"*"
# As twitter-text (Mastodon) and the Bluesky app: a URL glued to one of these is no link.
_NOT_BEFORE_URL = "/@＠$#＃"


def find_urls(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of http(s) URLs, without trailing punctuation."""
    spans = []
    for match in _URL.finditer(text):
        start, end = match.span()
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] in _NOT_BEFORE_URL):
            continue
        url = text[start:end]
        while url and (url[-1] in _TRAILING or (url[-1] == ")" and url.count("(") < url.count(")"))):
            url = url[:-1]
        if len(url) > len("https://") - 1 and "://" in url and not url.endswith("://"):
            spans.append((start, start + len(url)))
    return spans


_HASHTAG = re.compile(r"(?:^|(?<=\s))#([^\s#]+)")


def find_hashtags(text: str) -> list[tuple[int, int, str]]:
    """(start, end, tag) spans of #hashtags; the span includes '#'."""
    out = []
    for match in _HASHTAG.finditer(text):
        tag = match.group(1)
        while tag and unicodedata.category(tag[-1])[0] == "P" and tag[-1] != "_":
            tag = tag[:-1]
        if not tag or tag.isdigit():
            continue
        start = match.start(1) - 1
        out.append((start, start + 1 + len(tag), tag))
    return out


# Mastodon counts a URL as 23 characters and a remote mention @user@domain as @user.
# It finds URLs with twitter-text's `valid_url`: http(s) only, a host ending in a known
# TLD (not an IP address, no user:password@), and path and query characters from a
# fixed set (a query in Cyrillic, or a path in CJK, ends the URL).
MASTODON_URL_LENGTH = 23
_MENTION = re.compile(r"(?<![/\w])@(\w+)@[\w.-]+\w", re.UNICODE)
_NOT_HOST = (
    "/!'#%&()*+,\\\\\\-.:;<=>?@\\[\\]^_{|}~$\\x09-\\x0D\\x20\\x85\\xA0\\u1680\\u180E\\u2000-\\u200A"
    "\\u2028\\u2029\\u202F\\u205F\\u3000\\uFFFE\\uFEFF\\uFFFF\\u202A-\\u202E\\u061C\\u200E\\u200F\\u2066-\\u2069"
)
_LATIN = (
    "\\xC0-\\xD6\\xD8-\\xF6\\xF8-\\xFF\\u0100-\\u024F\\u0253\\u0254\\u0256\\u0257\\u0259\\u025B\\u0263"
    "\\u0268\\u026F\\u0272\\u0289\\u028B\\u02BB\\u0300-\\u036F\\u1E00-\\u1EFF"
)


def _mastodon_url_pattern() -> re.Pattern[str]:
    from ._tlds import TLDS

    c = f"[^{_NOT_HOST}]"
    tlds = "|".join(re.escape(t) for t in sorted(TLDS, key=len, reverse=True))
    host = (
        f"(?:(?:{c}(?:[_-]|{c})*)?{c}\\.)*(?:(?:{c}(?:-|{c})*)?{c}\\.)"
        f"(?:(?:{tlds})(?=[^0-9a-zA-Z@+-]|$)|xn--[\\-0-9a-z]+)"
    )
    p = f"[a-z\\u0400-\\u04FF0-9!*';:=+,.$/%#\\[\\]\\-\\u2013_~@|&{_LATIN}]"
    parens = f"\\((?:{p}+|(?:{p}*\\({p}+\\){p}*))\\)"
    ending = f"[+\\-a-z\\u0400-\\u04FF0-9=_#/{_LATIN}]"
    path = f"/(?:(?:{p}*(?:{parens}{p}*)*{ending})|(?:{parens})|(?:@{p}+/))*"
    query = "\\?[a-z0-9!?*'@();:&=+$/%#\\[\\]\\-_.,~|]*[a-z0-9\\-_&=#/]"
    return re.compile(
        f"(?:^|(?<=[^A-Za-z0-9@＠$#＃\\uFFFE\\uFEFF\\uFFFF]))https?://{host}(?::[0-9]+)?(?:{path})?(?:{query})?",
        re.IGNORECASE,
    )


_MASTODON_URL: re.Pattern[str] | None = None


def find_mastodon_urls(text: str) -> list[tuple[int, int]]:
    """(start, end) spans of the URLs Mastodon gives its 23-character allowance."""
    global _MASTODON_URL
    if _MASTODON_URL is None:
        _MASTODON_URL = _mastodon_url_pattern()
    return [m.span() for m in _MASTODON_URL.finditer(text)]


def count_mastodon(text: str, url_length: int = MASTODON_URL_LENGTH) -> int:
    parts, pos = [], 0
    for start, end in find_mastodon_urls(text):
        parts.append(text[pos:start])
        parts.append("x" * url_length)
        pos = end
    parts.append(text[pos:])
    countable = _MENTION.sub(lambda m: "@" + m.group(1), "".join(parts))
    return count_graphemes(countable)


# --- composing and fitting ----------------------------------------------------


def clean_tag(tag: str) -> str:
    return re.sub(r"[^\w]", "", tag.lstrip("#"))


def compose(content: Content, *, hashtags: bool) -> tuple[str, str]:
    """The post's body (content.text) and a suffix holding the link and hashtags
    that the text doesn't already contain. Truncation shortens only the body."""
    body = content.text.rstrip()
    extras: list[str] = []
    if content.link and content.link not in body:
        extras.append(content.link)
    if hashtags:
        lowered = body.lower()
        missing = []
        for tag in (clean_tag(t) for t in content.tags):
            if tag and f"#{tag}".lower() not in lowered and f"#{tag}" not in missing:
                missing.append(f"#{tag}")
        if missing:
            extras.append(" ".join(missing))
    suffix = "".join("\n\n" + extra for extra in extras)
    return body, suffix


@dataclass(frozen=True)
class Limit:
    platform: str
    limit: int
    measure: Callable[[str], int]
    unit: str  # "characters", "graphemes", ...
    what: str = "text"


def fit(body: str, suffix: str, limit: Limit, *, truncate: bool) -> tuple[str, bool]:
    """Return (text, truncated). Over the limit: `rejected`, unless truncation is allowed,
    in which case the body is cut at a grapheme boundary and ends with an ellipsis."""
    full = body + suffix
    size = limit.measure(full)
    if size <= limit.limit:
        return full, False
    if not truncate:
        raise fail(
            ErrorClass.REJECTED,
            f"{limit.what} is {size} {limit.unit}; {limit.platform} allows at most {limit.limit}. "
            "Shorten it, or set truncate: true on the publication",
        )
    shortened = _shorten(body, suffix, limit)
    if shortened is None:  # the link and tags alone don't fit: cut the whole text
        shortened = _shorten(full, "", limit)
    if shortened is None:
        raise fail(ErrorClass.REJECTED, f"{limit.what} cannot be shortened to {limit.limit} {limit.unit}")
    return shortened, True


def _shorten(body: str, suffix: str, limit: Limit) -> str | None:
    clusters = graphemes(body)

    def candidate(k: int) -> str:
        return "".join(clusters[:k]).rstrip() + ELLIPSIS + suffix

    lo, hi = 0, len(clusters)
    if limit.measure(candidate(0)) > limit.limit:
        return None
    while lo < hi:  # the largest k whose candidate fits
        mid = (lo + hi + 1) // 2
        if limit.measure(candidate(mid)) <= limit.limit:
            lo = mid
        else:
            hi = mid - 1
    while lo > 0 and limit.measure(candidate(lo)) > limit.limit:
        lo -= 1
    return candidate(lo)


def utf8_offsets(text: str, start: int, end: int) -> tuple[int, int]:
    """Character span -> UTF-8 byte span (atproto facets index bytes)."""
    byte_start = len(text[:start].encode("utf-8"))
    return byte_start, byte_start + len(text[start:end].encode("utf-8"))

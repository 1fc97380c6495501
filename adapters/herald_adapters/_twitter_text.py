"""X's weighted post length (twitter-text configuration v3), computed so that it never
comes out *below* what X counts.

The published rules (twitter-text ``config/v3.json``): the text is NFC-normalised and CR LF
becomes LF; every code point weighs 200 unless it falls in one of the ranges below
(weight 100); every URL weighs ``transformedURLLength`` (23) x scale; with
``emojiParsingEnabled`` every emoji sequence weighs ``defaultWeight`` (200); the total is
divided by ``scale`` (100) and must be at most ``maxWeightedTweetLength`` (280).

URLs are found like twitter-text finds them (with or without a scheme, the domain ending in
a top-level domain from twitter-text's list, ``_twitter_tlds``), with a path trimmed to
characters twitter-text also accepts, so X's URL never ends before ours. twitter-text's
emoji regular expression is built from every sequence of Unicode's emoji-test.txt, a table
this module does not carry; where the count depends on it, this module takes the *larger*
of the possible counts, so a text it accepts is not refused by X as too long (it may refuse,
or truncate, a few texts X would take):

- a URL whose host ends in a non-ASCII label counts as the larger of 23 and its length;
- emoji ZWJ sequences (families, professions, 👩‍❤️‍💋‍👨) count as their parts
  (2 per emoji and 1 per joiner) instead of 2;
- a variation selector or skin tone counts as part of the emoji only after the emoji
  known to take it (the tables below; tests check them against twitter-text).
"""

from __future__ import annotations

import re
import unicodedata

from ._twitter_tlds import TLDS

MAX_WEIGHTED_LENGTH = 280
SCALE = 100
DEFAULT_WEIGHT = 200
URL_LENGTH = 23
RANGES = ((0, 4351, 100), (8192, 8205, 100), (8208, 8223, 100), (8242, 8247, 100))

_ZWJ = "\u200d"
_VS16 = "\ufe0f"
_KEYCAP = "\u20e3"
_KEYCAP_BASES = "#*0123456789"


def _ranges(spec: str) -> frozenset[int]:
    out: set[int] = set()
    for part in spec.split():
        first, _, last = part.partition("-")
        out.update(range(int(first, 16), int(last or first, 16) + 1))
    return frozenset(out)


# Emoji whose default presentation is text: "<emoji> U+FE0F" is one emoji sequence.
# (Emoji_Presentation=No in Unicode's emoji-data.txt; checked against twitter-text by tests.)
_TEXT_DEFAULT = _ranges(
    "A9 AE 203C 2049 2122 2139 2194-2199 21A9-21AA 2328 23CF 23ED-23EF 23F1-23F2 23F8-23FA 24C2 25AA-25AB "
    "25B6 25C0 25FB-25FC 2600-2604 260E 2611 2618 261D 2620 2622-2623 2626 262A 262E-262F 2638-263A 2640 2642 "
    "265F-2660 2663 2665-2666 2668 267B 267E 2692 2694-2697 2699 269B-269C 26A0 26B0-26B1 26C8 26CF 26D1 "
    "26D3 26E9 26F0-26F1 26F4 26F7-26F9 2702 2708-2709 270C-270D 270F 2712 2714 2716 271D 2721 2733-2734 2744 "
    "2747 2763-2764 27A1 2934-2935 2B05-2B07 3030 303D 3297 3299 1F170-1F171 1F17E-1F17F 1F202 1F237 1F321 "
    "1F324-1F32C 1F336 1F37D 1F396-1F397 1F399-1F39B 1F39E-1F39F 1F3CB-1F3CE 1F3D4-1F3DF 1F3F3 1F3F5 1F3F7 "
    "1F43F 1F441 1F4FD 1F549-1F54A 1F56F-1F570 1F573-1F579 1F587 1F58A-1F58D 1F590 1F5A5 1F5A8 1F5B1-1F5B2 "
    "1F5BC 1F5C2-1F5C4 1F5D1-1F5D3 1F5DC-1F5DE 1F5E1 1F5E3 1F5E8 1F5EF 1F5F3 1F5FA 1F6CB 1F6CD-1F6CF "
    "1F6E0-1F6E5 1F6E9 1F6F0 1F6F3"
)

# Emoji that take a skin tone (Emoji_Modifier_Base, as far as twitter-text's emoji data goes;
# newer ones count as two emoji, 4), checked against twitter-text by tests.
_MODIFIER_BASES = _ranges(
    "261D 26F9 270A-270D 1F385 1F3C2-1F3C4 1F3C7 1F3CA-1F3CC 1F442-1F443 1F446-1F450 1F466-1F469 1F46B-1F46E "
    "1F470-1F478 1F47C 1F481-1F483 1F485-1F487 1F4AA 1F574-1F575 1F57A 1F590 1F595-1F596 1F645-1F647 "
    "1F64B-1F64F 1F6A3 1F6B4-1F6B6 1F6C0 1F6CC 1F90F 1F918-1F91C 1F91E-1F91F 1F926 1F930-1F939 1F93D-1F93E "
    "1F9B5-1F9B6 1F9B8-1F9B9 1F9BB 1F9CD-1F9CF 1F9D1-1F9DD"
)
_MODIFIERS = _ranges("1F3FB-1F3FF")

# The flags Unicode recommends (RGI): a pair of regional indicators for these region codes.
_FLAG_CODES = """
AC AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV
BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CP CR CU CV CW CX CY CZ DE DG DJ DK DM DO DZ EA EC EE EG EH
ER ES ET EU FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU
IC ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU
LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR
NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM
SN SO SR SS ST SV SX SY SZ TA TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM UN US UY UZ VA VC
VE VG VI VN VU WF WS XK YE YT ZA ZM ZW
"""
_FLAGS = frozenset(_FLAG_CODES.split())
_SUBDIVISION_FLAGS = frozenset(
    "\U0001f3f4" + "".join(chr(0xE0000 + ord(c)) for c in code) + "\U000e007f" for code in ("gbeng", "gbsct", "gbwls")
)
_TAG_RANGE = range(0xE0020, 0xE0080)


def code_point_weight(ch: str) -> int:
    cp = ord(ch)
    for start, end, weight in RANGES:
        if start <= cp <= end:
            return weight
    return DEFAULT_WEIGHT


def _is_regional_indicator(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"


def _emoji_unit(text: str, i: int) -> tuple[int, int] | None:
    """(end, weight) of one emoji starting at i that twitter-text counts as a single emoji,
    or None."""
    ch = text[i]
    nxt = text[i + 1] if i + 1 < len(text) else ""
    if _is_regional_indicator(ch) and _is_regional_indicator(nxt):
        code = chr(ord(ch) - 0x1F1E6 + 65) + chr(ord(nxt) - 0x1F1E6 + 65)
        return (i + 2, DEFAULT_WEIGHT) if code in _FLAGS else None
    if ch in _KEYCAP_BASES:
        if nxt == _KEYCAP:
            return i + 2, DEFAULT_WEIGHT
        if nxt == _VS16 and text[i + 2 : i + 3] == _KEYCAP:
            return i + 3, DEFAULT_WEIGHT
        return None
    if ch == "\U0001f3f4" and nxt and ord(nxt) in _TAG_RANGE:
        end = i + 1
        while end < len(text) and ord(text[end]) in _TAG_RANGE:
            end += 1
        if text[i:end] in _SUBDIVISION_FLAGS:
            return end, DEFAULT_WEIGHT
        return None
    cp = ord(ch)
    if cp in _TEXT_DEFAULT and nxt == _VS16:
        return i + 2, DEFAULT_WEIGHT
    if cp in _MODIFIER_BASES and nxt and ord(nxt) in _MODIFIERS:
        return i + 2, DEFAULT_WEIGHT
    if ch in "\u00a9\u00ae":  # the only emoji below U+1100, where a code point weighs 100
        return i + 1, DEFAULT_WEIGHT
    return None


def _plain_weight(text: str) -> int:
    """Weight (x100) of text without URLs."""
    total, i, n = 0, 0, len(text)
    while i < n:
        unit = _emoji_unit(text, i)
        if unit is not None and unit[0] < n and text[unit[0]] == _ZWJ and unit[0] + 1 < n:
            # A ZWJ sequence. twitter-text counts one it knows as 2 and an unknown one as its
            # parts; without the table of known sequences, count the parts (never less).
            end, weight = unit
            total += weight
            while end + 1 < n and text[end] == _ZWJ:
                total += code_point_weight(_ZWJ)
                part = _emoji_unit(text, end + 1)
                if part is None:
                    total += code_point_weight(text[end + 1])
                    end += 2
                else:
                    end, weight = part
                    total += weight
            i = end
            continue
        if unit is not None:
            total += unit[1]
            i = unit[0]
            continue
        total += code_point_weight(text[i])
        i += 1
    return total


_HOST_LABEL = r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?"
# A URL candidate: with a scheme, any host; without, an ASCII host of at least two labels.
_CANDIDATE = re.compile(
    r"(?<![a-z0-9@$#＠＃])(?P<scheme>https?://)(?P<host>(?:(?!https?://)(?:[a-z0-9_.-]|[^\x00-\x7f\s]))+)(?P<port>:\d{1,5})?(?P<path>[/?][^\s]*)?"
    rf"|(?<![a-z0-9@$#＠＃./])(?P<bare>{_HOST_LABEL}(?:\.{_HOST_LABEL})+)(?![a-z0-9@+-])"
    r"(?P<bport>:\d{1,5})?(?P<bpath>[/?][^\s]*)?",
    re.IGNORECASE,
)
_INNER_TLD = re.compile(r"\.([a-z]{2,}|xn--[a-z0-9-]+)(?![a-z0-9@+-])", re.IGNORECASE)
# A subset of what twitter-text accepts in a path and query, so X's URL never stops before ours.
_PATH_CHARS = re.compile(r"[a-z0-9!*';:=+,.$/%#\[\]_~|&@?-]*", re.IGNORECASE)
# Characters a path or a query may end with in both of twitter-text's rules.
_PATH_ENDING = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=_#/-")


def _trim_path(path: str) -> str:
    found = _PATH_CHARS.match(path)
    path = found.group(0) if found else ""
    while path and path[-1] not in _PATH_ENDING:
        path = path[:-1]
    return path


def _url(host: str) -> tuple[int, bool] | None:
    """How much of ``host`` twitter-text takes as a URL's domain: (length, whole host), or None.
    The domain ends with the last label (after the first) that is a known TLD; a host ending
    in a non-ASCII label may end in a TLD this module does not list: None means "unknown"
    there, and the caller counts it both ways."""
    labels = host.split(".")
    for i in range(len(labels) - 1, 0, -1):
        if labels[i].lower() in TLDS and all(labels[: i + 1]):
            return len(".".join(labels[: i + 1])), i == len(labels) - 1
    return None


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")


def _scan(text: str):
    """Yield (start, end, weight x100) for each URL candidate of normalised text, in order."""
    pos = 0
    while (match := _CANDIDATE.search(text, pos)) is not None:
        if match.group("scheme"):
            prefix, host = match.group("scheme"), match.group("host").rstrip("._")
            port, path = match.group("port") or "", match.group("path") or ""
        else:
            prefix, host = "", match.group("bare")
            port, path = match.group("bport") or "", match.group("bpath") or ""
        start = match.start()
        domain = _url(host)
        if domain is None and not host.isascii():
            # An internationalised host: X may take all of it as a URL (a TLD this module does
            # not list), or only up to an ASCII TLD inside it, or none of it. Count the largest.
            whole = prefix + host + port + _trim_path(path)
            options = [_plain_weight(whole), URL_LENGTH * SCALE]
            for inner in _INNER_TLD.finditer(host):
                if inner.group(1).lower() in TLDS:
                    cut = len(prefix) + inner.end()
                    options.append(URL_LENGTH * SCALE + _plain_weight(whole[cut:]))
            yield start, start + len(whole), max(options), True
            pos = start + len(whole)
        elif domain is None:
            pos = start + len(prefix) + len(host)
            yield start, pos, _plain_weight(text[pos - len(prefix) - len(host) : pos]), False
        else:
            length, whole_host = domain
            end = start + len(prefix) + length
            if whole_host:
                end += len(port) + len(_trim_path(path))
            if not prefix and start > 0 and text[start - 1] in "-_":
                # twitter-text skips a domain right after - or _, unless they are part of a longer
                # (internationalised) domain before it: count the larger.
                yield start, end, max(URL_LENGTH * SCALE, _plain_weight(text[start:end])), True
            else:
                yield start, end, URL_LENGTH * SCALE, True
            pos = end


def weighted_length(text: str) -> int:
    """The post's weighted length as X counts it (never less, except for TLDs newer than the list)."""
    text = _normalise(text)
    total, pos = 0, 0
    for start, end, weight, _ in _scan(text):
        total += _plain_weight(text[pos:start]) + weight
        pos = end
    total += _plain_weight(text[pos:])
    return -(-total // SCALE)


def url_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the URLs X links in ``text`` (after NFC normalisation)."""
    return [(start, end) for start, end, _, is_url in _scan(_normalise(text)) if is_url]

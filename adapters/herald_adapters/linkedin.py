"""LinkedIn (Community Management API, versioned ``/rest``): images through
``POST /rest/images?action=initializeUpload`` and a ``PUT`` of the bytes to the returned
``uploadUrl``, then ``POST /rest/posts``; the new post's URN is the ``x-restli-id`` header.

Every request carries ``LinkedIn-Version: YYYYMM`` and ``X-Restli-Protocol-Version: 2.0.0``.
The post's ``commentary`` is in LinkedIn's "little text" format, where ``| { } @ [ ] ( ) < >
# * _ ~ \\`` are markup: they are escaped (LinkedIn cuts the text at the first unescaped one),
except the ``#`` of a hashtag and characters inside URLs.

LinkedIn refuses a post identical to a recent one with 422 ``DUPLICATE_POST`` and names the
earlier post's URN: after an attempt of the same publication that may have posted, that is
the post, reported with its id.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx

from ._base import Context, Options, get_str, json_body
from ._classify import classify_status, parse_retry_after
from ._contract import AdapterError, ErrorClass, Result, fail, failed
from ._media import download
from ._text import Limit, compose, count_utf16, find_hashtags, find_urls, fit

log = logging.getLogger("herald_adapters")

PLATFORM = "linkedin"
DEFAULT_ENDPOINT = "https://api.linkedin.com"
# LinkedIn supports each monthly version for about a year; override with the Secret key
# linkedinVersion when this one is sunset.
DEFAULT_VERSION = "202605"
COMMENTARY_LIMIT = 3000
MAX_IMAGES = 20
MAX_IMAGE_BYTES = 10 * 1024 * 1024
IMAGE_PROCESSING_DEADLINE = 30.0
LOOKUP_LIMIT = 20
LOOKUP_WINDOW = timedelta(hours=24)
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif"}
RESERVED = set("\\|{}@[]()<>#*_~")
_DUPLICATE_OF = re.compile(r"duplicate of (urn:li:[A-Za-z]+:[0-9A-Za-z_-]+)")
_VERSION = re.compile(r"^\d{6}(\.\d{2})?$")
_AUTHOR = re.compile(r"^urn:li:(person|organization):[0-9A-Za-z_-]+$")
_TOKEN_HINT = "LinkedIn access tokens last 60 days: create a new one and update accessToken in the Secret"


class LinkedInOptions(Options):
    """``overrides.options`` for LinkedIn targets."""

    visibility: Literal["PUBLIC", "CONNECTIONS", "LOGGED_IN"] = "PUBLIC"
    disable_reshare: bool = False


def little_text(text: str) -> str:
    """``text`` as a little-text ``commentary``: reserved characters escaped with a
    backslash, except in URLs and the ``#`` of a word-character hashtag."""
    keep: set[int] = set()
    for start, end in find_urls(text):
        keep.update(range(start, end))
    for start, end, tag in find_hashtags(text):
        if re.fullmatch(r"\w+", tag):
            keep.update(range(start, end))
    return "".join("\\" + ch if ch in RESERVED and i not in keep else ch for i, ch in enumerate(text))


def unescape(commentary: str) -> str:
    return re.sub(r"\\(.)", r"\1", commentary)


def post_url(urn: str) -> str:
    return f"https://www.linkedin.com/feed/update/{urn}/"


def _detail(data: Any) -> str | None:
    """LinkedIn errors: ``{"status", "serviceErrorCode", "code", "message"}``."""
    if not isinstance(data, dict):
        return None
    code, message = get_str(data, "code"), get_str(data, "message")
    return ": ".join(p for p in (code, message) if p) or None


def _until_midnight_utc(now: datetime) -> float:
    tomorrow = (now.astimezone(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


def failure(ctx: Context, response: httpx.Response, what: str) -> AdapterError:
    now = ctx.http.now()
    data = json_body(response)
    detail = _detail(data)
    error_class = classify_status(response.status_code) or ErrorClass.REJECTED
    seconds = parse_retry_after(response.headers.get("retry-after"), now)
    if error_class is ErrorClass.RATE_LIMITED and seconds is None and "DAY" in (get_str(data, "message") or ""):
        seconds = _until_midnight_utc(now)  # daily limits reset at midnight UTC
    if response.status_code == 401:
        detail = f"{detail or 'Unauthorized'}. {_TOKEN_HINT}"
    elif response.status_code == 426:
        detail = f"{detail or 'Upgrade Required'}. Set linkedinVersion in the Secret to an active version (YYYYMM)"
    status = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    message = f"{what}: {status}" + (f": {detail}" if detail else "")
    return AdapterError(
        failed(
            error_class,
            ctx.redact(message),
            retry_after_seconds=seconds if error_class in (ErrorClass.RATE_LIMITED, ErrorClass.SERVER_ERROR) else None,
            response_seconds=ctx.http.last_seconds,
        )
    )


def duplicate_of(response: httpx.Response) -> str | None:
    """The URN of the post LinkedIn says this one duplicates (422 DUPLICATE_POST), if any."""
    if response.status_code != 422:
        return None
    data = json_body(response)
    found = _DUPLICATE_OF.search(get_str(data, "message") or "")
    inputs = (((data or {}).get("errorDetails") or {}).get("inputErrors") or []) if isinstance(data, dict) else []
    flagged = any(isinstance(e, dict) and e.get("code") == "DUPLICATE_POST" for e in inputs)
    if found:
        return found.group(1)
    return "" if flagged else None


class _Client:
    def __init__(self, ctx: Context, base: str, token: str, version: str):
        self.ctx, self.base = ctx, base
        self.headers = {
            "Authorization": f"Bearer {token}",
            "LinkedIn-Version": version,
            "X-Restli-Protocol-Version": "2.0.0",
        }

    def call(self, method: str, path: str, *, what: str, creates_post: bool = False, **kw: Any) -> httpx.Response:
        return self.ctx.http.request(
            method, f"{self.base}{path}", headers=self.headers, what=what, creates_post=creates_post, **kw
        )


def publish(ctx: Context) -> Result:
    token = ctx.credentials.require("accessToken")
    author = ctx.credentials.require("author")
    if not _AUTHOR.match(author):
        raise fail(
            ErrorClass.AUTH,
            "the credentials Secret's key 'author' must be a person or organization URN "
            "(urn:li:person:<id> or urn:li:organization:<id>)",
        )
    version = ctx.credentials.get("linkedinVersion") or DEFAULT_VERSION
    if not _VERSION.match(version):
        raise fail(ErrorClass.REJECTED, "the credentials Secret's key 'linkedinVersion' must be YYYYMM")
    options = ctx.options(LinkedInOptions)
    content = ctx.payload.content
    body, suffix = compose(content, hashtags=True)
    limit = Limit(PLATFORM, COMMENTARY_LIMIT, lambda t: count_utf16(little_text(t)), "characters (after escaping)")
    text, _ = fit(body, suffix, limit, truncate=ctx.payload.truncate)
    commentary = little_text(text)
    client = _Client(ctx, ctx.endpoint(DEFAULT_ENDPOINT), token, version)

    if ctx.verifying:
        existing = _find_existing(ctx, client, author, commentary)
        if existing:
            return ctx.published(
                post_id=existing,
                url=post_url(existing),
                verified=True,
                message="verify: found the post an earlier attempt made",
            )

    post: dict[str, Any] = {
        "author": author,
        "commentary": commentary,
        "visibility": options.visibility,
        "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": options.disable_reshare,
    }
    images = [_upload(ctx, client, author, media) for media in content.media[:MAX_IMAGES]]
    if len(images) == 1:
        post["content"] = {"media": images[0]}
    elif images:
        post["content"] = {"multiImage": {"images": images}}
    elif content.link:
        post["content"] = {"article": {"source": content.link, "title": content.title or content.link}}

    what = "POST /rest/posts"
    response = client.call("POST", "/rest/posts", json=post, what=what, creates_post=True)
    if response.is_success:
        urn = response.headers.get("x-restli-id") or get_str(json_body(response), "id")
        return ctx.published(
            post_id=urn,
            url=post_url(urn) if urn else None,
            message="posted" + (" (verify: no earlier post found)" if ctx.verifying else ""),
        )
    earlier = duplicate_of(response)
    if earlier is not None and (ctx.verifying or ctx.settings.attempt > 1):
        return ctx.published(
            post_id=earlier or None,
            url=post_url(earlier) if earlier else None,
            verified=True if ctx.verifying else None,
            message="LinkedIn refused the post as a duplicate of one an earlier attempt made",
        )
    if earlier is not None:
        raise fail(
            ErrorClass.REJECTED,
            ctx.redact(
                f"{what}: HTTP 422: LinkedIn refuses a post identical to a recent one of the account"
                + (f" ({earlier})" if earlier else "")
                + "; change the text"
            ),
            response_seconds=ctx.http.last_seconds,
        )
    raise failure(ctx, response, what)


def _trusted_upload_host(base: str, upload_url: str) -> bool:
    """Send the access token only to LinkedIn (or to the configured endpoint's host)."""
    host = (urlsplit(upload_url).hostname or "").lower()
    return host == (urlsplit(base).hostname or "").lower() or host == "linkedin.com" or host.endswith(".linkedin.com")


def _upload(ctx: Context, client: _Client, author: str, media) -> dict:
    item = download(ctx, media, max_bytes=MAX_IMAGE_BYTES, platform=PLATFORM)
    if item.content_type not in IMAGE_TYPES:
        raise fail(
            ErrorClass.REJECTED,
            ctx.redact(f"media {media.url} is {item.content_type}; the LinkedIn adapter uploads JPEG, PNG, GIF images"),
        )
    what = "POST /rest/images?action=initializeUpload"
    response = client.call(
        "POST",
        "/rest/images?action=initializeUpload",
        json={"initializeUploadRequest": {"owner": author}},
        what=what,
    )
    if not response.is_success:
        raise failure(ctx, response, what)
    value = (json_body(response) or {}).get("value") or {}
    upload_url, urn = get_str(value, "uploadUrl"), get_str(value, "image")
    if not upload_url or not urn or not upload_url.startswith(("https://", "http://")):
        raise fail(ErrorClass.SERVER_ERROR, "initializeUpload returned no uploadUrl or image URN")
    headers = {"Content-Type": item.content_type}
    if _trusted_upload_host(client.base, upload_url):
        headers["Authorization"] = client.headers["Authorization"]
    what = "PUT uploadUrl"
    response = ctx.http.request("PUT", upload_url, content=item.data, headers=headers, what=what, creates_post=False)
    if not response.is_success:
        raise failure(ctx, response, what)
    _wait_until_available(ctx, client, urn)
    image: dict[str, str] = {"id": urn}
    if item.alt_text:
        image["altText"] = item.alt_text
    return image


def _wait_until_available(ctx: Context, client: _Client, urn: str) -> None:
    deadline = time.monotonic() + IMAGE_PROCESSING_DEADLINE
    delay = 0.2
    what = "GET /rest/images/{urn}"
    while True:
        response = client.call("GET", image_path(urn), what=what)
        if not response.is_success:
            raise failure(ctx, response, what)
        status = get_str(json_body(response), "status")
        if status in (None, "AVAILABLE"):
            return
        if status == "PROCESSING_FAILED":
            raise fail(ErrorClass.REJECTED, ctx.redact(f"LinkedIn could not process the image {urn}"))
        if time.monotonic() > deadline:
            raise fail(ErrorClass.SERVER_ERROR, f"LinkedIn image still {status} after 30 s")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def author_query(author: str) -> str:
    """The "Find Posts by Author" finder's query; Rest.li 2.0 wants the URN percent-encoded."""
    return f"q=author&author={quote(author, safe='')}&count={LOOKUP_LIMIT}&sortBy=LAST_MODIFIED"


def image_path(urn: str) -> str:
    return f"/rest/images/{quote(urn, safe='')}"


def _find_existing(ctx: Context, client: _Client, author: str, commentary: str) -> str | None:
    """The URN of a post of the author's from the last 24 hours (newest 20) with our text.
    Needs r_organization_social (organizations) or r_member_social (members, restricted):
    a refused lookup is skipped, and LinkedIn's duplicate check covers the post itself."""
    what = "GET /rest/posts?q=author"
    response = client.call("GET", f"/rest/posts?{author_query(author)}", what=what)
    if response.status_code == 401:
        raise failure(ctx, response, what)
    if not response.is_success:
        log.warning("%s", ctx.redact(f"verify: cannot list the author's posts ({failure(ctx, response, what)})"))
        return None
    oldest = (ctx.http.now() - LOOKUP_WINDOW).timestamp() * 1000
    wanted = " ".join(unescape(commentary).split())
    for element in (json_body(response) or {}).get("elements") or []:
        if not isinstance(element, dict):
            continue
        created = element.get("createdAt") or element.get("publishedAt")
        if isinstance(created, (int, float)) and created < oldest:
            continue
        if " ".join(unescape(element.get("commentary") or "").split()) == wanted:
            return get_str(element, "id")
    return None

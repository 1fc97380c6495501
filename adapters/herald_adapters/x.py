"""X (API v2, OAuth 2.0 user context): images through ``POST /2/media/upload`` (alt text
through ``POST /2/media/metadata``), then ``POST /2/tweets``.

Access tokens last two hours and refresh tokens rotate on every use, so tokens live in a
store that outlives the Job (``_token_store``) and refreshes follow ``_oauth2``'s lease
protocol. X has no idempotency key; it refuses a post whose text duplicates a recent one
(HTTP 403 "You are not allowed to create a Tweet with duplicate content."), which after an
earlier attempt of the same publication means that attempt's post exists.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import logging
import time
import unicodedata
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx

from ._base import Context, Options, get_str, json_body
from ._classify import classify_status, parse_reset, parse_retry_after
from ._contract import AdapterError, ErrorClass, RateLimit, Result, fail, failed, rfc3339
from ._media import Downloaded, download
from ._oauth2 import TOKEN_KEYS, Refreshed, RefreshRefused, TokenManager
from ._text import Limit, compose, fit
from ._token_store import StoreError, open_store
from ._twitter_text import MAX_WEIGHTED_LENGTH, url_spans, weighted_length

log = logging.getLogger("herald_adapters")

PLATFORM = "x"
DEFAULT_ENDPOINT = "https://api.x.com"
MAX_MEDIA = 4
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_GIF_BYTES = 15 * 1024 * 1024
MAX_ALT_TEXT = 1000
MEDIA_PROCESSING_DEADLINE = 30.0
LOOKUP_LIMIT = 20
LOOKUP_WINDOW = timedelta(hours=24)
IMAGE_TYPES = {"image/jpeg", "image/png", "image/webp", "image/gif"}
DUPLICATE = "duplicate content"
REAUTHORIZE = (
    "authorize Herald's X app again (OAuth 2.0 with the offline.access scope) and put the new refreshToken "
    "in the Secret (remove accessToken, accessTokenExpiresAt and refreshTokenRefused)"
)
# Rate-limit windows X reports: per endpoint (15 minutes), and per user and per app (24 hours).
_WINDOWS = ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour")


class XOptions(Options):
    """``overrides.options`` for X targets."""

    reply_settings: Literal["following", "mentionedUsers", "subscribers", "verified"] | None = None


def _windows(headers: Mapping[str, str], now: datetime) -> list[tuple[int, datetime | None]]:
    out = []
    for prefix in _WINDOWS:
        raw = headers.get(f"{prefix}-remaining")
        try:
            remaining = int(float(raw)) if raw is not None else None
        except ValueError:
            remaining = None
        if remaining is not None:
            out.append((max(0, remaining), parse_reset(headers.get(f"{prefix}-reset"), now)))
    return out


def rate_limit(headers: Mapping[str, str], now: datetime) -> RateLimit | None:
    """The tightest of X's windows: fewest requests remaining."""
    windows = _windows(headers, now)
    if not windows:
        return None
    remaining, reset = min(windows, key=lambda w: w[0])
    return RateLimit(remaining=remaining, reset_at=reset)


def retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """For a 429: until the latest reset of the windows that are used up; else Retry-After,
    else the earliest reset X reported."""
    windows = _windows(headers, now)
    exhausted = [reset for remaining, reset in windows if remaining == 0 and reset is not None]
    if exhausted:
        return max(0.0, (max(exhausted) - now).total_seconds())
    seconds = parse_retry_after(headers.get("retry-after"), now)
    if seconds is not None:
        return seconds
    resets = [reset for _, reset in windows if reset is not None]
    return max(0.0, (min(resets) - now).total_seconds()) if resets else None


def error_detail(data: Any) -> str | None:
    """X's error bodies: a problem (``title``, ``detail``, ``type``, ``status``), ``errors``
    (v2 problems or v1.1 ``{code, message}``), or OAuth's ``error``/``error_description``."""
    if not isinstance(data, dict):
        return None
    if detail := get_str(data, "detail"):
        return detail
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return get_str(first, "detail") or get_str(first, "message") or get_str(first, "title")
    return get_str(data, "error_description") or get_str(data, "title") or get_str(data, "error")


def failure(
    ctx: Context, response: httpx.Response, what: str, *, error_class: ErrorClass | None = None
) -> AdapterError:
    now = ctx.http.now()
    detail = error_detail(json_body(response))
    error_class = error_class or classify_status(response.status_code) or ErrorClass.REJECTED
    seconds = None
    if error_class is ErrorClass.RATE_LIMITED:
        seconds = retry_after(response.headers, now)
    elif error_class is ErrorClass.SERVER_ERROR:
        seconds = parse_retry_after(response.headers.get("retry-after"), now)
    status = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    message = f"{what}: {status}" + (f": {detail}" if detail else "")
    return AdapterError(
        failed(
            error_class,
            ctx.redact(message),
            retry_after_seconds=seconds,
            rate_limit=rate_limit(response.headers, now),
            response_seconds=ctx.http.last_seconds,
        )
    )


def is_duplicate(response: httpx.Response) -> bool:
    return response.status_code == 403 and DUPLICATE in (error_detail(json_body(response)) or "").lower()


class Api:
    """Calls with the user's access token; one refresh-and-retry after an HTTP 401."""

    def __init__(self, ctx: Context, base: str, tokens: TokenManager):
        self.ctx, self.base, self.tokens = ctx, base, tokens
        self._token: str | None = None

    def call(self, method: str, path: str, *, what: str, creates_post: bool = False, **kwargs: Any) -> httpx.Response:
        if self._token is None:
            self._token = self.tokens.access_token()
        response = self._send(method, path, what, creates_post, **kwargs)
        if response.status_code == 401:
            # Not authenticated, so not processed: safe to repeat with a newer token.
            log.info("%s: HTTP 401; getting a newer access token", what)
            try:
                self._token = self.tokens.after_rejection(self._token)
            except AdapterError as exc:
                message = f"{what}: HTTP 401 Unauthorized; {exc.result.message}"
                seconds = exc.result.response_seconds or self.ctx.http.last_seconds
                raise AdapterError(dataclasses.replace(exc.result, message=message, response_seconds=seconds)) from None
            response = self._send(method, path, what, creates_post, **kwargs)
        return response

    def _send(self, method: str, path: str, what: str, creates_post: bool, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._token}", **kwargs.pop("headers", {})}
        return self.ctx.http.request(
            method, f"{self.base}{path}", headers=headers, what=what, creates_post=creates_post, **kwargs
        )


def _refresher(ctx: Context, base: str):
    def refresh(refresh_token: str) -> Refreshed:
        client_id = ctx.credentials.require("clientId")
        secret = ctx.credentials.get("clientSecret")
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        kwargs: dict[str, Any] = {}
        if secret:  # a confidential client authenticates with HTTP Basic
            basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
            ctx.redact.add(basic)
            kwargs["headers"] = {"Authorization": f"Basic {basic}"}
        else:
            form["client_id"] = client_id
        what = "POST /2/oauth2/token"
        response = ctx.http.request(
            "POST", f"{base}/2/oauth2/token", data=form, what=what, creates_post=False, **kwargs
        )
        data = json_body(response)
        if response.is_success and get_str(data, "access_token"):
            expires = data.get("expires_in")
            return Refreshed(
                access_token=str(data["access_token"]),
                refresh_token=get_str(data, "refresh_token"),
                expires_in=float(expires) if isinstance(expires, (int, float)) else None,
            )
        error = get_str(data, "error")
        if response.status_code == 400 and error in ("invalid_request", "invalid_grant"):
            raise RefreshRefused(f"{error}: {get_str(data, 'error_description') or ''}".rstrip(": "))
        if response.status_code in (400, 401) and error in ("unauthorized_client", "invalid_client"):
            # The client id or secret is wrong; the refresh token was not used.
            raise failure(ctx, response, what, error_class=ErrorClass.AUTH)
        raise failure(ctx, response, what)

    return refresh


def _token_manager(ctx: Context, base: str) -> TokenManager:
    timeout = ctx.settings.timeout_seconds
    try:
        store = open_store(ctx.credentials, settings=ctx.settings, redact=ctx.redact, token_keys=TOKEN_KEYS)
    except StoreError as exc:
        raise fail(ErrorClass.AUTH, f"X token store: {exc}") from None
    return TokenManager(
        store,
        _refresher(ctx, base),
        platform="X",
        redact=ctx.redact,
        clock=ctx.http.now,
        lease_seconds=max(30.0, 3 * timeout),
        margin_seconds=max(300.0, 6 * timeout),
        reauthorize=REAUTHORIZE,
    )


def publish(ctx: Context) -> Result:
    options = ctx.options(XOptions)
    content = ctx.payload.content
    body, suffix = compose(content, hashtags=True)
    limit = Limit(
        "X",
        MAX_WEIGHTED_LENGTH,
        weighted_length,
        "characters as X counts them (URLs count as 23, CJK characters and emoji as 2)",
    )
    text, _ = fit(body, suffix, limit, truncate=ctx.payload.truncate)
    base = ctx.endpoint(DEFAULT_ENDPOINT)
    tokens = _token_manager(ctx, base)
    try:
        return _publish(ctx, Api(ctx, base, tokens), text, options)
    finally:
        close = getattr(tokens.store, "close", None)
        if close is not None:
            close()


def _publish(ctx: Context, api: Api, text: str, options: XOptions) -> Result:
    if ctx.verifying:
        existing = _find_existing(ctx, api, text)
        if existing is not None:
            return _found(ctx, existing, "verify: found the post an earlier attempt made")

    media_ids = [_upload(ctx, api, item) for item in _download_media(ctx)]
    post: dict[str, Any] = {"text": text}
    if media_ids:
        post["media"] = {"media_ids": media_ids}
    if options.reply_settings:
        post["reply_settings"] = options.reply_settings
    what = "POST /2/tweets"
    response = api.call("POST", "/2/tweets", json=post, what=what, creates_post=True)
    now = ctx.http.now()
    if response.is_success:
        data = json_body(response)
        post_id = get_str(data, "data", "id")
        return ctx.published(
            post_id=post_id,
            url=f"https://x.com/i/web/status/{post_id}" if post_id else None,
            rate_limit=rate_limit(response.headers, now),
            message="posted" + (" (verify: no earlier post found)" if ctx.verifying else ""),
        )
    if is_duplicate(response) and (ctx.verifying or ctx.settings.attempt > 1):
        # X refuses text identical to a recent post. After an attempt of this publication
        # that may have posted, that post is the one: report it, never post twice.
        seconds = ctx.http.last_seconds
        existing = _find_existing(ctx, api, text)
        if existing is not None:
            return _found(ctx, existing, "X refused a duplicate: the post an earlier attempt made exists")
        return ctx.published(
            rate_limit=rate_limit(response.headers, now),
            response_seconds=seconds,
            verified=True if ctx.verifying else None,
            message="X refused the post as a duplicate of a recent post with the same text: an earlier attempt "
            "posted it (X gave no id, and the account's recent posts could not be read or did not show it)",
        )
    if is_duplicate(response):
        raise fail(
            ErrorClass.REJECTED,
            "POST /2/tweets: HTTP 403: X refuses a post whose text duplicates a recent post of the account "
            "(made outside this publication); change the text",
            rate_limit=rate_limit(response.headers, now),
            response_seconds=ctx.http.last_seconds,
        )
    raise failure(ctx, response, what)


def _found(ctx: Context, tweet: dict, message: str) -> Result:
    post_id = get_str(tweet, "id")
    return ctx.published(
        post_id=post_id,
        url=f"https://x.com/i/web/status/{post_id}" if post_id else None,
        verified=True if ctx.verifying else None,
        message=message,
    )


def _download_media(ctx: Context) -> list[Downloaded]:
    items = []
    for media in ctx.payload.content.media[:MAX_MEDIA]:
        item = download(ctx, media, max_bytes=MAX_GIF_BYTES, platform=PLATFORM)
        if item.content_type not in IMAGE_TYPES:
            raise fail(
                ErrorClass.REJECTED,
                ctx.redact(
                    f"media {media.url} is {item.content_type}; the X adapter uploads JPEG, PNG, WEBP and GIF images"
                ),
            )
        if item.content_type != "image/gif" and len(item.data) > MAX_IMAGE_BYTES:
            raise fail(
                ErrorClass.REJECTED,
                ctx.redact(
                    f"media {media.url} is {len(item.data)} bytes; X allows images of at most {MAX_IMAGE_BYTES}"
                ),
            )
        items.append(item)
    if len(items) > 1 and any(i.content_type == "image/gif" for i in items):
        raise fail(ErrorClass.REJECTED, "X takes one animated GIF alone, or up to 4 other images; not both")
    return items


def _upload(ctx: Context, api: Api, item: Downloaded) -> str:
    gif = item.content_type == "image/gif"
    what = "POST /2/media/upload"
    response = api.call(
        "POST",
        "/2/media/upload",
        json={"media": base64.b64encode(item.data).decode(), "media_category": "tweet_gif" if gif else "tweet_image"},
        what=what,
    )
    if not response.is_success:
        raise failure(ctx, response, what)
    data = (json_body(response) or {}).get("data") or {}
    media_id = get_str(data, "id")
    if not media_id:
        raise fail(ErrorClass.SERVER_ERROR, "POST /2/media/upload returned no media id")
    _wait_for_processing(ctx, api, media_id, data.get("processing_info"))
    if item.alt_text:
        what = "POST /2/media/metadata"
        response = api.call(
            "POST",
            "/2/media/metadata",
            json={"id": media_id, "metadata": {"alt_text": {"text": item.alt_text[:MAX_ALT_TEXT]}}},
            what=what,
        )
        if not response.is_success:
            raise failure(ctx, response, what)
    return media_id


def _wait_for_processing(ctx: Context, api: Api, media_id: str, info: Any) -> None:
    deadline = time.monotonic() + MEDIA_PROCESSING_DEADLINE
    while isinstance(info, dict) and info.get("state") in ("pending", "in_progress"):
        if time.monotonic() > deadline:
            raise fail(ErrorClass.SERVER_ERROR, "X was still processing the media after 30 s")
        wait = info.get("check_after_secs")
        time.sleep(min(2.0, max(0.05, float(wait))) if isinstance(wait, (int, float)) else 0.5)
        what = "GET /2/media/upload?command=STATUS"
        response = api.call("GET", "/2/media/upload", params={"command": "STATUS", "media_id": media_id}, what=what)
        if not response.is_success:
            raise failure(ctx, response, what)
        info = ((json_body(response) or {}).get("data") or {}).get("processing_info")
    if isinstance(info, dict) and info.get("state") == "failed":
        error = info.get("error") if isinstance(info.get("error"), dict) else {}
        raise fail(ErrorClass.REJECTED, f"X could not process the media: {get_str(error, 'message') or 'failed'}")


# --- verify mode ---------------------------------------------------------------------


def _canonical(text: str) -> str:
    """Text with every URL replaced by one marker and whitespace collapsed: what we sent and
    what X returns (t.co links, HTML entities) compare equal."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n")
    out, pos = [], 0
    for start, end in url_spans(text):
        out.append(text[pos:start])
        out.append("\x00")
        pos = end
    out.append(text[pos:])
    return " ".join("".join(out).split())


def tweet_text(tweet: dict) -> str:
    """A post's text as X returns it, with t.co links replaced by the marker, the media
    link removed, and HTML entities decoded."""
    text = tweet.get("text") or ""
    urls = ((tweet.get("entities") or {}).get("urls")) or []
    for entity in sorted((u for u in urls if isinstance(u, dict) and u.get("url")), key=lambda u: -len(u["url"])):
        text = text.replace(entity["url"], "" if entity.get("media_key") else "\x00")
    return " ".join(unicodedata.normalize("NFC", html.unescape(text)).split())


def _find_existing(ctx: Context, api: Api, text: str) -> dict | None:
    """The account's posts of the last 24 hours (newest 20) whose text equals ours.
    A lookup X refuses for any reason but the token (Free tier: 403 or a tight rate limit)
    is skipped: X's duplicate check still prevents a second post with the same text."""
    what = "GET /2/users/:id/tweets"
    try:
        user_id = ctx.credentials.get("userId") or _me(ctx, api)
        response = api.call(
            "GET",
            f"/2/users/{user_id}/tweets",
            params={
                "max_results": LOOKUP_LIMIT,
                "exclude": "retweets,replies",
                "tweet.fields": "created_at,entities",
                "start_time": rfc3339(ctx.http.now() - LOOKUP_WINDOW),
            },
            what=what,
        )
    except _LookupFailed as exc:
        response = exc.response
    if response.status_code == 401:
        raise failure(ctx, response, what)
    if not response.is_success:
        log.warning(
            "%s",
            ctx.redact(
                f"verify: cannot read the account's posts ({failure(ctx, response, what)}); "
                "relying on X's duplicate check"
            ),
        )
        return None
    wanted = _canonical(text)
    for tweet in (json_body(response) or {}).get("data") or []:
        if isinstance(tweet, dict) and tweet_text(tweet) == wanted:
            return tweet
    return None


class _LookupFailed(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(response.status_code)
        self.response = response


def _me(ctx: Context, api: Api) -> str:
    what = "GET /2/users/me"
    response = api.call("GET", "/2/users/me", what=what)
    if not response.is_success:
        raise _LookupFailed(response)
    user_id = get_str(json_body(response), "data", "id")
    if not user_id:
        raise fail(ErrorClass.SERVER_ERROR, "GET /2/users/me returned no user id")
    return user_id

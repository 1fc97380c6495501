"""Mastodon: media via `POST /api/v2/media`, then `POST /api/v1/statuses` with an
`Idempotency-Key` header (Mastodon returns the original status for a repeated key
for one hour)."""

from __future__ import annotations

import html
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from ._base import Context, Options, get_str, json_body
from ._contract import AdapterError, ErrorClass, Result, fail
from ._media import download
from ._text import MASTODON_URL_LENGTH, Limit, compose, count_graphemes, count_mastodon, fit

log = logging.getLogger("herald_adapters")

PLATFORM = "mastodon"
DEFAULT_ENDPOINT = "https://mastodon.social"
# Mastodon's defaults, used when the instance doesn't say (GET /api/v2/instance).
STATUS_LIMIT = 500
MAX_MEDIA = 4
MAX_IMAGE_BYTES = 16 * 1024 * 1024
MAX_VIDEO_BYTES = 99 * 1024 * 1024
# Images are processed at once; video and audio are transcoded asynchronously.
MEDIA_PROCESSING_DEADLINE = 30.0
VIDEO_PROCESSING_DEADLINE = 300.0
LOOKUP_LIMIT = 40
LOOKUP_WINDOW = timedelta(hours=24)
_MENTION = re.compile(r"(?<![/\w])@(\w+)@[\w.-]+\w", re.UNICODE)


class MastodonOptions(Options):
    visibility: Literal["public", "unlisted", "private", "direct"] | None = None
    spoiler_text: str | None = Field(default=None, max_length=1500)
    sensitive: bool | None = None
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}$")


@dataclass(frozen=True)
class Instance:
    max_characters: int = STATUS_LIMIT
    url_length: int = MASTODON_URL_LENGTH
    max_media: int = MAX_MEDIA
    image_bytes: int = MAX_IMAGE_BYTES
    video_bytes: int = MAX_VIDEO_BYTES
    # Why the defaults are used: None when the instance answered; else the error that hid it.
    lookup_error: AdapterError | None = None


def _positive(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def read_instance(ctx: Context, base: str) -> Instance:
    """The instance's limits: `configuration` of GET /api/v2/instance (Mastodon 4.0+), or of
    /api/v1/instance (3.4+; `max_toot_chars` on some forks). Defaults when it has none."""
    data = None
    for path in ("/api/v2/instance", "/api/v1/instance"):
        try:
            response = ctx.http.request("GET", f"{base}{path}", what=f"GET {path}")
        except AdapterError as exc:
            log.warning("cannot read the instance's limits: %s", exc)
            return Instance(lookup_error=exc)
        if response.is_success:
            data = json_body(response)
            break
        if response.status_code not in (404, 410):
            error = ctx.failure(response, what=f"GET {path}", detail=get_str(json_body(response), "error"))
            log.warning("cannot read the instance's limits: %s", error)
            return Instance(lookup_error=error)
    if not isinstance(data, dict):
        return Instance()
    config = _section(data, "configuration")
    statuses, media = _section(config, "statuses"), _section(config, "media_attachments")
    return Instance(
        max_characters=_positive(statuses.get("max_characters"), _positive(data.get("max_toot_chars"), STATUS_LIMIT)),
        url_length=_positive(statuses.get("characters_reserved_per_url"), MASTODON_URL_LENGTH),
        max_media=_positive(statuses.get("max_media_attachments"), MAX_MEDIA),
        image_bytes=_positive(media.get("image_size_limit"), MAX_IMAGE_BYTES),
        video_bytes=_positive(media.get("video_size_limit"), MAX_VIDEO_BYTES),
    )


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _status_text(ctx: Context, instance: Instance, options: MastodonOptions) -> str:
    body, suffix = compose(ctx.payload.content, hashtags=True)
    spoiler = count_graphemes(options.spoiler_text or "")  # Mastodon counts it with the text
    limit = Limit(
        PLATFORM,
        instance.max_characters - spoiler,
        lambda t: count_mastodon(t, instance.url_length),
        f"characters (URLs count as {instance.url_length})" + (", besides the spoilerText" if spoiler else ""),
    )
    try:
        text, _ = fit(body, suffix, limit, truncate=ctx.payload.truncate)
    except AdapterError:
        if instance.lookup_error is not None:
            # Too long for the default limit, but the instance's own limit couldn't be read:
            # fail as that lookup did (retryable) rather than reject a text that may fit.
            raise instance.lookup_error from None
        raise
    return text


def publish(ctx: Context) -> Result:
    token = ctx.credentials.require("accessToken")
    options = ctx.options(MastodonOptions)
    base = ctx.endpoint(DEFAULT_ENDPOINT)
    auth = {"Authorization": f"Bearer {token}"}
    content = ctx.payload.content
    instance = read_instance(ctx, base)
    text = _status_text(ctx, instance, options)

    if ctx.verifying:
        existing = _find_existing(ctx, base, auth, text)
        if existing is not None:
            return ctx.published(
                post_id=get_str(existing, "id"),
                url=get_str(existing, "url") or get_str(existing, "uri"),
                verified=True,
                message="verify: found the status an earlier attempt posted",
            )

    media_ids = [_upload(ctx, base, auth, m, instance) for m in content.media[: instance.max_media]]
    status: dict = {"status": text}
    if media_ids:
        status["media_ids"] = media_ids
    if options.visibility:
        status["visibility"] = options.visibility
    if options.spoiler_text:
        status["spoiler_text"] = options.spoiler_text
    if options.sensitive is not None:
        status["sensitive"] = options.sensitive
    if options.language:
        status["language"] = options.language
    headers = {**auth, "Idempotency-Key": ctx.key}
    response = ctx.http.request(
        "POST", f"{base}/api/v1/statuses", json=status, headers=headers, what="POST /api/v1/statuses"
    )
    data = json_body(response)
    if not response.is_success:
        raise ctx.failure(response, what="POST /api/v1/statuses", detail=get_str(data, "error"))
    return ctx.published(
        response,
        post_id=get_str(data, "id"),
        url=get_str(data, "url") or get_str(data, "uri"),
        message="posted"
        + (
            " (verify: not found among recent statuses; re-sent with the same Idempotency-Key)" if ctx.verifying else ""
        ),
    )


def _get(ctx: Context, url: str, auth: dict, what: str, **kwargs):
    response = ctx.http.request("GET", url, headers=auth, what=what, **kwargs)
    data = json_body(response)
    if not response.is_success:
        raise ctx.failure(response, what=what, detail=get_str(data, "error"))
    return data


def _find_existing(ctx: Context, base: str, auth: dict, text: str) -> dict | None:
    """The account's recent statuses (last 24 h, newest 40) whose text equals ours."""
    account = _get(ctx, f"{base}/api/v1/accounts/verify_credentials", auth, "verify_credentials")
    account_id = get_str(account, "id")
    if not account_id:
        raise fail(ErrorClass.SERVER_ERROR, "verify_credentials returned no account id")
    statuses = _get(
        ctx,
        f"{base}/api/v1/accounts/{account_id}/statuses",
        auth,
        "account statuses",
        params={"limit": LOOKUP_LIMIT, "exclude_reblogs": "true", "exclude_replies": "true"},
    )
    wanted = _normalise(text)
    oldest = ctx.http.now() - LOOKUP_WINDOW
    for status in statuses if isinstance(statuses, list) else []:
        created = _parse_time(get_str(status, "created_at"))
        if created is not None and created < oldest:
            continue
        if _normalise(html_to_text(status.get("content") or "")) == wanted:
            return status
    return None


def _upload(ctx: Context, base: str, auth: dict, media, instance: Instance) -> str:
    def cap(content_type: str) -> int:
        return instance.video_bytes if content_type.startswith(("video/", "audio/")) else instance.image_bytes

    item = download(ctx, media, max_bytes=cap, platform=PLATFORM)
    what = "POST /api/v2/media"
    data_fields = {"description": item.alt_text} if item.alt_text else {}
    response = ctx.http.request(
        "POST",
        f"{base}/api/v2/media",
        headers=auth,
        what=what,
        files={"file": (item.filename, item.data, item.content_type)},
        data=data_fields,
        creates_post=False,
    )
    data = json_body(response)
    if not response.is_success:
        raise ctx.failure(response, what=what, detail=get_str(data, "error"))
    media_id = get_str(data, "id")
    if not media_id:
        raise fail(ErrorClass.SERVER_ERROR, "media upload returned no id")
    if response.status_code == 202:  # still processing: wait until GET /api/v1/media/:id is 200
        allowed = MEDIA_PROCESSING_DEADLINE if item.kind == "image" else VIDEO_PROCESSING_DEADLINE
        deadline = time.monotonic() + allowed
        delay = 0.2
        while True:
            check = ctx.http.request("GET", f"{base}/api/v1/media/{media_id}", headers=auth, what="GET /api/v1/media")
            if check.status_code == 200:
                break
            if check.status_code != 206:
                raise ctx.failure(check, what="GET /api/v1/media", detail=get_str(json_body(check), "error"))
            if time.monotonic() > deadline:
                raise fail(ErrorClass.SERVER_ERROR, f"media still processing after {allowed:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    return media_id


_BREAK = re.compile(r"<br\s*/?>|</p>\s*<p[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


def html_to_text(content: str) -> str:
    """A status's HTML `content` back to plain text."""
    return html.unescape(_TAG.sub("", _BREAK.sub("\n", content)))


def _normalise(text: str) -> str:
    """Whitespace collapsed, and @user@domain as @user: how a status's HTML shows a remote mention."""
    return " ".join(_MENTION.sub(lambda m: "@" + m.group(1), text).split())


def _parse_time(value: str | None) -> datetime | None:
    try:
        when = datetime.fromisoformat(value or "")
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)

"""Mastodon: media via `POST /api/v2/media`, then `POST /api/v1/statuses` with an
`Idempotency-Key` header (Mastodon returns the original status for a repeated key
for one hour)."""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime, timedelta

from ._base import Context, get_str, json_body
from ._contract import ErrorClass, Result, fail
from ._media import download
from ._text import Limit, compose, count_mastodon, fit

PLATFORM = "mastodon"
DEFAULT_ENDPOINT = "https://mastodon.social"
STATUS_LIMIT = 500
MAX_MEDIA = 4
MAX_MEDIA_BYTES = 16 * 1024 * 1024
MEDIA_PROCESSING_DEADLINE = 30.0
LOOKUP_LIMIT = 40
LOOKUP_WINDOW = timedelta(hours=24)


def publish(ctx: Context) -> Result:
    token = ctx.credentials.require("accessToken")
    base = ctx.endpoint(DEFAULT_ENDPOINT)
    auth = {"Authorization": f"Bearer {token}"}
    content = ctx.payload.content
    body, suffix = compose(content, hashtags=True)
    limit = Limit(PLATFORM, STATUS_LIMIT, count_mastodon, "characters (URLs count as 23)")
    text, _ = fit(body, suffix, limit, truncate=ctx.payload.truncate)

    if ctx.verifying:
        existing = _find_existing(ctx, base, auth, text)
        if existing is not None:
            return ctx.published(
                post_id=get_str(existing, "id"),
                url=get_str(existing, "url") or get_str(existing, "uri"),
                verified=True,
                message="verify: found the status an earlier attempt posted",
            )

    media_ids = [_upload(ctx, base, auth, m) for m in content.media[:MAX_MEDIA]]
    status: dict = {"status": text}
    if media_ids:
        status["media_ids"] = media_ids
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


def _upload(ctx: Context, base: str, auth: dict, media) -> str:
    item = download(ctx, media, max_bytes=MAX_MEDIA_BYTES, platform=PLATFORM)
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
        deadline = time.monotonic() + MEDIA_PROCESSING_DEADLINE
        delay = 0.2
        while True:
            check = ctx.http.request("GET", f"{base}/api/v1/media/{media_id}", headers=auth, what="GET /api/v1/media")
            if check.status_code == 200:
                break
            if check.status_code != 206:
                raise ctx.failure(check, what="GET /api/v1/media", detail=get_str(json_body(check), "error"))
            if time.monotonic() > deadline:
                raise fail(ErrorClass.SERVER_ERROR, "media still processing after 30 s")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    return media_id


_BREAK = re.compile(r"<br\s*/?>|</p>\s*<p[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


def html_to_text(content: str) -> str:
    """A status's HTML `content` back to plain text."""
    return html.unescape(_TAG.sub("", _BREAK.sub("\n", content)))


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _parse_time(value: str | None) -> datetime | None:
    try:
        when = datetime.fromisoformat(value or "")
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)

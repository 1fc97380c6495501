"""Bluesky (atproto): `com.atproto.server.createSession`, then
`com.atproto.repo.createRecord` for an `app.bsky.feed.post` with link and hashtag facets.

The record key is a TID derived from the idempotency key, so every attempt of one
publication writes the same record: `getRecord` finds an earlier attempt's post,
and a second createRecord cannot make a second post.
"""

from __future__ import annotations

import hashlib
from datetime import UTC

from ._base import Context, get_str, json_body
from ._contract import AdapterError, ErrorClass, Result, fail
from ._media import download
from ._text import Limit, compose, count_graphemes, find_hashtags, find_urls, fit, utf8_offsets

PLATFORM = "bluesky"
DEFAULT_ENDPOINT = "https://bsky.social"
COLLECTION = "app.bsky.feed.post"
TEXT_LIMIT = 300
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 1_000_000
MAX_TAG_GRAPHEMES = 64

_AUTH_ERRORS = {
    "AuthenticationRequired",
    "ExpiredToken",
    "InvalidToken",
    "AccountTakedown",
    "AccountDeactivated",
    "AuthFactorTokenRequired",
    "InvalidEmail",
}

# TIDs: 53 bits of microseconds since the Unix epoch and 10 bits of clock id,
# base32-sortable. Ours place the "time" within 2023 (a fixed, past window).
_S32 = "234567abcdefghijklmnopqrstuvwxyz"
_TID_BASE_US = 1_672_531_200 * 1_000_000  # 2023-01-01T00:00:00Z
_TID_WINDOW_US = 365 * 86_400 * 1_000_000


def record_key(idempotency_key: str) -> str:
    """A valid TID derived from the idempotency key: the same for every attempt."""
    n = int.from_bytes(hashlib.sha256(b"herald-rkey:" + idempotency_key.encode()).digest()[:8], "big")
    value = ((_TID_BASE_US + (n >> 10) % _TID_WINDOW_US) << 10) | (n & 0x3FF)
    out = []
    for _ in range(13):
        out.append(_S32[value & 31])
        value >>= 5
    return "".join(reversed(out))


def facets(text: str) -> list[dict]:
    out = []
    for start, end in find_urls(text):
        byte_start, byte_end = utf8_offsets(text, start, end)
        out.append(
            {
                "index": {"byteStart": byte_start, "byteEnd": byte_end},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": text[start:end]}],
            }
        )
    for start, end, tag in find_hashtags(text):
        if count_graphemes(tag) > MAX_TAG_GRAPHEMES or any(s <= start < e for s, e in find_urls(text)):
            continue
        byte_start, byte_end = utf8_offsets(text, start, end)
        out.append(
            {
                "index": {"byteStart": byte_start, "byteEnd": byte_end},
                "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}],
            }
        )
    return sorted(out, key=lambda f: f["index"]["byteStart"])


def _failure(ctx: Context, response, what: str) -> AdapterError:
    data = json_body(response)
    name, message = get_str(data, "error"), get_str(data, "message")
    error_class = None
    if name in _AUTH_ERRORS:
        error_class = ErrorClass.AUTH
    elif name == "RateLimitExceeded":
        error_class = ErrorClass.RATE_LIMITED
    detail = ": ".join(p for p in (name, message) if p) or None
    return ctx.failure(response, what=what, detail=detail, error_class=error_class)


def publish(ctx: Context) -> Result:
    identifier = ctx.credentials.require("identifier")
    password = ctx.credentials.require("appPassword")
    base = ctx.endpoint(DEFAULT_ENDPOINT)
    content = ctx.payload.content
    body, suffix = compose(content, hashtags=True)
    text, _ = fit(
        body, suffix, Limit(PLATFORM, TEXT_LIMIT, count_graphemes, "graphemes"), truncate=ctx.payload.truncate
    )

    what = "createSession"
    response = ctx.http.request(
        "POST",
        f"{base}/xrpc/com.atproto.server.createSession",
        json={"identifier": identifier, "password": password},
        what=what,
        creates_post=False,
    )
    if not response.is_success:
        raise _failure(ctx, response, what)
    session = json_body(response) or {}
    for token in ("accessJwt", "refreshJwt"):
        ctx.redact.add(get_str(session, token))
    access, did = get_str(session, "accessJwt"), get_str(session, "did")
    if not access or not did:
        raise fail(ErrorClass.SERVER_ERROR, "createSession returned no accessJwt or did")
    auth = {"Authorization": f"Bearer {access}"}
    rkey = record_key(ctx.key)
    # By DID: the handle may be the Secret's identifier, which is redacted everywhere.
    post_url = f"https://bsky.app/profile/{did}/post/{rkey}"

    if ctx.verifying:
        existing = _get_record(ctx, base, auth, did, rkey)
        if existing is not None:
            return ctx.published(
                post_id=get_str(existing, "uri"),
                url=post_url,
                verified=True,
                message="verify: found the record an earlier attempt created",
            )

    record: dict = {"$type": COLLECTION, "text": text, "createdAt": _now(ctx)}
    if found := facets(text):
        record["facets"] = found
    if embed := _embed(ctx, base, auth):
        record["embed"] = embed

    what = "createRecord"
    response = ctx.http.request(
        "POST",
        f"{base}/xrpc/com.atproto.repo.createRecord",
        headers=auth,
        what=what,
        json={"repo": did, "collection": COLLECTION, "rkey": rkey, "record": record},
    )
    if not response.is_success:
        error = _failure(ctx, response, what)
        if error.result.error_class in (ErrorClass.REJECTED, ErrorClass.SERVER_ERROR):
            # Refused because an earlier attempt already wrote this record key?
            try:
                existing = _get_record(ctx, base, auth, did, rkey)
            except AdapterError:
                existing = None
            if existing is not None:
                return ctx.published(
                    post_id=get_str(existing, "uri"),
                    url=post_url,
                    verified=True if ctx.verifying else None,
                    message="the record already existed: an earlier attempt created it",
                )
        raise error
    data = json_body(response)
    return ctx.published(
        response,
        post_id=get_str(data, "uri"),
        url=post_url,
        message="posted" + (" (verify: no earlier record found)" if ctx.verifying else ""),
    )


def _get_record(ctx: Context, base: str, auth: dict, did: str, rkey: str) -> dict | None:
    what = "getRecord"
    response = ctx.http.request(
        "GET",
        f"{base}/xrpc/com.atproto.repo.getRecord",
        headers=auth,
        what=what,
        params={"repo": did, "collection": COLLECTION, "rkey": rkey},
    )
    if response.is_success:
        return json_body(response) or {}
    data = json_body(response)
    if response.status_code in (400, 404) and (
        get_str(data, "error") == "RecordNotFound" or "Could not locate record" in (get_str(data, "message") or "")
    ):
        return None
    raise _failure(ctx, response, what)


def _embed(ctx: Context, base: str, auth: dict) -> dict | None:
    content = ctx.payload.content
    if content.media:
        images = []
        for media in content.media[:MAX_IMAGES]:
            item = download(ctx, media, max_bytes=MAX_IMAGE_BYTES, platform=PLATFORM)
            what = "uploadBlob"
            response = ctx.http.request(
                "POST",
                f"{base}/xrpc/com.atproto.repo.uploadBlob",
                what=what,
                content=item.data,
                headers={**auth, "Content-Type": item.content_type},
                creates_post=False,
            )
            if not response.is_success:
                raise _failure(ctx, response, what)
            blob = (json_body(response) or {}).get("blob")
            if not blob:
                raise fail(ErrorClass.SERVER_ERROR, "uploadBlob returned no blob")
            images.append({"alt": item.alt_text, "image": blob})
        return {"$type": "app.bsky.embed.images", "images": images}
    if content.link:
        return {
            "$type": "app.bsky.embed.external",
            "external": {"uri": content.link, "title": content.title or content.link, "description": ""},
        }
    return None


def _now(ctx: Context) -> str:
    now = ctx.http.now().astimezone(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"

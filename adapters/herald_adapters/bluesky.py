"""Bluesky (atproto): a session (saved between attempts and refreshed with
`com.atproto.server.refreshSession` when a token store is set up, see `_atproto_session`;
else `createSession` every attempt), then `com.atproto.repo.createRecord` for an
`app.bsky.feed.post` with link, mention and hashtag facets, on the account's own PDS (from
the session's DID document).

The record key is a TID derived from the idempotency key, so every attempt of one
publication writes the same record: `getRecord` finds an earlier attempt's post,
and a second createRecord cannot make a second post. A thread (option `thread`) is
one record per part, each with its own derived key.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import httpx
from pydantic import Field, field_validator

from ._atproto_session import SESSION_KEYS, RefreshRefused, Session, SessionManager, account_fingerprint
from ._base import Context, Options, get_str, json_body
from ._contract import AdapterError, ErrorClass, Result, fail
from ._http import TooLarge
from ._media import Downloaded, download, image_size, pillow_available, shrink_image
from ._text import Limit, compose, count_graphemes, find_hashtags, find_urls, fit, graphemes, utf8_offsets
from ._token_store import StoreError, TokenStore, open_store

log = logging.getLogger("herald_adapters")

PLATFORM = "bluesky"
DEFAULT_ENDPOINT = "https://bsky.social"
COLLECTION = "app.bsky.feed.post"
TEXT_LIMIT = 300
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 1_000_000
# Larger images are downloaded, then re-encoded below MAX_IMAGE_BYTES (needs Pillow).
MAX_SOURCE_IMAGE_BYTES = 50 * 1024 * 1024
MAX_VIDEO_BYTES = 100 * 1024 * 1024
MAX_TAG_GRAPHEMES = 64
MAX_THREAD_POSTS = 10
# Link cards: the page's <head> is enough; never wait long or read much for a card.
CARD_PAGE_BYTES = 512 * 1024
CARD_TIMEOUT_SECONDS = 5.0
CARD_DESCRIPTION_GRAPHEMES = 300

_AUTH_ERRORS = {
    "AuthenticationRequired",
    "ExpiredToken",
    "InvalidToken",
    "AccountTakedown",
    "AccountDeactivated",
    "AuthFactorTokenRequired",
    "InvalidEmail",
}
_LANG = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{1,8})*$")
# As the Bluesky app (RichText.detectFacets): @handle after start, whitespace or "(".
_MENTION = re.compile(r"(?:^|(?<=[\s(]))@([a-zA-Z0-9.-]+)\b")
_HANDLE = re.compile(r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")

# TIDs: 53 bits of microseconds since the Unix epoch and 10 bits of clock id,
# base32-sortable. Ours place the "time" within 2023 (a fixed, past window).
_S32 = "234567abcdefghijklmnopqrstuvwxyz"
_TID_BASE_US = 1_672_531_200 * 1_000_000  # 2023-01-01T00:00:00Z
_TID_WINDOW_US = 365 * 86_400 * 1_000_000


class BlueskyOptions(Options):
    langs: list[str] = Field(default_factory=list, max_length=3)
    thread: bool = False  # text over 300 graphemes becomes a thread of replies

    @field_validator("langs")
    @classmethod
    def _langs(cls, value: list[str]) -> list[str]:
        if any(not _LANG.match(lang) for lang in value):
            raise ValueError("must be BCP-47 language tags such as en or pt-BR")
        return value


def record_key(idempotency_key: str, part: int = 0) -> str:
    """A valid TID derived from the idempotency key (and the part of a thread)."""
    seed = idempotency_key if part == 0 else f"{idempotency_key}:{part}"
    n = int.from_bytes(hashlib.sha256(b"herald-rkey:" + seed.encode()).digest()[:8], "big")
    value = ((_TID_BASE_US + (n >> 10) % _TID_WINDOW_US) << 10) | (n & 0x3FF)
    out = []
    for _ in range(13):
        out.append(_S32[value & 31])
        value >>= 5
    return "".join(reversed(out))


def _facet(text: str, start: int, end: int, feature: dict) -> dict:
    byte_start, byte_end = utf8_offsets(text, start, end)
    return {"index": {"byteStart": byte_start, "byteEnd": byte_end}, "features": [feature]}


def find_mentions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, handle) of @handle mentions; the span includes '@'."""
    out = []
    for match in _MENTION.finditer(text):
        handle = match.group(1).rstrip(".-")
        if _HANDLE.match(handle) and not handle.endswith((".test", ".local")):
            start = match.start(1) - 1
            out.append((start, start + 1 + len(handle), handle))
    return out


def facets(text: str, dids: dict[str, str] | None = None) -> list[dict]:
    """Link, mention (for handles in `dids`) and hashtag facets, never overlapping."""
    spans: list[tuple[int, int, dict]] = []
    for start, end in find_urls(text):
        spans.append((start, end, {"$type": "app.bsky.richtext.facet#link", "uri": text[start:end]}))
    for start, end, handle in find_mentions(text):
        did = (dids or {}).get(handle.lower())
        if did:
            spans.append((start, end, {"$type": "app.bsky.richtext.facet#mention", "did": did}))
    for start, end, tag in find_hashtags(text):
        if count_graphemes(tag) <= MAX_TAG_GRAPHEMES and len(tag.encode()) <= 640:
            spans.append((start, end, {"$type": "app.bsky.richtext.facet#tag", "tag": tag}))
    kept: list[tuple[int, int, dict]] = []
    for start, end, feature in spans:  # links first, then mentions, then tags
        if all(end <= s or start >= e for s, e, _ in kept):
            kept.append((start, end, feature))
    return [_facet(text, s, e, f) for s, e, f in sorted(kept, key=lambda k: k[0])]


def split_thread(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Parts of at most `limit` graphemes, cut at paragraph, line, sentence or word ends."""
    parts = []
    rest = text.strip()
    while count_graphemes(rest) > limit:
        clusters = graphemes(rest)
        head = "".join(clusters[: limit + 1])
        cut = -1
        for separator in ("\n\n", "\n", ". ", "! ", "? ", " "):
            position = head.rfind(separator, 0, len(head))
            if position > len(head) // 3:
                cut = position + (1 if separator in (". ", "! ", "? ") else 0)
                break
        if cut <= 0:
            cut = len("".join(clusters[:limit]))
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].strip()
    if rest:
        parts.append(rest)
    return parts


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


def pds_endpoint(session: dict) -> str | None:
    """The `#atproto_pds` service endpoint of the session's DID document."""
    did_doc = session.get("didDoc")
    services = did_doc.get("service") if isinstance(did_doc, dict) else None
    for service in services if isinstance(services, list) else []:
        if (
            isinstance(service, dict)
            and str(service.get("id", "")).endswith("#atproto_pds")
            and service.get("type") == "AtprotoPersonalDataServer"
        ):
            endpoint = service.get("serviceEndpoint")
            if isinstance(endpoint, str) and endpoint.startswith(("https://", "http://")):
                return endpoint.rstrip("/")
    return None


def _session(ctx: Context, data: Any, pds: str, what: str) -> Session:
    data = data if isinstance(data, dict) else {}
    for token in ("accessJwt", "refreshJwt"):
        ctx.redact.add(get_str(data, token))
    access, did = get_str(data, "accessJwt"), get_str(data, "did")
    if not access or not did:
        raise fail(ErrorClass.SERVER_ERROR, f"{what} returned no accessJwt or did")
    return Session(did=did, pds=pds_endpoint(data) or pds, access_jwt=access, refresh_jwt=get_str(data, "refreshJwt"))


def _login(ctx: Context, base: str) -> Session:
    what = "createSession"
    response = ctx.http.request(
        "POST",
        f"{base}/xrpc/com.atproto.server.createSession",
        json={"identifier": ctx.credentials.require("identifier"), "password": ctx.credentials.require("appPassword")},
        what=what,
        creates_post=False,
    )
    if not response.is_success:
        raise _failure(ctx, response, what)
    return _session(ctx, json_body(response), base, what)


def _refresh(ctx: Context, saved: Session) -> Session:
    """`refreshSession` with the refresh JWT, on the account's PDS (which rotates it)."""
    what = "refreshSession"
    response = ctx.http.request(
        "POST",
        f"{saved.pds}/xrpc/com.atproto.server.refreshSession",
        headers={"Authorization": f"Bearer {saved.refresh_jwt}"},
        what=what,
        creates_post=False,
    )
    if response.is_success:
        return _session(ctx, json_body(response), saved.pds, what)
    if response.status_code in (400, 401):  # ExpiredToken ("Token has been revoked"), InvalidToken
        data = json_body(response)
        detail = ": ".join(p for p in (get_str(data, "error"), get_str(data, "message")) if p)
        raise RefreshRefused(ctx.redact(detail or f"HTTP {response.status_code}"))
    raise _failure(ctx, response, what)


def _sessions(ctx: Context, base: str) -> SessionManager:
    """The session manager over the adapter's token store (none: every attempt logs in)."""
    account = account_fingerprint(base, ctx.credentials.require("identifier"), ctx.credentials.require("appPassword"))
    timeout = ctx.settings.timeout_seconds
    store: TokenStore | None
    try:
        store = open_store(ctx.credentials, settings=ctx.settings, redact=ctx.redact, token_keys=SESSION_KEYS)
    except StoreError as exc:
        log.warning("bluesky: no session store (%s); logging in without saving the session", exc)
        store = None
    return SessionManager(
        store,
        account=account,
        login=lambda: _login(ctx, base),
        refresh=lambda saved: _refresh(ctx, saved),
        redact=ctx.redact,
        clock=ctx.http.now,
        lease_seconds=max(30.0, 3 * timeout),
        margin_seconds=max(900.0, 6 * timeout),
    )


def _token_refused(response: httpx.Response) -> str | None:
    """Why the PDS refused the access JWT (ExpiredToken and InvalidToken are 400s), if it did."""
    name = get_str(json_body(response), "error")
    if response.status_code == 401 or (response.status_code == 400 and name in ("ExpiredToken", "InvalidToken")):
        return name or f"HTTP {response.status_code}"
    return None


class Xrpc:
    """Calls on the account's PDS with the session's access JWT. When the PDS refuses the
    token of a saved session, the session is renewed (refreshed, or a new login) and the call
    sent once more: a call refused for its token was not processed."""

    def __init__(self, ctx: Context, sessions: SessionManager):
        self.ctx, self.sessions = ctx, sessions
        self.session = sessions.session()

    def call(self, method: str, nsid: str, *, what: str, headers: dict | None = None, **kwargs: Any) -> httpx.Response:
        response = self._send(method, nsid, what, headers, kwargs)
        why = None if self.session.fresh else _token_refused(response)
        if why is None:
            return response
        log.info("%s: the PDS refused the saved session (%s); renewing it", what, why)
        self.session = self.sessions.after_rejection(self.session)
        return self._send(method, nsid, what, headers, kwargs)

    def _send(self, method: str, nsid: str, what: str, headers: dict | None, kwargs: dict) -> httpx.Response:
        return self.ctx.http.request(
            method,
            f"{self.session.pds}/xrpc/{nsid}",
            headers={**self.session.auth, **(headers or {})},
            what=what,
            **kwargs,
        )


def _parts(ctx: Context, options: BlueskyOptions) -> list[str]:
    body, suffix = compose(ctx.payload.content, hashtags=True)
    if options.thread and count_graphemes(body + suffix) > TEXT_LIMIT:
        parts = split_thread(body + suffix)
        if len(parts) > MAX_THREAD_POSTS:
            if not ctx.payload.truncate:
                raise fail(
                    ErrorClass.REJECTED,
                    f"text needs {len(parts)} posts; bluesky threads are at most {MAX_THREAD_POSTS} posts. "
                    "Shorten it, or set truncate: true on the publication",
                )
            last, _ = fit(
                parts[MAX_THREAD_POSTS - 1],
                "",
                Limit(PLATFORM, TEXT_LIMIT - 1, count_graphemes, "graphemes"),
                truncate=True,
            )
            parts = [*parts[: MAX_THREAD_POSTS - 1], last.rstrip("…").rstrip() + "…"]
        return parts
    limit = Limit(PLATFORM, TEXT_LIMIT, count_graphemes, "graphemes")
    text, _ = fit(body, suffix, limit, truncate=ctx.payload.truncate)
    return [text]


def publish(ctx: Context) -> Result:
    options = ctx.options(BlueskyOptions)
    parts = _parts(ctx, options)
    sessions = _sessions(ctx, ctx.endpoint(DEFAULT_ENDPOINT))
    try:
        return _publish(ctx, Xrpc(ctx, sessions), parts, options)
    finally:
        close = getattr(sessions.store, "close", None)
        if close is not None:
            close()


def _publish(ctx: Context, api: Xrpc, parts: list[str], options: BlueskyOptions) -> Result:
    refs: list[dict] = []
    found = 0
    created = None  # the last createRecord response: its rate-limit headers go in the result
    for index, text in enumerate(parts):

        def build(index: int = index, text: str = text, refs: list[dict] = refs) -> dict:
            record: dict[str, Any] = {"$type": COLLECTION, "text": text, "createdAt": _now(ctx, index)}
            if found_facets := facets(text, _resolve_mentions(ctx, api, text)):
                record["facets"] = found_facets
            if options.langs:
                record["langs"] = options.langs
            if refs:
                record["reply"] = {"root": refs[0], "parent": refs[-1]}
            if index == 0 and (embed := _embed(ctx, api)):
                record["embed"] = embed
            return record

        ref, response = _ensure_record(ctx, api, record_key(ctx.key, index), build)
        if response is None:
            found += 1
        else:
            created = response
        refs.append(ref)
    post_url = f"https://bsky.app/profile/{api.session.did}/post/{record_key(ctx.key)}"
    thread = f" as a thread of {len(parts)} posts" if len(parts) > 1 else ""
    if found == len(parts):
        if ctx.verifying:
            message = "verify: found the record an earlier attempt created"
        else:
            message = "the record already existed: an earlier attempt created it"
        return ctx.published(
            post_id=refs[0]["uri"], url=post_url, verified=True if ctx.verifying else None, message=message + thread
        )
    return ctx.published(
        created,
        post_id=refs[0]["uri"],
        url=post_url,
        message="posted" + thread + (" (verify: no earlier record found)" if ctx.verifying and not found else ""),
    )


def _ensure_record(ctx: Context, api: Xrpc, rkey: str, build) -> tuple[dict, httpx.Response | None]:
    """The record under `rkey`: an earlier attempt's (verify mode looks first; a refused
    create looks after), or a new one. Returns ({uri, cid}, the createRecord response, or
    None when the record already existed)."""
    if ctx.verifying:
        existing = _get_record(ctx, api, rkey)
        if existing is not None:
            return _ref(existing), None
    what = "createRecord"
    response = api.call(
        "POST",
        "com.atproto.repo.createRecord",
        what=what,
        json={"repo": api.session.did, "collection": COLLECTION, "rkey": rkey, "record": build()},
    )
    if not response.is_success:
        error = _failure(ctx, response, what)
        if error.result.error_class in (ErrorClass.REJECTED, ErrorClass.SERVER_ERROR):
            # Refused because an earlier attempt already wrote this record key?
            try:
                existing = _get_record(ctx, api, rkey)
            except AdapterError:
                existing = None
            if existing is not None:
                return _ref(existing), None
        raise error
    return _ref(json_body(response) or {}), response


def _ref(data: dict) -> dict:
    return {"uri": get_str(data, "uri") or "", "cid": get_str(data, "cid") or ""}


def _get_record(ctx: Context, api: Xrpc, rkey: str) -> dict | None:
    what = "getRecord"
    response = api.call(
        "GET",
        "com.atproto.repo.getRecord",
        what=what,
        params={"repo": api.session.did, "collection": COLLECTION, "rkey": rkey},
    )
    if response.is_success:
        return json_body(response) or {}
    data = json_body(response)
    if response.status_code in (400, 404) and (
        get_str(data, "error") == "RecordNotFound" or "Could not locate record" in (get_str(data, "message") or "")
    ):
        return None
    raise _failure(ctx, response, what)


def _resolve_mentions(ctx: Context, api: Xrpc, text: str) -> dict[str, str]:
    """handle -> DID for the text's @mentions (com.atproto.identity.resolveHandle). A handle
    that doesn't resolve stays plain text, as in the Bluesky app."""
    dids: dict[str, str] = {}
    for _, _, handle in find_mentions(text):
        if handle.lower() in dids:
            continue
        try:
            response = api.call(
                "GET",
                "com.atproto.identity.resolveHandle",
                params={"handle": handle},
                what="resolveHandle",
            )
        except AdapterError as exc:
            log.warning("cannot resolve @%s: %s", handle, exc)
            continue
        did = get_str(json_body(response), "did") if response.is_success else None
        if did and did.startswith("did:"):
            dids[handle.lower()] = did
        else:
            log.info("@%s does not resolve (HTTP %s); no mention facet", handle, response.status_code)
    return dids


def _upload_blob(ctx: Context, api: Xrpc, data: bytes, content_type: str) -> dict:
    what = "uploadBlob"
    response = api.call(
        "POST",
        "com.atproto.repo.uploadBlob",
        what=what,
        content=data,
        headers={"Content-Type": content_type},
        creates_post=False,
    )
    if not response.is_success:
        raise _failure(ctx, response, what)
    blob = (json_body(response) or {}).get("blob")
    if not blob:
        raise fail(ErrorClass.SERVER_ERROR, "uploadBlob returned no blob")
    return blob


def _aspect_ratio(data: bytes) -> dict | None:
    size = image_size(data)
    if not size or size[0] <= 0 or size[1] <= 0:
        return None
    return {"width": size[0], "height": size[1]}


def _fit_image(ctx: Context, item: Downloaded) -> tuple[bytes, str]:
    if len(item.data) <= MAX_IMAGE_BYTES:
        return item.data, item.content_type
    shrunk = shrink_image(item.data, MAX_IMAGE_BYTES)
    if shrunk is None:
        why = "it could not be re-encoded smaller" if pillow_available() else "install Pillow to have it re-encoded"
        raise fail(
            ErrorClass.REJECTED,
            ctx.redact(
                f"image {item.filename} is {len(item.data)} bytes; bluesky allows at most {MAX_IMAGE_BYTES} ({why})"
            ),
        )
    return shrunk, "image/jpeg"


def _embed(ctx: Context, api: Xrpc) -> dict | None:
    content = ctx.payload.content
    if content.media:

        def cap(content_type: str) -> int:
            return MAX_VIDEO_BYTES if content_type.startswith("video/") else MAX_SOURCE_IMAGE_BYTES

        items = [download(ctx, m, max_bytes=cap, platform=PLATFORM) for m in content.media[:MAX_IMAGES]]
        videos = [i for i in items if i.kind == "video"]
        if videos:
            if len(items) > 1:
                log.warning("a bluesky post holds one video and nothing else; the other media are not sent")
            video = videos[0]
            embed: dict[str, Any] = {
                "$type": "app.bsky.embed.video",
                "video": _upload_blob(ctx, api, video.data, video.content_type),
            }
            if video.alt_text:
                embed["alt"] = video.alt_text
            return embed
        images = []
        for item in items:
            data, content_type = _fit_image(ctx, item)
            image: dict[str, Any] = {"alt": item.alt_text, "image": _upload_blob(ctx, api, data, content_type)}
            if ratio := _aspect_ratio(data):
                image["aspectRatio"] = ratio
            images.append(image)
        return {"$type": "app.bsky.embed.images", "images": images}
    if content.link:
        return _link_card(ctx, api, content.link, content.title)
    return None


class _HeadParser(HTMLParser):
    """og:/twitter: meta tags, the description and <title>, from the page's head."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): (v or "") for k, v in attrs}
        if tag == "meta":
            key = (values.get("property") or values.get("name") or "").strip().lower()
            if key and key not in self.meta and values.get("content", "").strip():
                self.meta[key] = values["content"].strip()
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title and len(self.title) < 1000:
            self.title += data


def _link_card(ctx: Context, api: Xrpc, link: str, title: str | None) -> dict:
    """app.bsky.embed.external, with the page's og: title, description and image when the
    page can be read quickly; a card with the URL and title alone otherwise."""
    external: dict[str, Any] = {"uri": link, "title": title or "", "description": ""}
    timeout = min(CARD_TIMEOUT_SECONDS, ctx.settings.timeout_seconds)
    try:
        page = ctx.http.fetch(
            link,
            what="link card page",
            max_bytes=CARD_PAGE_BYTES,
            partial=True,
            timeout=timeout,
            headers={"Accept": "text/html,application/xhtml+xml"},
        )
    except AdapterError as exc:
        log.warning("link card without preview: %s", exc)
        page = None
    if page is not None and page.is_success and page.content_type in ("text/html", "application/xhtml+xml"):
        parser = _HeadParser()
        charset = page.headers.get("content-type", "").partition("charset=")[2].strip().strip('"') or "utf-8"
        try:
            parser.feed(page.content.decode(charset, errors="replace"))
        except LookupError:
            parser.feed(page.content.decode("utf-8", errors="replace"))
        meta = parser.meta
        external["title"] = title or meta.get("og:title") or meta.get("twitter:title") or " ".join(parser.title.split())
        description = meta.get("og:description") or meta.get("twitter:description") or meta.get("description") or ""
        external["description"] = "".join(graphemes(" ".join(description.split()))[:CARD_DESCRIPTION_GRAPHEMES])
        image_url = meta.get("og:image:secure_url") or meta.get("og:image") or meta.get("twitter:image")
        if image_url:
            thumb = _card_thumb(ctx, api, urljoin(page.url, image_url), timeout)
            if thumb is not None:
                external["thumb"] = thumb
    if not external["title"]:
        external["title"] = link
    return {"$type": "app.bsky.embed.external", "external": external}


def _card_thumb(ctx: Context, api: Xrpc, url: str, timeout: float) -> dict | None:
    try:
        image = ctx.http.fetch(url, what="link card image", max_bytes=MAX_SOURCE_IMAGE_BYTES, timeout=timeout)
    except (AdapterError, TooLarge) as exc:
        log.warning("link card without thumbnail: %s", exc)
        return None
    if not image.is_success or not image.content_type.startswith("image/"):
        log.warning("link card without thumbnail: HTTP %s %s", image.status, image.content_type)
        return None
    data, content_type = image.content, image.content_type
    if len(data) > MAX_IMAGE_BYTES:
        shrunk = shrink_image(data, MAX_IMAGE_BYTES)
        if shrunk is None:
            log.warning("link card without thumbnail: the image is %d bytes", len(data))
            return None
        data, content_type = shrunk, "image/jpeg"
    try:
        return _upload_blob(ctx, api, data, content_type)
    except AdapterError as exc:
        log.warning("link card without thumbnail: %s", exc)
        return None


def _now(ctx: Context, offset_ms: int = 0) -> str:
    now = ctx.http.now().astimezone(UTC) + timedelta(milliseconds=offset_ms)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"

"""Discord: Execute Webhook (`POST <webhookUrl>?wait=true`), which returns the message.

Media are uploaded as attachments (multipart `payload_json` + `files[n]`, alt text as the
attachment's `description`), or sent as image embeds by URL with the option embedMedia.
Forum and media channels need a thread: the option threadName creates one per post,
threadId posts into an existing one.

`send_webhook` is the execute-webhook call: shared with Herald's own alerts.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from pydantic import Field, field_validator

from ._base import Context, Options, get_str, json_body
from ._contract import AdapterError, ErrorClass, Result
from ._http import Http, Refused
from ._media import download
from ._text import Limit, compose, count_code_points, fit

log = logging.getLogger("herald_adapters")

PLATFORM = "discord"
CONTENT_LIMIT = 2000
MAX_EMBEDS = 10
MAX_ATTACHMENTS = 10
# Discord's upload limit for a server without boosts.
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_DESCRIPTION = 1024
SUPPRESS_NOTIFICATIONS = 1 << 12
_SNOWFLAKE = re.compile(r"^\d{15,21}$")

# Codes (JSON `code`) for "this webhook may not post here": the destination, not the URL.
_DESTINATION_CODES = {50001, 50013}  # Missing Access, Missing Permissions
_NEEDS_THREAD = 220001  # forum/media channel without thread_name or thread_id


class DiscordOptions(Options):
    thread_name: str | None = Field(default=None, min_length=1, max_length=100)
    thread_id: str | None = None
    applied_tags: list[str] = Field(default_factory=list, max_length=5)
    username: str | None = Field(default=None, min_length=1, max_length=80)
    avatar_url: str | None = None
    silent: bool = False
    embed_media: bool = False

    @field_validator("thread_id")
    @classmethod
    def _snowflake(cls, value: str | None) -> str | None:
        if value is not None and not _SNOWFLAKE.match(value):
            raise ValueError("must be a thread id (a snowflake)")
        return value

    @field_validator("applied_tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        if any(not _SNOWFLAKE.match(t) for t in value):
            raise ValueError("must be forum tag ids (snowflakes)")
        return value

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and re.search(r"clyde|discord", value, re.IGNORECASE):
            raise ValueError("may not contain 'clyde' or 'discord'")
        return value

    @field_validator("avatar_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value


def execute_url(webhook_url: str, thread_id: str | None = None) -> str:
    parts = urlsplit(webhook_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("wait", "thread_id")] + [("wait", "true")]
    if thread_id:
        query.append(("thread_id", thread_id))
    return urlunsplit(parts._replace(query=urlencode(query)))


def build_message(ctx: Context, options: DiscordOptions, text: str) -> tuple[dict[str, Any], list[tuple]]:
    """The execute-webhook body, and the files to send with it (multipart) if any."""
    content = ctx.payload.content
    message: dict[str, Any] = {"content": text, "allowed_mentions": {"parse": []}}
    if options.username:
        message["username"] = options.username
    if options.avatar_url:
        message["avatar_url"] = options.avatar_url
    if options.thread_name:
        message["thread_name"] = options.thread_name
    if options.applied_tags:
        message["applied_tags"] = options.applied_tags
    if options.silent:
        message["flags"] = SUPPRESS_NOTIFICATIONS
    files: list[tuple] = []
    if content.media and options.embed_media:
        message["embeds"] = [{"image": {"url": m.url}} for m in content.media[:MAX_EMBEDS]]
    elif content.media:
        attachments = []
        for index, media in enumerate(content.media[:MAX_ATTACHMENTS]):
            item = download(ctx, media, max_bytes=MAX_ATTACHMENT_BYTES, platform=PLATFORM)
            attachment: dict[str, Any] = {"id": index, "filename": item.filename}
            if item.alt_text:
                attachment["description"] = item.alt_text[:MAX_DESCRIPTION]
            attachments.append(attachment)
            files.append((f"files[{index}]", (item.filename, item.data, item.content_type)))
        message["attachments"] = attachments
    return message, files


def publish(ctx: Context) -> Result:
    webhook_url = ctx.credentials.require_url("webhookUrl")
    # The token is the last path segment; register it alone too, in case it shows up by itself.
    ctx.redact.add(urlsplit(webhook_url).path.rstrip("/").rsplit("/", 1)[-1])
    options = ctx.options(DiscordOptions)
    body, suffix = compose(ctx.payload.content, hashtags=False)
    text, _ = fit(
        body, suffix, Limit(PLATFORM, CONTENT_LIMIT, count_code_points, "characters"), truncate=ctx.payload.truncate
    )
    message, files = build_message(ctx, options, text)
    # Verify mode can't look anything up: a webhook can fetch a message only by its id,
    # which the earlier attempt never learnt. So this posts again (see docs/adapters.md).
    try:
        response = send_webhook(ctx.http, webhook_url, message, thread_id=options.thread_id, files=files)
    except Refused as refused:
        raise refused.as_failure(ctx) from None
    data = json_body(response)
    seconds = ctx.http.last_seconds  # the post's, not the link lookup's
    rate_limit = ctx.rate_limit(response)
    return ctx.published(
        rate_limit=rate_limit,
        response_seconds=seconds,
        post_id=get_str(data, "id"),
        url=_message_url(ctx, webhook_url, data),
        message="posted via execute webhook"
        + (" (verify: Discord offers no lookup; posted again)" if ctx.verifying else ""),
    )


def send_webhook(
    http: Http,
    webhook_url: str,
    message: dict[str, Any],
    *,
    thread_id: str | None = None,
    files: list[tuple] | None = None,
    what: str = "Discord execute webhook",
) -> httpx.Response:
    """Execute the webhook with one message (JSON, or multipart with `files`); the response
    (the message, `wait=true`) on success, else raises Refused with Discord's error code."""
    url = execute_url(webhook_url, thread_id)
    if files:
        form = {"payload_json": json.dumps(message, ensure_ascii=False)}
        response = http.request("POST", url, data=form, files=files, what=what)
    else:
        response = http.request("POST", url, json=message, what=what)
    if not response.is_success:
        raise _refusal(response, json_body(response), what)
    return response


def _refusal(response: httpx.Response, data: Any, what: str) -> Refused:
    detail = get_str(data, "message")
    code = data.get("code") if isinstance(data, dict) else None
    error_class = None
    retry_after = None
    if response.status_code == 429:
        retry_after = _seconds(data.get("retry_after") if isinstance(data, dict) else None)
        if response.headers.get("Retry-After"):
            retry_after = None  # the header wins (ctx.failure reads it)
    elif code in _DESTINATION_CODES:
        error_class = ErrorClass.DESTINATION_FORBIDDEN
    elif response.status_code == 404 and code == 10003:
        error_class = ErrorClass.REJECTED  # Unknown Channel: the threadId option names no thread
    elif response.status_code == 404:
        error_class = ErrorClass.AUTH  # 10015 Unknown Webhook: the Secret's URL is wrong or deleted
    if code not in (None, 0) and detail:
        detail = f"{detail} (code {code})"
    if code == _NEEDS_THREAD:
        detail = f"{detail}: the webhook's channel is a forum or media channel; set the option threadName or threadId"
    elif error_class is ErrorClass.DESTINATION_FORBIDDEN:
        detail = f"{detail}: the webhook may not post in its channel or thread; check the channel's permissions"
    return Refused(response, what=what, detail=detail, error_class=error_class, retry_after=retry_after)


def _message_url(ctx: Context, webhook_url: str, data: Any) -> str | None:
    """https://discord.com/channels/<guild>/<channel or thread>/<message>. Messages returned
    by REST carry no guild_id, so it comes from Get Webhook with Token (no auth needed)."""
    message_id, channel_id = get_str(data, "id"), get_str(data, "channel_id")
    if not message_id or not channel_id:
        return None
    guild_id = get_str(data, "guild_id")
    if not guild_id:
        try:
            response = ctx.http.request("GET", webhook_url, what="Discord get webhook")
        except AdapterError as exc:  # the post is made; never fail it for its link
            log.warning("cannot read the webhook for the post's link: %s", exc)
            return None
        if not response.is_success:
            log.warning("cannot read the webhook for the post's link: HTTP %s", response.status_code)
            return None
        guild_id = get_str(json_body(response), "guild_id")
    if not guild_id:
        return None
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def _seconds(value: object) -> float | None:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None

"""Slack: an incoming webhook (Secret key `webhookUrl`), or `chat.postMessage`
with a bot token (Secret keys `botToken` and `channel`).

Most Web API errors arrive as HTTP 200 with `{"ok": false, "error": "<code>"}`;
incoming webhooks answer with a plain-text error code and an HTTP status.

Text is escaped as Slack asks (`&`, `<`, `>`), so a publication can't mention
`<!channel>` or make links Slack-style; Slack still links bare URLs. Media are
uploaded with files.getUploadURLExternal + files.completeUploadExternal (bot token).

`send_webhook` posts one message to an incoming webhook: shared with Herald's own alerts.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx
from pydantic import Field, field_validator

from ._base import Context, Options, body_snippet, get_str, json_body
from ._contract import AdapterError, ErrorClass, Result, fail
from ._http import Http, Refused
from ._media import download
from ._text import Limit, compose, fit

log = logging.getLogger("herald_adapters")

PLATFORM = "slack"
DEFAULT_ENDPOINT = "https://slack.com/api"
# Slack truncates longer text silently; we refuse instead.
TEXT_LIMIT = 40_000
METADATA_EVENT = "herald_publication"
# conversations.history/replies: non-Marketplace apps get at most 15 messages a call (1 call a minute).
HISTORY_LIMIT = 15
MAX_BLOCKS = 50
MAX_FILES = 10
MAX_FILE_BYTES = 100 * 1024 * 1024
JSON_UTF8 = "application/json; charset=utf-8"

_AUTH_ERRORS = {
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "not_allowed_token_type",
    "ekm_access_denied",
    "access_denied",
    "team_access_not_granted",
    "invalid_token",
    "no_service",
    "no_service_id",
    "no_team",
    "team_disabled",
    "action_prohibited",
}
# The token is fine; the bot may not post in (or read) this channel: invite it, or fix the channel.
_DESTINATION_ERRORS = {
    "not_in_channel",
    "channel_not_found",
    "restricted_action",
    "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel",
}
# "It's possible some aspect of the operation succeeded before the error was raised."
_MAYBE_DONE_ERRORS = {"internal_error", "fatal_error"}
# Slack is temporarily unavailable (or mid-migration to an Enterprise org): retry later.
_SERVER_ERRORS = {"service_unavailable", "request_timeout", "rollup_error", "team_added_to_org", "org_login_required"}
_RATE_LIMITED = {"ratelimited", "rate_limited", "message_limit_exceeded"}
_TS = re.compile(r"^\d{1,12}\.\d{1,9}$")


class SlackOptions(Options):
    # The channel id, instead of the Secret's `channel`: then it (and the permalink) is not redacted.
    channel: str | None = Field(default=None, pattern=r"^[CGD][A-Z0-9]{6,}$")
    thread_ts: str | None = None  # reply in this message's thread
    blocks: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_BLOCKS)

    @field_validator("thread_ts")
    @classmethod
    def _ts(cls, value: str | None) -> str | None:
        if value is not None and not _TS.match(value):
            raise ValueError("must be a message ts such as 1700000000.000100")
        return value

    @field_validator("blocks")
    @classmethod
    def _blocks(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for block in value or []:
            if not isinstance(block.get("type"), str):
                raise ValueError("every block needs a string type (Block Kit)")
        return value


def classify_slack_error(code: str, *, creates_post: bool = True) -> ErrorClass:
    if code in _RATE_LIMITED:
        return ErrorClass.RATE_LIMITED
    if code in _AUTH_ERRORS:
        return ErrorClass.AUTH
    if code in _DESTINATION_ERRORS:
        return ErrorClass.DESTINATION_FORBIDDEN
    if code in _MAYBE_DONE_ERRORS:
        return ErrorClass.UNKNOWN_OUTCOME if creates_post else ErrorClass.SERVER_ERROR
    if code in _SERVER_ERRORS:
        return ErrorClass.SERVER_ERROR
    # is_archived, msg_too_long, no_text, invalid_blocks, ...
    return ErrorClass.REJECTED


def escape(text: str) -> str:
    """Slack's three control characters, as its formatting reference asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _text(ctx: Context) -> str:
    body, suffix = compose(ctx.payload.content, hashtags=False)
    limit = Limit(PLATFORM, TEXT_LIMIT, lambda t: len(escape(t)), "characters (after escaping &, <, >)")
    text, _ = fit(body, suffix, limit, truncate=ctx.payload.truncate)
    return escape(text)


def _json(document: dict) -> dict:
    return {
        "content": json.dumps(document, ensure_ascii=False).encode("utf-8"),
        "headers": {"Content-Type": JSON_UTF8},
    }


def publish(ctx: Context) -> Result:
    options = ctx.options(SlackOptions)
    if ctx.credentials.get("webhookUrl"):
        return _publish_webhook(ctx, ctx.credentials.require_url("webhookUrl"), options)
    channel = options.channel or ctx.credentials.require("channel")
    return _publish_bot(ctx, ctx.credentials.require("botToken"), channel, options)


def _publish_webhook(ctx: Context, url: str, options: SlackOptions) -> Result:
    ctx.redact.add(url.rstrip("/").rsplit("/", 1)[-1])  # the URL's secret part, on its own
    message: dict[str, Any] = {"text": _text(ctx)}
    if options.blocks:
        message["blocks"] = options.blocks
    if options.thread_ts:
        message["thread_ts"] = options.thread_ts
    try:
        response = send_webhook(ctx.http, url, message)
    except Refused as refused:
        raise refused.as_failure(ctx) from None
    # Incoming webhooks answer "ok" and no message id, and cannot read the channel.
    note = " (verify: incoming webhooks offer no lookup; posted again)" if ctx.verifying else ""
    media = " (media are not sent: incoming webhooks cannot upload files)" if ctx.payload.content.media else ""
    return ctx.published(response, message="posted via incoming webhook; Slack returns no message id" + media + note)


def send_webhook(
    http: Http, url: str, message: dict[str, Any], *, what: str = "Slack incoming webhook"
) -> httpx.Response:
    """POST one message (`text`, and `blocks`, `attachments`, ... as Slack takes them) to an
    incoming webhook; the response on success, else raises Refused with Slack's error code."""
    request = _json(message)
    response = http.request("POST", url, content=request["content"], headers=request["headers"], what=what)
    if response.is_success:
        return response
    code = body_snippet(response, 80)
    error_class = (
        classify_slack_error(code) if response.status_code not in (429,) and response.status_code < 500 else None
    )
    if error_class is ErrorClass.REJECTED and response.status_code in (401, 403):
        error_class = ErrorClass.AUTH
    if error_class is ErrorClass.DESTINATION_FORBIDDEN:
        # channel_not_found here: the webhook's channel is gone; only a new webhook URL helps.
        error_class = ErrorClass.REJECTED
    raise Refused(response, what=what, detail=code or None, error_class=error_class)


def _api(
    ctx: Context, method: str, token: str, http_method: str, *, creates_post: bool | None = None, **kwargs
) -> dict:
    url = f"{ctx.endpoint(DEFAULT_ENDPOINT)}/{method}"
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    response = ctx.http.request(http_method, url, headers=headers, what=method, creates_post=creates_post, **kwargs)
    data = json_body(response)
    if response.status_code == 200 and isinstance(data, dict) and data.get("ok") is True:
        return data
    code = get_str(data, "error") or ""
    if response.status_code == 200 or (code and response.status_code < 500 and response.status_code != 429):
        posting = http_method != "GET" if creates_post is None else creates_post
        error_class = classify_slack_error(code, creates_post=posting) if code else ErrorClass.REJECTED
        detail = code or "unexpected response"
        if error_class is ErrorClass.DESTINATION_FORBIDDEN:
            detail += ": invite the bot to the channel (and check the channel id)"
        elif error_class is ErrorClass.UNKNOWN_OUTCOME:
            detail += ": Slack says the operation may have succeeded"
        raise ctx.failure(response, what=method, detail=detail, error_class=error_class)
    raise ctx.failure(response, what=method, detail=code or None)


def _find_existing(ctx: Context, token: str, channel: str, options: SlackOptions, text: str) -> dict | None:
    """Verify mode: a recent message carrying our idempotency key in its metadata, or (for a
    file share, which carries no metadata) a message with files and exactly our text.
    Reads the channel's 15 newest messages, or a thread's first 15 replies.
    Needs channels:history (or groups:history)."""
    params: dict[str, Any] = {"channel": channel, "limit": HISTORY_LIMIT, "include_all_metadata": "true"}
    method = "conversations.history"
    if options.thread_ts:
        method = "conversations.replies"
        params["ts"] = options.thread_ts
    data = _api(ctx, method, token, "GET", params=params)
    for message in data.get("messages") or []:
        if options.thread_ts and message.get("ts") == options.thread_ts:
            continue  # the thread's parent
        metadata = message.get("metadata") or {}
        if (
            metadata.get("event_type") == METADATA_EVENT
            and (metadata.get("event_payload") or {}).get("idempotency_key") == ctx.key
        ):
            return message
        if message.get("files") and ctx.payload.content.media and message.get("text") == text:
            return message
    return None


def _permalink(ctx: Context, token: str, channel: str, ts: str | None) -> str | None:
    """chat.getPermalink; the post exists already, so a failure here only costs the link."""
    if not ts:
        return None
    try:
        data = _api(ctx, "chat.getPermalink", token, "GET", params={"channel": channel, "message_ts": ts})
    except AdapterError as exc:  # the post is made; never fail it for its link
        log.warning("chat.getPermalink failed: %s", ctx.redact(exc))
        return None
    return get_str(data, "permalink")


def _publish_bot(ctx: Context, token: str, channel: str, options: SlackOptions) -> Result:
    text = _text(ctx)
    media = ctx.payload.content.media[:MAX_FILES]
    if media and options.blocks:
        raise fail(
            ErrorClass.REJECTED,
            "slack: blocks cannot be combined with media (files.completeUploadExternal takes the text, not "
            "blocks); use image blocks with image_url instead of media",
        )
    if ctx.verifying:
        existing = _find_existing(ctx, token, channel, options, text)
        if existing is not None:
            ts = get_str(existing, "ts")
            seconds = ctx.http.last_seconds
            return ctx.published(
                response_seconds=seconds,
                post_id=ts,
                url=_permalink(ctx, token, channel, ts),
                verified=True,
                message="verify: found the message an earlier attempt posted",
            )
    if media:
        return _post_files(ctx, token, channel, options, text)
    message: dict[str, Any] = {
        "channel": channel,
        "text": text,
        "unfurl_links": True,
        "link_names": False,
        "metadata": {"event_type": METADATA_EVENT, "event_payload": {"idempotency_key": ctx.key}},
    }
    if options.blocks:
        message["blocks"] = options.blocks
    if options.thread_ts:
        message["thread_ts"] = options.thread_ts
    data = _api(ctx, "chat.postMessage", token, "POST", **_json(message))
    ts = get_str(data, "ts")
    seconds = ctx.http.last_seconds  # the post's, not the permalink lookup's
    return ctx.published(
        response_seconds=seconds,
        post_id=ts,
        url=_permalink(ctx, token, channel, ts),
        message="posted with chat.postMessage" + (" (verify: no earlier message found)" if ctx.verifying else ""),
    )


def _post_files(ctx: Context, token: str, channel: str, options: SlackOptions, text: str) -> Result:
    """files.getUploadURLExternal and an upload per file (nothing visible yet), then one
    files.completeUploadExternal that shares them all in one message with the text."""
    files = []
    for item in ctx.payload.content.media[:MAX_FILES]:
        downloaded = download(ctx, item, max_bytes=MAX_FILE_BYTES, platform=PLATFORM)
        params = {"filename": downloaded.filename, "length": str(len(downloaded.data))}
        if downloaded.alt_text:
            params["alt_txt"] = downloaded.alt_text[:1000]
        ticket = _api(ctx, "files.getUploadURLExternal", token, "POST", creates_post=False, data=params)
        upload_url, file_id = get_str(ticket, "upload_url"), get_str(ticket, "file_id")
        if not upload_url or not file_id:
            raise fail(ErrorClass.SERVER_ERROR, "files.getUploadURLExternal returned no upload_url or file_id")
        ctx.redact.add(upload_url)
        response = ctx.http.request("POST", upload_url, content=downloaded.data, what="file upload", creates_post=False)
        if not response.is_success:
            raise ctx.failure(response, what="file upload", detail=body_snippet(response, 80) or None)
        files.append({"id": file_id, "title": downloaded.filename})
    form = {"files": json.dumps(files), "channel_id": channel, "initial_comment": text}
    if options.thread_ts:
        form["thread_ts"] = options.thread_ts
    data = _api(ctx, "files.completeUploadExternal", token, "POST", creates_post=True, data=form)
    ts = _share_ts(data, channel)
    seconds = ctx.http.last_seconds
    return ctx.published(
        response_seconds=seconds,
        post_id=ts,
        url=_permalink(ctx, token, channel, ts),
        message=f"posted {len(files)} file(s) with files.completeUploadExternal"
        + ("" if ts else "; Slack had not reported the message ts yet")
        + (" (verify: no earlier message found)" if ctx.verifying else ""),
    )


def _share_ts(data: dict, channel: str) -> str | None:
    """The message ts of a file share, when Slack already lists it (shares fill in asynchronously)."""
    for file in data.get("files") or []:
        shares = file.get("shares") or {}
        for scope in ("public", "private"):
            for share in (shares.get(scope) or {}).get(channel) or []:
                if get_str(share, "ts"):
                    return get_str(share, "ts")
    return None

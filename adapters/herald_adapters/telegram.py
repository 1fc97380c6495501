"""Telegram Bot API: `sendMessage`, or `sendPhoto` with the text as caption when the
publication has media. Errors are `{"ok": false, "error_code": N, "description": "..."}`;
a 429 carries `parameters.retry_after`."""

from __future__ import annotations

from urllib.parse import quote

from ._base import Context, get_str, json_body
from ._contract import ErrorClass, Result
from ._text import Limit, compose, count_utf16, fit

PLATFORM = "telegram"
DEFAULT_ENDPOINT = "https://api.telegram.org"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024


def publish(ctx: Context) -> Result:
    token = ctx.credentials.require("botToken")
    chat_id = ctx.credentials.require("chatId")
    content = ctx.payload.content
    body, suffix = compose(content, hashtags=True)
    if content.media:
        method = "sendPhoto"
        limit = Limit(PLATFORM, CAPTION_LIMIT, count_utf16, "characters (UTF-16)", what="photo caption")
        caption, _ = fit(body, suffix, limit, truncate=ctx.payload.truncate)
        params: dict = {"chat_id": chat_id, "photo": content.media[0].url, "caption": caption}
    else:
        method = "sendMessage"
        limit = Limit(PLATFORM, TEXT_LIMIT, count_utf16, "characters (UTF-16)")
        text, _ = fit(body, suffix, limit, truncate=ctx.payload.truncate)
        params = {"chat_id": chat_id, "text": text}
    # Verify mode can't look anything up: the Bot API cannot read back messages a bot
    # sent. So this posts again (see docs/adapters.md).
    url = f"{ctx.endpoint(DEFAULT_ENDPOINT)}/bot{token}/{method}"
    ctx.redact.add(quote(token, safe=""))
    response = ctx.http.request("POST", url, json=params, what=method)
    data = json_body(response)
    if not (response.is_success and isinstance(data, dict) and data.get("ok") is True):
        raise _failure(ctx, response, data, method)
    result = data.get("result") or {}
    message_id = get_str(result, "message_id")
    return ctx.published(
        response,
        post_id=message_id,
        url=message_url(result.get("chat") or {}, message_id),
        message=f"posted with {method}"
        + (" (verify: Telegram offers no lookup; posted again)" if ctx.verifying else ""),
    )


def message_url(chat: dict, message_id: str | None) -> str | None:
    """t.me links exist for public chats (by username) and supergroups/channels (t.me/c/...)."""
    if not message_id:
        return None
    if chat.get("username"):
        return f"https://t.me/{chat['username']}/{message_id}"
    chat_id = str(chat.get("id", ""))
    if chat_id.startswith("-100"):
        return f"https://t.me/c/{chat_id[4:]}/{message_id}"
    return None


def _failure(ctx: Context, response, data, method: str):
    code = data.get("error_code") if isinstance(data, dict) else None
    description = get_str(data, "description")
    parameters = (data.get("parameters") if isinstance(data, dict) else None) or {}
    status = code if isinstance(code, int) else response.status_code
    error_class: ErrorClass | None = None
    retry_after = None
    if status == 429:
        error_class = ErrorClass.RATE_LIMITED
        retry_after = parameters.get("retry_after")
        retry_after = float(retry_after) if isinstance(retry_after, (int, float)) else None
    elif status == 404:
        error_class = ErrorClass.AUTH  # the Bot API answers 404 to an unknown bot token
    elif response.is_success:
        error_class = ErrorClass.REJECTED  # ok: false on a 2xx: treat as a refusal
    if "migrate_to_chat_id" in parameters:
        description = f"{description}; the group is now chat {parameters['migrate_to_chat_id']}: update chatId"
    return ctx.failure(response, what=method, detail=description, error_class=error_class, retry_after=retry_after)

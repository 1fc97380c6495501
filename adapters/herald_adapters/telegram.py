"""Telegram Bot API: `sendMessage`; with media, `sendPhoto`/`sendVideo` (one) or
`sendMediaGroup` (an album of 2 to 10) with the text as caption. Telegram downloads the
media from their URLs itself. Errors are `{"ok": false, "error_code": N, "description":
"..."}`; a 429 carries `parameters.retry_after`.

`call` is one Bot API call and `send_text` a plain `sendMessage`: shared with Herald's own alerts."""

from __future__ import annotations

import html
import posixpath
import re
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import Field

from ._base import Context, Options, get_str, json_body
from ._contract import ErrorClass, Result, fail
from ._http import Http, Refused
from ._text import Limit, compose, count_utf16, fit

PLATFORM = "telegram"
DEFAULT_ENDPOINT = "https://api.telegram.org"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
MAX_ALBUM = 10
_VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".webm", ".mkv"}

# 400s that mean the bot may not post in this chat (the token itself is fine).
_DESTINATION_400 = re.compile(
    r"chat not found|not enough rights|have no rights|need administrator rights|CHAT_WRITE_FORBIDDEN"
    r"|CHAT_SEND_\w+_FORBIDDEN|CHAT_RESTRICTED|CHAT_ADMIN_REQUIRED",
    re.IGNORECASE,
)


class TelegramOptions(Options):
    message_thread_id: int | None = Field(default=None, ge=1)  # a forum topic
    parse_mode: Literal["MarkdownV2", "HTML"] | None = None
    disable_notification: bool = False


# --- formatting ---------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")
_MARKDOWN_LINK = re.compile(r"(?<!\\)\[((?:\\.|[^\]\\])*)\]\((?:\\.|[^)\\])*\)")
_MARKDOWN_MARKUP = re.compile(r"(?<!\\)(\|\||[*_~`])")
_MARKDOWN_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]*>")


def escape(text: str, parse_mode: str | None) -> str:
    """Plain text made literal in the given parse mode."""
    if parse_mode == "HTML":
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if parse_mode == "MarkdownV2":
        return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return text


def visible_text(text: str, parse_mode: str | None) -> str:
    """What Telegram shows (and counts) once the markup is parsed."""
    if parse_mode == "HTML":
        return html.unescape(_HTML_TAG.sub("", text))
    if parse_mode == "MarkdownV2":
        text = _MARKDOWN_LINK.sub(r"\1", text)
        text = _MARKDOWN_MARKUP.sub("", text)
        return _MARKDOWN_ESCAPED.sub(r"\1", text)
    return text


def _fit(ctx: Context, options: TelegramOptions, limit: int, what: str) -> str:
    body, suffix = compose(ctx.payload.content, hashtags=True)
    mode = options.parse_mode
    # content.text is the caller's markup in that mode; what Herald adds is made literal.
    suffix = escape(suffix, mode)
    measure = (lambda t: count_utf16(visible_text(t, mode))) if mode else count_utf16
    unit = "characters (UTF-16" + (f", after parsing {mode})" if mode else ")")
    size = measure(body + suffix)
    if mode and size > limit and ctx.payload.truncate:
        raise fail(
            ErrorClass.REJECTED,
            f"{what} is {size} {unit}; telegram allows at most {limit}, and text with parseMode {mode} "
            "is not shortened automatically (it could cut the markup). Shorten it",
        )
    text, _ = fit(body, suffix, Limit(PLATFORM, limit, measure, unit, what=what), truncate=ctx.payload.truncate)
    return text


def _media_type(url: str) -> str:
    extension = posixpath.splitext(urlsplit(url).path)[1].lower()
    return "video" if extension in _VIDEO_EXTENSIONS else "photo"


def build_request(ctx: Context, options: TelegramOptions, chat_id: str) -> tuple[str, dict[str, Any]]:
    media = ctx.payload.content.media[:MAX_ALBUM]
    params: dict[str, Any] = {"chat_id": chat_id}
    if options.message_thread_id is not None:
        params["message_thread_id"] = options.message_thread_id
    if options.disable_notification:
        params["disable_notification"] = True
    if not media:
        params["text"] = _fit(ctx, options, TEXT_LIMIT, "text")
        if options.parse_mode:
            params["parse_mode"] = options.parse_mode
        return "sendMessage", params
    caption = _fit(ctx, options, CAPTION_LIMIT, "photo caption" if len(media) == 1 else "album caption")
    if len(media) == 1:
        kind = _media_type(media[0].url)
        params[kind] = media[0].url
        params["caption"] = caption
        if options.parse_mode:
            params["parse_mode"] = options.parse_mode
        return ("sendVideo" if kind == "video" else "sendPhoto"), params
    items = []
    for index, item in enumerate(media):
        entry: dict[str, Any] = {"type": _media_type(item.url), "media": item.url}
        if index == 0:  # an album shows the first item's caption
            entry["caption"] = caption
            if options.parse_mode:
                entry["parse_mode"] = options.parse_mode
        items.append(entry)
    params["media"] = items
    return "sendMediaGroup", params


def publish(ctx: Context) -> Result:
    token = ctx.credentials.require("botToken")
    chat_id = ctx.credentials.require("chatId")
    options = ctx.options(TelegramOptions)
    method, params = build_request(ctx, options, chat_id)
    # Verify mode can't look anything up: the Bot API cannot read back messages a bot
    # sent. So this posts again (see docs/adapters.md).
    ctx.redact.add(quote(token, safe=""))
    try:
        response = call(ctx.http, token, method, params, endpoint=ctx.endpoint(DEFAULT_ENDPOINT))
    except Refused as refused:
        raise refused.as_failure(ctx) from None
    data = json_body(response)
    result = data.get("result") or {}
    messages = result if isinstance(result, list) else [result]  # sendMediaGroup: one per item
    first = messages[0] if messages and isinstance(messages[0], dict) else {}
    message_id = get_str(first, "message_id")
    return ctx.published(
        response,
        post_id=message_id,
        url=message_url(first.get("chat") or {}, message_id),
        message=f"posted with {method}"
        + (f" ({len(messages)} messages)" if len(messages) > 1 else "")
        + (" (verify: Telegram offers no lookup; posted again)" if ctx.verifying else ""),
    )


def call(
    http: Http, token: str, method: str, params: dict[str, Any], *, endpoint: str = DEFAULT_ENDPOINT
) -> httpx.Response:
    """One Bot API call; the response when Telegram says `ok`, else raises Refused.
    The URL holds the token: redact it (`quote(token, safe="")` too) in what you log."""
    url = f"{endpoint.rstrip('/')}/bot{token}/{method}"
    response = http.request("POST", url, json=params, what=method)
    data = json_body(response)
    if not (response.is_success and isinstance(data, dict) and data.get("ok") is True):
        raise _refusal(response, data, method)
    return response


def send_text(
    http: Http, token: str, chat_id: str, text: str, *, endpoint: str = DEFAULT_ENDPOINT, **params: Any
) -> httpx.Response:
    """`sendMessage` of plain text (no parse mode) to one chat; `params` are further arguments."""
    return call(http, token, "sendMessage", {"chat_id": chat_id, "text": text, **params}, endpoint=endpoint)


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


def classify_telegram_error(status: int, description: str) -> ErrorClass | None:
    """The class of a Bot API error; None: by its HTTP status."""
    if status == 429:
        return ErrorClass.RATE_LIMITED
    if status == 404:
        return ErrorClass.AUTH  # the Bot API answers 404 to an unknown bot token
    if status == 403:
        # "bot was kicked from the supergroup chat", "bot is not a member of the channel chat",
        # "bot was blocked by the user", ...: the token works, this chat refuses the bot.
        return ErrorClass.DESTINATION_FORBIDDEN
    if status == 400 and _DESTINATION_400.search(description):
        return ErrorClass.DESTINATION_FORBIDDEN
    return None


def _refusal(response: httpx.Response, data: Any, method: str) -> Refused:
    code = data.get("error_code") if isinstance(data, dict) else None
    description = get_str(data, "description") or ""
    parameters = (data.get("parameters") if isinstance(data, dict) else None) or {}
    status = code if isinstance(code, int) else response.status_code
    error_class = classify_telegram_error(status, description)
    retry_after = None
    if error_class is ErrorClass.RATE_LIMITED:
        retry_after = parameters.get("retry_after")
        retry_after = float(retry_after) if isinstance(retry_after, (int, float)) else None
    elif error_class is None and response.is_success:
        error_class = ErrorClass.REJECTED  # ok: false on a 2xx: treat as a refusal
    if error_class is ErrorClass.DESTINATION_FORBIDDEN:
        description += ": add the bot to the chat (as an admin that may post, for a channel) and check chatId"
    if "migrate_to_chat_id" in parameters:
        description = f"{description}; the group is now chat {parameters['migrate_to_chat_id']}: update chatId"
    return Refused(response, what=method, detail=description or None, error_class=error_class, retry_after=retry_after)

"""Discord: Execute Webhook (`POST <webhookUrl>?wait=true`), which returns the message."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._base import Context, get_str, json_body
from ._contract import ErrorClass, Result
from ._text import Limit, compose, count_code_points, fit

PLATFORM = "discord"
CONTENT_LIMIT = 2000
MAX_EMBEDS = 10


def execute_url(webhook_url: str) -> str:
    parts = urlsplit(webhook_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "wait"] + [("wait", "true")]
    return urlunsplit(parts._replace(query=urlencode(query)))


def publish(ctx: Context) -> Result:
    webhook_url = ctx.credentials.require_url("webhookUrl")
    # The token is the last path segment; register it alone too, in case it shows up by itself.
    ctx.redact.add(urlsplit(webhook_url).path.rstrip("/").rsplit("/", 1)[-1])
    content = ctx.payload.content
    body, suffix = compose(content, hashtags=False)
    text, _ = fit(
        body, suffix, Limit(PLATFORM, CONTENT_LIMIT, count_code_points, "characters"), truncate=ctx.payload.truncate
    )
    message: dict = {"content": text, "allowed_mentions": {"parse": []}}
    if content.media:
        message["embeds"] = [{"image": {"url": m.url}} for m in content.media[:MAX_EMBEDS]]
    # Verify mode can't look anything up: a webhook can fetch a message only by its id,
    # which the earlier attempt never learnt. So this posts again (see docs/adapters.md).
    what = "Discord execute webhook"
    response = ctx.http.request("POST", execute_url(webhook_url), json=message, what=what)
    data = json_body(response)
    if not response.is_success:
        detail = get_str(data, "message")
        code = data.get("code") if isinstance(data, dict) else None
        error_class = None
        retry_after = None
        if response.status_code == 429:
            retry_after = _seconds(data.get("retry_after") if isinstance(data, dict) else None)
            if response.headers.get("Retry-After"):
                retry_after = None  # the header wins (ctx.failure reads it)
        elif response.status_code == 404:
            error_class = ErrorClass.AUTH  # 10015 Unknown Webhook: the Secret's URL is wrong or deleted
        if code not in (None, 0) and detail:
            detail = f"{detail} (code {code})"
        raise ctx.failure(response, what=what, detail=detail, error_class=error_class, retry_after=retry_after)
    message_id = get_str(data, "id")
    channel_id, guild_id = get_str(data, "channel_id"), get_str(data, "guild_id")
    url = (
        f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"
        if guild_id and channel_id and message_id
        else None
    )
    return ctx.published(
        response,
        post_id=message_id,
        url=url,
        message="posted via execute webhook"
        + (" (verify: Discord offers no lookup; posted again)" if ctx.verifying else ""),
    )


def _seconds(value: object) -> float | None:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None

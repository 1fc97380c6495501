"""Slack: an incoming webhook (Secret key `webhookUrl`), or `chat.postMessage`
with a bot token (Secret keys `botToken` and `channel`).

Most Web API errors arrive as HTTP 200 with `{"ok": false, "error": "<code>"}`;
incoming webhooks answer with a plain-text error code and an HTTP status.
"""

from __future__ import annotations

from ._base import Context, body_snippet, get_str, json_body
from ._contract import ErrorClass, Result
from ._text import Limit, compose, count_code_points, fit

PLATFORM = "slack"
DEFAULT_ENDPOINT = "https://slack.com/api"
# Slack truncates longer text silently; we refuse instead.
TEXT_LIMIT = 40_000
METADATA_EVENT = "herald_publication"
HISTORY_LIMIT = 100

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
    "org_login_required",
    "team_access_not_granted",
    "invalid_token",
    "no_service",
    "no_service_id",
    "no_team",
    "team_disabled",
    "action_prohibited",
    "not_in_channel",
}
_SERVER_ERRORS = {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "rollup_error"}
_RATE_LIMITED = {"ratelimited", "rate_limited", "message_limit_exceeded"}


def classify_slack_error(code: str) -> ErrorClass:
    if code in _RATE_LIMITED:
        return ErrorClass.RATE_LIMITED
    if code in _AUTH_ERRORS:
        return ErrorClass.AUTH
    if code in _SERVER_ERRORS:
        return ErrorClass.SERVER_ERROR
    # channel_not_found, is_archived, msg_too_long, no_text, invalid_blocks, restricted_action, ...
    return ErrorClass.REJECTED


def _text(ctx: Context) -> str:
    body, suffix = compose(ctx.payload.content, hashtags=False)
    text, _ = fit(
        body, suffix, Limit(PLATFORM, TEXT_LIMIT, count_code_points, "characters"), truncate=ctx.payload.truncate
    )
    return text


def publish(ctx: Context) -> Result:
    if ctx.credentials.get("webhookUrl"):
        return _publish_webhook(ctx, ctx.credentials.require_url("webhookUrl"))
    return _publish_bot(ctx, ctx.credentials.require("botToken"), ctx.credentials.require("channel"))


def _publish_webhook(ctx: Context, url: str) -> Result:
    ctx.redact.add(url.rstrip("/").rsplit("/", 1)[-1])  # the URL's secret part, on its own
    text = _text(ctx)
    what = "Slack incoming webhook"
    response = ctx.http.request("POST", url, json={"text": text}, what=what)
    if response.is_success:
        # Incoming webhooks answer "ok" and no message id, and cannot read the channel.
        note = " (verify: incoming webhooks offer no lookup; posted again)" if ctx.verifying else ""
        return ctx.published(response, message="posted via incoming webhook; Slack returns no message id" + note)
    code = body_snippet(response, 80)
    error_class = (
        classify_slack_error(code) if response.status_code not in (429,) and response.status_code < 500 else None
    )
    if error_class is ErrorClass.REJECTED and response.status_code in (401, 403):
        error_class = ErrorClass.AUTH
    raise ctx.failure(response, what=what, detail=code or None, error_class=error_class)


def _api(ctx: Context, method: str, token: str, http_method: str, **kwargs) -> dict:
    url = f"{ctx.endpoint(DEFAULT_ENDPOINT)}/{method}"
    headers = {"Authorization": f"Bearer {token}"}
    response = ctx.http.request(http_method, url, headers=headers, what=method, **kwargs)
    data = json_body(response)
    if response.status_code == 200 and isinstance(data, dict) and data.get("ok") is True:
        return data
    code = get_str(data, "error") or ""
    if response.status_code == 200 or (code and response.status_code < 500 and response.status_code != 429):
        error_class = classify_slack_error(code) if code else ErrorClass.REJECTED
        raise ctx.failure(response, what=method, detail=code or "unexpected response", error_class=error_class)
    raise ctx.failure(response, what=method, detail=code or None)


def _find_existing(ctx: Context, token: str, channel: str) -> dict | None:
    """Verify mode: the channel's recent messages carrying our idempotency key in their metadata.
    Needs the channels:history (or groups:history) scope."""
    data = _api(
        ctx,
        "conversations.history",
        token,
        "GET",
        params={"channel": channel, "limit": HISTORY_LIMIT, "include_all_metadata": "true"},
    )
    for message in data.get("messages") or []:
        metadata = message.get("metadata") or {}
        if (
            metadata.get("event_type") == METADATA_EVENT
            and (metadata.get("event_payload") or {}).get("idempotency_key") == ctx.key
        ):
            return message
    return None


def _publish_bot(ctx: Context, token: str, channel: str) -> Result:
    text = _text(ctx)
    if ctx.verifying:
        existing = _find_existing(ctx, token, channel)
        if existing is not None:
            return ctx.published(
                post_id=get_str(existing, "ts"),
                verified=True,
                message="verify: found the message an earlier attempt posted",
            )
    data = _api(
        ctx,
        "chat.postMessage",
        token,
        "POST",
        json={
            "channel": channel,
            "text": text,
            "unfurl_links": True,
            "metadata": {"event_type": METADATA_EVENT, "event_payload": {"idempotency_key": ctx.key}},
        },
    )
    return ctx.published(
        post_id=get_str(data, "ts"),
        message="posted with chat.postMessage" + (" (verify: no earlier message found)" if ctx.verifying else ""),
    )

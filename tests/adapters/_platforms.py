"""Per platform: how to point the adapter at its fake, which route posts, and the
error responses the platform's docs give for each error class."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tests.platforms import BlueskyFake, DiscordFake, FakePlatform, MastodonFake, SlackFake, TelegramFake, WebhookFake
from tests.platforms.linkedin import LinkedInFake
from tests.platforms.x import XFake


@dataclass(frozen=True)
class ErrorCase:
    status: int
    body: object
    error_class: str
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None  # expected retryAfterSeconds (approximately)
    id: str = ""


@dataclass(frozen=True)
class Profile:
    name: str
    make: Callable[[], FakePlatform]
    endpoint: Callable[[FakePlatform], str]
    credentials: Callable[[FakePlatform], dict[str, str]]
    post_route: str
    errors: list[ErrorCase]
    # Can verify mode find an earlier attempt's post (or de-duplicate it natively)?
    verify_finds_post: bool
    text_limit: int | None = None
    # Read-only calls the adapter makes before it can know the text fits (Mastodon's limit).
    preflight_routes: tuple[str, ...] = ()

    def closed_credentials(self, fake: FakePlatform, closed_url: str) -> dict[str, str]:
        """Credentials whose URLs (for webhook-URL platforms) point at a closed port."""
        return {k: v.replace(fake.url, closed_url) for k, v in self.credentials(fake).items()}


# Reset times in the error cases below are absolute, computed when this module is imported.
LOADED_AT = time.monotonic()


def _in(seconds: float) -> str:
    return f"{time.time() + seconds:.3f}"


def _iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _server_errors(body_500: object, body_503: object) -> list[ErrorCase]:
    return [
        ErrorCase(500, body_500, "server_error", id="500"),
        ErrorCase(502, "<html><body><h1>502 Bad Gateway</h1></body></html>", "server_error", id="502-html"),
        ErrorCase(503, body_503, "server_error", {"Retry-After": "15"}, retry_after=15, id="503"),
    ]


WEBHOOK = Profile(
    name="webhook",
    make=WebhookFake,
    endpoint=lambda f: f.endpoint,
    credentials=lambda f: f.credentials(),
    post_route="hook",
    verify_finds_post=True,
    errors=[
        ErrorCase(
            429,
            {"error": "slow down"},
            "rate_limited",
            {"Retry-After": "30", "RateLimit-Remaining": "0", "RateLimit-Reset": "30"},
            30,
            id="429",
        ),
        ErrorCase(401, {"error": "bad signature"}, "auth", id="401"),
        ErrorCase(403, {"error": "forbidden"}, "auth", id="403"),
        ErrorCase(400, {"error": "bad request"}, "rejected", id="400"),
        ErrorCase(413, "Payload Too Large", "rejected", id="413"),
        ErrorCase(422, {"error": "unprocessable"}, "rejected", id="422"),
        *_server_errors({"error": "boom"}, {"error": "maintenance"}),
    ],
)

SLACK_BOT = Profile(
    name="slack",
    make=SlackFake,
    endpoint=lambda f: f.api_endpoint,
    credentials=lambda f: f.bot_credentials(),
    post_route="chat.postMessage",
    verify_finds_post=True,
    text_limit=40_000,
    errors=[
        # Web API: HTTP 429 + Retry-After; most errors are HTTP 200 {"ok": false, "error": code}.
        ErrorCase(429, {"ok": False, "error": "ratelimited"}, "rate_limited", {"Retry-After": "30"}, 30, id="429"),
        ErrorCase(200, {"ok": False, "error": "invalid_auth"}, "auth", id="invalid_auth"),
        ErrorCase(200, {"ok": False, "error": "token_revoked"}, "auth", id="token_revoked"),
        # The token works but the bot may not post there: only this destination's targets fail.
        ErrorCase(200, {"ok": False, "error": "not_in_channel"}, "destination_forbidden", id="not_in_channel"),
        ErrorCase(200, {"ok": False, "error": "channel_not_found"}, "destination_forbidden", id="channel_not_found"),
        ErrorCase(200, {"ok": False, "error": "restricted_action"}, "destination_forbidden", id="restricted_action"),
        ErrorCase(200, {"ok": False, "error": "msg_too_long"}, "rejected", id="msg_too_long"),
        ErrorCase(200, {"ok": False, "error": "is_archived"}, "rejected", id="is_archived"),
        # "It's possible some aspect of the operation succeeded": verify before posting again.
        ErrorCase(200, {"ok": False, "error": "fatal_error"}, "unknown_outcome", id="fatal_error"),
        ErrorCase(200, {"ok": False, "error": "internal_error"}, "unknown_outcome", id="internal_error"),
        ErrorCase(200, {"ok": False, "error": "service_unavailable"}, "server_error", id="service_unavailable"),
        *_server_errors("Internal Server Error", {"ok": False, "error": "service_unavailable"}),
    ],
)

SLACK_WEBHOOK = Profile(
    name="slack",
    make=SlackFake,
    endpoint=lambda f: "",
    credentials=lambda f: f.webhook_credentials(),
    post_route="webhook",
    verify_finds_post=False,
    text_limit=40_000,
    errors=[
        # Incoming webhooks: an HTTP status and a plain-text error code.
        ErrorCase(429, "rate_limited", "rate_limited", {"Retry-After": "5"}, 5, id="429"),
        ErrorCase(400, "invalid_payload", "rejected", id="400-invalid_payload"),
        ErrorCase(403, "action_prohibited", "auth", id="403-action_prohibited"),
        ErrorCase(404, "no_service", "auth", id="404-no_service"),
        ErrorCase(404, "channel_not_found", "rejected", id="404-channel_not_found"),
        ErrorCase(410, "channel_is_archived", "rejected", id="410-channel_is_archived"),
        ErrorCase(413, "Request Entity Too Large", "rejected", id="413"),
        ErrorCase(500, "rollup_error", "server_error", id="500-rollup_error"),
        ErrorCase(503, "service_unavailable", "server_error", id="503"),
    ],
)

DISCORD = Profile(
    name="discord",
    make=DiscordFake,
    endpoint=lambda f: "",
    credentials=lambda f: f.credentials(),
    post_route="execute",
    verify_finds_post=False,
    text_limit=2000,
    errors=[
        ErrorCase(
            429,
            {"message": "You are being rate limited.", "retry_after": 1.5, "global": False},
            "rate_limited",
            {
                "Retry-After": "2",
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": _in(2),
                "X-RateLimit-Reset-After": "2.000",
                "X-RateLimit-Scope": "user",
            },
            2,
            id="429",
        ),
        ErrorCase(
            429,
            {"message": "You are being rate limited.", "retry_after": 0.75, "global": True},
            "rate_limited",
            {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"},
            0.75,
            id="429-global-body-only",
        ),
        ErrorCase(401, {"message": "401: Unauthorized", "code": 0}, "auth", id="401"),
        ErrorCase(403, {"message": "Missing Permissions", "code": 50013}, "destination_forbidden", id="403"),
        ErrorCase(403, {"message": "Missing Access", "code": 50001}, "destination_forbidden", id="403-50001"),
        ErrorCase(404, {"message": "Unknown Webhook", "code": 10015}, "auth", id="404-unknown-webhook"),
        ErrorCase(404, {"message": "Unknown Channel", "code": 10003}, "rejected", id="404-unknown-thread"),
        ErrorCase(400, {"message": "Cannot send an empty message", "code": 50006}, "rejected", id="400"),
        ErrorCase(
            400,
            {"message": "Webhooks posted to forum channels must have a thread_name or thread_id", "code": 220001},
            "rejected",
            id="400-forum-needs-thread",
        ),
        ErrorCase(413, {"message": "Request entity too large", "code": 40005}, "rejected", id="413"),
        *_server_errors({"message": "500: Internal Server Error", "code": 0}, "upstream connect error"),
    ],
)


def _tg(code: int, description: str, **parameters) -> dict:
    body: dict = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


TELEGRAM = Profile(
    name="telegram",
    make=TelegramFake,
    endpoint=lambda f: f.url,
    credentials=lambda f: f.credentials(),
    post_route="sendMessage",
    verify_finds_post=False,
    text_limit=4096,
    errors=[
        ErrorCase(
            429, _tg(429, "Too Many Requests: retry after 7", retry_after=7), "rate_limited", retry_after=7, id="429"
        ),
        ErrorCase(401, _tg(401, "Unauthorized"), "auth", id="401"),
        ErrorCase(403, _tg(403, "Forbidden: bot was kicked from the channel chat"), "destination_forbidden", id="403"),
        ErrorCase(
            403,
            _tg(403, "Forbidden: bot is not a member of the supergroup chat"),
            "destination_forbidden",
            id="403-not-a-member",
        ),
        ErrorCase(404, _tg(404, "Not Found"), "auth", id="404-bad-token"),
        ErrorCase(400, _tg(400, "Bad Request: chat not found"), "destination_forbidden", id="400"),
        ErrorCase(
            400,
            _tg(400, "Bad Request: not enough rights to send text messages to the chat"),
            "destination_forbidden",
            id="400-not-enough-rights",
        ),
        ErrorCase(400, _tg(400, "Bad Request: message thread not found"), "rejected", id="400-no-topic"),
        ErrorCase(
            400,
            _tg(400, "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 3"),
            "rejected",
            id="400-entities",
        ),
        ErrorCase(413, _tg(413, "Request Entity Too Large"), "rejected", id="413"),
        *_server_errors(_tg(500, "Internal Server Error"), "Service Unavailable"),
    ],
)

MASTODON = Profile(
    name="mastodon",
    make=MastodonFake,
    endpoint=lambda f: f.url,
    credentials=lambda f: f.credentials(),
    post_route="statuses",
    verify_finds_post=True,
    text_limit=500,
    preflight_routes=("instance",),
    errors=[
        ErrorCase(
            429,
            {"error": "Too many requests"},
            "rate_limited",
            {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": _iso_in(120)},
            120,
            id="429",
        ),
        ErrorCase(401, {"error": "The access token is invalid"}, "auth", id="401"),
        ErrorCase(403, {"error": "This action is not allowed"}, "auth", id="403"),
        ErrorCase(422, {"error": "Validation failed: Text character limit of 500 exceeded"}, "rejected", id="422"),
        ErrorCase(400, {"error": "A parameter is missing"}, "rejected", id="400"),
        ErrorCase(413, "<html><body>413 Request Entity Too Large</body></html>", "rejected", id="413"),
        *_server_errors(
            {"error": "We're sorry, but something went wrong on our end."}, {"error": "Service Unavailable"}
        ),
    ],
)

BLUESKY = Profile(
    name="bluesky",
    make=BlueskyFake,
    endpoint=lambda f: f.url,
    credentials=lambda f: f.credentials(),
    post_route="createRecord",
    verify_finds_post=True,
    text_limit=300,
    errors=[
        ErrorCase(
            429,
            {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
            "rate_limited",
            {
                "RateLimit-Limit": "5000",
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(int(time.time()) + 600),
                "RateLimit-Policy": "5000;w=3600",
            },
            600,
            id="429",
        ),
        ErrorCase(401, {"error": "ExpiredToken", "message": "Token has expired"}, "auth", id="401"),
        ErrorCase(400, {"error": "ExpiredToken", "message": "Token has expired"}, "auth", id="400-ExpiredToken"),
        ErrorCase(403, {"error": "Forbidden", "message": "Forbidden"}, "auth", id="403"),
        ErrorCase(
            400, {"error": "InvalidRequest", "message": "Invalid app.bsky.feed.post record"}, "rejected", id="400"
        ),
        ErrorCase(413, {"error": "PayloadTooLarge", "message": "request entity too large"}, "rejected", id="413"),
        *_server_errors(
            {"error": "InternalServerError", "message": "Internal Server Error"},
            {"error": "UpstreamFailure", "message": "Upstream Failure"},
        ),
    ],
)

ALL = [WEBHOOK, SLACK_BOT, SLACK_WEBHOOK, DISCORD, TELEGRAM, MASTODON, BLUESKY]
IDS = ["webhook", "slack-bot", "slack-webhook", "discord", "telegram", "mastodon", "bluesky"]


# --- X and LinkedIn -----------------------------------------------------------------------


def _until_midnight_utc() -> float:
    now = datetime.now(UTC)
    return ((now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0) - now).total_seconds()


_X_RATE = {
    "x-rate-limit-limit": "100",
    "x-rate-limit-remaining": "0",
    "x-rate-limit-reset": str(int(time.time()) + 120),
}

X = Profile(
    name="x",
    make=XFake,
    endpoint=lambda f: f.url,
    credentials=lambda f: f.credentials(),
    post_route="tweets",
    verify_finds_post=True,
    # Not the shared length tests: X counts a URL as 23, which they only know for Mastodon (see test_x.py).
    text_limit=None,
    errors=[
        ErrorCase(
            429,
            {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429},
            "rate_limited",
            _X_RATE,
            120,
            id="429",
        ),
        ErrorCase(
            429,
            {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429},
            "rate_limited",
            {
                "x-rate-limit-remaining": "40",
                "x-rate-limit-reset": str(int(time.time()) + 900),
                "x-user-limit-24hour-limit": "17",
                "x-user-limit-24hour-remaining": "0",
                "x-user-limit-24hour-reset": str(int(time.time()) + 3600),
            },
            3600,
            id="429-user-24h",
        ),
        ErrorCase(
            401,
            {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"},
            "auth",
            id="401",
        ),
        ErrorCase(
            403,
            {
                "detail": "You are not permitted to perform this action.",
                "type": "about:blank",
                "title": "Forbidden",
                "status": 403,
            },
            "auth",
            id="403",
        ),
        ErrorCase(
            403,
            {
                "detail": "You are not allowed to create a Tweet with duplicate content.",
                "type": "about:blank",
                "title": "Forbidden",
                "status": 403,
            },
            "rejected",
            id="403-duplicate",
        ),
        ErrorCase(
            400,
            {
                "errors": [{"parameters": {"media.media_ids": ["1"]}, "message": "Invalid media id"}],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request",
            },
            "rejected",
            id="400",
        ),
        *_server_errors(
            {"title": "Internal Server Error", "detail": "Internal Server Error", "type": "about:blank", "status": 500},
            {"title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank", "status": 503},
        ),
    ],
)


def _li(status: int, message: str, code: str | None = None, service: int | None = None) -> dict:
    body: dict = {"status": status, "message": message}
    if code:
        body["code"] = code
    if service is not None:
        body["serviceErrorCode"] = service
    return body


LINKEDIN = Profile(
    name="linkedin",
    make=LinkedInFake,
    endpoint=lambda f: f.url,
    credentials=lambda f: f.credentials(),
    post_route="posts",
    verify_finds_post=True,
    text_limit=3000,
    errors=[
        ErrorCase(
            429,
            _li(
                429,
                "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.",
                "TOO_MANY_REQUESTS",
                101,
            ),
            "rate_limited",
            retry_after=_until_midnight_utc(),
            id="429-day",
        ),
        ErrorCase(429, _li(429, "Too Many Requests"), "rate_limited", {"Retry-After": "60"}, 60, id="429-retry-after"),
        ErrorCase(401, _li(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600), "auth", id="401-65600"),
        ErrorCase(
            401,
            _li(401, "The token used in the request has been revoked by the user", "REVOKED_ACCESS_TOKEN", 65601),
            "auth",
            id="401-65601",
        ),
        ErrorCase(
            401,
            _li(401, "The token used in the request has expired", "EXPIRED_ACCESS_TOKEN", 65602),
            "auth",
            id="401-65602",
        ),
        ErrorCase(
            403,
            _li(403, "Not enough permissions to access: partnerApiPostsExternal.CREATE.20260501", "ACCESS_DENIED", 100),
            "auth",
            id="403",
        ),
        ErrorCase(
            422,
            {
                "errorDetailType": "com.linkedin.common.error.BadRequest",
                "message": "com.linkedin.content.common.exception.BadRequestResponseException: Content is a duplicate "
                "of urn:li:share:7141138937766391808",
                "errorDetails": {
                    "inputErrors": [
                        {"description": "Duplicate post is detected", "input": {}, "code": "DUPLICATE_POST"}
                    ]
                },
                "status": 422,
            },
            "rejected",
            id="422-duplicate",
        ),
        ErrorCase(
            422, _li(422, "ERROR :: /commentary :: field is required", "UNPROCESSABLE_ENTITY"), "rejected", id="422"
        ),
        ErrorCase(400, _li(400, "Invalid request body", "ILLEGAL_ARGUMENT"), "rejected", id="400"),
        ErrorCase(426, _li(426, "Requested version 202401 is not active", "NONEXISTENT_VERSION"), "rejected", id="426"),
        *_server_errors(_li(500, "Internal Server Error"), _li(503, "Service Unavailable")),
    ],
)

ALL += [X, LINKEDIN]
IDS += ["x", "linkedin"]

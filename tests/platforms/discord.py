"""Discord: Execute Webhook, ``POST /api/webhooks/{id}/{token}`` (``?wait=true`` returns
the message, otherwise 204), with Discord's JSON errors ``{"message", "code"}`` and
``X-RateLimit-*`` headers; a 429's body carries ``retry_after`` (seconds, float)."""

from __future__ import annotations

import time

from ._server import FakePlatform, Request, Response

DEFAULT_WEBHOOK_ID = "1234567890123456789"
DEFAULT_WEBHOOK_TOKEN = "fakeDiscordWebhookToken_aa81"
GUILD_ID = "987654321098765432"
CHANNEL_ID = "876543210987654321"
CONTENT_LIMIT = 2000


class DiscordFake(FakePlatform):
    name = "discord"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        webhook_id: str = DEFAULT_WEBHOOK_ID,
        webhook_token: str = DEFAULT_WEBHOOK_TOKEN,
        remaining: int = 4,
    ):
        self.webhook_id = webhook_id
        self.webhook_token = webhook_token
        self.remaining = remaining
        self._next_id = 1_100_000_000_000_000_000
        super().__init__(host, port)

    def routes(self) -> None:
        self.route("POST", r"/api/webhooks/(?P<id>[^/]+)/(?P<token>[^/]+)", "execute", self.execute)

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/api/webhooks/{self.webhook_id}/{self.webhook_token}"

    def credentials(self) -> dict[str, str]:
        return {"webhookUrl": self.webhook_url}

    def rate_headers(self) -> dict[str, str]:
        reset = time.time() + 2
        return {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": f"{reset:.3f}",
            "X-RateLimit-Reset-After": "2.000",
            "X-RateLimit-Bucket": "fakebucket",
        }

    def execute(self, request: Request) -> Response:
        if request.match["id"] != self.webhook_id:
            return Response(404, {"message": "Unknown Webhook", "code": 10015})
        if request.match["token"] != self.webhook_token:
            return Response(401, {"message": "Invalid Webhook Token", "code": 50027})
        data = request.json
        if not isinstance(data, dict):
            return Response(400, {"message": "Cannot send an empty message", "code": 50006})
        content = data.get("content") or ""
        if not content and not data.get("embeds"):
            return Response(400, {"message": "Cannot send an empty message", "code": 50006})
        if len(content) > CONTENT_LIMIT:
            return Response(
                400,
                {
                    "message": "Invalid Form Body",
                    "code": 50035,
                    "errors": {
                        "content": {
                            "_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]
                        }
                    },
                },
            )
        with self._lock:
            self._next_id += 1
            message_id = str(self._next_id)
        message = {
            "id": message_id,
            "type": 0,
            "content": content,
            "channel_id": CHANNEL_ID,
            "guild_id": GUILD_ID,
            "webhook_id": self.webhook_id,
            "embeds": data.get("embeds") or [],
            "author": {"id": self.webhook_id, "username": "Herald", "bot": True},
        }
        self.record_post({**message, "allowed_mentions": data.get("allowed_mentions")})
        if request.param("wait") == "true":
            return Response(200, message, self.rate_headers())
        return Response(204, None, self.rate_headers())

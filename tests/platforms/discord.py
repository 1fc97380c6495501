"""Discord: Execute Webhook, ``POST /api/webhooks/{id}/{token}`` (``?wait=true`` returns
the message, otherwise 204; JSON, or multipart ``payload_json`` + ``files[n]``), and Get
Webhook with Token (``GET`` the same URL), with Discord's JSON errors ``{"message",
"code"}`` and ``X-RateLimit-*`` headers; a 429's body carries ``retry_after`` (seconds).

As Discord's REST API does, the returned message has no ``guild_id`` (the webhook object
has it). A forum channel (``forum=True``) needs ``thread_name`` or ``?thread_id=`` (400,
code 220001); a channel the webhook may no longer see (``access=False``) answers 403
``Missing Access`` (50001).
"""

from __future__ import annotations

import json
import time

from ._server import FakePlatform, Request, Response, multipart

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
        forum: bool = False,
        access: bool = True,
    ):
        self.webhook_id = webhook_id
        self.webhook_token = webhook_token
        self.remaining = remaining
        self.forum = forum
        self.access = access
        self.threads: dict[str, str] = {}  # thread id -> name
        self._next_id = 1_100_000_000_000_000_000
        super().__init__(host, port)

    def routes(self) -> None:
        self.route("POST", r"/api/webhooks/(?P<id>[^/]+)/(?P<token>[^/]+)", "execute", self.execute)
        self.route("GET", r"/api/webhooks/(?P<id>[^/]+)/(?P<token>[^/]+)", "webhook", self.get_webhook)

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

    def _check(self, request: Request) -> Response | None:
        if request.match["id"] != self.webhook_id:
            return Response(404, {"message": "Unknown Webhook", "code": 10015})
        if request.match["token"] != self.webhook_token:
            return Response(401, {"message": "Invalid Webhook Token", "code": 50027})
        return None

    def get_webhook(self, request: Request) -> Response:
        if (denied := self._check(request)) is not None:
            return denied
        webhook = {
            "application_id": None,
            "avatar": None,
            "channel_id": CHANNEL_ID,
            "guild_id": GUILD_ID,
            "id": self.webhook_id,
            "name": "Herald",
            "type": 1,
            "token": self.webhook_token,
        }
        return Response(200, webhook, self.rate_headers())

    def execute(self, request: Request) -> Response:
        if (denied := self._check(request)) is not None:
            return denied
        files: dict[str, tuple[bytes, str | None, str | None]] = {}
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            fields = multipart(request)
            try:
                data = json.loads(fields.get("payload_json", (b"null", None, None))[0])
            except ValueError:
                return Response(400, {"message": "Invalid Form Body", "code": 50035})
            files = {k: v for k, v in fields.items() if k.startswith("files[")}
        else:
            data = request.json
        if not isinstance(data, dict):
            return Response(400, {"message": "Cannot send an empty message", "code": 50006})
        if not self.access:
            return Response(403, {"message": "Missing Access", "code": 50001})
        content = data.get("content") or ""
        if not content and not data.get("embeds") and not files:
            return Response(400, {"message": "Cannot send an empty message", "code": 50006})
        thread_id = request.param("thread_id")
        if thread_id is not None and thread_id not in self.threads:
            return Response(404, {"message": "Unknown Channel", "code": 10003})
        if self.forum and not thread_id and not data.get("thread_name"):
            return Response(
                400,
                {"message": "Webhooks posted to forum channels must have a thread_name or thread_id", "code": 220001},
            )
        if not self.forum and data.get("thread_name"):
            return Response(400, {"message": "Webhooks can only create threads in forum channels", "code": 220003})
        attachments = []
        for entry in data.get("attachments") or []:
            part = files.get(f"files[{entry.get('id')}]")
            if part is None:
                return Response(400, {"message": "Invalid Form Body", "code": 50035})
            attachments.append(
                {
                    "id": str(entry["id"]),
                    "filename": entry.get("filename") or part[1],
                    "description": entry.get("description"),
                    "content_type": part[2],
                    "size": len(part[0]),
                }
            )
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
            if data.get("thread_name"):
                thread_id = message_id  # a forum post's thread has its starter message's id
                self.threads[thread_id] = data["thread_name"]
        message = {
            "id": message_id,
            "type": 0,
            "content": content,
            "channel_id": thread_id or CHANNEL_ID,
            "webhook_id": self.webhook_id,
            "embeds": data.get("embeds") or [],
            "attachments": attachments,
            "flags": data.get("flags") or 0,
            "author": {"id": self.webhook_id, "username": data.get("username") or "Herald", "bot": True},
        }
        self.record_post(
            {
                **message,
                "allowed_mentions": data.get("allowed_mentions"),
                "avatar_url": data.get("avatar_url"),
                "thread_name": data.get("thread_name"),
            }
        )
        if request.param("wait") == "true":
            return Response(200, message, self.rate_headers())
        return Response(204, None, self.rate_headers())

"""Slack: incoming webhooks (``POST /services/T…/B…/<secret>``) and the Web API's
``chat.postMessage`` and ``conversations.history`` under ``/api``.

As Slack documents: incoming webhooks answer ``ok`` (text/plain), or an HTTP error
with a plain-text code (``invalid_payload``, ``no_service``, ``channel_is_archived``…);
Web API methods answer HTTP 200 with ``{"ok": false, "error": "<code>"}`` for most
errors, and HTTP 429 with ``Retry-After`` when rate limited.
"""

from __future__ import annotations

import time

from ._server import FakePlatform, Request, Response, form_or_json

DEFAULT_WEBHOOK_PATH = "/services/T0HERALD/B0HERALD/fakeSlackHookSecret9c1d"
DEFAULT_BOT_TOKEN = "xoxb-fake-slack-bot-token-5e2b"
DEFAULT_CHANNEL = "C0HERALD1"
TEXT_LIMIT = 40_000


class SlackFake(FakePlatform):
    name = "slack"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        webhook_path: str = DEFAULT_WEBHOOK_PATH,
        bot_token: str = DEFAULT_BOT_TOKEN,
        channel: str = DEFAULT_CHANNEL,
        history_scope: bool = True,
    ):
        self.webhook_path = webhook_path
        self.bot_token = bot_token
        self.channel = channel
        self.history_scope = history_scope
        self._ts = time.time()
        super().__init__(host, port)

    def routes(self) -> None:
        self.route("POST", r"/services/(?P<hook>.+)", "webhook", self.webhook)
        self.route("POST", r"/api/chat\.postMessage", "chat.postMessage", self.post_message)
        self.route("GET", r"/api/conversations\.history", "conversations.history", self.history)
        self.route("POST", r"/api/conversations\.history", "conversations.history", self.history)

    @property
    def webhook_url(self) -> str:
        return self.url + self.webhook_path

    @property
    def api_endpoint(self) -> str:
        return self.url + "/api"

    def webhook_credentials(self) -> dict[str, str]:
        return {"webhookUrl": self.webhook_url}

    def bot_credentials(self) -> dict[str, str]:
        return {"botToken": self.bot_token, "channel": self.channel}

    def credentials(self) -> dict[str, str]:
        return self.bot_credentials()

    def _next_ts(self) -> str:
        with self._lock:
            self._ts += 0.000100
            return f"{self._ts:.6f}"

    def webhook(self, request: Request) -> Response:
        if request.path != self.webhook_path:
            return Response(404, "no_service")
        data = request.json
        if not isinstance(data, dict):
            return Response(400, "invalid_payload")
        if not data.get("text") and not data.get("blocks"):
            return Response(400, "no_text")
        self.record_post({"via": "webhook", "text": data["text"]})
        return Response(200, "ok")

    def _auth(self, request: Request) -> Response | None:
        token = request.bearer()
        if not token:
            return Response(200, {"ok": False, "error": "not_authed"})
        if token != self.bot_token:
            return Response(200, {"ok": False, "error": "invalid_auth"})
        return None

    def post_message(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        data = form_or_json(request)
        if data.get("channel") != self.channel:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        text = data.get("text") or ""
        if not text and not data.get("blocks"):
            return Response(200, {"ok": False, "error": "no_text"})
        if len(text) > TEXT_LIMIT:
            return Response(200, {"ok": False, "error": "msg_too_long"})
        ts = self._next_ts()
        message = {"type": "message", "ts": ts, "text": text, "user": "U0HERALD"}
        if isinstance(data.get("metadata"), dict):
            message["metadata"] = data["metadata"]
        self.record_post({"via": "chat.postMessage", **message, "channel": self.channel})
        return Response(200, {"ok": True, "channel": self.channel, "ts": ts, "message": message})

    def history(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        if not self.history_scope:
            return Response(200, {"ok": False, "error": "missing_scope", "needed": "channels:history"})
        params = form_or_json(request)
        if params.get("channel") != self.channel:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        limit = int(params.get("limit") or 100)
        include_metadata = params.get("include_all_metadata") in ("true", "1", True)
        with self._lock:
            messages = [
                {k: v for k, v in p.items() if k not in ("via", "channel") and (include_metadata or k != "metadata")}
                for p in reversed(self.posts)
                if p["via"] == "chat.postMessage"
            ][:limit]
        return Response(200, {"ok": True, "messages": messages, "has_more": False})

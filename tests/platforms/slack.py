"""Slack: incoming webhooks (``POST /services/T…/B…/<secret>``) and the Web API's
``chat.postMessage``, ``chat.getPermalink``, ``conversations.history``/``replies`` and the
file upload flow (``files.getUploadURLExternal``, a POST of the bytes to the returned URL,
``files.completeUploadExternal``) under ``/api``.

As Slack documents: incoming webhooks answer ``ok`` (text/plain), or an HTTP error
with a plain-text code (``invalid_payload``, ``no_service``, ``channel_is_archived``…);
Web API methods answer HTTP 200 with ``{"ok": false, "error": "<code>"}`` for most
errors, and HTTP 429 with ``Retry-After`` when rate limited. A JSON body without
``charset=utf-8`` gets the ``missing_charset`` warning. History calls return at most 15
messages (the cap for non-Marketplace apps). A bot that is not in the channel
(``member=False``) gets ``not_in_channel``.
"""

from __future__ import annotations

import json
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
        member: bool = True,
    ):
        self.webhook_path = webhook_path
        self.bot_token = bot_token
        self.channel = channel
        self.history_scope = history_scope
        self.member = member
        self.files: dict[str, dict] = {}  # file id -> {"name", "length", "alt_txt", "data"}
        self._ts = time.time()
        super().__init__(host, port)

    def routes(self) -> None:
        self.route("POST", r"/services/(?P<hook>.+)", "webhook", self.webhook)
        self.route("POST", r"/api/chat\.postMessage", "chat.postMessage", self.post_message)
        self.route("GET", r"/api/conversations\.history", "conversations.history", self.history)
        self.route("POST", r"/api/conversations\.history", "conversations.history", self.history)
        self.route("GET", r"/api/conversations\.replies", "conversations.replies", self.history)
        self.route("GET", r"/api/chat\.getPermalink", "chat.getPermalink", self.permalink)
        self.route("POST", r"/api/files\.getUploadURLExternal", "files.getUploadURLExternal", self.upload_url)
        self.route("POST", r"/upload/(?P<file>F\w+)", "upload", self.upload)
        self.route("POST", r"/api/files\.completeUploadExternal", "files.completeUploadExternal", self.complete_upload)

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
        post = {"via": "webhook", "text": data["text"]}
        for key in ("blocks", "thread_ts"):
            if key in data:
                post[key] = data[key]
        self.record_post(post)
        return Response(200, "ok")

    def _auth(self, request: Request) -> Response | None:
        token = request.bearer()
        if not token:
            return Response(200, {"ok": False, "error": "not_authed"})
        if token != self.bot_token:
            return Response(200, {"ok": False, "error": "invalid_auth"})
        return None

    def _warnings(self, request: Request) -> dict:
        content_type = request.headers.get("content-type", "")
        if "application/json" in content_type and "charset=utf-8" not in content_type.lower():
            return {"warning": "missing_charset", "response_metadata": {"warnings": ["missing_charset"]}}
        return {}

    def post_message(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        data = form_or_json(request)
        if data.get("channel") != self.channel:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        if not self.member:
            return Response(200, {"ok": False, "error": "not_in_channel"})
        text = data.get("text") or ""
        if not text and not data.get("blocks"):
            return Response(200, {"ok": False, "error": "no_text"})
        if len(text) > TEXT_LIMIT:
            return Response(200, {"ok": False, "error": "msg_too_long"})
        ts = self._next_ts()
        message = {"type": "message", "ts": ts, "text": text, "user": "U0HERALD"}
        if isinstance(data.get("metadata"), dict):
            message["metadata"] = data["metadata"]
        if isinstance(data.get("blocks"), list):
            message["blocks"] = data["blocks"]
        if data.get("thread_ts"):
            message["thread_ts"] = data["thread_ts"]
        self.record_post({"via": "chat.postMessage", **message, "channel": self.channel})
        body = {"ok": True, "channel": self.channel, "ts": ts, "message": message, **self._warnings(request)}
        return Response(200, body)

    def permalink(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        ts, channel = request.param("message_ts") or "", request.param("channel")
        with self._lock:
            known = any(p.get("ts") == ts for p in self.posts)
        if channel != self.channel or not known:
            return Response(200, {"ok": False, "error": "message_not_found"})
        link = f"https://herald-fake.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        return Response(200, {"ok": True, "channel": channel, "permalink": link})

    def upload_url(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        params = form_or_json(request)
        if not params.get("filename") or not str(params.get("length") or "").isdigit():
            return Response(200, {"ok": False, "error": "invalid_arguments"})
        with self._lock:
            file_id = f"F0HERALD{len(self.files) + 1:03d}"
            self.files[file_id] = {
                "name": params["filename"],
                "length": int(params["length"]),
                "alt_txt": params.get("alt_txt"),
                "data": None,
            }
        return Response(200, {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id})

    def upload(self, request: Request) -> Response:
        with self._lock:
            file = self.files.get(request.match["file"])
            if file is None:
                return Response(404, "not found")
            file["data"] = request.body
        return Response(200, f"OK - {len(request.body)}")

    def complete_upload(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        params = form_or_json(request)
        try:
            files = json.loads(params.get("files") or "[]")
        except ValueError:
            return Response(200, {"ok": False, "error": "invalid_arguments"})
        channel = params.get("channel_id")
        if channel and channel != self.channel:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        if channel and not self.member:
            return Response(200, {"ok": False, "error": "not_in_channel"})
        out = []
        with self._lock:
            for entry in files:
                file = self.files.get(entry.get("id"))
                if file is None or file["data"] is None or len(file["data"]) != file["length"]:
                    return Response(200, {"ok": False, "error": "file_upload_size_mismatch"})
                out.append({"id": entry["id"], "name": file["name"], "title": entry.get("title") or file["name"]})
        result = {"ok": True, "files": out}
        if channel:
            ts = self._next_ts()
            message = {"type": "message", "ts": ts, "text": params.get("initial_comment") or "", "user": "U0HERALD"}
            message["files"] = out
            if params.get("thread_ts"):
                message["thread_ts"] = params["thread_ts"]
            self.record_post({"via": "files.completeUploadExternal", **message, "channel": channel})
            for file in out:
                file["shares"] = {"public": {channel: [{"ts": ts, "channel_name": "general"}]}}
        return Response(200, result)

    def history(self, request: Request) -> Response:
        if (denied := self._auth(request)) is not None:
            return denied
        if not self.history_scope:
            return Response(200, {"ok": False, "error": "missing_scope", "needed": "channels:history"})
        params = form_or_json(request)
        if params.get("channel") != self.channel:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        if not self.member:
            return Response(200, {"ok": False, "error": "not_in_channel"})
        limit = min(int(params.get("limit") or 100), 15)
        include_metadata = params.get("include_all_metadata") in ("true", "1", True)
        thread = params.get("ts") if request.match.get("_route") == "conversations.replies" else None
        with self._lock:
            posts = [p for p in self.posts if p["via"] != "webhook"]
        if thread:  # replies: the thread's parent and replies, oldest first
            posts = [p for p in posts if p.get("ts") == thread or p.get("thread_ts") == thread]
        else:  # history: the channel's top-level messages, newest first
            posts = list(reversed([p for p in posts if not p.get("thread_ts")]))
        messages = [
            {k: v for k, v in p.items() if k not in ("via", "channel") and (include_metadata or k != "metadata")}
            for p in posts
        ][:limit]
        return Response(200, {"ok": True, "messages": messages, "has_more": len(posts) > limit})

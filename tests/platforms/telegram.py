"""Telegram Bot API: ``POST /bot<token>/sendMessage`` and ``/sendPhoto`` (JSON or form).

Answers ``{"ok": true, "result": Message}`` or
``{"ok": false, "error_code": N, "description": "..."}`` with HTTP status N; a 429
adds ``"parameters": {"retry_after": S}``. An unknown bot token gets 401
``Unauthorized``; a malformed one 404 ``Not Found``.
"""

from __future__ import annotations

import time

from ._server import FakePlatform, Request, Response, form_or_json

DEFAULT_BOT_TOKEN = "123456789:FAKEtelegramBotToken_b7c4"
DEFAULT_CHAT_ID = "-1001234567890"
CHANNEL_USERNAME = "heraldnews"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def error(code: int, description: str, **parameters) -> Response:
    body: dict = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Response(code, body)


class TelegramFake(FakePlatform):
    name = "telegram"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bot_token: str = DEFAULT_BOT_TOKEN,
        chat_id: str = DEFAULT_CHAT_ID,
        username: str | None = CHANNEL_USERNAME,
    ):
        self.bot_token = bot_token
        self.chat_id = chat_id
        self.username = username
        self._message_id = 100
        super().__init__(host, port)

    def routes(self) -> None:
        self.route("POST", r"/bot(?P<token>[^/]*)/sendMessage", "sendMessage", self.send_message)
        self.route("POST", r"/bot(?P<token>[^/]*)/sendPhoto", "sendPhoto", self.send_photo)

    def credentials(self) -> dict[str, str]:
        return {"botToken": self.bot_token, "chatId": self.chat_id}

    def _check(self, request: Request) -> Response | None:
        token = request.match["token"]
        if ":" not in token:
            return error(404, "Not Found")
        if token != self.bot_token:
            return error(401, "Unauthorized")
        if str(form_or_json(request).get("chat_id")) != self.chat_id:
            return error(400, "Bad Request: chat not found")
        return None

    def _message(self, **fields) -> dict:
        with self._lock:
            self._message_id += 1
            message_id = self._message_id
        chat = {"id": int(self.chat_id), "type": "channel", "title": "Herald News"}
        if self.username:
            chat["username"] = self.username
        return {"message_id": message_id, "chat": chat, "date": int(time.time()), **fields}

    def send_message(self, request: Request) -> Response:
        if (denied := self._check(request)) is not None:
            return denied
        text = form_or_json(request).get("text") or ""
        if not text.strip():
            return error(400, "Bad Request: message text is empty")
        if _utf16(text) > TEXT_LIMIT:
            return error(400, "Bad Request: message is too long")
        message = self._message(text=text)
        self.record_post({"method": "sendMessage", **message})
        return Response(200, {"ok": True, "result": message})

    def send_photo(self, request: Request) -> Response:
        if (denied := self._check(request)) is not None:
            return denied
        params = form_or_json(request)
        photo, caption = params.get("photo"), params.get("caption") or ""
        if not photo:
            return error(400, "Bad Request: there is no photo in the request")
        if _utf16(caption) > CAPTION_LIMIT:
            return error(400, "Bad Request: message caption is too long")
        message = self._message(caption=caption, photo=[{"file_id": "fake-file-id", "width": 1, "height": 1}])
        self.record_post({"method": "sendPhoto", "photoUrl": photo, **message})
        return Response(200, {"ok": True, "result": message})

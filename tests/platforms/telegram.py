"""Telegram Bot API: ``POST /bot<token>/sendMessage``, ``/sendPhoto``, ``/sendVideo`` and
``/sendMediaGroup`` (JSON or form).

Answers ``{"ok": true, "result": Message}`` (a list of messages for an album) or
``{"ok": false, "error_code": N, "description": "..."}`` with HTTP status N; a 429
adds ``"parameters": {"retry_after": S}``. An unknown bot token gets 401
``Unauthorized``; a malformed one 404 ``Not Found``; a bot removed from the channel
(``member=False``) 403 ``Forbidden: bot was kicked from the channel chat``. MarkdownV2
with an unescaped reserved character gets 400 ``can't parse entities``; a forum topic
that doesn't exist 400 ``message thread not found``.
"""

from __future__ import annotations

import html
import re
import time

from ._server import FakePlatform, Request, Response, form_or_json

DEFAULT_BOT_TOKEN = "123456789:FAKEtelegramBotToken_b7c4"
DEFAULT_CHAT_ID = "-1001234567890"
CHANNEL_USERNAME = "heraldnews"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
TOPICS = {7}  # message_thread_id values that exist
_MARKDOWN_RESERVED = re.compile(r"(?<!\\)[_*\[\]()~`>#+\-=|{}.!]")


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
        member: bool = True,
    ):
        self.bot_token = bot_token
        self.chat_id = chat_id
        self.username = username
        self.member = member
        self._message_id = 100
        super().__init__(host, port)

    def routes(self) -> None:
        self.route("POST", r"/bot(?P<token>[^/]*)/sendMessage", "sendMessage", self.send_message)
        self.route("POST", r"/bot(?P<token>[^/]*)/sendPhoto", "sendPhoto", self.send_photo)
        self.route("POST", r"/bot(?P<token>[^/]*)/sendVideo", "sendVideo", self.send_photo)
        self.route("POST", r"/bot(?P<token>[^/]*)/sendMediaGroup", "sendMediaGroup", self.send_media_group)

    def credentials(self) -> dict[str, str]:
        return {"botToken": self.bot_token, "chatId": self.chat_id}

    def _check(self, request: Request) -> Response | None:
        token = request.match["token"]
        if ":" not in token:
            return error(404, "Not Found")
        if token != self.bot_token:
            return error(401, "Unauthorized")
        params = form_or_json(request)
        if str(params.get("chat_id")) != self.chat_id:
            return error(400, "Bad Request: chat not found")
        if not self.member:
            return error(403, "Forbidden: bot was kicked from the channel chat")
        thread = params.get("message_thread_id")
        if thread is not None and thread not in TOPICS:
            return error(400, "Bad Request: message thread not found")
        return None

    @staticmethod
    def _visible(text: str, parse_mode: str | None) -> str:
        """The message as shown: Telegram's length limits apply after entity parsing."""
        if parse_mode == "HTML":
            return html.unescape(re.sub(r"<[^>]*>", "", text))
        if parse_mode == "MarkdownV2":
            plain = re.sub(r"\[((?:\\.|[^\]\\])*)\]\((?:\\.|[^)\\])*\)", r"\1", text)
            plain = re.sub(r"(?<!\\)(\|\||[*_~`])", "", plain)
            return re.sub(r"\\(.)", r"\1", plain)
        return text

    @staticmethod
    def _entities(text: str, parse_mode: str | None) -> Response | None:
        if parse_mode == "MarkdownV2":
            plain = re.sub(r"\[((?:\\.|[^\]\\])*)\]\((?:\\.|[^)\\])*\)", r"\1", text)  # [text](url)
            plain = re.sub(r"(?<!\\)(\|\||[*_~`])", "", plain)  # bold, italic, ... markers
            if found := _MARKDOWN_RESERVED.search(plain):
                return error(
                    400,
                    f"Bad Request: can't parse entities: Character '{found.group(0)}' is reserved and must be "
                    "escaped with the preceding '\\'",
                )
        elif parse_mode not in (None, "HTML"):
            return error(400, f"Bad Request: unsupported parse_mode {parse_mode}")
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
        params = form_or_json(request)
        text = params.get("text") or ""
        if not text.strip():
            return error(400, "Bad Request: message text is empty")
        if (bad := self._entities(text, params.get("parse_mode"))) is not None:
            return bad
        if _utf16(self._visible(text, params.get("parse_mode"))) > TEXT_LIMIT:
            return error(400, "Bad Request: message is too long")
        message = self._message(text=text)
        self.record_post({"method": "sendMessage", **message, **self._extras(params)})
        return Response(200, {"ok": True, "result": message})

    @staticmethod
    def _extras(params: dict) -> dict:
        return {k: params[k] for k in ("parse_mode", "message_thread_id", "disable_notification") if k in params}

    def send_photo(self, request: Request) -> Response:
        if (denied := self._check(request)) is not None:
            return denied
        params = form_or_json(request)
        method = request.match["_route"]
        kind = "video" if method == "sendVideo" else "photo"
        photo, caption = params.get(kind), params.get("caption") or ""
        if not photo:
            return error(400, f"Bad Request: there is no {kind} in the request")
        if (bad := self._entities(caption, params.get("parse_mode"))) is not None:
            return bad
        if _utf16(self._visible(caption, params.get("parse_mode"))) > CAPTION_LIMIT:
            return error(400, "Bad Request: message caption is too long")
        media = (
            {
                "video": {
                    "file_id": "fake-video-id",
                    "file_unique_id": "fakevid1",
                    "width": 1,
                    "height": 1,
                    "duration": 1,
                }
            }
            if kind == "video"
            else {"photo": [{"file_id": "fake-file-id", "file_unique_id": "fakepic1", "width": 1, "height": 1}]}
        )
        message = self._message(caption=caption, **media)
        self.record_post({"method": method, "photoUrl": photo, **message, **self._extras(params)})
        return Response(200, {"ok": True, "result": message})

    def send_media_group(self, request: Request) -> Response:
        if (denied := self._check(request)) is not None:
            return denied
        params = form_or_json(request)
        items = params.get("media")
        if not isinstance(items, list) or not 2 <= len(items) <= 10:
            return error(400, "Bad Request: wrong number of media in the album")
        group = f"1{int(time.time() * 1000)}"
        messages = []
        for item in items:
            if item.get("type") not in ("photo", "video") or not item.get("media"):
                return error(400, "Bad Request: wrong media in the album")
            caption = item.get("caption") or ""
            if (bad := self._entities(caption, item.get("parse_mode"))) is not None:
                return bad
            if _utf16(caption) > CAPTION_LIMIT:
                return error(400, "Bad Request: message caption is too long")
        for item in items:
            fields = {"media_group_id": group}
            if item.get("caption"):
                fields["caption"] = item["caption"]
            messages.append(self._message(**fields))
        self.record_post(
            {
                "method": "sendMediaGroup",
                "caption": items[0].get("caption") or "",
                "mediaUrls": [i["media"] for i in items],
                "messages": messages,
                "message_id": messages[0]["message_id"],
                **self._extras(params),
            }
        )
        return Response(200, {"ok": True, "result": messages})

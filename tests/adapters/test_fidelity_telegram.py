"""Telegram against python-telegram-bot (PTB), an independent Bot API client: its error
mapping (which exception a Bot API answer becomes) must agree with Herald's classes, its
Message.de_json must read the local Bot API's answers, and the requests Herald builds
(albums, topics, parse modes, silent posts) must carry the parameters PTB sends for the
same call."""

from __future__ import annotations

import asyncio
import json

import pytest
import telegram
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.request import BaseRequest

from herald_adapters import telegram as herald_telegram
from tests.platforms import TelegramFake

from ._replay import Recorded, Replay, run
from ._support import payload

TOKEN = "123456789:FAKEtelegramBotToken_b7c4"
CHAT = "-1001234567890"


class Canned(BaseRequest):
    """PTB's transport: records what PTB sends and answers with a fixed (status, body)."""

    def __init__(self, status: int = 200, body: dict | None = None):
        self.status, self.body = status, body or {"ok": True, "result": True}
        self.sent: list[tuple[str, dict]] = []

    @property
    def read_timeout(self):
        return None

    async def initialize(self):
        return None

    async def shutdown(self):
        return None

    async def do_request(self, url, method, request_data=None, **timeouts):
        self.sent.append((url.rsplit("/", 1)[-1], request_data.json_parameters if request_data else {}))
        return self.status, json.dumps(self.body).encode()


def _ptb(request: Canned, call):
    async def go():
        bot = telegram.Bot(TOKEN, request=request, get_updates_request=request)
        bot._bot_user = telegram.User(1, "Herald", True, username="herald_bot")  # skip getMe
        bot._initialized = True
        return await call(bot)

    return asyncio.run(go())


def _error(code: int, description: str, **parameters) -> dict:
    body = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


# (Bot API answer, the exception PTB raises, Herald's class)
ANSWERS = [
    (_error(403, "Forbidden: bot was kicked from the channel chat"), Forbidden, "destination_forbidden"),
    (_error(403, "Forbidden: bot is not a member of the supergroup chat"), Forbidden, "destination_forbidden"),
    (_error(403, "Forbidden: bot was blocked by the user"), Forbidden, "destination_forbidden"),
    (_error(401, "Unauthorized"), InvalidToken, "auth"),
    (_error(404, "Not Found"), InvalidToken, "auth"),
    (_error(429, "Too Many Requests: retry after 7", retry_after=7), RetryAfter, "rate_limited"),
    (
        _error(400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=-1009876543210),
        ChatMigrated,
        "rejected",
    ),
    (_error(400, "Bad Request: message is too long"), BadRequest, "rejected"),
    (_error(400, "Bad Request: can't parse entities: Unsupported start tag"), BadRequest, "rejected"),
    (_error(400, "Bad Request: chat not found"), BadRequest, "destination_forbidden"),
    (_error(400, "Bad Request: not enough rights to send photos to the chat"), BadRequest, "destination_forbidden"),
    (_error(500, "Internal Server Error"), NetworkError, "server_error"),
    (_error(502, "Bad Gateway"), NetworkError, "server_error"),
]


@pytest.mark.parametrize("body,exception,error_class", ANSWERS, ids=[a[0]["description"][:40] for a in ANSWERS])
def test_herald_classifies_what_ptb_raises_consistently(tmp_path, monkeypatch, body, exception, error_class):
    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # PTB's coming API: retry_after as a timedelta
    with pytest.raises(exception) as raised:
        _ptb(Canned(body["error_code"], body), lambda bot: bot.send_message(CHAT, "hi"))
    transport = Replay({r"POST /bot[^/]+/sendMessage": Recorded.json(body["error_code"], body)})
    result = run(
        herald_telegram.publish,
        transport,
        tmp_path,
        platform="telegram",
        credentials={"botToken": TOKEN, "chatId": CHAT},
    )
    assert result.error_class.value == error_class
    # What PTB refines, Herald keeps: a narrower Herald class only ever refines PTB's.
    refines = {
        Forbidden: {"destination_forbidden"},
        InvalidToken: {"auth"},
        RetryAfter: {"rate_limited"},
        ChatMigrated: {"rejected"},
        BadRequest: {"rejected", "destination_forbidden"},
        NetworkError: {"server_error"},
    }
    assert error_class in refines[exception]
    if isinstance(raised.value, RetryAfter):
        assert result.retry_after_seconds == raised.value.retry_after.total_seconds()
    if isinstance(raised.value, ChatMigrated):
        assert str(raised.value.new_chat_id) in result.message


def test_ptb_reads_the_local_bot_apis_messages(run_adapter):
    with TelegramFake() as fake:
        media = [{"url": "https://e.org/a.jpg"}, {"url": "https://e.org/b.mp4"}]
        for document in (payload("Text"), payload("One", media=media[:1]), payload("Album", media=media)):
            run = run_adapter("telegram", endpoint=fake.url, credentials=fake.credentials(), document=document)
            assert run.exit_code == 0, run.output
        bot = telegram.Bot(fake.bot_token)
        for route in ("sendMessage", "sendPhoto", "sendMediaGroup"):
            request = fake.requests_to(route)[0]
            answer = {"sendMessage": fake.send_message, "sendPhoto": fake.send_photo}.get(route, fake.send_media_group)(
                request
            ).body["result"]
            messages = (
                telegram.Message.de_list(answer, bot)
                if isinstance(answer, list)
                else [telegram.Message.de_json(answer, bot)]
            )
            for message in messages:
                assert message.chat.id == int(fake.chat_id) and message.chat.username == "heraldnews"
                assert message.link == f"https://t.me/heraldnews/{message.message_id}"
            if route == "sendMediaGroup":
                assert len({m.media_group_id for m in messages}) == 1


def test_an_album_is_the_request_ptb_sends(tmp_path):
    canned = Canned(200, {"ok": True, "result": []})
    media = [
        telegram.InputMediaPhoto("https://e.org/a.jpg", caption="Album"),
        telegram.InputMediaVideo("https://e.org/b.mp4"),
    ]
    _ptb(canned, lambda bot: bot.send_media_group(CHAT, media, message_thread_id=7, disable_notification=True))
    [(method, sent_by_ptb)] = canned.sent
    transport = Replay(
        {
            r"POST /bot[^/]+/sendMediaGroup": Recorded.json(
                200,
                {"ok": True, "result": [{"message_id": 5, "date": 0, "chat": {"id": int(CHAT), "type": "channel"}}]},
            )
        }
    )
    document = payload(
        "Album",
        media=[{"url": "https://e.org/a.jpg"}, {"url": "https://e.org/b.mp4"}],
        options={"messageThreadId": 7, "disableNotification": True},
    )
    result = run(herald_telegram.publish, transport, tmp_path, platform="telegram",
                 credentials={"botToken": TOKEN, "chatId": CHAT}, document=document)  # fmt: skip
    assert result.outcome == "published", result
    sent_by_herald = json.loads(transport.requests[0].content)
    assert method == "sendMediaGroup"
    assert set(sent_by_herald) == set(sent_by_ptb)
    ptb_media = json.loads(sent_by_ptb["media"])
    assert sent_by_herald["media"] == ptb_media
    assert str(sent_by_herald["message_thread_id"]) == str(sent_by_ptb["message_thread_id"])


@pytest.mark.parametrize("parse_mode", ["MarkdownV2", "HTML"])
def test_a_formatted_message_is_the_request_ptb_sends(tmp_path, parse_mode):
    canned = Canned(200, {"ok": True, "result": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}}})
    _ptb(canned, lambda bot: bot.send_message(CHAT, "x", parse_mode=parse_mode, message_thread_id=7))
    [(_, sent_by_ptb)] = canned.sent
    transport = Replay({r"POST /bot[^/]+/sendMessage": Recorded.json(200, {"ok": True, "result": {"message_id": 1}})})
    document = payload("x", options={"parseMode": parse_mode, "messageThreadId": 7})
    run(herald_telegram.publish, transport, tmp_path, platform="telegram",
        credentials={"botToken": TOKEN, "chatId": CHAT}, document=document)  # fmt: skip
    sent_by_herald = json.loads(transport.requests[0].content)
    assert set(sent_by_herald) == set(sent_by_ptb)
    assert sent_by_herald["parse_mode"] == sent_by_ptb["parse_mode"] == parse_mode


def test_markdown_v2_escaping_matches_ptbs_helper():
    from telegram.helpers import escape_markdown

    text = "Herald 1.0 (beta) - see https://e.org/a_b?x=1&y=[2]! #tag {ok} ~ | > ` * \\"
    assert herald_telegram.escape(text, "MarkdownV2") == escape_markdown(text, version=2)
    import html

    assert herald_telegram.escape(text + " <b> & ", "HTML") == html.escape(text + " <b> & ", quote=False)

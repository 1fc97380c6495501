"""Telegram Bot API: sendMessage, sendPhoto, limits and links."""

from __future__ import annotations

from tests.platforms import TelegramFake

from ._support import assert_no_secrets, payload


def test_send_message_reports_a_t_me_link(run_adapter, telegram_fake):
    run = run_adapter(
        "telegram",
        endpoint=telegram_fake.url,
        credentials=telegram_fake.credentials(),
        document=payload("Hi", tags=["release"]),
    )
    assert run.exit_code == 0, run.output
    [request] = telegram_fake.requests_to("sendMessage")
    assert request.json == {"chat_id": telegram_fake.chat_id, "text": "Hi\n\n#release"}
    message_id = telegram_fake.posts[0]["message_id"]
    assert run.result["postId"] == str(message_id)
    assert run.result["url"] == f"https://t.me/heraldnews/{message_id}"


def test_private_supergroup_links_use_t_me_c(run_adapter):
    with TelegramFake(username=None) as fake:
        run = run_adapter("telegram", endpoint=fake.url, credentials=fake.credentials())
        assert run.result["url"] == f"https://t.me/c/1234567890/{fake.posts[0]['message_id']}"


def test_bot_token_in_the_url_never_reaches_the_logs(run_adapter, telegram_fake):
    run = run_adapter(
        "telegram",
        endpoint=telegram_fake.url,
        credentials=telegram_fake.credentials(),
        extra_env={"HERALD_LOG_LEVEL": "DEBUG"},
    )
    assert run.exit_code == 0
    assert run.stderr  # there are logs, just no token in them
    assert_no_secrets(run, telegram_fake.bot_token, telegram_fake.bot_token.split(":")[1])


def test_media_are_sent_with_send_photo_and_the_text_as_caption(run_adapter, telegram_fake):
    media = [{"url": "https://e.org/cover.png", "altText": "cover"}]
    run = run_adapter(
        "telegram",
        endpoint=telegram_fake.url,
        credentials=telegram_fake.credentials(),
        document=payload("Caption text", media=media),
    )
    assert run.exit_code == 0, run.output
    assert telegram_fake.posts[0]["method"] == "sendPhoto"
    assert telegram_fake.posts[0]["photoUrl"] == "https://e.org/cover.png"
    assert telegram_fake.posts[0]["caption"] == "Caption text"


def test_caption_over_1024_is_rejected_and_truncated_on_request(run_adapter, telegram_fake):
    media = [{"url": "https://e.org/cover.png"}]
    run = run_adapter(
        "telegram",
        endpoint=telegram_fake.url,
        credentials=telegram_fake.credentials(),
        document=payload("c" * 1025, media=media),
    )
    assert run.result["errorClass"] == "rejected"
    assert "caption" in run.result["message"] and "1024" in run.result["message"]
    assert telegram_fake.requests == []
    run = run_adapter(
        "telegram",
        endpoint=telegram_fake.url,
        credentials=telegram_fake.credentials(),
        document=payload("c" * 1025, media=media, truncate=True),
    )
    assert run.exit_code == 0
    assert len(telegram_fake.posts[0]["caption"]) == 1024


def test_length_is_measured_in_utf16_units(run_adapter, telegram_fake):
    ok = run_adapter(
        "telegram", endpoint=telegram_fake.url, credentials=telegram_fake.credentials(), document=payload("😀" * 2048)
    )
    assert ok.exit_code == 0, ok.output
    too_long = run_adapter(
        "telegram", endpoint=telegram_fake.url, credentials=telegram_fake.credentials(), document=payload("😀" * 2049)
    )
    assert too_long.result["errorClass"] == "rejected"
    assert len(telegram_fake.posts) == 1


def test_unknown_token_and_malformed_token_are_auth_failures(run_adapter, telegram_fake):
    for token in ("999999:wrongTokenValue_0000", "malformedtokenvalue"):
        run = run_adapter(
            "telegram", endpoint=telegram_fake.url, credentials={"botToken": token, "chatId": telegram_fake.chat_id}
        )
        assert run.result["errorClass"] == "auth", run.result
        assert_no_secrets(run, token)


def test_unknown_chat_is_destination_forbidden(run_adapter, telegram_fake):
    # "chat not found": the bot was never added to the chat (or chatId is wrong); the token works.
    run = run_adapter(
        "telegram", endpoint=telegram_fake.url, credentials={"botToken": telegram_fake.bot_token, "chatId": "-100999"}
    )
    assert run.result["errorClass"] == "destination_forbidden"
    assert "chat not found" in run.result["message"] and "add the bot" in run.result["message"]


def test_group_migrated_to_supergroup_says_which_chat_to_use(run_adapter, telegram_fake):
    telegram_fake.fail(
        "sendMessage",
        400,
        {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: group chat was upgraded to a supergroup chat",
            "parameters": {"migrate_to_chat_id": -1009876543210},
        },
    )
    run = run_adapter("telegram", endpoint=telegram_fake.url, credentials=telegram_fake.credentials())
    assert run.result["errorClass"] == "rejected"
    assert "-1009876543210" in run.result["message"]


def _run(run_adapter, fake, document, **kw):
    return run_adapter("telegram", endpoint=fake.url, credentials=fake.credentials(), document=document, **kw)


def test_several_media_become_an_album(run_adapter, telegram_fake):
    media = [{"url": f"https://e.org/{n}.jpg"} for n in "abc"] + [{"url": "https://e.org/clip.mp4"}]
    run = _run(run_adapter, telegram_fake, payload("Album", media=media, tags=["x"]))
    assert run.exit_code == 0, run.output
    [request] = telegram_fake.requests_to("sendMediaGroup")
    assert request.json["media"] == [
        {"type": "photo", "media": "https://e.org/a.jpg", "caption": "Album\n\n#x"},
        {"type": "photo", "media": "https://e.org/b.jpg"},
        {"type": "photo", "media": "https://e.org/c.jpg"},
        {"type": "video", "media": "https://e.org/clip.mp4"},
    ]
    post = telegram_fake.posts[0]
    assert run.result["postId"] == str(post["messages"][0]["message_id"])
    assert "4 messages" in run.result["message"]


def test_one_video_is_sent_with_send_video(run_adapter, telegram_fake):
    run = _run(run_adapter, telegram_fake, payload("Clip", media=[{"url": "https://e.org/clip.MP4"}]))
    assert run.exit_code == 0, run.output
    assert telegram_fake.posts[0]["method"] == "sendVideo"


def test_topic_and_silent_options(run_adapter, telegram_fake):
    options = {"messageThreadId": 7, "disableNotification": True}
    run = _run(run_adapter, telegram_fake, payload("In a topic", options=options))
    assert run.exit_code == 0, run.output
    body = telegram_fake.requests_to("sendMessage")[0].json
    assert body["message_thread_id"] == 7 and body["disable_notification"] is True
    run = _run(run_adapter, telegram_fake, payload("Nowhere", options={"messageThreadId": 8}))
    assert run.result["errorClass"] == "rejected"
    assert "message thread not found" in run.result["message"]


def test_markdown_v2_escapes_what_herald_adds(run_adapter, telegram_fake):
    document = payload(
        "*Herald 1\\.0* is out", link="https://e.org/a-b_c.html", tags=["re_lease"], options={"parseMode": "MarkdownV2"}
    )
    run = _run(run_adapter, telegram_fake, document)
    assert run.exit_code == 0, run.output  # the fake refuses unescaped reserved characters
    body = telegram_fake.requests_to("sendMessage")[0].json
    assert body["parse_mode"] == "MarkdownV2"
    assert body["text"] == "*Herald 1\\.0* is out\n\nhttps://e\\.org/a\\-b\\_c\\.html\n\n\\#re\\_lease"


def test_html_parse_mode_counts_the_visible_text(run_adapter, telegram_fake):
    ok = _run(run_adapter, telegram_fake, payload("<b>" + "a" * 4090 + "</b> &amp;", options={"parseMode": "HTML"}))
    assert ok.exit_code == 0, ok.output  # 4090 + 2 visible characters
    too_long = _run(run_adapter, telegram_fake, payload("<b>" + "a" * 4097 + "</b>", options={"parseMode": "HTML"}))
    assert too_long.result["errorClass"] == "rejected"
    assert "4097" in too_long.result["message"]
    refused = _run(
        run_adapter, telegram_fake, payload("<b>" + "a" * 4097 + "</b>", truncate=True, options={"parseMode": "HTML"})
    )
    assert refused.result["errorClass"] == "rejected"
    assert "not shortened automatically" in refused.result["message"]
    assert len(telegram_fake.posts) == 1


def test_html_parse_mode_escapes_the_link(run_adapter, telegram_fake):
    document = payload("<i>Read</i>", link="https://e.org/?a=1&b=<2>", options={"parseMode": "HTML"})
    run = _run(run_adapter, telegram_fake, document)
    assert run.exit_code == 0, run.output
    assert telegram_fake.posts[0]["text"] == "<i>Read</i>\n\nhttps://e.org/?a=1&amp;b=&lt;2&gt;"


def test_a_kicked_bot_is_destination_forbidden(run_adapter):
    with TelegramFake(member=False) as fake:
        run = run_adapter("telegram", endpoint=fake.url, credentials=fake.credentials())
        assert run.result["errorClass"] == "destination_forbidden"
        assert "kicked" in run.result["message"]


def test_invalid_parse_mode_is_rejected(run_adapter, telegram_fake):
    run = _run(run_adapter, telegram_fake, payload("x", options={"parseMode": "Markdown"}))
    assert run.result["errorClass"] == "rejected"
    assert "parseMode" in run.result["message"]
    assert telegram_fake.requests == []

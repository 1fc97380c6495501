"""Slack: incoming webhook and chat.postMessage, and verify via message metadata."""

from __future__ import annotations

from tests.platforms import PNG, Script, SlackFake

from ._support import IDEMPOTENCY_KEY, assert_no_secrets, payload


def test_bot_posts_with_metadata_carrying_the_idempotency_key(run_adapter, slack_fake):
    run = run_adapter("slack", endpoint=slack_fake.api_endpoint, credentials=slack_fake.bot_credentials())
    assert run.exit_code == 0, run.output
    [request] = slack_fake.requests_to("chat.postMessage")
    assert request.headers["authorization"] == f"Bearer {slack_fake.bot_token}"
    body = request.json
    assert body["channel"] == slack_fake.channel
    assert body["metadata"] == {
        "event_type": "herald_publication",
        "event_payload": {"idempotency_key": IDEMPOTENCY_KEY},
    }
    assert run.result["postId"] == slack_fake.posts[0]["ts"]
    assert_no_secrets(run, slack_fake.bot_token, slack_fake.channel)


def test_incoming_webhook_posts_text_and_has_no_message_id(run_adapter, slack_fake):
    run = run_adapter(
        "slack", credentials=slack_fake.webhook_credentials(), document=payload("Hi", link="https://e.org")
    )
    assert run.exit_code == 0, run.output
    assert slack_fake.posts == [{"via": "webhook", "text": "Hi\n\nhttps://e.org"}]
    assert "postId" not in run.result
    assert_no_secrets(run, slack_fake.webhook_url, slack_fake.webhook_path)


def test_revoked_incoming_webhook_is_an_auth_failure(run_adapter, slack_fake):
    creds = {"webhookUrl": slack_fake.url + "/services/T0HERALD/B0HERALD/revokedHookSecret1"}
    run = run_adapter("slack", credentials=creds)
    assert run.result["errorClass"] == "auth"
    assert "no_service" in run.result["message"]
    assert_no_secrets(run, creds["webhookUrl"], "revokedHookSecret1")


def test_invalid_bot_token_is_an_auth_failure(run_adapter, slack_fake):
    run = run_adapter(
        "slack",
        endpoint=slack_fake.api_endpoint,
        credentials={"botToken": "xoxb-wrong-token-0000", "channel": "C0HERALD1"},
    )
    assert run.exit_code == 1
    assert run.result["errorClass"] == "auth"
    assert "invalid_auth" in run.result["message"]
    assert_no_secrets(run, "xoxb-wrong-token-0000")


def test_unknown_or_private_channel_is_destination_forbidden(run_adapter, slack_fake):
    # Slack answers channel_not_found for a private channel the bot was not invited to.
    run = run_adapter(
        "slack",
        endpoint=slack_fake.api_endpoint,
        credentials={"botToken": slack_fake.bot_token, "channel": "C0NOWHERE"},
    )
    assert run.result["errorClass"] == "destination_forbidden"
    assert "channel_not_found" in run.result["message"] and "invite the bot" in run.result["message"]


def test_verify_posts_when_no_earlier_message_exists(run_adapter, slack_fake):
    run = run_adapter(
        "slack", endpoint=slack_fake.api_endpoint, credentials=slack_fake.bot_credentials(), mode="verify"
    )
    assert run.exit_code == 0
    assert len(slack_fake.posts) == 1
    assert "no earlier message" in run.result["message"]


def test_verify_ignores_messages_with_another_key(run_adapter, slack_fake):
    other = "f" * 32
    run_adapter("slack", endpoint=slack_fake.api_endpoint, credentials=slack_fake.bot_credentials(), key=other)
    run = run_adapter(
        "slack", endpoint=slack_fake.api_endpoint, credentials=slack_fake.bot_credentials(), mode="verify"
    )
    assert run.exit_code == 0
    assert "verified" not in run.result
    assert len(slack_fake.posts) == 2


def test_verify_without_history_scope_fails_safely_without_posting(run_adapter):
    with SlackFake(history_scope=False) as fake:
        run = run_adapter("slack", endpoint=fake.api_endpoint, credentials=fake.bot_credentials(), mode="verify")
        assert run.exit_code == 1
        assert run.result["errorClass"] == "auth"
        assert "missing_scope" in run.result["message"]
        assert fake.posts == []


def _bot(run_adapter, fake, **kw):
    return run_adapter("slack", endpoint=fake.api_endpoint, credentials=fake.bot_credentials(), **kw)


def test_text_is_escaped_so_it_cannot_mention_the_channel_or_make_links(run_adapter, slack_fake):
    text = "<!channel> Tom & Jerry <b>bold</b> <https://evil.example|click>"
    run = _bot(run_adapter, slack_fake, document=payload(text))
    assert run.exit_code == 0, run.output
    body = slack_fake.requests_to("chat.postMessage")[0].json
    assert body["text"] == (
        "&lt;!channel&gt; Tom &amp; Jerry &lt;b&gt;bold&lt;/b&gt; &lt;https://evil.example|click&gt;"
    )
    assert body["link_names"] is False
    run = run_adapter("slack", credentials=slack_fake.webhook_credentials(), document=payload(text))
    assert slack_fake.posts[-1]["text"].startswith("&lt;!channel&gt; Tom &amp; Jerry")


def test_escaping_counts_toward_the_limit(run_adapter, slack_fake):
    run = _bot(run_adapter, slack_fake, document=payload("&" * 8001))  # 8001 x "&amp;" = 40005
    assert run.result["errorClass"] == "rejected"
    assert "40005" in run.result["message"]


def test_json_is_sent_with_charset_and_the_permalink_is_reported(run_adapter, slack_fake):
    run = _bot(run_adapter, slack_fake)
    assert run.exit_code == 0, run.output
    request = slack_fake.requests_to("chat.postMessage")[0]
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    ts = slack_fake.posts[0]["ts"]
    # The channel id is a Secret value here, so it is redacted like every Secret value.
    assert run.result["url"] == f"https://herald-fake.slack.com/archives/[REDACTED]/p{ts.replace('.', '')}"
    [lookup] = slack_fake.requests_to("chat.getPermalink")
    assert lookup.query == {"channel": [slack_fake.channel], "message_ts": [ts]}


def test_the_channel_option_gives_an_unredacted_permalink(run_adapter, slack_fake):
    document = payload("Hi", options={"channel": slack_fake.channel})
    creds = {"botToken": slack_fake.bot_token}
    run = run_adapter("slack", endpoint=slack_fake.api_endpoint, credentials=creds, document=document)
    assert run.exit_code == 0, run.output
    ts = slack_fake.posts[0]["ts"]
    assert run.result["url"] == f"https://herald-fake.slack.com/archives/{slack_fake.channel}/p{ts.replace('.', '')}"


def test_a_failed_permalink_lookup_still_reports_the_post(run_adapter, slack_fake):
    slack_fake.fail("chat.getPermalink", 200, {"ok": False, "error": "internal_error"})
    run = _bot(run_adapter, slack_fake)
    assert run.exit_code == 0, run.output
    assert run.result["postId"] == slack_fake.posts[0]["ts"]
    assert "url" not in run.result


def test_thread_ts_and_blocks_options(run_adapter, slack_fake):
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Herald 1.0* is out"}},
        {"type": "divider"},
    ]
    options = {"threadTs": "1700000000.000100", "blocks": blocks}
    run = _bot(run_adapter, slack_fake, document=payload("Herald 1.0 is out", options=options))
    assert run.exit_code == 0, run.output
    body = slack_fake.requests_to("chat.postMessage")[0].json
    assert body["thread_ts"] == "1700000000.000100"
    assert body["blocks"] == blocks
    assert body["text"] == "Herald 1.0 is out"  # the notification fallback


def test_invalid_slack_options_are_rejected(run_adapter, slack_fake):
    for options in ({"threadTs": "yesterday"}, {"blocks": [{"text": "no type"}]}, {"thread": "x"}):
        run = _bot(run_adapter, slack_fake, document=payload("Hi", options=options))
        assert run.result["errorClass"] == "rejected", options
        assert "invalid options for slack" in run.result["message"]
    assert slack_fake.requests == []


def test_verify_in_a_thread_reads_its_replies(run_adapter, slack_fake):
    options = {"threadTs": "1700000000.000100"}
    slack_fake.script("chat.postMessage", Script(process=True, delay=5))
    first = _bot(run_adapter, slack_fake, document=payload("Reply", options=options), timeout=0.3)
    assert first.result["errorClass"] == "unknown_outcome"
    run = _bot(run_adapter, slack_fake, document=payload("Reply", options=options), mode="verify", attempt=2)
    assert run.result["verified"] is True
    [lookup] = slack_fake.requests_to("conversations.replies")
    assert lookup.query["ts"] == ["1700000000.000100"] and lookup.query["limit"] == ["15"]
    assert len(slack_fake.posts) == 1


def test_verify_reads_the_15_newest_messages(run_adapter, slack_fake):
    _bot(run_adapter, slack_fake, mode="verify")
    [lookup] = slack_fake.requests_to("conversations.history")
    assert lookup.query["limit"] == ["15"]


def test_media_are_uploaded_and_shared_with_the_text(run_adapter, slack_fake):
    media = [{"url": f"{slack_fake.url}/_herald/media/cover.png?redirects=1", "altText": "A cover"}]
    run = _bot(run_adapter, slack_fake, document=payload("With a picture & more", media=media))
    assert run.exit_code == 0, run.output
    [file] = slack_fake.files.values()
    assert file["data"] == PNG and file["name"] == "cover.png" and file["alt_txt"] == "A cover"
    [post] = slack_fake.posts
    assert post["via"] == "files.completeUploadExternal"
    assert post["text"] == "With a picture &amp; more"
    assert run.result["postId"] == post["ts"]
    assert run.result["url"].endswith("p" + post["ts"].replace(".", ""))
    assert_no_secrets(run, slack_fake.bot_token)


def test_verify_finds_an_earlier_file_share_by_its_text(run_adapter, slack_fake):
    media = [{"url": f"{slack_fake.url}/_herald/media/cover.png"}]
    document = payload("Pic", media=media)
    slack_fake.script("files.completeUploadExternal", Script(process=True, delay=5))
    first = _bot(run_adapter, slack_fake, document=document, timeout=0.3)
    assert first.result["errorClass"] == "unknown_outcome"
    run = _bot(run_adapter, slack_fake, document=document, mode="verify", attempt=2)
    assert run.result["verified"] is True
    assert len(slack_fake.posts) == 1


def test_blocks_with_media_are_refused_with_a_hint(run_adapter, slack_fake):
    document = payload("Pic", media=[{"url": "https://e.org/a.png"}], options={"blocks": [{"type": "divider"}]})
    run = _bot(run_adapter, slack_fake, document=document)
    assert run.result["errorClass"] == "rejected"
    assert "image blocks" in run.result["message"]


def test_bot_not_in_the_channel_is_destination_forbidden(run_adapter):
    with SlackFake(member=False) as fake:
        run = _bot(run_adapter, fake)
        assert run.result["errorClass"] == "destination_forbidden"
        assert "not_in_channel" in run.result["message"]
        assert fake.posts == []


def test_fatal_error_on_a_lookup_is_a_server_error_not_an_unknown_outcome(run_adapter, slack_fake):
    slack_fake.fail("conversations.history", 200, {"ok": False, "error": "fatal_error"})
    run = _bot(run_adapter, slack_fake, mode="verify")
    assert run.result["errorClass"] == "server_error"
    assert slack_fake.posts == []

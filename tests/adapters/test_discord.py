"""Discord: execute webhook with wait=true."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.platforms import PNG, DiscordFake, Response, Script
from tests.platforms.discord import CHANNEL_ID, GUILD_ID

from ._support import assert_no_secrets, payload


def test_waits_for_the_message_and_reports_its_id_and_link(run_adapter, discord_fake):
    run = run_adapter("discord", credentials=discord_fake.credentials(), extra_env={"HERALD_LOG_LEVEL": "DEBUG"})
    assert run.exit_code == 0, run.output
    [request] = discord_fake.requests_to("execute")
    assert request.query["wait"] == ["true"]
    message_id = discord_fake.posts[0]["id"]
    assert "guild_id" not in discord_fake.posts[0]  # REST messages carry none...
    assert len(discord_fake.requests_to("webhook")) == 1  # ...so the link's guild comes from the webhook
    assert run.result["postId"] == message_id
    assert run.result["url"] == f"https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/{message_id}"
    assert_no_secrets(run, discord_fake.webhook_url, discord_fake.webhook_token)


def test_a_failed_webhook_lookup_costs_only_the_link(run_adapter, discord_fake):
    discord_fake.fail("webhook", 500, {"message": "500: Internal Server Error", "code": 0})
    run = run_adapter("discord", credentials=discord_fake.credentials())
    assert run.exit_code == 0, run.output
    assert run.result["postId"] == discord_fake.posts[0]["id"]
    assert "url" not in run.result
    assert run.result["rateLimit"]["remaining"] == 4  # from the post's response


def test_mentions_in_text_never_ping(run_adapter, discord_fake):
    run_adapter("discord", credentials=discord_fake.credentials(), document=payload("@everyone Herald is out"))
    assert discord_fake.requests_to("execute")[0].json["allowed_mentions"] == {"parse": []}


def test_media_become_attachments_with_alt_text(run_adapter, discord_fake):
    media = [
        {"url": f"{discord_fake.url}/_herald/media/a.png", "altText": "A cover"},
        {"url": f"{discord_fake.url}/_herald/media/b.png?size=500"},
    ]
    run = run_adapter("discord", credentials=discord_fake.credentials(), document=payload("Pics", media=media))
    assert run.exit_code == 0, run.output
    [request] = discord_fake.requests_to("execute")
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert discord_fake.posts[0]["content"] == "Pics"
    assert discord_fake.posts[0]["attachments"] == [
        {"id": "0", "filename": "a.png", "description": "A cover", "content_type": "image/png", "size": len(PNG)},
        {"id": "1", "filename": "b.png", "description": None, "content_type": "image/png", "size": 500},
    ]


def test_embed_media_option_sends_image_embeds_by_url(run_adapter, discord_fake):
    media = [{"url": "https://e.org/a.png", "altText": "A"}, {"url": "https://e.org/b.png"}]
    document = payload("Pics", media=media, options={"embedMedia": True})
    run_adapter("discord", credentials=discord_fake.credentials(), document=document)
    assert discord_fake.posts[0]["embeds"] == [
        {"image": {"url": "https://e.org/a.png"}},
        {"image": {"url": "https://e.org/b.png"}},
    ]


def test_media_behind_redirects_are_followed_up_to_five(run_adapter, discord_fake):
    ok = [{"url": f"{discord_fake.url}/_herald/media/a.png?redirects=5"}]
    run = run_adapter("discord", credentials=discord_fake.credentials(), document=payload("Pic", media=ok))
    assert run.exit_code == 0, run.output
    assert discord_fake.posts[0]["attachments"][0]["size"] == len(PNG)
    too_many = [{"url": f"{discord_fake.url}/_herald/media/a.png?redirects=6"}]
    run = run_adapter("discord", credentials=discord_fake.credentials(), document=payload("Pic", media=too_many))
    assert run.result["errorClass"] == "rejected"
    assert "more than 5 redirects" in run.result["message"]
    assert len(discord_fake.posts) == 1


def test_media_redirected_to_another_scheme_is_refused(run_adapter, discord_fake):
    url = discord_fake.serve_static("x.png", Response(302, "", {"Location": "file:///etc/passwd"}))
    run = run_adapter("discord", credentials=discord_fake.credentials(), document=payload("P", media=[{"url": url}]))
    assert run.result["errorClass"] == "rejected"
    assert "not http(s)" in run.result["message"]
    assert discord_fake.posts == []


def test_forum_channels_need_a_thread_name(run_adapter):
    with DiscordFake(forum=True) as fake:
        run = run_adapter("discord", credentials=fake.credentials())
        assert run.result["errorClass"] == "rejected"
        assert "220001" in run.result["message"] and "threadName" in run.result["message"]
        run = run_adapter(
            "discord", credentials=fake.credentials(), document=payload("Launch", options={"threadName": "Herald 1.0"})
        )
        assert run.exit_code == 0, run.output
        post = fake.posts[0]
        assert post["thread_name"] == "Herald 1.0"
        # The forum post's thread is the message's channel.
        assert run.result["url"] == f"https://discord.com/channels/{GUILD_ID}/{post['channel_id']}/{post['id']}"
        assert post["channel_id"] != CHANNEL_ID


def test_thread_id_posts_into_an_existing_thread(run_adapter):
    with DiscordFake(forum=True) as fake:
        fake.threads["1200000000000000001"] = "existing"
        document = payload("Reply", options={"threadId": "1200000000000000001"})
        run = run_adapter("discord", credentials=fake.credentials(), document=document)
        assert run.exit_code == 0, run.output
        assert fake.requests_to("execute")[0].query["thread_id"] == ["1200000000000000001"]
        assert fake.posts[0]["channel_id"] == "1200000000000000001"


def test_username_avatar_and_silent_options(run_adapter, discord_fake):
    options = {"username": "Herald News", "avatarUrl": "https://e.org/avatar.png", "silent": True}
    run = run_adapter("discord", credentials=discord_fake.credentials(), document=payload("Hi", options=options))
    assert run.exit_code == 0, run.output
    post = discord_fake.posts[0]
    assert post["author"]["username"] == "Herald News"
    assert post["avatar_url"] == "https://e.org/avatar.png"
    assert post["flags"] == 1 << 12  # SUPPRESS_NOTIFICATIONS


def test_invalid_options_are_rejected_before_posting(run_adapter, discord_fake):
    for options, expected in (
        ({"username": "Discord bot"}, "username"),
        ({"threadId": "general"}, "threadId"),
        ({"colour": "red"}, "colour"),
    ):
        document = payload("Hi", options=options)
        run = run_adapter("discord", credentials=discord_fake.credentials(), document=document)
        assert run.result["errorClass"] == "rejected", options
        assert expected in run.result["message"] and "threadName" in run.result["message"]
    assert discord_fake.requests == []


def test_a_webhook_without_access_to_its_channel_is_destination_forbidden(run_adapter):
    with DiscordFake(access=False) as fake:
        run = run_adapter("discord", credentials=fake.credentials())
        assert run.result["errorClass"] == "destination_forbidden"
        assert "Missing Access (code 50001)" in run.result["message"]


def test_link_lookup_time_is_not_the_posts_response_time(run_adapter, discord_fake):
    discord_fake.script("webhook", Script(process=True, delay=1.0))
    run = run_adapter("discord", credentials=discord_fake.credentials(), timeout=3)
    assert run.exit_code == 0, run.output
    assert run.result["responseSeconds"] < 0.9


def test_rate_limit_headers_are_reported(run_adapter, discord_fake):
    run = run_adapter("discord", credentials=discord_fake.credentials())
    rate = run.result["rateLimit"]
    assert rate["remaining"] == 4
    reset = datetime.fromisoformat(rate["resetAt"].replace("Z", "+00:00"))
    assert 0 <= (reset - datetime.now(UTC)).total_seconds() <= 3


def test_wrong_webhook_token_is_an_auth_failure(run_adapter, discord_fake):
    url = discord_fake.webhook_url.replace(discord_fake.webhook_token, "wrongToken_1234")
    run = run_adapter("discord", credentials={"webhookUrl": url})
    assert run.result["errorClass"] == "auth"
    assert "Invalid Webhook Token" in run.result["message"]
    assert_no_secrets(run, url, "wrongToken_1234")


def test_deleted_webhook_is_an_auth_failure(run_adapter, discord_fake):
    url = discord_fake.webhook_url.replace(discord_fake.webhook_id, "1111111111111111111")
    run = run_adapter("discord", credentials={"webhookUrl": url})
    assert run.result["errorClass"] == "auth"
    assert "Unknown Webhook" in run.result["message"]


def test_a_webhook_url_that_is_not_a_url_is_an_auth_failure(run_adapter, discord_fake):
    run = run_adapter("discord", credentials={"webhookUrl": "discord-webhook-garbage-value"})
    assert run.result["errorClass"] == "auth"
    assert "webhookUrl" in run.result["message"]
    assert_no_secrets(run, "discord-webhook-garbage-value")
    assert discord_fake.requests == []

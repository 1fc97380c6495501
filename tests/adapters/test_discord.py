"""Discord: execute webhook with wait=true."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.platforms.discord import CHANNEL_ID, GUILD_ID

from ._support import assert_no_secrets, payload


def test_waits_for_the_message_and_reports_its_id_and_link(run_adapter, discord_fake):
    run = run_adapter("discord", credentials=discord_fake.credentials(), extra_env={"HERALD_LOG_LEVEL": "DEBUG"})
    assert run.exit_code == 0, run.output
    [request] = discord_fake.requests_to("execute")
    assert request.query["wait"] == ["true"]
    message_id = discord_fake.posts[0]["id"]
    assert run.result["postId"] == message_id
    assert run.result["url"] == f"https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/{message_id}"
    assert_no_secrets(run, discord_fake.webhook_url, discord_fake.webhook_token)


def test_mentions_in_text_never_ping(run_adapter, discord_fake):
    run_adapter("discord", credentials=discord_fake.credentials(), document=payload("@everyone Herald is out"))
    assert discord_fake.requests_to("execute")[0].json["allowed_mentions"] == {"parse": []}


def test_media_become_image_embeds(run_adapter, discord_fake):
    media = [{"url": "https://e.org/a.png", "altText": "A"}, {"url": "https://e.org/b.png"}]
    run_adapter("discord", credentials=discord_fake.credentials(), document=payload("Pics", media=media))
    assert discord_fake.posts[0]["embeds"] == [
        {"image": {"url": "https://e.org/a.png"}},
        {"image": {"url": "https://e.org/b.png"}},
    ]


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

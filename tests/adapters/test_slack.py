"""Slack: incoming webhook and chat.postMessage, and verify via message metadata."""

from __future__ import annotations

from tests.platforms import SlackFake

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


def test_unknown_channel_is_rejected(run_adapter, slack_fake):
    run = run_adapter(
        "slack",
        endpoint=slack_fake.api_endpoint,
        credentials={"botToken": slack_fake.bot_token, "channel": "C0NOWHERE"},
    )
    assert run.result["errorClass"] == "rejected"
    assert "channel_not_found" in run.result["message"]


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

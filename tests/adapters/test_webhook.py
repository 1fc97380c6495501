"""Generic webhook: signature, idempotency key, replay."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime

from ._support import IDEMPOTENCY_KEY, assert_no_secrets, payload


def test_request_is_signed_over_timestamp_and_body(run_adapter, webhook_fake):
    run = run_adapter(
        "webhook",
        endpoint=webhook_fake.endpoint,
        credentials=webhook_fake.credentials(),
        document=payload("Hello", link="https://e.org/x", tags=["a"]),
        attempt=3,
    )
    assert run.exit_code == 0, run.output
    [request] = webhook_fake.requests_to("hook")
    timestamp = request.headers["x-herald-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    expected = hmac.new(
        webhook_fake.hmac_secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert request.headers["x-herald-signature"] == f"sha256={expected}"
    assert request.headers["idempotency-key"] == IDEMPOTENCY_KEY
    assert request.headers["content-type"] == "application/json"
    document = request.json
    assert document["idempotencyKey"] == IDEMPOTENCY_KEY
    assert document["attempt"] == 3 and document["mode"] == "publish"
    assert document["publication"] == {
        "namespace": "news",
        "name": "launch",
        "uid": "4c1c0000-0000-4000-8000-000000000001",
    }
    assert document["content"] == {"text": "Hello", "link": "https://e.org/x", "media": [], "tags": ["a"]}
    assert run.result["postId"] == "wh-1"
    assert run.result["url"].endswith("/posts/wh-1")


def test_success_reports_the_receivers_rate_limit(run_adapter, webhook_fake):
    run = run_adapter("webhook", endpoint=webhook_fake.endpoint, credentials=webhook_fake.credentials())
    rate = run.result["rateLimit"]
    assert rate["remaining"] == 99
    reset = datetime.fromisoformat(rate["resetAt"].replace("Z", "+00:00"))
    assert 50 <= (reset - datetime.now(UTC)).total_seconds() <= 61


def test_wrong_secret_is_an_auth_failure(run_adapter, webhook_fake):
    run = run_adapter("webhook", endpoint=webhook_fake.endpoint, credentials={"hmacSecret": "not-the-right-secret-123"})
    assert run.result["errorClass"] == "auth"
    assert webhook_fake.posts == []
    assert_no_secrets(run, "not-the-right-secret-123")


def test_a_repeated_publish_is_deduplicated_by_the_receiver(run_adapter, webhook_fake):
    first = run_adapter("webhook", endpoint=webhook_fake.endpoint, credentials=webhook_fake.credentials())
    second = run_adapter("webhook", endpoint=webhook_fake.endpoint, credentials=webhook_fake.credentials(), attempt=2)
    assert second.exit_code == 0
    assert second.result["postId"] == first.result["postId"]
    assert "replayed" in second.result["message"]
    assert "verified" not in second.result  # only verify mode reports verified
    assert len(webhook_fake.posts) == 1


def test_an_endpoint_is_required(run_adapter, webhook_fake):
    run = run_adapter("webhook", endpoint="", credentials=webhook_fake.credentials())
    assert run.exit_code == 1
    assert run.result["errorClass"] == "rejected"
    assert "endpoint" in run.result["message"]


def test_missing_secret_key_names_the_key(run_adapter, webhook_fake):
    run = run_adapter("webhook", endpoint=webhook_fake.endpoint, credentials={"other": "value-not-used-1"})
    assert run.result["errorClass"] == "auth"
    assert "hmacSecret" in run.result["message"]
    assert_no_secrets(run, "value-not-used-1")
    assert webhook_fake.requests == []


def test_optional_bearer_token_is_sent_and_never_printed(run_adapter, webhook_fake):
    creds = {**webhook_fake.credentials(), "bearerToken": "bearer-secret-value-77"}
    run = run_adapter(
        "webhook", endpoint=webhook_fake.endpoint, credentials=creds, extra_env={"HERALD_LOG_LEVEL": "DEBUG"}
    )
    assert run.exit_code == 0
    [request] = webhook_fake.requests_to("hook")
    assert request.headers["authorization"] == "Bearer bearer-secret-value-77"
    assert_no_secrets(run, *creds.values())


def test_options_are_forwarded_to_the_receiver(run_adapter, webhook_fake):
    document = payload("Hello", options={"priority": "high"})
    run = run_adapter(
        "webhook", endpoint=webhook_fake.endpoint, credentials=webhook_fake.credentials(), document=document
    )
    assert run.exit_code == 0, run.output
    sent = webhook_fake.requests_to("hook")[0].json
    assert sent["options"] == {"priority": "high"}
    assert "options" not in sent["content"]

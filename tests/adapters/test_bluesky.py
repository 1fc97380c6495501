"""Bluesky: sessions, deterministic record keys, facets, embeds and graphemes."""

from __future__ import annotations

import re

from herald_adapters.bluesky import record_key
from tests.platforms.bluesky import DID

from ._support import IDEMPOTENCY_KEY, assert_no_secrets, payload

TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


def _run(run_adapter, fake, **kw):
    return run_adapter("bluesky", endpoint=fake.url, credentials=fake.credentials(), **kw)


def test_record_key_is_a_valid_tid_fixed_per_idempotency_key():
    key = record_key(IDEMPOTENCY_KEY)
    assert TID.match(key)
    assert record_key(IDEMPOTENCY_KEY) == key
    assert record_key("f" * 32) != key


def test_creates_a_post_record_under_the_derived_key(run_adapter, bluesky_fake):
    run = _run(run_adapter, bluesky_fake, extra_env={"HERALD_LOG_LEVEL": "DEBUG"})
    assert run.exit_code == 0, run.output
    rkey = record_key(IDEMPOTENCY_KEY)
    [request] = bluesky_fake.requests_to("createRecord")
    body = request.json
    assert body["repo"] == DID and body["collection"] == "app.bsky.feed.post" and body["rkey"] == rkey
    assert body["record"]["$type"] == "app.bsky.feed.post"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", body["record"]["createdAt"])
    assert run.result["postId"] == f"at://{DID}/app.bsky.feed.post/{rkey}"
    assert run.result["url"] == f"https://bsky.app/profile/{DID}/post/{rkey}"
    assert run.result["rateLimit"]["remaining"] == 4999
    access = request.bearer()
    assert_no_secrets(run, bluesky_fake.app_password, access)


def test_links_and_hashtags_get_facets_with_utf8_byte_offsets(run_adapter, bluesky_fake):
    text = "Café 🚀 launch: https://example.org/blog/herald-1-0. #Herald"
    run = _run(run_adapter, bluesky_fake, document=payload(text))
    assert run.exit_code == 0, run.output
    post = bluesky_fake.posts[0]
    encoded = post["text"].encode()
    spans = {
        f["features"][0]["$type"].rsplit("#", 1)[1]: encoded[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode()
        for f in post["facets"]
    }
    assert spans == {"link": "https://example.org/blog/herald-1-0", "tag": "#Herald"}
    assert [f["features"][0].get("uri") or f["features"][0].get("tag") for f in post["facets"]] == [
        "https://example.org/blog/herald-1-0",
        "Herald",
    ]


def test_link_without_media_becomes_an_external_card(run_adapter, bluesky_fake):
    _run(run_adapter, bluesky_fake, document=payload("Read", link="https://e.org/x", title="Release"))
    assert bluesky_fake.posts[0]["embed"] == {
        "$type": "app.bsky.embed.external",
        "external": {"uri": "https://e.org/x", "title": "Release", "description": ""},
    }


def test_media_are_uploaded_as_blobs_with_alt_text(run_adapter, bluesky_fake):
    media = [{"url": f"{bluesky_fake.url}/_herald/media/a.png", "altText": "A cover"}]
    run = _run(run_adapter, bluesky_fake, document=payload("Pic", media=media))
    assert run.exit_code == 0, run.output
    [image] = bluesky_fake.posts[0]["embed"]["images"]
    assert image["alt"] == "A cover"
    assert image["image"]["ref"]["$link"] in bluesky_fake.blobs
    assert image["image"]["mimeType"] == "image/png"


def test_images_over_a_megabyte_are_rejected_before_posting(run_adapter, bluesky_fake):
    media = [{"url": f"{bluesky_fake.url}/_herald/media/big.png?size=1000001"}]
    run = _run(run_adapter, bluesky_fake, document=payload("Pic", media=media))
    assert run.result["errorClass"] == "rejected"
    assert "1000000" in run.result["message"]
    assert bluesky_fake.requests_to("createRecord") == []


def test_limit_counts_graphemes_not_code_points(run_adapter, bluesky_fake):
    family = "👨‍👩‍👧"  # one grapheme, five code points
    ok = _run(run_adapter, bluesky_fake, document=payload(family * 300))
    assert ok.exit_code == 0, ok.output
    bluesky_fake.records.clear()
    too_long = _run(run_adapter, bluesky_fake, document=payload(family * 301))
    assert too_long.result["errorClass"] == "rejected"
    assert "301 graphemes" in too_long.result["message"]


def test_verify_finds_the_record_without_creating_another(run_adapter, bluesky_fake):
    _run(run_adapter, bluesky_fake)
    run = _run(run_adapter, bluesky_fake, mode="verify", attempt=2)
    assert run.result["verified"] is True
    assert len(bluesky_fake.requests_to("createRecord")) == 1


def test_a_publish_retry_after_a_lost_result_does_not_duplicate(run_adapter, bluesky_fake):
    first = _run(run_adapter, bluesky_fake)
    again = _run(run_adapter, bluesky_fake, attempt=2)  # e.g. the first pod's result was lost
    assert again.exit_code == 0, again.output
    assert again.result["postId"] == first.result["postId"]
    assert len(bluesky_fake.posts) == 1


def test_wrong_app_password_is_an_auth_failure(run_adapter, bluesky_fake):
    creds = {"identifier": bluesky_fake.identifier, "appPassword": "wrong-app-password-9"}
    run = run_adapter("bluesky", endpoint=bluesky_fake.url, credentials=creds)
    assert run.result["errorClass"] == "auth"
    assert "AuthenticationRequired" in run.result["message"]
    assert_no_secrets(run, "wrong-app-password-9")
    assert bluesky_fake.requests_to("createRecord") == []

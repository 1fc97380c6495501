"""Mastodon: statuses, media, Idempotency-Key, counting, and verify mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.platforms import MastodonFake, Script

from ._support import IDEMPOTENCY_KEY, assert_no_secrets, payload


def _run(run_adapter, fake, **kw):
    return run_adapter("mastodon", endpoint=fake.url, credentials=fake.credentials(), **kw)


def test_posts_with_the_idempotency_key_and_reports_the_status(run_adapter, mastodon_fake):
    run = _run(run_adapter, mastodon_fake, document=payload("Herald 1.0 is out", tags=["release", "kubernetes"]))
    assert run.exit_code == 0, run.output
    [request] = mastodon_fake.requests_to("statuses")
    assert request.headers["idempotency-key"] == IDEMPOTENCY_KEY
    assert request.headers["authorization"] == f"Bearer {mastodon_fake.access_token}"
    assert request.json["status"] == "Herald 1.0 is out\n\n#release #kubernetes"
    post = mastodon_fake.posts[0]
    assert run.result["postId"] == post["id"]
    assert run.result["url"] == post["url"]
    assert run.result["rateLimit"]["remaining"] == 299
    reset = datetime.fromisoformat(run.result["rateLimit"]["resetAt"].replace("Z", "+00:00"))
    assert timedelta(minutes=4) < reset - datetime.now(UTC) <= timedelta(minutes=5)


def test_media_are_uploaded_with_alt_text_and_waited_for(run_adapter):
    with MastodonFake(media_processing_polls=1) as fake:
        media = [{"url": f"{fake.url}/_herald/media/cover.png", "altText": "A cover"}]
        run = _run(run_adapter, fake, document=payload("With a picture", media=media))
        assert run.exit_code == 0, run.output
        [attachment] = fake.posts[0]["media"]
        assert attachment["description"] == "A cover"
        assert attachment["meta"]["content_type"] == "image/png"
        assert len(fake.requests_to("media.get")) == 2  # 206 while processing, then 200


def test_missing_media_is_rejected_before_posting(run_adapter, mastodon_fake):
    media = [{"url": f"{mastodon_fake.url}/nowhere.png"}]
    run = _run(run_adapter, mastodon_fake, document=payload("Pic", media=media))
    assert run.result["errorClass"] == "rejected"
    assert "404" in run.result["message"]
    assert mastodon_fake.requests_to("statuses") == []


def test_urls_count_as_23_characters(run_adapter, mastodon_fake):
    url = "https://example.org/" + "x" * 80
    ok = _run(run_adapter, mastodon_fake, document=payload("a" * 475, link=url))  # 475 + 2 + 23 = 500
    assert ok.exit_code == 0, ok.output
    too_long = _run(run_adapter, mastodon_fake, document=payload("a" * 476, link=url))
    assert too_long.result["errorClass"] == "rejected"
    assert "501" in too_long.result["message"]
    assert len(mastodon_fake.posts) == 1


def test_verify_finds_the_earlier_status_by_its_text(run_adapter, mastodon_fake):
    document = payload("Herald 1.0 is out & it's <fast>", link="https://e.org/x", tags=["release"])
    mastodon_fake.script("statuses", Script(process=True, delay=5))
    first = _run(run_adapter, mastodon_fake, document=document, timeout=0.3)
    assert first.result["errorClass"] == "unknown_outcome"
    mastodon_fake.add_status("something posted by hand later")
    run = _run(run_adapter, mastodon_fake, document=document, mode="verify", attempt=2)
    assert run.result == {
        **run.result,
        "outcome": "published",
        "verified": True,
        "postId": mastodon_fake.posts[0]["id"],
    }
    assert mastodon_fake.requests_to("statuses")[1:] == []


def test_verify_beyond_the_lookup_relies_on_the_idempotency_key(run_adapter, mastodon_fake):
    mastodon_fake.script("statuses", Script(process=True, delay=5))
    _run(run_adapter, mastodon_fake, timeout=0.3)
    for i in range(45):  # push the earlier status out of the 40 the lookup reads
        mastodon_fake.add_status(f"later status {i}")
    run = _run(run_adapter, mastodon_fake, mode="verify", attempt=2)
    assert run.exit_code == 0
    assert len(mastodon_fake.requests_to("statuses")) == 2  # re-sent, with the same key...
    assert len(mastodon_fake.posts) == 1  # ...so Mastodon returned the original
    assert run.result["postId"] == mastodon_fake.posts[0]["id"]


def test_verify_ignores_identical_text_older_than_a_day(run_adapter, mastodon_fake):
    mastodon_fake.add_status("Herald 1.0 is out", created_at=datetime.now(UTC) - timedelta(days=2))
    run = _run(run_adapter, mastodon_fake, mode="verify")
    assert run.exit_code == 0
    assert "verified" not in run.result
    assert len(mastodon_fake.posts) == 1


def test_invalid_token_is_an_auth_failure_without_the_token(run_adapter, mastodon_fake):
    run = run_adapter("mastodon", endpoint=mastodon_fake.url, credentials={"accessToken": "wrong-mastodon-token-1"})
    assert run.result["errorClass"] == "auth"
    assert "access token is invalid" in run.result["message"]
    assert_no_secrets(run, "wrong-mastodon-token-1")


def test_the_limit_is_the_instances_max_characters(run_adapter):
    with MastodonFake(max_characters=1000) as fake:
        ok = _run(run_adapter, fake, document=payload("a" * 1000))
        assert ok.exit_code == 0, ok.output
        too_long = _run(run_adapter, fake, document=payload("a" * 1001))
        assert too_long.result["errorClass"] == "rejected"
        assert "1001" in too_long.result["message"] and "at most 1000" in too_long.result["message"]
        assert len(fake.requests_to("instance")) == 2


def test_an_instance_without_the_setting_gets_500(run_adapter):
    with MastodonFake(instance_status=404) as fake:
        assert _run(run_adapter, fake, document=payload("a" * 500)).exit_code == 0
        too_long = _run(run_adapter, fake, document=payload("a" * 501))
        assert too_long.result["errorClass"] == "rejected"
        assert len(fake.requests_to("instance.v1")) == 2  # asked v1 after v2's 404


def test_an_unreadable_limit_fails_retryably_only_when_the_text_needs_it(run_adapter):
    with MastodonFake(instance_status=503, max_characters=1000) as fake:
        short = _run(run_adapter, fake, document=payload("a" * 500))
        assert short.exit_code == 0, short.output
        long = _run(run_adapter, fake, document=payload("a" * 700))
        assert long.result["errorClass"] == "server_error"  # retried, not dead-lettered
        assert len(fake.posts) == 1


def test_status_options(run_adapter, mastodon_fake):
    options = {"visibility": "unlisted", "spoilerText": "Spoilers", "sensitive": True, "language": "en"}
    run = _run(run_adapter, mastodon_fake, document=payload("Hidden", options=options))
    assert run.exit_code == 0, run.output
    body = mastodon_fake.requests_to("statuses")[0].json
    assert {k: body[k] for k in ("visibility", "spoiler_text", "sensitive", "language")} == {
        "visibility": "unlisted",
        "spoiler_text": "Spoilers",
        "sensitive": True,
        "language": "en",
    }


def test_the_spoiler_text_counts_toward_the_limit(run_adapter, mastodon_fake):
    run = _run(run_adapter, mastodon_fake, document=payload("a" * 495, options={"spoilerText": "123456"}))
    assert run.result["errorClass"] == "rejected"
    assert "at most 494" in run.result["message"]
    assert mastodon_fake.requests_to("statuses") == []


def test_invalid_status_options_are_rejected(run_adapter, mastodon_fake):
    for options in ({"visibility": "friends"}, {"language": "English"}, {"poll": {}}):
        run = _run(run_adapter, mastodon_fake, document=payload("x", options=options))
        assert run.result["errorClass"] == "rejected", options
        assert "invalid options for mastodon" in run.result["message"]
    assert mastodon_fake.requests_to("statuses") == []


def test_urls_without_a_known_tld_count_in_full(run_adapter, mastodon_fake):
    local = "http://localhost:3000/" + "x" * 460  # no TLD: counted as its 482 characters
    run = _run(run_adapter, mastodon_fake, document=payload("a" * 19 + " " + local))
    assert run.result["errorClass"] == "rejected"
    assert "502" in run.result["message"]
    dotted = "https://example.org/" + "x" * 460  # counted as 23
    assert _run(run_adapter, mastodon_fake, document=payload("a" * 19 + " " + dotted)).exit_code == 0


def test_media_limits_per_type_come_from_the_instance(run_adapter):
    with MastodonFake(image_size_limit=1000, video_size_limit=5000) as fake:
        video = [{"url": f"{fake.url}/_herald/media/clip.mp4?size=3000&type=video/mp4"}]
        ok = _run(run_adapter, fake, document=payload("Clip", media=video))
        assert ok.exit_code == 0, ok.output
        assert fake.posts[0]["media"][0]["type"] == "video"
        image = [{"url": f"{fake.url}/_herald/media/big.png?size=1001"}]
        big = _run(run_adapter, fake, document=payload("Pic", media=image))
        assert big.result["errorClass"] == "rejected"
        assert "at most 1000" in big.result["message"]
        assert len(fake.posts) == 1


def test_media_behind_redirects_are_uploaded(run_adapter, mastodon_fake):
    media = [{"url": f"{mastodon_fake.url}/_herald/media/cover.png?redirects=2", "altText": "A cover"}]
    run = _run(run_adapter, mastodon_fake, document=payload("Pic", media=media))
    assert run.exit_code == 0, run.output
    assert mastodon_fake.posts[0]["media"][0]["description"] == "A cover"


def test_verify_finds_a_status_with_remote_mentions(run_adapter, mastodon_fake):
    document = payload("Thanks @alice@social.example and @bob for Herald")
    mastodon_fake.script("statuses", Script(process=True, delay=5))
    first = _run(run_adapter, mastodon_fake, document=document, timeout=0.3)
    assert first.result["errorClass"] == "unknown_outcome"
    assert ">@<span>alice</span></a>" in mastodon_fake.statuses[0]["content"]  # shown as @alice
    run = _run(run_adapter, mastodon_fake, document=document, mode="verify", attempt=2)
    assert run.result["verified"] is True
    assert len(mastodon_fake.requests_to("statuses")) == 1

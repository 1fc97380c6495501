"""LinkedIn: the Posts API with LinkedIn-Version and Rest.li 2.0 headers, little-text escaping,
images through initializeUpload + PUT, article links, duplicates and verify mode."""

from __future__ import annotations

from tests.platforms import Script
from tests.platforms.linkedin import AUTHOR, DEFAULT_ACCESS_TOKEN, LinkedInFake

from ._support import assert_no_secrets, payload

LINK = "https://example.org/blog/herald-1-0"


def _run(run_adapter, fake, **kw):
    kw.setdefault("credentials", fake.credentials())
    return run_adapter("linkedin", endpoint=fake.url, **kw)


def test_posts_with_the_versioned_headers_and_reports_the_urn(run_adapter, linkedin_fake):
    run = _run(run_adapter, linkedin_fake, document=payload("Herald 1.0 is out", tags=["release"]))
    assert run.exit_code == 0, run.output
    [request] = linkedin_fake.requests_to("posts")
    assert request.headers["authorization"] == f"Bearer {DEFAULT_ACCESS_TOKEN}"
    assert request.headers["linkedin-version"] == "202605"
    assert request.headers["x-restli-protocol-version"] == "2.0.0"
    assert request.json == {
        "author": AUTHOR,
        "commentary": "Herald 1.0 is out\n\n#release",
        "visibility": "PUBLIC",
        "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": False,
    }
    urn = linkedin_fake.posts[0]["id"]
    assert urn.startswith("urn:li:share:")
    assert run.result["postId"] == urn
    assert run.result["url"] == f"https://www.linkedin.com/feed/update/{urn}/"
    assert_no_secrets(run, DEFAULT_ACCESS_TOKEN)


def test_little_text_markup_is_escaped_except_hashtags_and_urls(run_adapter, linkedin_fake):
    text = "Release (v1.0) [beta] @team *now* _really_ ~ <3 | {x} back\\slash #release https://e.org/a_b"
    run = _run(run_adapter, linkedin_fake, document=payload(text))
    assert run.exit_code == 0, run.output
    commentary = linkedin_fake.requests_to("posts")[0].json["commentary"]
    assert commentary == (
        r"Release \(v1.0\) \[beta\] \@team \*now\* \_really\_ \~ \<3 \| \{x\} back\\slash #release https://e.org/a_b"
    )
    assert linkedin_fake.posts[0]["text"] == text  # what readers see


def test_the_3000_limit_counts_the_escapes(run_adapter, linkedin_fake):
    ok = _run(run_adapter, linkedin_fake, document=payload("(" * 1500))
    assert ok.exit_code == 0, ok.output
    too_long = _run(run_adapter, linkedin_fake, document=payload(")" * 1501))
    assert too_long.result["errorClass"] == "rejected"
    assert "3002" in too_long.result["message"] and "3000" in too_long.result["message"]
    assert len(linkedin_fake.requests_to("posts")) == 1


def test_one_image_is_uploaded_and_attached_with_alt_text(run_adapter):
    with LinkedInFake(image_processing_polls=1) as fake:
        media = [{"url": f"{fake.url}/_herald/media/cover.png", "altText": "A cover"}]
        run = _run(run_adapter, fake, document=payload("With a picture", media=media, link=LINK))
        assert run.exit_code == 0, run.output
        [init] = fake.requests_to("images.action")
        assert init.param("action") == "initializeUpload"
        assert init.json == {"initializeUploadRequest": {"owner": AUTHOR}}
        [upload] = fake.requests_to("images.upload")
        assert upload.body.startswith(b"\x89PNG") and upload.headers["content-type"] == "image/png"
        assert upload.headers["authorization"] == f"Bearer {DEFAULT_ACCESS_TOKEN}"
        assert len(fake.requests_to("images.get")) == 2  # PROCESSING, then AVAILABLE
        [image_urn] = [k for k in fake.images if k.startswith("urn:")]
        content = fake.requests_to("posts")[0].json["content"]
        assert content == {"media": {"id": image_urn, "altText": "A cover"}}  # media wins over the link card


def test_several_images_make_a_multi_image_post(run_adapter, linkedin_fake):
    media = [{"url": f"{linkedin_fake.url}/_herald/media/{i}.png", "altText": f"picture {i}"} for i in range(3)]
    run = _run(run_adapter, linkedin_fake, document=payload("Pictures", media=media))
    assert run.exit_code == 0, run.output
    images = linkedin_fake.requests_to("posts")[0].json["content"]["multiImage"]["images"]
    assert [i["altText"] for i in images] == ["picture 0", "picture 1", "picture 2"]
    assert len({i["id"] for i in images}) == 3


def test_the_token_is_not_sent_to_an_upload_url_on_a_foreign_host(run_adapter):
    with LinkedInFake() as fake:
        fake.upload_base = fake.url.replace("127.0.0.1", "localhost")
        run = _run(run_adapter, fake, document=payload("Pic", media=[{"url": f"{fake.url}/_herald/media/a.png"}]))
        assert run.exit_code == 0, run.output
        [upload] = fake.requests_to("images.upload")
        assert "authorization" not in upload.headers


def test_a_link_without_media_becomes_an_article(run_adapter, linkedin_fake):
    run = _run(run_adapter, linkedin_fake, document=payload("Read this", link=LINK, title="Herald 1.0"))
    assert run.exit_code == 0, run.output
    post = linkedin_fake.requests_to("posts")[0].json
    assert post["content"] == {"article": {"source": LINK, "title": "Herald 1.0"}}
    assert post["commentary"] == f"Read this\n\n{LINK}"


def test_options_set_visibility_and_reshare(run_adapter, linkedin_fake):
    document = payload("Members only")
    document["content"]["options"] = {"visibility": "CONNECTIONS", "disableReshare": True}
    run = _run(run_adapter, linkedin_fake, document=document)
    assert run.exit_code == 0, run.output
    post = linkedin_fake.requests_to("posts")[0].json
    assert (post["visibility"], post["isReshareDisabledByAuthor"]) == ("CONNECTIONS", True)
    bad = payload("x")
    bad["content"]["options"] = {"visibility": "EVERYONE"}
    refused = _run(run_adapter, linkedin_fake, document=bad)
    assert refused.result["errorClass"] == "rejected"


def test_linkedin_version_comes_from_the_secret_and_an_inactive_one_is_rejected(run_adapter, linkedin_fake):
    newer = _run(run_adapter, linkedin_fake, credentials={**linkedin_fake.credentials(), "linkedinVersion": "202611"})
    assert newer.exit_code == 0, newer.output
    assert linkedin_fake.requests_to("posts")[0].headers["linkedin-version"] == "202611"
    old = _run(
        run_adapter,
        linkedin_fake,
        document=payload("old"),
        credentials={**linkedin_fake.credentials(), "linkedinVersion": "202401"},
    )
    assert old.result["errorClass"] == "rejected"
    assert "426" in old.result["message"] and "linkedinVersion" in old.result["message"]


def test_an_author_that_is_not_a_urn_is_auth(run_adapter, linkedin_fake):
    run = _run(run_adapter, linkedin_fake, credentials={"accessToken": DEFAULT_ACCESS_TOKEN, "author": "herald"})
    assert run.result["errorClass"] == "auth"
    assert "urn:li:organization" in run.result["message"]
    assert linkedin_fake.requests == []


def test_an_expired_token_is_auth_with_the_way_out(run_adapter, linkedin_fake):
    body = {
        "status": 401,
        "serviceErrorCode": 65602,
        "code": "EXPIRED_ACCESS_TOKEN",
        "message": "The token used in the request has expired",
    }
    linkedin_fake.fail("posts", 401, body)
    run = _run(run_adapter, linkedin_fake)
    assert run.result["errorClass"] == "auth"
    assert "EXPIRED_ACCESS_TOKEN" in run.result["message"] and "60 days" in run.result["message"]


def test_a_duplicate_on_the_first_attempt_is_rejected_with_the_earlier_urn(run_adapter, linkedin_fake):
    earlier = linkedin_fake.add_share("Herald 1.0 is out")
    run = _run(run_adapter, linkedin_fake)
    assert run.result["errorClass"] == "rejected"
    assert earlier["id"] in run.result["message"]


def test_verify_finds_the_earlier_post_by_its_commentary(run_adapter, linkedin_fake):
    document = payload("Herald (1.0) is out", tags=["release"])
    linkedin_fake.script("posts", Script(process=True, delay=5))
    first = _run(run_adapter, linkedin_fake, document=document, timeout=0.3)
    assert first.result["errorClass"] == "unknown_outcome"
    run = _run(run_adapter, linkedin_fake, document=document, mode="verify", attempt=2)
    assert run.result["verified"] is True
    assert run.result["postId"] == linkedin_fake.posts[0]["id"]
    assert len(linkedin_fake.requests_to("posts")) == 1
    [lookup] = linkedin_fake.requests_to("posts.find")
    assert lookup.param("q") == "author" and lookup.param("author") == AUTHOR


def test_verify_without_read_permission_relies_on_the_duplicate_check(run_adapter):
    with LinkedInFake(can_read_posts=False) as fake:
        fake.script("posts", Script(process=True, delay=5))
        _run(run_adapter, fake, timeout=0.3)
        run = _run(run_adapter, fake, mode="verify", attempt=2)
        assert run.exit_code == 0, run.output
        assert run.result["verified"] is True
        assert run.result["postId"] == fake.posts[0]["id"]  # LinkedIn named it in the 422
        assert len(fake.posts) == 1


def test_a_duplicate_on_a_later_attempt_is_the_earlier_attempts_post(run_adapter, linkedin_fake):
    linkedin_fake.fail("posts", 504, {"status": 504, "message": "Gateway Timeout"})
    first = _run(run_adapter, linkedin_fake)
    assert first.result["errorClass"] == "server_error"
    earlier = linkedin_fake.add_share("Herald 1.0 is out")  # it was created after all
    run = _run(run_adapter, linkedin_fake, attempt=2)
    assert run.exit_code == 0, run.output
    assert run.result["postId"] == earlier["id"]
    assert "verified" not in run.result

"""Bluesky against the atproto SDK (MarshalX/atproto, `atproto` on PyPI): every record and
request Herald builds must parse, strictly, as the SDK's models generated from the
lexicons (app.bsky.feed.post, its facets, embeds, langs and reply refs), and the local
PDS's answers as the SDK's response models, so the fake can't drift from the protocol. The
SDK's own session handling (login, JWT expiry, refresh 15 minutes early, rate-limit errors)
runs against the local PDS and reads its tokens as Herald does."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from atproto import Client, models
from atproto_client.client.session import Session
from atproto_client.exceptions import BadRequestError, RateLimitExceededError
from atproto_client.models.dot_dict import DotDict
from atproto_client.models.utils import get_or_create

from herald_adapters._atproto_session import jwt_expiry
from tests.platforms import BlueskyFake, Response

from ._support import payload

PAGE = """<html><head><meta property="og:title" content="Herald 1.0">
<meta property="og:description" content="The release notes">
<meta property="og:image" content="/_herald/media/card.png"></head></html>"""


def strict(data: dict, model):
    """The SDK's model of `data`, with string formats (DIDs, URIs, datetimes, languages) checked."""
    return get_or_create(data, model, strict=True, strict_string_format=True)


def _no_unknown_unions(value) -> None:
    """The SDK decodes an unknown `$type` in an open union to a DotDict instead of failing."""
    assert not isinstance(value, DotDict), value
    if isinstance(value, models.base.ModelBase):
        for name in type(value).model_fields:
            _no_unknown_unions(getattr(value, name))
    elif isinstance(value, list):
        for item in value:
            _no_unknown_unions(item)


def _records(fake: BlueskyFake) -> list[models.AppBskyFeedPost.Record]:
    out = []
    for request in fake.requests_to("createRecord"):
        data = strict(request.json, models.ComAtprotoRepoCreateRecord.Data)
        assert data.collection == "app.bsky.feed.post"
        record = strict(request.json["record"], models.AppBskyFeedPost.Record)
        _no_unknown_unions(record)
        out.append(record)
    return out


@pytest.fixture
def pds():
    with BlueskyFake(handles={"alice.example.com": "did:plc:alice0000000000000000000"}) as fake:
        yield fake


def _run(run_adapter, fake, document):
    return run_adapter("bluesky", endpoint=fake.url, credentials=fake.credentials(), document=document)


def test_a_post_with_links_mentions_tags_and_langs_is_a_valid_record(run_adapter, pds):
    text = "Herald 1.0  🚀 by @alice.example.com: https://example.org/notes #release #https://e.org/x"
    run = _run(run_adapter, pds, payload(text, options={"langs": ["en", "pt-BR"]}))
    assert run.exit_code == 0, run.output
    [record] = _records(pds)
    assert record.langs == ["en", "pt-BR"]
    kinds = [
        type(f.features[0]).__module__.rsplit(".", 1)[-1] + "." + type(f.features[0]).__name__ for f in record.facets
    ]
    assert kinds == ["facet.Mention", "facet.Link", "facet.Tag", "facet.Tag"]
    encoded = record.text.encode()
    for facet in record.facets:
        assert 0 <= facet.index.byte_start < facet.index.byte_end <= len(encoded)
        encoded[facet.index.byte_start : facet.index.byte_end].decode()  # on character boundaries


def test_images_with_alt_text_and_aspect_ratio_are_a_valid_embed(run_adapter, pds):
    media = [
        {"url": f"{pds.url}/_herald/media/a.png", "altText": "A"},
        {"url": f"{pds.url}/_herald/media/b.png?noise=640x480"},
    ]
    run = _run(run_adapter, pds, payload("Pics", media=media))
    assert run.exit_code == 0, run.output
    [record] = _records(pds)
    assert isinstance(record.embed, models.AppBskyEmbedImages.Main)
    assert [(i.aspect_ratio.width, i.aspect_ratio.height) for i in record.embed.images] == [(1, 1), (640, 480)]
    assert [i.alt for i in record.embed.images] == ["A", ""]


def test_a_link_card_with_a_thumbnail_is_a_valid_embed(run_adapter, pds):
    link = pds.serve_static("page.html", Response(200, PAGE, content_type="text/html"))
    run = _run(run_adapter, pds, payload("Read", link=link))
    assert run.exit_code == 0, run.output
    [record] = _records(pds)
    assert isinstance(record.embed, models.AppBskyEmbedExternal.Main)
    assert (record.embed.external.title, record.embed.external.description) == ("Herald 1.0", "The release notes")
    assert record.embed.external.thumb.mime_type == "image/png"


def test_a_video_is_a_valid_embed(run_adapter, pds):
    media = [{"url": f"{pds.url}/_herald/media/v.mp4?size=2048&type=video/mp4", "altText": "Clip"}]
    run = _run(run_adapter, pds, payload("Clip", media=media))
    assert run.exit_code == 0, run.output
    [record] = _records(pds)
    assert isinstance(record.embed, models.AppBskyEmbedVideo.Main)
    assert record.embed.alt == "Clip" and record.embed.video.size == 2048


def test_a_thread_is_valid_records_with_strong_reply_refs(run_adapter, pds):
    text = " ".join(f"Part of a long announcement, sentence {i}." for i in range(25))
    run = _run(run_adapter, pds, payload(text, options={"thread": True}))
    assert run.exit_code == 0, run.output
    records = _records(pds)
    assert len(records) > 1 and records[0].reply is None
    for record in records[1:]:
        assert isinstance(record.reply, models.AppBskyFeedPost.ReplyRef)
        assert record.reply.root.uri == pds.posts[0]["uri"]
        assert record.reply.root.cid.startswith("bafyrei")


def test_the_local_pds_answers_as_the_sdk_expects(run_adapter, pds):
    run = _run(run_adapter, pds, payload("Hi @alice.example.com", media=[{"url": f"{pds.url}/_herald/media/a.png"}]))
    assert run.exit_code == 0, run.output

    def answer(route: str, method: str = "POST", **params):
        request = pds.requests_to(route)[0]
        handler = {
            "createSession": pds.create_session,
            "createRecord": pds.create_record,
            "uploadBlob": pds.upload_blob,
            "resolveHandle": pds.resolve_handle,
            "getRecord": pds.get_record,
        }[route]
        return handler(request).body

    session = strict(answer("createSession"), models.ComAtprotoServerCreateSession.Response)
    assert session.did_doc["service"][0]["serviceEndpoint"] == pds.url
    strict(answer("uploadBlob"), models.ComAtprotoRepoUploadBlob.Response)
    strict(answer("resolveHandle"), models.ComAtprotoIdentityResolveHandle.Response)
    created = json.loads(json.dumps(pds.repo[pds.posts[0]["rkey"]]))
    strict(created, models.ComAtprotoRepoGetRecord.Response)


def test_the_sdk_refuses_what_the_lexicon_refuses():
    """The check above can fail: the SDK's models do enforce the lexicon."""
    record = {"$type": "app.bsky.feed.post", "text": "x", "createdAt": "2026-11-23T10:00:00.000Z"}
    strict(record, models.AppBskyFeedPost.Record)
    for bad in ({"langs": ["en", "de", "fr", "es"]}, {"createdAt": "yesterday"}, {"text": "x" * 3001}):
        with pytest.raises(Exception):  # noqa: B017 - pydantic or the SDK's ModelError
            strict({**record, **bad}, models.AppBskyFeedPost.Record)
    with_unknown_embed = get_or_create(
        {**record, "embed": {"$type": "app.bsky.embed.imagez", "images": []}}, models.AppBskyFeedPost.Record
    )
    with pytest.raises(AssertionError):
        _no_unknown_unions(with_unknown_embed)


# --- sessions: the SDK's login, refresh and rate-limit handling against the local PDS ------------


def test_the_sdk_logs_in_and_refreshes_on_the_local_pds_and_reads_the_tokens_as_herald_does():
    with BlueskyFake(access_ttl=600, handles={"alice.example.com": "did:plc:alice0000000000000000000"}) as pds:
        sdk = Client(base_url=pds.url)
        sdk.login(pds.identifier, pds.app_password, fetch_bsky_profile=False)
        first = Session.decode(sdk.export_session_string())
        # The SDK's JWT parser and Herald's read the same expiry, and the same PDS from the DID document.
        assert jwt_expiry(first.access_jwt) == datetime.fromtimestamp(first.access_jwt_payload.exp, UTC)
        assert first.access_jwt_payload.exp - first.access_jwt_payload.iat == 600
        assert first.refresh_jwt_payload.exp - first.refresh_jwt_payload.iat == 90 * 86400
        assert first.pds_endpoint == pds.url

        # 10 minutes left: the SDK refreshes before its next call (15 minutes early), as Herald does.
        sdk.com.atproto.identity.resolve_handle({"handle": "alice.example.com"})
        second = Session.decode(sdk.export_session_string())
        assert pds.refresh_uses == [first.refresh_jwt]
        assert second.refresh_jwt != first.refresh_jwt  # rotated

        # The old refresh token outlives its rotation by the grace period only; then the PDS says revoked.
        pds.advance(2 * 3600 + 1)
        with pytest.raises(BadRequestError) as revoked:
            sdk.com.atproto.server.refresh_session(
                headers={"Authorization": f"Bearer {first.refresh_jwt}"}, ignore_session_check=True
            )
        assert (revoked.value.response.content.error, revoked.value.response.content.message) == (
            "ExpiredToken",
            "Token has been revoked",
        )
        answer = httpx.post(
            f"{pds.url}/xrpc/com.atproto.server.refreshSession",
            headers={"Authorization": f"Bearer {second.refresh_jwt}"},
        )
        strict(answer.json(), models.ComAtprotoServerRefreshSession.Response)


def test_the_sdk_reads_the_local_pds_login_rate_limit():
    with BlueskyFake() as pds:
        for _ in range(30):
            Client(base_url=pds.url).login(pds.identifier, pds.app_password, fetch_bsky_profile=False)
        with pytest.raises(RateLimitExceededError) as limited:
            Client(base_url=pds.url).login(pds.identifier, pds.app_password, fetch_bsky_profile=False)
        assert (limited.value.limit, limited.value.remaining) == (30, 0)
        assert 0 < (limited.value.reset_at - datetime.now(UTC)).total_seconds() <= 300
        pds.advance(300)  # a new 5-minute window; the day's 300 still count (31 so far, the refused one too)
        login = {"identifier": pds.identifier, "password": pds.app_password}
        with httpx.Client(base_url=f"{pds.url}/xrpc") as http:
            for used in range(31, 300):
                if used % 30 == 1 and used > 31:
                    pds.advance(300)
                http.post("com.atproto.server.createSession", json=login).raise_for_status()
        pds.advance(300)
        with pytest.raises(RateLimitExceededError) as daily:
            Client(base_url=pds.url).login(pds.identifier, pds.app_password, fetch_bsky_profile=False)
        assert (daily.value.limit, daily.value.remaining) == (300, 0)
        assert 86000 < (daily.value.reset_at - datetime.now(UTC)).total_seconds() <= 86400

"""Bluesky: sessions (saved, refreshed, shared by concurrent attempts), deterministic record
keys, facets, embeds and graphemes."""

from __future__ import annotations

import base64
import itertools
import json
import re
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from kubernetes import client as k8s

from herald_adapters._atproto_session import LEASE as SESSION_LEASE
from herald_adapters._atproto_session import SESSION
from herald_adapters._token_store import FileStore
from herald_adapters.bluesky import record_key
from tests.platforms import BlueskyFake, Response, Script
from tests.platforms.bluesky import DID
from tests.support.waiting import wait_until

from ._support import IDEMPOTENCY_KEY, assert_no_secrets, job_env, lay_out, payload

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
    # The page can't be fetched (the test resolves no other host): a card with the title alone.
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
    assert image["aspectRatio"] == {"width": 1, "height": 1}


def test_images_over_a_megabyte_are_reencoded_below_it(run_adapter, bluesky_fake):
    media = [{"url": f"{bluesky_fake.url}/_herald/media/noise.png?noise=700x500", "altText": "Noise"}]
    run = _run(run_adapter, bluesky_fake, document=payload("Pic", media=media))
    assert run.exit_code == 0, run.output
    [image] = bluesky_fake.posts[0]["embed"]["images"]
    blob = bluesky_fake.blobs[image["image"]["ref"]["$link"]]
    assert len(blob) <= 1_000_000 and blob.startswith(b"\xff\xd8\xff")  # a JPEG
    assert image["image"]["mimeType"] == "image/jpeg"
    assert image["aspectRatio"] == {"width": 700, "height": 500}


def test_large_media_that_is_no_image_is_rejected_before_posting(run_adapter, bluesky_fake):
    url = bluesky_fake.serve_static("big.png", Response(200, b"not an image" * 100_000, content_type="image/png"))
    run = _run(run_adapter, bluesky_fake, document=payload("Pic", media=[{"url": url}]))
    assert run.result["errorClass"] == "rejected"
    assert "1000000" in run.result["message"]
    assert bluesky_fake.requests_to("createRecord") == []


def test_limit_counts_graphemes_not_code_points(run_adapter, bluesky_fake):
    family = "👨‍👩‍👧"  # one grapheme, five code points
    ok = _run(run_adapter, bluesky_fake, document=payload(family * 300))
    assert ok.exit_code == 0, ok.output
    bluesky_fake.repo.clear()
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


PAGE = (
    """<!doctype html><html><head><meta charset="utf-8">
<title>Herald 1.0 &ndash; blog</title>
<meta property="og:title" content="Herald 1.0 is out">
<meta property="og:description" content="  A Kubernetes operator
  that publishes   everywhere. ">
<meta property="og:image" content="/_herald/media/card.png?noise=1200x630&amp;redirects=1">
</head><body>"""
    + "<p>filler</p>" * 100_000
)


def test_link_card_has_the_pages_title_description_and_thumbnail(run_adapter, bluesky_fake):
    link = bluesky_fake.serve_static("post.html", Response(200, PAGE, content_type="text/html; charset=utf-8"))
    run = _run(run_adapter, bluesky_fake, document=payload("Read", link=link))
    assert run.exit_code == 0, run.output
    external = bluesky_fake.posts[0]["embed"]["external"]
    assert external["uri"] == link
    assert external["title"] == "Herald 1.0 is out"
    assert external["description"] == "A Kubernetes operator that publishes everywhere."
    thumb = bluesky_fake.blobs[external["thumb"]["ref"]["$link"]]
    assert len(thumb) <= 1_000_000 and external["thumb"]["mimeType"] == "image/jpeg"  # 1200x630 noise, re-encoded


def test_the_publications_title_wins_over_the_pages(run_adapter, bluesky_fake):
    link = bluesky_fake.serve_static("post.html", Response(200, PAGE, content_type="text/html"))
    _run(run_adapter, bluesky_fake, document=payload("Read", link=link, title="Our title"))
    assert bluesky_fake.posts[0]["embed"]["external"]["title"] == "Our title"


def test_a_page_that_cannot_be_read_gives_a_plain_card(run_adapter, bluesky_fake):
    link = f"{bluesky_fake.url}/_herald/static/missing.html"
    run = _run(run_adapter, bluesky_fake, document=payload("Read", link=link))
    assert run.exit_code == 0, run.output
    assert bluesky_fake.posts[0]["embed"]["external"] == {"uri": link, "title": link, "description": ""}


def test_langs_option(run_adapter, bluesky_fake):
    run = _run(run_adapter, bluesky_fake, document=payload("Olá", options={"langs": ["pt-BR", "en"]}))
    assert run.exit_code == 0, run.output
    assert bluesky_fake.posts[0]["langs"] == ["pt-BR", "en"]
    bad = _run(run_adapter, bluesky_fake, document=payload("x", options={"langs": ["not a language"]}))
    assert bad.result["errorClass"] == "rejected"


def test_mentions_resolve_to_dids(run_adapter):
    with BlueskyFake(handles={"alice.example.com": "did:plc:alice"}) as fake:
        text = "Thanks @alice.example.com and @nobody.example.com!"
        run = run_adapter("bluesky", endpoint=fake.url, credentials=fake.credentials(), document=payload(text))
        assert run.exit_code == 0, run.output
        [facet] = fake.posts[0]["facets"]
        assert facet["features"] == [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:alice"}]
        start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
        assert text.encode()[start:end] == b"@alice.example.com"
        assert len(fake.requests_to("resolveHandle")) == 2


def test_a_hashtag_glued_to_a_url_gets_one_facet(run_adapter, bluesky_fake):
    run = _run(run_adapter, bluesky_fake, document=payload("See #https://example.org/x and https://e.org"))
    assert run.exit_code == 0, run.output
    facets = bluesky_fake.posts[0]["facets"]
    spans = [(f["index"]["byteStart"], f["index"]["byteEnd"]) for f in facets]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), spans
    assert [f["features"][0]["$type"].rsplit("#", 1)[1] for f in facets] == ["tag", "link"]


def test_records_go_to_the_accounts_pds_from_the_session(run_adapter):
    with BlueskyFake() as pds, BlueskyFake(pds=pds) as entryway:
        media = [{"url": f"{pds.url}/_herald/media/a.png"}]
        run = run_adapter(
            "bluesky", endpoint=entryway.url, credentials=entryway.credentials(), document=payload("Hi", media=media)
        )
        assert run.exit_code == 0, run.output
        assert len(entryway.requests_to("createSession")) == 1
        assert entryway.requests_to("createRecord") == [] and entryway.requests_to("uploadBlob") == []
        assert len(pds.posts) == 1 and len(pds.blobs) == 1


def test_long_text_becomes_a_thread_with_the_option(run_adapter, bluesky_fake):
    text = " ".join(f"Sentence number {i} of a long announcement." for i in range(20))  # ~870 graphemes
    document = payload(text, link="https://e.org/x", options={"thread": True})
    run = _run(run_adapter, bluesky_fake, document=document)
    assert run.exit_code == 0, run.output
    posts = bluesky_fake.posts
    assert len(posts) == 3 and "thread of 3 posts" in run.result["message"]
    assert all(len(p["text"]) <= 300 for p in posts)
    assert all(p["text"].endswith(".") for p in posts[:-1])  # cut after sentences
    assert " ".join(p["text"] for p in posts).split() == (text + " https://e.org/x").split()
    root = {"uri": posts[0]["uri"], "cid": bluesky_fake.repo[posts[0]["rkey"]]["cid"]}
    assert posts[0]["reply"] is None and posts[0]["embed"]["$type"] == "app.bsky.embed.external"
    for previous, post in itertools.pairwise(posts):
        parent = {"uri": previous["uri"], "cid": bluesky_fake.repo[previous["rkey"]]["cid"]}
        assert post["reply"] == {"root": root, "parent": parent}
        assert post["embed"] is None
    assert run.result["postId"] == posts[0]["uri"]
    again = _run(run_adapter, bluesky_fake, document=document, mode="verify", attempt=2)
    assert again.result["verified"] is True and len(bluesky_fake.posts) == 3


def test_a_thread_interrupted_midway_is_completed_by_the_next_attempt(run_adapter, bluesky_fake):
    text = " ".join(f"Sentence number {i} of a long announcement." for i in range(20))
    document = payload(text, options={"thread": True})
    bluesky_fake.fail("createRecord", 500, {"error": "InternalServerError", "message": "boom"}, times=1)
    bluesky_fake.script("createRecord", Script(process=True), Script(process=True, delay=5))
    first = _run(run_adapter, bluesky_fake, document=document, timeout=0.3)
    assert first.result["errorClass"] == "server_error"
    assert bluesky_fake.posts == []
    second = _run(run_adapter, bluesky_fake, document=document, timeout=0.3, attempt=2)
    assert second.result["errorClass"] == "unknown_outcome"  # part 2 made, its answer lost
    assert len(bluesky_fake.posts) == 2
    third = _run(run_adapter, bluesky_fake, document=document, mode="verify", attempt=3)
    assert third.exit_code == 0, third.output
    assert len(bluesky_fake.posts) == 3 and "verified" not in third.result
    assert [p["reply"]["parent"]["uri"] for p in bluesky_fake.posts[1:]] == [p["uri"] for p in bluesky_fake.posts[:2]]


def test_long_text_without_the_thread_option_is_still_rejected(run_adapter, bluesky_fake):
    run = _run(run_adapter, bluesky_fake, document=payload("word " * 100))
    assert run.result["errorClass"] == "rejected"


def test_a_video_becomes_a_video_embed(run_adapter, bluesky_fake):
    media = [{"url": f"{bluesky_fake.url}/_herald/media/clip.mp4?size=5000&type=video/mp4", "altText": "A clip"}]
    run = _run(run_adapter, bluesky_fake, document=payload("Clip", media=media))
    assert run.exit_code == 0, run.output
    embed = bluesky_fake.posts[0]["embed"]
    assert embed["$type"] == "app.bsky.embed.video" and embed["alt"] == "A clip"
    assert embed["video"]["mimeType"] == "video/mp4" and embed["video"]["size"] == 5000


# --- sessions that outlive one Job: reuse, refresh, one login ------------------------------------


@pytest.fixture
def session_file(tmp_path, monkeypatch) -> Path:
    """A token store for the adapter: a file, as when it runs outside a cluster."""
    path = tmp_path / "bluesky-session.json"
    monkeypatch.setenv("HERALD_TOKEN_STORE_FILE", str(path))
    return path


def _saved(path: Path) -> dict:
    values = FileStore(path).read().values
    assert SESSION_LEASE not in values, "a lease was left behind"
    return json.loads(values[SESSION])


def _posts(run_adapter, fake, count: int, **kw) -> list:
    runs = [_run(run_adapter, fake, document=payload(f"Post {i}"), key=f"{i:032x}", **kw) for i in range(count)]
    for run in runs:
        assert run.exit_code == 0, run.output
    return runs


def test_attempts_with_a_session_store_log_in_once(run_adapter, bluesky_fake, session_file):
    runs = _posts(run_adapter, bluesky_fake, 4)
    assert len(bluesky_fake.requests_to("createSession")) == 1
    assert bluesky_fake.requests_to("refreshSession") == []
    assert len(bluesky_fake.posts) == 4
    saved = _saved(session_file)
    assert {r.bearer() for r in bluesky_fake.requests_to("createRecord")} == {saved["accessJwt"]}
    assert saved["did"] == DID and saved["pds"] == bluesky_fake.url
    assert runs[-1].result["url"] == f"https://bsky.app/profile/{DID}/post/{record_key(f'{3:032x}')}"
    for run in runs:
        assert_no_secrets(run, bluesky_fake.app_password, saved["accessJwt"], saved["refreshJwt"])


def test_without_a_session_store_every_attempt_logs_in(run_adapter, bluesky_fake):
    _posts(run_adapter, bluesky_fake, 2)
    assert len(bluesky_fake.requests_to("createSession")) == 2
    assert bluesky_fake.requests_to("refreshSession") == []


def test_an_access_token_near_its_expiry_is_refreshed_before_it_is_used(run_adapter, session_file):
    with BlueskyFake(access_ttl=600) as fake:  # 10 minutes: within the 15-minute margin
        _posts(run_adapter, fake, 1)
        first = _saved(session_file)
        run = _run(run_adapter, fake, document=payload("Second"), key="f" * 32)
        assert run.exit_code == 0, run.output
        assert len(fake.requests_to("createSession")) == 1
        assert fake.refresh_uses == [first["refreshJwt"]]
        second = _saved(session_file)
        assert second["refreshJwt"] != first["refreshJwt"]  # rotated, and the new one saved
        # The refreshed token served every call: the PDS never saw the old one again.
        assert [r.bearer() for r in fake.requests_to("createRecord")] == [first["accessJwt"], second["accessJwt"]]
        assert_no_secrets(run, first["accessJwt"], first["refreshJwt"], second["accessJwt"], second["refreshJwt"])


def test_an_access_token_the_pds_calls_expired_is_refreshed_and_the_call_repeated(
    run_adapter, bluesky_fake, session_file
):
    _posts(run_adapter, bluesky_fake, 1)
    first = _saved(session_file)
    bluesky_fake.advance(3 * 3600)  # the PDS's clock: the saved access token has expired
    run = _run(run_adapter, bluesky_fake, document=payload("Later"), key="f" * 32)
    assert run.exit_code == 0, run.output
    second = _saved(session_file)
    creates = bluesky_fake.requests_to("createRecord")
    assert [r.bearer() for r in creates[1:]] == [first["accessJwt"], second["accessJwt"]]
    assert bluesky_fake.refresh_uses == [first["refreshJwt"]]
    assert len(bluesky_fake.requests_to("createSession")) == 1
    assert [p["text"] for p in bluesky_fake.posts] == ["Post 0", "Later"]


def test_a_revoked_refresh_token_leads_to_one_new_login(run_adapter, bluesky_fake, session_file):
    _posts(run_adapter, bluesky_fake, 1)
    first = _saved(session_file)
    bluesky_fake.revoke_refresh_tokens()  # e.g. the account's password was changed
    bluesky_fake.advance(3 * 3600)
    run = _run(run_adapter, bluesky_fake, document=payload("After the revocation"), key="e" * 32)
    assert run.exit_code == 0, run.output
    assert bluesky_fake.refresh_uses == [first["refreshJwt"]]  # refused: 400 ExpiredToken
    assert len(bluesky_fake.requests_to("createSession")) == 2
    _run(run_adapter, bluesky_fake, document=payload("And after"), key="d" * 32)
    assert len(bluesky_fake.requests_to("createSession")) == 2  # the new session is saved and reused
    assert len(bluesky_fake.posts) == 3


def test_a_session_of_another_login_is_not_reused(run_adapter, bluesky_fake, session_file):
    _posts(run_adapter, bluesky_fake, 1)
    other = {"identifier": DID, "appPassword": bluesky_fake.app_password}  # the Secret now names the DID
    run = run_adapter("bluesky", endpoint=bluesky_fake.url, credentials=other, key="c" * 32)
    assert run.exit_code == 0, run.output
    assert len(bluesky_fake.requests_to("createSession")) == 2
    assert bluesky_fake.requests_to("refreshSession") == []


def test_logins_are_rate_limited_as_on_the_pds_and_a_saved_session_needs_none(run_adapter, bluesky_fake, tmp_path):
    store = tmp_path / "session.json"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HERALD_TOKEN_STORE_FILE", str(store))
        _posts(run_adapter, bluesky_fake, 1)  # login 1 of 30 in these 5 minutes
    for _ in range(29):
        login = httpx.post(f"{bluesky_fake.url}/xrpc/com.atproto.server.createSession", json={"identifier": "x"})
        assert login.status_code == 401  # a failed login counts too, but against its own identifier
        httpx.post(
            f"{bluesky_fake.url}/xrpc/com.atproto.server.createSession",
            json={"identifier": bluesky_fake.identifier, "password": bluesky_fake.app_password},
        ).raise_for_status()
    limited = _run(run_adapter, bluesky_fake, document=payload("No store"), key="b" * 32)
    assert limited.result["errorClass"] == "rate_limited"
    assert "RateLimitExceeded" in limited.result["message"]
    assert 0 < limited.result["retryAfterSeconds"] <= 300
    assert limited.result["rateLimit"]["remaining"] == 0
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HERALD_TOKEN_STORE_FILE", str(store))
        saved = _run(run_adapter, bluesky_fake, document=payload("Saved session"), key="a" * 32)
    assert saved.exit_code == 0, saved.output
    assert [p["text"] for p in bluesky_fake.posts] == ["Post 0", "Saved session"]


# --- concurrent attempts through the adapter's Secret, on the real cluster --------------------------

ENTRYPOINT = Path(sys.executable).with_name("herald-adapter")  # the console script the image runs
SECRET = "bluesky-main-credentials"
ACCOUNT = "herald-bluesky-sessions"


def _session_rbac(api, namespace: str) -> None:
    """What docs/adapters.md asks for: a ServiceAccount whose Role may get and patch the one Secret."""
    rbac = k8s.RbacAuthorizationV1Api(api)
    k8s.CoreV1Api(api).create_namespaced_service_account(
        namespace, {"metadata": {"name": ACCOUNT}, "automountServiceAccountToken": False}
    )
    rule = {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [SECRET], "verbs": ["get", "patch"]}
    rbac.create_namespaced_role(namespace, {"metadata": {"name": ACCOUNT}, "rules": [rule]})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": ACCOUNT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ACCOUNT},
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}],
        },
    )


def _projected_token(api, namespace: str, directory: Path) -> Path:
    """The files the operator's projected volume gives the pod (serviceAccountToken: true)."""
    directory.mkdir()
    token = k8s.CoreV1Api(api).create_namespaced_service_account_token(
        ACCOUNT, namespace, {"spec": {"expirationSeconds": 600}}
    )
    (directory / "token").write_text(token.status.token)
    (directory / "ca.crt").write_bytes(Path(api.configuration.ssl_ca_cert).read_bytes())
    (directory / "namespace").write_text(namespace)
    return directory


def _waiting(attempts) -> int:
    return sum("is renewing the session; waiting" in Path(log.name).read_text() for _, log, _ in attempts)


def _race(fake: BlueskyFake, tmp_path: Path, credentials: dict[str, str], env: dict[str, str]) -> list[str]:
    """Four attempts at once, as separate processes (pods); the first login is held until the
    three others wait for it. Returns each attempt's output (log and result)."""
    fake.login_gate = threading.Event()
    attempts = []
    for i in range(4):
        paths = lay_out(tmp_path / f"pod{i}", credentials=credentials, document=payload(f"Concurrent {i}"))
        # A long call timeout: the held login must outlast the other processes' start-up.
        pod_env = job_env(paths, platform="bluesky", endpoint=fake.url, key=f"{i:032x}", timeout=30)
        pod_env.update(env, HOSTNAME=f"pod-{i}")
        pod_env["HERALD_PUBLICATION"] = pod_env["HERALD_PUBLICATION"].format(i=i)
        log = (tmp_path / f"pod{i}.log").open("w+")
        proc = subprocess.Popen([str(ENTRYPOINT)], env=pod_env, stdout=log, stderr=subprocess.STDOUT, text=True)
        attempts.append((proc, log, paths))
    try:
        wait_until(lambda: fake.requests_to("createSession"), 60, "the first login")
        wait_until(lambda: _waiting(attempts) == 3, 60, "the other attempts to wait for the login in progress")
        fake.login_gate.set()
        for proc, _, _ in attempts:
            proc.wait(timeout=60)
    finally:
        fake.login_gate.set()
        for proc, log, _ in attempts:
            if proc.poll() is None:
                proc.kill()
            log.close()
    outputs = [Path(log.name).read_text() + paths["result"].read_text() for _, log, paths in attempts]
    assert [proc.returncode for proc, _, _ in attempts] == [0, 0, 0, 0], outputs
    assert _waiting(attempts) == 3  # each waited for the one login, none logged in itself
    assert len(fake.requests_to("createSession")) == 1
    assert fake.requests_to("refreshSession") == []
    assert sorted(p["text"] for p in fake.posts) == [f"Concurrent {i}" for i in range(4)]
    return outputs


def test_concurrent_attempts_share_one_login_through_a_session_file(tmp_path, bluesky_fake):
    store = tmp_path / "session.json"
    outputs = _race(bluesky_fake, tmp_path, bluesky_fake.credentials(), {"HERALD_TOKEN_STORE_FILE": str(store)})
    saved = _saved(store)
    assert {r.bearer() for r in bluesky_fake.requests_to("createRecord")} == {saved["accessJwt"]}
    for output in outputs:
        for secret in (bluesky_fake.app_password, saved["accessJwt"], saved["refreshJwt"]):
            assert secret not in output, "a credential leaked into an attempt's output"


@pytest.mark.cluster
def test_concurrent_attempts_share_one_login_through_the_adapters_secret(api, namespace, tmp_path, bluesky_fake):
    core = k8s.CoreV1Api(api)
    credentials = {**bluesky_fake.credentials(), "tokenStoreSecret": SECRET}
    core.create_namespaced_secret(namespace, {"metadata": {"name": SECRET}, "stringData": credentials})
    _session_rbac(api, namespace)
    sa_dir = _projected_token(api, namespace, tmp_path / "serviceaccount")
    url = f"{api.configuration.host}/api/v1/namespaces/{namespace}/secrets/{SECRET}"
    sa_token = (sa_dir / "token").read_text()
    as_pod = {"Authorization": f"Bearer {sa_token}"}
    ca = ssl.create_default_context(cafile=sa_dir / "ca.crt")
    wait_until(lambda: httpx.get(url, headers=as_pod, verify=ca).is_success, 30, "the Role to grant the Secret")
    env = {
        "HERALD_PUBLICATION": f"{namespace}/launch-{{i}}",  # the pod's namespace, where its Secret is
        "HERALD_KUBE_API_URL": api.configuration.host,
        "HERALD_KUBE_SERVICEACCOUNT_DIR": str(sa_dir),
    }
    outputs = _race(bluesky_fake, tmp_path, credentials, env)
    data = core.read_namespaced_secret(SECRET, namespace).data
    assert SESSION_LEASE not in data
    saved = json.loads(base64.b64decode(data[SESSION]))
    assert {r.bearer() for r in bluesky_fake.requests_to("createRecord")} == {saved["accessJwt"]}
    for output in outputs:
        for secret in (bluesky_fake.app_password, saved["accessJwt"], saved["refreshJwt"], sa_token):
            assert secret not in output, "a credential leaked into an attempt's output"


@pytest.mark.cluster
def test_a_store_the_role_does_not_cover_costs_a_login_not_the_post(
    api, namespace, tmp_path, bluesky_fake, run_adapter, monkeypatch
):
    _session_rbac(api, namespace)  # the Role names SECRET only
    sa_dir = _projected_token(api, namespace, tmp_path / "serviceaccount")
    monkeypatch.setenv("HERALD_KUBE_API_URL", api.configuration.host)
    monkeypatch.setenv("HERALD_KUBE_SERVICEACCOUNT_DIR", str(sa_dir))
    credentials = {**bluesky_fake.credentials(), "tokenStoreSecret": "someone-elses-secret"}
    env = {"HERALD_PUBLICATION": f"{namespace}/launch"}  # the pod's namespace
    run = run_adapter("bluesky", endpoint=bluesky_fake.url, credentials=credentials, extra_env=env)
    assert run.exit_code == 0, run.output
    assert len(bluesky_fake.posts) == 1 and len(bluesky_fake.requests_to("createSession")) == 1
    assert "cannot use the session store" in run.stderr and "HTTP 403" in run.stderr
    assert_no_secrets(run, (sa_dir / "token").read_text(), bluesky_fake.app_password)

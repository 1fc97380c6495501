"""X: posts, weighted length, media with alt text, duplicates and verify mode, and the
OAuth 2.0 tokens that outlive one Job (rotation, the refresh race, a crash mid-rotation)."""

from __future__ import annotations

import base64
import signal
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from herald_adapters import x
from herald_adapters._base import Context
from herald_adapters._contract import AdapterError, Settings, load_payload
from herald_adapters._credentials import Credentials
from herald_adapters._http import Http
from herald_adapters._oauth2 import ACCESS_TOKEN, LEASE, REFRESH_TOKEN, REFUSED, Lease, TokenManager
from herald_adapters._redact import Redactor
from herald_adapters._token_store import FileStore, KubernetesSecretStore, MemoryStore, TokenStore
from herald_adapters._twitter_text import weighted_length
from tests.platforms import Script
from tests.platforms.x import (
    CLIENT_ID,
    DEFAULT_ACCESS_TOKEN,
    DEFAULT_REFRESH_TOKEN,
    SA_TOKEN,
    SECRET_NAME,
    USER_ID,
    KubeSecretsFake,
    XFake,
)

from ._support import assert_no_secrets, job_env, lay_out, payload

LINK = "https://example.org/blog/herald-1-0"


def _run(run_adapter, fake, **kw):
    kw.setdefault("credentials", fake.credentials())
    return run_adapter("x", endpoint=fake.url, **kw)


def _refresh_only(fake: XFake) -> dict[str, str]:
    """What a user puts in the Secret after authorizing: the client id and a refresh token."""
    return {"clientId": fake.client_id, "refreshToken": DEFAULT_REFRESH_TOKEN}


# --- posting ---------------------------------------------------------------------------------


def test_posts_with_the_user_token_and_reports_the_post(run_adapter, x_fake):
    run = _run(run_adapter, x_fake, document=payload("Herald 1.0 is out", link=LINK, tags=["release"]))
    assert run.exit_code == 0, run.output
    [request] = x_fake.requests_to("tweets")
    assert request.headers["authorization"] == f"Bearer {DEFAULT_ACCESS_TOKEN}"
    assert request.json == {"text": f"Herald 1.0 is out\n\n{LINK}\n\n#release"}
    post = x_fake.posts[0]
    assert run.result["postId"] == post["id"]
    assert run.result["url"] == f"https://x.com/i/web/status/{post['id']}"
    # the tightest window X reported: 16 posts left for the user today (of 99 requests in 15 minutes)
    assert run.result["rateLimit"]["remaining"] == 16
    reset = datetime.fromisoformat(run.result["rateLimit"]["resetAt"].replace("Z", "+00:00"))
    assert timedelta(hours=23) < reset - datetime.now(UTC) <= timedelta(hours=24)
    assert x_fake.refresh_uses == []  # the saved access token was still valid
    assert_no_secrets(run, *x_fake.credentials().values())


def test_a_url_counts_as_23_and_cjk_as_2(run_adapter, x_fake):
    url = "https://example.org/" + "x" * 80
    ok = _run(run_adapter, x_fake, document=payload("a" * 255, link=url))  # 255 + 2 + 23 = 280
    assert ok.exit_code == 0, ok.output
    too_long = _run(run_adapter, x_fake, document=payload("b" * 256, link=url))
    assert too_long.result["errorClass"] == "rejected"
    assert "281" in too_long.result["message"] and "280" in too_long.result["message"]
    assert "truncate" in too_long.result["message"]
    cjk = _run(run_adapter, x_fake, document=payload("あ" * 140))
    assert cjk.exit_code == 0, cjk.output
    cjk_long = _run(run_adapter, x_fake, document=payload("い" * 141))
    assert cjk_long.result["errorClass"] == "rejected"
    assert len(x_fake.requests_to("tweets")) == 2  # the refused texts never reached X


def test_truncate_fits_the_weighted_limit_and_keeps_the_link(run_adapter, x_fake):
    run = _run(run_adapter, x_fake, document=payload("語 word " * 200, link=LINK, truncate=True))
    assert run.exit_code == 0, run.output
    posted = x_fake.posts[0]["text"]
    assert posted.endswith(LINK) and "…" in posted
    assert 270 <= weighted_length(posted) <= 280


def test_media_are_uploaded_with_alt_text(run_adapter):
    with XFake(media_processing_polls=1) as fake:
        media = [
            {"url": f"{fake.url}/_herald/media/cover.png", "altText": "A cover"},
            {"url": f"{fake.url}/_herald/media/back.png"},
        ]
        run = _run(run_adapter, fake, document=payload("With pictures", media=media))
        assert run.exit_code == 0, run.output
        uploads = fake.requests_to("media.upload")
        assert [r.json["media_category"] for r in uploads] == ["tweet_image", "tweet_image"]
        assert base64.b64decode(uploads[0].json["media"]).startswith(b"\x89PNG")
        [metadata] = fake.requests_to("media.metadata")
        media_id = metadata.json["id"]
        assert metadata.json["metadata"] == {"alt_text": {"text": "A cover"}}
        assert fake.media[media_id]["alt_text"] == "A cover"
        [post] = fake.requests_to("tweets")
        assert post.json["media"]["media_ids"][0] == media_id
        assert len(post.json["media"]["media_ids"]) == 2
        assert len(fake.requests_to("media.status")) == 2  # polled while X processed each image


def test_media_that_is_not_an_image_is_rejected_before_uploading(run_adapter, x_fake):
    media = [{"url": f"{x_fake.url}/_herald/media/clip.mp4?type=video/mp4"}]
    run = _run(run_adapter, x_fake, document=payload("A clip", media=media))
    assert run.result["errorClass"] == "rejected"
    assert "video/mp4" in run.result["message"]
    assert x_fake.requests_to("media.upload") == [] and x_fake.posts == []


def test_a_gif_cannot_be_mixed_with_other_images(run_adapter, x_fake):
    media = [
        {"url": f"{x_fake.url}/_herald/media/a.gif?type=image/gif"},
        {"url": f"{x_fake.url}/_herald/media/b.png"},
    ]
    run = _run(run_adapter, x_fake, document=payload("Mixed", media=media))
    assert run.result["errorClass"] == "rejected"
    assert "GIF" in run.result["message"]
    assert x_fake.requests_to("media.upload") == []


# --- duplicates and verify mode -----------------------------------------------------------


def test_a_duplicate_on_the_first_attempt_is_rejected(run_adapter, x_fake):
    x_fake.add_tweet("Herald 1.0 is out")  # the account posted this text itself
    run = _run(run_adapter, x_fake)
    assert run.exit_code == 1
    assert run.result["errorClass"] == "rejected"
    assert "duplicate" in run.result["message"]
    assert x_fake.posts == []


def test_verify_finds_the_earlier_post_through_t_co_links_and_entities(run_adapter, x_fake):
    document = payload("Herald 1.0 is out & <fast>, see example.com", link=LINK, tags=["release"])
    x_fake.script("tweets", Script(process=True, delay=5))
    first = _run(run_adapter, x_fake, document=document, timeout=0.3)
    assert first.result["errorClass"] == "unknown_outcome"
    x_fake.add_tweet("something posted by hand later")
    run = _run(run_adapter, x_fake, document=document, mode="verify", attempt=2)
    assert run.exit_code == 0, run.output
    assert run.result["verified"] is True
    assert run.result["postId"] == x_fake.posts[0]["id"]
    assert len(x_fake.requests_to("tweets")) == 1
    [lookup] = x_fake.requests_to("users.tweets")
    assert lookup.param("exclude") == "retweets,replies" and lookup.param("start_time")


def test_verify_without_timeline_access_relies_on_the_duplicate_check(run_adapter, x_fake):
    x_fake.script("tweets", Script(process=True, delay=5))
    _run(run_adapter, x_fake, timeout=0.3)
    # Free tier: no access to the timeline lookup.
    body = {"title": "Forbidden", "detail": "Forbidden", "type": "about:blank", "status": 403}
    x_fake.fail("users.me", 403, body, times=2)
    run = _run(run_adapter, x_fake, mode="verify", attempt=2)
    assert run.exit_code == 0, run.output
    assert run.result["outcome"] == "published"
    assert run.result["verified"] is True
    assert "duplicate" in run.result["message"]
    assert len(x_fake.posts) == 1  # X refused the second post


def test_a_duplicate_on_a_later_attempt_is_the_earlier_attempts_post(run_adapter, x_fake):
    x_fake.fail("tweets", 503, {"title": "Service Unavailable", "status": 503}, {"Retry-After": "5"})
    first = _run(run_adapter, x_fake)
    assert first.result["errorClass"] == "server_error"
    x_fake.add_tweet("Herald 1.0 is out")  # X had made the post after all
    run = _run(run_adapter, x_fake, attempt=2, credentials={**x_fake.credentials(), "userId": USER_ID})
    assert run.exit_code == 0, run.output
    assert run.result["postId"] == x_fake.tweets[0]["id"]
    assert "verified" not in run.result
    assert x_fake.requests_to("users.me") == []  # userId from the Secret saves the lookup


# --- tokens: refresh, write-back, and their failures ------------------------------------------


@pytest.fixture
def token_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "x-tokens.json"
    monkeypatch.setenv("HERALD_TOKEN_STORE_FILE", str(path))
    return path


def test_refreshes_saves_the_rotated_tokens_and_reuses_them(run_adapter, x_fake, token_file):
    first = _run(run_adapter, x_fake, credentials=_refresh_only(x_fake))
    assert first.exit_code == 0, first.output
    assert x_fake.refresh_uses == [DEFAULT_REFRESH_TOKEN]
    saved = FileStore(token_file).read().values
    [valid] = x_fake.valid_refresh_tokens()
    assert saved[REFRESH_TOKEN] == valid != DEFAULT_REFRESH_TOKEN
    assert x_fake.requests_to("tweets")[0].bearer() == saved[ACCESS_TOKEN]
    assert LEASE not in saved
    expires = datetime.fromisoformat(saved["accessTokenExpiresAt"].replace("Z", "+00:00"))
    assert timedelta(minutes=115) < expires - datetime.now(UTC) <= timedelta(hours=2)
    assert_no_secrets(first, saved[ACCESS_TOKEN], saved[REFRESH_TOKEN])

    second = _run(run_adapter, x_fake, credentials=_refresh_only(x_fake), document=payload("Second post"))
    assert second.exit_code == 0, second.output
    assert x_fake.refresh_uses == [DEFAULT_REFRESH_TOKEN]  # the saved access token is still good


def test_a_refused_access_token_is_refreshed_once_and_the_post_retried(run_adapter, x_fake, token_file):
    saved = x_fake.credentials()  # valid for two hours, as far as the Secret knows
    x_fake.expire_access_token()  # revoked or expired early: X answers 401
    run = _run(run_adapter, x_fake, credentials=saved)
    assert run.exit_code == 0, run.output
    assert [r.bearer() == DEFAULT_ACCESS_TOKEN for r in x_fake.requests_to("tweets")] == [True, False]
    assert x_fake.refresh_uses == [DEFAULT_REFRESH_TOKEN]
    assert len(x_fake.posts) == 1


def test_without_a_writable_store_a_rotating_refresh_token_is_never_used(run_adapter, x_fake):
    run = _run(run_adapter, x_fake, credentials=_refresh_only(x_fake))
    assert run.exit_code == 1
    assert run.result["errorClass"] == "auth"
    assert "tokenStoreSecret" in run.result["message"]
    assert x_fake.refresh_uses == []  # the refresh token in the Secret still works
    assert x_fake.posts == []


def test_a_confidential_client_refreshes_with_basic_auth(run_adapter, token_file):
    with XFake(client_secret="fake-x-client-secret-9d") as fake:
        creds = {**_refresh_only(fake), "clientSecret": "fake-x-client-secret-9d"}
        run = _run(run_adapter, fake, credentials=creds)
        assert run.exit_code == 0, run.output
        [request] = fake.requests_to("token")
        assert request.headers["authorization"].startswith("Basic ")
        assert "client_id" not in request.body.decode()
        assert_no_secrets(run, "fake-x-client-secret-9d")


def test_a_refused_refresh_token_is_auth_and_is_not_retried(run_adapter, x_fake, token_file):
    dead = "fake-x-refresh-token-dead"
    run = _run(run_adapter, x_fake, credentials={"clientId": CLIENT_ID, "refreshToken": dead})
    assert run.result["errorClass"] == "auth"
    assert "Value passed for the token was invalid" in run.result["message"]
    assert "authorize Herald's X app again" in run.result["message"]
    assert FileStore(token_file).read().values.get(REFUSED)
    again = _run(run_adapter, x_fake, credentials={"clientId": CLIENT_ID, "refreshToken": dead})
    assert again.result["errorClass"] == "auth"
    assert "in an earlier attempt" in again.result["message"]
    assert x_fake.refresh_uses == [dead]


# --- the token store outliving the Job: races and crashes ---------------------------------------


def _context(tmp_path: Path, fake: XFake, credentials: dict[str, str]) -> Context:
    paths = lay_out(tmp_path / uuid.uuid4().hex, credentials=credentials, document=payload())
    settings = Settings.from_env(job_env(paths, platform="x", endpoint=fake.url))
    redact = Redactor()
    return Context(
        settings=settings,
        payload=load_payload(settings.payload_file),
        credentials=Credentials(settings.credentials_dir, redact),
        http=Http(settings.timeout_seconds, redact),
        redact=redact,
    )


def _manager(ctx: Context, fake: XFake, store: TokenStore, holder: str, clock=None) -> TokenManager:
    return TokenManager(
        store,
        x._refresher(ctx, fake.url),
        platform="X",
        redact=ctx.redact,
        clock=clock or ctx.http.now,
        lease_seconds=30,
        holder=holder,
        reauthorize=x.REAUTHORIZE,
    )


def _expired_state(fake: XFake) -> dict[str, str]:
    fake.expire_access_token()
    return {
        "clientId": fake.client_id,
        "refreshToken": DEFAULT_REFRESH_TOKEN,
        "accessToken": DEFAULT_ACCESS_TOKEN,
        "accessTokenExpiresAt": "2026-01-01T00:00:00Z",
    }


class _Racing:
    """Every racer reads the same version before any of them writes."""

    def __init__(self, inner: TokenStore, barrier: threading.Barrier):
        self.inner, self.barrier = inner, barrier
        self.description, self.writable = inner.description, inner.writable
        self._seen = threading.local()

    def read(self):
        snapshot = self.inner.read()
        if not getattr(self._seen, "done", False):
            self._seen.done = True
            self.barrier.wait(timeout=10)
        return snapshot

    def write(self, version, changes):
        return self.inner.write(version, changes)


def _kube_store(kube: KubeSecretsFake, tmp_path: Path, redact: Redactor) -> KubernetesSecretStore:
    token = tmp_path / f"sa-token-{uuid.uuid4().hex}"
    token.write_text(SA_TOKEN)
    return KubernetesSecretStore(
        "news", SECRET_NAME, api_url=kube.url, token_file=token, ca_file=None, timeout=5, redact=redact
    )


@pytest.mark.parametrize("backend", ["memory", "file", "kubernetes"])
def test_two_pods_racing_a_refresh_rotate_once_and_share_the_new_token(backend, tmp_path, x_fake, kube_fake):
    state = _expired_state(x_fake)
    contexts = [_context(tmp_path, x_fake, state) for _ in range(2)]
    if backend == "memory":
        shared = MemoryStore(dict(state))
        stores: list[TokenStore] = [shared, shared]
    elif backend == "file":
        stores = [FileStore(tmp_path / "tokens.json", state), FileStore(tmp_path / "tokens.json", state)]
    else:
        kube_fake.put_secret(SECRET_NAME, state)
        stores = [_kube_store(kube_fake, tmp_path, ctx.redact) for ctx in contexts]
    barrier = threading.Barrier(2)
    managers = [
        _manager(ctx, x_fake, _Racing(store, barrier), f"pod-{i}")
        for i, (ctx, store) in enumerate(zip(contexts, stores, strict=True))
    ]
    results: list[str | BaseException] = [""] * 2

    def race(i: int) -> None:
        try:
            results[i] = managers[i].access_token()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()

    # Exactly one refresh reached X, and no refresh token was ever presented twice.
    assert x_fake.refresh_uses == [DEFAULT_REFRESH_TOKEN]
    assert sorted(m.refreshed for m in managers) == [False, True]
    # Both pods use the one new access token, and the new refresh token is saved.
    assert results[0] == results[1]
    assert isinstance(results[0], str) and results[0] in x_fake.access_tokens
    saved = stores[0].read().values
    assert saved[ACCESS_TOKEN] == results[0]
    assert [saved[REFRESH_TOKEN]] == x_fake.valid_refresh_tokens()
    assert LEASE not in saved
    if backend == "kubernetes":
        assert kube_fake.conflicts >= 1  # the loser's lease write got 409 Conflict


class _Crash(BaseException):
    """The pod is killed (SIGKILL, node loss): nothing after this runs."""


class _DiesBeforeSaving:
    def __init__(self, inner: TokenStore):
        self.inner = inner
        self.description, self.writable = inner.description, inner.writable

    def read(self):
        return self.inner.read()

    def write(self, version, changes):
        if REFRESH_TOKEN in changes:
            raise _Crash()
        return self.inner.write(version, changes)


def test_a_pod_killed_between_rotation_and_saving_ends_in_auth_with_reauthorize(tmp_path, x_fake, kube_fake):
    state = _expired_state(x_fake)
    kube_fake.put_secret(SECRET_NAME, state)
    ctx = _context(tmp_path, x_fake, state)

    dying = _manager(ctx, x_fake, _DiesBeforeSaving(_kube_store(kube_fake, tmp_path, ctx.redact)), "pod-a")
    with pytest.raises(_Crash):
        dying.access_token()
    assert x_fake.refresh_uses == [DEFAULT_REFRESH_TOKEN]  # X rotated; the new token died with the pod
    lease = Lease.parse(kube_fake.values()[LEASE])
    assert lease is not None and lease.holder == "pod-a"

    # The next attempt, after the lease expired, takes it over and learns the token is dead.
    later = datetime.now(UTC) + timedelta(seconds=60)
    ctx_b = _context(tmp_path, x_fake, state)
    store_b = _kube_store(kube_fake, tmp_path, ctx_b.redact)
    with pytest.raises(AdapterError) as refused:
        _manager(ctx_b, x_fake, store_b, "pod-b", clock=lambda: later).access_token()
    result = refused.value.result
    assert result.error_class.value == "auth"
    assert "An earlier attempt (pod-a) started a refresh and never saved its result" in result.message
    assert "authorize Herald's X app again" in result.message
    assert LEASE not in kube_fake.values() and kube_fake.values()[REFUSED]

    # Attempts after that fail at once, without sending the token or writing the Secret (whose
    # new resourceVersion would make Herald retry at once, forever).
    writes, version = kube_fake.writes, kube_fake.version()
    with pytest.raises(AdapterError, match="in an earlier attempt"):
        _manager(ctx_b, x_fake, _kube_store(kube_fake, tmp_path, ctx_b.redact), "pod-c").access_token()
    assert (kube_fake.writes, kube_fake.version()) == (writes, version)
    assert x_fake.refresh_uses == [DEFAULT_REFRESH_TOKEN, DEFAULT_REFRESH_TOKEN]

    # Re-authorizing (a new refresh token in the Secret) recovers.
    fresh = x_fake.add_refresh_token("fake-x-refresh-token-reauthorized")
    kube_fake.put_secret(SECRET_NAME, {"clientId": CLIENT_ID, "refreshToken": fresh})
    token = _manager(ctx_b, x_fake, _kube_store(kube_fake, tmp_path, ctx_b.redact), "pod-d").access_token()
    assert token in x_fake.access_tokens and kube_fake.values()[ACCESS_TOKEN] == token


@pytest.fixture
def in_cluster(tmp_path, monkeypatch, kube_fake) -> KubeSecretsFake:
    """The adapter's environment in a pod with a ServiceAccount token, against the fake API server."""
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(SA_TOKEN)
    (sa / "namespace").write_text("news")
    monkeypatch.setenv("HERALD_KUBE_API_URL", kube_fake.url)
    monkeypatch.setenv("HERALD_KUBE_SERVICEACCOUNT_DIR", str(sa))
    return kube_fake


def test_in_cluster_the_rotated_tokens_are_written_to_the_adapters_secret(run_adapter, x_fake, in_cluster):
    secret = {**_refresh_only(x_fake), "tokenStoreSecret": SECRET_NAME}
    in_cluster.put_secret(SECRET_NAME, secret)
    run = _run(run_adapter, x_fake, credentials=secret)
    assert run.exit_code == 0, run.output
    values = in_cluster.values()
    assert [values[REFRESH_TOKEN]] == x_fake.valid_refresh_tokens()
    assert x_fake.requests_to("tweets")[0].bearer() == values[ACCESS_TOKEN]
    patches = in_cluster.requests_to("secret.patch")
    assert all(p.headers["content-type"] == "application/merge-patch+json" for p in patches)
    assert all(p.json["metadata"]["resourceVersion"] for p in patches)
    assert_no_secrets(run, SA_TOKEN, values[ACCESS_TOKEN], values[REFRESH_TOKEN])


def test_in_cluster_a_secret_outside_the_role_fails_without_refreshing(run_adapter, x_fake, in_cluster):
    secret = {**_refresh_only(x_fake), "tokenStoreSecret": "someone-elses-secret"}
    run = _run(run_adapter, x_fake, credentials=secret)
    assert run.exit_code == 1
    assert "forbidden" in run.result["message"].lower() or "403" in run.result["message"]
    assert x_fake.refresh_uses == []


def test_sigterm_during_a_refresh_waits_until_the_new_tokens_are_saved(run_adapter, x_fake, in_cluster):
    secret = {**_refresh_only(x_fake), "tokenStoreSecret": SECRET_NAME}
    in_cluster.put_secret(SECRET_NAME, secret)
    main = threading.main_thread().ident
    assert main is not None and threading.current_thread() is threading.main_thread()
    # Kubernetes stops the pod (deadline, deletion) while X is rotating the token.
    x_fake.on_refresh = lambda request: signal.pthread_kill(main, signal.SIGTERM)
    stopped = _run(run_adapter, x_fake, credentials=secret)
    assert stopped.exit_code == 128 + signal.SIGTERM
    assert x_fake.posts == []
    assert [in_cluster.values()[REFRESH_TOKEN]] == x_fake.valid_refresh_tokens()  # saved before stopping

    x_fake.on_refresh = None
    run = _run(run_adapter, x_fake, credentials=secret)
    assert run.exit_code == 0, run.output
    assert x_fake.refresh_uses == [DEFAULT_REFRESH_TOKEN]  # the saved token served; no second refresh


def test_the_rbac_example_grants_exactly_what_the_token_store_uses(run_adapter, x_fake, in_cluster):
    import yaml

    examples = Path(__file__).resolve().parents[2] / "examples" / "adapters"
    secret, adapter = [d for d in yaml.safe_load_all((examples / "x.yaml").read_text()) if d]
    account, role, binding = [d for d in yaml.safe_load_all((examples / "x-token-rbac.yaml").read_text()) if d]
    name = secret["metadata"]["name"]
    assert secret["stringData"]["tokenStoreSecret"] == name
    assert adapter["spec"]["jobTemplate"]["serviceAccountName"] == account["metadata"]["name"]
    [rule] = role["rules"]
    assert (rule["apiGroups"], rule["resources"], rule["resourceNames"]) == ([""], ["secrets"], [name])
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"]}]

    # What the adapter does with the API is what the Role allows, on that Secret only.
    in_cluster.allowed = (name,)
    creds = {**_refresh_only(x_fake), "tokenStoreSecret": name}
    in_cluster.put_secret(name, creds)
    run = _run(run_adapter, x_fake, credentials=creds)
    assert run.exit_code == 0, run.output
    used = {(r.method.lower(), r.match["name"]) for r in in_cluster.requests}
    assert used == {(verb, name) for verb in rule["verbs"]}


class _CannotSaveTokens:
    """A store that takes the lease but refuses to save the new tokens (the API server is gone)."""

    def __init__(self, inner: TokenStore):
        self.inner = inner
        self.description, self.writable = inner.description, inner.writable

    def read(self):
        return self.inner.read()

    def write(self, version, changes):
        from herald_adapters._token_store import StoreError

        if REFRESH_TOKEN in changes:
            raise StoreError("the API server is unreachable")
        return self.inner.write(version, changes)


def test_new_tokens_that_cannot_be_saved_are_not_used(tmp_path, x_fake):
    state = _expired_state(x_fake)
    ctx = _context(tmp_path, x_fake, state)
    manager = TokenManager(
        _CannotSaveTokens(MemoryStore(dict(state))),
        x._refresher(ctx, x_fake.url),
        platform="X",
        redact=ctx.redact,
        clock=ctx.http.now,
        lease_seconds=0.5,
        reauthorize=x.REAUTHORIZE,
    )
    with pytest.raises(AdapterError) as lost:
        manager.access_token()
    assert lost.value.result.error_class.value == "auth"
    assert "could not be saved (the API server is unreachable)" in lost.value.result.message
    assert manager.refreshed is False

"""The API client: credentials loaded again when the API server answers 401 (a rotated token is
picked up without a restart), transient failures of idempotent requests retried, every request
reported for metrics. A local HTTP server stands in for the API server's authentication only."""

from __future__ import annotations

import asyncio
import gzip
import json
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.kube import ApiError, Kube
from tests.support.kubeconfig import write_kubeconfig
from tests.support.recording_server import RecordedRequest, RecordingServer, Response


class TokenServer(RecordingServer[RecordedRequest]):
    """Accepts one bearer token at a time; can fail the next N requests with a status."""

    def __init__(self) -> None:
        super().__init__(request_type=RecordedRequest)
        self.token = "token-a"
        self.fail: list[int] = []
        self.hold_watches = False  # watch answers wait for release()

    def is_recorded(self, request: RecordedRequest) -> bool:
        return request.path.rstrip("/") != "/version"  # kr8s checks the server's version when it connects

    def respond(self, request: RecordedRequest) -> Response:
        if request.path.rstrip("/") == "/version":
            return Response(body={"major": "1", "minor": "34", "gitVersion": "v1.34.4"})
        if self.fail:
            return Response(self.fail.pop(0), {"kind": "Status", "reason": "ServiceUnavailable"})
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Response(401, {"kind": "Status", "reason": "Unauthorized"})
        delay = 60.0 if self.hold_watches and request.param("watch") == "true" else 0.0
        return Response(body={"kind": "Namespace", "metadata": {"name": "default"}}, delay=delay)

    @property
    def seen(self) -> list[str]:
        return [r.headers.get("authorization", "") for r in self.requests]


@pytest.fixture
def server():
    s = TokenServer().start()
    yield s
    s.stop()


async def test_a_token_that_changes_is_picked_up_without_a_restart(server, tmp_path):
    config = tmp_path / "kubeconfig"
    write_kubeconfig(config, server.url, "token-a")
    seen: list[tuple[str, str]] = []
    kube = Kube(kubeconfig=str(config), on_request=lambda verb, code, *_: seen.append((verb, code)))
    try:
        assert (await kube.get("/api/v1/namespaces/default"))["metadata"]["name"] == "default"
        server.token = "token-b"  # the old token expires; the kubeconfig (or exec plugin) now gives the new one
        write_kubeconfig(config, server.url, "token-b")
        assert (await kube.get("/api/v1/namespaces/default"))["metadata"]["name"] == "default"
        assert server.seen[-2:] == ["Bearer token-a", "Bearer token-b"]
        assert seen == [("GET", "200"), ("GET", "401"), ("GET", "200")]
    finally:
        await kube.close()


async def test_a_watch_picks_up_a_changed_token_too(server, tmp_path):
    config = tmp_path / "kubeconfig"
    write_kubeconfig(config, server.url, "token-a")
    kube = Kube(kubeconfig=str(config))
    try:
        lines = [line async for line in kube.watch("/api/v1/namespaces", {"timeoutSeconds": "1"})]
        assert len(lines) == 1 and b'"Namespace"' in lines[0]
        server.token = "token-b"  # rotated: the client still sends token-a once, gets 401, loads again
        write_kubeconfig(config, server.url, "token-b")
        lines = [line async for line in kube.watch("/api/v1/namespaces", {"timeoutSeconds": "1"})]
        assert len(lines) == 1 and server.seen[-2:] == ["Bearer token-a", "Bearer token-b"]
        server.token = "token-c"  # and a token the kubeconfig does not have is an error, not a loop
        with pytest.raises(ApiError) as refused:
            [line async for line in kube.watch("/api/v1/namespaces", {})]
        assert refused.value.status == 401
    finally:
        await kube.close()


async def test_transient_failures_are_retried_and_then_reported(server, tmp_path):
    config = tmp_path / "kubeconfig"
    write_kubeconfig(config, server.url, "token-a")
    kube = Kube(kubeconfig=str(config))
    try:
        server.fail = [503, 503]
        assert (await kube.get("/api/v1/namespaces/default"))["metadata"]["name"] == "default"
        server.fail = [503, 503, 503]
        with pytest.raises(ApiError) as e:
            await kube.get("/api/v1/namespaces/default")
        assert e.value.status == 503 and e.value.transient
    finally:
        await kube.close()


async def test_open_watches_never_take_a_requests_connection(server, tmp_path):
    """Watches hold their connections for minutes; they have a pool of their own, so requests
    still get one of theirs even when the request pool has a single connection."""
    config = tmp_path / "kubeconfig"
    write_kubeconfig(config, server.url, "token-a")
    server.hold_watches = True
    kube = Kube(kubeconfig=str(config), concurrency=1)

    async def drain() -> list[bytes]:
        return [line async for line in kube.watch("/api/v1/namespaces", {"timeoutSeconds": "60"})]

    watches = [asyncio.create_task(drain()) for _ in range(3)]
    try:
        assert all(r.param("watch") == "true" for r in await server.await_requests(3, timeout=10))
        answers = await asyncio.wait_for(
            asyncio.gather(*(kube.get("/api/v1/namespaces/default") for _ in range(5))), timeout=10
        )
        assert [a["metadata"]["name"] for a in answers] == ["default"] * 5
        assert not any(w.done() for w in watches)  # the watches were still open meanwhile
        server.release()
        assert all(len(lines) == 1 for lines in await asyncio.gather(*watches))
    finally:
        server.release()
        await kube.close()


async def test_the_kubeconfigs_proxy_url_is_used(server, tmp_path):
    """A kubeconfig's proxy-url (as client-go honours it): requests go through that proxy."""
    config = tmp_path / "kubeconfig"
    write_kubeconfig(config, "http://api-server.invalid:6443", "token-a", proxy_url=server.url)
    kube = Kube(kubeconfig=str(config))
    try:
        assert (await kube.get("/api/v1/namespaces/default"))["metadata"]["name"] == "default"
        assert [r.path for r in server.requests] == ["/api/v1/namespaces/default"]
        assert server.requests[0].headers["host"] == "api-server.invalid:6443"  # forwarded, not served
    finally:
        await kube.close()


async def test_a_closed_client_answers_with_an_api_error(server, tmp_path):
    """After close (the operator stopping), a request is an ApiError, which every caller handles,
    not a RuntimeError from the HTTP library."""
    config = tmp_path / "kubeconfig"
    write_kubeconfig(config, server.url, "token-a")
    kube = Kube(kubeconfig=str(config))
    assert (await kube.get("/api/v1/namespaces/default"))["metadata"]["name"] == "default"
    await kube.close()
    with pytest.raises(ApiError) as e:
        await kube.get("/api/v1/namespaces/default")
    assert e.value.status == 0 and "closed" in e.value.message


class _Searches:
    """A meta-path finder that only counts the imports Python had to search for."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name, path=None, target=None):
        self.names.append(name)
        return None  # the normal finders carry on


async def test_requests_import_nothing(monkeypatch, server, tmp_path):
    """A lazy import in a request's path that fails is searched for again on every request, walking
    sys.path (httpx's httpcore without sniffio did: 34 us against 0.7 us, 3% of the operator's CPU
    in a burst). Requests after the first import nothing."""
    config = tmp_path / "kubeconfig"
    write_kubeconfig(config, server.url, "token-a")
    kube = Kube(kubeconfig=str(config))
    searches = _Searches()
    try:
        await kube.get("/api/v1/namespaces/default")  # the first request may import lazily
        monkeypatch.setattr(sys, "meta_path", [searches, *sys.meta_path])
        for _ in range(5):
            await kube.get("/api/v1/namespaces/default")
            await kube.merge_patch("/api/v1/namespaces/default", {"metadata": {"labels": {"a": "b"}}})
    finally:
        await kube.close()
    assert searches.names == []


class BodyServer(TokenServer):
    """Answers every request with 200 and whatever bytes ``body`` holds."""

    def __init__(self) -> None:
        super().__init__()
        self.body = b"{}"
        self.encoding: str | None = None  # a Content-Encoding to declare

    def respond(self, request: RecordedRequest) -> Response:
        if request.path.rstrip("/") == "/version":
            return super().respond(request)
        headers = {"Content-Encoding": self.encoding} if self.encoding else {}
        return Response(body=self.body, content_type="application/json", headers=headers)


@pytest.fixture(scope="module")
def body_server():
    s = BodyServer().start()
    yield s
    s.stop()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
        st.integers(1000, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
    )
)
def test_any_answer_is_json_or_an_api_error(body_server, tmp_path, body):
    """Whatever the API server (or something in its place) answers, a request gives the decoded
    JSON or an ApiError, never another exception."""
    config = tmp_path / "kubeconfig"
    write_kubeconfig(config, body_server.url, "token-a")
    body_server.body = body

    async def ask() -> object:
        kube = Kube(kubeconfig=str(config))
        try:
            return await kube.get("/api/v1/namespaces/default")
        finally:
            await kube.close()

    try:
        answer = asyncio.run(ask())
    except ApiError as e:
        assert e.status == 0 and "not JSON" in e.message
    else:
        assert answer == (json.loads(body) if body else {})


@pytest.mark.parametrize("encoding", [None, "gzip"])
async def test_an_answer_past_the_size_limit_is_an_api_error(body_server, tmp_path, encoding):
    """An answer that never ends (a broken proxy), or a small gzip body that inflates past the
    limit, is refused as an ApiError instead of filling the operator's memory."""
    config = tmp_path / "kubeconfig"
    write_kubeconfig(config, body_server.url, "token-a")
    answer = json.dumps({"kind": "List", "items": ["x" * 100] * 50}).encode()  # about 5 KB
    body_server.body, body_server.encoding = (gzip.compress(answer), "gzip") if encoding else (answer, None)
    kube = Kube(kubeconfig=str(config))
    try:
        assert len((await kube.get("/api/v1/pods"))["items"]) == 50  # within the limit
        kube.max_answer = 4096
        with pytest.raises(ApiError) as refused:
            await kube.get("/api/v1/pods")
        assert refused.value.status == 0 and "4096" in refused.value.message
    finally:
        body_server.body, body_server.encoding = b"{}", None
        await kube.close()

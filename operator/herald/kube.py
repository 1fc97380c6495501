"""The operator's async Kubernetes API client: kr8s for credentials, httpx for requests.

kopf watches the Herald kinds; this client does the rest (requests, and the watch streams of
herald.informer) on one pooled HTTP connection set.
"""

from __future__ import annotations

import asyncio
import json as _json
import logging
import socket
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import httpx
import orjson

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
# Requests that may be sent again after a transient failure: the API server applies them once
# (creates are named, so a repeated create is AlreadyExists; PUT and PATCH carry resourceVersions).
IDEMPOTENT = frozenset({"GET", "PUT", "PATCH", "DELETE", "POST"})
RETRIES = 3


def _backoff(attempt: int, retry_after: str | None = None) -> float:
    try:
        if retry_after is not None:
            return min(5.0, max(0.0, float(retry_after)))
    except ValueError:
        pass
    return min(2.0, 0.2 * 2 ** (attempt - 1))


# Every request has a deadline; a connection that stops answering is dropped by the kernel
# (keepalive probes when idle, TCP_USER_TIMEOUT when data is unacknowledged), so a cut network
# is noticed within seconds and a pooled connection is never trusted blindly.
TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=10.0)
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 5, 2, 3
USER_TIMEOUT_MS = 10_000


def socket_options() -> list[tuple[int, int, int]]:
    opts = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
        ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS),
    ):
        if hasattr(socket, name):  # Linux; elsewhere the request timeouts still apply
            opts.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return opts


class ApiError(Exception):
    """A request that did not succeed: an HTTP error status, or ``status`` 0 when no answer came
    (connection refused, cut or timed out)."""

    def __init__(self, status: int, body: str, what: str):
        self.status = status
        self.body = body[:4096]
        self.reason, self.message = "", self.body
        try:
            data = _json.loads(body)
            if isinstance(data, dict):
                self.reason = str(data.get("reason") or "")
                self.message = str(data.get("message") or self.body)[:4096]
        except (ValueError, RecursionError):
            pass
        super().__init__(
            f"{what}: HTTP {status} {self.reason}: {self.message}" if status else f"{what}: no answer: {self.message}"
        )

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def conflict(self) -> bool:
        """The object changed since the resourceVersion the write was based on."""
        return self.status == 409 and self.reason != "AlreadyExists"

    @property
    def invalid(self) -> bool:
        """The API server refused the request itself; sending it again gives the same answer."""
        return self.status in (400, 422)

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500


def _h2_available() -> bool:
    """Whether HTTP/2 can be spoken (the h2 package); without it the client stays on HTTP/1.1."""
    try:
        import h2  # noqa: F401
    except ImportError:
        log.warning("HTTP/2 is on (HERALD_HTTP2) but the h2 package is missing: using HTTP/1.1")
        return False
    return True


MAX_WATCH_LINE = 16 * 1024 * 1024  # an object is at most 1.5 MB in etcd; a longer line is not an event


class LineSplitter:
    """A byte stream cut into its non-empty lines (a watch stream: one JSON event per line),
    whatever the chunk boundaries. A line longer than ``limit`` is refused (ValueError)."""

    def __init__(self, limit: int = MAX_WATCH_LINE):
        self.limit = limit
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:  # a long line arrives in many chunks: no copying until it ends
            self._parts.append(chunk)
            self._size += len(chunk)
            if self._size > self.limit:
                raise ValueError(f"a watch line longer than {self.limit} bytes")
            return []
        first, *middle, last = chunk.split(b"\n")
        lines = [b"".join([*self._parts, first]), *middle]
        self._parts, self._size = [last], len(last)
        if any(len(line) > self.limit for line in lines) or self._size > self.limit:
            raise ValueError(f"a watch line longer than {self.limit} bytes")
        return [line for line in lines if line.strip()]

    def end(self) -> list[bytes]:
        line, self._parts, self._size = b"".join(self._parts), [], 0
        return [line] if line.strip() else []


class Kube:
    """Requests to the API server on one pooled httpx client.

    Credentials come from kr8s (the maintained async client dask-kubernetes uses): kubeconfig with
    exec plugins, OIDC and client certificates, or the in-cluster ServiceAccount. They are loaded
    on first use and loaded again when the API server answers 401, so an exec or OIDC token that
    expires and a projected ServiceAccount token that rotates are picked up without a restart.
    The transport is Herald's own: timeouts, keepalive and TCP_USER_TIMEOUT (see ``TIMEOUT``),
    and HTTP/2 when the server offers it (as client-go): many requests share a connection, and
    the pool no longer scans dozens of HTTP/1.1 connections per request (docs/performance.md).
    Idempotent requests that fail transiently are retried with a short backoff; every request
    is reported to ``on_request(method, code, seconds, params)`` (code "0": no answer), for the
    rest-client metrics.
    """

    def __init__(
        self,
        concurrency: int = 64,
        timeout: httpx.Timeout = TIMEOUT,
        kubeconfig: str | None = None,
        on_request: Callable[[str, str, float, Mapping[str, str] | None], None] | None = None,
        http2: bool = True,
    ):
        self._concurrency = concurrency
        self._http2 = http2
        self._timeout = timeout
        self._kubeconfig = kubeconfig
        self._auth: Any = None
        self._client: httpx.AsyncClient | None = None
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self.on_request = on_request

    async def _session(self, reauthenticate: bool = False) -> httpx.AsyncClient:
        async with self._lock:
            if self._client is not None and not reauthenticate:
                return self._client
            if self._auth is None:
                import kr8s.asyncio

                api = await kr8s.asyncio.api(kubeconfig=self._kubeconfig)
                self._auth = api.auth
            elif reauthenticate:
                await self._auth.reauthenticate()
            verify = await self._auth.ssl_context()
            http2 = self._http2 and _h2_available()
            limits = httpx.Limits(
                max_connections=self._concurrency, max_keepalive_connections=self._concurrency, keepalive_expiry=30.0
            )
            old, self._client = (
                self._client,
                httpx.AsyncClient(
                    base_url=self._auth.server,
                    timeout=self._timeout,
                    transport=httpx.AsyncHTTPTransport(
                        verify=verify,
                        limits=limits,
                        socket_options=socket_options(),
                        http2=http2,
                    ),
                ),
            )
            self._token = self._auth.token
            if old is not None:
                await old.aclose()
            return self._client

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def http(self) -> tuple[httpx.AsyncClient, dict[str, str]]:
        """The pooled client and the current auth headers, for raw requests (metrics, watches)."""
        return await self._session(), self._headers()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str | None = None,
        accept: str | None = None,
    ) -> dict[str, Any]:
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        # orjson: a Job's body encodes in 2 us instead of 24 us, its answer decodes twice as fast.
        body = None if json is None else orjson.dumps(json, option=orjson.OPT_NON_STR_KEYS)
        if body is not None and "Content-Type" not in headers:
            headers["Content-Type"] = "application/json"
        attempt = 0
        reauthenticated = False
        while True:
            attempt += 1
            client = await self._session()
            started = time.monotonic()
            try:
                resp = await client.request(method, path, content=body, params=params, headers=self._headers(headers))
            except (httpx.TransportError, OSError) as e:  # timeouts, refused or cut connections
                self._report(method, "0", started, params)
                error = ApiError(0, f"{type(e).__name__}: {e}", f"{method} {path}")
                sent = not isinstance(e, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt < RETRIES and (method in IDEMPOTENT or not sent):
                    await asyncio.sleep(_backoff(attempt))
                    continue
                raise error from None
            self._report(method, str(resp.status_code), started, params)
            if resp.status_code == 401 and not reauthenticated:
                # An expired exec/OIDC token, a rotated ServiceAccount token: load them again.
                reauthenticated = True
                await self._session(reauthenticate=True)
                continue
            if resp.status_code >= 400:
                error = ApiError(resp.status_code, resp.text, f"{method} {path}")
                if error.transient and attempt < RETRIES and method in IDEMPOTENT:
                    await asyncio.sleep(_backoff(attempt, resp.headers.get("Retry-After")))
                    continue
                raise error
            try:
                return orjson.loads(resp.content) if resp.content else {}
            except (ValueError, RecursionError):
                raise ApiError(0, "the API server's answer is not JSON", f"{method} {path}") from None

    def _report(self, method: str, code: str, started: float, params: Mapping[str, str] | None) -> None:
        if self.on_request is not None:
            self.on_request(method, code, time.monotonic() - started, params)

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, json=body)

    async def replace(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT: conditional on the body's metadata.resourceVersion (a conflict if it changed)."""
        return await self.request("PUT", path, json=body)

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, json=body, content_type=MERGE_PATCH)

    async def delete(self, path: str, resource_version: str | None = None) -> None:
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if resource_version:
            body["preconditions"] = {"resourceVersion": resource_version}
        try:
            await self.request("DELETE", path, json=body)
        except ApiError as e:
            if not e.not_found:
                raise

    async def get(self, path: str, metadata_only: bool = False) -> dict[str, Any]:
        return await self.request("GET", path, accept=METADATA_ONLY if metadata_only else None)

    async def list(self, path: str, label_selector: str | None = None) -> dict[str, Any]:
        """A full list, following continue tokens."""
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": "500"}
        if label_selector:
            params["labelSelector"] = label_selector
        while True:
            page = await self.request("GET", path, params=params)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return {"items": items, "metadata": page.get("metadata") or {}}
            params["continue"] = token

    async def watch(self, path: str, params: Mapping[str, str]) -> AsyncGenerator[bytes, None]:
        """A watch stream: its lines as they arrive (one JSON watch event each). Ends when the API
        server ends the stream (its ``timeoutSeconds``); raises ApiError for an error answer or a
        cut or silent connection (a read waits at most ``TIMEOUT.read``). A 401 loads the
        credentials again once, as every other request does."""
        query = {**params, "watch": "true"}
        for attempt in (1, 2):
            client = await self._session(reauthenticate=attempt > 1)
            started = time.monotonic()
            try:
                async with client.stream("GET", path, params=query, headers=self._headers()) as resp:
                    self._report("GET", str(resp.status_code), started, query)
                    if resp.status_code == 401 and attempt == 1:
                        continue  # load the credentials again (once the stream is closed) and retry
                    if resp.status_code >= 400:
                        body = (await resp.aread()).decode(errors="replace")
                        raise ApiError(resp.status_code, body, f"WATCH {path}")
                    splitter = LineSplitter()
                    async for chunk in resp.aiter_bytes():
                        for line in splitter.feed(chunk):
                            yield line
                    for line in splitter.end():
                        yield line
                    return
            except (httpx.TransportError, OSError) as e:  # cut, refused, or silent for too long
                self._report("GET", "0", started, query)
                raise ApiError(0, f"{type(e).__name__}: {e}", f"WATCH {path}") from None
            except ValueError as e:  # a line no event can be
                raise ApiError(0, str(e), f"WATCH {path}") from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def collection(group_version: str, plural: str, namespace: str | None) -> str:
    base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"

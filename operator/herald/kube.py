"""The operator's async Kubernetes API client: kr8s for credentials, aiohttp for requests.

kopf watches the Herald kinds (on aiohttp too); this client does the rest: requests, and the
watch streams of herald.informer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as _json
import logging
import socket
import ssl as ssl_module
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

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
@dataclass(frozen=True)
class Timeouts:
    """Seconds: to open a connection, between two reads of an answer, and to wait for a free
    pooled connection. A write that the peer stops acknowledging ends with TCP_USER_TIMEOUT."""

    connect: float = 5.0
    read: float = 15.0
    pool: float = 10.0

    def client(self, read: float | None = None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=None, connect=self.pool + self.connect, sock_connect=self.connect, sock_read=read or self.read
        )


TIMEOUT = Timeouts()
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


MAX_WATCH_LINE = 16 * 1024 * 1024  # an object is at most 1.5 MB in etcd; a longer line is not an event
# An answer is read up to this size (a list page of 500 objects is a few MB); a longer one is an
# ApiError, not the operator's memory (a broken proxy that never ends its answer).
MAX_ANSWER = 64 * 1024 * 1024


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
    """Requests to the API server on pooled aiohttp connections.

    Credentials come from kr8s (the maintained async client dask-kubernetes uses): kubeconfig with
    exec plugins, OIDC and client certificates, or the in-cluster ServiceAccount. They are loaded
    on first use and loaded again when the API server answers 401, so an exec or OIDC token that
    expires and a projected ServiceAccount token that rotates are picked up without a restart.
    The transport is Herald's own: timeouts, keepalive and TCP_USER_TIMEOUT (see ``TIMEOUT``), at
    most ``concurrency`` pooled connections for requests, and one connection per open watch (a
    pool of its own, so watches never take a request's place). aiohttp, which kopf already uses,
    parses HTTP in C: a request costs the operator a quarter of the CPU it did with httpx over
    HTTP/2 (docs/performance.md). Idempotent requests that fail transiently are retried with a
    short backoff; every request is reported to ``on_request(method, code, seconds, params)``
    (code "0": no answer), for the rest-client metrics.
    """

    def __init__(
        self,
        concurrency: int = 64,
        timeout: Timeouts = TIMEOUT,
        kubeconfig: str | None = None,
        on_request: Callable[[str, str, float, Mapping[str, str] | None], None] | None = None,
    ):
        self._concurrency = concurrency
        self._timeout = timeout
        self._kubeconfig = kubeconfig
        self._auth: Any = None
        self._sessions: _Sessions | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._server = ""
        self._closed = False
        self.on_request = on_request
        self.max_answer = MAX_ANSWER

    async def _session(self, reauthenticate: bool = False) -> _Sessions:
        async with self._lock:
            if self._closed:
                raise ApiError(0, "the client is closed", "request")
            if self._sessions is not None and not reauthenticate:
                return self._sessions
            if self._auth is None:
                import kr8s.asyncio

                api = await kr8s.asyncio.api(kubeconfig=self._kubeconfig)
                self._auth = api.auth
                # kr8s opened an httpx client of its own to check the server's version; Herald
                # only takes the credentials, so that connection is closed rather than left idle.
                session = getattr(api, "_session", None)
                if session is not None:
                    await session.aclose()
            elif reauthenticate:
                await self._auth.reauthenticate()
            self._server = str(self._auth.server).rstrip("/")
            proxy = getattr(self._auth, "proxy", None)  # the kubeconfig's proxy-url, if any
            old, self._sessions = (
                self._sessions,
                _Sessions(self._server, await self._auth.ssl_context(), self._concurrency, self._timeout, proxy),
            )
            self._token = self._auth.token
            if old is not None:  # requests still in flight on it end first (a client certificate may have changed)
                task = asyncio.create_task(old.close(after=self._timeout.read + self._timeout.pool))
                self._retired.add(task)
                task.add_done_callback(self._retired.discard)
            return self._sessions

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

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
        content = await self._send(method, path, body, params, headers)
        try:
            return orjson.loads(content) if content else {}
        except (ValueError, RecursionError):
            raise ApiError(0, "the API server's answer is not JSON", f"{method} {path}") from None

    async def _send(
        self, method: str, path: str, body: bytes | None, params: Mapping[str, str] | None, headers: dict[str, str]
    ) -> bytes:
        """One request, its answer as sent: retried when transient, credentials loaded again on 401."""
        attempt = 0
        reauthenticated = False
        while True:
            attempt += 1
            sessions = await self._session()
            started = time.monotonic()
            try:
                async with sessions.requests.request(
                    method, self._server + path, data=body, params=params, headers=self._headers(headers)
                ) as resp:
                    status, content = resp.status, await _read(resp, self.max_answer)
                    retry_after = resp.headers.get("Retry-After")
            except _TooLong as e:
                self._report(method, "0", started, params)
                raise ApiError(0, str(e), f"{method} {path}") from None
            except (aiohttp.ClientError, TimeoutError, OSError) as e:  # timeouts, refused or cut connections
                self._report(method, "0", started, params)
                error = ApiError(0, f"{type(e).__name__}: {e}", f"{method} {path}")
                sent = not isinstance(e, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
                if attempt < RETRIES and (method in IDEMPOTENT or not sent) and not self._closed:
                    await asyncio.sleep(_backoff(attempt))
                    continue
                raise error from None
            self._report(method, str(status), started, params)
            if status == 401 and not reauthenticated:
                # An expired exec/OIDC token, a rotated ServiceAccount token: load them again.
                reauthenticated = True
                await self._session(reauthenticate=True)
                continue
            if status >= 400:
                error = ApiError(status, content.decode(errors="replace"), f"{method} {path}")
                if error.transient and attempt < RETRIES and method in IDEMPOTENT:
                    await asyncio.sleep(_backoff(attempt, retry_after))
                    continue
                raise error
            return content

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

    async def text(self, path: str) -> str:
        """A GET whose answer is text, not JSON (the API server's /metrics)."""
        return (await self._send("GET", path, None, None, {})).decode(errors="replace")

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

    async def watch(
        self, path: str, params: Mapping[str, str], read_timeout: float | None = None
    ) -> AsyncGenerator[bytes, None]:
        """A watch stream: its lines as they arrive (one JSON watch event each). Ends when the API
        server ends the stream (its ``timeoutSeconds``); raises ApiError for an error answer or a
        cut or silent connection (a read waits at most ``read_timeout``, by default
        ``TIMEOUT.read``). A 401 loads the credentials again once, as every other request does."""
        query = {**params, "watch": "true"}
        timeout = self._timeout.client(read=read_timeout)
        for attempt in (1, 2):
            sessions = await self._session(reauthenticate=attempt > 1)
            started = time.monotonic()
            try:
                async with sessions.watches.get(
                    self._server + path, params=query, headers=self._headers(), timeout=timeout
                ) as resp:
                    self._report("GET", str(resp.status), started, query)
                    if resp.status == 401 and attempt == 1:
                        continue  # load the credentials again (once the stream is closed) and retry
                    if resp.status >= 400:
                        body = (await resp.content.read(65536)).decode(errors="replace")
                        raise ApiError(resp.status, body, f"WATCH {path}")
                    splitter = LineSplitter()
                    async for chunk in resp.content.iter_any():
                        for line in splitter.feed(chunk):
                            yield line
                    for line in splitter.end():
                        yield line
                    return
            except (aiohttp.ClientError, TimeoutError, OSError) as e:  # cut, refused, or silent for too long
                self._report("GET", "0", started, query)
                raise ApiError(0, f"{type(e).__name__}: {e}", f"WATCH {path}") from None
            except ValueError as e:  # a line no event can be
                raise ApiError(0, str(e), f"WATCH {path}") from None

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            sessions, self._sessions = self._sessions, None
        for task in list(self._retired):
            task.cancel()
        await asyncio.gather(*self._retired, return_exceptions=True)
        if sessions is not None:
            await sessions.close()


class _TooLong(Exception):
    pass


async def _read(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The answer's body, refused past ``limit`` bytes: at once when its length says so, else once
    that much has been read (counted decompressed, so a small gzip bomb is refused too)."""
    if resp.content_length is not None and resp.content_length > limit:
        raise _TooLong(f"the API server's answer is {resp.content_length} bytes, more than {limit}")
    parts, size = [], 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise _TooLong(f"the API server's answer is longer than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


class _Sessions:
    """The two connection pools of one set of credentials: requests (at most ``limit``
    connections) and watches (one connection per open watch)."""

    def __init__(
        self,
        server: str,
        ssl: ssl_module.SSLContext | bool,
        limit: int,
        timeout: Timeouts = TIMEOUT,
        proxy: str | None = None,
    ):
        self.requests = _session(server, ssl, limit, timeout, proxy)
        self.watches = _session(server, ssl, 0, timeout, proxy)

    async def close(self, after: float = 0.0) -> None:
        try:
            if after:
                await asyncio.sleep(after)
        finally:
            await self.requests.close()
            await self.watches.close()


def _connect(addr_info: tuple[Any, ...]) -> socket.socket:
    """A new connection's socket, with the keepalive and TCP_USER_TIMEOUT options."""
    family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family, type_, proto)
    if family in (socket.AF_INET, socket.AF_INET6):
        for level, name, value in socket_options():
            sock.setsockopt(level, name, value)
    return sock


def _session(
    server: str, ssl: ssl_module.SSLContext | bool, limit: int, timeout: Timeouts, proxy: str | None
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=limit, limit_per_host=0, ssl=ssl, keepalive_timeout=30.0, socket_factory=_connect
    )
    # The kubeconfig's proxy-url, else HTTPS_PROXY/NO_PROXY as client-go does, read once here:
    # aiohttp's trust_env reads them (and ~/.netrc) again in a worker thread for every request,
    # which doubled a request's CPU. The API server sets no cookies worth keeping.
    via: URL | None = URL(proxy) if proxy else None
    proxy_auth = None
    if via is None:
        with contextlib.suppress(LookupError):  # no proxy for the API server
            via, proxy_auth = get_env_proxy_for_url(URL(server))
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout.client(),
        proxy=via,
        proxy_auth=proxy_auth,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def collection(group_version: str, plural: str, namespace: str | None) -> str:
    base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"

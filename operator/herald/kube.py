"""A small async Kubernetes API client on httpx, for the operator's writes and few reads.

kopf does the watching; this client does the rest with one pooled HTTP connection set.
Credentials come from the kubeconfig (KUBECONFIG) or the in-cluster ServiceAccount.
"""

from __future__ import annotations

import json as _json
import logging
import os
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"


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


@dataclass
class _Credentials:
    host: str
    ca_file: str | None
    cert: tuple[str, str] | None
    token: str | None
    token_file: str | None
    verify: bool


def _load_credentials() -> _Credentials:
    from kubernetes import client, config

    cfg = client.Configuration()
    token_file = None
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config(client_configuration=cfg)
        token_file = TOKEN_FILE
    else:
        config.load_kube_config(client_configuration=cfg)
    token = None
    auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    if auth:
        token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else auth
    cert = (cfg.cert_file, cfg.key_file) if cfg.cert_file and cfg.key_file else None
    return _Credentials(cfg.host, cfg.ssl_ca_cert, cert, token, token_file, cfg.verify_ssl)


class Kube:
    def __init__(self, concurrency: int = 64, timeout: httpx.Timeout = TIMEOUT):
        creds = _load_credentials()
        self._creds = creds
        ctx: ssl.SSLContext | bool
        if creds.verify:
            ctx = ssl.create_default_context(cafile=creds.ca_file) if creds.ca_file else ssl.create_default_context()
        else:
            ctx = False
        if creds.cert and isinstance(ctx, ssl.SSLContext):
            ctx.load_cert_chain(*creds.cert)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=30.0)
        self._client = httpx.AsyncClient(
            base_url=creds.host,
            timeout=timeout,
            transport=httpx.AsyncHTTPTransport(verify=ctx, limits=limits, socket_options=socket_options()),
        )
        self._token_read = 0.0
        self._token = creds.token

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self._creds.token_file and time.monotonic() - self._token_read > 60:
            with open(self._creds.token_file) as f:  # bound tokens rotate; re-read them
                self._token = f.read().strip()
            self._token_read = time.monotonic()
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
        body = None if json is None else _json.dumps(json, separators=(",", ":")).encode()
        if body is not None and "Content-Type" not in headers:
            headers["Content-Type"] = "application/json"
        try:
            resp = await self._client.request(method, path, content=body, params=params, headers=self._headers(headers))
        except (httpx.TransportError, OSError) as e:  # timeouts, refused or cut connections
            raise ApiError(0, f"{type(e).__name__}: {e}", f"{method} {path}") from None
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, resp.text, f"{method} {path}")
        try:
            return resp.json() if resp.content else {}
        except (ValueError, RecursionError):
            raise ApiError(0, "the API server's answer is not JSON", f"{method} {path}") from None

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

    async def close(self) -> None:
        await self._client.aclose()


def collection(group_version: str, plural: str, namespace: str | None) -> str:
    base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"

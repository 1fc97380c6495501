"""Token state that outlives one Job: a small key/value store with optimistic concurrency.

A platform whose OAuth 2.0 refresh tokens rotate (X) must write the new tokens somewhere the
next attempt's pod will find them. The store is a flat mapping of string keys to string
values with a version; ``write(version, changes)`` succeeds only if nobody wrote since
``version`` was read (otherwise ``Conflict``), which is what lets two pods race a refresh
safely (see ``_oauth2``).

Backends:

- ``KubernetesSecretStore``: the adapter's own credentials Secret, through the Kubernetes
  API with the pod's ServiceAccount token (a Role limited by ``resourceNames`` to that one
  Secret, verbs ``get`` and ``patch``). The version is the Secret's ``resourceVersion``; a
  JSON merge patch carrying ``metadata.resourceVersion`` fails with 409 when it changed.
- ``FileStore``: a JSON file, for running the adapter outside a cluster.
- ``MemoryStore``: in-process, for tests.
- ``MountedStore``: the mounted Secret files, read-only: without a writable store a rotating
  refresh token must not be used (the new one would be lost).

Which one the adapter uses: ``HERALD_TOKEN_STORE_FILE`` (a path) selects a file store; else
a ``tokenStoreSecret`` key in the credentials Secret (the Secret's own name) selects the
Kubernetes backend; else the mounted, read-only Secret.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import httpx

from ._contract import Settings
from ._credentials import Credentials
from ._redact import Redactor

log = logging.getLogger("herald_adapters")

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
STORE_SECRET_KEY = "tokenStoreSecret"


@dataclass(frozen=True)
class Snapshot:
    values: Mapping[str, str]
    version: str


class Conflict(Exception):
    """Someone wrote since the version was read: re-read and decide again."""


class StoreError(Exception):
    """The store cannot be read or written (permissions, network, a missing object)."""


class TokenStore(Protocol):
    description: str
    writable: bool

    def read(self) -> Snapshot: ...

    def write(self, version: str, changes: Mapping[str, str | None]) -> Snapshot:
        """Apply ``changes`` (None deletes a key) if the store is still at ``version``."""
        ...


def _apply(values: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    out = dict(values)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@dataclass
class MemoryStore:
    values: dict[str, str] = field(default_factory=dict)
    version: int = 1
    description: str = "in-memory token store"
    writable: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def read(self) -> Snapshot:
        with self._lock:
            return Snapshot(dict(self.values), str(self.version))

    def write(self, version: str, changes: Mapping[str, str | None]) -> Snapshot:
        with self._lock:
            if version != str(self.version):
                raise Conflict(f"version {version} is stale (now {self.version})")
            self.values = _apply(self.values, changes)
            self.version += 1
            return Snapshot(dict(self.values), str(self.version))


class FileStore:
    """A JSON file ``{"version": n, "values": {...}}``; writes are atomic (rename) and
    serialised by an advisory lock on ``<path>.lock``. Created from ``seed`` if missing."""

    writable = True

    def __init__(self, path: Path, seed: Mapping[str, str] | None = None):
        self.path = path
        self.description = f"token file {path}"
        self._seed = dict(seed or {})

    @contextlib.contextmanager
    def _locked(self):
        try:
            with open(f"{self.path}.lock", "a+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                yield
        except OSError as exc:
            raise StoreError(f"{self.description}: {exc.strerror}") from None

    def _load(self) -> tuple[dict[str, str], int]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return dict(self._seed), 0
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.description}: cannot read it ({exc})") from None
        values = data.get("values") if isinstance(data, dict) else None
        if not isinstance(values, dict):
            raise StoreError(f"{self.description}: not a token file")
        return {str(k): str(v) for k, v in values.items()}, int(data.get("version", 0))

    def read(self) -> Snapshot:
        with self._locked():
            values, version = self._load()
        return Snapshot(values, str(version))

    def write(self, version: str, changes: Mapping[str, str | None]) -> Snapshot:
        with self._locked():
            values, current = self._load()
            if version != str(current):
                raise Conflict(f"version {version} is stale (now {current})")
            values = _apply(values, changes)
            tmp = self.path.with_name(self.path.name + ".tmp")
            try:
                tmp.write_text(json.dumps({"version": current + 1, "values": values}), encoding="utf-8")
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.path)
            except OSError as exc:
                raise StoreError(f"{self.description}: cannot write it ({exc.strerror})") from None
            return Snapshot(values, str(current + 1))


class MountedStore:
    """The mounted credentials Secret: read-only."""

    writable = False

    def __init__(self, credentials: Credentials):
        self._credentials = credentials
        self.description = "the mounted credentials Secret (read-only)"

    def read(self) -> Snapshot:
        keys = self._credentials.keys()
        values = {k: v for k in keys if (v := self._credentials.get(k)) is not None}
        return Snapshot(values, "mounted")

    def write(self, version: str, changes: Mapping[str, str | None]) -> Snapshot:
        raise StoreError("the mounted Secret is read-only")


class KubernetesSecretStore:
    """One Secret, through the Kubernetes API, as the pod's ServiceAccount.

    Reads with ``GET /api/v1/namespaces/<ns>/secrets/<name>``; writes with a JSON merge
    patch (``PATCH``, ``application/merge-patch+json``) that carries the resourceVersion it
    was computed from, so a concurrent write makes it fail with 409 Conflict. The
    ServiceAccount token is read from its file for every call (projected tokens rotate)."""

    writable = True

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        api_url: str,
        token_file: Path,
        ca_file: Path | None,
        timeout: float,
        redact: Redactor,
        transport: httpx.BaseTransport | None = None,
    ):
        self.namespace, self.name = namespace, name
        self.description = f"Secret {namespace}/{name}"
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets/{quote(name, safe='')}"
        self._url = api_url.rstrip("/") + path
        self._token_file = token_file
        self._redact = redact
        verify: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None and ca_file.exists() else True
        )
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), verify=verify, transport=transport)

    def close(self) -> None:
        self._client.close()

    def _headers(self) -> dict[str, str]:
        try:
            token = self._token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise StoreError(
                f"no ServiceAccount token at {self._token_file} ({exc.strerror}): the adapter's pod needs a "
                "ServiceAccount token to write back rotated tokens (docs/adapters-x-linkedin.md)"
            ) from None
        self._redact.add(token)
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def _send(self, method: str, **kwargs) -> httpx.Response:
        try:
            headers = {**self._headers(), **kwargs.pop("headers", {})}
            response = self._client.request(method, self._url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise StoreError(f"{self.description}: {method} failed: {type(exc).__name__}") from None
        if response.status_code == 409:
            raise Conflict(f"{self.description} changed since it was read")
        if response.status_code in (401, 403):
            raise StoreError(
                f"{self.description}: HTTP {response.status_code}: the pod's ServiceAccount may not {method} it "
                "(a Role with resourceNames: [<this Secret>] and verbs get, patch, bound to the ServiceAccount set in "
                "spec.jobTemplate.serviceAccountName)"
            )
        if not response.is_success:
            raise StoreError(f"{self.description}: {method}: HTTP {response.status_code}")
        return response

    def _snapshot(self, response: httpx.Response) -> Snapshot:
        try:
            obj = response.json()
            raw = obj.get("data") or {}
            values = {k: base64.b64decode(v).decode("utf-8") for k, v in raw.items()}
            version = str(obj["metadata"]["resourceVersion"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"{self.description}: unexpected response ({type(exc).__name__})") from None
        for value in values.values():
            self._redact.add(value)
        return Snapshot(values, version)

    def read(self) -> Snapshot:
        return self._snapshot(self._send("GET"))

    def write(self, version: str, changes: Mapping[str, str | None]) -> Snapshot:
        data = {k: (base64.b64encode(v.encode()).decode() if v is not None else None) for k, v in changes.items()}
        patch = {"metadata": {"resourceVersion": version}, "data": data}
        return self._snapshot(
            self._send("PATCH", content=json.dumps(patch), headers={"Content-Type": "application/merge-patch+json"})
        )


def open_store(
    credentials: Credentials,
    *,
    settings: Settings,
    redact: Redactor,
    token_keys: tuple[str, ...],
    env: Mapping[str, str] | None = None,
) -> TokenStore:
    """The token store this attempt should use (see the module docstring). ``settings`` carries
    Herald's own variables; ``env`` only Kubernetes' ``KUBERNETES_SERVICE_HOST``/``_PORT``."""
    env = os.environ if env is None else env
    if settings.token_store_file is not None:
        seed = {k: v for k in token_keys if (v := credentials.get(k)) is not None}
        return FileStore(settings.token_store_file, seed)
    name = credentials.get(STORE_SECRET_KEY)
    if not name:
        return MountedStore(credentials)
    sa_dir = settings.kube_serviceaccount_dir or Path(SERVICE_ACCOUNT_DIR)
    publication, timeout = settings.publication, settings.timeout_seconds
    namespace = publication.split("/", 1)[0] if "/" in publication else ""
    if not namespace:
        with contextlib.suppress(OSError):
            namespace = (sa_dir / "namespace").read_text(encoding="utf-8").strip()
    api_url = settings.kube_api_url
    if not api_url:
        host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "443")
        host = f"[{host}]" if ":" in host else host
        api_url = f"https://{host}:{port}" if host else ""
    if not api_url or not namespace:
        raise StoreError(
            f"{STORE_SECRET_KEY} is set but this pod does not run in a cluster it can reach "
            "(no KUBERNETES_SERVICE_HOST or no namespace)"
        )
    return KubernetesSecretStore(
        namespace,
        name,
        api_url=api_url,
        token_file=sa_dir / "token",
        ca_file=sa_dir / "ca.crt",
        timeout=timeout,
        redact=redact,
    )

"""Where the alerter keeps its state across restarts: which alerts fire since when, who was told.

A store saves and loads one JSON-able document. :class:`MemoryStateStore` keeps it in the process
(tests, and an operator without a ConfigMap: a restart then starts from nothing);
:class:`ConfigMapStateStore` keeps it in a ConfigMap of the operator's namespace, so a restarted
operator re-fires nothing and keeps every alert's ``startsAt``.

The ConfigMap store needs, in the operator's namespace: ``get``, ``update`` (and ``create`` the
first time) on ``configmaps`` (``get``/``update`` can be limited to the ConfigMap's name).
``OperatorConfig.alerts_state_configmap`` (``HERALD_ALERTS_STATE_CONFIGMAP``) names it (``name`` or
``namespace/name``; the namespace defaults to ``OperatorConfig.pod_namespace``, then the
ServiceAccount's namespace): see :func:`state_store`.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..config import OperatorConfig

__all__ = [
    "ConfigMapStateStore",
    "MemoryStateStore",
    "StateStore",
    "state_store",
]

log = logging.getLogger("herald.alerts")

DATA_KEY = "state.json"
SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class StateStore(Protocol):
    async def load(self) -> dict[str, Any] | None:
        """The last saved document, or ``None`` when there is none."""
        ...

    async def save(self, document: Mapping[str, Any]) -> None:
        """Replace the saved document (raises on failure; the alerter logs it and tries again)."""
        ...


class MemoryStateStore:
    """The document in memory: survives a new :class:`Alerter` in the same process, not a restart."""

    def __init__(self) -> None:
        self.document: dict[str, Any] | None = None
        self.saves = 0

    async def load(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.document)

    async def save(self, document: Mapping[str, Any]) -> None:
        self.document = copy.deepcopy(dict(document))
        self.saves += 1


class ConfigMapStateStore:
    """The document as ``data["state.json"]`` of a ConfigMap, through the operator's API client
    (:class:`herald.kube.Kube` or anything with its ``get``/``create``/``request`` methods)."""

    def __init__(self, kube: Any, namespace: str, name: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self._rv: str | None = None

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps/{self.name}"

    async def load(self) -> dict[str, Any] | None:
        from ..kube import ApiError

        try:
            cm = await self.kube.get(self.path)
        except ApiError as e:
            if e.not_found:
                return None
            raise
        self._rv = (cm.get("metadata") or {}).get("resourceVersion")
        text = (cm.get("data") or {}).get(DATA_KEY)
        if not text:
            return None
        try:
            doc = json.loads(text)
        except ValueError:
            log.warning("alert state in ConfigMap %s/%s is not JSON; starting afresh", self.namespace, self.name)
            return None
        return doc if isinstance(doc, dict) else None

    async def save(self, document: Mapping[str, Any]) -> None:
        from ..kube import ApiError

        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/name": "herald", "app.kubernetes.io/component": "alert-state"},
        }
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "data": {DATA_KEY: json.dumps(document, separators=(",", ":"), sort_keys=True)},
        }
        if self._rv is None:
            try:
                created = await self.kube.create(f"/api/v1/namespaces/{self.namespace}/configmaps", body)
                self._rv = created["metadata"]["resourceVersion"]
                return
            except ApiError as e:
                if e.status != 409:
                    raise
        # The operator is this document's only writer; a conflict means our resourceVersion is old
        # (a save that failed half-way): take the current one and write again.
        for _ in range(2):
            if self._rv is not None:
                metadata["resourceVersion"] = self._rv
            try:
                updated = await self.kube.request("PUT", self.path, json=body)
                self._rv = updated["metadata"]["resourceVersion"]
                return
            except ApiError as e:
                if not e.conflict and not e.not_found:
                    raise
                if e.not_found:
                    self._rv = None
                    metadata.pop("resourceVersion", None)
                    created = await self.kube.create(f"/api/v1/namespaces/{self.namespace}/configmaps", body)
                    self._rv = created["metadata"]["resourceVersion"]
                    return
                current = await self.kube.get(self.path)
                self._rv = current["metadata"]["resourceVersion"]
        raise RuntimeError(f"could not save the alert state to ConfigMap {self.namespace}/{self.name}")


def _own_namespace(pod_namespace: str) -> str | None:
    if pod_namespace:
        return pod_namespace
    try:
        return SA_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


def state_store(config: OperatorConfig, kube: Any = None) -> StateStore:
    """The ConfigMap store ``config.alerts_state_configmap`` names, else a memory store."""
    ref = (config.alerts_state_configmap or "").strip()
    if not ref:
        return MemoryStateStore()
    namespace, _, name = ref.rpartition("/")
    namespace = namespace or _own_namespace(config.pod_namespace) or ""
    if not namespace or not name:
        log.warning("alerts state ConfigMap %r names no namespace (set POD_NAMESPACE); state stays in memory", ref)
        return MemoryStateStore()
    if kube is None:
        from ..kube import Kube

        kube = Kube(concurrency=2)
    return ConfigMapStateStore(kube, namespace, name)

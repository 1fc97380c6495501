"""The alert state in a ConfigMap, on the local cluster: a restarted operator re-fires nothing."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import pytest

from herald.alerts import ConfigMapStateStore, Timing, events, state_store
from herald.alerts.state import MemoryStateStore
from herald.config import OperatorConfig
from herald.kube import Kube

from .helpers import config, running

pytestmark = pytest.mark.cluster


@contextlib.asynccontextmanager
async def kube_client(cluster, monkeypatch) -> AsyncIterator[Kube]:
    """The operator's own API client (made in the test's event loop, closed in it)."""
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    client = Kube(concurrency=2)
    try:
        yield client
    finally:
        await client.close()


async def test_save_and_load_through_a_configmap(cluster, monkeypatch, namespace):
    async with kube_client(cluster, monkeypatch) as kube:
        await _save_and_load(kube, namespace)


async def _save_and_load(kube: Kube, namespace: str) -> None:
    store = ConfigMapStateStore(kube, namespace, "herald-alerts-state")
    assert await store.load() is None  # nothing yet
    await store.save({"version": 1, "alerts": []})  # created
    await store.save({"version": 1, "alerts": [{"x": 1}]})  # updated
    again = ConfigMapStateStore(kube, namespace, "herald-alerts-state")
    assert await again.load() == {"version": 1, "alerts": [{"x": 1}]}
    # A stale resourceVersion (another save in between) is taken over, not an error.
    await store.save({"version": 1, "alerts": [{"x": 2}]})
    await again.save({"version": 1, "alerts": [{"x": 3}]})
    assert await ConfigMapStateStore(kube, namespace, "herald-alerts-state").load() == {
        "version": 1,
        "alerts": [{"x": 3}],
    }
    cm = await kube.get(f"/api/v1/namespaces/{namespace}/configmaps/herald-alerts-state")
    assert cm["metadata"]["labels"]["app.kubernetes.io/component"] == "alert-state"


async def test_a_restarted_alerter_takes_its_alerts_from_the_configmap(cluster, monkeypatch, namespace, receiver):
    async with kube_client(cluster, monkeypatch) as kube:
        await _restart(kube, namespace, receiver)


async def _restart(kube: Kube, namespace: str, receiver) -> None:
    cfg = config({"type": "webhook", "url": receiver.url, "secret": "a-test-secret-of-enough-length"})
    timings = {events.PLATFORM_DOWN: Timing(0, 0.3)}
    down = events.platform_down(namespace="news", adapter="cm")
    async with running(cfg, store=ConfigMapStateStore(kube, namespace, "state"), timings=timings) as first:
        first.condition(down, True)
        (fired,) = await receiver.await_requests(1)
    async with running(cfg, store=ConfigMapStateStore(kube, namespace, "state"), timings=timings) as second:
        second.condition(down, True)
        assert await second.flush(5)
        assert len(receiver.requests) == 1  # re-fired nothing
        second.condition(down, False)
        _, resolved = await receiver.await_requests(2, timeout=10)
    assert resolved.json()["startsAt"] == fired.json()["startsAt"]


def test_the_state_configmap_comes_from_the_operator_config(cluster, monkeypatch):
    """HERALD_ALERTS_STATE_CONFIGMAP and POD_NAMESPACE, as the chart sets them, through OperatorConfig."""
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig)
    monkeypatch.delenv("HERALD_ALERTS_STATE_CONFIGMAP", raising=False)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert isinstance(state_store(OperatorConfig()), MemoryStateStore)
    monkeypatch.setenv("HERALD_ALERTS_STATE_CONFIGMAP", "herald-alerts")
    monkeypatch.setenv("POD_NAMESPACE", "herald-system")
    store = state_store(OperatorConfig())
    assert isinstance(store, ConfigMapStateStore)
    assert (store.namespace, store.name) == ("herald-system", "herald-alerts")
    monkeypatch.setenv("HERALD_ALERTS_STATE_CONFIGMAP", "ops/alerts")
    store = state_store(OperatorConfig())
    assert isinstance(store, ConfigMapStateStore) and (store.namespace, store.name) == ("ops", "alerts")
    monkeypatch.delenv("POD_NAMESPACE")
    monkeypatch.setenv("HERALD_ALERTS_STATE_CONFIGMAP", "alerts")
    if not os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/namespace"):
        assert isinstance(state_store(OperatorConfig()), MemoryStateStore)  # no namespace to put it in

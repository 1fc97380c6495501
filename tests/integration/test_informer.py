"""Herald's informer for Jobs and Pods against the real API server: the server-side label selector
keeps everything else away, every change arrives across the watch streams' reconnections, and an
expired resourceVersion (410 Gone) lists again instead of losing what changed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from kubernetes import client

from herald import metrics
from herald.engine import SELECTOR
from herald.informer import JOBS, PODS, Informer, Source
from herald.kube import Kube

pytestmark = pytest.mark.cluster


class Seen:
    """What the informer reported: the objects it holds now, by name, and every event."""

    def __init__(self) -> None:
        self.objects: dict[str, dict] = {}
        self.events: list[tuple[str, str]] = []
        self.listings = 0
        self.watches = 0  # watch requests sent
        self.news = asyncio.Event()  # set on every report

    def request(self, method: str, code: str, seconds: float, params) -> None:
        if params and params.get("watch") == "true":
            self.watches += 1
            self.news.set()

    def listing(self, kind: str, namespace: str | None, listing) -> None:
        self.listings += 1
        self.objects = {i["metadata"]["name"]: i for i in listing["items"]}
        self.news.set()

    def event(self, kind: str, event_type: str, obj: dict) -> None:
        name = obj["metadata"]["name"]
        self.events.append((event_type, name))
        if event_type == "DELETED":
            self.objects.pop(name, None)
        else:
            self.objects[name] = obj
        self.news.set()


async def until(seen: Seen, check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Wait, on what the informer reports, until ``check`` holds (with a deadline)."""
    deadline = time.monotonic() + timeout
    while not check():
        seen.news.clear()
        if check():
            return
        try:
            await asyncio.wait_for(seen.news.wait(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None


def job(name: str, labelled: bool) -> dict:
    labels = {SELECTOR: "p"} if labelled else {"app": "other"}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "suspend": True,  # no Pods: only the Job's own changes
            "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


def pod(name: str, labelled: bool) -> dict:
    labels = {SELECTOR: "p", "job-name": "j"} if labelled else {"app": "other"}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "adapter", "image": "busybox"}]},
    }


async def follow(kubeconfig: str, source: Source, namespace: str, scenario, server_timeout: int = 1) -> Seen:
    seen = Seen()
    kube = Kube(kubeconfig=kubeconfig, on_request=seen.request)
    informer = Informer(kube, source, [namespace], SELECTOR, seen.listing, seen.event, server_timeout=server_timeout)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 30)
        await scenario(seen, informer)
    finally:
        await informer.stop()
        await kube.close()
    return seen


def test_jobs_only_herald_s_and_every_change_across_reconnections(cluster, api, namespace):
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(namespace, job("before", labelled=True))
    restarts = metrics.REGISTRY.get_sample_value(
        "herald_watch_restarts_total", {"resource": "jobs", "reason": "expired"}
    )

    async def scenario(seen: Seen, informer: Informer) -> None:
        assert set(seen.objects) == {"before"}  # from the first list
        batch.create_namespaced_job(namespace, job("other", labelled=False))
        batch.create_namespaced_job(namespace, job("after", labelled=True))
        await until(seen, lambda: "after" in seen.objects, "the new Job")
        # The streams end every second on the server and are reopened from the last version:
        # changes made over several of them all arrive, in order.
        for i in range(3):
            batch.patch_namespaced_job("after", namespace, {"metadata": {"annotations": {"step": str(i)}}})
            await until(
                seen,
                lambda i=i: seen.objects["after"]["metadata"].get("annotations", {}).get("step") == str(i),
                f"change {i}",
            )
            # the next change after the stream in use has ended and another has opened
            await until(seen, lambda n=seen.watches: seen.watches > n, "a reconnection", timeout=10)
        batch.delete_namespaced_job("before", namespace, propagation_policy="Background")
        await until(seen, lambda: "before" not in seen.objects, "the deleted Job gone")
        assert ("DELETED", "before") in seen.events

    seen = asyncio.run(follow(cluster.kubeconfig, JOBS, namespace, scenario))
    assert "other" not in seen.objects and all(name != "other" for _, name in seen.events)
    assert seen.listings == 1 and seen.watches >= 4  # reconnections resume from a resourceVersion: no relist
    after = metrics.REGISTRY.get_sample_value("herald_watch_restarts_total", {"resource": "jobs", "reason": "expired"})
    assert after == restarts


def test_pods_only_herald_s(cluster, api, namespace):
    core = client.CoreV1Api(api)

    async def scenario(seen: Seen, informer: Informer) -> None:
        core.create_namespaced_pod(namespace, pod("other", labelled=False))
        core.create_namespaced_pod(namespace, pod("mine", labelled=True))
        await until(seen, lambda: "mine" in seen.objects, "the labelled Pod")

    seen = asyncio.run(follow(cluster.kubeconfig, PODS, namespace, scenario))
    assert set(seen.objects) == {"mine"} and all(name == "mine" for _, name in seen.events)


def test_an_expired_resource_version_lists_again(cluster, api, namespace):
    """A watch from a version the API server no longer has (compacted) gets 410 Gone: the informer
    counts an expired restart, lists again (what changed meanwhile is in the list) and watches on."""
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(namespace, job("missed", labelled=True))
    labels = {"resource": "jobs", "reason": "expired"}
    before = metrics.REGISTRY.get_sample_value("herald_watch_restarts_total", labels) or 0

    async def scenario() -> Seen:
        kube = Kube(kubeconfig=cluster.kubeconfig)
        seen = Seen()
        informer = Informer(kube, JOBS, [namespace], SELECTOR, seen.listing, seen.event, server_timeout=2)
        informer.start(resource_version="1")
        try:
            await until(seen, lambda: "missed" in seen.objects, "the Job, from a new list")
            batch.create_namespaced_job(namespace, job("later", labelled=True))
            await until(seen, lambda: "later" in seen.objects, "a Job made after the relist")
        finally:
            await informer.stop()
            await kube.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen.listings == 1
    assert metrics.REGISTRY.get_sample_value("herald_watch_restarts_total", labels) == before + 1

"""Creating Herald objects and waiting on them, for the cluster tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch

from tests.support.waiting import wait_until, watch_until

GROUP, VERSION = "herald.dev", "v1alpha1"


def result(outcome: str = "published", **fields: Any) -> str:
    """An adapter result JSON, as a simulated pod writes it to its termination message."""
    return json.dumps({"outcome": outcome, **fields}, separators=(",", ":"))


def fate(
    message: str | None = None,
    exit_code: int = 0,
    fail_attempts: str | None = None,
    success: str | None = None,
    duration: str | None = None,
) -> dict[str, str]:
    """Pod annotations that decide what the simulated adapter does (see docs/testing.md)."""
    ann: dict[str, str] = {}
    if message is not None:
        ann["kwok.herald.dev/message"] = message
    if exit_code:
        ann["kwok.herald.dev/exit-code"] = str(exit_code)
    if fail_attempts is not None:
        ann["kwok.herald.dev/fail-attempts"] = fail_attempts
    if success is not None:
        ann["kwok.herald.dev/success-message"] = success
    if duration is not None:
        ann["kwok.herald.dev/duration"] = duration
    return ann


PUBLISHED = fate(result(postId="1", url="https://example.social/@h/1", responseSeconds=0.1))


@dataclass
class Herald:
    api: client.ApiClient
    namespace: str
    custom: client.CustomObjectsApi = field(init=False)
    batch: client.BatchV1Api = field(init=False)
    core: client.CoreV1Api = field(init=False)

    def __post_init__(self) -> None:
        self.custom = client.CustomObjectsApi(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.core = client.CoreV1Api(self.api)

    # -- objects -------------------------------------------------------------------------------
    def adapter(
        self, name: str, platform: str = "mastodon", annotations: dict[str, str] | None = None, **spec: Any
    ) -> dict:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "PlatformAdapter",
            "metadata": {"name": name},
            "spec": {
                "platform": platform,
                "jobTemplate": {"podAnnotations": annotations if annotations is not None else PUBLISHED},
                **spec,
            },
        }
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "platformadapters", body)

    def patch_adapter(self, name: str, spec: dict) -> dict:
        return self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "platformadapters", name, {"spec": spec}
        )

    def publication(self, name: str, targets: list[str] | list[dict], text: str = "Hello", **spec: Any) -> dict:
        ts = [t if isinstance(t, dict) else {"adapter": t} for t in targets]
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Publication",
            "metadata": {"name": name},
            "spec": {"content": {"text": text}, "targets": ts, **spec},
        }
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "publications", body)

    def patch_publication(self, name: str, patch: dict) -> dict:
        return self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, "publications", name, patch)

    def get_publication(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "publications", name)

    def get_adapter(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "platformadapters", name)

    def jobs(self, publication: str | None = None) -> list:
        sel = (
            f"herald.dev/publication={publication}"
            if publication
            else "herald.dev/publication,herald.dev/publication!=recorder-sentinel"
        )
        return sorted(
            self.batch.list_namespaced_job(self.namespace, label_selector=sel).items,
            key=lambda j: (j.metadata.creation_timestamp, j.metadata.name),
        )

    def events(self, name: str) -> list:
        return self.core.list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={name}").items

    # -- waiting -------------------------------------------------------------------------------
    def _list_pubs(self, **kw):
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, "publications", **kw)

    def _list_adapters(self, **kw):
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, "platformadapters", **kw)

    def wait_publication(
        self, name: str, predicate: Callable[[dict], bool], timeout: float = 30, what: str = ""
    ) -> dict:
        return watch_until(
            self._list_pubs,
            lambda o: o["metadata"]["name"] == name and predicate(o),
            timeout=timeout,
            what=what or f"publication {name}",
        )

    def wait_phase(self, name: str, phase: str, timeout: float = 30) -> dict:
        return self.wait_publication(
            name, lambda o: (o.get("status") or {}).get("phase") == phase, timeout, f"publication {name} phase {phase}"
        )

    def wait_adapter(self, name: str, predicate: Callable[[dict], bool], timeout: float = 30, what: str = "") -> dict:
        return watch_until(
            self._list_adapters,
            lambda o: o["metadata"]["name"] == name and predicate(o),
            timeout=timeout,
            what=what or f"adapter {name}",
        )


def target(pub: dict, adapter: str) -> dict:
    """The status entry of one target ({} before the operator wrote one)."""
    return next((t for t in (pub.get("status") or {}).get("targets") or [] if t["adapter"] == adapter), {})


def condition(obj: dict, type_: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


class Recorder:
    """Follows the namespace's Herald Jobs (or Pods) and notes, in local time, when each was first seen
    and when it finished. The watch is proven live (a sentinel object arrives on it) before use."""

    kind = "jobs"

    def __init__(self, api: client.ApiClient, namespace: str):
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.added: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.jobs: dict[str, Any] = {}
        self._sentinel_seen = False
        self._stop = threading.Event()
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._sync()

    def _list(self):
        return self.batch.list_namespaced_job

    def _done(self, obj) -> bool:
        conds = {c.type: c.status for c in (obj.status.conditions or [])}
        return "True" in (conds.get("Complete"), conds.get("Failed"))

    def _sentinel(self, name: str) -> None:
        body = {
            "metadata": {"name": name, "labels": {"herald.dev/publication": "recorder-sentinel"}},
            "spec": {
                "suspend": True,
                "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "none"}]}},
            },
        }
        self.batch.create_namespaced_job(self.namespace, body)
        wait_until(lambda: self._sentinel_seen, timeout=15, what=f"the {self.kind} watch to be live")
        self.batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background")

    def _sync(self) -> None:
        self._sentinel(f"recorder-sentinel-{int(time.time() * 1000) % 10**8}")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for ev in self._watch.stream(
                    self._list(), self.namespace, timeout_seconds=300, label_selector="herald.dev/publication"
                ):
                    now = time.time()
                    obj = ev["object"]
                    if obj.metadata.labels.get("herald.dev/publication") == "recorder-sentinel":
                        self._sentinel_seen = True
                        continue
                    name = obj.metadata.name
                    self.jobs[name] = obj
                    self.added.setdefault(name, now)
                    if self._done(obj):
                        self.finished.setdefault(name, now)
                    if self._stop.is_set():
                        return
            except Exception:  # the watch is restarted on any error until stopped
                if self._stop.is_set():
                    return

    def wait_count(self, n: int, timeout: float = 30) -> None:
        wait_until(lambda: len(self.added) >= n, timeout, f"{n} {self.kind}")

    def stop(self) -> None:
        self._stop.set()
        self._watch.stop()


class JobRecorder(Recorder):
    pass


class PodRecorder(Recorder):
    """Pods: ``finished`` is when the adapter container's terminated state was first seen."""

    kind = "pods"

    def _list(self):
        return self.core.list_namespaced_pod

    def _done(self, obj) -> bool:
        return any(cs.state and cs.state.terminated for cs in (obj.status.container_statuses or []))

    def _sentinel(self, name: str) -> None:
        body = {
            "metadata": {"name": name, "labels": {"herald.dev/publication": "recorder-sentinel"}},
            "spec": {
                "nodeSelector": {"herald.dev/no-such-node": "true"},
                "containers": [{"name": "c", "image": "none"}],
            },
        }
        self.core.create_namespaced_pod(self.namespace, body)
        wait_until(lambda: self._sentinel_seen, timeout=15, what="the pod watch to be live")
        self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)

    def job_of(self, pod: str) -> str:
        return self.jobs[pod].metadata.labels["job-name"]

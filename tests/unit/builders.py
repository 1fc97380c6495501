"""Builders for the unit tests: API-shaped dict bodies, and a small simulator that applies a
reconcile ``Plan`` to a ``World`` the way the engine and the API server would (Job creates,
deletes, status merge patches, label patches), so scenarios can be driven step by step."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from herald.durations import format_time
from herald.reconciler import Plan, World, reconcile, with_target
from herald.views import AdapterView, JobView, PodView, PublicationView

UTC = UTC
T0 = datetime(2030, 6, 1, 9, 0, 0, tzinfo=UTC)
NS = "news"


def at(seconds: float) -> datetime:
    """T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def ts(t: datetime) -> str:
    return format_time(t)


# -- bodies ---------------------------------------------------------------------------------------


def adapter_body(
    name: str = "mastodon-main", *, ns: str = NS, status: Mapping[str, Any] | None = None, rv: int = 1, **spec: Any
) -> dict[str, Any]:
    s = {"platform": "mastodon", "endpoint": "https://mastodon.example", **spec}
    return {
        "apiVersion": "herald.dev/v1alpha1",
        "kind": "PlatformAdapter",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-adapter-{name}",
            "generation": 1,
            "resourceVersion": str(rv),
        },
        "spec": s,
        "status": dict(status or {}),
    }


def publication_body(
    name: str = "launch",
    *,
    targets: list[Any] | None = None,
    ns: str = NS,
    created: datetime = T0,
    uid: str | None = None,
    status: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    content: Mapping[str, Any] | None = None,
    rv: int = 1,
    **spec: Any,
) -> dict[str, Any]:
    targets = targets if targets is not None else ["mastodon-main"]
    tl = [t if isinstance(t, dict) else {"adapter": t} for t in targets]
    s = {"content": dict(content or {"text": "Herald 1.0 is out"}), "targets": tl, **spec}
    return {
        "apiVersion": "herald.dev/v1alpha1",
        "kind": "Publication",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": uid or f"uid-pub-{name}",
            "generation": 1,
            "resourceVersion": str(rv),
            "creationTimestamp": ts(created),
            "labels": dict(labels or {}),
            "annotations": dict(annotations or {}),
        },
        "spec": s,
        "status": dict(status or {}),
    }


def termination(
    result: Mapping[str, Any] | str | None,
    exit_code: int = 0,
    reason: str | None = None,
    started: datetime | None = None,
    finished: datetime | None = None,
) -> dict[str, Any]:
    t: dict[str, Any] = {"exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0 else "Error")}
    if result is not None:
        t["message"] = result if isinstance(result, str) else json.dumps(result)
    if started:
        t["startedAt"] = ts(started)
    if finished:
        t["finishedAt"] = ts(finished)
    return t


def pod_body(
    job: str,
    *,
    ns: str = NS,
    name: str | None = None,
    phase: str = "Running",
    terminated: Mapping[str, Any] | None = None,
    waiting: Mapping[str, Any] | None = None,
    reason: str | None = None,
    message: str | None = None,
    rv: int = 1,
    container: str = "adapter",
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if terminated is not None:
        state["terminated"] = dict(terminated)
    elif waiting is not None:
        state["waiting"] = dict(waiting)
    else:
        state["running"] = {"startedAt": ts(T0)}
    status: dict[str, Any] = {
        "phase": phase,
        "containerStatuses": [{"name": container, "state": state}],
        "startTime": ts(T0),
    }
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    return {
        "metadata": {
            "name": name or f"{job}-x7k2p",
            "namespace": ns,
            "resourceVersion": str(rv),
            "labels": {"job-name": job, "herald.dev/publication": "p"},
        },
        "status": status,
    }


def job_body(
    name: str = "launch-mastodon-main-abcdef-1",
    *,
    ns: str = NS,
    target: str = "mastodon-main",
    attempt: int = 1,
    owner_uid: str = "uid-pub-launch",
    created: datetime = T0,
    verify: bool = False,
    complete: bool = False,
    failed: bool = False,
    failed_reason: str = "",
    active: int = 1,
    rv: int = 1,
) -> dict[str, Any]:
    conditions = []
    if complete:
        conditions.append({"type": "Complete", "status": "True"})
    if failed:
        conditions.append({"type": "Failed", "status": "True", "reason": failed_reason})
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-job-{name}",
            "resourceVersion": str(rv),
            "creationTimestamp": ts(created),
            "annotations": {
                "herald.dev/attempt": str(attempt),
                "herald.dev/target": target,
                "herald.dev/mode": "verify" if verify else "publish",
            },
            "ownerReferences": [{"kind": "Publication", "uid": owner_uid, "name": "launch", "controller": True}],
        },
        "status": {"startTime": ts(created), "conditions": conditions, "active": 0 if (complete or failed) else active},
    }


def published(
    post_id: str = "109876", url: str | None = "https://mastodon.example/@herald/109876", **extra: Any
) -> dict[str, Any]:
    return {"outcome": "published", "postId": post_id, "url": url, **extra}


def failed(error_class: str | None, message: str = "HTTP 503 Service Unavailable", **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"outcome": "failed", "message": message, **extra}
    if error_class is not None:
        r["errorClass"] = error_class
    return r


# -- merge patch ----------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what the API server does with a merge-patch+json body)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# -- the simulator --------------------------------------------------------------------------------


class Sim:
    """Dict bodies for one namespace, a reconcile that reads them as views, and ``apply`` that
    executes a plan against them."""

    def __init__(self, ns: str = NS) -> None:
        self.ns = ns
        self.publications: dict[str, dict[str, Any]] = {}
        self.adapters: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], str | None] = {}
        self.job_starts: dict[tuple[str, str], datetime] = {}
        self.refuse: dict[str, str] = {}  # Job name -> the API server's message when it refuses the create
        self.create_failures: dict[tuple[str, str], str] = {}  # refused creates, as the engine records them
        self.events: list[Any] = []
        self.plans: list[Plan] = []
        self._rv = 1000

    # objects
    def next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def add_adapter(self, name: str = "mastodon-main", **kw: Any) -> dict[str, Any]:
        body = adapter_body(name, ns=self.ns, rv=int(self.next_rv()), **kw)
        self.adapters[name] = body
        return body

    def add_publication(self, name: str = "launch", **kw: Any) -> dict[str, Any]:
        body = publication_body(name, ns=self.ns, rv=int(self.next_rv()), **kw)
        self.publications[name] = body
        return body

    def set_secret(self, name: str, rv: str | None) -> None:
        self.secrets[(self.ns, name)] = rv

    # views
    def world(self) -> World:
        jobs = {}
        for b in self.jobs.values():
            v = JobView.from_body(b)
            if v is not None:
                jobs[v.key] = v
        pods = {}
        for b in self.pods.values():
            v = PodView.from_body(b)
            if v is not None:
                pods[v.key] = v
        return World(
            publications={(self.ns, n): PublicationView.from_body(b) for n, b in self.publications.items()},
            adapters={(self.ns, n): AdapterView.from_body(b) for n, b in self.adapters.items()},
            jobs=jobs,
            pods=pods,
            secrets=dict(self.secrets),
            job_starts=dict(self.job_starts),
            create_failures=dict(self.create_failures),
        )

    def reconcile(self, now: datetime, start_budget: int | None = None) -> Plan:
        return reconcile(self.world(), now, start_budget=start_budget)

    def apply(self, plan: Plan, now: datetime) -> None:
        self.plans.append(plan)
        for jc in plan.creates:
            m = jc.manifest
            name = m["metadata"]["name"]
            assert name not in self.jobs, f"Job {name} created twice"
            if name in self.refuse:  # what the engine does with a refused create
                self.create_failures[(self.ns, name)] = self.refuse[name]
                key = jc.publication
                plan.publication_status[key] = with_target(
                    plan.publication_status[key],
                    jc.target,
                    attempts=jc.previous_attempt,
                    jobName=None,
                    phase="Queued",
                    reason="JobRefused",
                )
                continue
            body = copy.deepcopy(m)
            body["metadata"].update(
                uid=f"uid-job-{name}", resourceVersion=self.next_rv(), creationTimestamp=ts(now.replace(microsecond=0))
            )
            body["status"] = {"active": 1, "startTime": ts(now.replace(microsecond=0))}
            self.jobs[name] = body
            self.job_starts[(self.ns, name)] = now
            if jc.started is not None:  # the engine posts it once the Job exists
                self.events.append(jc.started)
        for _, name in plan.deletes:
            self.jobs.pop(name, None)
            for pod_name in [p for p, b in self.pods.items() if b["metadata"]["labels"]["job-name"] == name]:
                del self.pods[pod_name]
        for (_, name), status in plan.publication_status.items():
            body = self.publications[name]
            body["status"] = merge_patch(body.get("status") or {}, json.loads(json.dumps(status)))
            body["metadata"]["resourceVersion"] = self.next_rv()
        for (_, name), labels in plan.publication_labels.items():
            body = self.publications[name]
            body["metadata"]["labels"] = merge_patch(body["metadata"].get("labels") or {}, labels)
            body["metadata"]["resourceVersion"] = self.next_rv()
        for (_, name), status in plan.adapter_status.items():
            body = self.adapters[name]
            body["status"] = merge_patch(body.get("status") or {}, json.loads(json.dumps(status)))
            body["metadata"]["resourceVersion"] = self.next_rv()
        self.events.extend(plan.events)

    def step(self, now: datetime) -> Plan:
        plan = self.reconcile(now)
        self.apply(plan, now)
        return plan

    # job fates
    def job_for(self, publication: str, target: str, attempt: int | None = None) -> dict[str, Any]:
        uid = self.publications[publication]["metadata"]["uid"]
        found = [
            b
            for b in self.jobs.values()
            if b["metadata"]["ownerReferences"][0]["uid"] == uid
            and b["metadata"]["annotations"]["herald.dev/target"] == target
            and (attempt is None or b["metadata"]["annotations"]["herald.dev/attempt"] == str(attempt))
        ]
        assert found, f"no Job for {publication}/{target} attempt {attempt}"
        return max(found, key=lambda b: int(b["metadata"]["annotations"]["herald.dev/attempt"]))

    def finish(
        self,
        publication: str,
        target: str,
        result: Mapping[str, Any] | str | None,
        *,
        exit_code: int | None = None,
        now: datetime = T0,
        reason: str | None = None,
    ) -> str:
        """The latest Job of the target finishes: its pod terminates with ``result``."""
        job = self.job_for(publication, target)
        name = job["metadata"]["name"]
        if exit_code is None:
            exit_code = 0 if isinstance(result, Mapping) and result.get("outcome") == "published" else 1
        ok = exit_code == 0
        job["status"] = {
            "startTime": job["status"].get("startTime"),
            "active": 0,
            "conditions": [
                {
                    "type": "Complete" if ok else "Failed",
                    "status": "True",
                    "reason": "" if ok else "BackoffLimitExceeded",
                }
            ],
        }
        if ok:
            job["status"]["completionTime"] = ts(now)
        job["metadata"]["resourceVersion"] = self.next_rv()
        self.pods[f"{name}-pod"] = pod_body(
            name,
            ns=self.ns,
            name=f"{name}-pod",
            phase="Succeeded" if ok else "Failed",
            terminated=termination(result, exit_code, reason=reason, finished=now),
            rv=int(self.next_rv()),
        )
        return name

    def target(self, publication: str, adapter: str = "mastodon-main") -> dict[str, Any]:
        for t in self.publications[publication].get("status", {}).get("targets") or []:
            if t["adapter"] == adapter:
                return t
        raise AssertionError(f"no status for target {adapter} of {publication}")

    def status(self, publication: str) -> dict[str, Any]:
        return self.publications[publication].get("status") or {}

    def adapter_status(self, name: str = "mastodon-main") -> dict[str, Any]:
        return self.adapters[name].get("status") or {}


def noop_problems(plan: Plan) -> list[str]:
    """What a plan would still change; empty for a plan that writes nothing."""
    problems = []
    if plan.creates:
        problems.append(f"creates {[c.manifest['metadata']['name'] for c in plan.creates]}")
    if plan.deletes:
        problems.append(f"deletes {plan.deletes}")
    for key, st in plan.publication_status.items():
        problems.append(f"publication status {key}: {json.dumps(st, default=str)[:600]}")
    if plan.publication_labels:
        problems.append(f"labels {plan.publication_labels}")
    for key, st in plan.adapter_status.items():
        problems.append(f"adapter status {key}: {json.dumps(st, default=str)[:600]}")
    if plan.events:
        problems.append(f"events {[(e.reason, e.message) for e in plan.events]}")
    return problems


def status_diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Where two status documents differ (None and a missing key are the same, as after a merge patch)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for k in sorted(set(old) | set(new)):
            out += status_diff(old.get(k), new.get(k), f"{path}.{k}")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=False)):
            out += status_diff(a, b, f"{path}[{i}]")
        return out
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def condition_of(status: Mapping[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or [] if c["type"] == type_)


# -- hypothesis -----------------------------------------------------------------------------------

from hypothesis import HealthCheck, Phase, settings  # noqa: E402

# Deterministic: the same examples every run, no example database, no timing flakiness.
DETERMINISTIC = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

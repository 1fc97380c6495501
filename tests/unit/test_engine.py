"""The engine's write selection, without a cluster: which writes a tick sends, which it holds, what
a refused or conflicting write leads to, and that one slow unit does not hold up another.

The client here is a recorder with scripted answers (``ScriptedKube``), not a fake Kubernetes: the
engine against the real API server is tested in tests/integration."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import time
from typing import Any

import pytest

from herald.engine import Engine, EngineSettings, utcnow
from herald.jobs import JobDefaults
from herald.kube import ApiError
from herald.store import Store

from .builders import adapter_body, job_body, pod_body, publication_body, published

NS = "news"


class ScriptedKube:
    """Records every request; answers creates and patches like the API server would, unless a
    script for that path says otherwise (an ApiError to raise, or an asyncio.Event to wait on)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.fail: dict[str, ApiError] = {}
        self.gate: dict[str, asyncio.Event] = {}
        self.objects: dict[str, dict[str, Any]] = {}
        self.rv = 100

    def _next(self) -> str:
        self.rv += 1
        return str(self.rv)

    async def _script(self, method: str, path: str, body: Any) -> None:
        self.calls.append((method, path, copy.deepcopy(body)))
        for prefix, gate in self.gate.items():
            if path.startswith(prefix):
                await gate.wait()
        for prefix, error in self.fail.items():
            if path.startswith(prefix):
                raise error

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        await self._script("POST", path, body)
        out = copy.deepcopy(body)
        out["metadata"].update(
            resourceVersion=self._next(),
            uid=f"uid-{body['metadata']['name']}",
            creationTimestamp="2030-06-01T09:00:00Z",
        )
        out.setdefault("status", {"active": 1})
        return out

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        await self._script("PATCH", path, body)
        base = path.removesuffix("/status")
        obj = copy.deepcopy(self.objects[base])
        if "status" in body:
            obj["status"] = {**obj.get("status", {}), **body["status"]}
        if "labels" in body.get("metadata", {}):
            obj["metadata"]["labels"] = {**obj["metadata"].get("labels", {}), **body["metadata"]["labels"]}
        obj["metadata"]["resourceVersion"] = self._next()
        self.objects[base] = obj
        return obj

    async def get(self, path: str, metadata_only: bool = False) -> dict[str, Any]:
        await self._script("GET", path, None)
        if path in self.objects:
            return copy.deepcopy(self.objects[path])
        raise ApiError(404, '{"reason": "NotFound"}', f"GET {path}")

    async def delete(self, path: str, resource_version: str | None = None) -> None:
        await self._script("DELETE", path, None)

    async def list(self, path: str, label_selector: str | None = None) -> dict[str, Any]:
        return {"items": [], "metadata": {"resourceVersion": "1"}}

    def posts(self, kind: str) -> list[Any]:
        return [b for m, p, b in self.calls if m == "POST" and p.endswith(f"/{kind}")]

    def status_patches(self, name: str) -> list[Any]:
        return [b for m, p, b in self.calls if m == "PATCH" and p.endswith(f"/publications/{name}/status")]


def pub_path(name: str) -> str:
    return f"/apis/herald.dev/v1alpha1/namespaces/{NS}/publications/{name}"


async def engine_with(kube: ScriptedKube, *bodies: dict[str, Any], coalesce: float = 10.0) -> tuple[Engine, Store]:
    store = Store()
    for body in bodies:
        kind = "publications" if body["kind"] == "Publication" else "platformadapters"
        store.apply(kind, "ADDED", body)
        kube.objects[f"/apis/herald.dev/v1alpha1/namespaces/{NS}/{kind}/{body['metadata']['name']}"] = body
    engine = Engine(kube, store, JobDefaults(), [NS], settings=EngineSettings(status_coalesce_seconds=coalesce))
    return engine, store


async def until(predicate: Any, what: str) -> None:
    """Let the event loop run the engine's tasks until ``predicate`` holds (bounded; no clock)."""
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never: {what}")


async def settle(engine: Engine) -> None:
    """Run ticks until no unit has writes in flight (bounded)."""
    deadline = time.monotonic() + 5
    await engine.tick()
    while engine._tasks or engine._busy or engine._deferred:
        assert time.monotonic() < deadline, "writes never finished"
        if engine._tasks:
            await asyncio.wait(list(engine._tasks), timeout=1)
        await engine.tick()


async def test_a_started_attempt_is_written_once_the_job_exists_and_its_status_is_held():
    kube = ScriptedKube()
    engine, _ = await engine_with(kube, adapter_body("mastodon-main", ns=NS), publication_body("launch", ns=NS))
    await settle(engine)
    (job,) = kube.posts("jobs")
    assert job["metadata"]["annotations"]["herald.dev/attempt"] == "1"
    # The start alone is held (merged with the outcome if it comes within the window)...
    assert kube.status_patches("launch") == []
    # ...and its Event is posted after the Job exists.
    events = list(kube.posts("events"))
    assert [e["reason"] for e in events] == ["AttemptStarted"]


async def test_without_coalescing_the_start_is_written_with_the_resource_version_it_was_decided_from():
    kube = ScriptedKube()
    pub = publication_body("launch", ns=NS, rv=7)
    engine, _ = await engine_with(kube, adapter_body("mastodon-main", ns=NS), pub, coalesce=0)
    await settle(engine)
    first = kube.status_patches("launch")[0]
    assert first["metadata"] == {"resourceVersion": "7"}
    assert first["status"]["phase"] == "Publishing"


async def test_a_refused_job_is_a_failed_attempt_with_no_started_event():
    kube = ScriptedKube()
    kube.fail["/apis/batch/v1/namespaces/news/jobs"] = ApiError(
        422, '{"reason": "Invalid", "message": "Job.batch is invalid: metadata.labels: Invalid value"}', "POST"
    )
    engine, _store = await engine_with(kube, adapter_body("mastodon-main", ns=NS), publication_body("launch", ns=NS))
    await settle(engine)
    assert len(kube.posts("jobs")) == 1, "refused once, not retried"
    status = kube.objects[pub_path("launch")]["status"]
    (t,) = status["targets"]
    assert (t["phase"], t["lastErrorClass"], t["deadLetter"]) == ("Failed", "invalid_spec", True)
    assert "metadata.labels: Invalid value" in t["lastError"]
    reasons = [e["reason"] for e in kube.posts("events")]
    assert "AttemptStarted" not in reasons and reasons.count("DeadLetter") == 1


async def test_a_transient_create_failure_is_retried_later_with_one_event():
    kube = ScriptedKube()
    kube.fail["/apis/batch/v1/namespaces/news/jobs"] = ApiError(503, '{"reason": "ServiceUnavailable"}', "POST")
    engine, _ = await engine_with(kube, adapter_body("mastodon-main", ns=NS), publication_body("launch", ns=NS))
    await settle(engine)
    await settle(engine)
    t = kube.objects[pub_path("launch")]["status"]["targets"][0]
    assert (t["phase"], t["reason"], t["attempts"]) == ("Queued", "JobCreateFailed", 0)
    assert t["nextAttemptAt"] is not None
    assert [e["reason"] for e in kube.posts("events")] == ["JobCreateFailed"]


async def test_a_deleted_publication_leaves_nothing_behind_in_the_engine():
    kube = ScriptedKube()
    kube.fail["/apis/batch/v1/namespaces/news/jobs"] = ApiError(503, '{"reason": "ServiceUnavailable"}', "POST")
    engine, store = await engine_with(kube, adapter_body("mastodon-main", ns=NS), publication_body("launch", ns=NS))
    await settle(engine)
    key = (NS, "launch")
    assert engine._create_failures.get(key) == 1 and ("p", NS, "launch") in engine._timer_at
    store.apply("publications", "DELETED", publication_body("launch", ns=NS, rv=999))
    await settle(engine)
    assert key not in engine._create_failures and ("p", NS, "launch") not in engine._timer_at
    assert ("p", NS, "launch") not in engine._failures and key not in engine._held


async def test_a_conflict_rereads_the_object_and_decides_again():
    kube = ScriptedKube()
    pub = publication_body("launch", ns=NS, rv=7)
    engine, _store = await engine_with(kube, adapter_body("mastodon-main", ns=NS), pub, coalesce=0)
    kube.fail[pub_path("launch") + "/status"] = ApiError(409, '{"reason": "Conflict"}', "PATCH")
    await engine.tick()
    await asyncio.wait(list(engine._tasks), timeout=5)
    assert ("GET", pub_path("launch"), None) in kube.calls
    del kube.fail[pub_path("launch") + "/status"]
    await settle(engine)
    assert kube.objects[pub_path("launch")]["status"]["phase"] == "Publishing"


async def test_a_slow_unit_does_not_hold_up_another():
    kube = ScriptedKube()
    slow = asyncio.Event()
    kube.gate["/apis/batch/v1/namespaces/news/jobs"] = slow  # every Job create hangs...
    engine, store = await engine_with(
        kube,
        adapter_body("slow", ns=NS),
        adapter_body("fast", ns=NS),
        publication_body("to-slow", ns=NS, targets=["slow"]),
        publication_body("to-fast", ns=NS, targets=["fast"], status={"phase": "Pending"}),
        coalesce=0,
    )
    await engine.tick()
    await until(lambda: len(kube.posts("jobs")) == 2, "both units start their writes at once")
    # ...yet the next tick decides a change to another unit while both creates hang.
    store.apply("platformadapters", "MODIFIED", adapter_body("other", ns=NS, rv=500))
    await engine.tick()
    assert engine.units >= 3
    slow.set()
    await settle(engine)


async def test_health_fails_when_work_is_due_and_no_tick_ended():
    kube = ScriptedKube()
    engine, store = await engine_with(kube, adapter_body("mastodon-main", ns=NS))
    engine._task = asyncio.create_task(asyncio.Event().wait())  # a loop that is alive but stuck
    try:
        engine.last_tick_done = time.monotonic() - 120
        assert engine.health() == (False, "no reconcile tick ended for 120s while work is due")
        store.take_dirty()
        assert engine.health()[0] is True  # nothing due: an idle loop is healthy
    finally:
        engine._task.cancel()


@pytest.mark.parametrize(
    "status,transient,invalid",
    [
        (0, True, False),
        (503, True, False),
        (429, True, False),
        (422, False, True),
        (400, False, True),
        (403, False, False),
    ],
)
def test_api_errors_are_classified(status, transient, invalid):
    e = ApiError(status, '{"reason": "X", "message": "m"}', "GET /x")
    assert (e.transient, e.invalid) == (transient, invalid)


async def test_a_secret_the_operator_may_not_read_is_asked_for_rarely_and_never_marked_missing():
    kube = ScriptedKube()
    body = adapter_body("mastodon-main", ns=NS, credentialsSecretRef={"name": "creds"})
    store = Store()
    store.apply("platformadapters", "ADDED", body)
    engine = Engine(kube, store, JobDefaults(), [NS], settings=EngineSettings(read_secret_metadata=True))
    kube.fail[f"/api/v1/namespaces/{NS}/secrets/"] = ApiError(403, '{"reason": "Forbidden"}', "GET secret")
    await engine._refresh_secrets()
    await engine._refresh_secrets()  # within the resync interval: not asked again
    assert [p for m, p, _ in kube.calls if "/secrets/" in p] == [f"/api/v1/namespaces/{NS}/secrets/creds"]
    assert (NS, "creds") not in store.secrets  # unknown: probes stand in, not "Secret not found"


# -- one adapter's burst: slices that overlap, each attempt started once ----------------------------
async def burst(count: int, concurrency: int, **settings: Any) -> tuple[ScriptedKube, Engine, Store, asyncio.Event]:
    kube = ScriptedKube()
    hang = asyncio.Event()
    kube.gate["/apis/batch/v1/namespaces/news/jobs"] = hang
    store = Store()
    bodies = [adapter_body("a", ns=NS, concurrency=concurrency)]
    bodies += [publication_body(f"p{i:03d}", ns=NS, targets=["a"], uid=f"uid-p{i:03d}") for i in range(count)]
    for body in bodies:
        kind = "publications" if body["kind"] == "Publication" else "platformadapters"
        store.apply(kind, "ADDED", body)
        kube.objects[f"/apis/herald.dev/v1alpha1/namespaces/{NS}/{kind}/{body['metadata']['name']}"] = body
    chosen = EngineSettings(status_coalesce_seconds=10, unit_writes=8, inflight_writes=24, **settings)
    return kube, Engine(kube, store, JobDefaults(), [NS], settings=chosen), store, hang


def created_jobs(kube: ScriptedKube) -> list[str]:
    return [b["metadata"]["name"] for b in kube.posts("jobs")]


async def test_a_busy_adapters_next_slice_is_decided_while_the_last_ones_creates_are_in_flight():
    kube, engine, _store, hang = await burst(40, concurrency=1000)
    for _ in range(10):  # ticks while every Job create hangs
        await engine.tick()
        await until(lambda: not engine._writing or len(kube.calls) >= 2 * engine._writing, "creates are sent")
    # 8 writes per slice (a Job with its Event is 2: four publications), up to 24 writes in flight:
    # three slices overlap instead of one at a time.
    assert len(created_jobs(kube)) == 12
    hang.set()
    await settle(engine)
    jobs = created_jobs(kube)
    assert len(jobs) == 40 and len(set(jobs)) == 40  # every publication's attempt, each once
    started = [b for b in kube.posts("events") if b["reason"] == "AttemptStarted"]
    assert sorted(e["involvedObject"]["name"] for e in started) == [f"p{i:03d}" for i in range(40)]


async def test_a_write_gives_its_slot_back_as_it_ends_not_when_its_unit_ends():
    kube, engine, _store, hang = await burst(40, concurrency=1000)
    hang.set()  # Job creates answer at once...
    events = asyncio.Event()
    kube.gate["/api/v1/namespaces/news/events"] = events  # ...but every Event hangs
    for _ in range(30):
        await engine.tick()
        await until(
            lambda: engine._inflight == len(kube.posts("events")) == len(created_jobs(kube)),
            "each create answered, and its Event sent",
        )
    # Each slice's 4 creates gave their slots back when answered; only the 4 hanging Events hold
    # theirs: six slices (24 Events) fit in the 24 writes in flight, where whole units held 3.
    assert len(created_jobs(kube)) == 24 and engine._inflight == 24
    events.set()
    await settle(engine)
    assert len(set(created_jobs(kube))) == len(created_jobs(kube)) == 40 and engine._inflight == 0


async def test_overlapping_slices_never_start_more_than_the_adapters_concurrency():
    kube, engine, _store, hang = await burst(30, concurrency=6)
    for _ in range(10):
        await engine.tick()
        await until(lambda: not engine._writing or len(kube.calls) >= 2 * engine._writing, "creates are sent")
    assert len(created_jobs(kube)) == 6  # the Jobs being created count before they exist
    hang.set()
    await settle(engine)
    assert len(created_jobs(kube)) == 6  # they run (active) and hold every slot


async def test_a_failed_create_frees_the_slot_its_expected_job_held():
    kube, engine, store, hang = await burst(3, concurrency=1)
    kube.fail["/apis/batch/v1/namespaces/news/jobs"] = ApiError(500, '{"reason": "InternalError"}', "POST jobs")
    hang.set()
    await settle(engine)
    # Concurrency 1, yet each publication was tried in turn: a failed create's slot is free again.
    assert len(created_jobs(kube)) == 3 and not store.expected
    assert store.world_for(set(), {(NS, "a")}, utcnow()).loads[(NS, "a")].running == 0


class SlotWaits:
    """An observer that keeps the engine's request-slot waits (the metric's input)."""

    def __init__(self) -> None:
        self.waits: list[tuple[str, float]] = []

    def request_slot_waited(self, pool: str, seconds: float) -> None:
        self.waits.append((pool, seconds))

    def __call__(self, plan: Any, now: Any) -> None:
        pass

    def queue_depth(self, **depths: int) -> None:
        pass

    def adapters_present(self, adapters: Any) -> None:
        pass

    def tick(self, seconds: float, failed: int) -> None:
        pass


async def test_requests_beyond_the_request_slots_wait_and_each_wait_is_reported():
    kube, engine, _store, hang = await burst(6, concurrency=1000, requests=2)
    engine.observer = observed = SlotWaits()
    for _ in range(5):
        await engine.tick()
        await until(lambda: len(created_jobs(kube)) == 2, "two creates are sent")
    await until(lambda: engine._requests.waiting == 4, "the other four creates wait for a slot")
    first_sent = time.monotonic()
    for _ in range(5):
        await engine.tick()
    assert len(created_jobs(kube)) == 2 and engine._requests.waiting == 4  # two request slots
    released = time.monotonic()
    hang.set()
    await settle(engine)
    assert len(set(created_jobs(kube))) == 6
    writes = [s for pool, s in observed.waits if pool == "writes"]
    events = [s for pool, s in observed.waits if pool == "events"]
    # Every create and status write took a slot and reported its wait; every Event took one of its own pool.
    assert len(writes) >= 6 and len(events) == len(kube.posts("events")) >= 6
    # A create that waited for a slot reports at least the time the first two held theirs.
    assert max(writes) >= released - first_sent > 0
    assert all(s >= 0 for s in writes + events)


ADAPTER_STATUS = f"/apis/herald.dev/v1alpha1/namespaces/{NS}/platformadapters/a/status"


async def counted_adapter(kube: ScriptedKube) -> tuple[Engine, Store]:
    """Adapter "a" with one running publication, its status written: from here on, each new
    publication only moves the adapter's queue counts (written at once: no throttle)."""
    bodies = [adapter_body("a", ns=NS, concurrency=100), publication_body("p0", ns=NS, targets=["a"], uid="uid-p0")]
    store = Store()
    for body in bodies:
        kind = "publications" if body["kind"] == "Publication" else "platformadapters"
        store.apply(kind, "ADDED", body)
        kube.objects[f"/apis/herald.dev/v1alpha1/namespaces/{NS}/{kind}/{body['metadata']['name']}"] = body
    settings = EngineSettings(status_coalesce_seconds=10, adapter_counts_seconds=0)
    engine = Engine(kube, store, JobDefaults(), [NS], settings=settings)
    await settle(engine)
    return engine, store


def adapter_patches(kube: ScriptedKube, since: int = 0) -> list[dict[str, Any]]:
    return [b for m, p, b in kube.calls[since:] if m == "PATCH" and p == ADAPTER_STATUS]


async def test_an_adapters_queue_counts_are_written_beside_its_starts_not_in_their_way():
    kube = ScriptedKube()
    engine, store = await counted_adapter(kube)
    mark, hold = len(kube.calls), asyncio.Event()
    kube.gate[ADAPTER_STATUS] = hold  # the adapter's status writes hang
    for i in (1, 2, 3):
        store.apply("publications", "ADDED", publication_body(f"p{i}", ns=NS, targets=["a"], uid=f"uid-p{i}"))
        await engine.tick()
        await until(lambda i=i: len(created_jobs(kube)) == i + 1, f"p{i} starts while the counts are being written")
    # One counts write at a time per adapter: the others wait, and only the newest is sent.
    assert len(adapter_patches(kube, mark)) == 1
    hold.set()
    await settle(engine)
    first, newest = adapter_patches(kube, mark)
    assert (first["status"]["queue"]["running"], newest["status"]["queue"]["running"]) == (2, 4)
    assert kube.objects[ADAPTER_STATUS.removesuffix("/status")]["status"]["queue"]["running"] == 4


async def test_an_adapters_whole_status_waits_for_its_counts_write_and_is_never_overwritten_by_an_older_one():
    kube = ScriptedKube()
    engine, store = await counted_adapter(kube)
    mark, hold = len(kube.calls), asyncio.Event()
    kube.gate[ADAPTER_STATUS] = hold
    for i in (1, 2):  # a counts write in flight, a newer one waiting
        store.apply("publications", "ADDED", publication_body(f"p{i}", ns=NS, targets=["a"], uid=f"uid-p{i}"))
        await engine.tick()
        await until(lambda i=i: len(created_jobs(kube)) == i + 1, f"p{i} starts")
    # The adapter is paused: a change of its conditions, written by the unit that decided it.
    paused = copy.deepcopy(kube.objects[ADAPTER_STATUS.removesuffix("/status")])
    paused["spec"]["paused"] = True
    paused["metadata"].update(generation=2, resourceVersion="500")
    paused["status"] = dict(store.objects["platformadapters"][(NS, "a")].status)
    store.apply("platformadapters", "MODIFIED", paused)
    kube.objects[ADAPTER_STATUS.removesuffix("/status")] = paused
    await engine.tick()
    await until(lambda: engine._writing == 1, "the unit writing the paused status runs")
    assert len(adapter_patches(kube, mark)) == 1  # it waits for the counts write in flight
    hold.set()
    await settle(engine)
    # The counts write in flight, then the whole status; the older counts that waited are not sent.
    counts, whole = adapter_patches(kube, mark)
    assert counts["status"]["queue"]["running"] == 2
    ready = {c["type"]: c for c in whole["status"]["conditions"]}["Available"]
    assert (ready["status"], ready["reason"]) == ("False", "Paused")
    final = kube.objects[ADAPTER_STATUS.removesuffix("/status")]["status"]
    assert {c["type"]: c["reason"] for c in final["conditions"]}["Available"] == "Paused"
    assert final["queue"]["running"] == 3
    assert not engine._adapter_writes  # no lock kept once written


async def test_a_throttled_adapter_status_never_loses_the_time_of_a_publication():
    kube = ScriptedKube()
    bodies = [adapter_body("a", ns=NS, concurrency=2)]
    bodies += [publication_body(f"q{i}", ns=NS, targets=["a"], uid=f"uid-q{i}") for i in range(2)]
    engine, store = await engine_with(kube, *bodies, coalesce=0)
    engine.settings = dataclasses.replace(engine.settings, adapter_counts_seconds=3600)
    await settle(engine)
    first = kube.posts("jobs")[0]["metadata"]["name"]
    owner = first.split("-a-")[0]
    mark = len(kube.calls)
    # q0 is published: its adapter's status would only move its counts and lastPublishedTime, which
    # the throttle holds back; q0's own status, with the outcome, is written now.
    result = json.dumps(published())
    store.apply(
        "pods", "ADDED", pod_body(first, ns=NS, phase="Succeeded", terminated={"exitCode": 0, "message": result})
    )
    await settle(engine)
    (target,) = kube.status_patches(owner)[-1]["status"]["targets"]
    assert target["phase"] == "Published" and adapter_patches(kube, mark) == []
    # No later decision sees that outcome again; when the window ends, its time is written.
    engine.settings = dataclasses.replace(engine.settings, adapter_counts_seconds=0)
    await settle(engine)
    written = kube.objects[ADAPTER_STATUS.removesuffix("/status")]["status"]
    assert written["lastPublishedTime"] == target["publishedTime"]
    assert not engine._held_published


def test_changes_to_one_adapters_publications_are_one_unit_closed_once(monkeypatch):
    store = Store()
    for name in ("a", "b"):
        store.apply("platformadapters", "ADDED", adapter_body(name, ns=NS))
    for i in range(20):  # running: their Jobs changed (each is a seed), none competes for "a"
        store.apply("publications", "ADDED", publication_body(f"r{i}", ns=NS, targets=["a"], uid=f"uid-r{i}"))
        store.apply("jobs", "ADDED", job_body(f"r{i}-a-1", target="a", owner_uid=f"uid-r{i}", rv=2))
    for i in range(5):  # waiting for "a"
        store.apply("publications", "ADDED", publication_body(f"q{i}", ns=NS, targets=["a"], uid=f"uid-q{i}"))
    store.apply("publications", "ADDED", publication_body("other", ns=NS, targets=["b"], uid="uid-other"))
    engine = Engine(ScriptedKube(), store, JobDefaults(), [NS])
    closures = []
    real_close = store.close
    monkeypatch.setattr(store, "close", lambda seeds, *args: closures.append(seeds) or real_close(seeds, *args))
    seeds = {("p", NS, f"r{i}") for i in range(20)} | {("p", NS, "other"), ("a", NS, "a")}
    units = sorted(engine._units(seeds, utcnow()), key=lambda u: len(u[0]))
    assert units == [
        ({(NS, "other")}, {(NS, "b")}, False),
        ({(NS, f"r{i}") for i in range(20)} | {(NS, f"q{i}") for i in range(5)}, {(NS, "a")}, False),
    ]
    assert len(closures) == 2  # one per adapter, not one per changed publication
    # Without a change to "a" itself, a running one is decided alone: "a"'s queue is not decided.
    units = engine._units({("p", NS, "r3")}, utcnow())
    assert units == [({(NS, "r3")}, {(NS, "a")}, True)] and len(closures) == 2
    # A publication naming both adapters ties their units into one.
    store.apply("publications", "ADDED", publication_body("both", ns=NS, targets=["a", "b"], uid="uid-both"))
    assert len(engine._units(seeds | {("p", NS, "both")}, utcnow())) == 1


async def test_a_running_publication_is_decided_alone_until_its_decision_records_an_outcome():
    kube = ScriptedKube()
    bodies = [adapter_body("a", ns=NS, concurrency=1)]
    bodies += [publication_body(f"q{i}", ns=NS, targets=["a"], uid=f"uid-q{i}") for i in range(30)]
    engine, store = await engine_with(kube, *bodies, coalesce=0)
    await settle(engine)
    (running,) = created_jobs(kube)
    owner_uid = kube.posts("jobs")[0]["metadata"]["ownerReferences"][0]["uid"]
    decided: list[int] = []
    real_world_for = store.world_for
    store.world_for = lambda pubs, adapters, now: decided.append(len(pubs)) or real_world_for(pubs, adapters, now)

    def adapter_writes() -> int:
        return sum(1 for m, p, _ in kube.calls if m == "PATCH" and p.endswith("/platformadapters/a/status"))

    before = adapter_writes()
    # The Job progresses: its Publication alone is decided, not the 29 waiting, and nothing is
    # written for the adapter from a decision that saw none of its queue.
    store.apply("jobs", "MODIFIED", job_body(running, ns=NS, target="a", owner_uid=owner_uid, rv=900, active=1))
    await settle(engine)
    assert decided == [1] and len(created_jobs(kube)) == 1 and adapter_writes() == before
    # It ends: that decision records an outcome, which frees the adapter's one slot; it is decided
    # again with the adapter and its queue, and the next attempt starts.
    decided.clear()
    store.apply("jobs", "MODIFIED", job_body(running, ns=NS, target="a", owner_uid=owner_uid, rv=901, complete=True))
    await settle(engine)
    assert max(decided) == 30 and len(created_jobs(kube)) == 2
    # The next one's Pod ends while its Job still runs: deciding it alone would record the outcome
    # without the adapter's status (its circuit); that decision is dropped, and it is decided
    # with its adapter and queue instead.
    second = created_jobs(kube)[1]
    decided.clear()
    result = json.dumps(published())
    store.apply(
        "pods", "ADDED", pod_body(second, ns=NS, phase="Succeeded", terminated={"exitCode": 0, "message": result})
    )
    await settle(engine)
    assert decided[0] == 1 and max(decided) == 29
    owner = second.split("-a-")[0]
    assert kube.status_patches(owner)[-1]["status"]["phase"] == "Published"  # the outcome is written


async def test_a_long_queue_costs_a_decision_its_head_not_its_length():
    """300 waiting for one slot: each is decided once, when it changes (its status says why it
    waits); then a freed slot costs a decision of the queue's head (32 starts' worth), not of 300,
    and the next in admission order starts. Pausing the adapter changes what every waiting one
    shows: all are decided again, in bounded slices."""
    kube = ScriptedKube()
    bodies = [adapter_body("a", ns=NS, concurrency=1)]
    bodies += [publication_body(f"q{i:03d}", ns=NS, targets=["a"], uid=f"uid-q{i:03d}") for i in range(300)]
    engine, store = await engine_with(kube, *bodies, coalesce=0)
    decided: list[int] = []
    real_world_for = store.world_for
    store.world_for = lambda pubs, adapters, now: decided.append(len(pubs)) or real_world_for(pubs, adapters, now)
    await settle(engine)
    (first,) = created_jobs(kube)
    assert first.startswith("q000-a-")
    reasons = {kube.status_patches(f"q{i:03d}")[-1]["status"]["targets"][0]["reason"] for i in range(1, 300)}
    assert reasons == {"ConcurrencyLimit"}
    head = engine._starts()
    assert max(decided) <= 64 + head  # changed ones (unit_writes) and the queue's head

    decided.clear()
    owner_uid = kube.posts("jobs")[0]["metadata"]["ownerReferences"][0]["uid"]
    store.apply("jobs", "MODIFIED", job_body(first, ns=NS, target="a", owner_uid=owner_uid, rv=9000, complete=True))
    await settle(engine)
    assert [j.split("-a-")[0] for j in created_jobs(kube)] == ["q000", "q001"]
    assert max(decided) <= head + 1 and sum(decided) < 3 * (head + 1), decided

    decided.clear()
    paused = adapter_body("a", ns=NS, concurrency=1, paused=True, rv=9001)
    paused["metadata"]["generation"] = 2
    kube.objects[f"/apis/herald.dev/v1alpha1/namespaces/{NS}/platformadapters/a"] = paused
    store.apply("platformadapters", "MODIFIED", paused)
    await settle(engine)
    waiting = [f"q{i:03d}" for i in range(2, 300)]
    assert {kube.status_patches(p)[-1]["status"]["targets"][0]["reason"] for p in waiting} == {"AdapterPaused"}
    assert max(decided) <= 64 + head


async def test_a_bulk_redrive_past_one_decisions_starts_starts_every_publication():
    """40 dead-lettered Publications redriven at once, with room for all: a decision starts part
    of them and postpones the rest, whose stored status (Failed) keeps them out of the adapter's
    queue. They are decided again, not left for a queue head that would never bring them."""
    kube = ScriptedKube()
    dead = {
        "phase": "Failed",
        "observedGeneration": 1,
        "targets": [{"adapter": "a", "phase": "Failed", "attempts": 1, "observedAttempt": 1, "deadLetter": True}],
    }
    bodies = [adapter_body("a", ns=NS, concurrency=1000)]
    bodies += [
        publication_body(
            f"d{i:02d}",
            ns=NS,
            targets=["a"],
            uid=f"uid-d{i:02d}",
            status=dead,
            annotations={"herald.dev/redrive": "r1"},
        )
        for i in range(40)
    ]
    engine, store = await engine_with(kube, *bodies, coalesce=0)
    assert not any(store.queued((NS, f"d{i:02d}")) for i in range(40))  # Failed, as stored
    await engine.tick()
    await until(lambda: not engine._tasks, "the first decision's writes end")
    started = {j.split("-a-")[0] for j in created_jobs(kube)}
    assert 0 < len(started) < 40
    # The others (past the start budget, or the writes budget) are decided again on the next tick,
    # not left to a timer, or to nothing.
    assert {("p", NS, f"d{i:02d}") for i in range(40)} - {("p", NS, p) for p in started} <= engine._deferred
    await settle(engine)
    assert sorted(j.split("-a-")[0] for j in created_jobs(kube)) == [f"d{i:02d}" for i in range(40)]


def test_a_target_whose_writes_are_in_flight_keeps_its_place_without_a_busy_loop():
    """The queue's first target has a write in flight: one behind it is not started before it
    (admission order), its adapter is decided again later, and the loop is not woken for that
    (the end of the write wakes it), so it does not spin while the write lasts."""
    store = Store()
    store.apply("platformadapters", "ADDED", adapter_body("a", ns=NS, concurrency=10))
    for name in ("p0", "p1"):
        store.apply("publications", "ADDED", publication_body(name, ns=NS, targets=["a"], uid=f"uid-{name}"))
    kube = ScriptedKube()
    engine = Engine(kube, store, JobDefaults(), [NS])
    engine._busy.add(("p", NS, "p0"))  # its status write is in flight
    store.changed.clear()
    keys = {("p", NS, "p0"), ("p", NS, "p1"), ("a", NS, "a")}
    assert engine._decide(keys, {(NS, "p0"), (NS, "p1")}, {(NS, "a")}, utcnow())
    assert not engine._tasks and not created_jobs(kube)  # p1 waits for p0, which is ahead of it
    assert ("a", NS, "a") in engine._deferred and not store.changed.is_set()


def test_publications_that_waited_for_an_earlier_tick_are_decided_first():
    """At most unit_writes changed Publications per unit and tick: those deferred from an earlier
    tick go first, so a steady stream of new changes cannot starve them."""
    store = Store()
    store.apply("platformadapters", "ADDED", adapter_body("a", ns=NS))
    for i in range(100):
        store.apply("publications", "ADDED", publication_body(f"p{i:03d}", ns=NS, targets=["a"], uid=f"uid-{i}"))
    engine = Engine(ScriptedKube(), store, JobDefaults(), [NS], settings=EngineSettings(unit_writes=8))
    seeds = {("p", NS, f"p{i:03d}") for i in range(100)}
    waited = {("p", NS, f"p{i:03d}") for i in range(90, 100)}  # the last by name
    ((pubs, _, _),) = engine._units(seeds, utcnow(), waited)
    assert {(NS, f"p{i:03d}") for i in range(90, 98)} <= pubs  # 8 of them, before any newer change
    assert (NS, "p000") in pubs  # the queue's head comes with the adapter
    assert ("p", NS, "p050") in engine._deferred and ("p", NS, "p099") in engine._deferred


async def test_a_write_that_fails_unexpectedly_leaves_no_other_write_running_outside_its_unit():
    """A unit's writes run together. When one fails with something other than an ApiError (a
    bug), the unit ends only once the others have, so they stay its own and halt cancels them."""
    kube, engine, _store, _hang = await burst(4, concurrency=1000)
    create, failed = kube.create, asyncio.Event()

    async def first_create_fails(path: str, body: dict[str, Any]) -> dict[str, Any]:
        if "/jobs" in path and not failed.is_set():
            failed.set()
            raise RuntimeError("a bug in one write")
        return await create(path, body)

    kube.create = first_create_fails  # type: ignore[method-assign]
    await engine.tick()
    await until(lambda: failed.is_set() and created_jobs(kube), "one create fails while another hangs")
    turns = iter(range(200))  # the loop's turns in which a unit that did not wait would have ended
    await until(lambda: not engine._tasks or next(turns, None) is None, "the unit ends, or 200 turns pass")
    assert engine._tasks and not any(t.done() for t in engine._tasks)  # the unit waits for its writes
    await engine.halt()

    def writes_left() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if not t.done() and "_create" in repr(t.get_coro())]

    await until(lambda: not writes_left(), "halt cancels every write of the unit")


async def test_stop_ends_the_decisions_first_and_leaves_no_write_running():
    """At SIGTERM the client is closed right after Engine.stop: a decision made while stop waited
    for the writes in flight used to send writes on the closed client (found by the suite)."""
    kube, engine, _store, hang = await burst(40, concurrency=1000)
    engine.coalesce = 0  # the loop's ticks follow each other without waiting on the clock
    engine._task = asyncio.create_task(engine._run())
    await until(lambda: len(created_jobs(kube)) >= 12, "the loop decides slices while creates hang")
    stopping = asyncio.create_task(engine.stop())
    await until(lambda: engine._task is not None and engine._task.done(), "the loop stops before the writes end")
    creates = len(created_jobs(kube))
    hang.set()  # the creates in flight answer, and their Events are posted
    await stopping
    assert all(task.done() for task in engine._tasks) and engine._writing == 0
    assert len(created_jobs(kube)) == creates  # nothing decided after stop began

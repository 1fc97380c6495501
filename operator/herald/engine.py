"""The loop that turns the store's picture into API writes.

Wake up on a change or at the next due time, take a snapshot, ``reconcile`` it, execute the
plan, repeat. One loop per operator: the decisions need the whole namespace's queue anyway.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Iterable

from .durations import format_time
from .jobs import JobDefaults
from .kube import ApiError, Kube, collection
from .reconciler import JOB_CREATE_FAILED, EventSpec, Plan, changed, progress_only, reconcile
from .redact import redact
from .status import Phase
from .store import Store

log = logging.getLogger("herald.engine")

GROUP_VERSION = "herald.dev/v1alpha1"
SELECTOR = "herald.dev/publication"
RESYNC_SECONDS = float(os.environ.get("HERALD_RESYNC_SECONDS", "120"))
SECRET_REFRESH_SECONDS = 2.0
# How long a status change that only records a started attempt may wait to be merged with its outcome.
STATUS_COALESCE_SECONDS = float(os.environ.get("HERALD_STATUS_COALESCE_SECONDS", "10"))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


Observer = Callable[[Plan, datetime, float], None]


class Engine:
    def __init__(self, kube: Kube, store: Store, defaults: JobDefaults, namespaces: Iterable[str] | None = None,
                 observer: Observer | None = None, coalesce: float = 0.01, concurrency: int = 64):
        self.kube = kube
        self.store = store
        self.defaults = defaults
        self.namespaces = list(namespaces) if namespaces else [None]
        self.observer = observer
        self.coalesce = coalesce
        self._sem = asyncio.Semaphore(concurrency)
        self._event_sem = asyncio.Semaphore(8)
        self._event_tasks: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None
        self._synced = asyncio.Event()
        self._secret_checked: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], datetime] = {}  # publication -> when its progress write was held
        self._adapter_written: dict[tuple[str, str], datetime] = {}  # adapter -> last status write
        self.ticks = 0
        self.last_tick = 0.0
        self.instance = socket.gethostname()

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.resync()
        self._synced.set()
        self._task = asyncio.create_task(self._run(), name="herald-engine")

    async def stop(self) -> None:
        if self._event_tasks:
            await asyncio.wait(list(self._event_tasks), timeout=5)
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    @property
    def healthy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def resync(self) -> None:
        """List everything once: the picture is then complete even if watch events were missed."""
        sources = [
            ("publications", GROUP_VERSION, "publications", None),
            ("platformadapters", GROUP_VERSION, "platformadapters", None),
            ("jobs", "batch/v1", "jobs", SELECTOR),
            ("pods", "v1", "pods", SELECTOR),
        ]
        for kind, gv, plural, selector in sources:
            for ns in self.namespaces:
                listing = await self.kube.list(collection(gv, plural, ns), label_selector=selector)
                list_rv = int(listing["metadata"].get("resourceVersion") or 0)
                keys = set()
                for item in listing["items"]:
                    item.setdefault("metadata", {}).setdefault("namespace", ns)
                    self.store.apply(kind, None, item)
                    keys.add((item["metadata"].get("namespace"), item["metadata"]["name"]))
                if ns is None:
                    self.store.forget_missing(kind, keys, list_rv)
                else:
                    others = {k for k in self.store.objects[kind] if k[0] != ns}
                    self.store.forget_missing(kind, keys | others, list_rv)
        self.store.gc_tombstones()
        self.store.changed.set()

    # -- the loop ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        wake_at: datetime | None = None
        next_resync = time.monotonic() + RESYNC_SECONDS
        failures = 0
        while True:
            timeout = None
            if wake_at is not None:
                timeout = max(0.0, (wake_at - utcnow()).total_seconds() + 0.002)
            timeout = min(timeout if timeout is not None else 30.0, max(0.0, next_resync - time.monotonic()), 30.0)
            try:
                await asyncio.wait_for(self.store.changed.wait(), timeout)
                await asyncio.sleep(self.coalesce)  # let a burst of watch events land in one tick
            except asyncio.TimeoutError:
                pass
            try:
                if time.monotonic() >= next_resync:
                    next_resync = time.monotonic() + RESYNC_SECONDS
                    await self.resync()
                self.store.changed.clear()
                wake_at = await self.tick()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed tick is retried: the decisions are level-based
                failures += 1
                log.exception("reconcile tick failed (%d in a row)", failures)
                degraded = getattr(self.observer, "degraded", None)
                if degraded is not None and failures >= 3:
                    degraded(f"{failures} reconcile ticks in a row failed")
                wake_at = utcnow() + timedelta(seconds=min(30.0, 0.5 * 2 ** min(failures, 6)))

    async def tick(self) -> datetime | None:
        started = time.perf_counter()
        await self._refresh_secrets()
        now = utcnow()
        plan = reconcile(self.store.snapshot(), now, self.defaults)
        self._hold_progress(plan, now)
        self._throttle_adapter_counts(plan, now)
        await self.execute(plan, now)
        self.ticks += 1
        self.last_tick = time.time()
        if self.observer is not None:
            try:
                self.observer(plan, now, time.perf_counter() - started)
            except Exception:
                log.exception("observer failed")
        return plan.wake_at

    def _hold_progress(self, plan: Plan, now: datetime) -> None:
        """Hold back status writes that only record started attempts, for STATUS_COALESCE_SECONDS."""
        window = timedelta(seconds=STATUS_COALESCE_SECONDS)
        for key in [k for k in self._held if k not in plan.publication_status]:
            del self._held[key]
        for key, new in list(plan.publication_status.items()):
            pub = self.store.objects["publications"].get(key)
            if pub is None or window.total_seconds() <= 0 or not progress_only(new, pub.status):
                self._held.pop(key, None)
                continue
            since = self._held.setdefault(key, now)
            if now - since >= window:
                del self._held[key]
                continue
            del plan.publication_status[key]
            plan.wake(since + window)

    def _throttle_adapter_counts(self, plan: Plan, now: datetime) -> None:
        """An adapter status change that only moves the queue counts or lastPublishedTime is written
        at most once per STATUS_COALESCE_SECONDS; anything else (circuit, credentials, rate limit,
        conditions) is written at once."""
        window = timedelta(seconds=STATUS_COALESCE_SECONDS)
        for key, new in list(plan.adapter_status.items()):
            view = self.store.objects["platformadapters"].get(key)
            last = self._adapter_written.get(key)
            counts_only = view is not None and not changed(
                {k: v for k, v in new.items() if k not in ("queue", "lastPublishedTime")}, view.status)
            if counts_only and last is not None and now - last < window:
                del plan.adapter_status[key]
                plan.wake(last + window)
            else:
                self._adapter_written[key] = now

    # -- reads ---------------------------------------------------------------------------------
    async def _refresh_secrets(self) -> None:
        """Keep the resourceVersion of every referenced credentials Secret (metadata only)."""
        wanted: dict[tuple[str, str], float] = {}
        for a in self.store.objects["platformadapters"].values():
            ref = (a.spec.get("credentialsSecretRef") or {}).get("name")
            if not ref:
                continue
            invalid = (a.status.get("credentials") or {}).get("valid") is False
            wanted[(a.namespace, ref)] = 1.0 if invalid else SECRET_REFRESH_SECONDS * 5
        now = time.monotonic()
        due = [k for k, every in wanted.items() if now - self._secret_checked.get(k, 0.0) >= every]

        async def fetch(key: tuple[str, str]) -> None:
            ns, name = key
            try:
                obj = await self.kube.get(f"/api/v1/namespaces/{ns}/secrets/{name}", metadata_only=True)
                self.store.secrets[key] = obj["metadata"]["resourceVersion"]
            except ApiError as e:
                if e.not_found:
                    self.store.secrets[key] = None
                else:
                    log.warning("cannot read Secret %s/%s: %s", ns, name, e.status)
            self._secret_checked[key] = time.monotonic()

        if due:
            await asyncio.gather(*(fetch(k) for k in due))
        for k in [k for k in self.store.secrets if k not in wanted]:
            del self.store.secrets[k]

    # -- writes --------------------------------------------------------------------------------
    async def _bounded(self, coro: Awaitable[Any]) -> Any:
        async with self._sem:
            return await coro

    async def execute(self, plan: Plan, now: datetime) -> None:
        async def create(jc) -> None:
            m = jc.manifest["metadata"]
            try:
                created = await self.kube.create(collection("batch/v1", "jobs", m["namespace"]), jc.manifest)
                self.store.job_starts[(m["namespace"], m["name"])] = utcnow()
                self.store.apply("jobs", "ADDED", created)
            except ApiError as e:
                if e.already_exists:
                    return  # an earlier run created it; the watch will show it
                log.warning("cannot create Job %s/%s: %s", m["namespace"], m["name"], e)
                t = jc.target
                t.update(attempts=jc.previous_attempt, nextAttemptAt=format_time(now + timedelta(seconds=5)))
                t.update(phase=Phase.QUEUED, reason=JOB_CREATE_FAILED,
                         message=redact(f"cannot create Job {m['name']}: {e.message}", limit=300))
                plan.events.append(EventSpec("Publication", m["namespace"], jc.publication[1], "", "Warning",
                                             "JobCreateFailed", t["message"]))

        async def delete(key) -> None:
            await self.kube.delete(f"/apis/batch/v1/namespaces/{key[0]}/jobs/{key[1]}")

        await asyncio.gather(*(self._bounded(create(jc)) for jc in plan.creates),
                             *(self._bounded(delete(k)) for k in plan.deletes))

        async def patch(kind: str, plural: str, key, body, subresource: str = "") -> None:
            path = f"/apis/{GROUP_VERSION}/namespaces/{key[0]}/{plural}/{key[1]}{subresource}"
            try:
                updated = await self.kube.merge_patch(path, body)
                self.store.apply(kind, "MODIFIED", updated)
            except ApiError as e:
                if not e.not_found:
                    log.error("cannot patch %s %s/%s%s: %s", kind, key[0], key[1], subresource, e)

        await asyncio.gather(
            *(self._bounded(patch("publications", "publications", k, {"status": s}, "/status"))
              for k, s in plan.publication_status.items()),
            *(self._bounded(patch("publications", "publications", k, {"metadata": {"labels": labels}}))
              for k, labels in plan.publication_labels.items()),
            *(self._bounded(patch("platformadapters", "platformadapters", k, {"status": s}, "/status"))
              for k, s in plan.adapter_status.items()),
        )
        # Events are posted in the background, a few at a time, so they never hold up the next
        # tick's Jobs and statuses.
        for e in plan.events:
            task = asyncio.create_task(self._event_bounded(e, now))
            self._event_tasks.add(task)
            task.add_done_callback(self._event_tasks.discard)

    async def _event_bounded(self, e: EventSpec, now: datetime) -> None:
        async with self._event_sem:
            await self._event(e, now)

    async def _event(self, e: EventSpec, now: datetime) -> None:
        uid = e.uid
        if not uid:
            obj = self.store.objects["publications"].get((e.namespace, e.name))
            uid = obj.uid if obj else ""
        stamp = format_time(now)
        body = {
            "metadata": {"name": f"{e.name[:200]}.{random.getrandbits(64):016x}", "namespace": e.namespace},
            "involvedObject": {"apiVersion": GROUP_VERSION, "kind": e.kind, "name": e.name,
                               "namespace": e.namespace, "uid": uid},
            "reason": e.reason,
            "message": redact(e.message, limit=1000),
            "type": e.type,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "source": {"component": "herald"},
            "reportingComponent": "herald.dev/operator",
            "reportingInstance": self.instance[:128],
        }
        try:
            await self.kube.create(f"/api/v1/namespaces/{e.namespace}/events", body)
        except ApiError as err:
            log.warning("cannot post Event %s for %s/%s: %s", e.reason, e.namespace, e.name, err.status)

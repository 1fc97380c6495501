"""The loop that turns the store's picture into API writes, one unit of work at a time.

Each tick takes what changed since the last one (watch events, writes, due timers), closes it over
the adapters it competes for (``Store.close``), and decides each such unit with the pure
``reconcile``. A unit's writes then run as their own task, under a bounded number of workers; the
tick does not wait for them, and a unit with writes in flight is not decided again until they
end (as in controller-runtime's work queue, a key is never worked on twice at once). So a slow
or failing request holds up only its own unit, a unit that fails is retried with backoff, and a
finished Publication costs nothing per tick.

    watch event ──► Store.apply ──► dirty keys ─┐
    timer due ────────────────────────────────► tick ─► close ─► reconcile(unit) ─► Plan
                                                                                     │
    Store.apply ◄── API answer ◄── Kube (create Job, patch status with resourceVersion, Events)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import json
import logging
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from herald_contract.redact import redact

from .durations import format_time, safe_time
from .jobs import JobDefaults
from .kube import ApiError, Kube, collection
from .reconciler import (
    JOB_CREATE_FAILED,
    EventSpec,
    JobCreate,
    Plan,
    changed,
    progress_only,
    reconcile,
    with_target,
)
from .status import Phase
from .store import Key, Store, WorkKey, adapter_key, pub_key
from .tracing import AttemptTracer

log = logging.getLogger("herald.engine")

GROUP_VERSION = "herald.dev/v1alpha1"
SELECTOR = "herald.dev/publication"
JOB_REFUSED = "JobRefused"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EngineSettings:
    """The engine's knobs (``OperatorConfig.engine_settings`` fills them from the environment)."""

    resync_seconds: float = 300.0  # a full relist, as a safety net under the watches
    # Secrets' metadata is read (to notice rotation at once) only when the chart grants it for named
    # Secrets (rbac.secretNames); otherwise refused credentials are noticed fixed by probes.
    read_secret_metadata: bool = False
    secret_refresh_seconds: float = 10.0
    credentials_probe: tuple[float, float] = (30.0, 900.0)  # first and longest delay between probes
    status_coalesce_seconds: float = 10.0  # a status that only records a started attempt may wait this long
    adapter_counts_seconds: float = 2.0  # an adapter status that only moves its queue counts: at most this often
    workers: int = 32  # units whose writes run at once
    requests: int = 64  # API requests in flight at once (and as many Events)
    # Writes one unit may make per decision, and changed Publications it takes per tick; half of it
    # is the starts per decision and the queue head a unit sees (the rest: decided next tick).
    unit_writes: int = 64
    inflight_writes: int = 192  # no new decision while this many decided writes are not yet done
    liveness_seconds: float = 60.0  # /healthz fails when work is due and no tick ended for this long
    publication_ttl_seconds: int | None = None  # default spec.ttlSecondsAfterFinished
    max_backoff_seconds: float = 300.0
    wedge_on: str = ""  # test-only fault: the loop hangs when it meets a Publication of this name


class Engine:
    def __init__(
        self,
        kube: Kube,
        store: Store,
        defaults: JobDefaults,
        namespaces: Iterable[str] | None = None,
        observer: Any = None,
        coalesce: float = 0.01,
        settings: EngineSettings = EngineSettings(),
    ):
        self.kube = kube
        self.store = store
        self.defaults = defaults
        self.namespaces: list[str | None] = list(namespaces) if namespaces else [None]
        self.observer = observer
        self.coalesce = coalesce
        self.settings = settings
        self._requests = _RequestSlots(settings.requests, "writes", self._slot_waited)
        self._workers = asyncio.Semaphore(settings.workers)
        # Events have their own budget, as large as the writes' (the client pools a connection for
        # each of both): with less, a burst's Events fall behind its Jobs (bench: p50 41 s with 8).
        self._event_sem = _RequestSlots(settings.requests, "events", self._slot_waited)
        self._tasks: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None
        self._resync_task: asyncio.Task | None = None
        self._busy: set[WorkKey] = set()  # keys whose unit has writes in flight
        self._writing = 0  # units with writes in flight (at most settings.workers)
        self._inflight = 0  # their writes (at most settings.inflight_writes before another decision)
        self._deferred: set[WorkKey] = set()  # changed while busy: decided when the writes end
        self._with_adapters: set[Key] = set()  # running Publications whose next decision needs their adapters
        self._timers: list[tuple[datetime, WorkKey]] = []
        self._timer_at: dict[WorkKey, datetime] = {}
        self._failures: dict[WorkKey, int] = {}  # consecutive failures per key, for backoff
        self._create_failures: dict[Key, int] = {}  # consecutive transient Job-create failures per publication
        self._secret_checked: dict[Key, float] = {}
        self._secret_forbidden: set[Key] = set()  # Secrets the operator may not read (asked again rarely)
        self._held: dict[Key, datetime] = {}  # publication -> when its progress write was first held
        self._adapter_written: dict[Key, datetime] = {}  # adapter -> last status write
        self._counts_pending: dict[Key, dict[str, Any]] = {}  # adapter -> newest counts-only status to write
        self._counts_writers: set[Key] = set()  # adapters whose counts writer runs
        self._adapter_writes = _KeyedLock()
        # adapter -> the lastPublishedTime of a throttled counts write: the outcomes it records are
        # written to their Publications, so no later decision sees them again; the next adapter
        # write carries it, or it is written alone when the throttle's window ends.
        self._held_published: dict[Key, datetime] = {}
        # Statuses the API server accepted but did not keep as sent (an older CRD prunes fields it
        # does not know): not sent again, so a version skew cannot turn into a write loop.
        self._pruned: dict[tuple[str, Key], str] = {}
        self._failed_ticks = 0
        self.event_lags: collections.deque[float] = collections.deque(maxlen=10_000)  # seconds, newest last
        self.ticks = 0
        self.units = 0
        self.last_tick = 0.0
        self.last_tick_done = time.monotonic()
        self.instance = os.environ.get("POD_NAME") or socket.gethostname()
        self.tracer = AttemptTracer.from_env(kube=kube)  # a no-op unless OTLP is configured

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.resync()
        self.store.mark_all()  # derive every timer (retries, schedules, retention) once
        self.last_tick_done = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="herald-engine")

    async def stop(self) -> None:
        """Stop deciding first, so that no write starts any more; let the writes in flight end (at
        most 5 s), then cancel the rest. No write outlives this call, nor the client it uses."""
        for task in (self._task, self._resync_task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=5)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def halt(self) -> None:
        """Stop deciding and writing at once (the Lease is lost): no waiting for writes in flight."""
        for task in [self._task, self._resync_task, *self._tasks]:
            if task is not None:
                task.cancel()

    def health(self) -> tuple[bool, str]:
        """Whether the loop is alive: running, and ticking while work is due."""
        if self._task is None or self._task.done():
            return False, "the reconcile loop is not running"
        stale = time.monotonic() - self.last_tick_done
        if stale > self.settings.liveness_seconds and self.work_due():
            return False, f"no reconcile tick ended for {stale:.0f}s while work is due"
        return True, "ok"

    @property
    def healthy(self) -> bool:
        return self.health()[0]

    def work_due(self) -> bool:
        return bool(self.store.dirty or self._deferred or (self._timers and self._timers[0][0] <= utcnow()))

    async def resync(self) -> None:
        """List everything once: the picture is then complete even if watch events were missed."""
        sources = [
            ("publications", GROUP_VERSION, "publications", None),
            ("platformadapters", GROUP_VERSION, "platformadapters", None),
            ("jobs", "batch/v1", "jobs", SELECTOR),
            ("pods", "v1", "pods", SELECTOR),
        ]
        if self.store.shard is not None:  # the namespaces' shards first: they decide what is kept
            listing = await self.kube.list("/api/v1/namespaces")
            for item in listing["items"]:
                self.store.apply_namespace(None, item)
        for kind, gv, plural, selector in sources:
            for ns in self.namespaces:
                listing = await self.kube.list(collection(gv, plural, ns), label_selector=selector)
                self.store.apply_listing(kind, ns, listing)
        self.store.gc_tombstones()
        self.store.changed.set()

    async def resync_soon(self) -> None:
        """A full relist now (a namespace joined this shard), unless one is running."""
        if self._resync_task is None or self._resync_task.done():
            self._resync_task = asyncio.create_task(self._resync_in_background())

    async def _resync_in_background(self) -> None:
        try:
            await self.resync()
        except ApiError as e:
            log.warning("relist failed: %s", e)
        except Exception:
            log.exception("relist failed")

    # -- the loop ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        next_resync = time.monotonic() + self.settings.resync_seconds
        while True:
            timeout = 30.0
            if self._timers:
                timeout = min(timeout, max(0.0, (self._timers[0][0] - utcnow()).total_seconds() + 0.002))
            timeout = min(timeout, max(0.0, next_resync - time.monotonic()))
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the wait ends, and the operator would then never stop on SIGTERM.
            try:
                async with asyncio.timeout(timeout):
                    await self.store.changed.wait()
                await asyncio.sleep(self.coalesce)  # let a burst of watch events land in one tick
            except TimeoutError:
                pass
            self.store.changed.clear()
            if time.monotonic() >= next_resync:
                next_resync = time.monotonic() + self.settings.resync_seconds
                if self._resync_task is None or self._resync_task.done():
                    self._resync_task = asyncio.create_task(self._resync_in_background())
            try:
                if self.settings.read_secret_metadata:
                    await self._refresh_secrets()
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # tick guards each unit; this is a bug in the loop itself
                log.exception("reconcile tick failed")
            self.last_tick_done = time.monotonic()

    def _due_timers(self, now: datetime) -> set[WorkKey]:
        due: set[WorkKey] = set()
        while self._timers and self._timers[0][0] <= now:
            at, key = heapq.heappop(self._timers)
            if self._timer_at.get(key) == at:
                del self._timer_at[key]
                due.add(key)
        return due

    def _schedule(self, keys: Iterable[WorkKey], at: datetime | None) -> None:
        if at is None:
            return
        for key in keys:
            current = self._timer_at.get(key)
            if current is None or at < current or current <= utcnow():
                self._timer_at[key] = at
                heapq.heappush(self._timers, (at, key))

    def _backoff(self, keys: Iterable[WorkKey], now: datetime) -> None:
        """Retry a failed unit later, doubling the delay while it keeps failing."""
        for key in keys:
            n = self._failures.get(key, 0) + 1
            self._failures[key] = n
            delay = min(self.settings.max_backoff_seconds, 0.5 * 2 ** min(n, 12))
            self._schedule([key], now + timedelta(seconds=delay))

    async def tick(self) -> None:
        started = time.perf_counter()
        now = utcnow()
        waited = self._deferred  # decided first: a steady stream of changes cannot starve them
        seeds = self.store.take_dirty() | waited | self._due_timers(now)
        self._deferred = set()
        if self._held_published:
            self._flush_published(now)
        for seed in [k for k in seeds if k[0] == "p" and (k[1], k[2]) not in self.store.objects["publications"]]:
            self._forget((seed[1], seed[2]))
        if self.settings.wedge_on and any(k[0] == "p" and k[2] == self.settings.wedge_on for k in seeds):
            log.error("test fault: the reconcile loop hangs (HERALD_TEST_WEDGE_ON=%s)", self.settings.wedge_on)
            await asyncio.Event().wait()
        failed_units = 0
        if self._writing >= self.settings.workers or self._inflight >= self.settings.inflight_writes:
            # No room for a decision's writes: nothing is decided (nor grouped) until writes end.
            self._deferred |= seeds
            seeds = set()
        for pubs, adapters, alone in self._units(seeds, now, waited):
            # A unit decided alone writes only its Publication: its adapters are read, not decided.
            keys = {pub_key(k) for k in pubs} | (set() if alone else {adapter_key(k) for k in adapters})
            busy = keys & self._busy
            # A unit whose adapter is being written, or in which only what is being written
            # changed, waits for those writes. Otherwise it is decided now: its Publications with
            # writes in flight are left out of this decision's writes, and the Jobs being created
            # count already (the store's expectations), so one adapter's burst is written in
            # slices that overlap instead of one after another.
            if busy and (any(k[0] == "a" for k in busy) or not (keys & seeds) - busy):
                self._deferred |= keys & seeds
                continue
            if self._writing >= self.settings.workers or self._inflight >= self.settings.inflight_writes:
                # Decide only what can be written now, as a work queue does: a decision never
                # waits behind others' writes (its Events and Jobs would lag a burst's backlog).
                self._deferred |= keys & seeds
                continue
            if not self._decide(keys, pubs, adapters, now, alone):
                failed_units += 1
        self.ticks += 1
        self.last_tick = time.time()
        if self.observer is not None:
            try:
                self.observer.queue_depth(
                    ready=len(seeds),
                    deferred=len(self._deferred),
                    scheduled=len(self._timer_at),
                    in_flight=len(self._busy),
                )
                self.observer.adapters_present(set(self.store.objects["platformadapters"]))
                self.observer.tick(time.perf_counter() - started, failed_units)
            except Exception:
                log.exception("observer failed")

    def _forget(self, key: Key) -> None:
        """A deleted Publication: drop what the engine kept for it (backoffs, held writes, timers)."""
        work = pub_key(key)
        self._failures.pop(work, None)
        self._timer_at.pop(work, None)  # its heap entry is then skipped when it comes due
        self._create_failures.pop(key, None)
        self._held.pop(key, None)
        self._with_adapters.discard(key)
        self._pruned.pop(("publications", key), None)

    def _units(
        self, seeds: set[WorkKey], now: datetime, waited: set[WorkKey] | None = None
    ) -> list[tuple[set[Key], set[Key], bool]]:
        """The seeds grouped into units: each unit is closed over the adapters its members compete
        for (``Store.close``) and the heads of their queues, and seeds that share an adapter are
        decided together, once. A Publication whose Job changed joins its adapter's unit without
        closing it again, so a burst of changes to one adapter's Publications costs one closure,
        not one per change; when its adapters have no unit in this tick, it is decided alone
        (``alone``: its adapters are read, not decided), not with their queues. A unit takes at
        most ``unit_writes`` changed Publications per tick, those that ``waited`` since an earlier
        tick first; the others are decided on the next."""
        head, limit = self._starts(), self.settings.unit_writes
        waited = waited or set()
        units: list[tuple[set[Key], set[Key]]] = []
        taken: list[int] = []  # changed Publications per unit
        alone: list[tuple[set[Key], set[Key], bool]] = []
        unit_of: dict[Key, int] = {}  # adapter -> index in units
        members: dict[Key, int] = {}  # publication -> index in units
        for seed in sorted(seeds, key=lambda k: (k[0], k not in waited, k)):  # adapters ("a") first
            kind, key = seed[0], (seed[1], seed[2])
            if kind == "p" and key in members:
                continue
            if kind == "a" and key in unit_of:
                continue
            if kind == "p":
                found = {unit_of.get(a, -1) for a in self.store.adapters_of(key)}
                if len(found) == 1 and -1 not in found:
                    i = found.pop()
                    if taken[i] >= limit:
                        self._deferred.add(seed)
                        self.store.changed.set()
                        continue
                    units[i][0].add(key)
                    members[key] = i
                    taken[i] += 1
                    continue
                if key not in self._with_adapters and self.store.runs_only(key):
                    alone.append(({key}, set(self.store.adapters_of(key)), True))
                    continue
            pubs, adapters = self.store.close([seed], now, head)
            overlap = sorted(
                {unit_of[a] for a in adapters if a in unit_of} | {members[p] for p in pubs if p in members}
            )
            count = int(kind == "p")
            for i in overlap:  # a closure that meets earlier units takes them in (shared adapters)
                pubs |= units[i][0]
                adapters |= units[i][1]
                units[i] = (set(), set())
                count += taken[i]
            units.append((pubs, adapters))
            taken.append(count)
            for a in adapters:
                unit_of[a] = len(units) - 1
            for p in pubs:
                members[p] = len(units) - 1
        self._with_adapters -= members.keys()
        return [(p, a, False) for p, a in units if p or a] + alone

    def _starts(self) -> int:
        """Attempts one decision may start: each is two writes (its Job and its Event)."""
        return max(1, self.settings.unit_writes // 2)

    def _decide(
        self, keys: set[WorkKey], pubs: set[Key], adapters: set[Key], now: datetime, alone: bool = False
    ) -> bool:
        """Decide one unit and start its writes. False when deciding failed (it is retried).

        ``alone``: a running Publication decided without its adapters' queues. If that decision
        would record an outcome or start anything (which its adapters' statuses must take in),
        it is dropped and the Publication is decided with its adapters on the next tick."""
        self.units += 1
        decided_ns = time.time_ns()  # the attempts' spans start with the decision
        # Publications whose earlier writes are still in flight are left out (their Jobs still
        # count in their adapters' loads) and decided again once those end: an outcome is never
        # taken from a Publication whose status this decision cannot write.
        writing = {k for k in pubs if pub_key(k) in self._busy}
        self._deferred |= {pub_key(k) for k in writing}
        try:
            world = replace(
                self.store.world_for(pubs - writing, adapters, now),
                credentials_probe=self.settings.credentials_probe,
                adapters_read_only=alone,
            )
            plan = reconcile(world, now, self.defaults, self.settings.publication_ttl_seconds, self._starts())
        except Exception:
            log.exception("reconcile of %d publications and %d adapters failed", len(pubs), len(adapters))
            self._backoff(keys, now)
            return False
        # Those admitted past the start budget are decided again on the next tick. A unit's writes
        # are bounded, as a work queue's batch is: the rest is decided again on the next tick, so
        # no write (nor its Event) waits behind hundreds of others.
        if alone:
            if plan.adapter_effects or plan.creates:
                self._with_adapters |= pubs
                self._deferred |= keys
                self.store.changed.set()  # decided again on the next tick, with its adapters
                return True
            # Only the Publication's own writes: its adapters' statuses and gauges come from
            # their own units (this one saw none of their queues).
            plan.adapter_status.clear()
            plan.gauges.clear()
            plan.events = [e for e in plan.events if e.kind != "PlatformAdapter"]
        # Admitted past the start budget, or behind targets this decision did not see: they start
        # as their queues' heads, so their adapters are decided again (not each of them).
        # A postponed one that its queues do not hold as due (a redrive, a retry-now: its stored
        # status does not say it is due yet) would never come up as a head: it is decided again.
        postponed = set(plan.postponed)
        requeued = {k for k in postponed if not self.store.queued(k)}
        dropped = (plan.drop(postponed) - postponed) | requeued | plan.keep_writes(self.settings.unit_writes)
        self._deferred |= {pub_key(k) for k in dropped}
        if postponed:
            self._deferred |= {adapter_key(k) for k in adapters}
            if plan.creates:  # progress: the next head now; otherwise what is ahead is being written,
                self.store.changed.set()  # and the end of those writes wakes the loop (no busy loop)
        self.tracer.decided(plan, decided_ns)
        failed = {("p" if f.kind == "publications" else "a", *f.key) for f in plan.failures}
        self._backoff(failed, now)
        for key in keys - failed:
            self._failures.pop(key, None)
        self._skip_pruned(plan)
        held = self._hold_progress(plan, now, pubs)
        counts = self._throttle_adapter_counts(plan, now)
        self._schedule(keys, plan.wake_at)
        if self.observer is not None:
            try:
                self.observer(plan, now)
            except Exception:
                log.exception("observer failed")
        count = plan.write_count()
        if count:
            # Busy while written: the Publications and adapters written, or the whole unit when
            # Jobs are deleted (their owners are not named in the plan).
            written = {pub_key(k) for k in plan.written_publications()} | {
                adapter_key(k) for k in plan.written_adapters()
            }
            busy = keys if plan.deletes else written
            for jc in plan.creates:  # they count from now on (see Store.expect_job)
                self.store.expect_job(jc.manifest, now)
            self._busy |= busy
            self._writing += 1
            self._inflight += count
            task = asyncio.create_task(self._execute(busy, plan, held, now, _Slots(self, count)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._post_counts(counts)
        return not plan.failures

    def _skip_pruned(self, plan: Plan) -> None:
        for kind, writes in (("publications", plan.publication_status), ("platformadapters", plan.adapter_status)):
            for key, status in list(writes.items()):
                pruned = self._pruned.get((kind, key))  # rare: a fingerprint only when one is kept
                if pruned is not None and pruned == _fingerprint(status):
                    del writes[key]

    def _hold_progress(self, plan: Plan, now: datetime, pubs: set[Key]) -> dict[Key, dict[str, Any]]:
        """Hold back status writes that only record started attempts, for status_coalesce_seconds.
        Returns the held statuses (a failed Job create releases its publication's)."""
        window = timedelta(seconds=self.settings.status_coalesce_seconds)
        for key in [k for k in pubs if k in self._held and k not in plan.publication_status]:
            del self._held[key]
        held: dict[Key, dict[str, Any]] = {}
        for key, new in list(plan.publication_status.items()):
            pub = self.store.objects["publications"].get(key)
            if pub is None or window.total_seconds() <= 0 or not progress_only(new, pub.status):
                self._held.pop(key, None)
                continue
            since = self._held.setdefault(key, now)
            if now - since >= window:
                del self._held[key]
                continue
            held[key] = plan.publication_status.pop(key)
            plan.wake(since + window)
        return held

    def _throttle_adapter_counts(self, plan: Plan, now: datetime) -> dict[Key, dict[str, Any]]:
        """An adapter status change that only moves the queue counts or lastPublishedTime is written
        at most once per adapter_counts_seconds; anything else (circuit, credentials, rate limit,
        conditions) is written at once. Returns the counts-only writes due now, taken out of the
        plan: they are no part of the unit (see ``_post_counts``)."""
        window = timedelta(seconds=self.settings.adapter_counts_seconds)
        counts: dict[Key, dict[str, Any]] = {}
        for key, new in list(plan.adapter_status.items()):
            view = self.store.objects["platformadapters"].get(key)
            last = self._adapter_written.get(key)
            counts_only = view is not None and not changed(
                {k: v for k, v in new.items() if k not in ("queue", "lastPublishedTime")}, view.status
            )
            if view is not None and counts_only and last is not None and now - last < window:
                del plan.adapter_status[key]
                published = safe_time(new.get("lastPublishedTime"))
                if published is not None and published > (safe_time(view.status.get("lastPublishedTime")) or _EPOCH):
                    self._held_published[key] = max(published, self._held_published.get(key, published))
                plan.wake(last + window)
                continue
            self._adapter_written[key] = now
            if counts_only:
                counts[key] = plan.adapter_status.pop(key)
            else:  # this unit writes the whole status: a counts write not yet sent is older
                self._counts_pending.pop(key, None)
        return counts

    def _post_counts(self, counts: Mapping[Key, dict[str, Any]]) -> None:
        """Counts-only adapter statuses are written by one writer per adapter, the newest waiting
        one at a time, beside the units: the adapter is not busy while they are written, so its
        queue keeps starting (a unit's adapter write held its next decision for the whole unit's
        Jobs and Events: bench, a stall every 2 s of a burst)."""
        for key, status in counts.items():
            self._counts_pending[key] = status
            if key in self._counts_writers:
                continue
            self._counts_writers.add(key)
            task = asyncio.create_task(self._write_counts(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _write_counts(self, key: Key) -> None:
        try:
            while (status := self._counts_pending.pop(key, None)) is not None:
                await self._adapter_status(key, status)
        except Exception:
            log.exception("cannot write the queue counts of PlatformAdapter %s/%s", *key)
        finally:
            self._counts_writers.discard(key)

    async def _adapter_status(self, key: Key, status: Mapping[str, Any]) -> bool:
        """Adapter status writes, one at a time per adapter: a unit's write waits for a counts
        write in flight, and is then conditional on the version that write made. A held
        lastPublishedTime later than the status's goes with it."""
        async with self._adapter_writes.hold(key), self._requests:
            held = self._held_published.pop(key, None)
            if held is not None and held > (safe_time(status.get("lastPublishedTime")) or _EPOCH):
                status = {**status, "lastPublishedTime": format_time(held)}
            if not status:
                return True
            written = await self._patch_status("platformadapters", key, status)
            if not written and held is not None:  # kept for the next write
                self._held_published[key] = max(held, self._held_published.get(key, held))
            return written

    def _flush_published(self, now: datetime) -> None:
        """Write a held lastPublishedTime once its adapter's throttle window has ended."""
        window = timedelta(seconds=self.settings.adapter_counts_seconds)
        for key in list(self._held_published):
            last = self._adapter_written.get(key)
            if key not in self.store.objects["platformadapters"]:
                del self._held_published[key]
            elif (last is None or now - last >= window) and key not in self._counts_pending:
                self._adapter_written[key] = now
                self._post_counts({key: {}})  # the held time alone (see _adapter_status)

    # -- reads ---------------------------------------------------------------------------------
    async def _refresh_secrets(self) -> None:
        """Keep the resourceVersion of every referenced credentials Secret (metadata only)."""
        wanted: dict[Key, float] = {}
        for a in self.store.objects["platformadapters"].values():
            ref = a.credentials_secret
            if not ref:
                continue
            invalid = isinstance(a.status.get("credentials"), Mapping) and a.status["credentials"].get("valid") is False
            wanted[(a.namespace, ref)] = 1.0 if invalid else self.settings.secret_refresh_seconds
        for key in self._secret_forbidden & wanted.keys():
            wanted[key] = self.settings.resync_seconds
        now = time.monotonic()
        due = [k for k, every in wanted.items() if now - self._secret_checked.get(k, 0.0) >= every]

        async def fetch(key: Key) -> None:
            ns, name = key
            self._secret_checked[key] = time.monotonic()
            try:
                async with self._requests:
                    obj = await self.kube.get(f"/api/v1/namespaces/{ns}/secrets/{name}", metadata_only=True)
                version = obj["metadata"]["resourceVersion"]
            except ApiError as e:
                if e.not_found:
                    version = None
                elif e.status == 403:  # not among rbac.secretNames: probes notice a fix instead
                    if key not in self._secret_forbidden:
                        self._secret_forbidden.add(key)
                        log.info("may not read Secret %s/%s (not in rbac.secretNames): relying on probes", ns, name)
                    return
                else:
                    log.warning("cannot read Secret %s/%s: %s", ns, name, e.status)
                    return
            except (KeyError, TypeError):
                return
            if self.store.secrets.get(key, "unknown") != version:
                self.store.secrets[key] = version
                for akey, a in self.store.objects["platformadapters"].items():
                    if akey[0] == ns and a.credentials_secret == name:
                        self.store.mark_queue(akey)

        # A Secret seen for the first time is read before deciding (attempts record its version);
        # later refreshes run in the background, so a slow read never holds up a tick.
        first = [k for k in due if k not in self.store.secrets]
        if first:
            await asyncio.wait([asyncio.create_task(fetch(k)) for k in first], timeout=5.0)
        for key in due:
            if key in first:
                continue
            task = asyncio.create_task(fetch(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        for k in [k for k in self.store.secrets if k not in wanted]:
            del self.store.secrets[k]

    # -- writes --------------------------------------------------------------------------------
    async def _bounded(self, coro: Awaitable[Any]) -> Any:
        async with self._requests:
            return await coro

    async def _execute(
        self, keys: set[WorkKey], plan: Plan, held: dict[Key, dict[str, Any]], now: datetime, slots: _Slots
    ) -> None:
        try:
            async with self._workers:
                await self._write(plan, held, now, slots)
        except Exception:
            log.exception("writes of a unit failed; retrying it")
            for jc in plan.creates:  # a create that did not answer: its Job no longer counts
                m = jc.manifest["metadata"]
                self.store.unexpect_job((m["namespace"], m["name"]))
            self._backoff(keys, utcnow())
        finally:
            self._busy -= keys
            self._writing -= 1
            slots.release_all()
            self.store.changed.set()

    async def _write(self, plan: Plan, held: dict[Key, dict[str, Any]], now: datetime, slots: _Slots) -> None:
        # Each write gives its slot back as it ends, so the next decision is made as soon as the
        # API server has room, not when this unit's slowest write ends.
        await _all(*(self._create(jc, plan, held, now, slots) for jc in plan.creates))
        await _all(
            *(slots.after(self._bounded(self._delete_job(k))) for k in plan.deletes),
            *(slots.after(self._bounded(self._delete_publication(k))) for k in plan.deletes_publications),
        )
        pubs = set(plan.publication_status) | set(plan.publication_labels)
        # The unit's Events are part of its writes: a worker is free again only once they are
        # posted, so Events keep pace with decisions instead of queueing behind a burst.
        await _all(
            *(slots.after(self._bounded(self._write_publication(k, plan))) for k in pubs),
            *(slots.after(self._adapter_status(k, s)) for k, s in plan.adapter_status.items()),
            *(slots.after(self._event_bounded(e, now)) for e in plan.events),
        )

    async def _create(
        self, jc: JobCreate, plan: Plan, held: dict[Key, dict[str, Any]], now: datetime, slots: _Slots
    ) -> None:
        m = jc.manifest["metadata"]
        job = (m["namespace"], m["name"])
        try:
            # A request slot for the create only: its Event then takes an Event slot, so a create
            # never waits behind another's Event.
            async with self._requests:
                with self.tracer.job_create(jc) as manifest:  # the attempt's trace context goes into the Job
                    created = await self.kube.create(collection("batch/v1", "jobs", m["namespace"]), manifest)
        except ApiError as e:
            slots.release(2)  # the create and its Event, never posted
            if e.already_exists:
                return  # an earlier run created it (and posted its Event); the watch shows it
            self.store.unexpect_job(job)
            if jc.publication in held:  # the held status must now be written, amended
                plan.publication_status[jc.publication] = held.pop(jc.publication)
                self._held.pop(jc.publication, None)
            message = redact(f"cannot create Job {m['name']}: {e.message}", limit=600)
            if e.invalid:
                # Refused for good: the next decision turns it into a failed attempt (invalid_spec).
                log.warning("the API server refused Job %s/%s: %s", job[0], job[1], e.status)
                self.store.record_create_failure(job, redact(e.message, limit=600), jc.publication)
                self._amend(plan, jc, phase=Phase.QUEUED, reason=JOB_REFUSED, message=message, nextAttemptAt=None)
                return
            n = self._create_failures.get(jc.publication, 0) + 1
            self._create_failures[jc.publication] = n
            delay = min(60.0, 2.0**n)
            log.warning("cannot create Job %s/%s (try %d, next in %.0fs): %s", job[0], job[1], n, delay, e)
            self._amend(
                plan,
                jc,
                phase=Phase.QUEUED,
                reason=JOB_CREATE_FAILED,
                message=message,
                nextAttemptAt=format_time(now + timedelta(seconds=delay)),
            )
            if n == 1:
                plan.events.append(
                    EventSpec(
                        "Publication", m["namespace"], jc.publication[1], "", "Warning", JOB_CREATE_FAILED, message
                    )
                )
            return
        self._create_failures.pop(jc.publication, None)
        self.store.job_starts[job] = utcnow()
        self.store.apply("jobs", "ADDED", created)
        slots.release()  # the create's slot: the next decision need not wait for this Event
        if jc.started is not None:
            await self._event_bounded(jc.started, now)
        slots.release()

    @staticmethod
    def _amend(plan: Plan, jc: JobCreate, **fields: Any) -> None:
        """The attempt did not start: its target goes back to the attempt before, with ``fields``."""
        status = plan.publication_status.get(jc.publication)
        if status is not None:
            plan.publication_status[jc.publication] = with_target(
                status, jc.target, attempts=jc.previous_attempt, jobName=None, **fields
            )

    async def _delete_job(self, key: Key) -> None:
        try:
            await self.kube.delete(f"/apis/batch/v1/namespaces/{key[0]}/jobs/{key[1]}")
        except ApiError as e:
            log.warning("cannot delete Job %s/%s: %s", key[0], key[1], e)

    async def _delete_publication(self, key: Key) -> None:
        view = self.store.objects["publications"].get(key)
        if view is None:
            return
        try:
            await self.kube.delete(
                f"/apis/{GROUP_VERSION}/namespaces/{key[0]}/publications/{key[1]}", resource_version=str(view.rv)
            )
            log.info("deleted Publication %s/%s: its ttlSecondsAfterFinished passed", *key)
        except ApiError as e:
            if e.conflict:
                await self._reread("publications", key)
            else:
                log.warning("cannot delete Publication %s/%s: %s", key[0], key[1], e)

    async def _write_publication(self, key: Key, plan: Plan) -> None:
        """Status first (conditional on the resourceVersion decided from), then labels."""
        status = plan.publication_status.get(key)
        if status is not None and not await self._patch_status("publications", key, status):
            return
        labels = plan.publication_labels.get(key)
        if labels is not None:
            path = f"/apis/{GROUP_VERSION}/namespaces/{key[0]}/publications/{key[1]}"
            try:
                updated = await self.kube.merge_patch(path, {"metadata": {"labels": labels}})
                self.store.apply("publications", "MODIFIED", updated)
            except ApiError as e:
                if not e.not_found:
                    log.warning("cannot label Publication %s/%s: %s", key[0], key[1], e)
                    self._backoff([pub_key(key)], utcnow())

    async def _patch_status(self, kind: str, key: Key, status: Mapping[str, Any]) -> bool:
        """A status merge patch that only applies to the version it was decided from. On a
        conflict the object is read again, and decided again from what it is now."""
        view = self.store.objects[kind].get(key)
        if view is None:
            return False
        path = f"/apis/{GROUP_VERSION}/namespaces/{key[0]}/{kind}/{key[1]}/status"
        body = {"metadata": {"resourceVersion": str(view.rv)}, "status": status}
        work = pub_key(key) if kind == "publications" else adapter_key(key)
        try:
            updated = await self.kube.merge_patch(path, body)
        except ApiError as e:
            if e.not_found:
                return False
            if e.conflict:
                await self._reread(kind, key)
            else:
                log.error("cannot write status of %s %s/%s: %s", kind, key[0], key[1], e)
                self._backoff([work], utcnow())
            return False
        kept = updated.get("status") if isinstance(updated, Mapping) else None
        if isinstance(kept, Mapping) and changed(status, kept):
            if (kind, key) not in self._pruned:
                log.warning(
                    "the API server did not keep the status written to %s %s/%s as sent; is the CRD "
                    "older than the operator? (kubectl apply --server-side -f crds/)",
                    kind,
                    *key,
                )
            self._pruned[(kind, key)] = _fingerprint(status)
        else:
            self._pruned.pop((kind, key), None)
        self.store.apply(kind, "MODIFIED", updated)
        return True

    async def _reread(self, kind: str, key: Key) -> None:
        try:
            fresh = await self.kube.get(f"/apis/{GROUP_VERSION}/namespaces/{key[0]}/{kind}/{key[1]}")
        except ApiError as e:
            if e.not_found:
                self.store.apply(kind, "DELETED", {"metadata": {"namespace": key[0], "name": key[1]}})
            return
        self.store.apply(kind, "MODIFIED", fresh)
        self.store.mark(pub_key(key) if kind == "publications" else adapter_key(key))

    def _slot_waited(self, pool: str, seconds: float) -> None:
        report = getattr(self.observer, "request_slot_waited", None)
        if report is not None:
            report(pool, seconds)

    # -- events ----------------------------------------------------------------------------------
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
            "involvedObject": {
                "apiVersion": GROUP_VERSION,
                "kind": e.kind,
                "name": e.name,
                "namespace": e.namespace,
                "uid": uid,
            },
            "reason": e.reason[:128],
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
            return
        # Event lag: from the decision that made it to the API server having it.
        self.event_lags.append((utcnow() - now).total_seconds())
        report = getattr(self.observer, "event_posted", None)
        if report is not None:
            report((utcnow() - now).total_seconds())


class _Slots:
    """A unit's share of the engine's in-flight write budget, given back one write at a time."""

    def __init__(self, engine: Engine, count: int):
        self._engine, self.left = engine, count

    def release(self, n: int = 1) -> None:
        n = min(n, self.left)
        if n > 0:
            self.left -= n
            self._engine._inflight -= n
            self._engine.store.changed.set()  # room for another decision

    def release_all(self) -> None:
        self.release(self.left)

    async def after(self, coro: Awaitable[Any]) -> Any:
        try:
            return await coro
        finally:
            self.release()


class _RequestSlots:
    """At most ``n`` requests of one pool in flight; each one's wait for a slot is reported
    (``herald_api_request_slot_wait_seconds``), so a burst shows where its requests queue."""

    def __init__(self, n: int, pool: str, waited: Callable[[str, float], None]):
        self._sem, self._pool, self._waited = asyncio.Semaphore(n), pool, waited
        self.waiting = 0  # requests waiting for a slot now

    async def __aenter__(self) -> None:
        started = time.monotonic()
        self.waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        try:
            self._waited(self._pool, time.monotonic() - started)
        except Exception:
            log.exception("observer failed")

    async def __aexit__(self, *exc: object) -> None:
        self._sem.release()


_EPOCH = datetime.min.replace(tzinfo=UTC)


class _KeyedLock:
    """One lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Key, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Key) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


async def _all(*writes: Awaitable[Any]) -> None:
    """Run writes together and wait for every one of them; then raise the first error, if any.
    (A plain gather would return at the first error and leave the others running, detached from
    the unit's task, so that Engine.stop could not cancel them.)"""
    for result in await asyncio.gather(*writes, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result


def _fingerprint(status: Mapping[str, Any]) -> str:
    return json.dumps(status, sort_keys=True, default=str)

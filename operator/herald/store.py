"""The in-memory picture of the cluster that decisions are made from, with the indexes that let a
tick look only at what changed.

It is fed by the initial lists and by kopf's watch events, in any order: an object is only
replaced by a newer resourceVersion, and a deletion leaves a tombstone so a late, older copy
cannot bring it back.

Besides the objects it keeps, updated on every event:
- which Publications still need the operator (``active``): a Publication whose every target is
  published or dead-lettered, and whose status is up to date, costs nothing until it changes;
- per PlatformAdapter: its active Publications, its Jobs (running count, start times) and how many
  of its targets sit in the dead letter;
- per Publication its Jobs, per Job its Pods;
- the keys that changed since the last tick (``take_dirty``).

``world_for(seeds)`` closes a set of changed keys over the adapters they share and returns just
that part of the world: the unit that one ``reconcile`` decides.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, cast

from .queues import AdapterQueue
from .reconciler import AdapterLoad, World, queue_entry, settled
from .views import AdapterView, JobView, PodView, PublicationView

log = logging.getLogger("herald.store")

KINDS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "publications": PublicationView.from_body,
    "platformadapters": AdapterView.from_body,
    "jobs": JobView.from_body,
    "pods": PodView.from_body,
}
TOMBSTONE_SECONDS = 600.0
CREATE_FAILURE_SECONDS = 3600.0
EXPECTATION_SECONDS = 120.0  # a Job expected for longer than this is dropped by the next full list

Key = tuple[str, str]
# A unit of work: ("p", namespace, name) for a Publication, ("a", namespace, name) for an adapter.
WorkKey = tuple[str, str, str]


def _rv(body: Mapping[str, Any]) -> int:
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError, AttributeError):
        return 0


def pub_key(key: Key) -> WorkKey:
    return ("p", key[0], key[1])


def adapter_key(key: Key) -> WorkKey:
    return ("a", key[0], key[1])


@dataclass
class _AdapterJobs:
    """The Jobs of one adapter (name as in the Publication's target): start times and running ones."""

    starts: dict[Key, datetime] = field(default_factory=dict)
    running: set[Key] = field(default_factory=set)
    sorted_starts: list[datetime] | None = None  # cache, rebuilt on change

    def load(self, since: datetime | None) -> AdapterLoad:
        if self.sorted_starts is None:
            self.sorted_starts = sorted(self.starts.values())
        i = 0 if since is None else bisect.bisect_right(self.sorted_starts, since)
        return AdapterLoad(running=len(self.running), starts=tuple(self.sorted_starts[i:]))


def _shown_to_waiting(view: AdapterView) -> tuple:
    """What of an adapter its waiting targets' statuses may show (their reason and message): not
    its queue counts, its last publish time nor its circuit's failure counts."""
    status = view.status
    circuit: Mapping[str, Any] = status["circuit"] if isinstance(status.get("circuit"), Mapping) else {}
    rate: Mapping[str, Any] = status["rateLimit"] if isinstance(status.get("rateLimit"), Mapping) else {}
    return (
        view.generation,
        view.spec,
        circuit.get("state"),
        circuit.get("nextProbeAt"),
        rate.get("blockedUntil"),
        status.get("credentials"),
        status.get("observedGeneration"),
    )


SHARD_LABEL = "herald.dev/shard"
DEFAULT_SHARD = "default"


def shard_of(labels: Mapping[str, Any] | None) -> str:
    """A namespace's shard: its herald.dev/shard label, or the default shard when it has none."""
    value = (labels or {}).get(SHARD_LABEL)
    return value if isinstance(value, str) and value else DEFAULT_SHARD


class Store:
    def __init__(self, shard: str | None = None) -> None:
        # With a shard, only objects in namespaces of that shard are kept (and so decided).
        self.shard = shard
        self.namespace_shards: dict[str, str] = {}
        self.objects: dict[str, dict[Key, Any]] = {k: {} for k in KINDS}
        self._tombstones: dict[str, dict[Key, tuple[int, float]]] = {k: {} for k in KINDS}
        self.changed = asyncio.Event()
        self.secrets: dict[Key, str | None] = {}
        self.job_starts: dict[Key, datetime] = {}
        # Job creates the API server refused for good: (namespace, Job name) -> (message, when).
        self.create_failures: dict[Key, tuple[str, float]] = {}
        # Jobs decided and being created, not yet seen (client-go's "expectations"): they count
        # for their adapter and publication at once, so the next slice of a busy adapter can be
        # decided while the creates of the last are in flight. Job -> when it was expected.
        self.expected: dict[Key, float] = {}
        # indexes
        self._pub_by_uid: dict[str, Key] = {}
        self.active: set[Key] = set()
        # Per adapter, the active Publications that compete for it: a target of theirs names it
        # and has no Job running there (one running, or being created, needs no admission).
        self._competing_by_adapter: dict[Key, set[Key]] = defaultdict(set)
        # Per adapter, its competing targets that wait for admission, in admission order.
        self.queues: dict[Key, AdapterQueue] = defaultdict(AdapterQueue)
        self._pub_competing: dict[Key, tuple[str, ...]] = {}
        self._pub_adapters: dict[Key, tuple[str, ...]] = {}
        self._dead_by_adapter: dict[Key, set[Key]] = defaultdict(set)
        self._pub_dead: dict[Key, tuple[str, ...]] = {}
        self._jobs_by_owner: dict[str, set[Key]] = defaultdict(set)
        self._adapter_jobs: dict[Key, _AdapterJobs] = defaultdict(_AdapterJobs)
        self._pods_by_job: dict[Key, set[Key]] = defaultdict(set)
        self._dirty: set[WorkKey] = set()
        self.skipped = 0  # objects that could not be read at all (no usable metadata)

    # -- events ------------------------------------------------------------------------------
    def apply(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """Record a watch event or a listed/written object. Returns whether anything changed."""
        meta = body.get("metadata") if isinstance(body, Mapping) else None
        if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
            self.skipped += 1
            return False
        key = (str(meta.get("namespace") or ""), meta["name"])
        if not self.owns(key[0]):
            return False
        rv = _rv(body)
        objects, tombs = self.objects[kind], self._tombstones[kind]
        current = objects.get(key)
        if current is not None and rv and current.rv > rv:
            return False
        if event_type == "DELETED":
            if current is not None:
                self._unindex(kind, current)
                objects.pop(key, None)
                if kind == "platformadapters":
                    self.mark_queue(key)
            if kind == "jobs":
                self.job_starts.pop(key, None)
            old = tombs.get(key)
            tombs[key] = (max(rv, old[0]) if old else rv, time.monotonic())
            self.changed.set()
            return True
        tomb = tombs.get(key)
        if tomb is not None:
            if rv and rv <= tomb[0]:
                return False
            del tombs[key]
        if current is not None and rv and current.rv == rv:
            return False
        if rv and kind == "jobs":
            self.expected.pop(key, None)  # the Job itself replaces its expectation
        try:
            view = KINDS[kind](body)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            # An object Herald cannot even name: it affects nothing else.
            self.skipped += 1
            log.warning("cannot read %s %s/%s: %s", kind, key[0], key[1], type(e).__name__)
            return False
        if view is None:
            return False
        if current is not None and kind in ("jobs", "pods") and replace(view, rv=current.rv) == current:
            # Nothing Herald reads changed (a Pod bound to a node, a Job's ready count, a label):
            # the newer version is kept, and nothing is decided again for it.
            objects[key] = view
            return False
        quiet = None  # an adapter whose load this change leaves as it was: not decided again for it
        if current is not None:
            if kind == "jobs" and current.target == view.target:
                akey = adapter_key((current.namespace, current.target))
                if akey not in self._dirty and key in self._adapter_jobs[(current.namespace, current.target)].running:
                    quiet = akey
            self._unindex(kind, current)
        objects[key] = view
        self._index(kind, view)
        if kind == "platformadapters" and (current is None or _shown_to_waiting(current) != _shown_to_waiting(view)):
            self.mark_queue(key)
        if quiet is not None and key in self._adapter_jobs[(quiet[1], quiet[2])].running:
            self._dirty.discard(quiet)  # a running Job that still runs (it progressed)
        self.changed.set()
        return True

    def owns(self, namespace: str) -> bool:
        if self.shard is None:
            return True
        return self.namespace_shards.get(namespace, DEFAULT_SHARD) == self.shard

    def apply_namespace(self, event_type: str | None, body: Mapping[str, Any]) -> str | None:
        """Record a namespace's shard. Returns "gained" or "lost" when this store's ownership of
        it changed (a lost namespace's objects are dropped: its new shard takes them over)."""
        meta = body.get("metadata") if isinstance(body, Mapping) else None
        if self.shard is None or not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
            return None
        name = meta["name"]
        before = self.owns(name)
        if event_type == "DELETED":
            self.namespace_shards.pop(name, None)
        else:
            self.namespace_shards[name] = shard_of(meta.get("labels"))
        after = self.owns(name) and event_type != "DELETED"
        if before and not after:
            for kind in KINDS:
                for key in [k for k in self.objects[kind] if k[0] == name]:
                    self._unindex(kind, self.objects[kind].pop(key))
            return "lost"
        return "gained" if after and not before else None

    def expect_job(self, manifest: Mapping[str, Any], at: datetime) -> None:
        """A Job about to be created counts from now on, as if it existed and had not started."""
        meta = manifest.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if key in self.objects["jobs"] or not self.owns(key[0]):
            return
        view = JobView.from_body({**manifest, "metadata": {**meta, "uid": "", "resourceVersion": "0"}, "status": {}})
        if view is None:
            return
        self.job_starts.setdefault(key, at)
        self.objects["jobs"][key] = replace(view, created=at)
        self._index("jobs", self.objects["jobs"][key])
        self.expected[key] = time.monotonic()

    def unexpect_job(self, key: Key) -> None:
        """The create did not happen (refused or failed): the expected Job no longer counts."""
        if self.expected.pop(key, None) is None:
            return
        view = self.objects["jobs"].pop(key, None)
        if view is not None:
            self._unindex("jobs", view)
        self.job_starts.pop(key, None)
        self.changed.set()

    def apply_listing(self, kind: str, namespace: str | None, listing: Mapping[str, Any]) -> None:
        """A full list of one kind (in one namespace, or everywhere when None): every item is
        recorded, and what the list no longer has is dropped (deleted while nobody watched)."""
        try:
            list_rv = int((listing.get("metadata") or {}).get("resourceVersion") or 0)
        except (TypeError, ValueError, AttributeError):
            list_rv = 0
        keys: set[Key] = set()
        for item in listing.get("items") or []:
            if not isinstance(item, dict) or not isinstance(item.get("metadata"), dict):
                self.skipped += 1
                continue
            if namespace is not None:
                item["metadata"].setdefault("namespace", namespace)
            self.apply(kind, None, item)
            keys.add((item["metadata"].get("namespace"), item["metadata"].get("name")))
        if namespace is not None:  # objects of other namespaces are not this list's to drop
            keys |= {k for k in self.objects[kind] if k[0] != namespace}
        self.forget_missing(kind, keys, list_rv)

    def forget_missing(self, kind: str, listed: set[Key], list_rv: int) -> None:
        """After a full list: drop objects the list no longer has (deleted while nobody watched).
        A Job still being created is kept (the list may predate it)."""
        recent = time.monotonic() - EXPECTATION_SECONDS
        for key in [
            k
            for k, v in self.objects[kind].items()
            if k not in listed and v.rv <= list_rv and not (kind == "jobs" and self.expected.get(k, 0.0) > recent)
        ]:
            self.expected.pop(key, None)
            self._unindex(kind, self.objects[kind].pop(key))
            self._tombstones[kind][key] = (list_rv, time.monotonic())

    def gc_tombstones(self) -> None:
        cutoff = time.monotonic() - TOMBSTONE_SECONDS
        for tombs in self._tombstones.values():
            for key in [k for k, (_, at) in tombs.items() if at < cutoff]:
                del tombs[key]
        old = time.monotonic() - CREATE_FAILURE_SECONDS
        for key in [k for k, (_, at) in self.create_failures.items() if at < old]:
            del self.create_failures[key]

    def record_create_failure(self, job: Key, message: str, publication: Key) -> None:
        self.create_failures[job] = (message, time.monotonic())
        self.mark(pub_key(publication))

    # -- indexes ------------------------------------------------------------------------------
    def _index(self, kind: str, view: Any) -> None:
        if kind == "publications":
            self._index_publication(view)
        elif kind == "platformadapters":
            self.mark(adapter_key(view.key))
        elif kind == "jobs":
            self._index_job(view)
        elif kind == "pods":
            self._pods_by_job[(view.namespace, view.job)].add(view.key)
            self._mark_job_owner((view.namespace, view.job))

    def _unindex(self, kind: str, view: Any) -> None:
        if kind == "publications":
            key = view.key
            self._pub_by_uid.pop(view.uid, None)
            self.active.discard(key)
            self._pub_adapters.pop(key, None)
            self._refresh_competing(key)
            for name in self._pub_dead.pop(key, ()):
                self._dead_by_adapter[(key[0], name)].discard(key)
            self.mark(pub_key(key))
            for name in view.target_names:
                self.mark(adapter_key((key[0], name)))
        elif kind == "platformadapters":
            self.mark(adapter_key(view.key))
        elif kind == "jobs":
            self._jobs_by_owner[view.owner_uid or ""].discard(view.key)
            self._refresh_owner_competing(view)
            aj = self._adapter_jobs[(view.namespace, view.target)]
            if aj.starts.pop(view.key, None) is not None:
                aj.sorted_starts = None
            if view.key in aj.running:
                aj.running.discard(view.key)
                self.mark(adapter_key((view.namespace, view.target)))
            self._mark_owner(view)
        elif kind == "pods":
            self._pods_by_job[(view.namespace, view.job)].discard(view.key)
            self._mark_job_owner((view.namespace, view.job))

    def _index_publication(self, view: PublicationView) -> None:
        key = view.key
        self._pub_by_uid[view.uid] = key
        names = view.target_names
        if settled(view):
            self.active.discard(key)
        else:
            self.active.add(key)
            self._pub_adapters[key] = names
        self._refresh_competing(key)
        dead = view.dead_letter_targets
        if dead:
            self._pub_dead[key] = dead
            for name in dead:
                self._dead_by_adapter[(key[0], name)].add(key)
        self.mark(pub_key(key))

    def _refresh_competing(self, key: Key) -> None:
        """Record which adapters an active Publication competes for (see ``close``), and its
        place in their queues."""
        view = self.objects["publications"].get(key)
        names: tuple[str, ...] = ()
        if view is not None and key in self.active:
            running = set()
            for jkey in self._jobs_by_owner.get(view.uid, ()):
                job = self.objects["jobs"].get(jkey)
                if job is not None and not job.done and not job.deleting:
                    running.add(job.target)
            names = tuple(n for n in self._pub_adapters.get(key, ()) if n not in running)
        for name in self._pub_competing.pop(key, ()):
            if name not in names:
                self._competing_by_adapter[(key[0], name)].discard(key)
                self.queues[(key[0], name)].discard(key)
        if view is not None and names:
            self._pub_competing[key] = names
            for name in names:
                self._competing_by_adapter[(key[0], name)].add(key)
                self.queues[(key[0], name)].put(key, queue_entry(view, name))

    def _refresh_owner_competing(self, job: JobView) -> None:
        owner = self._pub_by_uid.get(job.owner_uid or "")
        if owner is not None:
            self._refresh_competing(owner)

    def _index_job(self, view: JobView) -> None:
        self._jobs_by_owner[view.owner_uid or ""].add(view.key)
        self._refresh_owner_competing(view)
        akey = (view.namespace, view.target)
        aj = self._adapter_jobs[akey]
        # Without the exact time, assume the latest moment in the creation second: never over-admit.
        aj.starts[view.key] = self.job_starts.get(view.key) or view.created + timedelta(seconds=1)
        aj.sorted_starts = None
        if not view.done and not view.deleting and view.key not in aj.running:
            aj.running.add(view.key)
            self.mark(adapter_key(akey))
        self._mark_owner(view)

    def _mark_owner(self, job: JobView) -> None:
        owner = self._pub_by_uid.get(job.owner_uid or "")
        if owner is not None and owner in self.active:
            self.mark(pub_key(owner))
        elif job.done or job.deleting:
            # A settled publication's Job finishing or going away changes nothing but the
            # adapter's running count, which is marked above.
            return
        elif owner is not None:
            self.mark(pub_key(owner))

    def _mark_job_owner(self, job: Key) -> None:
        view = self.objects["jobs"].get(job)
        if view is not None:
            self._mark_owner(view)

    def mark(self, key: WorkKey) -> None:
        self._dirty.add(key)
        self.changed.set()

    def mark_all(self) -> None:
        """Everything is looked at once (after the first list): timers and retention are re-derived."""
        for key in self.objects["publications"]:
            self._dirty.add(pub_key(key))
        for key in self.objects["platformadapters"]:
            self._dirty.add(adapter_key(key))
        self.changed.set()

    def take_dirty(self) -> set[WorkKey]:
        dirty, self._dirty = self._dirty, set()
        return dirty

    @property
    def dirty(self) -> set[WorkKey]:
        return self._dirty

    # -- units of work ---------------------------------------------------------------------------
    def close(
        self, seeds: Iterable[WorkKey], now: datetime | None = None, head: int | None = None
    ) -> tuple[set[Key], set[Key]]:
        """The Publications and adapters that must be decided together with ``seeds``.

        A due target competes with the other waiting targets of its adapter (priority,
        concurrency, rate limit), and a Publication with several targets ties their adapters
        together; so the closure follows the Publications that compete for an adapter (a target
        naming it with no Job running there) through the adapters they name. A target whose Job
        runs competes for nothing: its Job counts in the adapter's load (the store's index), and
        its Publication is decided when that Job changes (it is then a seed). Settled
        Publications are included only when they are seeds themselves.

        With ``head``, an adapter brings only the first ``head`` due targets of its queue (at
        ``now``), not every Publication that competes for it: the others wait behind them, and
        the decision learns how many from the queue (``World.queues``). A decision then costs
        what changed plus a bounded head, however long the queue."""
        pubs: set[Key] = set()
        adapters: set[Key] = set()
        todo_adapters: list[Key] = []
        for kind, ns, name in seeds:
            if kind == "a":
                todo_adapters.append((ns, name))
            elif (ns, name) in self.objects["publications"]:
                pubs.add((ns, name))
                if (ns, name) in self.active:  # a settled one competes for nothing: it is decided alone
                    todo_adapters.extend((ns, t) for t in self._pub_adapters.get((ns, name), ()))
        while todo_adapters:
            akey = todo_adapters.pop()
            if akey in adapters:
                continue
            adapters.add(akey)
            for pkey in self._competitors(akey, now, head):
                if pkey not in pubs:
                    pubs.add(pkey)
                    todo_adapters.extend((pkey[0], t) for t in self._pub_adapters.get(pkey, ()))
        return pubs, adapters

    def _competitors(self, akey: Key, now: datetime | None, head: int | None) -> Iterable[Key]:
        if head is None:
            return self._competing_by_adapter.get(akey, ())
        queue = self.queues.get(akey)
        if queue is None:
            return ()
        if now is not None:
            queue.promote(now)
        return cast(list[Key], queue.head(head))  # the store's queues are keyed by Publication

    def queued(self, key: Key) -> bool:
        """Whether a Publication is due in the queue of every adapter it competes for (it then
        comes up as a head when its turn comes)."""
        names = self._pub_competing.get(key, ())
        return bool(names) and all(self.queues[(key[0], n)].order_of(key) is not None for n in names)

    def mark_queue(self, akey: Key) -> None:
        """An adapter changed in a way its waiting targets may show (paused, circuit, credentials,
        its spec): it and every Publication that competes for it are decided again."""
        self.mark(adapter_key(akey))
        for pkey in self._competing_by_adapter.get(akey, ()):
            self._dirty.add(pub_key(pkey))

    def runs_only(self, key: Key) -> bool:
        """An active Publication each of whose targets has a Job running (or being created): it
        competes for nothing, so a change to it (its Job or Pod progressed) can be decided without
        its adapters' queues, unless that decision records an outcome (see Engine._decide)."""
        return key in self.active and bool(self._pub_adapters.get(key)) and not self._pub_competing.get(key)

    def adapters_of(self, key: Key) -> tuple[Key, ...]:
        """The adapters an active Publication names (none for a settled one)."""
        return tuple((key[0], name) for name in self._pub_adapters.get(key, ()))

    def world_for(self, pubs: set[Key], adapters: set[Key], now: datetime) -> World:
        """The part of the world that ``reconcile`` needs to decide these objects."""
        publications = {k: self.objects["publications"][k] for k in pubs if k in self.objects["publications"]}
        adapter_views = {
            k: self.objects["platformadapters"][k] for k in adapters if k in self.objects["platformadapters"]
        }
        jobs: dict[Key, JobView] = {}
        pods: dict[Key, PodView] = {}
        for view in publications.values():
            for jkey in self._jobs_by_owner.get(view.uid, ()):
                job = self.objects["jobs"].get(jkey)
                if job is None:
                    continue
                jobs[jkey] = job
                for pkey in self._pods_by_job.get(jkey, ()):
                    pod = self.objects["pods"].get(pkey)
                    if pod is not None:
                        pods[pkey] = pod
        loads = {}
        queues = {}
        for akey in adapters:
            queue = self.queues.get(akey)
            if queue is not None:
                queue.promote(now)
                queues[akey] = queue
            view = adapter_views.get(akey)
            window = view.rate_window if view is not None else None
            since = now - timedelta(seconds=window) if window else now
            loads[akey] = self._adapter_jobs[akey].load(since) if akey in self._adapter_jobs else AdapterLoad(0, ())
        return World(
            publications=publications,
            adapters=adapter_views,
            jobs=jobs,
            pods=pods,
            secrets=dict(self.secrets),
            job_starts={k: self.job_starts[k] for k in jobs if k in self.job_starts},  # not every Job's
            loads=loads,
            dead_letters={k: len(self._dead_by_adapter.get(k, ())) for k in adapters},
            queues=queues,
            create_failures={k: m for k, (m, _) in self.create_failures.items()},
        )

    def snapshot(self) -> World:
        """The whole world (tests and tools; the engine works on ``world_for``)."""
        return World(
            publications=dict(self.objects["publications"]),
            adapters=dict(self.objects["platformadapters"]),
            jobs=dict(self.objects["jobs"]),
            pods=dict(self.objects["pods"]),
            secrets=dict(self.secrets),
            job_starts=dict(self.job_starts),
        )

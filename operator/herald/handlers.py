"""kopf registrations. Thin: they feed the store and start/stop the engine."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import kopf

from .config import OperatorConfig
from .engine import SELECTOR, Engine
from .informer import JOBS, PODS, Informer
from .kube import Kube
from .leader import LeaderElector, LeaseSettings
from .store import Store

log = logging.getLogger("herald")


class _Backoffs:
    """kopf's retry delays for failed API requests: short, and never exhausted, so a watch
    whose API server is unreachable keeps trying (it must not give up and stop the operator)
    and reconnects within a few seconds of the network coming back."""

    def __iter__(self) -> Iterator[float]:
        yield from (0.5, 1.0, 2.0)
        yield from itertools.repeat(3.0)


class _NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """Herald registers only event handlers, never on.create/on.update: kopf's per-event diff
    base (a deep copy of each whole object, to detect changes) is never read. Building none
    saved a fifth of the operator's CPU in a burst (docs/performance.md)."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: Any) -> Any:
        return None


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf's settings for Herald: quick to notice a dead connection."""
    settings.posting.level = logging.WARNING
    # Watches end on the server every 10 s and reconnect from their resourceVersion; a stream
    # that stays silent for 15 s (a cut or half-open connection) is dropped and reopened.
    settings.watching.server_timeout = 10
    settings.watching.client_timeout = 20
    settings.watching.connect_timeout = 5
    settings.watching.inactivity_timeout = 15
    settings.networking.connect_timeout = 5
    settings.networking.request_timeout = 30
    settings.networking.error_backoffs = _Backoffs()
    settings.persistence.diffbase_storage = _NoDiffBase()


@kopf.on.startup()
async def _startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure(settings)
    config: OperatorConfig = memo.get("config") or OperatorConfig()
    store = Store(shard=config.shard)
    from . import metrics, observe

    def count_request(method: str, code: str, seconds: float, params: Any) -> None:
        metrics.record_api_request(metrics.api_verb(method, params), code, seconds)

    # Writes and Events each have ``requests`` in flight: a connection for every one of them.
    kube = Kube(concurrency=2 * config.requests, on_request=count_request)

    observer = observe.Observer(config)
    await observer.start()
    engine = Engine(
        kube,
        store,
        config.job_defaults(),
        config.namespaces or None,
        observer=observer,
        settings=config.engine_settings(),
    )
    memo.store, memo.kube, memo.engine, memo.observer = store, kube, engine, observer
    # Jobs and Pods: Herald's own informers, with the server-side label selector (the API server
    # sends only Herald's, so other workloads' Pods cost nothing). They feed a standby's store too.
    memo.informers = [
        Informer(kube, source, engine.namespaces, SELECTOR, store.apply_listing, _recorder(store, observer))
        for source in (JOBS, PODS)
    ]
    for informer in memo.informers:
        informer.start()
    memo.elector = None
    scope = ", ".join(config.namespaces) or "all namespaces"
    if not config.leader_election:
        await engine.start()
        log.info("Herald engine started (%s)", scope)
        return
    # A standby keeps its store fed by the watches but starts the engine (and writes anything)
    # only once it holds the Lease.
    lease = config.lease_name if config.shard is None else f"{config.lease_name}-{config.shard}"
    elector = LeaderElector(kube, LeaseSettings(name=lease, namespace=config.lease_namespace or "default"))
    memo.elector = elector

    async def lead() -> None:
        await engine.start()
        log.info("Herald engine started as the leader (%s)", scope)

    async def campaign() -> None:
        try:
            await elector.run(lead)
        except asyncio.CancelledError:
            raise
        except Exception:  # a standby whose election died would wait, healthy, for ever: restart
            log.exception("leader election failed; stopping")
            await engine.halt()
            os.kill(os.getpid(), signal.SIGTERM)
            return
        if elector.lost.is_set():  # stop acting at once, then exit: Kubernetes restarts a standby
            await engine.halt()
            log.error("stopping: the Lease was lost")
            os.kill(os.getpid(), signal.SIGTERM)

    memo.campaign = asyncio.create_task(campaign(), name="herald-leader-election")
    log.info(
        "Herald waits for the Lease %s/%s as %s (%s)",
        elector.settings.namespace,
        elector.settings.name,
        elector.me,
        scope,
    )


@kopf.on.cleanup()
async def _cleanup(memo: kopf.Memo, **_: Any) -> None:
    campaign = memo.get("campaign")
    if campaign is not None:
        campaign.cancel()
    await memo.engine.stop()
    for informer in memo.get("informers") or []:
        await informer.stop()
    if memo.get("elector") is not None:
        await memo.elector.release()
    await memo.observer.stop()
    await memo.kube.close()


@kopf.on.probe(id="engine")
def _engine_probe(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """/healthz fails (HTTP 500) when the loop died, or stopped ticking while work is due."""
    elector = memo.get("elector")
    if elector is not None and not elector.leading.is_set():
        return {"standby": True, "lease": elector.settings.name}  # waiting for the Lease is healthy
    healthy, why = memo.engine.health()
    if not healthy:
        log.error("liveness: %s", why)
        raise kopf.PermanentError(why)
    return {"ticks": memo.engine.ticks, "lastTick": memo.engine.last_tick}


def _recorder(store: Store, observer: Any) -> Callable[[str, str, dict[str, Any]], None]:
    def record(kind: str, event_type: str, obj: dict[str, Any]) -> None:
        store.apply(kind, event_type, obj)
        observer.watch_event(kind, {"type": event_type, "object": obj})

    return record


def _feed(kind: str):
    async def handler(event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
        store = getattr(memo, "store", None)
        if store is not None and event.get("object"):
            store.apply(kind, event.get("type"), event["object"])
        observer = getattr(memo, "observer", None)
        if observer is not None:
            observer.watch_event(kind, event)

    handler.__name__ = f"_feed_{kind}"
    return handler


@kopf.on.event("", "v1", "namespaces")
async def _feed_namespaces(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Sharding: a namespace that moves into this shard is listed at once; one that moves out is
    dropped (its new shard takes it over)."""
    store, engine = getattr(memo, "store", None), getattr(memo, "engine", None)
    if store is None or engine is None or not event.get("object"):
        return
    if store.apply_namespace(event.get("type"), event["object"]) == "gained":
        log.info("namespace %s joined shard %s", event["object"]["metadata"]["name"], store.shard)
        await engine.resync_soon()


kopf.on.event("herald.dev", "v1alpha1", "publications")(_feed("publications"))
kopf.on.event("herald.dev", "v1alpha1", "platformadapters")(_feed("platformadapters"))
# Jobs and Pods are followed by herald.informer, not kopf (see _startup).

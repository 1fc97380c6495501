"""kopf registrations. Thin: they feed the store and start/stop the engine."""
from __future__ import annotations

import logging
from typing import Any

import kopf

from .config import OperatorConfig
from .engine import Engine
from .kube import Kube
from .store import Store

log = logging.getLogger("herald")


@kopf.on.startup()
async def _startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.WARNING
    settings.batching.batch_window = 0.01
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    config = OperatorConfig.from_env()
    store = Store()
    kube = Kube()
    from . import observe

    observer = observe.Observer(config)
    await observer.start()
    engine = Engine(kube, store, config.job_defaults(), config.namespaces or None, observer=observer)
    memo.store, memo.kube, memo.engine, memo.observer = store, kube, engine, observer
    await engine.start()
    log.info("Herald engine started (%s)", ", ".join(config.namespaces) or "all namespaces")


@kopf.on.cleanup()
async def _cleanup(memo: kopf.Memo, **_: Any) -> None:
    await memo.engine.stop()
    await memo.observer.stop()
    await memo.kube.close()


@kopf.on.probe(id="engine")
def _engine_probe(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    if not memo.engine.healthy:
        raise kopf.PermanentError("the reconcile loop is not running")
    return {"ticks": memo.engine.ticks, "lastTick": memo.engine.last_tick}


def _feed(kind: str):
    async def handler(event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
        store = getattr(memo, "store", None)
        if store is not None and event.get("object"):
            store.apply(kind, event.get("type"), event["object"])

    handler.__name__ = f"_feed_{kind}"
    return handler


kopf.on.event("herald.dev", "v1alpha1", "publications")(_feed("publications"))
kopf.on.event("herald.dev", "v1alpha1", "platformadapters")(_feed("platformadapters"))
kopf.on.event("batch", "v1", "jobs", labels={"herald.dev/publication": kopf.PRESENT})(_feed("jobs"))
kopf.on.event("", "v1", "pods", labels={"herald.dev/publication": kopf.PRESENT})(_feed("pods"))

"""Herald's own list-and-watch of its Jobs and Pods (an informer, as in client-go).

kopf watches the Herald kinds and the namespaces. Jobs and Pods carry most of the watch traffic in
a burst (about nine events per publication), so they come through here instead: listed and
watched with the server-side label selector on the operator's API client, each event decoded
once (orjson) and recorded in the store directly, without kopf's per-object queues and handler
machinery (docs/performance.md has the measurement).

As client-go's reflector: list, then watch from the list's resourceVersion with bookmarks; a
stream the server ends is reopened from the last resourceVersion seen; ``410 Gone`` (the version
is compacted away) lists again; a cut or silent connection is reopened after a short backoff,
never given up. A line that is not a usable event is counted and skipped: it affects nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from . import metrics
from .kube import ApiError, Kube, collection

log = logging.getLogger("herald.informer")

EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})
SERVER_TIMEOUT_SECONDS = 10  # the API server ends each watch after this; it is then reopened
BACKOFFS = (0.5, 1.0, 2.0, 3.0)  # after a failed list or watch; the last one repeats


@dataclass(frozen=True)
class WatchEvent:
    """One event of a watch stream. ``type`` is ADDED, MODIFIED, DELETED, BOOKMARK or ERROR;
    for ERROR, ``code`` is the HTTP status the API server put in it (410: list again)."""

    type: str
    object: dict[str, Any]
    resource_version: str = ""
    code: int = 0


def parse_event(line: bytes | str) -> WatchEvent | None:
    """One line of a watch stream, or None when it is not a usable event (not JSON, not an
    object, an unknown type, no metadata or resourceVersion). Never raises."""
    try:
        data = orjson.loads(line)
    except (orjson.JSONDecodeError, TypeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    kind, obj = data.get("type"), data.get("object")
    if not isinstance(kind, str) or not isinstance(obj, dict):
        return None
    if kind == "ERROR":  # a metav1.Status
        code = obj.get("code")
        return WatchEvent("ERROR", obj, code=code if isinstance(code, int) and not isinstance(code, bool) else 0)
    if kind not in EVENT_TYPES:
        return None
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return None
    rv = meta.get("resourceVersion")
    if not isinstance(rv, str) or not rv:
        return None
    if kind != "BOOKMARK" and not isinstance(meta.get("name"), str):
        return None
    return WatchEvent(kind, obj, rv)


class _Gone(Exception):
    """The watch's resourceVersion is too old (compacted): list again."""


@dataclass(frozen=True)
class Source:
    """What one informer follows: ``kind`` is the store's name for it."""

    kind: str
    group_version: str
    plural: str


JOBS = Source("jobs", "batch/v1", "jobs")
PODS = Source("pods", "v1", "pods")


class Informer:
    """Follows one kind in each namespace (or the whole cluster, namespace None).

    ``on_listing(kind, namespace, listing)`` gets each full list; ``on_event(kind, type, object)``
    each watch event (ADDED, MODIFIED or DELETED)."""

    def __init__(
        self,
        kube: Kube,
        source: Source,
        namespaces: list[str | None],
        selector: str,
        on_listing: Callable[[str, str | None, Mapping[str, Any]], None],
        on_event: Callable[[str, str, dict[str, Any]], None],
        server_timeout: int = SERVER_TIMEOUT_SECONDS,
    ):
        self.kube = kube
        self.source = source
        self.namespaces = namespaces
        self.selector = selector
        self.on_listing = on_listing
        self.on_event = on_event
        self.server_timeout = server_timeout
        self.events = 0
        self.unusable = 0  # lines skipped: not a usable watch event
        self.synced = asyncio.Event()  # every namespace listed once
        self._listed: set[str | None] = set()
        self._tasks: list[asyncio.Task] = []

    def start(self, resource_version: str | None = None) -> None:
        """Follow each namespace: list, then watch. With ``resource_version``, watch from there
        without listing first (a resumed watch; if the version is gone, it lists then)."""
        for ns in self.namespaces:
            self._tasks.append(
                asyncio.create_task(
                    self._follow(ns, resource_version), name=f"herald-informer-{self.source.plural}-{ns or 'all'}"
                )
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _follow(self, namespace: str | None, resource_version: str | None = None) -> None:
        rv = resource_version
        failures = 0
        while True:
            try:
                if rv is None:
                    rv = await self._list(namespace)
                opened, seen = time.monotonic(), self.events
                rv = await self._watch(namespace, rv)
                if self.events == seen and time.monotonic() - opened < self.server_timeout / 2:
                    # An API server ends a stream after timeoutSeconds. One that ends at once with
                    # nothing in it (a broken server or proxy) is waited on as a failure, or the
                    # informer would become a busy loop of watch requests.
                    raise ApiError(0, "the watch stream ended at once, without any event", f"WATCH {namespace}")
                failures = 0
            except asyncio.CancelledError:
                raise
            except _Gone:
                metrics.record_watch_restart(self.source.kind, "expired")
                log.debug("the %s watch expired: listing again", self.source.plural)
                rv = None
            except Exception as e:
                if isinstance(e, ApiError) and e.status == 0:  # cut, refused, or silent too long
                    metrics.record_watch_restart(self.source.kind, "inactive")
                if not isinstance(e, ApiError):
                    log.exception("watching %s failed; watching again", self.source.plural)
                else:
                    log.warning("watching %s failed; watching again: %s", self.source.plural, e)
                await asyncio.sleep(BACKOFFS[min(failures, len(BACKOFFS) - 1)])
                failures += 1

    async def _list(self, namespace: str | None) -> str:
        path = collection(self.source.group_version, self.source.plural, namespace)
        listing = await self.kube.list(path, label_selector=self.selector)
        self.on_listing(self.source.kind, namespace, listing)
        self._listed.add(namespace)
        if self._listed.issuperset(self.namespaces):
            self.synced.set()
        rv = (listing.get("metadata") or {}).get("resourceVersion")
        return rv if isinstance(rv, str) and rv else "0"

    async def _watch(self, namespace: str | None, rv: str) -> str:
        """One watch stream from ``rv``; returns the last resourceVersion it saw."""
        path = collection(self.source.group_version, self.source.plural, namespace)
        params = {
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.server_timeout),
            "labelSelector": self.selector,
        }
        try:
            async with contextlib.aclosing(self.kube.watch(path, params)) as lines:
                async for line in lines:
                    event = parse_event(line)
                    if event is None:
                        self.unusable += 1
                        continue
                    if event.type == "ERROR":
                        if event.code == 410:
                            raise _Gone()
                        raise ApiError(event.code, orjson.dumps(event.object).decode(), f"WATCH {path}")
                    rv = event.resource_version
                    if event.type != "BOOKMARK":
                        self.events += 1
                        try:
                            self.on_event(self.source.kind, event.type, event.object)
                        except Exception:  # one object that cannot be recorded must not stop the watch
                            self.unusable += 1
                            log.exception("cannot record a %s watch event", self.source.plural)
        except ApiError as e:
            if e.status == 410:
                raise _Gone() from None
            raise
        return rv

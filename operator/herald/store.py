"""The in-memory picture of the cluster that decisions are made from.

It is fed by the initial lists and by kopf's watch events, in any order: an object is only
replaced by a newer resourceVersion, and a deletion leaves a tombstone so a late, older copy
cannot bring it back.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Mapping

from .reconciler import World
from .views import AdapterView, JobView, PodView, PublicationView

KINDS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "publications": PublicationView.from_body,
    "platformadapters": AdapterView.from_body,
    "jobs": JobView.from_body,
    "pods": PodView.from_body,
}
TOMBSTONE_SECONDS = 600.0


def _rv(body: Mapping[str, Any]) -> int:
    try:
        return int(body["metadata"].get("resourceVersion") or 0)
    except (KeyError, ValueError):
        return 0


class Store:
    def __init__(self) -> None:
        self.objects: dict[str, dict[tuple[str, str], Any]] = {k: {} for k in KINDS}
        self._tombstones: dict[str, dict[tuple[str, str], tuple[int, float]]] = {k: {} for k in KINDS}
        self.changed = asyncio.Event()
        self.secrets: dict[tuple[str, str], str | None] = {}
        self.job_starts: dict[tuple[str, str], Any] = {}

    def apply(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """Record a watch event or a listed/written object. Returns whether anything changed."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        rv = _rv(body)
        objects, tombs = self.objects[kind], self._tombstones[kind]
        current = objects.get(key)
        if current is not None and rv and current.rv > rv:
            return False
        if event_type == "DELETED":
            objects.pop(key, None)
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
        view = KINDS[kind](body)
        if view is None:
            return False
        objects[key] = view
        self.changed.set()
        return True

    def forget_missing(self, kind: str, listed: set[tuple[str, str]], list_rv: int) -> None:
        """After a full list: drop objects the list no longer has (deleted while nobody watched)."""
        for key in [k for k, v in self.objects[kind].items() if k not in listed and v.rv <= list_rv]:
            del self.objects[kind][key]
            self._tombstones[kind][key] = (list_rv, time.monotonic())

    def gc_tombstones(self) -> None:
        cutoff = time.monotonic() - TOMBSTONE_SECONDS
        for tombs in self._tombstones.values():
            for key in [k for k, (_, at) in tombs.items() if at < cutoff]:
                del tombs[key]

    def snapshot(self) -> World:
        return World(
            publications=dict(self.objects["publications"]),
            adapters=dict(self.objects["platformadapters"]),
            jobs=dict(self.objects["jobs"]),
            pods=dict(self.objects["pods"]),
            secrets=dict(self.secrets),
            job_starts=dict(self.job_starts),
        )

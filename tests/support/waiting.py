"""Waiting without bare sleeps: poll with a deadline, or follow a watch."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    pass


def wait_until(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call ``probe`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
        # A short poll interval bounded by the deadline; this is polling, not synchronisation.
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def watch_until(list_fn: Callable, predicate: Callable[[dict], bool], timeout: float, what: str, **kwargs) -> dict:
    """Follow a list+watch of ``list_fn`` until an object satisfies ``predicate``; returns it."""
    from kubernetes import watch

    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout(f"timed out after {timeout}s waiting for {what}")
        listing = list_fn(_preload_content=False, **kwargs)
        import json

        body = json.loads(listing.data)
        for item in body.get("items", []):
            if predicate(item):
                return item
        w = watch.Watch()
        try:
            for event in w.stream(
                list_fn,
                resource_version=body["metadata"]["resourceVersion"],
                timeout_seconds=max(1, int(remaining)),
                _request_timeout=remaining + 5,
                **kwargs,
            ):
                obj = event["raw_object"]
                if event["type"] in ("ADDED", "MODIFIED") and predicate(obj):
                    return obj
                if time.monotonic() >= deadline:
                    break
        finally:
            w.stop()

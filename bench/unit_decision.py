"""Benchmark: what one decision of an adapter's unit costs, against the length of its queue.

    .venv/bin/python bench/unit_decision.py                 # queues of 100, 1,000 and 10,000

Pure (no cluster): a store holds one adapter (concurrency 1,000, the most a PlatformAdapter may
have), 100 Publications whose Jobs run, and a queue of Q new Publications that all want to start.
Each measured decision is what the engine does when the adapter's unit is decided in a burst: the
unit's closure, its world, and ``reconcile`` with a budget of 32 starts (the engine's default
slice). It is measured twice: as the engine decides it (the head of the adapter's queue, 32
targets in admission order: ``Store.close(..., head=32)``), and over the whole queue (the engine
before the fifth round). Up to 900 queued, all are admitted: 32 start and the rest is decided again on the next
tick (as in bench/publications.py). Past that, the rest waits (ConcurrencyLimit): the waiting
statuses are written once, by a first decision, and the decisions measured find them stored.
Then a running Publication decided alone (its Pod changed), as the engine does.

The burst at N=1000 (bench/publications.py) makes about N/32 such decisions while its queue
drains, so a decision that grows with Q makes the whole burst grow with Q squared: this benchmark
reports each queue length against the smallest, measured in the same run.
Results are printed and written to bench/results/unit-decision.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from herald.jobs import JobDefaults
from herald.reconciler import reconcile
from herald.store import Store
from tests.unit.builders import T0, adapter_body, at, pod_body, publication_body

NS = "bench"
RUNNING = 100
STARTS = 32


def build(queued: int, concurrency: int) -> Store:
    store = Store()
    store.apply("platformadapters", "ADDED", adapter_body("bench", ns=NS, concurrency=concurrency, platform="webhook"))
    for i in range(RUNNING + queued):
        store.apply("publications", "ADDED", publication_body(f"p{i:06d}", ns=NS, targets=["bench"], uid=f"uid-{i}"))
    # The first RUNNING start, their Jobs and Pods exist, and their statuses are written.
    first = {(NS, f"p{i:06d}") for i in range(RUNNING)}
    _, adapters = store.close([("a", NS, "bench")])
    plan = reconcile(store.world_for(first, adapters, T0), T0, JobDefaults(), None, RUNNING)
    rv = 10_000
    for jc in plan.creates:
        job = dict(jc.manifest)
        name = job["metadata"]["name"]
        rv += 2
        job["metadata"] = {**job["metadata"], "uid": f"uid-job-{name}", "resourceVersion": str(rv)}
        job["metadata"]["creationTimestamp"] = "2030-06-01T09:00:00Z"
        job["status"] = {"startTime": "2030-06-01T09:00:00Z", "active": 1}
        store.apply("jobs", "ADDED", job)
        store.apply("pods", "ADDED", pod_body(name, ns=NS, rv=rv + 1))
    write_statuses(store, plan.publication_status)
    return store


def write_statuses(store: Store, statuses: dict) -> None:
    for key, status in statuses.items():
        body = publication_body(key[1], ns=NS, targets=["bench"], uid=f"uid-{int(key[1][1:])}", status=status)
        body["metadata"]["resourceVersion"] = str(store.objects["publications"][key].rv + 1)
        store.apply("publications", "MODIFIED", body)


def timed(fn, repeat: int) -> float:
    started = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - started) / repeat * 1000


def measure(queued: int, concurrency: int, head: int | None) -> float:
    store = build(queued, concurrency)
    now = at(5)

    def unit(head: int | None = head) -> dict:
        pubs, adapters = store.close([("a", NS, "bench")], now, head)
        return reconcile(store.world_for(pubs, adapters, now), now, JobDefaults(), None, STARTS).publication_status

    write_statuses(store, {k: v for k, v in unit(None).items() if v.get("phase") == "Queued"})  # the waiting ones
    return timed(unit, max(3, 20_000 // (queued + RUNNING)) if head is None else 200)


def alone_ms() -> float:
    store = build(100, 1000)
    now = at(5)
    running = (NS, "p000003")

    def alone() -> None:
        world = store.world_for({running}, set(store.adapters_of(running)), now)
        reconcile(replace(world, adapters_read_only=True), now, JobDefaults(), None, STARTS)

    return timed(alone, 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, nargs="+", default=[100, 1000, 10_000])
    args = parser.parse_args()
    rows = []
    for q in args.queues:
        row = {"queue": q, "unit_ms": round(measure(q, 1000, STARTS), 3), "whole_ms": round(measure(q, 1000, None), 2)}
        rows.append(row)
        print(f"queue {q}: a unit decision {row['unit_ms']} ms of CPU (whole queue: {row['whole_ms']} ms)", flush=True)
    for row in rows:
        row["ratio"] = round(row["unit_ms"] / rows[0]["unit_ms"], 2)
        row["whole_ratio"] = round(row["whole_ms"] / rows[0]["whole_ms"], 1)
    alone = round(alone_ms(), 3)
    print(f"a running Publication decided alone: {alone} ms of CPU")
    out = ROOT / "bench" / "results" / "unit-decision.json"
    out.write_text(json.dumps({"running": RUNNING, "starts": STARTS, "rows": rows, "alone_ms": alone}, indent=2) + "\n")
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

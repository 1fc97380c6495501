"""Benchmark: what a tick costs as finished Publications pile up.

    make bench                                  # runs this after bench/publications.py
    .venv/bin/python bench/scale.py             # both parts
    .venv/bin/python bench/scale.py --pure      # the pure engine only (no cluster)

1. **Pure engine** (no cluster, no I/O). A store holding R finished (Published) Publications with
   their Jobs and Pods, for R = 0, 1k, 10k, 100k; one new Publication arrives. The figure is the
   time of what the engine does for it in one tick: take the changed keys, close them over their
   adapters (``Store.close``), build the unit's world (``Store.world_for``) and ``reconcile`` it.
   Reported in ms and as a ratio to R = 0 measured in the same run. For comparison, the old
   design's cost (``reconcile`` of the whole world) is measured at R = 1k and 10k.
2. **In the cluster.** The operator runs as a real process. With 3,000 finished Publications
   retained in its namespace, and then in a fresh namespace with none, the benchmark creates
   publications one at a time and measures (a) the time from the create to its Job existing (seen
   through a watch), and (b) the operator's CPU seconds per new publication (from /proc). Each is
   reported as a ratio: retained / none.

Results are printed and written to bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from herald.durations import format_time
from herald.naming import job_name
from herald.reconciler import reconcile
from herald.store import Store
from tests.unit.builders import T0, adapter_body, job_body, pod_body, publication_body, termination

NS = "bench"
A = "mastodon-main"
RESULTS = ROOT / "bench" / "results"


def finished_publication(i: int) -> tuple[dict, dict, dict]:
    """A Publication published long ago, with its Job and Pod (as the API would hold them)."""
    name = f"old-{i:06d}"
    uid = f"uid-{name}"
    job = job_name(name, A, 1)
    done = format_time(T0 - timedelta(hours=1))
    target = {
        "adapter": A,
        "phase": "Published",
        "reason": "Published",
        "message": "attempt 1 published: 1",
        "attempts": 1,
        "retries": 0,
        "jobName": job,
        "observedAttempt": 1,
        "postId": "1",
        "publishedTime": done,
        "verifyNext": False,
        "budgetStart": 0,
        "failures": {},
        "deadLetter": False,
    }
    status = {
        "phase": "Published",
        "observedGeneration": 1,
        "publishedTargets": 1,
        "totalTargets": 1,
        "attempts": 1,
        "completionTime": done,
        "targets": [target],
        "conditions": [],
    }
    pub = publication_body(name, ns=NS, uid=uid, rv=10 + i, created=T0 - timedelta(days=1), status=status)
    jb = job_body(job, ns=NS, owner_uid=uid, created=T0 - timedelta(days=1), complete=True, rv=10 + i)
    pod = pod_body(
        job,
        ns=NS,
        name=f"{job}-pod",
        phase="Succeeded",
        rv=10 + i,
        terminated=termination({"outcome": "published", "postId": "1"}, 0),
    )
    return pub, jb, pod


def build_store(retained: int) -> Store:
    store = Store()
    store.apply("platformadapters", "ADDED", adapter_body(A, ns=NS, rv=1, concurrency=100))
    for i in range(retained):
        pub, job, pod = finished_publication(i)
        store.apply("publications", "ADDED", pub)
        store.apply("jobs", "ADDED", job)
        store.apply("pods", "ADDED", pod)
    store.take_dirty()
    return store


def tick_for_new(store: Store, n: int) -> float:
    """Seconds the engine spends deciding one new Publication (the tick's pure part)."""
    body = publication_body(f"new-{n}", ns=NS, uid=f"uid-new-{n}", rv=10_000_000 + n, created=T0)
    store.apply("publications", "ADDED", body)
    started = time.perf_counter()
    seeds = store.take_dirty()
    for seed in sorted(seeds):
        pubs, adapters = store.close([seed])
        plan = reconcile(store.world_for(pubs, adapters, T0), T0)
        assert len(plan.creates) == 1, plan.creates
    elapsed = time.perf_counter() - started
    store.apply("publications", "DELETED", body)  # keep R fixed between samples
    store.take_dirty()
    return elapsed


def pure(sizes: list[int], samples: int) -> dict:
    out: dict = {"tick_ms": {}, "whole_world_ms": {}}
    for r in sizes:
        gc.collect()
        store = build_store(r)
        times = sorted(tick_for_new(store, n) for n in range(samples))
        out["tick_ms"][str(r)] = {"median": statistics.median(times) * 1000, "p90": times[int(0.9 * len(times))] * 1000}
        if r in (1000, 10_000):  # the old design: reconcile the whole world every tick
            store.apply("publications", "ADDED", publication_body("new-x", ns=NS, uid="uid-new-x", rv=20_000_000))
            whole = []
            for _ in range(3):
                t = time.perf_counter()
                reconcile(store.snapshot(), T0)
                whole.append(time.perf_counter() - t)
            out["whole_world_ms"][str(r)] = statistics.median(whole) * 1000
        print(
            f"R={r:>7}: tick {out['tick_ms'][str(r)]['median']:.3f} ms (p90 {out['tick_ms'][str(r)]['p90']:.3f})"
            + (
                f"; whole-world reconcile {out['whole_world_ms'][str(r)]:.0f} ms"
                if str(r) in out["whole_world_ms"]
                else ""
            ),
            flush=True,
        )
        del store
    base = out["tick_ms"]["0"]["median"]
    out["ratio_to_empty"] = {r: v["median"] / base for r, v in out["tick_ms"].items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pure", action="store_true", help="only the pure-engine part (no cluster)")
    parser.add_argument("--sizes", default="0,1000,10000,100000")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--retained", type=int, default=3000, help="finished publications kept, in the cluster part")
    parser.add_argument("--new", type=int, default=20, help="new publications measured per cluster run")
    parser.add_argument("--crds", default=str(ROOT / "crds"), help="directory of CRDs to apply, in the cluster part")
    args = parser.parse_args()
    results: dict = {"pure": pure([int(s) for s in args.sizes.split(",")], args.samples)}
    if not args.pure:
        from bench.scale_cluster import cluster_part

        results["cluster"] = cluster_part(args.retained, args.new, crds=Path(args.crds))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: N single-target publications applied at once against the local cluster.

    make bench                      # N=1000
    .venv/bin/python bench/publications.py --n 200

Reports, in one run on the same cluster:
  1. the time from the first Publication create until every first-attempt Job exists, as a ratio
     to a floor over the same window: the same apply, and a minimal async client (herald.kube, the same
     concurrency) creating each publication's Job and patching its status as soon as it exists
     (also reported: the earlier floor, timing only the Jobs and patches of existing Publications);
  2. API writes per publication, from kube-apiserver's own apiserver_request_total (plus the
     Events Herald posted, counted by listing them);
  3. the operator's peak RSS;
  4. Event lag in the burst: from the decision that made an Event to the API server accepting it
     (p50 and p99 of the operator's herald_decision_event_lag_seconds, interpolated within its
     buckets as PromQL's histogram_quantile does), and the p99 of each pool's wait for a request
     slot (herald_api_request_slot_wait_seconds: is HERALD_REQUESTS the bound?).
Lone publications (one at a time, as most teams publish) run first, on the idle operator, so the
burst's trailing writes cannot be counted as theirs.
Results are printed and written to bench/results/publications-<N>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from herald.informer import JOBS, Informer, Source
from herald.jobs import LABEL_PUBLICATION as SELECTOR
from herald.jobs import JobDefaults, build_job_spec
from herald.kube import Kube, collection

GV = "herald.dev/v1alpha1"
SUCCESS = '{"outcome":"published","postId":"1"}'
WRITE_VERBS = {"POST", "PATCH", "PUT", "DELETE", "CREATE", "UPDATE", "APPLY"}


def kubectl(*args: str, input: str | None = None) -> str:
    return subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, check=True).stdout


async def apiserver_writes(kube: Kube) -> dict[tuple[str, str, str], float]:
    """Write requests by (verb, resource, subresource), from the API server's metrics."""
    out: dict[tuple[str, str, str], float] = {}
    for line in (await kube.text("/metrics")).splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if labels.get("verb") not in WRITE_VERBS:
            continue
        key = (labels["verb"], labels.get("resource", ""), labels.get("subresource", ""))
        out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def delta(after: dict, before: dict) -> dict:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


async def create_namespace(kube: Kube, name: str) -> None:
    await kube.create("/api/v1/namespaces", {"metadata": {"name": name, "labels": {"herald.dev/bench": "true"}}})


async def settle(kube: Kube, own: set[str] | None = None, timeout: float = 600) -> float:
    """Wait until no benchmark namespace is left: a deleted one is terminating while the garbage
    collector deletes its thousands of Jobs and Pods, which keeps the API server busy, and a run
    measured during that is measured on a loaded cluster. At the start of a run (``own`` None) the
    namespaces an interrupted run left behind are deleted; at its end (``own``: this run's) only
    those are waited for, never another run's. Returns the seconds waited."""
    start = time.monotonic()
    while True:
        left = (await kube.list("/api/v1/namespaces", label_selector="herald.dev/bench"))["items"]
        if own is not None:
            left = [ns for ns in left if ns["metadata"]["name"] in own]
        if not left:
            return time.monotonic() - start
        for ns in left:
            if own is None and not ns["metadata"].get("deletionTimestamp"):
                print(f"deleting {ns['metadata']['name']}, left behind by an interrupted run", flush=True)
                await kube.delete(f"/api/v1/namespaces/{ns['metadata']['name']}")
        if time.monotonic() - start > timeout:
            raise TimeoutError("benchmark namespaces are still being deleted")
        await asyncio.sleep(2)


def adapter(paused: bool = False) -> dict:
    return {
        "apiVersion": GV,
        "kind": "PlatformAdapter",
        "metadata": {"name": "bench"},
        "spec": {
            "platform": "webhook",
            "concurrency": 1000,
            "paused": paused,
            "jobTemplate": {"podAnnotations": {"kwok.herald.dev/message": SUCCESS}, "ttlSecondsAfterFinished": 3600},
        },
    }


def publication(i: int) -> dict:
    return {
        "apiVersion": GV,
        "kind": "Publication",
        "metadata": {"name": f"pub-{i:05d}"},
        "spec": {"content": {"text": f"benchmark publication {i}"}, "targets": [{"adapter": "bench"}]},
    }


async def gather_bounded(coros, limit: int = 64):
    sem = asyncio.Semaphore(limit)

    async def run(c):
        async with sem:
            return await c

    return await asyncio.gather(*(run(c) for c in coros))


class Tally:
    """Follows what an informer reports (on a client of its own) and tells, to the event and not
    to a poll's interval, when ``n`` distinct names have been counted. ``name_of(event_type,
    object)`` gives the name an object counts as, or None when it does not count."""

    def __init__(self, n: int, name_of: Callable[[str, dict], str | None]):
        self.n, self.name_of, self.names, self.done = n, name_of, set(), asyncio.Event()
        self.at = 0.0

    def listed(self, kind: str, namespace: str | None, listing: dict) -> None:
        for obj in listing.get("items") or []:
            self.changed(kind, "ADDED", obj)

    def changed(self, kind: str, event_type: str, obj: dict) -> None:
        name = self.name_of(event_type, obj)
        if name is not None:
            self.names.add(name)
            if len(self.names) >= self.n and not self.done.is_set():
                self.at = time.monotonic()
                self.done.set()


def burst_job(event_type: str, job: dict) -> str | None:
    """A first-attempt Job of a burst Publication counts as its Publication (the lone
    publications' Jobs are in the same namespace and do not count)."""
    owner = (job["metadata"].get("labels") or {}).get(SELECTOR, "")
    return owner if event_type != "DELETED" and owner.startswith("pub-") else None


def burst_published(event_type: str, pub: dict) -> str | None:
    """A burst Publication counts once it is Published."""
    name = pub["metadata"]["name"]
    return name if name.startswith("pub-") and (pub.get("status") or {}).get("phase") == "Published" else None


async def wait_jobs(ns: str, n: int, timeout: float) -> float:
    """Until the burst's n first-attempt Jobs exist; returns the monotonic time the n-th was seen."""
    jobs = Tally(n, burst_job)
    follower = Kube()
    informer = Informer(follower, JOBS, [ns], SELECTOR, jobs.listed, jobs.changed)
    informer.start()
    try:
        await asyncio.wait_for(jobs.done.wait(), timeout)
    except TimeoutError:
        raise TimeoutError(f"only {len(jobs.names)} of {n} jobs after {timeout}s") from None
    finally:
        await informer.stop()
        await follower.close()
    return jobs.at


def _floor_job(ns: str, p: dict) -> dict:
    meta = {"namespace": ns, "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}
    return build_job_spec(meta, p["spec"], "bench", adapter()["spec"], 1, False, JobDefaults())


async def _floor_writes(kube: Kube, ns: str, p: dict) -> None:
    """What an operator must write for one new publication: its Job and one status patch."""
    await kube.create(collection("batch/v1", "jobs", ns), _floor_job(ns, p))
    await kube.merge_patch(
        f"/apis/{GV}/namespaces/{ns}/publications/{p['metadata']['name']}/status",
        {"status": {"phase": "Publishing", "attempts": 1}},
    )


def _complete(job: dict) -> bool:
    status = job.get("status") or {}
    return bool(status.get("succeeded")) or any(
        c.get("type") == "Complete" and c.get("status") == "True" for c in status.get("conditions") or []
    )


async def floor(kube: Kube, ns: str, n: int, concurrency: int, timeout: float) -> tuple[float, float]:
    """The floor, measured over the same window as Herald: from the first Publication create until
    every Job exists. The same apply (N creates, ``concurrency`` in flight) runs, and a minimal
    client writes each publication's Job and status as soon as its create returns (another
    ``concurrency`` in flight on a client of its own, as Herald's HERALD_REQUESTS writes, 64; its
    Events have as many slots of their own); no Events, no decisions.

    Returns that time and the end-to-end floor: until every Job has completed and the client,
    following its Jobs with Herald's own informer, has marked its Publication published (one more
    status patch each). This one includes the cluster's own work for the Jobs (their Pods, the
    Job controller, the scheduler), as Herald's time until all are published does."""
    await kube.create(collection(GV, "platformadapters", ns), adapter(paused=True))
    apply, writes = asyncio.Semaphore(concurrency), asyncio.Semaphore(concurrency)
    operator = Kube(concurrency=concurrency)
    marked: set[str] = set()
    seen_complete: set[str] = set()
    all_marked = asyncio.Event()
    tasks: set[asyncio.Task] = set()

    async def mark(name: str) -> None:
        async with writes:
            await operator.merge_patch(
                f"/apis/{GV}/namespaces/{ns}/publications/{name}/status", {"status": {"phase": "Published"}}
            )
        marked.add(name)
        if len(marked) >= n:
            all_marked.set()

    def job_changed(kind: str, event_type: str, job: dict) -> None:
        name = (job["metadata"].get("labels") or {}).get(SELECTOR, "")
        if event_type != "DELETED" and name and name not in seen_complete and _complete(job):
            seen_complete.add(name)  # marked once
            task = asyncio.create_task(mark(name))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    def jobs_listed(kind: str, namespace: str | None, listing: dict) -> None:
        for job in listing.get("items") or []:
            job_changed(kind, "ADDED", job)

    informer = Informer(operator, JOBS, [ns], SELECTOR, jobs_listed, job_changed)
    informer.start()

    async def one(i: int) -> None:
        async with apply:
            p = await kube.create(collection(GV, "publications", ns), publication(i))
        async with writes:
            await _floor_writes(operator, ns, p)

    try:
        await informer.synced.wait()
        start = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(n)))
        jobs = time.monotonic() - start
        await asyncio.wait_for(all_marked.wait(), timeout)
        return jobs, time.monotonic() - start
    finally:
        await informer.stop()
        await operator.close()


async def floor_jobs_only(kube: Kube, ns: str, n: int, concurrency: int) -> float:
    """The earlier floor: the Publications exist before the clock starts; only the N Jobs and N
    status patches are timed (Herald's window includes the apply, so this one is lower)."""
    await kube.create(collection(GV, "platformadapters", ns), adapter(paused=True))
    pubs = await gather_bounded(
        (kube.create(collection(GV, "publications", ns), publication(i)) for i in range(n)), concurrency
    )
    start = time.monotonic()
    await gather_bounded((_floor_writes(kube, ns, p) for p in pubs), concurrency)
    return time.monotonic() - start


async def wait_complete(kube: Kube, ns: str, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        listing = await kube.list(collection("batch/v1", "jobs", ns), label_selector=SELECTOR)
        if sum(1 for j in listing["items"] if _complete(j)) >= n:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Jobs in {ns} did not complete")
        await asyncio.sleep(2)


async def herald_events(kube: Kube, ns: str) -> list[dict]:
    events = await kube.list(f"/api/v1/namespaces/{ns}/events")
    return [e for e in events["items"] if (e.get("source") or {}).get("component") == "herald"]


def operator_writes(writes: dict, events: int, n: int) -> dict[str, float]:
    """Herald's writes per publication, by resource."""
    counts = {
        "jobs": writes.get(("POST", "jobs", ""), 0),
        "publications/status": writes.get(("PATCH", "publications", "status"), 0),
        "publications": writes.get(("PATCH", "publications", ""), 0),
        "platformadapters/status": writes.get(("PATCH", "platformadapters", "status"), 0),
        "events": events,
    }
    return {k: v / n for k, v in counts.items()}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_peak_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def histograms(port: int) -> dict[str, dict[float, float]]:
    """Cumulative bucket counts, by upper bound, of the histograms the burst reports: the Event lag
    (herald_decision_event_lag_seconds) and each pool's request-slot wait
    (herald_api_request_slot_wait_seconds)."""
    async with httpx.AsyncClient() as h:
        text = (await h.get(f"http://127.0.0.1:{port}/metrics")).text
    out: dict[str, dict[float, float]] = {}
    for line in text.splitlines():
        if line.startswith("herald_decision_event_lag_seconds_bucket{"):
            name = "event_lag"
        elif line.startswith("herald_api_request_slot_wait_seconds_bucket{"):
            pool = re.search(r'pool="([^"]+)"', line)
            name = f"slot_wait_{pool.group(1) if pool else ''}"
        else:
            continue
        le = re.search(r'le="([^"]+)"', line)
        if le:
            out.setdefault(name, {})[float(le.group(1))] = float(line.rsplit(" ", 1)[1])
    return out


def quantile(q: float, after: dict[float, float], before: dict[float, float]) -> float | None:
    """histogram_quantile over the difference of two scrapes (linear within a bucket)."""
    buckets = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = le, count
    return lower


async def publish_one_at_a_time(kube: Kube, ns: str, count: int) -> None:
    for i in range(count):
        name = f"lone-{i:03d}"
        await kube.create(collection(GV, "publications", ns), {**publication(0), "metadata": {"name": name}})
        deadline = time.monotonic() + 60
        while (await kube.get(f"/apis/{GV}/namespaces/{ns}/publications/{name}")).get("status", {}).get(
            "phase"
        ) != "Published":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} was not published")
            await asyncio.sleep(0.2)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--lone", type=int, default=10, help="publications then made one at a time")
    parser.add_argument(
        "--operator-src",
        default=None,
        help="run the operator from this source tree (its operator/ directory first on PYTHONPATH), "
        "for a same-run comparison with another commit: git worktree add /tmp/base <commit>",
    )
    args = parser.parse_args()
    n = args.n
    os.environ.setdefault("KUBECONFIG", str(ROOT / ".cluster" / "kubeconfig"))
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/publications.herald.dev", "--timeout=60s")
    kube = Kube(concurrency=args.concurrency)
    waited = await settle(kube)
    if waited > 1:
        print(f"waited {waited:.0f}s for an earlier run's namespaces to be deleted", flush=True)
    stamp = datetime.now(UTC).strftime("%H%M%S")

    # 1. The floor, in its own namespace.
    floor_ns = f"bench-floor-{stamp}"
    await create_namespace(kube, floor_ns)
    t_floor, t_floor_e2e = await floor(kube, floor_ns, n, args.concurrency, args.timeout)
    print(f"floor: {n} publications applied, their {n} Jobs + {n} status patches written in {t_floor:.2f}s", flush=True)
    print(f"floor, end to end: every Job complete and its publication marked published after {t_floor_e2e:.2f}s")
    floor_old_ns = f"bench-floor-jobs-{stamp}"
    await create_namespace(kube, floor_old_ns)
    t_floor_old = await floor_jobs_only(kube, floor_old_ns, n, args.concurrency)
    print(f"floor (publications made beforehand): {n} Jobs + {n} status patches in {t_floor_old:.2f}s", flush=True)
    await wait_complete(kube, floor_old_ns, n, args.timeout)  # Herald starts on a quiet cluster, as the floor did

    # 2. Herald, in another namespace, as a real process.
    ns = f"bench-herald-{stamp}"
    await create_namespace(kube, ns)
    await kube.create(collection(GV, "platformadapters", ns), adapter())
    log = open(ROOT / "bench" / "results" / f"operator-{n}.log", "w")  # noqa: SIM115 - the operator's lifetime
    env = dict(os.environ, HERALD_METRICS_PORT="18090", PYTHONUNBUFFERED="1")
    if args.operator_src:
        src = str(Path(args.operator_src).resolve() / "operator")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    op = subprocess.Popen(
        [sys.executable, "-m", "herald", "-n", ns, "--health-port", "18091"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as h:
            while True:
                try:
                    if (await h.get("http://127.0.0.1:18091/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("operator did not become healthy")
                await asyncio.sleep(0.1)
        # Lone publications first, on the idle operator: nothing earlier can add writes to them.
        lone_before = await apiserver_writes(kube)
        await publish_one_at_a_time(kube, ns, args.lone)
        await asyncio.sleep(2)  # their held writes (the 10 s coalescing window ends at the outcome)
        lone = delta(await apiserver_writes(kube), lone_before)
        lone_events = len(await herald_events(kube, ns))
        hist_before = await histograms(18090)
        cpu_before = cpu_seconds(op.pid)
        before = await apiserver_writes(kube)
        published = Tally(n, burst_published)
        follower = Kube()
        pubs = Informer(
            follower, Source("publications", GV, "publications"), [ns], "", published.listed, published.changed
        )
        pubs.start()
        await pubs.synced.wait()
        start = time.monotonic()
        watcher = asyncio.create_task(wait_jobs(ns, n, args.timeout))
        await gather_bounded(
            (kube.create(collection(GV, "publications", ns), publication(i)) for i in range(n)), args.concurrency
        )
        applied = time.monotonic() - start
        t_herald = await watcher - start
        print(
            f"herald: applied {n} publications in {applied:.2f}s; every first-attempt Job existed after "
            f"{t_herald:.2f}s",
            flush=True,
        )
        try:
            await asyncio.wait_for(published.done.wait(), args.timeout)
        finally:
            await pubs.stop()
            await follower.close()
        t_published = published.at - start
        # Let trailing status writes (adapter queue counts) land before reading the counters.
        await asyncio.sleep(2)
        writes = delta(await apiserver_writes(kube), before)
        rss = rss_peak_mib(op.pid)
        cpu_burst = cpu_seconds(op.pid) - cpu_before
        hist_after = await histograms(18090)
        burst_events = len(await herald_events(kube, ns)) - lone_events
    finally:
        op.send_signal(signal.SIGTERM)
        try:
            op.wait(timeout=20)
        except subprocess.TimeoutExpired:
            op.kill()

    per_pub = operator_writes(writes, burst_events, n)
    total = sum(per_pub.values())
    lone_per_pub = operator_writes(lone, lone_events, args.lone)

    def burst_quantile(q: float, name: str) -> float | None:
        return quantile(q, hist_after.get(name, {}), hist_before.get(name, {}))

    result = {
        "n": n,
        "operator_src": args.operator_src or str(ROOT),
        "concurrency": args.concurrency,
        "floor_seconds": round(t_floor, 3),
        "herald_all_jobs_seconds": round(t_herald, 3),
        "ratio": round(t_herald / t_floor, 3),
        "floor_end_to_end_seconds": round(t_floor_e2e, 3),
        "ratio_end_to_end": round(t_published / t_floor_e2e, 3),
        "floor_jobs_only_seconds": round(t_floor_old, 3),
        "ratio_to_jobs_only_floor": round(t_herald / t_floor_old, 3),
        "apply_seconds": round(applied, 3),
        "all_published_seconds": round(t_published, 3),
        "writes_per_publication": round(total, 3),
        "writes_per_publication_by_resource": {k: round(v, 3) for k, v in per_pub.items()},
        "lone_publications": args.lone,
        "lone_writes_per_publication": round(sum(lone_per_pub.values()), 3),
        "lone_writes_by_resource": {k: round(v, 3) for k, v in lone_per_pub.items()},
        "operator_peak_rss_mib": round(rss, 1),
        "operator_cpu_seconds_burst": round(cpu_burst, 2),
        "operator_cpu_share_of_one_core_burst": round(cpu_burst / t_published, 3),
        "burst_event_lag_p50_seconds": _round(burst_quantile(0.5, "event_lag")),
        "burst_event_lag_p99_seconds": _round(burst_quantile(0.99, "event_lag")),
        "burst_slot_wait_p99_seconds": {
            pool: _round(burst_quantile(0.99, f"slot_wait_{pool}")) for pool in ("writes", "events")
        },
        "apiserver_write_deltas": {"/".join(k): v for k, v in sorted(writes.items())},
    }
    print(json.dumps(result, indent=2))
    (ROOT / "bench" / "results" / f"publications-{n}.json").write_text(json.dumps(result, indent=2))
    for name in (floor_ns, floor_old_ns, ns):
        await kube.delete(f"/api/v1/namespaces/{name}")
    await settle(kube, {floor_ns, floor_old_ns, ns})  # the next run starts on an idle cluster
    await kube.close()


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


if __name__ == "__main__":
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    asyncio.run(main())

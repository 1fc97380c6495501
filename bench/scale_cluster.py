"""Part 2 of bench/scale.py, in the cluster: what a new publication costs the operator when many
finished ones are retained.

Two runs, one after the other on the same cluster, each in a fresh namespace with one
PlatformAdapter (webhook platform, concurrency 1000, kwok-simulated success):

- **A (retained):** ``retained`` finished Publications are created first, each with the status a
  published Publication holds (written to the status subresource, 64 requests in flight; the
  status is the operator's own fixed point, so the operator finds nothing to write for them);
- **B (baseline):** none.

Then the operator is started as a real process scoped to the namespace; the run waits for
/healthz (the startup time) and for its CPU use to go idle, reads its RSS, and creates ``new``
Publications one at a time. For each, the latency is the time from just before the create to its
Job being seen through a watch (opened before the create); the next one is created once it is
Published. The operator's CPU seconds (utime + stime, /proc/<pid>/stat) from just before the
first create to just after the last Published, divided by ``new``, is its CPU per publication.

Reported: median and p90 latency, CPU per publication, RSS after settling and startup time per
run, and the ratios A / B (targets: median latency ≤ 1.5, CPU per publication ≤ 2); also the
operator's reconcile ticks (from its own metrics) while settling and while measuring. The local
cluster is shared: when someone applies different CRDs during a measurement (the API server then
re-initializes the resource's storage and refuses watches for a while), the measurement is
discarded (kept in the results) and repeated, up to MEASURE_TRIES times. The operator's logs go to
bench/results/scale-operator-<run>.log; the namespaces are deleted at the end (without waiting).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from bench.publications import GV, SUCCESS, create_namespace, gather_bounded, kubectl
from herald.durations import format_time
from herald.kube import ApiError, Kube, collection
from herald.naming import job_name
from herald.reconciler import World, clean, reconcile, settled
from herald.views import AdapterView, PublicationView

RESULTS = ROOT / "bench" / "results"
ADAPTER = "bench"
SELECTOR = "herald.dev/publication"
CLK_TCK = os.sysconf("SC_CLK_TCK")

LATENCY_TARGET = 1.5
CPU_TARGET = 2.0
IDLE_WINDOW = 2.0  # seconds
IDLE_CPU = 0.05  # CPU seconds over IDLE_WINDOW below which the operator counts as idle
SETTLE_TIMEOUT = 600.0
HEALTH_TIMEOUT = 180.0
JOB_TIMEOUT = 120.0
PUBLISHED_TIMEOUT = 180.0
MEASURE_TRIES = 3  # the measurement is repeated when someone changed the CRDs during it


# -- objects ------------------------------------------------------------------------------------
def adapter_body() -> dict:
    return {
        "apiVersion": GV,
        "kind": "PlatformAdapter",
        "metadata": {"name": ADAPTER},
        "spec": {
            "platform": "webhook",
            "concurrency": 1000,
            "jobTemplate": {"podAnnotations": {"kwok.herald.dev/message": SUCCESS}, "ttlSecondsAfterFinished": 3600},
        },
    }


def publication_body(name: str) -> dict:
    return {
        "apiVersion": GV,
        "kind": "Publication",
        "metadata": {"name": name},
        "spec": {"content": {"text": f"scale benchmark publication {name}"}, "targets": [{"adapter": ADAPTER}]},
    }


def published_status(pub: Mapping[str, Any], adapter: Mapping[str, Any], now: datetime) -> dict:
    """The status a Publication holds once its one target published on the first attempt.

    Starts from the fields a published target has and lets the operator's own ``reconcile`` fill
    in the rest (conditions, fresh-target defaults) until it has nothing left to write: so the
    operator, when it starts, finds these Publications settled and up to date."""
    name = pub["metadata"]["name"]
    done = format_time(now)
    target = {
        "adapter": ADAPTER,
        "phase": "Published",
        "reason": "Published",
        "message": "attempt 1 published: 1",
        "attempts": 1,
        "retries": 0,
        "observedAttempt": 1,
        "deadLetter": False,
        "jobName": job_name(name, ADAPTER, 1),
        "postId": "1",
        "publishedTime": done,
    }
    status: dict = {
        "phase": "Published",
        "observedGeneration": pub["metadata"]["generation"],
        "publishedTargets": 1,
        "totalTargets": 1,
        "attempts": 1,
        "completionTime": done,
        "targets": [target],
    }
    adapter_view = AdapterView.from_body(adapter)
    for _ in range(4):
        view = PublicationView.from_body({**pub, "status": status})
        if not settled(view):
            raise RuntimeError(f"the seeded status of {name} is not settled: {status}")
        world = World(publications={view.key: view}, adapters={adapter_view.key: adapter_view}, jobs={}, pods={})
        plan = reconcile(world, now)
        if plan.creates or plan.deletes or plan.deletes_publications:
            raise RuntimeError(f"the operator would act on the seeded {name}: {plan}")
        new = plan.publication_status.get(view.key)
        if new is None:
            return status
        status = {**status, **clean(new)}
    raise RuntimeError(f"no fixed point for the status of {name}")


def operator_would_write(pub: Mapping[str, Any], adapter: Mapping[str, Any]) -> dict | None:
    """What the operator's reconcile would write for a stored Publication (None: nothing)."""
    view = PublicationView.from_body(pub)
    adapter_view = AdapterView.from_body(adapter)
    world = World(publications={view.key: view}, adapters={adapter_view.key: adapter_view}, jobs={}, pods={})
    plan = reconcile(world, datetime.now(UTC))
    new = plan.publication_status.get(view.key)
    return {"settled": settled(view), "status": new} if (new is not None or not settled(view)) else None


# -- /proc ----------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


async def wait_idle(op: subprocess.Popen, timeout: float = SETTLE_TIMEOUT) -> tuple[bool, float]:
    """Poll the operator's CPU time until it grows by less than IDLE_CPU over IDLE_WINDOW.
    Returns (idle reached, CPU seconds over the last window)."""
    deadline = time.monotonic() + timeout
    samples: deque[tuple[float, float]] = deque()
    while True:
        if op.poll() is not None:
            raise RuntimeError(f"the operator exited ({op.returncode}) while settling")
        now, cpu = time.monotonic(), cpu_seconds(op.pid)
        samples.append((now, cpu))
        while len(samples) > 1 and now - samples[1][0] >= IDLE_WINDOW:
            samples.popleft()
        if now - samples[0][0] >= IDLE_WINDOW:
            used = cpu - samples[0][1]
            if used < IDLE_CPU:
                return True, used
            if now > deadline:
                return False, used
        await asyncio.sleep(0.1)  # polling /proc, not the cluster


# -- watches --------------------------------------------------------------------------------------
async def watch_until(
    kube: Kube,
    path: str,
    params: Mapping[str, str],
    pred: Callable[[dict], bool],
    timeout: float,
    ready: asyncio.Event | None = None,
) -> tuple[dict, float]:
    """List, then watch from the list's resourceVersion, until an object satisfies ``pred``.
    Returns it and the monotonic time it was seen. ``ready`` is set once the watch is open."""
    deadline = time.monotonic() + timeout
    rv: str | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"nothing in {path} ({params}) matched within {timeout:.0f}s")
        if rv is None:
            listing = await kube.request("GET", path, params=dict(params))
            for obj in listing.get("items") or []:
                if pred(obj):
                    if ready is not None:
                        ready.set()
                    return obj, time.monotonic()
            rv = listing["metadata"]["resourceVersion"]
        # The watch resumes from the list's resourceVersion: nothing after the list is missed.
        if ready is not None:
            ready.set()
        query = {
            **params,
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(max(1, min(60, int(remaining)))),
        }
        try:
            async for line in kube.watch(path, query, read_timeout=remaining + 5):
                ev = json.loads(line)
                obj = ev.get("object") or {}
                if ev.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        rv = None
                        break
                    raise RuntimeError(f"watch {path}: {obj}")
                rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                if ev.get("type") in ("ADDED", "MODIFIED") and pred(obj):
                    return obj, time.monotonic()
        except ApiError as e:
            if e.status != 410:
                raise
            rv = None


def is_published(obj: Mapping[str, Any]) -> bool:
    return (obj.get("status") or {}).get("phase") == "Published"


# -- the operator -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def wait_healthy(op: subprocess.Popen, port: int, log: Path, timeout: float = HEALTH_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as h:
        while True:
            if op.poll() is not None:
                raise RuntimeError(f"the operator exited ({op.returncode}) before /healthz:\n{log_tail(log)}")
            try:
                if (await h.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the operator did not become healthy in {timeout:.0f}s:\n{log_tail(log)}")
            await asyncio.sleep(0.05)  # polling a local port


STOP_TIMEOUT = 20.0


def stop(op: subprocess.Popen) -> str:
    """SIGTERM, then SIGKILL if the operator has not exited within STOP_TIMEOUT. Returns how it ended."""
    if op.poll() is not None:
        return f"had exited ({op.returncode})"
    op.send_signal(signal.SIGTERM)
    try:
        op.wait(timeout=STOP_TIMEOUT)
        return f"SIGTERM (exit {op.returncode})"
    except subprocess.TimeoutExpired:
        op.kill()
        op.wait()
        return f"SIGKILL: still running {STOP_TIMEOUT:.0f}s after SIGTERM"


# -- one run ---------------------------------------------------------------------------------------
async def seed(kube: Kube, ns: str, adapter: dict, retained: int) -> dict:
    """``retained`` finished Publications: create each, then write its status as published."""
    now = datetime.now(UTC)
    path = collection(GV, "publications", ns)

    async def one(i: int) -> None:
        pub = await kube.create(path, publication_body(f"old-{i:05d}"))
        status = published_status(pub, adapter, now)
        await kube.merge_patch(f"{path}/{pub['metadata']['name']}/status", {"status": status})

    started = time.monotonic()
    await gather_bounded((one(i) for i in range(retained)), 64)
    seconds = time.monotonic() - started
    # Read back what the API server kept (a CRD that prunes fields would make them differ).
    listing = await kube.list(path)
    items = listing["items"]
    not_settled = [p["metadata"]["name"] for p in items if not settled(PublicationView.from_body(p))]
    would_write = [p["metadata"]["name"] for p in items[:50] if operator_would_write(p, adapter)]
    sent = published_status(await kube.get(f"{path}/old-00000"), adapter, now) if items else {}
    kept = next((p.get("status") or {} for p in items if p["metadata"]["name"] == "old-00000"), {})
    return {
        "seconds": round(seconds, 2),
        "count": len(items),
        "not_settled": len(not_settled),
        "operator_would_rewrite_of_first_50": len(would_write),
        "status_fields_not_kept": sorted(pruned_paths(sent, kept)),
    }


def pruned_paths(sent: Any, kept: Any, prefix: str = "status") -> list[str]:
    """Fields of ``sent`` that the API server did not keep (pruned by the CRD's schema)."""
    if isinstance(sent, Mapping):
        if not isinstance(kept, Mapping):
            return [prefix]
        return [
            p
            for k, v in sent.items()
            if v is not None
            for p in (pruned_paths(v, kept[k], f"{prefix}.{k}") if k in kept else [f"{prefix}.{k}"])
        ]
    if isinstance(sent, list) and isinstance(kept, list):
        return sorted({p for s, k in zip(sent, kept, strict=False) for p in pruned_paths(s, k, f"{prefix}[]")})
    return []


async def crd_generations(kube: Kube) -> dict[str, int]:
    """metadata.generation of Herald's CRDs: it changes when anyone applies a different CRD, which
    also makes the API server re-initialize that resource's storage (watches get 429s meanwhile)."""
    out = {}
    for plural in ("publications", "platformadapters"):
        crd = await kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.herald.dev")
        out[plural] = crd["metadata"]["generation"]
    return out


async def ticks(port: int) -> tuple[float, float]:
    """The operator's reconcile ticks so far and the seconds they took (its own metrics)."""
    async with httpx.AsyncClient(timeout=5.0) as h:
        text = (await h.get(f"http://127.0.0.1:{port}/metrics")).text
    count = total = 0.0
    for line in text.splitlines():
        if line.startswith("herald_reconcile_time_seconds_count"):
            count += float(line.rsplit(" ", 1)[1])
        elif line.startswith("herald_reconcile_time_seconds_sum"):
            total += float(line.rsplit(" ", 1)[1])
    return count, total


def storage_reinits(log: Path) -> int:
    """Watch requests the API server refused while re-initializing a resource's storage."""
    try:
        return log.read_text(errors="replace").count("storage is (re)initializing")
    except OSError:
        return 0


async def measure(
    kube: Kube, op: subprocess.Popen, ns: str, new: int, prefix: str, metrics_port: int, log_path: Path
) -> dict:
    """``new`` publications one at a time: create -> Job latency, create -> Published, CPU."""
    pubs = collection(GV, "publications", ns)
    jobs = collection("batch/v1", "jobs", ns)
    latencies: list[float] = []
    to_published: list[float] = []
    gen_before = await crd_generations(kube)
    reinits_before = storage_reinits(log_path)
    ticks_before = await ticks(metrics_port)
    cpu_start = cpu_seconds(op.pid)
    wall_start = time.monotonic()
    for i in range(new):
        name = f"{prefix}{i:03d}"
        ready = asyncio.Event()
        job_seen = asyncio.create_task(
            watch_until(kube, jobs, {"labelSelector": f"{SELECTOR}={name}"}, lambda obj: True, JOB_TIMEOUT, ready)
        )
        ready_wait = asyncio.create_task(ready.wait())
        await asyncio.wait({job_seen, ready_wait}, return_when=asyncio.FIRST_COMPLETED)
        ready_wait.cancel()
        if job_seen.done():  # failed before the watch opened (a Job cannot exist yet)
            job_seen.result()
        if op.poll() is not None:
            raise RuntimeError(f"the operator exited ({op.returncode}):\n{log_tail(log_path)}")
        t0 = time.monotonic()
        await kube.create(pubs, publication_body(name))
        _, t_job = await job_seen
        latencies.append(t_job - t0)
        _, t_pub = await watch_until(
            kube, pubs, {"fieldSelector": f"metadata.name={name}"}, is_published, PUBLISHED_TIMEOUT
        )
        to_published.append(t_pub - t0)
    cpu_used = cpu_seconds(op.pid) - cpu_start
    wall = time.monotonic() - wall_start
    ticks_after = await ticks(metrics_port)
    gen_after = await crd_generations(kube)
    ordered = sorted(latencies)
    return {
        "latency_ms": [round(x * 1000, 1) for x in latencies],
        "latency_median_ms": round(statistics.median(ordered) * 1000, 1),
        "latency_p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1000, 1),
        "to_published_median_s": round(statistics.median(to_published), 3),
        "cpu_seconds": round(cpu_used, 3),
        "cpu_seconds_per_publication": round(cpu_used / new, 4),
        "measured_wall_seconds": round(wall, 2),
        "ticks": int(ticks_after[0] - ticks_before[0]),
        "tick_seconds": round(ticks_after[1] - ticks_before[1], 3),
        "crd_generation": {"before": gen_before, "after": gen_after},
        "crd_changed": gen_before != gen_after,
        "watch_refusals_storage_reinit": storage_reinits(log_path) - reinits_before,
    }


async def run(kube: Kube, label: str, ns: str, retained: int, new: int) -> dict:
    await create_namespace(kube, ns)
    adapter = await kube.create(collection(GV, "platformadapters", ns), adapter_body())
    out: dict[str, Any] = {"namespace": ns, "retained": retained, "new": new}
    if retained:
        out["seed"] = await seed(kube, ns, adapter, retained)
        print(
            f"[{label}] seeded {out['seed']['count']} finished publications in {out['seed']['seconds']}s "
            f"(not settled: {out['seed']['not_settled']}; the operator would rewrite "
            f"{out['seed']['operator_would_rewrite_of_first_50']} of the first 50; status fields the API "
            f"server did not keep: {', '.join(out['seed']['status_fields_not_kept']) or 'none'})",
            flush=True,
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS / f"scale-operator-{label}.log"
    health_port, metrics_port = free_port(), free_port()
    env = dict(os.environ, HERALD_METRICS_PORT=str(metrics_port), PYTHONUNBUFFERED="1")
    gen_start = await crd_generations(kube)
    with open(log_path, "w") as log:
        started = time.monotonic()
        op = subprocess.Popen(
            [sys.executable, "-m", "herald", "-n", ns, "--health-port", str(health_port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        await wait_healthy(op, health_port, log_path)
        out["startup_seconds"] = round(time.monotonic() - started, 3)
        idle, last_window = await wait_idle(op)
        out["settle_seconds"] = round(time.monotonic() - started, 3)
        out["settled_idle"] = idle
        out["idle_cpu_seconds_per_2s"] = round(last_window, 3)
        out["startup_cpu_seconds"] = round(cpu_seconds(op.pid), 2)
        out["rss_after_settle_mib"] = round(rss_mib(op.pid), 1)
        n_ticks, tick_s = await ticks(metrics_port)
        out["startup_ticks"], out["startup_tick_seconds"] = int(n_ticks), round(tick_s, 2)
        out["startup_crd_changed"] = gen_start != await crd_generations(kube)
        out["startup_watch_refusals_storage_reinit"] = storage_reinits(log_path)
        print(
            f"[{label}] /healthz 200 after {out['startup_seconds']:.2f}s; "
            f"{'idle' if idle else 'NOT idle'} after {out['settle_seconds']:.1f}s "
            f"({out['startup_cpu_seconds']:.2f} CPU s so far, "
            f"{last_window:.3f} CPU s over the last {IDLE_WINDOW:.0f}s; "
            f"{out['startup_ticks']} ticks taking {out['startup_tick_seconds']} s); "
            f"RSS {out['rss_after_settle_mib']} MiB"
            + ("; the CRDs changed meanwhile (someone applied others)" if out["startup_crd_changed"] else ""),
            flush=True,
        )

        tries = []
        for attempt in range(MEASURE_TRIES):
            m = await measure(kube, op, ns, new, f"new-{attempt}-", metrics_port, log_path)
            tries.append(m)
            if not m["crd_changed"] and not m["watch_refusals_storage_reinit"]:
                break
            print(
                f"[{label}] the CRDs changed during the measurement (generation {m['crd_generation']['before']} -> "
                f"{m['crd_generation']['after']}; {m['watch_refusals_storage_reinit']} watch requests refused "
                f"while the API server re-initialized storage): measuring again",
                flush=True,
            )
            await wait_idle(op)
        out.update(tries[-1])
        out["measurements"] = len(tries)
        if len(tries) > 1:
            out["discarded_measurements"] = tries[:-1]
        out["rss_after_new_mib"] = round(rss_mib(op.pid), 1)
        out["peak_rss_mib"] = round(rss_mib(op.pid, "VmHWM"), 1)
    finally:
        stopping = time.monotonic()
        out["stopped_by"] = stop(op)
        out["stop_seconds"] = round(time.monotonic() - stopping, 2)
    out["operator_log"] = str(log_path.relative_to(ROOT))
    print(
        f"[{label}] {new} new publications: Job after median {out['latency_median_ms']} ms "
        f"(p90 {out['latency_p90_ms']} ms); Published after median {out['to_published_median_s']} s; "
        f"operator CPU {out['cpu_seconds']:.2f} s over {out['measured_wall_seconds']:.1f} s = "
        f"{out['cpu_seconds_per_publication']:.3f} s per publication; {out['ticks']} ticks taking "
        f"{out['tick_seconds']} s" + ("" if not out["crd_changed"] else "; the CRDs changed during it"),
        flush=True,
    )
    return out


def ensure_kubectl() -> None:
    if shutil.which("kubectl"):
        return
    paths = subprocess.run(
        [str(ROOT / "tests" / "cluster" / "build-tools.sh"), "paths"], capture_output=True, text=True, check=True
    ).stdout.strip()
    os.environ["PATH"] = f"{paths}:{os.environ['PATH']}"


async def _cluster_part(retained: int, new: int, crds: Path) -> dict:
    os.environ.setdefault("KUBECONFIG", str(ROOT / ".cluster" / "kubeconfig"))
    ensure_kubectl()
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    for crd in ("publications", "platformadapters"):
        kubectl("wait", "--for=condition=Established", f"crd/{crd}.herald.dev", "--timeout=60s")
    kube = Kube(concurrency=64)
    stamp = datetime.now(UTC).strftime("%H%M%S")
    namespaces = {"retained": f"bench-scale-r{retained}-{stamp}", "baseline": f"bench-scale-r0-{stamp}"}
    result: dict[str, Any] = {"crds": str(crds)}
    try:
        result["retained"] = await run(kube, "retained", namespaces["retained"], retained, new)
        result["baseline"] = await run(kube, "baseline", namespaces["baseline"], 0, new)
    finally:
        for ns in namespaces.values():
            try:
                await kube.delete(f"/api/v1/namespaces/{ns}")
            except ApiError as e:  # cleanup must not hide the run's own error
                print(f"could not delete namespace {ns}: {e}", file=sys.stderr)
        await kube.close()
    a, b = result["retained"], result["baseline"]
    result["latency_ratio"] = round(a["latency_median_ms"] / b["latency_median_ms"], 3)
    result["latency_p90_ratio"] = round(a["latency_p90_ms"] / b["latency_p90_ms"], 3)
    result["cpu_ratio"] = round(a["cpu_seconds_per_publication"] / b["cpu_seconds_per_publication"], 3)
    result["targets"] = {
        "latency_ratio_max": LATENCY_TARGET,
        "cpu_ratio_max": CPU_TARGET,
        "latency_met": result["latency_ratio"] <= LATENCY_TARGET,
        "cpu_met": result["cpu_ratio"] <= CPU_TARGET,
    }
    print_summary(result)
    return result


def print_summary(r: dict) -> None:
    a, b = r["retained"], r["baseline"]
    rows = [
        ("retained finished publications", a["retained"], b["retained"], ""),
        ("startup until /healthz 200 (s)", a["startup_seconds"], b["startup_seconds"], ""),
        ("settled (CPU idle) after (s)", a["settle_seconds"], b["settle_seconds"], ""),
        ("CPU until settled (s)", a["startup_cpu_seconds"], b["startup_cpu_seconds"], ""),
        ("RSS after settling (MiB)", a["rss_after_settle_mib"], b["rss_after_settle_mib"], ""),
        ("create -> Job, median (ms)", a["latency_median_ms"], b["latency_median_ms"], f"{r['latency_ratio']:.2f}"),
        ("create -> Job, p90 (ms)", a["latency_p90_ms"], b["latency_p90_ms"], f"{r['latency_p90_ratio']:.2f}"),
        ("create -> Published, median (s)", a["to_published_median_s"], b["to_published_median_s"], ""),
        (
            "operator CPU per publication (s)",
            a["cpu_seconds_per_publication"],
            b["cpu_seconds_per_publication"],
            f"{r['cpu_ratio']:.2f}",
        ),
        ("reconcile ticks while settling", a["startup_ticks"], b["startup_ticks"], ""),
        ("  seconds in them", a["startup_tick_seconds"], b["startup_tick_seconds"], ""),
        ("reconcile ticks while measuring", a["ticks"], b["ticks"], ""),
        ("  seconds in them", a["tick_seconds"], b["tick_seconds"], ""),
        ("measurements (CRDs changed: again)", a["measurements"], b["measurements"], ""),
        ("stop (s)", a["stop_seconds"], b["stop_seconds"], ""),
    ]
    print(f"\nIn the cluster: {a['new']} new publications, one at a time")
    print(f"{'':36} {'retained':>10} {'baseline':>10} {'A / B':>7}")
    for label, x, y, ratio in rows:
        print(f"{label:36} {x!s:>10} {y!s:>10} {ratio:>7}")
    for name, run_ in (("retained", a), ("baseline", b)):
        print(f"{name}: operator stopped by {run_['stopped_by']}; log {run_['operator_log']}")
    t = r["targets"]
    print(
        f"median latency ratio {r['latency_ratio']:.2f} (target ≤ {t['latency_ratio_max']}: "
        f"{'met' if t['latency_met'] else 'NOT met'}); CPU ratio {r['cpu_ratio']:.2f} "
        f"(target ≤ {t['cpu_ratio_max']}: {'met' if t['cpu_met'] else 'NOT met'})\n",
        flush=True,
    )


def cluster_part(retained: int = 3000, new: int = 20, crds: Path | str = ROOT / "crds") -> dict:
    """Both runs (retained, then baseline) on the local cluster; returns the figures."""
    return asyncio.run(_cluster_part(retained, new, Path(crds)))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--retained", type=int, default=3000)
    parser.add_argument("--new", type=int, default=20)
    parser.add_argument("--crds", default=str(ROOT / "crds"), help="directory of CRDs to apply")
    args = parser.parse_args()
    print(json.dumps(cluster_part(args.retained, args.new, args.crds), indent=2))

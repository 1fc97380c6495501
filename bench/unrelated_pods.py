"""Benchmark: Pods that are not Herald's cost Herald nothing.

    .venv/bin/python bench/unrelated_pods.py [--pods 3000]

The operator runs as a real process watching every namespace (with a shard of its own, so in a
shared cluster it acts on nothing). In the same run:

1. baseline: for a window of W seconds, nothing happens; the operator's CPU seconds and RSS are
   read from /proc;
2. with Pods: in a namespace of its own the benchmark creates N Pods without Herald's labels
   (kwok runs them), waits until all are Running, deletes them, creates them again, waits again,
   and deletes them: the window is as long as that takes (W is then the baseline's length too:
   the baseline is measured after, for exactly as long).

Reported: CPU seconds and RSS in each window, and their ratios (target: within 10%, i.e. ≤ 1.10);
the CPU difference, also per Pod created (an idle baseline is a few clock ticks, so its ratio is coarse).
Results are printed and written to bench/results/unrelated-pods.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from herald.kube import ApiError, Kube

RESULTS = ROOT / "bench" / "results"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """The process's CPU time: nanoseconds on a CPU, summed over its threads (schedstat), where the
    kernel has it; otherwise user + system clock ticks (/proc/PID/stat: 10 ms each)."""
    try:
        return sum(int((t / "schedstat").read_text().split()[0]) for t in Path(f"/proc/{pid}/task").iterdir()) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pod_name(round_: int, i: int) -> str:
    # Each round has names of its own: kwok plays its pod-delete stage from a view that may lag, and
    # deletes by name, so a Pod recreated under an old name can be deleted as the old one was (it
    # took 2,364 of 3,000 new Pods once, and the wait for them never ended).
    return f"unrelated-{round_}-{i:05d}"


def pod(round_: int, i: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod_name(round_, i), "labels": {"app": "not-herald", "job-name": f"other-{i}"}},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "nodeSelector": {"type": "kwok"},
            "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }


async def bounded(coros, limit: int = 64):
    sem = asyncio.Semaphore(limit)

    async def run(c):
        async with sem:
            return await c

    return await asyncio.gather(*(run(c) for c in coros))


async def running(kube: Kube, ns: str) -> int:
    listing = await kube.list(f"/api/v1/namespaces/{ns}/pods")
    return sum(1 for p in listing["items"] if (p.get("status") or {}).get("phase") in ("Running", "Succeeded"))


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.5)  # polling the API server with a deadline


async def churn(kube: Kube, ns: str, n: int) -> None:
    path = f"/api/v1/namespaces/{ns}/pods"
    for round_ in range(2):  # create, wait, delete; twice
        await bounded(kube.create(path, pod(round_, i)) for i in range(n))

        async def all_running() -> bool:
            return await running(kube, ns) >= n

        await wait_for(all_running, 600, f"{n} pods running")

        async def delete(name: str) -> None:
            try:
                await kube.request("DELETE", f"{path}/{name}", json={"gracePeriodSeconds": 0})
            except ApiError as e:
                if not e.not_found:
                    raise

        await bounded(delete(pod_name(round_, i)) for i in range(n))

        async def none_left() -> bool:
            return not (await kube.list(path))["items"]

        await wait_for(none_left, 600, "pods deleted")


def start_operator(shard: str, log: Path) -> subprocess.Popen:
    env = dict(os.environ, HERALD_SHARD=shard, HERALD_METRICS_PORT="18390", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "herald", "--health-port", "18391"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:18391/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)  # waiting for a local port
    raise TimeoutError("operator health")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=3000)
    args = parser.parse_args()
    os.environ.setdefault("KUBECONFIG", str(ROOT / ".cluster" / "kubeconfig"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    kube = Kube()
    ns = f"bench-unrelated-{secrets.token_hex(3)}"
    await kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})
    proc = start_operator(f"bench-{secrets.token_hex(3)}", RESULTS / "unrelated-pods-operator.log")
    try:
        time.sleep(5)  # let the operator settle after its first list (a benchmark, not a test)
        cpu0, rss0 = cpu_seconds(proc.pid), rss_mib(proc.pid)
        started = time.monotonic()
        await churn(kube, ns, args.pods)
        window = time.monotonic() - started
        cpu_pods, rss_pods = cpu_seconds(proc.pid) - cpu0, rss_mib(proc.pid)
        cpu1 = cpu_seconds(proc.pid)
        time.sleep(window)  # the baseline: the same window with nothing happening
        cpu_base, rss_base = cpu_seconds(proc.pid) - cpu1, rss_mib(proc.pid)
        result = {
            "pods": args.pods,
            "window_seconds": round(window, 1),
            "cpu_seconds_with_pods": round(cpu_pods, 4),
            "cpu_seconds_baseline": round(cpu_base, 4),
            "rss_mib_start": round(rss0, 1),
            "rss_mib_with_pods": round(rss_pods, 1),
            "rss_mib_baseline": round(rss_base, 1),
            "cpu_ratio": round(cpu_pods / cpu_base, 2) if cpu_base else None,
            # An idle baseline is a few tens of milliseconds, so the ratio moves with any periodic
            # work (a resync) that falls in one window and not the other: the difference per Pod
            # created says the same without that noise.
            "cpu_seconds_difference": round(cpu_pods - cpu_base, 4),
            "cpu_microseconds_per_pod": round((cpu_pods - cpu_base) / (2 * args.pods) * 1e6, 1),
            "rss_ratio": round(rss_pods / rss_base, 3) if rss_base else None,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        await kube.request("DELETE", f"/api/v1/namespaces/{ns}", json={})
        await kube.close()
    (RESULTS / "unrelated-pods.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())

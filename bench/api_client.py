"""Benchmark: the operator's API client, in CPU per request, against bare clients in the same run.

    .venv/bin/python bench/api_client.py            # 3000 Event creates per client, 32 in flight

Each client creates the same Events (a small body, as the operator's Events) in a namespace of
the local cluster (`make cluster-up`), with 32 requests in flight, and the CPU this process spent
is divided by the number of requests. The API server and the cluster run in other processes, so
their work is not counted. Clients, each in two rounds (the first warms the connections):

- ``herald.kube``: the operator's client (kr8s credentials, aiohttp, orjson, retries, metrics hook);
- ``aiohttp``: a bare aiohttp session with the same TLS context, the floor for the client;
- ``httpx-h2`` and ``httpx-h1``: a bare httpx client over HTTP/2 (when the h2 package is
  installed) and over HTTP/1.1, the transports the operator used before.

Results are printed and written to bench/results/api-client.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from herald.kube import Kube

NS = "bench-api-client"
CONCURRENCY = 32


def event(i: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"e{i}.{time.time_ns():x}", "namespace": NS},
        "involvedObject": {"kind": "Namespace", "name": NS, "namespace": NS},
        "reason": "Benchmark",
        "message": "m" * 120,
        "type": "Normal",
        "count": 1,
        "source": {"component": "herald-bench"},
    }


async def measure(n: int, post: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
    """CPU microseconds per request and requests per second for ``n`` posts, 32 in flight."""
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with slots:
            await post(i)

    await asyncio.gather(*(one(-i - 1) for i in range(CONCURRENCY)))  # connections open, TLS done
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    return cpu / n * 1e6, n / wall


async def run(n: int) -> dict[str, list[float]]:
    path = f"/api/v1/namespaces/{NS}/events"
    kube = Kube(concurrency=CONCURRENCY)
    await kube.get("/api/v1/namespaces/default")  # loads the credentials
    auth = kube._auth  # the same server, TLS context and token for the bare clients
    tls = await auth.ssl_context()
    headers = {"Content-Type": "application/json"}
    if auth.token:
        headers["Authorization"] = f"Bearer {auth.token}"
    server = str(auth.server).rstrip("/")

    async def with_kube(i: int) -> None:
        await kube.create(path, event(i))

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY, ssl=tls))

    async def with_aiohttp(i: int) -> None:
        async with session.post(server + path, data=orjson.dumps(event(i)), headers=headers) as resp:
            body = await resp.read()
            assert resp.status == 201, (resp.status, body[:200])
            orjson.loads(body)

    clients: list[tuple[str, Callable[[int], Awaitable[None]]]] = [
        ("herald.kube", with_kube),
        ("aiohttp", with_aiohttp),
    ]
    opened: list[httpx.AsyncClient] = []
    for name, http2 in (("httpx-h2", True), ("httpx-h1", False)):
        if http2:
            try:
                import h2  # noqa: F401
            except ImportError:
                print("httpx-h2: the h2 package is not installed; skipped", flush=True)
                continue
        client = httpx.AsyncClient(
            base_url=server,
            verify=tls,
            http2=http2,
            limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY),
        )
        opened.append(client)

        async def with_httpx(i: int, client: httpx.AsyncClient = client) -> None:
            resp = await client.post(path, content=orjson.dumps(event(i)), headers=headers)
            assert resp.status_code == 201, (resp.status_code, resp.text[:200])
            orjson.loads(resp.content)

        clients.append((name, with_httpx))
    results: dict[str, list[float]] = {name: [] for name, _ in clients}
    try:
        for round_ in (1, 2):
            for name, post in clients:
                cpu_us, rate = await measure(n, post)
                results[name].append(round(cpu_us, 1))
                print(f"round {round_}: {name}: {cpu_us:.0f} us of CPU per request, {rate:.0f} requests/s", flush=True)
    finally:
        await kube.close()
        await session.close()
        for client in opened:
            await client.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="requests per client and round")
    args = parser.parse_args()
    subprocess.run(["kubectl", "create", "namespace", NS], capture_output=True, check=False)
    try:
        results = asyncio.run(run(args.n))
    finally:
        subprocess.run(["kubectl", "delete", "namespace", NS, "--wait=false"], capture_output=True, check=False)
    best = {name: min(values) for name, values in results.items()}
    summary = {
        "requests_per_round": args.n,
        "concurrency": CONCURRENCY,
        "cpu_us_per_request": results,
        "ratio_to_bare_aiohttp": {name: round(v / best["aiohttp"], 2) for name, v in best.items()},
    }
    out = ROOT / "bench" / "results" / "api-client.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

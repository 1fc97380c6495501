"""The operator's API client against the real API server: requests share a bounded pool of
kept-alive connections (HTTP/1.1 on aiohttp, docs/performance.md), and open watches never take
one of them."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import urlsplit

import pytest
import yaml

from herald.kube import Kube

pytestmark = pytest.mark.cluster


def api_server_port(kubeconfig: str) -> int:
    with open(kubeconfig) as f:
        config = yaml.safe_load(f)
    port = urlsplit(config["clusters"][0]["cluster"]["server"]).port
    assert port is not None
    return port


def connections_to(port: int) -> set[int]:
    """The local ports of this process's established TCP connections to ``port`` (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    local: set[int] = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as f:
            next(f)
            for row in f:
                fields = row.split()
                here, there, state, inode = fields[1], fields[2], fields[3], fields[9]
                if state == "01" and inode in inodes and int(there.rsplit(":", 1)[1], 16) == port:
                    local.add(int(here.rsplit(":", 1)[1], 16))
    return local


async def requests_and_watches(kubeconfig: str) -> tuple[set[int], set[int], set[int]]:
    port = api_server_port(kubeconfig)
    others = connections_to(port)  # the test process's other clients (fixtures) are left out
    kube = Kube(kubeconfig=kubeconfig, concurrency=4)
    try:
        await asyncio.gather(*(kube.list("/api/v1/namespaces") for _ in range(200)))
        first = connections_to(port) - others
        # Two watches stay open (the server ends them after 30 s) while 200 more requests run.
        watches = [kube.watch("/api/v1/namespaces", {"timeoutSeconds": "30"}) for _ in range(2)]
        try:
            await asyncio.gather(*(anext(w) for w in watches))  # each has its first event: both are open
            await asyncio.gather(*(kube.get("/api/v1/namespaces/default") for _ in range(200)))
            during = connections_to(port) - others
        finally:
            for w in watches:
                await w.aclose()
        return first, during, during - first
    finally:
        await kube.close()


def test_requests_reuse_at_most_their_pool_and_watches_have_their_own(cluster):
    first, during, opened = asyncio.run(requests_and_watches(cluster.kubeconfig))
    assert 1 <= len(first) <= 4  # 200 concurrent requests, at most the pool's 4 connections
    assert first <= during  # kept alive and used again
    assert len(opened) == 2  # one connection for each open watch, none more for requests

"""The operator's API client speaks HTTP/2 to the real API server (as client-go does), and HTTP/1.1
when told to (HERALD_HTTP2=false): many requests then share one connection instead of each taking
one of the pool's (docs/performance.md: the burst floor fell from 48 s to 13 s)."""

from __future__ import annotations

import asyncio

import pytest

from herald.kube import Kube

pytestmark = pytest.mark.cluster


async def versions(kubeconfig: str, http2: bool, requests: int) -> set[str]:
    kube = Kube(kubeconfig=kubeconfig, http2=http2)
    try:
        client, headers = await kube.http()
        answers = await asyncio.gather(*(client.get("/version", headers=headers) for _ in range(requests)))
        assert all(a.status_code == 200 for a in answers)
        # Every namespace list is a full request through Herald's own request path as well.
        await asyncio.gather(*(kube.list("/api/v1/namespaces") for _ in range(requests)))
        return {a.http_version for a in answers}
    finally:
        await kube.close()


def test_the_client_uses_http2_when_the_api_server_offers_it(cluster):
    assert asyncio.run(versions(cluster.kubeconfig, http2=True, requests=20)) == {"HTTP/2"}


def test_http2_can_be_turned_off(cluster):
    assert asyncio.run(versions(cluster.kubeconfig, http2=False, requests=5)) == {"HTTP/1.1"}

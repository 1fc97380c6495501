"""Herald end to end on the real node, installed the way a user installs it: `helm install`
of helm/herald, the operator a real pod (herald-operator:dev, in-cluster config through
10.96.0.1 and kube-proxy), each attempt a real Job whose pod runs herald-adapter:dev and
posts to a fake Mastodon on this host (tests/platforms), reached from the pod network at
the bridge gateway.

The `real_node` fixture (tests/e2e/conftest.py) brings the node, and the images, up when
they are missing; nothing here skips.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.e2e.helm_release import (
    Release,
    attempt_pods,
    fake_mastodon,
    installed_release,
    make_adapter,
    wait_published,
)
from tests.platforms import MastodonFake
from tests.support.herald import condition, target

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]


@pytest.fixture(scope="module")
def release(cluster, api, real_node, crds) -> Iterator[Release]:
    with installed_release(cluster, api, real_node) as rel:
        yield rel


@pytest.fixture
def mastodon() -> Iterator[MastodonFake]:
    """A fake Mastodon on this host, on every address, so the attempt pods reach it at the
    bridge gateway."""
    with fake_mastodon() as fake:
        yield fake


def test_operator_runs_from_the_chart_on_the_real_node(release):
    (pod,) = release.operator_pods()
    assert pod.spec.node_name == release.real_node.name
    (container,) = pod.spec.containers
    assert container.image == "herald-operator:dev" and container.image_pull_policy == "Never"
    (status,) = pod.status.container_statuses
    assert status.ready and status.state.running, status
    assert status.image_id, status  # a real container, run by containerd from the loaded image
    # In-cluster config: the pod got the ServiceAccount token and the API Service's address.
    env = {e.name: e.value for e in container.env}
    assert env["HERALD_NAMESPACES"] == release.namespace
    assert env["HERALD_ADAPTER_IMAGE"] == "herald-adapter:dev"
    assert pod.spec.automount_service_account_token is True
    assert pod.spec.service_account_name == release.name


def test_publication_is_published_through_a_real_job(release, mastodon):
    adapter = make_adapter(release, mastodon, "mastodon")
    text = f"Herald, installed by Helm, on a real node ({secrets.token_hex(4)})"
    release.herald.publication("hello", [adapter], text=text)

    pub = wait_published(release, "hello")
    assert pub["status"]["phase"] == "Published", release.diagnostics("hello")
    assert condition(pub, "Published")["status"] == "True"
    (post,) = mastodon.posts  # exactly one post, with the text
    assert post["text"] == text
    t = target(pub, adapter)
    assert t["phase"] == "Published" and t["postId"] == post["id"], t
    assert t["url"] == post["url"]
    assert t["attempts"] == 1 and pub["status"]["attempts"] == 1
    assert t.get("lastErrorClass") is None
    (request,) = mastodon.requests_to("statuses")
    assert request.bearer() == mastodon.access_token
    assert request.headers["idempotency-key"] == post["idempotencyKey"]
    # The attempt ran as a real pod on the real node, from the chart's adapter image.
    (pod,) = attempt_pods(release, "hello")
    assert pod.spec.node_name == release.real_node.name
    assert pod.spec.containers[0].image == "herald-adapter:dev"
    assert pod.status.pod_ip.startswith("10.88."), pod.status.pod_ip
    assert pod.status.phase == "Succeeded"


def test_a_503_is_retried_and_published_once(release, mastodon):
    adapter = make_adapter(release, mastodon, "flaky")
    mastodon.fail("statuses", 503, {"error": "Service Unavailable"})  # the first POST /api/v1/statuses only
    text = f"Herald retries a 503 on a real node ({secrets.token_hex(4)})"
    release.herald.publication("retried", [adapter], text=text)

    pub = wait_published(release, "retried")
    assert pub["status"]["phase"] == "Published", release.diagnostics("retried")
    t = target(pub, adapter)
    assert pub["status"]["attempts"] == 2 and t["attempts"] == 2, pub["status"]
    assert t["lastErrorClass"] == "server_error", t
    assert "503" in (t["lastError"] or ""), t
    (post,) = mastodon.posts  # one post: the retry did not duplicate it
    assert post["text"] == text and t["postId"] == post["id"]
    failed, succeeded = mastodon.requests_to("statuses")  # one refused with 503, one accepted
    assert failed.json == succeeded.json == {"status": text}
    # Both attempts carried the target's idempotency key (Mastodon would dedupe a repeat).
    assert failed.headers["idempotency-key"] == succeeded.headers["idempotency-key"] == post["idempotencyKey"]
    # Two Jobs, two pods on the real node: the first ended failed, the second succeeded.
    pods = sorted(attempt_pods(release, "retried"), key=lambda p: p.metadata.creation_timestamp)
    assert [p.spec.node_name for p in pods] == [release.real_node.name] * 2
    assert [p.status.phase for p in pods] == ["Failed", "Succeeded"], [p.status for p in pods]
    assert {j.metadata.name for j in release.herald.jobs("retried")} == {p.metadata.labels["job-name"] for p in pods}


def test_the_namespace_really_enforces_restricted_and_attempts_still_publish(release, mastodon):
    """The release namespace refuses a pod that runs as root; Herald's attempt pods run there."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    rootful = {
        "metadata": {"name": "rootful"},
        "spec": {"containers": [{"name": "c", "image": "herald-adapter:dev", "securityContext": {"runAsUser": 0}}]},
    }
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(release.herald.api).create_namespaced_pod(release.namespace, rootful)
    assert refused.value.status == 403 and "restricted" in refused.value.body
    adapter = make_adapter(release, mastodon, "restricted")
    release.herald.publication("restricted", [adapter], text=f"restricted pods publish ({secrets.token_hex(4)})")
    pub = wait_published(release, "restricted")
    assert pub["status"]["phase"] == "Published", release.diagnostics("restricted")
    (pod,) = attempt_pods(release, "restricted")
    assert pod.spec.security_context.run_as_non_root is True and pod.spec.security_context.run_as_user == 65532

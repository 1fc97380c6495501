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
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import REAL_NODE_LABEL, REAL_NODE_TAINT, RealNode
from tests.helm.chart import CHART, helm, set_args
from tests.platforms import MastodonFake
from tests.support.cluster import Cluster, unique_name
from tests.support.herald import Herald, condition, target
from tests.support.waiting import Timeout, wait_until, watch_until

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]

TOLERATION = {"key": REAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}
ON_REAL_NODE = {"nodeSelector": {REAL_NODE_LABEL: "real"}, "tolerations": [TOLERATION]}
# Pod start on the real node is a second or two; the first attempt of a run can take longer
# while containerd unpacks the adapter image.
AVAILABLE_TIMEOUT = 180
PUBLISH_TIMEOUT = 120


@dataclass
class Release:
    name: str
    namespace: str
    herald: Herald
    cluster: Cluster
    real_node: RealNode

    def operator_pods(self) -> list:
        return self.herald.core.list_namespaced_pod(
            self.namespace,
            label_selector=f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component=operator",
        ).items

    def diagnostics(self, publication: str | None = None) -> str:
        """What to look at when something did not happen: the operator's pod and log, the
        publication's status, its attempt pods, the namespace's events."""
        out = []
        for pod in self.operator_pods():
            out.append(
                f"operator pod {pod.metadata.name} on {pod.spec.node_name}: phase={pod.status.phase} "
                f"statuses={pod.status.container_statuses}"
            )
            log = self.cluster.kubectl("logs", "-n", self.namespace, pod.metadata.name, "--tail=80", check=False)
            out.append(f"operator log (tail):\n{log.stdout}{log.stderr}")
        if publication:
            try:
                out.append(f"publication status: {self.herald.get_publication(publication).get('status')}")
            except Exception as e:
                out.append(f"publication {publication}: {e}")
            pods = self.herald.core.list_namespaced_pod(
                self.namespace, label_selector=f"herald.dev/publication={publication}"
            ).items
            for pod in pods:
                out.append(
                    f"attempt pod {pod.metadata.name} on {pod.spec.node_name}: phase={pod.status.phase} "
                    f"statuses={pod.status.container_statuses}"
                )
        events = self.herald.core.list_namespaced_event(self.namespace).items
        out.append(
            "events:\n"
            + "\n".join(
                f"  {e.involved_object.kind}/{e.involved_object.name} {e.reason}: {e.message}" for e in events[-40:]
            )
        )
        return "\n".join(out)


@pytest.fixture(scope="module")
def release(cluster, api, real_node) -> Iterator[Release]:
    """Herald installed with Helm into a fresh namespace that it watches, its operator pod
    on the real node; uninstalled (and the namespace deleted) afterwards."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    namespace = unique_name("e2e-helm")
    name = unique_name("herald")  # contains "herald": the objects are named after the release
    # Pod Security "restricted" is enforced there: the operator's pod and every attempt's pod
    # must meet it (the API server refuses any pod that does not).
    labels = {"herald.dev/test": "true", "pod-security.kubernetes.io/enforce": "restricted"}
    core.create_namespace({"metadata": {"name": namespace, "labels": labels}})
    rel = Release(name, namespace, Herald(api, namespace), cluster, real_node)
    installed = False
    try:
        # Herald's CRDs (crds/, which the chart renders too), applied so that a cluster with older
        # copies from an earlier run gets the current ones; shared, so no release owns them.
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART.parent.parent / "crds"))
        for crd in ("publications.herald.dev", "platformadapters.herald.dev"):
            wait_until(
                lambda: (
                    cluster.kubectl(
                        "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=5s", check=False
                    ).returncode
                    == 0
                ),
                timeout=60,
                what=f"CRD {crd} Established",
            )
        values = {
            "watchNamespaces": [namespace],
            "crds.enabled": False,  # applied above, shared by every test: no release owns them
            "image.repository": "herald-operator",
            "image.tag": "dev",
            "image.pullPolicy": "Never",  # no registry: the image is in the node's containerd
            "adapter.image": "herald-adapter:dev",
            "nodeSelector": ON_REAL_NODE["nodeSelector"],
            "tolerations": ON_REAL_NODE["tolerations"],
        }
        out = helm(
            "install", name, str(CHART), "--namespace", namespace, *set_args(values), kubeconfig=cluster.kubeconfig
        ).stdout
        installed = True
        assert "STATUS: deployed" in out and f"The operator watches: {namespace}" in out, out
        try:
            watch_until(
                apps.list_namespaced_deployment,
                lambda d: (
                    d["metadata"]["name"] == name
                    and d["status"].get("observedGeneration", 0) >= d["metadata"]["generation"]
                    and d["status"].get("availableReplicas") == 1
                    and any(
                        c["type"] == "Available" and c["status"] == "True" for c in d["status"].get("conditions", [])
                    )
                ),
                timeout=AVAILABLE_TIMEOUT,
                what=f"deployment {namespace}/{name} Available",
                namespace=namespace,
                field_selector=f"metadata.name={name}",
            )
        except Timeout as e:
            raise AssertionError(f"{e}\n{rel.diagnostics()}") from None
        yield rel
    finally:
        if installed:
            helm(
                "uninstall",
                name,
                "--namespace",
                namespace,
                "--wait",
                kubeconfig=cluster.kubeconfig,
                check=False,
                timeout=180,
            )
        core.delete_namespace(namespace, propagation_policy="Background")


@pytest.fixture
def mastodon() -> Iterator[MastodonFake]:
    """A fake Mastodon on this host, on every address, so the attempt pods reach it at the
    bridge gateway."""
    fake = MastodonFake(host="0.0.0.0", port=0).start()
    try:
        yield fake
    finally:
        fake.stop()


def _adapter(release: Release, mastodon: MastodonFake, name: str) -> str:
    """A Secret with the fake's token and a PlatformAdapter pointing at the fake, whose Jobs
    land on the real node; no image: the chart's default adapter image."""
    port = urlsplit(mastodon.url).port  # bound to 0.0.0.0:<port>
    release.herald.core.create_namespaced_secret(
        release.namespace, {"metadata": {"name": f"{name}-credentials"}, "stringData": mastodon.credentials()}
    )
    release.herald.adapter(
        name,
        platform="mastodon",
        annotations={},
        endpoint=f"http://{release.real_node.pod_gateway}:{port}",
        credentialsSecretRef={"name": f"{name}-credentials"},
        retryPolicy={"maxAttempts": 3, "backoff": {"initial": "1s", "factor": 2, "max": "5s"}},
        jobTemplate=ON_REAL_NODE,
    )
    return name


def _wait_published(release: Release, name: str) -> dict:
    try:
        return release.herald.wait_publication(
            name,
            lambda o: (o.get("status") or {}).get("phase") in ("Published", "Failed"),
            timeout=PUBLISH_TIMEOUT,
            what=f"publication {name} to finish",
        )
    except Timeout as e:
        raise AssertionError(f"{e}\n{release.diagnostics(name)}") from None


def _attempt_pods(release: Release, publication: str) -> list:
    return release.herald.core.list_namespaced_pod(
        release.namespace, label_selector=f"herald.dev/publication={publication}"
    ).items


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
    adapter = _adapter(release, mastodon, "mastodon")
    text = f"Herald, installed by Helm, on a real node ({secrets.token_hex(4)})"
    release.herald.publication("hello", [adapter], text=text)

    pub = _wait_published(release, "hello")
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
    (pod,) = _attempt_pods(release, "hello")
    assert pod.spec.node_name == release.real_node.name
    assert pod.spec.containers[0].image == "herald-adapter:dev"
    assert pod.status.pod_ip.startswith("10.88."), pod.status.pod_ip
    assert pod.status.phase == "Succeeded"


def test_a_503_is_retried_and_published_once(release, mastodon):
    adapter = _adapter(release, mastodon, "flaky")
    mastodon.fail("statuses", 503, {"error": "Service Unavailable"})  # the first POST /api/v1/statuses only
    text = f"Herald retries a 503 on a real node ({secrets.token_hex(4)})"
    release.herald.publication("retried", [adapter], text=text)

    pub = _wait_published(release, "retried")
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
    pods = sorted(_attempt_pods(release, "retried"), key=lambda p: p.metadata.creation_timestamp)
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
    adapter = _adapter(release, mastodon, "restricted")
    release.herald.publication("restricted", [adapter], text=f"restricted pods publish ({secrets.token_hex(4)})")
    pub = _wait_published(release, "restricted")
    assert pub["status"]["phase"] == "Published", release.diagnostics("restricted")
    (pod,) = _attempt_pods(release, "restricted")
    assert pod.spec.security_context.run_as_non_root is True and pod.spec.security_context.run_as_user == 65532

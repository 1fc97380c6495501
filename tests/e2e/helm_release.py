"""Herald installed by Helm on the real node, shared by the e2e tests that need a release:
test_helm_real_node.py (one replica) and test_ha_real_node.py (two)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.e2e.conftest import REAL_NODE_LABEL, REAL_NODE_TAINT, RealNode
from tests.helm.chart import CHART, helm, set_args
from tests.platforms import MastodonFake
from tests.support.cluster import Cluster, unique_name
from tests.support.herald import Herald
from tests.support.waiting import Timeout, watch_until

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


@contextlib.contextmanager
def installed_release(cluster, api, real_node, extra_values: dict | None = None) -> Iterator[Release]:
    """Herald installed with Helm into a fresh namespace that it watches, its operator pods
    on the real node; uninstalled (and the namespace deleted) afterwards. The CRDs must be
    applied already (the `crds` fixture)."""
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
        # Herald's CRDs come from crds/ (the `crds` fixture, which callers depend on), shared by
        # every test, so no release owns them.
        values = {
            "watchNamespaces": [namespace],
            "crds.enabled": False,  # applied above, shared by every test: no release owns them
            "image.repository": "herald-operator",
            "image.tag": "dev",
            "image.pullPolicy": "Never",  # no registry: the image is in the node's containerd
            "adapter.image": "herald-adapter:dev",
            "nodeSelector": ON_REAL_NODE["nodeSelector"],
            "tolerations": ON_REAL_NODE["tolerations"],
            **(extra_values or {}),
        }
        replicas = int(values.get("replicaCount", 1))
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
                    and d["status"].get("availableReplicas") == replicas
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


@contextlib.contextmanager
def fake_mastodon() -> Iterator[MastodonFake]:
    """A fake Mastodon on this host, on every address, so the attempt pods reach it at the
    bridge gateway."""
    fake = MastodonFake(host="0.0.0.0", port=0).start()
    try:
        yield fake
    finally:
        fake.stop()


def make_adapter(release: Release, mastodon: MastodonFake, name: str, **spec) -> str:
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
        **spec,
    )
    return name


def wait_published(release: Release, name: str) -> dict:
    try:
        return release.herald.wait_publication(
            name,
            lambda o: (o.get("status") or {}).get("phase") in ("Published", "Failed"),
            timeout=PUBLISH_TIMEOUT,
            what=f"publication {name} to finish",
        )
    except Timeout as e:
        raise AssertionError(f"{e}\n{release.diagnostics(name)}") from None


def attempt_pods(release: Release, publication: str) -> list:
    return release.herald.core.list_namespaced_pod(
        release.namespace, label_selector=f"herald.dev/publication={publication}"
    ).items

"""Fixtures for the end-to-end tests on the real node (docs/real-node.md).

The real node is a kubelet + containerd on this host, added to the local cluster by
tests/cluster/realnode/up.sh (`make cluster-up NODE=real`). Tests that need it take the
`real_node` fixture: it finds the node labelled herald.dev/node=real, or brings it up
(images included) when it is missing; it never skips. Pods choose it with the label and
tolerate its taint (`on_real_node`); every other pod keeps landing on the kwok nodes.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

# Fixtures these tests share with the integration and monitoring suites.
from tests.integration.conftest import crds, herald  # noqa: F401
from tests.monitoring.fixtures import alertmanager_factory, monitoring_binaries, prometheus_factory  # noqa: F401
from tests.support.cluster import ROOT
from tests.support.recording_server import RecordedRequest, RecordingServer, Response
from tests.support.waiting import watch_until

REAL_NODE_LABEL = "herald.dev/node"
REAL_NODE_TAINT = "herald.dev/real-node"
UP = ROOT / "tests" / "cluster" / "realnode" / "up.sh"
# Cold: base image (debootstrap), both images, containerd, kubelet. Warm: seconds.
UP_TIMEOUT = 1200


def pytest_configure(config):
    config.addinivalue_line("markers", "realnode: runs pods on the real node (containerd + kubelet on this host)")


@dataclass(frozen=True)
class RealNode:
    name: str
    internal_ip: str
    pod_gateway: str  # the CNI bridge's address on the host, as the pods see it


def _ready_real_node(core) -> RealNode | None:
    for node in core.list_node(label_selector=f"{REAL_NODE_LABEL}=real").items:
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        if ready:
            ip = next(a.address for a in node.status.addresses if a.type == "InternalIP")
            return RealNode(node.metadata.name, ip, os.environ.get("HERALD_POD_GATEWAY", "10.88.0.1"))
    return None


@pytest.fixture(scope="session")
def real_node(cluster, api) -> RealNode:
    """The Ready real node; brought up (with Herald's images loaded) when it is not there."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    if os.environ.get("HERALD_CLUSTER") == "existing":
        node = _ready_real_node(core)
        assert node, (
            f"HERALD_CLUSTER=existing: no Ready node labelled {REAL_NODE_LABEL}=real in that cluster; "
            "these tests need one (tests/cluster/realnode/up.sh adds one to the local cluster)"
        )
        return node
    # up.sh is idempotent and fast when the node is there; it also (re)loads the images
    # when the source changed, so the pods below run the current code.
    env = dict(os.environ, CLUSTER_DIR=os.path.dirname(cluster.kubeconfig))
    proc = subprocess.run([str(UP)], env=env, capture_output=True, text=True, timeout=UP_TIMEOUT)
    assert proc.returncode == 0, f"realnode/up.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    node = _ready_real_node(core)
    assert node, f"up.sh succeeded but no Ready node is labelled {REAL_NODE_LABEL}=real:\n{proc.stderr[-2000:]}"
    return node


def on_real_node(spec: dict) -> dict:
    """A pod spec that lands on the real node: its label, and a toleration for its taint."""
    spec = dict(spec)
    spec["nodeSelector"] = {**spec.get("nodeSelector", {}), REAL_NODE_LABEL: "real"}
    spec["tolerations"] = [
        *spec.get("tolerations", []),
        {"key": REAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"},
    ]
    return spec


@pytest.fixture
def run_pod(api, namespace, real_node) -> Callable[..., dict]:
    """Create a pod on the real node and follow it (watch) until it has finished."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    # A pod is refused until the controller-manager has made the namespace's default
    # ServiceAccount.
    watch_until(
        core.list_namespaced_service_account,
        lambda sa: sa["metadata"]["name"] == "default",
        timeout=60,
        what=f"the default ServiceAccount in {namespace}",
        namespace=namespace,
    )

    def run(name: str, spec: dict, timeout: float = 120, metadata: dict | None = None) -> dict:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, **(metadata or {})},
            "spec": on_real_node({"restartPolicy": "Never", **spec}),
        }
        core.create_namespaced_pod(namespace, body)
        try:
            return watch_until(
                core.list_namespaced_pod,
                lambda p: p["metadata"]["name"] == name and p["status"].get("phase") in ("Succeeded", "Failed"),
                timeout=timeout,
                what=f"pod {namespace}/{name} to finish on the real node",
                namespace=namespace,
                field_selector=f"metadata.name={name}",
            )
        except AssertionError:
            pod = core.read_namespaced_pod(name, namespace)
            events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
            raise AssertionError(
                f"pod {name} did not finish: phase={pod.status.phase} "
                f"statuses={pod.status.container_statuses} events={[e.message for e in events.items]}"
            ) from None

    return run


@pytest.fixture
def pod_logs(api, namespace) -> Callable[[str], str]:
    """A container's log, read through the API server from the kubelet."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    return lambda name: core.read_namespaced_pod_log(name, namespace)


class HostServer(RecordingServer[RecordedRequest]):
    """Answers GET /hello with ``hello``, and a POST as a platform that made post-1."""

    name = "host-server"

    def __init__(self) -> None:
        super().__init__("0.0.0.0", request_type=RecordedRequest)  # every address, so pods reach it
        self.hello = f"hello from the host {time.monotonic_ns()}".encode()

    def respond(self, request: RecordedRequest) -> Response:
        if request.method == "POST":
            return Response(201, {"id": "post-1", "url": "http://example.invalid/post-1"})
        if request.method == "GET" and request.path == "/hello":
            return Response(200, self.hello, content_type="text/plain")
        return Response(404, "not found")


@pytest.fixture
def host_server() -> Iterator[HostServer]:
    """An HTTP server on this host that records what the pods send it; stops by itself."""
    with HostServer() as server:
        yield server

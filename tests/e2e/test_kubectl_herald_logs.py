"""`kubectl herald logs` on the real node, where the kubelet serves container logs (kwok's nodes
cannot: tests/integration/test_kubectl_herald.py covers what the plugin says there)."""

from __future__ import annotations

import pytest

from herald.naming import job_name
from tests.e2e.conftest import REAL_NODE_LABEL, REAL_NODE_TAINT
from tests.integration.conftest import operator  # noqa: F401  (the operator for this test's namespace)
from tests.integration.test_kubectl_herald import kubectl_herald, ok
from tests.support.herald import target
from tests.support.waiting import watch_until

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]

# The attempt's container: it logs two lines and reports a published post, as an adapter would.
SCRIPT = (
    'echo "attempt $HERALD_ATTEMPT of $HERALD_TARGET, mode $HERALD_MODE"; '
    'echo "payload: $(cat "$HERALD_PAYLOAD_FILE")"; '
    'printf \'{"outcome":"published","postId":"real-1"}\' > "$HERALD_RESULT_FILE"'
)


def test_logs_of_an_attempt_on_the_real_node(real_node, herald, operator, cluster):  # noqa: F811
    # A pod is refused until the controller-manager has made the namespace's default ServiceAccount.
    watch_until(
        herald.core.list_namespaced_service_account,
        lambda sa: sa["metadata"]["name"] == "default",
        timeout=60,
        what="the default ServiceAccount",
        namespace=herald.namespace,
    )
    herald.adapter(
        "shell",
        platform="webhook",
        image="herald-adapter:dev",
        command=["sh", "-c"],
        args=[SCRIPT],
        jobTemplate={
            "nodeSelector": {REAL_NODE_LABEL: "real"},
            "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
        },
    )
    herald.publication("launch", ["shell"], "Hello from the real node")
    pub = herald.wait_phase("launch", "Published", timeout=120)
    assert target(pub, "shell")["postId"] == "real-1"
    (pod,) = herald.core.list_namespaced_pod(
        herald.namespace, label_selector=f"job-name={job_name('launch', 'shell', 1)}"
    ).items
    assert pod.spec.node_name == real_node.name

    out = ok(kubectl_herald(cluster, herald.namespace, "logs", "launch"))
    lines = out.splitlines()
    assert lines[0] == "attempt 1 of shell, mode publish"
    assert lines[1].startswith("payload: {") and '"text":"Hello from the real node"' in lines[1]
    assert len(lines) == 2
    # -f on a finished attempt prints the same log and returns.
    assert ok(kubectl_herald(cluster, herald.namespace, "logs", "launch", "-f", "--target", "shell")) == out

"""The Argo CD health checks (gitops/argocd) on real objects: the real operator makes each state against
the cluster (scenarios.py), each object is read back from the API and handed to the script as Argo CD
does (the global ``obj``, Lua 5.1 with Argo CD's libraries only: argo_lua.py)."""

from __future__ import annotations

import pytest
import yaml

from tests.gitops.argo_lua import health, script
from tests.gitops.capture import CONFIGMAP
from tests.gitops.scenarios import CASES
from tests.support.herald import condition

pytestmark = pytest.mark.cluster

# What each message must tell a user (beyond being the message of the condition it comes from).
SAYS = {
    "healthy": "attempts may start",
    "circuit-open": "circuit open; next probe at ",
    "half-open": "circuit half-open: one probe attempt may start",
    "paused": "spec.paused is true",
    "credentials-refused": "the platform refused the credentials",
    "published": "1 of 1 targets published",
    "retrying": "flaky: attempt 1 of 6 failed: server_error (HTTP 503); next attempt in 10m at ",
    "stuck-on-credentials": "credentials-refused: credentials are invalid",
    "dead-lettered": "fix the cause, then kubectl herald redrive dead-lettered",
    "suspended": "spec.suspend is true",
    "not-yet-observed": "Waiting for the Herald operator to report a status",
    "published-then-edited": "Waiting for the Herald operator to observe generation 2 (the status is for generation 1)",
    "healthy-then-edited": "Waiting for the Herald operator to observe generation 2 (the status is for generation 1)",
}


def expected_message(obj: dict, health_status: str) -> str:
    """Degraded: Stalled's message; otherwise Ready's, once the status is for the current generation."""
    status = obj.get("status")
    if status is None:
        return "Waiting for the Herald operator to report a status"
    generation = obj["metadata"]["generation"]
    if status["observedGeneration"] != generation:
        return (
            f"Waiting for the Herald operator to observe generation {generation} "
            f"(the status is for generation {status['observedGeneration']})"
        )
    return condition(obj, "Stalled" if health_status == "Degraded" else "Ready")["message"]


@pytest.mark.parametrize("name", list(CASES))
def test_argo_cd_health_of_a_real_object(real_objects, name):
    case = CASES[name]
    obj = real_objects[name]
    assert obj["kind"] == case.kind
    got = health(case.kind, obj)
    assert got == {"status": case.argo, "message": expected_message(obj, case.argo)}, case.what
    assert SAYS[name] in got["message"]


def test_the_argocd_cm_patch_merges_into_an_existing_argocd_cm(cluster, namespace):
    # As docs/gitops.md says: kubectl patch --type merge --patch-file, next to what argocd-cm holds.
    existing = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm"}, "data": {"url": "x"}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(existing))
    cluster.kubectl(
        "patch", "-n", namespace, "configmap", "argocd-cm", "--type", "merge", "--patch-file", str(CONFIGMAP)
    )
    cm = yaml.safe_load(cluster.kubectl("get", "-n", namespace, "configmap", "argocd-cm", "-o", "yaml").stdout)
    assert cm["data"] == {
        "url": "x",
        "resource.customizations.health.herald.dev_Publication": script("Publication"),
        "resource.customizations.health.herald.dev_PlatformAdapter": script("PlatformAdapter"),
    }

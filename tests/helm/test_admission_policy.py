"""The herald.dev/redrive admission policy on a real API server: crds/policies/herald-redrive-policy.yaml and the
chart's templates/admission-policy.yaml refuse a Publication whose annotation is longer than 1024 characters
(status.observedRedrive holds at most that), with a message naming the annotation."""

from __future__ import annotations

import json

import pytest

from tests.helm.chart import CHART, helm, set_args
from tests.integration.conftest import crds  # noqa: F401 - the fixture
from tests.support.cluster import unique_name
from tests.support.legacy_crds import (
    POLICY_FILE,
    REDRIVE,
    dry_run,
    install_redrive_policy,
    redrive_policy_disabled,
    redrive_policy_enforced,
    redrive_probe,
    uninstall_redrive_policy,
)

pytestmark = pytest.mark.cluster

NAMED = f"metadata.annotations[{REDRIVE}] must be at most 1024 characters"


def chart_policy(namespace: str, values: dict | None = None) -> str:
    """The chart's policy and binding for a release watching ``namespace`` (unless ``values`` say otherwise)."""
    return helm(
        "template",
        unique_name("h"),
        str(CHART),
        "--namespace",
        namespace,
        *set_args({"watchNamespaces": [namespace], **(values or {})}),
        "--show-only",
        "templates/admission-policy.yaml",
    ).stdout


@pytest.fixture(params=["crds/policies", "chart"])
def policy(request, cluster, crds, namespace):  # noqa: F811 - crds is a fixture
    """The policy installed and enforced (in ``namespace`` at least) for the test, removed afterwards."""
    manifest = POLICY_FILE.read_text() if request.param == "crds/policies" else chart_policy(namespace)
    objs = install_redrive_policy(cluster, manifest, namespace)
    yield request.param
    uninstall_redrive_policy(cluster, objs, namespace)


def _create(cluster, namespace: str, obj: dict, *extra: str):
    return cluster.kubectl("apply", *extra, "-n", namespace, "-f", "-", input=json.dumps(obj), check=False)


@pytest.mark.parametrize("mode", [(), ("--server-side",)], ids=["client-side", "server-side"])
def test_a_long_redrive_annotation_is_refused_naming_it(cluster, namespace, policy, mode):
    out = _create(cluster, namespace, redrive_probe(2048, "too-long"), *mode)
    assert out.returncode != 0, out.stdout
    assert f"{NAMED}, not 2048" in out.stderr, out.stderr
    out = _create(cluster, namespace, redrive_probe(1025, "just-too-long"), *mode)
    assert out.returncode != 0 and f"{NAMED}, not 1025" in out.stderr, out.stderr
    out = _create(cluster, namespace, redrive_probe(1024, "at-the-limit"), *mode)
    assert out.returncode == 0, out.stderr
    out = _create(cluster, namespace, redrive_probe(12, "short"), *mode)
    assert out.returncode == 0, out.stderr
    # An update that makes it too long is refused too, and the object keeps its value.
    out = cluster.kubectl(
        "annotate", "--overwrite", "-n", namespace, "publication/short", f"{REDRIVE}={'x' * 2048}", check=False
    )
    assert out.returncode != 0 and NAMED in out.stderr, out.stderr
    stored = json.loads(cluster.kubectl("get", "publication/short", "-n", namespace, "-o", "json").stdout)
    assert stored["metadata"]["annotations"][REDRIVE] == "r" * 12


def test_an_object_from_before_the_policy_can_still_be_updated(cluster, namespace, policy):
    """A Publication that got its long annotation before the policy (here: while it was lifted) can still be
    changed (the operator patches labels and finalizers), as long as the annotation stays as it is."""
    with redrive_policy_disabled(cluster, namespace):
        out = _create(cluster, namespace, redrive_probe(2048, "from-before"))
        assert out.returncode == 0, out.stderr
    assert redrive_policy_enforced(cluster, namespace)
    out = cluster.kubectl("label", "-n", namespace, "publication/from-before", "herald.dev/touched=yes", check=False)
    assert out.returncode == 0, out.stderr
    out = cluster.kubectl(
        "annotate", "--overwrite", "-n", namespace, "publication/from-before", f"{REDRIVE}={'y' * 2048}", check=False
    )
    assert out.returncode != 0 and NAMED in out.stderr, out.stderr
    out = cluster.kubectl(
        "annotate", "--overwrite", "-n", namespace, "publication/from-before", f"{REDRIVE}=2", check=False
    )
    assert out.returncode == 0, out.stderr


def test_redrive_policy_disabled_lifts_and_restores_it(cluster, namespace, policy):
    with redrive_policy_disabled(cluster, namespace):
        assert dry_run(cluster, redrive_probe(2048), namespace=namespace).returncode == 0
    assert redrive_policy_enforced(cluster, namespace)


def test_the_charts_binding_covers_the_watched_namespaces_only(cluster, crds, namespace):  # noqa: F811
    other = unique_name("t-redrive-other")
    cluster.kubectl("create", "namespace", other)
    objs = install_redrive_policy(cluster, chart_policy(namespace), namespace)
    try:
        out = dry_run(cluster, redrive_probe(2048), namespace=other)
        assert out.returncode == 0, (
            f"the binding reached {other}, a namespace the release does not watch:\n{out.stderr}"
        )
    finally:
        uninstall_redrive_policy(cluster, objs, namespace)
        cluster.kubectl("delete", "namespace", other, "--wait=false")


def test_the_charts_binding_covers_every_namespace_when_cluster_wide(cluster, crds, namespace):  # noqa: F811
    objs = install_redrive_policy(
        cluster, chart_policy(namespace, {"watchNamespaces": [], "rbac.clusterWide": True}), namespace
    )
    try:
        assert redrive_policy_enforced(cluster, "default")
    finally:
        uninstall_redrive_policy(cluster, objs, namespace)

"""Horizontal sharding: each operator owns the namespaces labelled with its shard; two shards in
one cluster publish disjoint sets, and a namespace that moves between shards is handed over with
no Job created twice and no post lost."""

from __future__ import annotations

import secrets

import pytest
from kubernetes import client

from tests.support.herald import Herald
from tests.support.operator import CLUSTER_WIDE, OperatorProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster


def _namespace(core, shard: str) -> str:
    name = f"t-shard-{shard}-{secrets.token_hex(3)}"
    core.create_namespace(
        {"metadata": {"name": name, "labels": {"herald.dev/test": "true", "herald.dev/shard": shard}}}
    )
    return name


def _instances(core, namespace: str) -> set[str]:
    """Which operator posted the Herald Events of a namespace (reportingInstance is its POD_NAME)."""
    events = core.list_namespaced_event(namespace).items
    return {e.reporting_instance for e in events if (e.source and e.source.component == "herald")}


def test_two_shards_publish_disjoint_sets_and_a_moved_namespace_is_handed_over(cluster, api, crds, tmp_path):
    core = client.CoreV1Api(api)
    tag = secrets.token_hex(2)
    shard_a, shard_b = f"a{tag}", f"b{tag}"
    ns_a, ns_b = _namespace(core, shard_a), _namespace(core, shard_b)
    operators = []
    try:
        for shard in (shard_a, shard_b):
            d = tmp_path / shard
            d.mkdir()
            operators.append(
                OperatorProcess(
                    cluster.kubeconfig, CLUSTER_WIDE, d, env={"HERALD_SHARD": shard, "POD_NAME": f"operator-{shard}"}
                ).start()
            )
        a, b = Herald(api, ns_a), Herald(api, ns_b)
        for h in (a, b):
            h.adapter("mastodon")
            for i in range(3):
                h.publication(f"p{i}", ["mastodon"])
        for h in (a, b):
            for i in range(3):
                h.wait_phase(f"p{i}", "Published", timeout=60)
        assert _instances(core, ns_a) == {f"operator-{shard_a}"}
        assert _instances(core, ns_b) == {f"operator-{shard_b}"}

        # Move ns_a to shard b, with a publication due at the same moment.
        core.patch_namespace(ns_a, {"metadata": {"labels": {"herald.dev/shard": shard_b}}})
        a.publication("moved", ["mastodon"])
        a.wait_phase("moved", "Published", timeout=60)
        wait_until(
            lambda: f"operator-{shard_b}" in _instances(core, ns_a),
            timeout=30,
            what="shard b acting in the moved namespace",
        )
        for name in ["p0", "p1", "p2", "moved"]:
            assert len(a.jobs(name)) == 1, name  # one attempt each: no Job created twice
        a.publication("after", ["mastodon"])
        a.wait_phase("after", "Published", timeout=60)
        assert len(a.jobs("after")) == 1
        started = [
            e
            for e in core.list_namespaced_event(ns_a).items
            if e.reason == "AttemptStarted" and e.involved_object.name == "after"
        ]
        assert [e.reporting_instance for e in started] == [f"operator-{shard_b}"]
    finally:
        for op in operators:
            op.stop()
        for ns in (ns_a, ns_b):
            core.delete_namespace(ns, propagation_policy="Background")

"""`kubectl wait --for=condition=Ready` (docs/gitops.md) on the real objects of scenarios.py: it takes
the Ready condition only when the condition's observedGeneration is the object's generation."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.cluster


def _wait(cluster, obj: dict, condition: str, timeout: str):
    kind = {"Publication": "pub", "PlatformAdapter": "padapter"}[obj["kind"]]
    meta = obj["metadata"]
    target = f"{kind}/{meta['name']}"
    return cluster.kubectl(
        "wait", "-n", meta["namespace"], f"--for=condition={condition}", target, f"--timeout={timeout}", check=False
    )


def test_kubectl_wait_for_ready_and_for_stalled(cluster, real_objects):
    ready = _wait(cluster, real_objects["half-open"], "Ready", "10s")
    assert ready.returncode == 0 and "condition met" in ready.stdout, ready.stderr
    stalled = _wait(cluster, real_objects["dead-lettered"], "Stalled", "10s")
    assert stalled.returncode == 0 and "condition met" in stalled.stdout, stalled.stderr
    # Still Ready=True, but for generation 1 of 2: not met (the operator is stopped, nothing will change).
    stale = _wait(cluster, real_objects["published-then-edited"], "Ready", "2s")
    assert stale.returncode != 0 and "timed out" in stale.stderr, stale.stdout
    not_ready = _wait(cluster, real_objects["retrying"], "Ready", "2s")
    assert not_ready.returncode != 0 and "timed out" in not_ready.stderr, not_ready.stdout

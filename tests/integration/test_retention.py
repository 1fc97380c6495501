"""Retention: spec.ttlSecondsAfterFinished, and the operator-wide default, delete finished
Publications (never before their time) so a cluster keeps only what its users want."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kubernetes.client.exceptions import ApiException

from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster


def _gone(herald, name: str) -> bool:
    try:
        herald.get_publication(name)
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def _completion(pub: dict) -> datetime:
    return datetime.fromisoformat(pub["status"]["completionTime"].replace("Z", "+00:00"))


def test_a_finished_publication_is_deleted_after_its_ttl_never_before(herald, operator):
    herald.adapter("mastodon")
    herald.publication("short", ["mastodon"], ttlSecondsAfterFinished=3)
    herald.publication("kept", ["mastodon"])
    pub = herald.wait_phase("short", "Published")
    done = _completion(pub)
    herald.wait_phase("kept", "Published")
    # Never early: until 2.5 s after completionTime (0.5 s for clock granularity) it is still there.
    wait_until(
        lambda: _gone(herald, "short") or (datetime.now(UTC) - done).total_seconds() >= 2.5,
        timeout=30,
        what="2.5 s after completionTime",
    )
    assert not _gone(herald, "short"), "deleted before its ttlSecondsAfterFinished"
    wait_until(lambda: _gone(herald, "short"), timeout=60, what="the publication past its TTL to be deleted")
    print(f"deleted {(datetime.now(UTC) - done).total_seconds():.1f}s after completionTime (TTL 3 s)")
    assert not _gone(herald, "kept")


def test_the_operator_wide_default_applies_unless_the_spec_says_otherwise(cluster, herald, namespace, crds, tmp_path):
    proc = OperatorProcess(cluster.kubeconfig, namespace, tmp_path, env={"HERALD_PUBLICATION_TTL_SECONDS": "2"})
    proc.start()
    try:
        herald.adapter("mastodon")
        herald.publication("default-ttl", ["mastodon"])
        herald.publication("own-ttl", ["mastodon"], ttlSecondsAfterFinished=3600)
        herald.wait_phase("own-ttl", "Published")
        wait_until(lambda: _gone(herald, "default-ttl"), timeout=60, what="the default TTL to delete it")
        assert not _gone(herald, "own-ttl")
    finally:
        proc.stop()

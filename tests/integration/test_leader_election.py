"""High availability: two operators, one Lease. The standby makes no write until it holds the
Lease; when the leader is killed it takes over within 15 s, with no Job created twice and no
attempt lost; a leader that stops cleanly hands over at once."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.support.herald import JobRecorder
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster

LEASE = "herald-test"
TAKEOVER = 15.0


def _holder(api, namespace: str) -> str | None:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(LEASE, namespace)
    except client.exceptions.ApiException as e:
        if e.status == 404:
            return None
        raise
    return lease.spec.holder_identity or None


def _replica(cluster, namespace: str, tmp_path, name: str) -> OperatorProcess:
    d = tmp_path / name
    d.mkdir()
    env = {
        "HERALD_LEADER_ELECTION": "true",
        "HERALD_LEASE_NAME": LEASE,
        "HERALD_LEASE_NAMESPACE": namespace,
        "POD_NAME": name,
    }
    return OperatorProcess(cluster.kubeconfig, namespace, d, env=env)


def test_one_acts_the_standby_takes_over_when_the_leader_is_killed(cluster, api, herald, namespace, crds, tmp_path):
    a = _replica(cluster, namespace, tmp_path, "replica-a").start()
    wait_until(lambda: (_holder(api, namespace) or "").startswith("replica-a"), timeout=30, what="a leads")
    b = _replica(cluster, namespace, tmp_path, "replica-b").start()
    jobs = JobRecorder(api, namespace)
    try:
        herald.adapter("mastodon")
        for i in range(5):
            herald.publication(f"before-{i}", ["mastodon"])
        for i in range(5):
            herald.wait_phase(f"before-{i}", "Published", timeout=60)
        assert "started as the leader" in a.log() and "started as the leader" not in b.log()
        assert "engine started" not in b.log().lower()

        a.kill()  # SIGKILL: no release; the Lease must expire
        killed = time.monotonic()
        herald.publication("after-kill", ["mastodon"])
        wait_until(
            lambda: (_holder(api, namespace) or "").startswith("replica-b"),
            timeout=TAKEOVER + 15,
            what="b takes the Lease",
        )
        took_over = time.monotonic() - killed
        herald.wait_phase("after-kill", "Published", timeout=60)
        published = time.monotonic() - killed
        print(f"takeover {took_over:.1f}s after SIGKILL; publication made then published after {published:.1f}s")
        assert took_over <= TAKEOVER, took_over
        # Every publication has exactly one attempt: no Job created twice, none lost.
        for name in [f"before-{i}" for i in range(5)] + ["after-kill"]:
            assert len(herald.jobs(name)) == 1, name
        assert len(jobs.added) == 6
    finally:
        jobs.stop()
        b.stop()


def test_a_leader_that_stops_cleanly_hands_over_at_once(cluster, api, herald, namespace, crds, tmp_path):
    a = _replica(cluster, namespace, tmp_path, "replica-a").start()
    wait_until(lambda: (_holder(api, namespace) or "").startswith("replica-a"), timeout=30, what="a leads")
    b = _replica(cluster, namespace, tmp_path, "replica-b").start()
    try:
        stopped = time.monotonic()
        a.stop()  # SIGTERM: the Lease is released
        wait_until(lambda: (_holder(api, namespace) or "").startswith("replica-b"), timeout=10, what="b leads")
        handover = time.monotonic() - stopped
        print(f"handover {handover:.1f}s after SIGTERM")
        herald.adapter("mastodon")
        herald.publication("after-stop", ["mastodon"])
        herald.wait_phase("after-stop", "Published", timeout=60)
        assert "released the Lease" in a.log()
    finally:
        b.stop()

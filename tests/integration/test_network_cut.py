"""A 30 s silent network cut between the operator and the API server; publishing resumes within 10 s.

The operator runs as its own uid (OperatorProcess(run_as=...)), so tests/support/netcut.py can drop
exactly its packets to and from the API server's port, while this test's client (root) keeps talking
to the same API server and watches what the operator does, or cannot do.
"""

from __future__ import annotations

import json
import math
import time

import pytest
from kubernetes import watch

from tests.support.herald import JobRecorder, target
from tests.support.netcut import clear_cuts, network_cut
from tests.support.operator import TEST_USER, OperatorProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster

CUT_SECONDS = 30  # how long the network stays cut
RESUME_WITHIN = 10  # the bound after the restore
CEILING = 120  # how long to keep measuring past the bound, so a failure says by how much it missed


@pytest.fixture
def cut_operator(cluster, namespace, crds, tmp_path, request):
    proc = OperatorProcess(cluster.kubeconfig, namespace, tmp_path, run_as=TEST_USER)
    clear_cuts(proc.uid)  # a run killed inside its cut leaves its rules behind
    proc.start()
    yield proc
    proc.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(proc.log()[-20000:])


def first_until(list_fn, deadline: float, **kwargs) -> dict | None:
    """Follow a list+watch of ``list_fn`` until the wall-clock ``deadline``: the first object that
    exists or appears, or None when nothing did."""
    while True:
        listing = json.loads(list_fn(_preload_content=False, **kwargs).data)
        if listing["items"]:
            return listing["items"][0]
        remaining = deadline - time.time()
        if remaining <= 0:
            return None
        w = watch.Watch()
        try:
            for event in w.stream(
                list_fn,
                resource_version=listing["metadata"]["resourceVersion"],
                timeout_seconds=max(1, math.ceil(remaining)),
                _request_timeout=remaining + 30,
                **kwargs,
            ):
                if event["type"] in ("ADDED", "MODIFIED"):
                    return event["raw_object"]
        finally:
            w.stop()


def job_of(jobs: JobRecorder, publication: str) -> tuple[str, float] | None:
    """The first Job the recorder saw for ``publication``, and when."""
    seen = [
        (at, name)
        for name, at in jobs.added.items()
        if jobs.jobs[name].metadata.labels.get("herald.dev/publication") == publication
    ]
    return (min(seen)[1], min(seen)[0]) if seen else None


def test_publishing_resumes_within_10s_after_a_30s_network_cut(herald, cut_operator, api, namespace):
    operator = cut_operator
    assert operator.process_uid() == operator.uid != 0
    herald.adapter("mastodon")
    jobs = JobRecorder(api, namespace)
    try:
        # The setup works: with the network up, a publication goes through.
        t0 = time.time()
        herald.publication("control", ["mastodon"])
        herald.wait_phase("control", "Published")
        control = time.time() - t0
        log_from = len(operator.log())

        with network_cut(operator.uid, operator.api_port) as cut:
            herald.publication("during", ["mastodon"])  # root's client is not cut
            appeared = first_until(
                herald.batch.list_namespaced_job,
                cut.started + CUT_SECONDS,
                namespace=namespace,
                label_selector="herald.dev/publication=during",
            )
            # The cut is honest: the operator never created the Job nor wrote the status, though it is
            # alive, and packets between it and the API server were dropped.
            assert appeared is None, f"a Job appeared during the cut: {appeared['metadata']['name']}"
            assert not herald.get_publication("during").get("status"), "the operator wrote status during the cut"
            dropped = cut.counters()
            assert sum(packets for packets, _ in dropped.values()) > 0, f"nothing was dropped: {dropped}"
            assert operator.proc.poll() is None, f"the operator exited during the cut:\n{operator.log()}"
        restored = cut.ended
        log_cut_end = len(operator.log())

        t_after = time.time()
        herald.publication("after", ["mastodon"])

        # Measure first (past the bound, up to the ceiling), then assert, so a miss says by how much.
        during_job = wait_until(lambda: job_of(jobs, "during"), timeout=CEILING, what="the Job of 'during'")
        after_job = wait_until(lambda: job_of(jobs, "after"), timeout=CEILING, what="the Job of 'after'")
        herald.wait_phase("after", "Published", timeout=CEILING)
        after_published = time.time() - t_after
        during_pub = herald.wait_phase("during", "Published", timeout=CEILING)
        during_published = time.time() - restored
        during_job_delay, after_job_delay = during_job[1] - restored, after_job[1] - t_after

        log = operator.log()
        print(
            f"\nnetwork cut {cut.ended - cut.started:.1f}s (uid {cut.uid} <-> :{cut.port}; "
            f"connections cut mid-stream: {len(cut.connections)}; dropped packets {dropped})"
        )
        print(f"control: Published {control:.2f}s after creation (network up)")
        print(
            f"'during' (created in the cut): Job {during_job_delay:.2f}s after the restore, "
            f"Published by {during_published:.2f}s after it"
        )
        print(
            f"'after' (created {t_after - restored:.2f}s after the restore): Job {after_job_delay:.2f}s, "
            f"Published {after_published:.2f}s after creation"
        )
        print("operator log during the cut:\n" + (log[log_from:log_cut_end] or "(nothing)\n"))
        print("operator log after the restore:\n" + (log[log_cut_end:][-8000:] or "(nothing)\n"))

        assert during_job[1] >= restored  # never early (and no Job was seen during the cut above)
        assert during_job_delay <= RESUME_WITHIN, (
            f"the Job of the publication created during the cut appeared {during_job_delay:.1f}s after the restore"
        )
        assert after_job_delay <= RESUME_WITHIN, (
            f"the Job of 'after' appeared {after_job_delay:.1f}s after its creation"
        )
        assert after_published <= RESUME_WITHIN, f"'after' was Published {after_published:.1f}s after its creation"
        assert target(during_pub, "mastodon")["attempts"] == 1
        assert operator.starts == 1 and operator.proc.poll() is None, "the operator recovered by restarting"
    finally:
        jobs.stop()

"""An attempt's trace survives an operator restart: the outcome seen by the new process joins the
trace the old one started, found in the Job's ``herald.dev/traceparent`` annotation. On the kwok
cluster (the attempt's fate simulated), the operator a real process, the Collector real."""

from __future__ import annotations

import pytest

from tests.support.herald import fate, result
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster


def test_an_outcome_seen_after_a_restart_joins_the_attempts_trace(
    cluster, namespace, crds, herald, collector, tmp_path
):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint(), "OTEL_BSP_SCHEDULE_DELAY": "200"}
    operator = OperatorProcess(cluster.kubeconfig, namespace, tmp_path, env=env)
    try:
        operator.start()
        herald.adapter("slow", annotations=fate(result(postId="7"), duration="8s"))
        herald.publication("survivor", ["slow"])
        (job,) = wait_until(lambda: herald.jobs("survivor"), timeout=30, what="the attempt's Job")
        traceparent = job.metadata.annotations["herald.dev/traceparent"]
        _, trace_id, root_id, _ = traceparent.split("-")
        # The old process's spans left before it dies (they are batched every 0.2 s).
        collector.wait_spans(
            lambda s: any(x.name == "herald.job.create" and x.trace_id == trace_id for x in s),
            timeout=30,
            what="the Job create span",
        )
        operator.kill()
        operator.start()
        herald.wait_phase("survivor", "Published", timeout=60)
        spans = collector.wait_spans(
            lambda s: any(x.name == "herald.attempt.outcome" and x.trace_id == trace_id for x in s),
            timeout=30,
            what="the outcome span in the attempt's trace",
        )
    finally:
        operator.stop()

    outcomes = [s for s in spans if s.name == "herald.attempt.outcome"]
    assert len(outcomes) == 1, [(s.trace_id, s.attributes) for s in outcomes]
    (outcome,) = outcomes
    assert outcome.trace_id == trace_id and outcome.parent_id == root_id
    assert outcome.attributes["herald.outcome"] == "published"
    assert outcome.attributes["herald.publication"] == f"{namespace}/survivor"

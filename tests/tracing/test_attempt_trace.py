"""One publication attempt is one trace, from the operator's decision to the adapter's HTTP call and
back to the outcome, as a real Collector receives it.

The operator runs as a host process against the cluster (as in tests/integration), exporting to the
Collector; the attempt runs for real: a Job whose pod runs herald-adapter:dev on the real node and
posts to a webhook receiver on this host. Both reach the Collector at the pod network's gateway.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import REAL_NODE_LABEL, REAL_NODE_TAINT
from tests.platforms import WebhookFake
from tests.support.operator import OperatorProcess
from tests.support.waiting import Timeout

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]

ON_REAL_NODE = {
    "nodeSelector": {REAL_NODE_LABEL: "real"},
    "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
}
# The first attempt of a run can take a while when containerd unpacks the adapter image.
PUBLISH_TIMEOUT = 180
ATTEMPT_SPANS = {"herald.attempt", "herald.decide", "herald.job.create", "herald.adapter", "herald.attempt.outcome"}


def test_one_attempt_is_one_trace_across_operator_and_adapter(
    cluster, namespace, crds, herald, real_node, collector, tmp_path
):
    endpoint = collector.endpoint(real_node.pod_gateway)  # the same address from the host and the pods
    receiver = WebhookFake(host="0.0.0.0").start()
    operator = OperatorProcess(
        cluster.kubeconfig,
        namespace,
        tmp_path,
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # the operator's batches leave within 0.2 s
            "HERALD_ADAPTER_IMAGE": "herald-adapter:dev",
        },
    )
    try:
        operator.start()
        herald.core.create_namespaced_secret(
            namespace, {"metadata": {"name": "hook-credentials"}, "stringData": receiver.credentials()}
        )
        port = urlsplit(receiver.url).port
        herald.adapter(
            "hook",
            platform="webhook",
            annotations={},
            endpoint=f"http://{real_node.pod_gateway}:{port}/hook",
            credentialsSecretRef={"name": "hook-credentials"},
            jobTemplate=ON_REAL_NODE,
        )
        herald.publication("traced", ["hook"], text="One attempt, one trace")
        try:
            herald.wait_phase("traced", "Published", timeout=PUBLISH_TIMEOUT)
        except Timeout as e:
            raise AssertionError(f"{e}\noperator log:\n{operator.log()[-6000:]}") from None
        assert len(receiver.posts) == 1

        # The Job carries the trace the operator started for this attempt.
        (job,) = herald.jobs("traced")
        traceparent = job.metadata.annotations["herald.dev/traceparent"]
        trace_id = traceparent.split("-")[1]
        env = {e.name: e.value for e in job.spec.template.spec.containers[0].env}
        assert env["TRACEPARENT"] == traceparent
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint

        spans = collector.wait_spans(
            lambda s: {x.name for x in s if x.trace_id == trace_id} >= ATTEMPT_SPANS,
            timeout=60,
            what=f"the attempt's spans in trace {trace_id}",
        )
    finally:
        operator.stop()
        receiver.stop()

    # ONE trace: every span about this publication, from either side, is in it.
    mine = [s for s in spans if s.attributes.get("herald.publication") == f"{namespace}/traced"]
    assert {s.trace_id for s in mine} == {trace_id}, [(s.service, s.name, s.trace_id) for s in mine]
    trace = {s.span_id: s for s in spans if s.trace_id == trace_id}
    by_name = {s.name: s for s in trace.values()}
    assert {s.service for s in trace.values()} == {"herald-operator", "herald-adapter"}

    root = by_name["herald.attempt"]
    for s in sorted(trace.values(), key=lambda s: s.start_ns):  # the trace, shown with -s
        at, took = (s.start_ns - root.start_ns) / 1e6, (s.end_ns - s.start_ns) / 1e6
        print(f"{at:9.1f} ms {took:9.1f} ms  {s.service:16} {s.name}")
    assert root.parent_id == "" and root.service == "herald-operator"
    assert traceparent.split("-")[2] == root.span_id
    for name in ("herald.decide", "herald.job.create", "herald.attempt.outcome"):
        assert by_name[name].parent_id == root.span_id and by_name[name].service == "herald-operator", name
    adapter = by_name["herald.adapter"]
    assert adapter.service == "herald-adapter" and adapter.parent_id == root.span_id
    (call,) = [s for s in trace.values() if s.parent_id == adapter.span_id]
    assert call.attributes["http.request.method"] == "POST"
    assert call.attributes["http.response.status_code"] == 200
    assert by_name["herald.attempt.outcome"].attributes["herald.outcome"] == "published"
    assert not any(s.error for s in trace.values())

    # In order: decided, Job created, the pod's call, the outcome seen (one host, one clock).
    create = by_name["herald.job.create"]
    outcome = by_name["herald.attempt.outcome"]
    assert root.start_ns <= by_name["herald.decide"].end_ns <= create.start_ns
    assert create.end_ns <= adapter.start_ns <= call.start_ns <= call.end_ns <= adapter.end_ns <= outcome.end_ns
    for s in trace.values():  # the webhook's signing secret is in no span
        assert receiver.hmac_secret not in s.raw

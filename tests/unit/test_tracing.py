"""Tracing's pure parts and the operator's attempt spans, with the OpenTelemetry SDK (no cluster).

The contract's settings (when tracing is on, what an attempt pod is handed), the Job carrying the
trace context, and the spans of one attempt forming one trace. The real Collector, the adapter and
the cluster are in tests/tracing.
"""

from __future__ import annotations

import copy

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from herald.jobs import CONTAINER, JobDefaults, build_job_spec, with_trace_context
from herald.reconciler import AttemptObservation, JobCreate, Plan
from herald.results import Outcome
from herald.tracing import AttemptTracer
from herald_contract import ErrorClass
from herald_contract import tracing as contract

META = {"namespace": "news", "name": "launch", "uid": "0f6c8c3e-7d7a-4a43-9d55-2d5b0c1e7a10"}
SPEC = {"content": {"text": "Hello"}, "targets": [{"adapter": "masto"}]}
ADAPTER = {"platform": "mastodon", "endpoint": "https://social.example"}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def job(attempt: int = 1) -> dict:
    return build_job_spec(META, SPEC, "masto", ADAPTER, attempt, False, JobDefaults())


def env_of(manifest: dict) -> dict[str, str]:
    container = next(c for c in manifest["spec"]["template"]["spec"]["containers"] if c["name"] == CONTAINER)
    return {e["name"]: e["value"] for e in container["env"]}


# -- when tracing is on ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_on_only_with_an_endpoint_and_not_switched_off(env, on):
    assert contract.enabled(env) is on


def test_spans_go_to_the_signal_endpoint_or_the_base_plus_v1_traces():
    assert contract.traces_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == "http://c:4318/v1/traces"
    both = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:9/x"}
    assert contract.traces_endpoint(both) == "http://t:9/x"


def test_attempt_pods_get_the_endpoint_but_never_headers_or_credentials():
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.monitoring:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer s3cr3t-token",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://user:s3cr3t@collector.example/v1/traces",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "5000",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/otel/ca.crt",
        "OTEL_SERVICE_NAME": "herald-operator-eu",
    }
    assert contract.forwarded_env(env) == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.monitoring:4318",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "5000",
    }


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (TRACEPARENT, True),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", False),
        ("", False),
        (None, False),
    ],
)
def test_traceparent_is_checked_before_use(value, valid):
    assert contract.valid_traceparent(value) is valid


# -- the Job carries the trace -------------------------------------------------------------------------
def test_the_job_carries_the_traceparent_to_its_pod_and_the_adapter():
    original = job()
    kept = copy.deepcopy(original)
    otlp = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://10.88.0.1:4318"}
    traced = with_trace_context(original, TRACEPARENT, otlp)

    assert original == kept  # pure: the decided manifest is not changed
    assert traced["metadata"]["annotations"][contract.ANNOTATION_TRACEPARENT] == TRACEPARENT
    assert traced["spec"]["template"]["metadata"]["annotations"][contract.ANNOTATION_TRACEPARENT] == TRACEPARENT
    env = env_of(traced)
    assert env[contract.TRACEPARENT_ENV] == TRACEPARENT
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://10.88.0.1:4318"
    assert {k: v for k, v in env.items() if not k.startswith(("OTEL_", "TRACEPARENT"))} == env_of(original)
    # Everything else is the decided Job.
    assert traced["metadata"]["name"] == original["metadata"]["name"]
    assert traced["spec"]["template"]["spec"]["volumes"] == original["spec"]["template"]["spec"]["volumes"]


def test_a_second_trace_context_replaces_the_first():
    once = with_trace_context(job(), TRACEPARENT, {})
    other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    twice = with_trace_context(once, other, {})
    names = [e["name"] for e in twice["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert names.count(contract.TRACEPARENT_ENV) == 1
    assert env_of(twice)[contract.TRACEPARENT_ENV] == other


# -- the operator's spans ------------------------------------------------------------------------------
@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test"), exporter
    provider.shutdown()


def create(attempt: int = 1) -> JobCreate:
    return JobCreate(job(attempt), ("news", "launch"), "masto", attempt - 1)


def test_tracing_off_leaves_the_job_as_decided_and_records_nothing():
    tracer = AttemptTracer.from_env({})
    jc = create()
    tracer.decided(Plan(creates=[jc]), 0)
    with tracer.job_create(jc) as manifest:
        assert manifest is jc.manifest
    assert not tracer.enabled


def test_one_attempt_is_one_trace_from_decision_to_outcome(spans):
    tracer, exporter = spans
    attempts = AttemptTracer(tracer, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    jc = create()
    attempts.decided(Plan(creates=[jc]), started_ns=1_000)
    with attempts.job_create(jc) as manifest:
        sent = manifest
    observed = AttemptObservation("news", "launch", "masto", "mastodon", 1, Outcome(published=True))
    attempts.decided(Plan(attempts=[observed]), started_ns=2_000)
    attempts.decided(Plan(attempts=[observed]), started_ns=3_000)  # decided again: one outcome span

    by_name = {s.name: s for s in exporter.get_finished_spans()}
    assert sorted(by_name) == ["herald.attempt", "herald.attempt.outcome", "herald.decide", "herald.job.create"]
    assert len(exporter.get_finished_spans()) == 4
    root = by_name["herald.attempt"]
    assert root.parent is None
    assert {s.context.trace_id for s in by_name.values()} == {root.context.trace_id}
    for name in ("herald.decide", "herald.job.create", "herald.attempt.outcome"):
        assert by_name[name].parent.span_id == root.context.span_id, name
    # The Job carries the root's context: the adapter's spans become its children too.
    traceparent = sent["metadata"]["annotations"][contract.ANNOTATION_TRACEPARENT]
    assert traceparent.startswith(f"00-{root.context.trace_id:032x}-{root.context.span_id:016x}-")
    assert int(traceparent[-2:], 16) & 1  # sampled: the adapter records its spans too
    assert env_of(sent)[contract.TRACEPARENT_ENV] == traceparent
    assert root.attributes["herald.publication"] == "news/launch"
    assert root.attributes["herald.attempt"] == 1
    assert by_name["herald.attempt.outcome"].attributes["herald.outcome"] == "published"
    assert root.start_time == 1_000  # the attempt starts with the decision that made it


def test_a_failed_create_ends_the_attempt_as_an_error(spans):
    tracer, exporter = spans
    attempts = AttemptTracer(tracer)
    jc = create()
    attempts.decided(Plan(creates=[jc]), started_ns=1_000)

    class Refused(Exception):
        status = 422

    with pytest.raises(Refused), attempts.job_create(jc):
        raise Refused("Job.batch is invalid: spec.template... (a message not to export)")
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    assert by_name["herald.job.create"].attributes["http.response.status_code"] == 422
    assert by_name["herald.job.create"].status.description == "Refused"
    assert not by_name["herald.attempt"].status.is_ok
    assert all("message not to export" not in str(s.to_json()) for s in by_name.values())


def test_a_failed_outcome_names_its_error_class(spans):
    tracer, exporter = spans
    attempts = AttemptTracer(tracer)
    jc = create(2)
    attempts.decided(Plan(creates=[jc]), started_ns=1_000)
    with attempts.job_create(jc):
        pass
    outcome = Outcome(published=False, error_class=ErrorClass.SERVER_ERROR, message="HTTP 503 token=abc")
    attempts.decided(
        Plan(attempts=[AttemptObservation("news", "launch", "masto", "mastodon", 2, outcome, retried=True)]), 2_000
    )
    span = next(s for s in exporter.get_finished_spans() if s.name == "herald.attempt.outcome")
    assert span.attributes["herald.error_class"] == "server_error"
    assert span.attributes["herald.retried"] is True
    assert not span.status.is_ok
    assert "token=abc" not in span.to_json()  # messages never leave as span data

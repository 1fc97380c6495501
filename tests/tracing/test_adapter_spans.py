"""The adapter's spans, through a real Collector: the entrypoint as the Job's container runs it,
with the environment the operator gives it (TRACEPARENT and the OTLP endpoint). No cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.adapters._support import closed_port_url, job_env, lay_out, payload
from tests.platforms import WebhookFake

ENTRYPOINT = Path(sys.executable).with_name("herald-adapter")  # the console script the image runs
OPERATOR_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OPERATOR_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{OPERATOR_TRACE}-{OPERATOR_SPAN}-01"
URL_SECRET = "tok3n-in-the-webhook-url-5d1e"


def _webhook(tmp_path: Path, fake: WebhookFake) -> dict[str, str]:
    paths = lay_out(tmp_path, credentials=fake.credentials(), document=payload("Traced"))
    # A webhook URL may embed a credential: it must never reach a span.
    return job_env(paths, platform="webhook", endpoint=f"{fake.endpoint}?token={URL_SECRET}")


def _run(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=60)


def test_the_adapter_continues_the_operators_trace_with_a_span_per_call(tmp_path, collector):
    with WebhookFake() as fake:
        env = _webhook(tmp_path, fake)
        env.update({"TRACEPARENT": TRACEPARENT, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint()})
        done = _run(env)
        assert done.returncode == 0, done.stderr
        assert len(fake.posts) == 1

    spans = collector.wait_spans(
        lambda s: len(s) >= 2,
        timeout=30,
        what="the adapter's spans in the collector",
    )
    assert {s.service for s in spans} == {"herald-adapter"}
    assert {s.trace_id for s in spans} == {OPERATOR_TRACE}  # the operator's trace, continued
    run = next(s for s in spans if s.name == "herald.adapter")
    assert run.parent_id == OPERATOR_SPAN
    assert run.attributes["herald.platform"] == "webhook"
    assert run.attributes["herald.outcome"] == "published"
    assert run.attributes["herald.publication"] == "news/launch"
    assert not run.error
    calls = [s for s in spans if s.parent_id == run.span_id]
    assert len(calls) == 1, [s.name for s in spans]
    call = calls[0]
    assert call.kind == 3  # CLIENT
    assert call.attributes["http.request.method"] == "POST"
    assert call.attributes["http.response.status_code"] == 200
    assert call.attributes["server.address"] == "127.0.0.1"
    assert run.start_ns <= call.start_ns <= call.end_ns <= run.end_ns
    for s in spans:  # neither the URL's token nor the signing secret left the pod
        assert URL_SECRET not in s.raw and fake.hmac_secret not in s.raw and "/hook" not in s.raw


def test_a_failed_call_marks_the_attempt_as_failed_in_the_trace(tmp_path, collector):
    with WebhookFake() as fake:
        fake.fail("hook", 503, {"error": "maintenance"})
        env = _webhook(tmp_path, fake)
        env.update({"TRACEPARENT": TRACEPARENT, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint()})
        done = _run(env)
        assert done.returncode == 1, done.stderr

    spans = collector.wait_spans(lambda s: len(s) >= 2, timeout=30, what="the adapter's spans")
    run = next(s for s in spans if s.name == "herald.adapter")
    call = next(s for s in spans if s.parent_id == run.span_id)
    assert call.attributes["http.response.status_code"] == 503 and call.error
    assert run.error and run.attributes["herald.error_class"] == "server_error"


def test_without_an_endpoint_nothing_is_loaded_or_sent(tmp_path, collector):
    with WebhookFake() as fake:
        env = _webhook(tmp_path, fake)
        env["TRACEPARENT"] = TRACEPARENT  # a context alone exports nothing
        probe = (
            "import sys; from herald_adapters.cli import main; code = main([]); "
            "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith('opentelemetry')})); sys.exit(code)"
        )
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert len(fake.posts) == 1
    assert done.stdout.strip().splitlines()[-1] == "[]"  # not even the API was imported
    assert json.loads(done.stdout.strip().splitlines()[-2])["outcome"] == "published"
    assert collector.spans() == []


def test_an_unreachable_collector_never_fails_or_holds_up_an_attempt(tmp_path):
    with WebhookFake() as fake:
        env = _webhook(tmp_path, fake)
        env.update({"TRACEPARENT": TRACEPARENT, "OTEL_EXPORTER_OTLP_ENDPOINT": closed_port_url()})
        started = time.monotonic()
        done = _run(env)
        took = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        assert len(fake.posts) == 1
    assert json.loads(done.stdout.strip().splitlines()[-1])["outcome"] == "published"
    assert took < 10, f"the adapter took {took:.1f}s with no collector"  # its export gives up after ~2 s

"""OpenTelemetry spans for publication attempts, at the engine's boundary (never in the decision).

One attempt is one trace:

    herald.attempt                 the decision that started it, until its Job exists
    ├── herald.decide              reconcile() of the unit that decided it
    ├── herald.job.create          POST of the Job (its traceparent goes into the Job)
    ├── herald.adapter             the adapter in the attempt's pod (herald_adapters._tracing)
    │   └── POST <call> ...        one span per HTTP call to the platform
    └── herald.attempt.outcome     Job created → outcome seen by a later decision

The trace context travels in the Job (annotation ``herald.dev/traceparent``, env ``TRACEPARENT``).
Nothing is exported, and nothing is added to Jobs, unless an OTLP endpoint is configured
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT``); then ``setup`` installs the SDK.
Attributes hold names and numbers only: never a message, URL or credential.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from herald_contract import tracing as contract

from .jobs import ANNOTATION_ATTEMPT, ANNOTATION_MODE, with_trace_context
from .naming import job_name
from .reconciler import AttemptObservation, JobCreate, Key, Plan

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from .kube import Kube

log = logging.getLogger("herald.tracing")

SERVICE_NAME = "herald-operator"
_REMEMBERED = 10_000  # Jobs whose traceparent (or traced outcome) is kept in memory
_propagator = TraceContextTextMapPropagator()


def setup(env: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """Install the SDK with an OTLP/HTTP exporter when an endpoint is configured; else nothing
    (the API's no-op tracer stays, and no SDK module is imported)."""
    if not contract.enabled(env):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by Resource.create; ours is the default.
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=contract.traces_endpoint(env))))
    trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans over OTLP/HTTP")  # the endpoint may name internal hosts: not logged
    return provider


def traceparent_of(span: Span) -> str:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent", "")


def _context_of(traceparent: str) -> Any:
    return _propagator.extract({"traceparent": traceparent})


def _job_key(jc: JobCreate) -> Key:
    m = jc.manifest["metadata"]
    return (m["namespace"], m["name"])


class _Bounded(collections.OrderedDict[Key, Any]):
    def remember(self, key: Key, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > _REMEMBERED:
            self.popitem(last=False)


class AttemptTracer:
    """The engine's spans. Disabled (``tracer`` None) it does nothing and changes no manifest."""

    def __init__(self, tracer: Tracer | None, otlp_env: Mapping[str, str] | None = None, kube: Kube | None = None):
        self.tracer = tracer
        self.otlp_env = dict(otlp_env or {})
        self.kube = kube  # reads a Job's traceparent after a restart (its outcome span needs it)
        self._decided: dict[Key, Span] = {}  # Job -> its attempt's root span, until the create
        self._created = _Bounded()  # Job -> (traceparent, created ns)
        self._traced = _Bounded()  # Jobs whose outcome span exists (a decision may repeat)
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, kube: Kube | None = None) -> AttemptTracer:
        if not contract.enabled(env):
            return cls(None)
        return cls(trace.get_tracer("herald.operator"), contract.forwarded_env(env), kube)

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    # -- the decision ------------------------------------------------------------------------------
    def decided(self, plan: Plan, started_ns: int) -> None:
        """After reconcile(): a root span per Job to create, and a span per outcome seen."""
        if self.tracer is None:
            return
        ended_ns = time.time_ns()
        for jc in plan.creates:
            key = _job_key(jc)
            root = self.tracer.start_span("herald.attempt", start_time=started_ns, attributes=_attempt_attributes(jc))
            decide = self.tracer.start_span(
                "herald.decide",
                context=trace.set_span_in_context(root),
                start_time=started_ns,
                attributes={"herald.unit.creates": len(plan.creates), "herald.unit.outcomes": len(plan.attempts)},
            )
            decide.end(ended_ns)
            stale = self._decided.pop(key, None)
            if stale is not None:  # decided again before its create ran (should not happen)
                stale.end()
            self._decided[key] = root
        for obs in plan.attempts:
            self._outcome(obs)

    # -- the Job create ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def job_create(self, jc: JobCreate) -> Iterator[dict[str, Any]]:
        """Yields the manifest to POST: with the attempt's trace context when tracing is on."""
        if self.tracer is None:
            yield jc.manifest
            return
        key = _job_key(jc)
        root = self._decided.pop(key, None) or self.tracer.start_span(
            "herald.attempt", attributes=_attempt_attributes(jc)
        )
        traceparent = traceparent_of(root)
        try:
            with self.tracer.start_as_current_span(
                "herald.job.create",
                context=trace.set_span_in_context(root),
                kind=SpanKind.CLIENT,
                attributes={"k8s.namespace.name": key[0], "k8s.job.name": key[1]},
                record_exception=False,  # an API error's text is not ours to export
                set_status_on_exception=False,
            ) as span:
                try:
                    yield with_trace_context(jc.manifest, traceparent, self.otlp_env)
                except Exception as e:
                    status = getattr(e, "status", None)
                    if isinstance(status, int):
                        span.set_attribute("http.response.status_code", status)
                    if getattr(e, "already_exists", False):  # an earlier run created it: not a failure
                        span.set_attribute("herald.job.already_exists", True)
                    else:
                        span.set_status(Status(StatusCode.ERROR, type(e).__name__))
                        root.set_status(Status(StatusCode.ERROR, "the Job was not created"))
                    raise
            self._created.remember(key, (traceparent, time.time_ns()))
        finally:
            root.end()

    # -- the outcome -------------------------------------------------------------------------------
    def _outcome(self, obs: AttemptObservation) -> None:
        key = (obs.namespace, job_name(obs.publication, obs.adapter, obs.attempt))
        if key in self._traced:
            return
        self._traced.remember(key, True)
        known = self._created.pop(key, None)
        if known is not None:
            self._emit_outcome(obs, known[0], known[1])
        elif self.kube is not None:  # created before a restart: the Job carries its traceparent
            task = asyncio.get_running_loop().create_task(self._outcome_from_job(obs, key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _outcome_from_job(self, obs: AttemptObservation, key: Key) -> None:
        assert self.kube is not None
        from .kube import ApiError

        try:
            job = await self.kube.get(f"/apis/batch/v1/namespaces/{key[0]}/jobs/{key[1]}", metadata_only=True)
        except ApiError:
            return  # gone (TTL) or unreadable: no outcome span
        traceparent = ((job.get("metadata") or {}).get("annotations") or {}).get(contract.ANNOTATION_TRACEPARENT)
        if isinstance(traceparent, str) and contract.valid_traceparent(traceparent):
            self._emit_outcome(obs, traceparent, None)

    def _emit_outcome(self, obs: AttemptObservation, traceparent: str, created_ns: int | None) -> None:
        assert self.tracer is not None
        outcome = obs.outcome
        attributes: dict[str, Any] = {
            "herald.publication": f"{obs.namespace}/{obs.publication}",
            "herald.adapter": obs.adapter,
            "herald.platform": obs.platform,
            "herald.attempt": obs.attempt,
            "herald.outcome": "published" if outcome.published else "failed",
            "herald.retried": obs.retried,
            "herald.dead_letter": obs.dead_letter,
        }
        if outcome.error_class is not None:
            attributes["herald.error_class"] = outcome.error_class.value
        if outcome.response_seconds is not None:
            attributes["herald.response_seconds"] = outcome.response_seconds
        span = self.tracer.start_span(
            "herald.attempt.outcome", context=_context_of(traceparent), start_time=created_ns, attributes=attributes
        )
        if not outcome.published:
            span.set_status(Status(StatusCode.ERROR, attributes.get("herald.error_class", "failed")))
        span.end()


def _attempt_attributes(jc: JobCreate) -> dict[str, Any]:
    m = jc.manifest["metadata"]
    annotations = m.get("annotations") or {}
    return {
        "herald.publication": f"{jc.publication[0]}/{jc.publication[1]}",
        "herald.adapter": jc.target,
        "herald.attempt": int(annotations.get(ANNOTATION_ATTEMPT) or jc.previous_attempt + 1),
        "herald.mode": annotations.get(ANNOTATION_MODE, ""),
        "k8s.namespace.name": m["namespace"],
        "k8s.job.name": m["name"],
    }

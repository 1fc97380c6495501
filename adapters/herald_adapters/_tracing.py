"""OpenTelemetry in the adapter: the attempt's span and one span per HTTP call, in the trace the
operator started (``TRACEPARENT`` in the Job's environment), exported over OTLP/HTTP.

Only when the operator handed an OTLP endpoint on (``herald_contract.tracing.enabled``); otherwise
no OpenTelemetry module is even imported, and every span here is a no-op. Spans carry names,
numbers and host names only: never a URL path or query, a message, or a credential.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from herald_contract import tracing as contract

log = logging.getLogger("herald_adapters")

SERVICE_NAME = "herald-adapter"
EXPORT_SECONDS = 2.0  # one export, its retries included
FLUSH_MILLIS = 3000  # the pod waits about this long at most for its spans to leave


class Span:
    """A span being recorded, or nothing (``span`` None)."""

    def __init__(self, span: Any = None):
        self._span = span
        self.failed = False

    def set(self, key: str, value: str | int | float | bool) -> None:
        if self._span is not None:
            self._span.set_attribute(key, value)

    def error(self, description: str) -> None:
        self.failed = True
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_status(Status(StatusCode.ERROR, description))


class Tracing:
    """The adapter's tracer: disabled unless built by ``from_env`` with an endpoint set."""

    def __init__(self, provider: Any = None, parent: Any = None):
        self._provider = provider
        self._tracer = provider.get_tracer("herald.adapter") if provider is not None else None
        self._parent = parent  # the operator's context, for the first span

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Tracing:
        if not contract.enabled(env):
            return cls()
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError as exc:  # an image without the SDK: publish anyway, untraced
            log.warning("tracing is configured but OpenTelemetry is not installed (%s)", exc.name)
            return cls()
        attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
        provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
        # The export, retries included, is bounded: a pod never waits long for an unreachable collector.
        exporter = OTLPSpanExporter(endpoint=contract.traces_endpoint(env), timeout=EXPORT_SECONDS)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        traceparent = env.get(contract.TRACEPARENT_ENV, "").strip()
        parent = None
        if contract.valid_traceparent(traceparent):
            parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
        return cls(provider, parent)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @contextlib.contextmanager
    def span(self, name: str, *, client: bool = False, attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
        """A span around the block, a child of the current one (the first: of the operator's)."""
        if self._tracer is None:
            yield Span()
            return
        from opentelemetry import trace

        context = self._parent if trace.get_current_span() is trace.INVALID_SPAN else None
        with self._tracer.start_as_current_span(
            name,
            context=context,
            kind=trace.SpanKind.CLIENT if client else trace.SpanKind.INTERNAL,
            attributes=dict(attributes or {}),
            record_exception=False,  # exception texts may hold what the redactor would catch: not exported
            set_status_on_exception=False,
        ) as span:
            handle = Span(span)
            try:
                yield handle
            except BaseException as exc:
                if not handle.failed:
                    handle.error(type(exc).__name__)
                raise

    def shutdown(self) -> None:
        """Send what was recorded (bounded by FLUSH_MILLIS) before the process ends."""
        if self._provider is None:
            return
        try:
            if self._provider.force_flush(FLUSH_MILLIS):
                self._provider.shutdown()
            else:  # the collector is unreachable: give up, the process ends (the exporter's thread is a daemon)
                log.warning("tracing: not every span was exported within %d ms", FLUSH_MILLIS)
        except Exception as exc:  # noqa: BLE001  (tracing never fails an attempt)
            log.warning("tracing: shutdown failed: %s", type(exc).__name__)


DISABLED = Tracing()

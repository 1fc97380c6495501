"""Tracing names shared by the operator and the adapters (W3C Trace Context, OTLP settings).

Only names and pure checks: no OpenTelemetry import here. The operator puts the attempt's
``traceparent`` on the Job (annotation) and into the adapter's environment; the adapter continues
that trace. Exporting happens only when an OTLP endpoint is configured (``enabled``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

# The W3C traceparent of the attempt, as the adapter reads it (the name the OpenTelemetry
# environment-carrier proposal and most tools use).
TRACEPARENT_ENV = "TRACEPARENT"
# The same value on the Job and its pod, so a later decision (or a person) finds the trace.
ANNOTATION_TRACEPARENT = "herald.dev/traceparent"

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
# The OTLP settings the operator hands on to attempt pods. Never the headers or certificates:
# headers may carry credentials, and certificate paths exist only in the operator's container.
FORWARDED_ENV = (
    ENDPOINT_ENV,
    TRACES_ENDPOINT_ENV,
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
)
TRACES_PATH = "/v1/traces"

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def enabled(env: Mapping[str, str]) -> bool:
    """Whether spans are exported: an OTLP endpoint is set and nothing turns tracing off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() not in ("otlp", ""):
        return False  # "none" (or an exporter Herald does not ship)
    return bool(env.get(TRACES_ENDPOINT_ENV, "").strip() or env.get(ENDPOINT_ENV, "").strip())


def traces_endpoint(env: Mapping[str, str]) -> str:
    """The OTLP/HTTP URL spans are sent to (the signal-specific variable wins, used as is)."""
    specific = env.get(TRACES_ENDPOINT_ENV, "").strip()
    if specific:
        return specific
    return env.get(ENDPOINT_ENV, "").strip().rstrip("/") + TRACES_PATH


def forwarded_env(env: Mapping[str, str]) -> dict[str, str]:
    """The OTLP settings an attempt pod gets from the operator's environment. An endpoint with
    credentials in it (``user:pass@``) is never copied into a Job spec."""
    out: dict[str, str] = {}
    for name in FORWARDED_ENV:
        value = env.get(name, "").strip()
        if not value:
            continue
        if name in (ENDPOINT_ENV, TRACES_ENDPOINT_ENV) and "@" in (urlsplit(value).netloc or ""):
            continue
        out[name] = value
    return out


def valid_traceparent(value: str | None) -> bool:
    """A version-00 traceparent with a non-zero trace and span id."""
    m = _TRACEPARENT.match(value or "")
    if m is None:
        return False
    return m.group(1) != "0" * 32 and m.group(2) != "0" * 16

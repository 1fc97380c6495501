"""A real OpenTelemetry Collector for the tracing tests: built from its Go module
(tests/cluster/otelcol, by tests/cluster/build-tools.sh), OTLP/HTTP in, the file exporter out.

``collector`` starts one per test on a free port, listening on every address so attempt pods on the
real node reach it at the bridge gateway; ``Collector.spans()`` reads what it wrote.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Fixtures shared with the integration and end-to-end suites.
from tests.e2e.conftest import real_node  # noqa: F401
from tests.integration.conftest import crds, herald  # noqa: F401
from tests.support.cluster import ROOT
from tests.support.operator import free_port
from tests.support.waiting import wait_until

BUILD_TOOLS = ROOT / "tests" / "cluster" / "build-tools.sh"
BUILD_TIMEOUT = 1800  # cold: the collector's modules and a link on 2 cores


def pytest_configure(config):
    config.addinivalue_line("markers", "realnode: runs pods on the real node (containerd + kubelet on this host)")


@dataclass(frozen=True)
class SpanRecord:
    service: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    error: bool
    raw: str  # the span as the collector wrote it, to check that nothing secret left


def _value(v: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    return v


def _attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value") or {}) for a in items or []}


def parse_spans(text: str) -> list[SpanRecord]:
    """The file exporter's JSON lines: one OTLP ExportTraceServiceRequest per line."""
    spans: list[SpanRecord] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        for rs in json.loads(line).get("resourceSpans") or []:
            service = _attributes((rs.get("resource") or {}).get("attributes")).get("service.name", "")
            for ss in rs.get("scopeSpans") or []:
                for s in ss.get("spans") or []:
                    spans.append(
                        SpanRecord(
                            service=service,
                            trace_id=s["traceId"],
                            span_id=s["spanId"],
                            parent_id=s.get("parentSpanId") or "",
                            name=s["name"],
                            kind=int(s.get("kind") or 0),
                            start_ns=int(s["startTimeUnixNano"]),
                            end_ns=int(s["endTimeUnixNano"]),
                            attributes=_attributes(s.get("attributes")),
                            error=(s.get("status") or {}).get("code") == 2,
                            raw=json.dumps(s),
                        )
                    )
    return spans


@dataclass
class Collector:
    port: int
    path: Path
    log_path: Path
    proc: subprocess.Popen

    def endpoint(self, host: str = "127.0.0.1") -> str:
        """The OTLP/HTTP base URL (the exporter adds /v1/traces)."""
        return f"http://{host}:{self.port}"

    def spans(self) -> list[SpanRecord]:
        return parse_spans(self.path.read_text()) if self.path.exists() else []

    def wait_spans(self, predicate: Callable[[list[SpanRecord]], bool], timeout: float, what: str) -> list[SpanRecord]:
        try:
            return wait_until(lambda: s if predicate(s := self.spans()) else None, timeout=timeout, what=what)
        except AssertionError as e:
            names = [(s.service, s.name, s.trace_id[:8]) for s in self.spans()]
            raise AssertionError(f"{e}\nspans so far: {names}\ncollector log:\n{self.log()[-3000:]}") from None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def otelcol_binary() -> Path:
    """The pinned Collector, built (or found in the cache) by build-tools.sh."""
    proc = subprocess.run(
        ["nice", "-n", "10", "bash", str(BUILD_TOOLS), "otelcol"], capture_output=True, text=True, timeout=BUILD_TIMEOUT
    )
    assert proc.returncode == 0, f"build-tools.sh otelcol failed:\n{proc.stderr[-4000:]}"
    binary = Path(proc.stdout.strip().splitlines()[-1]) / "otelcol-herald"
    assert binary.exists(), proc.stdout
    return binary


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def collector(otelcol_binary, tmp_path) -> Iterator[Collector]:
    port = free_port()
    path = tmp_path / "spans.json"
    config = tmp_path / "otelcol.yaml"
    # JSON is YAML: the config written as JSON needs no YAML writer.
    config.write_text(
        json.dumps(
            {
                "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"0.0.0.0:{port}"}}}},
                "exporters": {"file": {"path": str(path), "flush_interval": "100ms"}},
                "service": {
                    "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["file"]}},
                    # No telemetry server of its own (port 8888 would clash between tests).
                    "telemetry": {"metrics": {"level": "none"}},
                },
            }
        )
    )
    log_path = tmp_path / "otelcol.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(otelcol_binary), f"--config=file:{config}"], stdout=log, stderr=log)
    c = Collector(port, path, log_path, proc)
    try:

        def up() -> bool:
            assert proc.poll() is None, f"the collector exited with {proc.returncode}:\n{c.log()}"
            return _listening(port)

        wait_until(up, timeout=30, what=f"the collector listening on :{port}")
        yield c
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

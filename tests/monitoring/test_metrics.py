"""herald.metrics: names, labels, helpers, the /metrics server and promtool's lint."""

from __future__ import annotations

import subprocess

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from herald import metrics as m

# name -> (type, labels) exactly as the operator wiring expects them.
EXPECTED = {
    "herald_publications_total": ("counter", {"adapter", "platform", "outcome"}),
    "herald_attempts_total": ("counter", {"adapter", "platform", "result", "error_class"}),
    "herald_retries_total": ("counter", {"adapter", "error_class"}),
    "herald_queue_depth": ("gauge", {"adapter"}),
    "herald_running_jobs": ("gauge", {"adapter"}),
    "herald_dead_letter_targets": ("gauge", {"adapter"}),
    "herald_attempt_duration_seconds": ("histogram", {"adapter"}),
    "herald_platform_response_seconds": ("histogram", {"adapter", "platform"}),
    "herald_publish_latency_seconds": ("histogram", {"adapter"}),
    "herald_circuit_state": ("gauge", {"adapter"}),
    "herald_rate_limit_remaining": ("gauge", {"adapter"}),
    "herald_adapter_rate_limited": ("gauge", {"adapter"}),
    "herald_adapter_available": ("gauge", {"adapter"}),
    "herald_adapter_credentials_valid": ("gauge", {"adapter"}),
    "herald_alerts_sent_total": ("counter", {"channel", "alertname", "result"}),
    "herald_reconcile_total": ("counter", {"controller", "result"}),
    "herald_reconcile_errors_total": ("counter", {"controller"}),
    "herald_reconcile_time_seconds": ("histogram", {"controller"}),
    "herald_last_reconcile_timestamp_seconds": ("gauge", set()),
    "herald_build_info": ("gauge", {"version", "python_version"}),
}
BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]


def sample(name: str, **labels: str) -> float:
    return m.REGISTRY.get_sample_value(name, labels) or 0.0


def populate(adapter: str = "mastodon-main", platform: str = "mastodon") -> None:
    """Sample values for every Herald metric."""
    m.init_adapter(adapter, platform)
    m.record_publication(adapter, platform, "published")
    m.record_publication(adapter, platform, "failed")
    m.record_attempt(adapter, platform, "published", duration_seconds=3.2, response_seconds=0.21)
    m.record_attempt(adapter, platform, "failed", "rate_limited", duration_seconds=1.0, response_seconds=0.05)
    m.record_retry(adapter, "rate_limited")
    m.observe_publish_latency(adapter, 12.5)
    m.set_queue_depth(adapter, 7)
    m.set_running_jobs(adapter, 2)
    m.set_dead_letter_targets(adapter, 1)
    m.set_circuit_state(adapter, "HalfOpen")
    m.set_rate_limit_remaining(adapter, 299)
    m.set_adapter_rate_limited(adapter, False)
    m.set_adapter_available(adapter, True)
    m.set_adapter_credentials_valid(adapter, True)
    m.record_alert_sent("ops-slack", "HeraldAdapterCircuitOpen", "sent")
    m.record_reconcile("publication", "success", 0.01)


@pytest.fixture
def server():
    srv = m.start_metrics_server(port=0, addr="127.0.0.1")
    yield srv
    srv.stop()


def scrape(url: str) -> httpx.Response:
    with httpx.Client(trust_env=False) as c:
        return c.get(url, timeout=10)


def test_exposition_passes_promtool_check_metrics(server, monitoring_binaries):
    populate()
    resp = scrape(server.url)
    assert resp.status_code == 200
    assert "herald_attempts_total" in resp.text
    proc = subprocess.run(
        [monitoring_binaries["promtool"], "check", "metrics"],
        input=resp.content,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    # promtool prints lint findings (e.g. a counter without _total); none expected.
    assert proc.stdout.decode().strip() == "" and proc.stderr.decode().strip() == ""


def test_server_serves_registry_at_metrics_path(server):
    assert server.url == f"http://127.0.0.1:{server.port}/metrics"
    resp = scrape(server.url)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert "herald_build_info{" in resp.text
    # The process and platform collectors are on the dedicated registry.
    assert "process_cpu_seconds_total" in resp.text
    assert "process_resident_memory_bytes" in resp.text
    assert "python_info" in resp.text


def test_server_stops(server):
    url = server.url
    server.stop()
    with pytest.raises(httpx.HTTPError):
        scrape(url)
    server.stop()  # idempotent (the fixture stops it again too)


def test_names_types_and_labels_are_exact():
    populate(adapter="labels-check", platform="bluesky")
    families = {f.name: f for f in text_string_to_metric_families(m.exposition().decode())}
    for name, (mtype, labels) in EXPECTED.items():
        base = name[: -len("_total")] if mtype == "counter" else name
        assert base in families, f"{name} not exposed"
        fam = families[base]
        assert fam.type == mtype, (name, fam.type)
        seen = set()
        for s in fam.samples:
            seen |= set(s.labels) - {"le"}
        assert seen == labels, (name, seen)
    herald_families = {n for n in families if n.startswith("herald_")}
    assert herald_families == {(n[: -len("_total")] if t == "counter" else n) for n, (t, _) in EXPECTED.items()}


def test_no_label_is_per_publication():
    allowed = {
        "adapter",
        "platform",
        "outcome",
        "result",
        "error_class",
        "channel",
        "alertname",
        "controller",
        "version",
        "python_version",
        "le",
    }
    for fam in text_string_to_metric_families(m.exposition().decode()):
        if fam.name.startswith("herald_"):
            for s in fam.samples:
                assert set(s.labels) <= allowed, (fam.name, s.labels)


def test_histograms_use_the_shared_buckets():
    populate(adapter="buckets", platform="x")
    for name in (
        "herald_attempt_duration_seconds",
        "herald_platform_response_seconds",
        "herald_publish_latency_seconds",
        "herald_reconcile_time_seconds",
    ):
        fam = next(f for f in text_string_to_metric_families(m.exposition().decode()) if f.name == name)
        les = sorted({float(s.labels["le"]) for s in fam.samples if s.name.endswith("_bucket")})
        assert les == [*BUCKETS, float("inf")], name


def test_build_info_is_one_with_versions():
    fam = next(f for f in text_string_to_metric_families(m.exposition().decode()) if f.name == "herald_build_info")
    (s,) = fam.samples
    assert s.value == 1
    assert s.labels["version"] and s.labels["version"] != ""
    assert s.labels["python_version"].count(".") == 2


def test_attempt_helper_counts_and_observes():
    a = "attempts-helper"
    before_fail = sample("herald_attempts_total", adapter=a, platform="x", result="failed", error_class="network")
    m.record_attempt(a, "x", "failed", "network", duration_seconds=4.0, response_seconds=0.7)
    m.record_attempt(a, "x", "published", "network")  # class ignored when published
    assert (
        sample("herald_attempts_total", adapter=a, platform="x", result="failed", error_class="network")
        == before_fail + 1
    )
    assert sample("herald_attempts_total", adapter=a, platform="x", result="published", error_class="none") == 1
    assert sample("herald_attempt_duration_seconds_count", adapter=a) == 1
    assert sample("herald_attempt_duration_seconds_sum", adapter=a) == 4.0
    assert sample("herald_platform_response_seconds_bucket", adapter=a, platform="x", le="1.0") == 1
    assert sample("herald_platform_response_seconds_bucket", adapter=a, platform="x", le="0.5") == 0


def test_unknown_or_missing_error_class_counts_as_unknown_outcome():
    a = "unknown-class"
    m.record_attempt(a, "x", "failed", "teapot")
    m.record_attempt(a, "x", "failed", None)
    m.record_retry(a, "bogus")
    assert sample("herald_attempts_total", adapter=a, platform="x", result="failed", error_class="unknown_outcome") == 2
    assert sample("herald_retries_total", adapter=a, error_class="unknown_outcome") == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda: m.record_publication("a", "x", "maybe"),
        lambda: m.record_attempt("a", "x", "ok"),
        lambda: m.record_alert_sent("c", "A", "lost"),
        lambda: m.record_reconcile("c", "done"),
        lambda: m.set_circuit_state("a", "Ajar"),
        lambda: m.set_circuit_state("a", 3),
    ],
)
def test_invalid_label_values_are_rejected(call):
    with pytest.raises(ValueError):
        call()


def test_circuit_state_values():
    for state, value in (("Closed", 0), ("HalfOpen", 1), ("Open", 2), (2, 2)):
        m.set_circuit_state("circuit", state)
        assert sample("herald_circuit_state", adapter="circuit") == value


def test_boolean_gauges():
    m.set_adapter_rate_limited("bools", True)
    m.set_adapter_available("bools", False)
    m.set_adapter_credentials_valid("bools", False)
    assert sample("herald_adapter_rate_limited", adapter="bools") == 1
    assert m.REGISTRY.get_sample_value("herald_adapter_available", {"adapter": "bools"}) == 0
    assert m.REGISTRY.get_sample_value("herald_adapter_credentials_valid", {"adapter": "bools"}) == 0


def test_init_adapter_creates_zero_series_and_keeps_values():
    m.set_dead_letter_targets("init", 4)
    m.init_adapter("init", "mastodon")
    assert (
        m.REGISTRY.get_sample_value(
            "herald_attempts_total",
            {"adapter": "init", "platform": "mastodon", "result": "failed", "error_class": "auth"},
        )
        == 0
    )
    assert m.REGISTRY.get_sample_value("herald_queue_depth", {"adapter": "init"}) == 0
    assert m.REGISTRY.get_sample_value("herald_dead_letter_targets", {"adapter": "init"}) == 4
    # health gauges stay unknown until set
    assert m.REGISTRY.get_sample_value("herald_adapter_credentials_valid", {"adapter": "init"}) is None


def test_forget_adapter_removes_its_series():
    populate(adapter="gone", platform="x")
    populate(adapter="kept", platform="x")
    m.forget_adapter("gone")
    text = m.exposition().decode()
    assert 'adapter="gone"' not in text
    assert 'adapter="kept"' in text


def test_reconcile_updates_last_timestamp_and_zero_series():
    before = sample("herald_last_reconcile_timestamp_seconds")
    m.record_reconcile("fresh-controller", "success", 0.01)
    after = sample("herald_last_reconcile_timestamp_seconds")
    assert after >= before and after > 1.6e9
    # every result of a new controller exists from the start (rate() needs it)
    assert (
        m.REGISTRY.get_sample_value("herald_reconcile_total", {"controller": "fresh-controller", "result": "error"})
        == 0
    )
    assert m.REGISTRY.get_sample_value("herald_reconcile_errors_total", {"controller": "fresh-controller"}) == 0

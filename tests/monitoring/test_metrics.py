"""herald.metrics: names, labels, helpers, the /metrics server and promtool's lint."""

from __future__ import annotations

import subprocess

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from herald import metrics as m

A = {"namespace", "adapter"}
# name -> (type, labels) exactly as the operator wiring expects them.
EXPECTED = {
    "herald_publications_total": ("counter", A | {"platform", "outcome"}),
    "herald_attempts_total": ("counter", A | {"platform", "result", "error_class"}),
    "herald_retries_total": ("counter", A | {"platform", "error_class"}),
    "herald_dead_letters_total": ("counter", A | {"platform", "error_class"}),
    "herald_queue_depth": ("gauge", A),
    "herald_running_jobs": ("gauge", A),
    "herald_dead_letter_targets": ("gauge", A),
    "herald_attempt_duration_seconds": ("histogram", A | {"platform", "result"}),
    "herald_attempt_container_duration_seconds": ("histogram", A | {"platform", "result"}),
    "herald_platform_response_seconds": ("histogram", A | {"platform"}),
    "herald_publish_latency_seconds": ("histogram", A | {"platform"}),
    "herald_adapter_info": ("gauge", A | {"platform"}),
    "herald_adapter_first_seen_timestamp_seconds": ("gauge", A),
    "herald_circuit_state": ("gauge", A | {"state"}),
    "herald_rate_limit_remaining": ("gauge", A),
    "herald_adapter_rate_limited": ("gauge", A),
    "herald_adapter_available": ("gauge", A),
    "herald_adapter_credentials_valid": ("gauge", A),
    "herald_alerts_sent_total": ("counter", {"channel", "alertname", "result"}),
    "herald_alerts_suppressed_total": ("counter", {"channel", "alertname", "reason"}),
    "herald_reconcile_total": ("counter", {"controller", "result"}),
    "herald_reconcile_errors_total": ("counter", {"controller"}),
    "herald_reconcile_time_seconds": ("histogram", {"controller"}),
    "herald_last_reconcile_timestamp_seconds": ("gauge", set()),
    "herald_workqueue_depth": ("gauge", {"queue"}),
    "herald_api_requests_total": ("counter", {"verb", "code"}),
    "herald_api_request_duration_seconds": ("histogram", {"verb"}),
    "herald_api_request_slot_wait_seconds": ("histogram", {"pool"}),
    "herald_watch_restarts_total": ("counter", {"resource", "reason"}),
    "herald_event_lag_seconds": ("histogram", {"resource"}),
    "herald_decision_event_lag_seconds": ("histogram", set()),
    "herald_alerts_config_invalid": ("gauge", {"channel"}),
    "herald_build_info": ("gauge", {"version", "python_version"}),
}
BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]
NS = "news"


def sample(name: str, **labels: str) -> float:
    return m.REGISTRY.get_sample_value(name, labels) or 0.0


def populate(adapter: str = "mastodon-main", platform: str = "mastodon", ns: str = NS) -> None:
    """Sample values for every Herald metric."""
    m.init_adapter(ns, adapter, platform)
    m.set_alerts_config_invalid("ops-slack", False)
    m.record_publication(ns, adapter, platform, "published")
    m.record_publication(ns, adapter, platform, "failed")
    m.record_attempt(
        ns, adapter, platform, "published", duration_seconds=3.2, container_seconds=3.0, response_seconds=0.21
    )
    m.record_attempt(ns, adapter, platform, "failed", "rate_limited", duration_seconds=1.0, response_seconds=0.05)
    m.record_retry(ns, adapter, platform, "rate_limited")
    m.record_dead_letter(ns, adapter, platform, "rejected")
    m.observe_publish_latency(ns, adapter, platform, 12.5)
    m.set_queue_depth(ns, adapter, 7)
    m.set_running_jobs(ns, adapter, 2)
    m.set_dead_letter_targets(ns, adapter, 1)
    m.set_circuit_state(ns, adapter, "HalfOpen")
    m.set_rate_limit_remaining(ns, adapter, 299)
    m.set_adapter_rate_limited(ns, adapter, False)
    m.set_adapter_available(ns, adapter, True)
    m.set_adapter_credentials_valid(ns, adapter, True)
    m.init_alert_channel("ops-slack", ("HeraldPlatformDown",))
    m.record_alert_sent("ops-slack", "HeraldPlatformDown", "sent")
    m.record_alert_suppressed("ops-slack", "HeraldPlatformDown", "duplicate")
    m.record_reconcile("publication", "success", 0.01)
    m.init_operator()
    m.set_workqueue_depth({"ready": 3, "scheduled": 10})
    m.record_api_request("patch", 200, 0.01)
    m.record_watch_restart("jobs", "expired")
    m.observe_event_lag("pods", 0.4)


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
        "namespace",
        "adapter",
        "state",
        "queue",
        "verb",
        "code",
        "resource",
        "reason",
        "platform",
        "outcome",
        "result",
        "error_class",
        "channel",
        "alertname",
        "controller",
        "version",
        "python_version",
        "pool",
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
        "herald_attempt_container_duration_seconds",
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
    labels = {"namespace": NS, "adapter": a, "platform": "x"}
    before_fail = sample("herald_attempts_total", **labels, result="failed", error_class="network")
    m.record_attempt(NS, a, "x", "failed", "network", duration_seconds=4.0, container_seconds=3, response_seconds=0.7)
    m.record_attempt(NS, a, "x", "published", "network")  # class ignored when published
    assert sample("herald_attempts_total", **labels, result="failed", error_class="network") == before_fail + 1
    assert sample("herald_attempts_total", **labels, result="published", error_class="none") == 1
    assert sample("herald_attempt_duration_seconds_count", **labels, result="failed") == 1
    assert sample("herald_attempt_duration_seconds_sum", **labels, result="failed") == 4.0
    assert sample("herald_attempt_container_duration_seconds_sum", **labels, result="failed") == 3.0
    assert sample("herald_platform_response_seconds_bucket", **labels, le="1.0") == 1
    assert sample("herald_platform_response_seconds_bucket", **labels, le="0.5") == 0


def test_unknown_or_missing_error_class_counts_as_unknown_outcome():
    a = "unknown-class"
    m.record_attempt(NS, a, "x", "failed", "teapot")
    m.record_attempt(NS, a, "x", "failed", None)
    m.record_retry(NS, a, "x", "bogus")
    m.record_dead_letter(NS, a, "x", None)
    labels = {"namespace": NS, "adapter": a, "platform": "x", "error_class": "unknown_outcome"}
    assert sample("herald_attempts_total", **labels, result="failed") == 2
    assert sample("herald_retries_total", **labels) == 1
    assert sample("herald_dead_letters_total", **labels) == 1


def test_error_classes_come_from_error_class():
    from herald.errors import BREAKER_CLASSES, ErrorClass

    assert ("none", *(c.value for c in ErrorClass)) == m.ERROR_CLASSES
    assert set(m.PLATFORM_ERROR_CLASSES) == {c.value for c in BREAKER_CLASSES}
    assert set(m.PLATFORM_ERROR_CLASSES) == {"server_error", "network", "unknown_outcome", "pod_failure"}


@pytest.mark.parametrize(
    "call",
    [
        lambda: m.record_publication(NS, "a", "x", "maybe"),
        lambda: m.record_attempt(NS, "a", "x", "ok"),
        lambda: m.record_alert_sent("c", "A", "lost"),
        lambda: m.record_alert_suppressed("c", "A", "bored"),
        lambda: m.record_reconcile("c", "done"),
        lambda: m.set_circuit_state(NS, "a", "Ajar"),
        lambda: m.set_workqueue_depth({"backlog": 1}),
        lambda: m.record_api_request("fetch", 200),
        lambda: m.record_watch_restart("jobs", "bored"),
    ],
)
def test_invalid_label_values_are_rejected(call):
    with pytest.raises(ValueError):
        call()


def test_circuit_state_is_one_series_per_state():
    for state in ("Closed", "HalfOpen", "Open"):
        m.set_circuit_state(NS, "circuit", state)
        values = {s: sample("herald_circuit_state", namespace=NS, adapter="circuit", state=s) for s in m.CIRCUIT_STATES}
        assert values == {s: (1.0 if s == state else 0.0) for s in m.CIRCUIT_STATES}


def test_boolean_gauges():
    m.set_adapter_rate_limited(NS, "bools", True)
    m.set_adapter_available(NS, "bools", False)
    m.set_adapter_credentials_valid(NS, "bools", False)
    labels = {"namespace": NS, "adapter": "bools"}
    assert sample("herald_adapter_rate_limited", **labels) == 1
    assert m.REGISTRY.get_sample_value("herald_adapter_available", labels) == 0
    assert m.REGISTRY.get_sample_value("herald_adapter_credentials_valid", labels) == 0


def test_init_adapter_creates_every_series_at_zero_and_keeps_values():
    m.set_dead_letter_targets(NS, "init", 4)
    m.init_adapter(NS, "init", "mastodon")
    get = m.REGISTRY.get_sample_value
    base = {"namespace": NS, "adapter": "init", "platform": "mastodon"}
    for ec in m.FAILURE_ERROR_CLASSES:
        assert get("herald_attempts_total", {**base, "result": "failed", "error_class": ec}) == 0
        assert get("herald_retries_total", {**base, "error_class": ec}) == 0
        assert get("herald_dead_letters_total", {**base, "error_class": ec}) == 0
    assert get("herald_attempts_total", {**base, "result": "published", "error_class": "none"}) == 0
    for result in ("published", "failed"):
        assert get("herald_attempt_duration_seconds_count", {**base, "result": result}) == 0
        assert get("herald_attempt_container_duration_seconds_bucket", {**base, "result": result, "le": "+Inf"}) == 0
    assert get("herald_platform_response_seconds_count", base) == 0
    assert get("herald_publish_latency_seconds_bucket", {**base, "le": "1.0"}) == 0
    assert get("herald_adapter_info", base) == 1
    first_seen = get("herald_adapter_first_seen_timestamp_seconds", {"namespace": NS, "adapter": "init"})
    assert first_seen and first_seen > 1.6e9
    m.init_adapter(NS, "init", "mastodon")  # again: the series are not new, nor is the time
    assert get("herald_adapter_first_seen_timestamp_seconds", {"namespace": NS, "adapter": "init"}) == first_seen
    assert get("herald_queue_depth", {"namespace": NS, "adapter": "init"}) == 0
    assert get("herald_dead_letter_targets", {"namespace": NS, "adapter": "init"}) == 4
    # health gauges stay unknown until set
    assert get("herald_adapter_credentials_valid", {"namespace": NS, "adapter": "init"}) is None


def test_forget_adapter_removes_its_series_only():
    populate(adapter="gone", platform="x")
    populate(adapter="gone", platform="x", ns="other")  # same name, another namespace
    populate(adapter="kept", platform="x")
    m.forget_adapter(NS, "gone")
    text = m.exposition().decode()
    assert not [line for line in text.splitlines() if 'adapter="gone"' in line and 'namespace="news"' in line]
    assert [line for line in text.splitlines() if 'adapter="gone"' in line and 'namespace="other"' in line]
    assert 'adapter="kept"' in text


def test_controller_metrics():
    m.init_operator()
    get = m.REGISTRY.get_sample_value
    for resource in m.WATCHED_RESOURCES:
        assert get("herald_event_lag_seconds_count", {"resource": resource}) is not None
        for reason in m.WATCH_RESTART_REASONS:
            assert get("herald_watch_restarts_total", {"resource": resource, "reason": reason}) is not None
    m.set_workqueue_depth({"ready": 5, "deferred": 1, "scheduled": 9, "in_flight": 2})
    assert get("herald_workqueue_depth", {"queue": "scheduled"}) == 9
    before = get("herald_api_requests_total", {"verb": "list", "code": "0"}) or 0
    m.record_api_request(m.api_verb("GET", {"limit": "500"}), 0, 5.0)
    assert get("herald_api_requests_total", {"verb": "list", "code": "0"}) == before + 1
    assert [m.api_verb(*a) for a in [("GET", None), ("GET", {"watch": "true"}), ("POST", None), ("PUT", {})]] == [
        "get",
        "watch",
        "create",
        "update",
    ]
    assert m.api_verb("PATCH") == "patch" and m.api_verb("delete") == "delete"
    for pool in m.REQUEST_POOLS:
        assert get("herald_api_request_slot_wait_seconds_count", {"pool": pool}) is not None


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

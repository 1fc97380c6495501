"""The Grafana dashboard: built as code (and up to date), its structure, and every panel query against
a real Prometheus, for a busy adapter and for an idle one (0, not NaN)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import threading

import pytest

from herald import metrics as m

from .dashboard import (
    DASHBOARD_PATH,
    adapter_regex,
    iter_panels,
    load_dashboard,
    panel_queries,
    rows,
    substitute,
)
from .servers import REPO_ROOT, prometheus_config, wait_until

DS = {"type": "prometheus", "uid": "${datasource}"}
BUILDER = REPO_ROOT / "grafana-dashboards" / "herald.py"


@pytest.fixture(scope="module")
def dash():
    return load_dashboard()


def test_the_json_is_what_the_code_builds():
    proc = subprocess.run([sys.executable, str(BUILDER), "--check"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    chart_copy = REPO_ROOT / "helm" / "herald" / "files" / "herald.json"
    assert chart_copy.read_text() == DASHBOARD_PATH.read_text()


def test_the_drift_check_can_fail(tmp_path):
    stale = tmp_path / "herald.json"
    stale.write_text("{}\n")
    code = (
        "import importlib.util, sys, pathlib\n"
        f"spec = importlib.util.spec_from_file_location('b', {str(BUILDER)!r})\n"
        "b = importlib.util.module_from_spec(spec); sys.modules['b'] = b; spec.loader.exec_module(b)\n"
        f"b.OUTPUTS = (pathlib.Path({str(stale)!r}),)\n"
        "sys.exit(b.main(['--check']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "out of date" in proc.stderr


def test_uid_title_and_no_inputs(dash):
    assert dash["uid"] == "herald-overview"
    assert dash["title"]
    assert "__inputs" not in dash and "__requires" not in dash
    assert "${DS_" not in DASHBOARD_PATH.read_text()


def test_template_variables(dash):
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert list(variables) == ["datasource", "cluster", "job", "namespace", "adapter"]
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    expected = {
        "cluster": "label_values(herald_build_info, cluster)",
        "job": 'label_values(herald_build_info{cluster=~"$cluster"}, job)',
        "namespace": 'label_values(herald_adapter_info{cluster=~"$cluster", job=~"$job"}, namespace)',
        "adapter": (
            'label_values(herald_adapter_info{cluster=~"$cluster", job=~"$job", namespace=~"$namespace"}, adapter)'
        ),
    }
    for name, query in expected.items():
        v = variables[name]
        assert v["type"] == "query" and v["datasource"] == DS
        assert v["query"]["query"] == query
        # All matches series without the label too (a Prometheus without a cluster label).
        assert v["includeAll"] is True and v["allValue"] == ".*"
    assert variables["namespace"]["multi"] and variables["adapter"]["multi"]


def test_every_panel_queries_prometheus_through_the_datasource_variable(dash):
    panels = list(iter_panels(dash))
    assert len(panels) >= 30
    for panel, _row in panels:
        assert panel["datasource"] == DS, panel["title"]
        assert panel["targets"], panel["title"]
        for t in panel["targets"]:
            assert t["datasource"] == DS, panel["title"]
            assert t["expr"].strip(), panel["title"]
            assert t["refId"]


def test_panel_ids_unique(dash):
    ids = [p["id"] for p in dash["panels"]]
    ids += [p["id"] for r in rows(dash) for p in r.get("panels", [])]
    assert len(ids) == len(set(ids))


def test_rows_and_their_panels(dash):
    titles = [r["title"] for r in rows(dash)]
    assert titles == ["Overview", "Adapter $adapter", "Operator health"]
    (repeated,) = [r for r in rows(dash) if r.get("repeat") == "adapter"]
    by_row: dict[str, list[dict]] = {}
    for panel, row in iter_panels(dash):
        by_row.setdefault(row, []).append(panel)

    def exprs(row: str) -> str:
        return " ".join(t["expr"] for p in by_row[row] for t in p["targets"])

    overview = exprs("Overview")
    for metric in (
        "herald_publications_total",
        "herald_attempts_total",
        "herald_retries_total",
        "herald_queue_depth",
        "herald_dead_letter_targets",
        "herald_dead_letters_total",
        "herald_publish_latency_seconds_bucket",
        "herald_attempt_duration_seconds_bucket",
        "herald_attempt_container_duration_seconds_bucket",
    ):
        assert metric in overview, metric
    # Single stats, repeated per adapter.
    stats = [p["title"] for p in by_row[repeated["title"]] if p["type"] == "stat"]
    assert stats == [
        "Circuit",
        "Available",
        "Credentials",
        "Rate limited",
        "Queued",
        "Running",
        "Dead letter",
        "Error rate (5m)",
    ]
    per_adapter = exprs(repeated["title"])
    for metric in ("herald_rate_limit_remaining", "herald_circuit_state", "herald_platform_response_seconds_bucket"):
        assert metric in per_adapter, metric
    for p in by_row[repeated["title"]]:
        for t in p["targets"]:
            assert 'adapter=~"$adapter"' in t["expr"], p["title"]
    health = exprs("Operator health")
    for metric in (
        "herald_reconcile_total",
        "herald_reconcile_errors_total",
        "herald_workqueue_depth",
        "herald_api_requests_total",
        "herald_watch_restarts_total",
        "herald_event_lag_seconds_bucket",
        "herald_alerts_suppressed_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert metric in health, metric


def test_every_query_is_scoped_by_the_variables(dash):
    for panel, row in iter_panels(dash):
        for t in panel["targets"]:
            for selector in re.findall(r"\b(?:herald|process)_[a-z_]+\{([^}]*)\}", t["expr"]):
                assert 'cluster=~"$cluster"' in selector and 'job=~"$job"' in selector, (panel["title"], selector)
                if row != "Operator health":
                    assert 'namespace=~"$namespace", adapter=~"$adapter"' in selector, (panel["title"], selector)


def test_panels_only_use_exported_metrics(dash):
    exported = set()
    for fam in m.REGISTRY.collect():
        exported |= {s.name for s in fam.samples} | {fam.name, fam.name + "_total"}
        if fam.type == "histogram":
            exported |= {fam.name + s for s in ("_bucket", "_count", "_sum")}
    for q in panel_queries(dashboard=dash):
        for used in re.findall(r"\b(?:herald|process)_[a-z_]+", q.expr):
            assert used in exported, (q.panel_title, used)


def test_substitution():
    assert adapter_regex("mastodon-main") == "mastodon-main"
    assert adapter_regex("a.b") == "a\\\\.b"
    vars_ = {"adapter": "x", "__rate_interval": "1m", "__interval": "15s"}
    assert substitute('rate(m{adapter=~"$adapter"}[$__rate_interval])', vars_) == 'rate(m{adapter=~"x"}[1m])'
    assert substitute("${adapter} [[adapter]] ${adapter:regex} $__interval", vars_) == "x x x 15s"
    with pytest.raises(KeyError):
        substitute("$nope", vars_)
    qs = panel_queries("mastodon-main", namespace="news")
    assert qs and all("$" not in q.expr for q in qs)
    assert any('namespace=~"news", adapter=~"mastodon-main"' in q.expr for q in qs)
    assert all("[1m]" in q.expr for q in qs if "$__rate_interval" in q.raw_expr)


class _Traffic:
    """Keeps Herald's metrics moving for one adapter while Prometheus scrapes."""

    def __init__(self, namespace: str, adapter: str) -> None:
        self.ns, self.adapter = namespace, adapter
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        ns, a, p = self.ns, self.adapter, "mastodon"
        m.init_adapter(ns, a, p)
        m.init_controller("publications")
        m.init_operator()
        m.init_alert_channel("dashboard-test", ("HeraldPlatformDown",))
        m.set_circuit_state(ns, a, "Closed")
        m.set_adapter_available(ns, a, True)
        m.set_adapter_credentials_valid(ns, a, True)
        m.set_adapter_rate_limited(ns, a, False)
        i = 0
        while not self._stop.is_set():
            i += 1
            m.record_attempt(
                ns, a, p, "published", duration_seconds=2.0 + i % 5, container_seconds=2, response_seconds=0.1 * (i % 7)
            )
            if i % 3 == 0:
                m.record_attempt(ns, a, p, "failed", "server_error", duration_seconds=1.5, response_seconds=0.6)
                m.record_retry(ns, a, p, "server_error")
            if i % 20 == 0:
                m.record_dead_letter(ns, a, p, "rejected")
            m.record_publication(ns, a, p, "published" if i % 4 else "failed")
            m.observe_publish_latency(ns, a, p, 5.0 + i % 11)
            m.set_queue_depth(ns, a, i % 9)
            m.set_running_jobs(ns, a, i % 3)
            m.set_dead_letter_targets(ns, a, i // 50)
            m.set_rate_limit_remaining(ns, a, 300 - i % 300)
            m.record_alert_sent("dashboard-test", "HeraldPlatformDown", "sent")
            m.record_alert_suppressed("dashboard-test", "HeraldPlatformDown", "duplicate")
            m.record_reconcile("publications", "success" if i % 5 else "error", 0.02 * (i % 4))
            m.set_workqueue_depth({"ready": i % 4, "scheduled": i % 7})
            m.record_api_request(m.api_verb("PATCH"), 200, 0.01 * (i % 5))
            m.observe_event_lag("jobs", 0.1 * (i % 6))
            if i % 10 == 0:
                m.record_watch_restart("pods", "inactive")
            self._stop.wait(0.1)  # pacing of the generated traffic

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _numbers(result: list[dict]) -> list[float]:
    return [float(r["value"][1]) for r in result]


def test_every_panel_query_returns_numbers_from_a_real_prometheus(prometheus_factory):
    ns, busy, idle = "dash-ns", "dash.adapter-1", "idle-adapter"  # "." checks the escaping
    m.init_adapter(ns, idle, "bluesky")  # known, never used: every panel shows 0, not NaN
    for setter in (m.set_adapter_available, m.set_adapter_credentials_valid):
        setter(ns, idle, True)
    m.set_adapter_rate_limited(ns, idle, False)
    m.set_circuit_state(ns, idle, "Closed")
    server = m.start_metrics_server(port=0, addr="127.0.0.1")
    try:
        with _Traffic(ns, busy):
            prom = prometheus_factory(
                prometheus_config(scrape_targets={"herald": [f"127.0.0.1:{server.port}"]}, scrape_interval="1s")
            )
            busy_queries = panel_queries(busy, namespace=ns, rate_interval="1m")
            # The rate limit an idle adapter never reported is unknown, not 0 (the panel says so).
            idle_queries = [
                q
                for q in panel_queries(idle, namespace=ns, rate_interval="1m")
                if q.panel_title != "Rate limit remaining"
            ]
            assert len(busy_queries) >= 40
            pending = {("busy", q.expr): q for q in busy_queries} | {("idle", q.expr): q for q in idle_queries}

            def all_have_numbers():
                for key in list(pending):
                    values = _numbers(prom.query(key[1]))
                    if values and all(math.isfinite(v) for v in values):
                        del pending[key]
                return not pending

            try:
                wait_until(all_have_numbers, timeout=60, interval=0.5, what="numbers in every panel")
            except TimeoutError:
                pytest.fail(
                    "panels without a number: "
                    + "; ".join(f"{k[0]} {q.panel_title}: {q.expr} -> {prom.query(q.expr)}" for k, q in pending.items())
                )
            # The idle adapter's single stats are 0 (its circuit Closed, available: 1).
            for q in idle_queries:
                if q.panel_type == "stat" and q.panel_title not in ("Available", "Credentials", "Version"):
                    assert _numbers(prom.query(q.expr)) == [0.0], q.panel_title
            # The variables select exactly that adapter.
            scoped = prom.query(f'herald_queue_depth{{namespace=~"{ns}", adapter=~"{adapter_regex(busy)}"}}')
            assert {r["metric"]["adapter"] for r in scoped} == {busy}
    finally:
        server.stop()

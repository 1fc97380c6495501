"""The Grafana dashboard: structure, and every panel query against a real Prometheus."""

from __future__ import annotations

import math
import re
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
from .servers import prometheus_config, wait_until

DS = {"type": "prometheus", "uid": "${datasource}"}


@pytest.fixture(scope="module")
def dash():
    return load_dashboard()


def test_uid_title_and_no_inputs(dash):
    assert dash["uid"] == "herald-overview"
    assert dash["title"]
    assert "__inputs" not in dash and "__requires" not in dash
    assert "${DS_" not in DASHBOARD_PATH.read_text()


def test_template_variables(dash):
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    ad = variables["adapter"]
    assert ad["type"] == "query"
    assert ad["datasource"] == DS
    query = ad["query"]["query"] if isinstance(ad["query"], dict) else ad["query"]
    assert query == "label_values(herald_attempts_total, adapter)"
    assert ad["definition"] == query
    assert ad["multi"] is True and ad["includeAll"] is True


def test_every_panel_queries_prometheus_through_the_datasource_variable(dash):
    panels = list(iter_panels(dash))
    assert len(panels) >= 20
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
    assert titles[0] == "Overview"
    assert "Operator health" in titles
    repeated = [r for r in rows(dash) if r.get("repeat") == "adapter"]
    assert len(repeated) == 1
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
        "herald_publish_latency_seconds_bucket",
        "herald_attempt_duration_seconds_bucket",
    ):
        assert metric in overview, metric
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(herald_publish_latency_seconds_bucket" in overview
        assert f"histogram_quantile({q}, sum by (le) (rate(herald_attempt_duration_seconds_bucket" in overview
    per_adapter = exprs(repeated[0]["title"])
    for metric in ("herald_rate_limit_remaining", "herald_circuit_state", "herald_platform_response_seconds_bucket"):
        assert metric in per_adapter, metric
    # every query of the repeated row is scoped to the row's adapter
    for p in by_row[repeated[0]["title"]]:
        for t in p["targets"]:
            assert 'adapter=~"$adapter"' in t["expr"], p["title"]
    health = exprs("Operator health")
    for metric in (
        "herald_reconcile_total",
        "herald_reconcile_errors_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        assert metric in health, metric


def test_adapter_scoped_queries_use_the_variable(dash):
    for panel, row in iter_panels(dash):
        if row == "Operator health":
            continue
        for t in panel["targets"]:
            assert "$adapter" in t["expr"], panel["title"]


def test_panels_only_use_exported_metrics(dash):
    exported = set()
    for fam in m.REGISTRY.collect():
        exported |= {s.name for s in fam.samples} | {fam.name, fam.name + "_total"}
    exported |= {
        n + "_bucket"
        for n in (
            "herald_attempt_duration_seconds",
            "herald_platform_response_seconds",
            "herald_publish_latency_seconds",
            "herald_reconcile_time_seconds",
        )
    }
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
    qs = panel_queries("mastodon-main")
    assert qs and all("$" not in q.expr for q in qs)
    assert any('adapter=~"mastodon-main"' in q.expr for q in qs)
    assert all("[1m]" in q.expr for q in qs if "rate(" in q.expr)


class _Traffic:
    """Keeps Herald's metrics moving for one adapter while Prometheus scrapes."""

    def __init__(self, adapter: str) -> None:
        self.adapter = adapter
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        a, p = self.adapter, "mastodon"
        m.init_adapter(a, p)
        m.init_controller("publication")
        m.set_circuit_state(a, "Closed")
        m.set_adapter_available(a, True)
        m.set_adapter_credentials_valid(a, True)
        m.set_adapter_rate_limited(a, False)
        i = 0
        while not self._stop.is_set():
            i += 1
            m.record_attempt(a, p, "published", duration_seconds=2.0 + i % 5, response_seconds=0.1 * (i % 7))
            if i % 3 == 0:
                m.record_attempt(a, p, "failed", "server_error", duration_seconds=1.5, response_seconds=0.6)
                m.record_retry(a, "server_error")
            m.record_publication(a, p, "published" if i % 4 else "failed")
            m.observe_publish_latency(a, 5.0 + i % 11)
            m.set_queue_depth(a, i % 9)
            m.set_running_jobs(a, i % 3)
            m.set_dead_letter_targets(a, i // 50)
            m.set_rate_limit_remaining(a, 300 - i % 300)
            m.record_alert_sent("dashboard-test", "HeraldAdapterCircuitOpen", "sent")
            m.record_reconcile("publication", "success" if i % 5 else "error", 0.02 * (i % 4))
            self._stop.wait(0.1)  # pacing of the generated traffic

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_every_panel_query_returns_data_from_a_real_prometheus(prometheus_factory):
    adapter = "dash-ns/dash.adapter-1"  # "<ns>/<name>" like the operator; "." checks the escaping
    server = m.start_metrics_server(port=0, addr="127.0.0.1")
    try:
        with _Traffic(adapter):
            prom = prometheus_factory(
                prometheus_config(
                    scrape_targets={"herald": [f"127.0.0.1:{server.port}"]},
                    scrape_interval="1s",
                )
            )
            queries = panel_queries(adapter, rate_interval="1m")
            assert len(queries) >= 30
            pending = {q.expr: q for q in queries}

            def all_have_data():
                for expr in list(pending):
                    result = prom.query(expr)
                    values = [float(r["value"][1]) for r in result]
                    if values and all(not math.isnan(v) for v in values):
                        del pending[expr]
                return not pending

            try:
                wait_until(all_have_data, timeout=60, interval=0.5, what="data for every panel")
            except TimeoutError:
                pytest.fail("panels without data: " + "; ".join(f"{q.panel_title}: {q.expr}" for q in pending.values()))
            # The adapter regex really selects that adapter only.
            scoped = prom.query(f'herald_queue_depth{{adapter=~"{adapter_regex(adapter)}"}}')
            assert {r["metric"]["adapter"] for r in scoped} == {adapter}
    finally:
        server.stop()

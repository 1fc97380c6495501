"""Herald's monitoring end to end, on the kwok cluster: the operator as a real process, scraped by a
real Prometheus.

* Every query of every panel of grafana-dashboards/herald.json returns data for a scenario that
  exercises every metric family the dashboard uses.
* alert-rules/herald.rules.yml loaded into Prometheus, a real Alertmanager routed like
  alert-rules/alertmanager/alertmanager.yml: a storm of failing publications reaches the webhook as
  a firing, critical HeraldHighErrorRate for the adapter.

These run on the kwok nodes only (no real node needed).
"""

from __future__ import annotations

import copy
import json
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.monitoring.dashboard import panel_queries
from tests.monitoring.receivers import RecordingReceiver
from tests.monitoring.servers import REPO_ROOT, RULES_FILE, prometheus_config
from tests.support.herald import fate, result
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster

EXAMPLE_ALERTMANAGER = REPO_ROOT / "alert-rules" / "alertmanager" / "alertmanager.yml"
SCRAPE_JOB = "herald-operator"  # HeraldOperatorDown selects job=~".*herald.*"


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def receiver():
    with RecordingReceiver() as r:
        yield r


@pytest.fixture
def start_operator(cluster, namespace, crds, tmp_path):
    """``start(env=None)`` -> a running OperatorProcess for the test namespace; stopped at teardown."""
    started: list[OperatorProcess] = []

    def start(env: dict[str, str] | None = None) -> OperatorProcess:
        proc = OperatorProcess(cluster.kubeconfig, namespace, tmp_path, env=env)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()
    if started:  # captured: pytest shows it only when the test failed
        print(started[0].log()[-20000:])


def _finite(result_: list[dict]) -> bool:
    """At least one sample of an instant-query result is a number (not NaN/Inf)."""
    for r in result_:
        value = r.get("value")
        if value is not None and math.isfinite(float(value[1])):
            return True
    return False


def _value(prom, expr: str) -> float | None:
    res = prom.query(expr)
    return float(res[0]["value"][1]) if res else None


def _scraping(prom, port: int) -> None:
    wait_until(
        lambda: any(t["health"] == "up" and t["scrapeUrl"].endswith(f":{port}/metrics") for t in prom.targets()),
        timeout=30,
        what=f"Prometheus scraping the operator on :{port}",
    )


def _herald_prometheus(prometheus_factory, operator: OperatorProcess, **kw):
    prom = prometheus_factory(
        prometheus_config(
            scrape_targets={SCRAPE_JOB: [f"127.0.0.1:{operator.metrics_port}"]},
            scrape_interval="1s",
            evaluation_interval="1s",
            **kw,
        )
    )
    _scraping(prom, operator.metrics_port)
    return prom


def _wait_series(prom, selector: str, timeout: float = 30) -> None:
    """Wait until Prometheus has scraped ``selector`` at least twice (rate() needs two samples)."""
    prom.wait_for_query(f"count_over_time({selector}[1m]) >= 2", timeout=timeout)


# -- 1. the dashboard ------------------------------------------------------------------------------


def _alerts_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "herald-alerts.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "retry": {"attempts": 1, "initialBackoffSeconds": 0.1, "maxBackoffSeconds": 0.1},
                "channels": [
                    {
                        "type": "webhook",
                        "name": "audit",
                        "url": url + "/herald",
                        "secret": "a-test-secret-of-enough-length",
                        "minSeverity": "warning",
                    }
                ],
            }
        )
    )
    return path


def test_every_dashboard_panel_has_data(
    start_operator,
    herald,
    namespace,
    prometheus_factory,
    receiver,
    tmp_path,
):
    operator = start_operator(env={"HERALD_ALERTS_CONFIG": str(_alerts_config(tmp_path, receiver.url))})
    reset_at = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rate_limit = {"remaining": 250, "resetAt": reset_at}
    ok = result(postId="1", url="https://example.social/@h/1", responseSeconds=0.2, rateLimit=rate_limit)

    def failing_first(error_class: str) -> dict[str, str]:
        # Attempt 1 fails with error_class, every later attempt is published; each pod runs 1s so
        # that a concurrency of 1 makes the others queue.
        return fate(
            result(
                "failed",
                errorClass=error_class,
                message=f"simulated {error_class}",
                responseSeconds=0.4,
                rateLimit={"remaining": 249, "resetAt": reset_at},
            ),
            exit_code=1,
            fail_attempts="1",
            success=ok,
            duration="1s",
        )

    herald.adapter(
        "main",
        annotations=failing_first("server_error"),
        concurrency=1,
        retryPolicy={"backoff": {"initial": "1s", "max": "2s", "jitter": 0}},
        circuitBreaker={"failureThreshold": 50},
    )
    # A second adapter whose platform is down: its breaker opens at the first failure.
    herald.adapter(
        "down",
        annotations=fate(result("failed", errorClass="server_error", message="HTTP 503"), exit_code=1),
        circuitBreaker={"failureThreshold": 1, "cooldown": "10m", "maxCooldown": "30m"},
    )
    main, down = f"{namespace}/main", f"{namespace}/down"
    prom = _herald_prometheus(prometheus_factory, operator)
    # The adapters' zero series are scraped before anything happens, so rate() sees every change.
    _wait_series(prom, f'herald_attempts_total{{adapter="{main}",result="failed",error_class="server_error"}}')
    _wait_series(prom, f'herald_circuit_state{{adapter="{down}"}}')

    # Wave 1: four publications through a 1-slot adapter (three wait), each failing once with
    # server_error and published on the retry; one more whose budget is a single attempt: dead letter.
    for i in range(4):
        herald.publication(f"wave1-{i}", ["main"])
    herald.publication("doomed", ["main"], retryPolicy={"maxAttempts": 1})
    herald.publication("probe", ["down"], retryPolicy={"maxAttempts": 1})
    herald.wait_phase("doomed", "Failed", timeout=60)
    for i in range(4):
        herald.wait_phase(f"wave1-{i}", "Published", timeout=60)
    # Wave 2: another error class.
    herald.patch_adapter("main", {"jobTemplate": {"podAnnotations": failing_first("network")}})
    for i in range(2):
        herald.publication(f"wave2-{i}", ["main"])
    for i in range(2):
        herald.wait_phase(f"wave2-{i}", "Published", timeout=60)
    # The operator's own alerts went out (dead letter, circuit open): herald_alerts_sent_total.
    wait_until(
        lambda: (
            {json.loads(r.body).get("alertname") for r in receiver.requests}
            >= {"HeraldPublicationDeadLettered", "HeraldAdapterCircuitOpen"}
        ),
        timeout=30,
        what="the operator's own alerts at the webhook",
    )

    # The scenario really happened, as Prometheus saw it.
    checks = {
        f'max_over_time(herald_queue_depth{{adapter="{main}"}}[5m])': lambda v: v >= 1,
        f'max_over_time(herald_dead_letter_targets{{adapter="{main}"}}[5m])': lambda v: v == 1,
        f'max_over_time(herald_circuit_state{{adapter="{down}"}}[5m])': lambda v: v == 2,
        f'herald_rate_limit_remaining{{adapter="{main}"}}': lambda v: v in (249, 250),
        f'sum(increase(herald_retries_total{{adapter="{main}"}}[5m]))': lambda v: v > 0,
        f'count(increase(herald_attempts_total{{adapter="{main}",result="failed"}}[5m]) > 0)': lambda v: v >= 2,
        'sum(herald_alerts_sent_total{result="sent"})': lambda v: v >= 2,
    }
    for expr, ok_ in checks.items():
        wait_until(
            lambda: (v := _value(prom, expr)) is not None and ok_(v),
            timeout=30,
            what=f"{expr} (last {_value(prom, expr)})",
        )

    # Every query of every panel, for the adapter and for All: data, and at least one number.
    queries = panel_queries(adapter=main) + panel_queries()
    assert len(queries) >= 30
    deadline = time.monotonic() + 60
    missing: list[str] = []
    for q in queries:
        try:
            prom.wait_for_query(q.expr, _finite, timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            missing.append(f"panel {q.panel_id} {q.panel_title!r} [{q.ref_id}]: {q.expr} -> {prom.query(q.expr)}")
    assert not missing, "dashboard queries without data:\n" + "\n".join(missing)


# -- 2. alerts end to end --------------------------------------------------------------------------


def _alertmanager_config(receiver_url: str) -> dict:
    """The example configuration's routes, grouping and inhibitions, with every receiver replaced by
    a webhook to the local receiver (path = receiver name) and short timers."""
    example = yaml.safe_load(EXAMPLE_ALERTMANAGER.read_text())
    route = copy.deepcopy(example["route"])
    route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    receivers = [
        {"name": r["name"], "webhook_configs": [{"url": f"{receiver_url}/{r['name']}", "send_resolved": True}]}
        for r in example["receivers"]
    ]
    return {"route": route, "inhibit_rules": copy.deepcopy(example["inhibit_rules"]), "receivers": receivers}


def _firing(receiver: RecordingReceiver, path: str, adapter: str) -> dict | None:
    for req in receiver.requests:
        if req.path != path:
            continue
        payload = req.json()
        for alert in payload.get("alerts", []):
            labels = alert["labels"]
            if (
                labels.get("alertname") == "HeraldHighErrorRate"
                and labels.get("severity") == "critical"
                and labels.get("adapter") == adapter
                and alert.get("status") == "firing"
            ):
                return payload
    return None


def test_failure_storm_pages_through_alertmanager(
    start_operator,
    herald,
    namespace,
    prometheus_factory,
    alertmanager_factory,
    receiver,
):
    operator = start_operator()
    am = alertmanager_factory(_alertmanager_config(receiver.url))
    # `rejected` is final (no retry) and does not count towards the circuit breaker, so the adapter
    # stays available and HeraldPlatformDown cannot inhibit the error-rate alert.
    herald.adapter(
        "storm",
        annotations=fate(result("failed", errorClass="rejected", message="HTTP 422"), exit_code=1),
        concurrency=5,
        circuitBreaker={"failureThreshold": 100},
    )
    adapter = f"{namespace}/storm"
    prom = _herald_prometheus(prometheus_factory, operator, rule_files=[RULES_FILE], alertmanagers=[am.address])
    _wait_series(prom, f'herald_attempts_total{{adapter="{adapter}",result="failed",error_class="rejected"}}')
    wait_until(
        lambda: prom.query(f'sum(rate(herald_attempts_total{{adapter="{adapter}"}}[5m]))'),
        timeout=30,
        what="the error-rate denominator",
    )

    for i in range(20):
        herald.publication(f"storm-{i}", ["storm"])
    for i in range(20):
        herald.wait_phase(f"storm-{i}", "Failed", timeout=60)

    prom.wait_for_alert(
        "HeraldHighErrorRate", state="pending", labels={"adapter": adapter, "severity": "critical"}, timeout=30
    )
    prom.wait_for_alert("HeraldHighErrorRate", labels={"adapter": adapter, "severity": "critical"}, timeout=120)
    # Critical: the on-call receiver, and (via the last route) the generic webhook too.
    payload = wait_until(
        lambda: _firing(receiver, "/herald-oncall", adapter),
        timeout=60,
        what="HeraldHighErrorRate at the herald-oncall webhook",
    )
    assert payload["status"] == "firing"
    assert payload["receiver"] == "herald-oncall"
    assert payload["groupLabels"] == {"alertname": "HeraldHighErrorRate", "adapter": adapter}
    alert = next(a for a in payload["alerts"] if a["labels"]["severity"] == "critical")
    assert set(alert["labels"]) == {"alertname", "severity", "adapter"}  # sum by (adapter)
    assert alert["annotations"]["runbook_url"].endswith("#heraldhigherrorrate")
    assert adapter in alert["annotations"]["description"]
    # The warning of the same alert and adapter is inhibited by the critical one.
    assert all(a["labels"]["severity"] == "critical" for a in payload["alerts"]), payload["alerts"]
    generic = wait_until(
        lambda: _firing(receiver, "/herald-webhook", adapter),
        timeout=30,
        what="HeraldHighErrorRate at the herald-webhook webhook",
    )
    assert generic["receiver"] == "herald-webhook"

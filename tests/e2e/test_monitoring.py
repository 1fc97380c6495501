"""Herald's monitoring end to end, on the kwok cluster: the operator as a real process, scraped by a
real Prometheus that evaluates alert-rules/herald.rules.yml, and a real Alertmanager configured with
Herald's routes (alert-rules/alertmanager/herald.yml merged into a configuration with other routes).

* Every query of every panel of grafana-dashboards/herald.json returns numbers, for busy adapters and
  for an idle one (0, not NaN); HeraldDeadLetterGrowing fires for a target dead-lettered right after
  its adapter was created.
* A storm of server errors pages HeraldHighErrorRate once (the warning inhibited); a storm of 401s
  does not (HeraldCredentialsInvalid does).
* One open circuit pages once, with the rule and the operator's own alert both on, and an operator
  restart (a new scrape target, the alert state kept in a ConfigMap) changes nothing.

These run on the kwok nodes only (no real node needed).
"""

from __future__ import annotations

import copy
import json
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from tests.monitoring.dashboard import panel_queries
from tests.monitoring.receivers import RecordingReceiver
from tests.monitoring.servers import REPO_ROOT, RULES_FILE, prometheus_config
from tests.support.herald import fate, result
from tests.support.operator import OperatorProcess
from tests.support.waiting import Timeout, wait_until

pytestmark = pytest.mark.cluster

HERALD_ROUTES = REPO_ROOT / "alert-rules" / "alertmanager" / "herald.yml"
EXISTING_ALERTMANAGER = REPO_ROOT / "tests" / "monitoring" / "data" / "existing-alertmanager.yml"
SCRAPE_JOB = "herald-operator"  # HeraldOperatorDown selects job=~".*herald.*"


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def receiver():
    with RecordingReceiver() as r:
        yield r


@pytest.fixture
def start_operator(cluster, namespace, crds, tmp_path):
    """``start(env=None)`` -> a running OperatorProcess for the test namespace (each with its own
    metrics port, like a new pod); all stopped at teardown."""
    started: list[OperatorProcess] = []

    def start(env: dict[str, str] | None = None) -> OperatorProcess:
        log_dir = tmp_path / f"operator-{len(started)}"
        log_dir.mkdir()
        proc = OperatorProcess(cluster.kubeconfig, namespace, log_dir, env=env)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()
    for proc in started:  # captured: pytest shows it only when the test failed
        print(proc.log()[-20000:])


def _finite(result_: list[dict]) -> bool:
    """Every sample of an instant-query result is a number (not NaN/Inf), and there is one."""
    values = [float(r["value"][1]) for r in result_ if r.get("value") is not None]
    return bool(values) and all(math.isfinite(v) for v in values)


def _value(prom, expr: str) -> float | None:
    res = prom.query(expr)
    return float(res[0]["value"][1]) if res else None


def _scrape_config(*ports: int, **kw) -> dict:
    return prometheus_config(
        scrape_targets={SCRAPE_JOB: [f"127.0.0.1:{p}" for p in ports]},
        scrape_interval="1s",
        evaluation_interval="1s",
        **kw,
    )


def _scraping(prom, port: int) -> None:
    wait_until(
        lambda: any(t["health"] == "up" and t["scrapeUrl"].endswith(f":{port}/metrics") for t in prom.targets()),
        timeout=30,
        what=f"Prometheus scraping the operator on :{port}",
    )


def _herald_prometheus(prometheus_factory, operator: OperatorProcess, **kw):
    prom = prometheus_factory(_scrape_config(operator.metrics_port, **kw))
    _scraping(prom, operator.metrics_port)
    return prom


def _wait_series(prom, selector: str, timeout: float = 30) -> None:
    """Wait until Prometheus has scraped ``selector`` at least twice (rate() needs two samples)."""
    prom.wait_for_query(f"count_over_time({selector}[1m]) >= 2", timeout=timeout)


def _alertmanager_config(receiver_url: str) -> dict:
    """Herald's routes merged into a configuration with other routes, every receiver a webhook to the
    local receiver (path = receiver name), short timers."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "herald_am_merge", REPO_ROOT / "alert-rules" / "alertmanager" / "merge.py"
    )
    assert spec and spec.loader
    merge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(merge)
    cfg = merge.merge(yaml.safe_load(EXISTING_ALERTMANAGER.read_text()), yaml.safe_load(HERALD_ROUTES.read_text()))
    cfg = copy.deepcopy(cfg)
    cfg["global"] = {"resolve_timeout": "5m"}
    cfg["receivers"] = [
        {"name": r["name"], "webhook_configs": [{"url": f"{receiver_url}/{r['name']}", "send_resolved": True}]}
        for r in cfg["receivers"]
    ]

    def fast(route: dict) -> None:
        route.update(group_wait="1s", group_interval="1s")
        for child in route.get("routes", []):
            fast(child)

    fast(cfg["route"])
    return cfg


def _notifications(receiver: RecordingReceiver, path: str, alertname: str, **labels: str) -> list[dict]:
    """The notifications at ``path`` that carry a firing ``alertname`` with ``labels``."""
    out = []
    for req in receiver.requests:
        if req.path != path:
            continue
        payload = req.json()
        for alert in payload.get("alerts", []):
            lbl = alert["labels"]
            if (
                lbl.get("alertname") == alertname
                and alert.get("status") == "firing"
                and all(lbl.get(k) == v for k, v in labels.items())
            ):
                out.append(payload)
                break
    return out


# -- 1. the dashboard, and dead letters ---------------------------------------------------------------


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


def test_every_dashboard_panel_has_data(start_operator, herald, namespace, prometheus_factory, receiver, tmp_path):
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
    # A platform that is down: its breaker opens at the first failure.
    herald.adapter(
        "down",
        annotations=fate(result("failed", errorClass="server_error", message="HTTP 503"), exit_code=1),
        circuitBreaker={"failureThreshold": 1, "cooldown": "10m", "maxCooldown": "30m"},
    )
    # An adapter that never publishes anything: the dashboard shows it as 0s.
    herald.adapter("idle")
    prom = _herald_prometheus(prometheus_factory, operator, rule_files=[RULES_FILE])
    # The adapters' zero series are scraped before anything happens, so rate() sees every change.
    sel = f'namespace="{namespace}"'
    _wait_series(prom, f'herald_attempts_total{{{sel},adapter="main",result="failed",error_class="server_error"}}')
    _wait_series(prom, f'herald_circuit_state{{{sel},adapter="down",state="Open"}}')
    _wait_series(prom, f'herald_adapter_info{{{sel},adapter="idle"}}')

    # Created and dead-lettered at once, very likely before its first scrape (the gauge-based rule
    # never saw such a target): HeraldDeadLetterGrowing fires all the same.
    herald.adapter("quick", annotations=fate(result("failed", errorClass="rejected", message="HTTP 422"), exit_code=1))
    herald.publication("quick-1", ["quick"], retryPolicy={"maxAttempts": 1})
    # Wave 1: four publications through a 1-slot adapter (three wait), each failing once with
    # server_error and published on the retry; one more whose budget is a single attempt: dead letter.
    for i in range(4):
        herald.publication(f"wave1-{i}", ["main"])
    herald.publication("doomed", ["main"], retryPolicy={"maxAttempts": 1})
    herald.publication("probe", ["down"], retryPolicy={"maxAttempts": 1})
    herald.wait_phase("doomed", "Failed", timeout=60)
    herald.wait_phase("quick-1", "Failed", timeout=60)
    for i in range(4):
        herald.wait_phase(f"wave1-{i}", "Published", timeout=60)
    # Wave 2: another error class.
    herald.patch_adapter("main", {"jobTemplate": {"podAnnotations": failing_first("network")}})
    for i in range(2):
        herald.publication(f"wave2-{i}", ["main"])
    for i in range(2):
        herald.wait_phase(f"wave2-{i}", "Published", timeout=60)
    # The operator's own alerts went out, under the rules' names.
    wait_until(
        lambda: (
            {json.loads(r.body).get("alertname") for r in receiver.requests}
            >= {"HeraldDeadLetterGrowing", "HeraldPlatformDown"}
        ),
        timeout=30,
        what="the operator's own alerts at the webhook",
    )
    for adapter in ("quick", "main"):
        prom.wait_for_alert("HeraldDeadLetterGrowing", labels={"namespace": namespace, "adapter": adapter}, timeout=60)

    # The scenario really happened, as Prometheus saw it.
    checks = {
        f'max_over_time(herald_queue_depth{{{sel},adapter="main"}}[5m])': lambda v: v >= 1,
        f'max_over_time(herald_dead_letter_targets{{{sel},adapter="main"}}[5m])': lambda v: v == 1,
        f'sum(herald_dead_letters_total{{{sel},adapter="main"}})': lambda v: v == 1,
        f'max_over_time(herald_circuit_state{{{sel},adapter="down",state="Open"}}[5m])': lambda v: v == 1,
        f'herald_rate_limit_remaining{{{sel},adapter="main"}}': lambda v: v in (249, 250),
        f'sum(increase(herald_retries_total{{{sel},adapter="main"}}[5m]))': lambda v: v > 0,
        f'count(increase(herald_attempts_total{{{sel},adapter="main",result="failed"}}[5m]) > 0)': lambda v: v >= 2,
        f'sum(herald_attempt_duration_seconds_count{{{sel},adapter="main"}})': lambda v: v >= 6,
        'sum(herald_alerts_sent_total{result="sent"})': lambda v: v >= 2,
    }
    for expr, ok_ in checks.items():
        wait_until(
            lambda: (v := _value(prom, expr)) is not None and ok_(v),
            timeout=30,
            what=f"{expr} (last {_value(prom, expr)})",
        )
    # The operator's own measure of an attempt (Job created -> outcome seen) is the pod's second or
    # more, not the container's whole seconds rounded down.
    mean = _value(
        prom,
        f'sum(herald_attempt_duration_seconds_sum{{{sel},adapter="main"}})'
        f' / sum(herald_attempt_duration_seconds_count{{{sel},adapter="main"}})',
    )
    assert mean is not None and mean >= 0.5, mean

    # Every query of every panel, per adapter, for All, and for the idle adapter: numbers.
    queries = (
        panel_queries(adapter="main", namespace=namespace)
        + panel_queries()
        + [q for q in panel_queries(adapter="idle", namespace=namespace) if q.panel_title != "Rate limit remaining"]
    )
    assert len(queries) >= 100
    deadline = time.monotonic() + 90
    missing: list[str] = []
    for q in queries:
        try:
            prom.wait_for_query(q.expr, _finite, timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            missing.append(f"panel {q.panel_id} {q.panel_title!r} [{q.ref_id}]: {q.expr} -> {prom.query(q.expr)}")
    assert not missing, "dashboard queries without numbers:\n" + "\n".join(missing)


# -- 2. the error rate ------------------------------------------------------------------------------


def test_a_server_error_storm_pages_once_and_a_401_storm_does_not(
    start_operator, herald, namespace, prometheus_factory, alertmanager_factory, receiver
):
    operator = start_operator()
    am = alertmanager_factory(_alertmanager_config(receiver.url))
    # server_error points at the platform; a high breaker threshold keeps the circuit (and so
    # HeraldPlatformDown, which would inhibit the error rate) out of it.
    herald.adapter(
        "storm",
        annotations=fate(result("failed", errorClass="server_error", message="HTTP 500"), exit_code=1),
        concurrency=5,
        circuitBreaker={"failureThreshold": 100},
    )
    herald.adapter(
        "expired",
        annotations=fate(result("failed", errorClass="auth", message="HTTP 401"), exit_code=1),
        concurrency=5,
    )
    prom = _herald_prometheus(prometheus_factory, operator, rule_files=[RULES_FILE], alertmanagers=[am.address])
    sel = f'namespace="{namespace}"'
    _wait_series(prom, f'herald_attempts_total{{{sel},adapter="storm",result="failed",error_class="server_error"}}')
    _wait_series(prom, f'herald_attempts_total{{{sel},adapter="expired",result="failed",error_class="auth"}}')

    for i in range(15):
        herald.publication(f"storm-{i}", ["storm"], retryPolicy={"maxAttempts": 1})
        herald.publication(f"expired-{i}", ["expired"], retryPolicy={"maxAttempts": 1})
    for i in range(15):
        herald.wait_phase(f"storm-{i}", "Failed", timeout=60)
    prom.wait_for_alert("HeraldHighErrorRate", labels={"adapter": "storm", "severity": "critical"}, timeout=120)
    # 401s have their own alert and never count as an error rate.
    prom.wait_for_alert("HeraldCredentialsInvalid", labels={"adapter": "expired"}, timeout=120)
    assert not [
        a
        for a in prom.alerts()
        if a["labels"]["alertname"] == "HeraldHighErrorRate" and a["labels"].get("adapter") == "expired"
    ]

    (page,) = wait_until(
        lambda: _notifications(receiver, "/herald-oncall", "HeraldHighErrorRate", adapter="storm"),
        timeout=60,
        what="HeraldHighErrorRate at the herald-oncall webhook",
    )
    assert page["receiver"] == "herald-oncall"
    assert page["groupLabels"] == {"alertname": "HeraldHighErrorRate", "namespace": namespace, "adapter": "storm"}
    (alert,) = page["alerts"]
    assert alert["labels"] == {
        "alertname": "HeraldHighErrorRate",
        "severity": "critical",
        "namespace": namespace,
        "adapter": "storm",
    }
    assert alert["annotations"]["runbook_url"].endswith("#heraldhigherrorrate")
    assert "adapter storm in namespace" in alert["annotations"]["description"]
    # The warning of the same alert and adapter is inhibited by the critical one: nobody got it.
    wait_until(
        lambda: am.find_alert("HeraldHighErrorRate", {"adapter": "storm", "severity": "warning"}),
        timeout=60,
        what="the warning in Alertmanager",
    )
    warning = am.find_alert("HeraldHighErrorRate", {"adapter": "storm", "severity": "warning"})
    assert warning["status"]["state"] == "suppressed" and warning["status"]["inhibitedBy"]
    assert not _notifications(receiver, "/herald-team", "HeraldHighErrorRate", adapter="storm")


# -- 3. one cause, one page -------------------------------------------------------------------------


def _prometheus_sent(prom) -> float:
    text = httpx.get(prom.url + "/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prometheus_notifications_sent_total")
    )


def test_one_open_circuit_pages_once_through_a_restart(
    start_operator, herald, namespace, prometheus_factory, alertmanager_factory, receiver, tmp_path
):
    am = alertmanager_factory(_alertmanager_config(receiver.url))
    alerts = tmp_path / "herald-alerts.yaml"
    alerts.write_text(yaml.safe_dump({"channels": [{"type": "alertmanager", "url": am.url}]}))
    env = {
        "HERALD_ALERTS_CONFIG": str(alerts),
        "HERALD_ALERTS_STATE_CONFIGMAP": f"{namespace}/herald-alerts-state",
    }
    first = start_operator(env=env)
    herald.adapter(
        "down",
        annotations=fate(result("failed", errorClass="server_error", message="HTTP 503"), exit_code=1),
        circuitBreaker={"failureThreshold": 1, "cooldown": "30m", "maxCooldown": "30m"},
    )
    prom = _herald_prometheus(prometheus_factory, first, rule_files=[RULES_FILE], alertmanagers=[am.address])
    _wait_series(prom, f'herald_circuit_state{{namespace="{namespace}",adapter="down",state="Open"}}')
    herald.publication("probe", ["down"], retryPolicy={"maxAttempts": 1})
    herald.wait_adapter(
        "down",
        lambda a: (a.get("status") or {}).get("circuit", {}).get("state") == "Open",
        timeout=60,
        what="circuit open",
    )
    labels = {"namespace": namespace, "adapter": "down"}

    # The operator pages at once; Prometheus' rule fires a minute later, for the same alert.
    wait_until(
        lambda: _notifications(receiver, "/herald-oncall", "HeraldPlatformDown", **labels),
        timeout=60,
        what="HeraldPlatformDown paged",
    )
    sent_before = _prometheus_sent(prom)
    fired = prom.wait_for_alert("HeraldPlatformDown", labels=labels, timeout=150)
    assert fired["labels"] == {"alertname": "HeraldPlatformDown", "severity": "critical", **labels}
    wait_until(lambda: _prometheus_sent(prom) > sent_before, timeout=30, what="Prometheus sending the alert")
    in_am = [a for a in am.alerts() if a["labels"]["alertname"] == "HeraldPlatformDown"]
    assert len(in_am) == 1 and in_am[0]["labels"] == fired["labels"]  # one alert, from both paths
    starts_at = in_am[0]["startsAt"]
    # Alertmanager's groups flush every second here: a second page would come within seconds.
    with pytest.raises(Timeout):
        wait_until(
            lambda: len(_notifications(receiver, "/herald-oncall", "HeraldPlatformDown", **labels)) > 1,
            timeout=5,
            what="a second page",
        )

    # An operator restart: a new process and scrape target (a new instance label); the alert state
    # comes back from the ConfigMap, the circuit state from the PlatformAdapter's status.
    first.stop()
    second = start_operator(env=env)
    prom.reload(_scrape_config(second.metrics_port, rule_files=[RULES_FILE], alertmanagers=[am.address]))
    _scraping(prom, second.metrics_port)
    _wait_series(
        prom,
        f'herald_circuit_state{{namespace="{namespace}",adapter="down",state="Open",instance="127.0.0.1:{second.metrics_port}"}}',
    )
    still = prom.wait_for_alert("HeraldPlatformDown", labels=labels, timeout=30)
    assert still["activeAt"] == fired["activeAt"]  # never went back to pending
    wait_until(
        lambda: any(
            a["labels"]["alertname"] == "HeraldPlatformDown" and a["updatedAt"] > in_am[0]["updatedAt"]
            for a in am.alerts()
        ),
        timeout=90,
        what="the alert re-sent after the restart",
    )
    again = [a for a in am.alerts() if a["labels"]["alertname"] == "HeraldPlatformDown"]
    assert len(again) == 1 and again[0]["startsAt"] == starts_at
    assert len(_notifications(receiver, "/herald-oncall", "HeraldPlatformDown", **labels)) == 1
    # HeraldPlatformDown, and HeraldDeadLetterGrowing for the probe (one attempt allowed).
    assert "restored 2 alert(s)" in second.log()

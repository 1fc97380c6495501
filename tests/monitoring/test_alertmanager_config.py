"""Herald's Alertmanager routes: merged into a configuration that already has other routes, checked
by amtool, and delivering through a real Alertmanager (grouping, inhibition, one page per cause)."""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from .receivers import RecordingReceiver
from .servers import REPO_ROOT, wait_until

HERALD = REPO_ROOT / "alert-rules" / "alertmanager" / "herald.yml"
MERGE = REPO_ROOT / "alert-rules" / "alertmanager" / "merge.py"
EXISTING = Path(__file__).parent / "data" / "existing-alertmanager.yml"


def load_merge():
    spec = importlib.util.spec_from_file_location("herald_alertmanager_merge", MERGE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def merged() -> dict:
    return load_merge().merge(yaml.safe_load(EXISTING.read_text()), yaml.safe_load(HERALD.read_text()))


@pytest.fixture
def merged_file(tmp_path) -> Path:
    """The merge tool's output, as a user runs it."""
    proc = subprocess.run(
        [sys.executable, str(MERGE), str(EXISTING)], capture_output=True, text=True, timeout=60, check=True
    )
    path = tmp_path / "alertmanager.yml"
    path.write_text(proc.stdout)
    return path


def test_amtool_checks_the_merged_configuration(monitoring_binaries, merged_file):
    proc = subprocess.run(
        [monitoring_binaries["amtool"], "check-config", str(merged_file)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    for kind in ("slack_configs", "discord_configs", "telegram_configs", "webhook_configs"):
        assert kind in HERALD.read_text()


def test_the_merge_keeps_everything_else_and_is_idempotent():
    existing = yaml.safe_load(EXISTING.read_text())
    once = merged()
    assert once["route"]["routes"][1:] == existing["route"]["routes"]
    assert once["route"]["receiver"] == existing["route"]["receiver"]
    assert once["inhibit_rules"][0] == existing["inhibit_rules"][0]
    assert [r["name"] for r in once["receivers"]][:3] == [r["name"] for r in existing["receivers"]]
    assert load_merge().merge(once, yaml.safe_load(HERALD.read_text())) == once


def test_herald_route_matches_herald_alerts_only_and_groups_per_cause():
    route = yaml.safe_load(HERALD.read_text())["route"]
    assert route["matchers"] == ['alertname=~"Herald.+"']
    assert route["group_by"] == ["cluster", "namespace", "adapter", "alertname"]
    for rule in yaml.safe_load(HERALD.read_text())["inhibit_rules"]:
        # Every inhibition is between Herald's alerts: merged, it touches nobody else's.
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            if matcher.startswith("alertname"):
                break
        else:
            raise AssertionError(rule)
        assert all("Herald" in m for m in rule["source_matchers"] + rule["target_matchers"] if "alertname" in m)


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            {"alertname": "HeraldPlatformDown", "severity": "critical", "namespace": "n", "adapter": "m"},
            "herald-oncall",
        ),
        ({"alertname": "HeraldHighErrorRate", "severity": "warning", "namespace": "n", "adapter": "m"}, "herald-team"),
        ({"alertname": "HeraldOperatorDegraded", "severity": "critical"}, "herald-oncall"),
        ({"alertname": "HeraldTargetRepeatedFailure", "severity": "warning", "adapter": "m"}, "herald-team"),
        # Everybody else's alerts go where they went before the merge.
        ({"alertname": "NodeDown", "severity": "critical"}, "ops-pager"),
        ({"alertname": "PaymentsSlow", "team": "payments", "severity": "critical"}, "payments"),
        ({"alertname": "Whatever"}, "default"),
    ],
)
def test_routes_of_the_merged_configuration(monitoring_binaries, merged_file, labels, receiver):
    proc = subprocess.run(
        [
            monitoring_binaries["amtool"],
            "config",
            "routes",
            "test",
            f"--config.file={merged_file}",
            *(f"{k}={v}" for k, v in labels.items()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receiver


def local(receiver_url: str) -> dict:
    """The merged configuration with every receiver a webhook to the local recorder (path = receiver
    name) and short timers."""
    cfg = copy.deepcopy(merged())
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


def alert(name: str, severity: str, **labels: str) -> dict:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": severity, **labels},
        "annotations": {"summary": "test"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


def notified(rec: RecordingReceiver) -> dict[str, list[dict]]:
    """Every alert of every notification, by receiver."""
    got: dict[str, list[dict]] = {}
    for r in rec.requests:
        got.setdefault(r.path.lstrip("/"), []).extend(r.json()["alerts"])
    return got


def test_one_cause_pages_once_in_a_real_alertmanager(alertmanager_factory):
    with RecordingReceiver() as rec:
        am = alertmanager_factory(local(rec.url))
        am.post_alerts(
            [
                # Critical and warning of one error rate: the warning is inhibited.
                alert("HeraldHighErrorRate", "critical", namespace="news", adapter="broken"),
                alert("HeraldHighErrorRate", "warning", namespace="news", adapter="broken"),
                alert("HeraldHighErrorRate", "warning", namespace="news", adapter="flaky"),
                # The platform is down: its error rate and queue are explained, not paged.
                alert("HeraldPlatformDown", "critical", namespace="news", adapter="down"),
                alert("HeraldHighErrorRate", "critical", namespace="news", adapter="down"),
                alert("HeraldQueueOverloaded", "warning", namespace="news", adapter="down"),
                # The same adapter name in another namespace is another cause.
                alert("HeraldHighErrorRate", "critical", namespace="other", adapter="down"),
                # Somebody else's warning is not inhibited by Herald's critical alerts.
                alert("NodeHighLoad", "warning", instance="n1"),
            ]
        )

        def delivered():
            got = notified(rec)
            want = {"herald-oncall": 3, "herald-team": 1, "default": 1}
            return got if all(len(got.get(k, [])) >= n for k, n in want.items()) else None

        got = wait_until(delivered, timeout=30, what="notifications from Alertmanager")

        def ids(receiver: str) -> set[tuple[str, str, str, str]]:
            return {
                (a["labels"]["alertname"], a["labels"]["severity"], a["labels"]["namespace"], a["labels"]["adapter"])
                for a in got.get(receiver, [])
            }

        assert ids("herald-oncall") == {
            ("HeraldHighErrorRate", "critical", "news", "broken"),
            ("HeraldPlatformDown", "critical", "news", "down"),
            ("HeraldHighErrorRate", "critical", "other", "down"),
        }
        assert ids("herald-team") == {("HeraldHighErrorRate", "warning", "news", "flaky")}
        assert [a["labels"]["alertname"] for a in got["default"]] == ["NodeHighLoad"]
        for labels in (
            {"adapter": "broken", "severity": "warning"},
            {"namespace": "news", "adapter": "down", "alertname": "HeraldHighErrorRate"},
        ):
            name = labels.pop("alertname", "HeraldHighErrorRate")
            a = am.find_alert(name, labels)
            assert a is not None and a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"], labels
        queue = am.find_alert("HeraldQueueOverloaded", {"adapter": "down"})
        assert queue["status"]["state"] == "suppressed"


def test_the_rule_and_the_operator_page_once_for_one_open_circuit(alertmanager_factory):
    """Both of Herald's paths send HeraldPlatformDown for the same adapter, with the same labels: one
    alert in Alertmanager, one notification."""
    with RecordingReceiver() as rec:
        am = alertmanager_factory(local(rec.url))
        labels = {"namespace": "news", "adapter": "mastodon-main"}
        from_prometheus = alert("HeraldPlatformDown", "critical", **labels)
        from_prometheus["generatorURL"] = "http://prometheus:9090/graph"
        from_operator = alert("HeraldPlatformDown", "critical", **labels)
        from_operator["annotations"] = {"summary": "from the operator"}
        am.post_alerts([from_operator])
        am.post_alerts([from_prometheus])
        (page,) = rec.wait_for_requests(1, timeout=30)
        assert page.path == "/herald-oncall"
        assert [a["labels"] for a in page.json()["alerts"]] == [
            {"alertname": "HeraldPlatformDown", "severity": "critical", **labels}
        ]
        assert len(am.alerts(filters=['alertname="HeraldPlatformDown"'])) == 1
        # Nothing more for it: Alertmanager's groups flush every second here.
        with pytest.raises(TimeoutError):
            rec.wait_for_requests(2, timeout=5)

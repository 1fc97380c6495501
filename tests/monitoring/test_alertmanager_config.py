"""The example Alertmanager configuration: amtool, routing, and inhibition live."""

from __future__ import annotations

import copy
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from .receivers import RecordingReceiver
from .servers import REPO_ROOT, wait_until

CONFIG = REPO_ROOT / "alert-rules" / "alertmanager" / "alertmanager.yml"


def test_amtool_check_config(monitoring_binaries):
    proc = subprocess.run(
        [monitoring_binaries["amtool"], "check-config", str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    for kind in ("slack_configs", "discord_configs", "telegram_configs", "webhook_configs"):
        assert kind in CONFIG.read_text()


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (
            {"alertname": "HeraldPlatformDown", "severity": "critical", "adapter": "m"},
            {"herald-oncall", "herald-status", "herald-webhook"},
        ),
        (
            {"alertname": "HeraldHighErrorRate", "severity": "critical", "adapter": "m"},
            {"herald-oncall", "herald-webhook"},
        ),
        (
            {"alertname": "HeraldHighErrorRate", "severity": "warning", "adapter": "m"},
            {"herald-slack", "herald-webhook"},
        ),
        (
            {"alertname": "HeraldRateLimitedTooLong", "severity": "warning", "adapter": "m"},
            {"herald-status", "herald-slack", "herald-webhook"},
        ),
        # the operator's own alerts
        (
            {
                "alertname": "HeraldAdapterCredentialsInvalid",
                "severity": "critical",
                "adapter": "m",
                "source": "herald",
            },
            {"herald-oncall", "herald-status", "herald-webhook"},
        ),
        (
            {"alertname": "HeraldPublicationDeadLettered", "severity": "warning", "adapter": "m", "source": "herald"},
            {"herald-slack", "herald-webhook"},
        ),
        (
            {"alertname": "HeraldOperatorDegraded", "severity": "critical", "source": "herald"},
            {"herald-oncall", "herald-webhook"},
        ),
    ],
)
def test_routing_by_severity_and_alert_name(monitoring_binaries, labels, receivers):
    proc = subprocess.run(
        [
            monitoring_binaries["amtool"],
            "config",
            "routes",
            "test",
            f"--config.file={CONFIG}",
            *(f"{k}={v}" for k, v in labels.items()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(proc.stdout.strip().split(",")) == receivers


def test_inhibit_rule_critical_over_warning():
    cfg = yaml.safe_load(CONFIG.read_text())
    rules = cfg["inhibit_rules"]
    assert any(
        r.get("source_matchers") == ['severity="critical"']
        and r.get("target_matchers") == ['severity="warning"']
        and set(r.get("equal", [])) == {"alertname", "adapter"}
        for r in rules
    )
    assert cfg["route"]["group_by"] == ["alertname", "adapter"]


def _local_copy(receiver_url: str) -> dict:
    """The example config with every receiver pointed at a local recorder and fast timers."""
    cfg = copy.deepcopy(yaml.safe_load(CONFIG.read_text()))
    cfg["global"] = {"resolve_timeout": "5m"}
    cfg["receivers"] = [
        {"name": r["name"], "webhook_configs": [{"url": f"{receiver_url}/{r['name']}", "send_resolved": True}]}
        for r in cfg["receivers"]
    ]

    def fast(route: dict) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        for child in route.get("routes", []):
            fast(child)

    cfg["route"]["group_wait"] = "1s"
    cfg["route"]["group_interval"] = "1s"
    fast(cfg["route"])
    return cfg


def _alert(name: str, severity: str, adapter: str) -> dict:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": severity, "adapter": adapter},
        "annotations": {"summary": "test"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


def test_routing_and_inhibition_in_a_real_alertmanager(alertmanager_factory):
    with RecordingReceiver() as rec:
        am = alertmanager_factory(_local_copy(rec.url))
        am.post_alerts(
            [
                _alert("HeraldHighErrorRate", "critical", "broken"),
                _alert("HeraldHighErrorRate", "warning", "broken"),
                _alert("HeraldHighErrorRate", "warning", "flaky"),
            ]
        )

        def delivered():
            got: dict[str, set[tuple[str, str]]] = {}
            for r in rec.requests:
                for a in r.json()["alerts"]:
                    got.setdefault(r.path.lstrip("/"), set()).add((a["labels"]["adapter"], a["labels"]["severity"]))
            want_webhook = {("broken", "critical"), ("flaky", "warning")}
            if (
                want_webhook <= got.get("herald-webhook", set())
                and got.get("herald-oncall")
                and got.get("herald-slack")
            ):
                return got
            return None

        got = wait_until(delivered, timeout=30, what="notifications from Alertmanager")
        assert got["herald-oncall"] == {("broken", "critical")}
        assert got["herald-slack"] == {("flaky", "warning")}
        # the warning for "broken" is inhibited by its critical: nobody got it
        assert all(("broken", "warning") not in v for v in got.values())
        inhibited = am.find_alert("HeraldHighErrorRate", {"adapter": "broken", "severity": "warning"})
        assert inhibited is not None
        assert inhibited["status"]["state"] == "suppressed"
        assert inhibited["status"]["inhibitedBy"]
        flaky = am.find_alert("HeraldHighErrorRate", {"adapter": "flaky"})
        assert flaky["status"]["state"] == "active"

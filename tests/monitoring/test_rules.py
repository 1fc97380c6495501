"""The Prometheus alert rules: promtool, PrometheusRule parity, annotations, runbooks."""

from __future__ import annotations

import re
import subprocess

import yaml

from herald import metrics
from herald.alerts import events

from .servers import REPO_ROOT, prometheus_config, wait_until

RULES = REPO_ROOT / "alert-rules" / "herald.rules.yml"
PROMETHEUS_RULE = REPO_ROOT / "alert-rules" / "prometheusrule.yaml"
RULE_TESTS = sorted((REPO_ROOT / "alert-rules" / "tests").glob("*.yml"))
RUNBOOKS = REPO_ROOT / "docs" / "runbooks.md"
RUNBOOK_PREFIX = "https://github.com/herald-dev/herald/blob/main/docs/runbooks.md#"

REQUIRED_ALERTS = {
    "HeraldHighErrorRate",
    "HeraldSlowPlatformResponse",
    "HeraldQueueOverloaded",
    "HeraldPlatformDown",
    "HeraldCredentialsInvalid",
    "HeraldDeadLetterGrowing",
    "HeraldRateLimitedTooLong",
    "HeraldOperatorDown",
    "HeraldNotReconciling",
    "HeraldAlertDeliveryFailing",
}


def load_rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub generates for the headings of a markdown file."""
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = m.group(2).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", slug).replace(" ", "-")
        n = counts.get(slug, 0)
        counts[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def test_promtool_check_rules(monitoring_binaries):
    proc = subprocess.run(
        [monitoring_binaries["promtool"], "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_unit_tests_pass(monitoring_binaries):
    assert RULE_TESTS, "no promtool unit tests in alert-rules/tests"
    proc = subprocess.run(
        [monitoring_binaries["promtool"], "test", "rules", *map(str, RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT / "alert-rules",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAILED" not in proc.stdout + proc.stderr


def test_promtool_unit_tests_can_fail(monitoring_binaries, tmp_path):
    """A wrong expectation makes `promtool test rules` fail (the tests are live)."""
    text = RULE_TESTS[0].read_text().replace("grew by 3 targets", "grew by 4 targets")
    broken = tmp_path / "broken_test.yml"
    broken.write_text(text.replace("../herald.rules.yml", str(RULES)))
    proc = subprocess.run(
        [monitoring_binaries["promtool"], "test", "rules", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "HeraldDeadLetterGrowing" in proc.stdout + proc.stderr


def test_prometheusrule_has_the_same_groups():
    plain = yaml.safe_load(RULES.read_text())
    crd = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert crd["apiVersion"] == "monitoring.coreos.com/v1"
    assert crd["kind"] == "PrometheusRule"
    assert crd["metadata"]["name"]
    assert crd["spec"]["groups"] == plain["groups"]


def test_every_required_alert_exists():
    names = {r["alert"] for r in load_rules()}
    assert names >= REQUIRED_ALERTS, REQUIRED_ALERTS - names


def test_labels_and_annotations():
    for rule in load_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        ann = rule["annotations"]
        assert set(ann) >= {"summary", "description", "runbook_url"}, name
        assert "{{" not in ann["summary"], f"{name}: summary must be static"
        assert "{{" in ann["description"], f"{name}: description must be templated"
        assert ann["runbook_url"] == RUNBOOK_PREFIX + name.lower(), name


def test_both_severities_for_error_rate_and_response_time():
    by_name: dict[str, set[str]] = {}
    for rule in load_rules():
        by_name.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
    assert by_name["HeraldHighErrorRate"] == {"warning", "critical"}
    assert by_name["HeraldSlowPlatformResponse"] == {"warning", "critical"}


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d)", duration))


def test_error_rate_alerts_can_fire_within_two_minutes():
    for rule in load_rules():
        if rule["alert"] == "HeraldHighErrorRate":
            assert _seconds(rule.get("for", "0s")) <= 60
            assert "[5m]" in rule["expr"]


def test_runbook_anchors_exist():
    anchors = github_anchors(RUNBOOKS.read_text())
    for rule in load_rules():
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/runbooks.md"
    # the operator's own alerts link to runbook sections too
    for name in events.ALERT_NAMES:
        url = events.runbook_url(name)
        assert url and url.startswith(RUNBOOK_PREFIX)
        assert url.split("#", 1)[1] in anchors, name


def test_runbook_sections_have_the_four_parts():
    text = RUNBOOKS.read_text()
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    by_title = {s.splitlines()[0].strip(): s for s in sections}
    for name in REQUIRED_ALERTS:
        body = by_title[name]
        for part in ("**Meaning.**", "**Impact.**", "**Diagnosis.**", "**Mitigation.**"):
            assert part in body, f"{name}: missing {part}"
        assert "kubectl" in body, f"{name}: no kubectl command"


def test_every_alert_is_unit_tested_firing_and_quiet():
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                (fires if t.get("exp_alerts") else quiet).add(t["alertname"])
    names = {r["alert"] for r in load_rules()}
    assert names - fires == set(), f"never tested firing: {names - fires}"
    assert names - quiet == set(), f"never tested quiet: {names - quiet}"
    # severity levels: both must be seen firing in the tests
    levels = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                for a in t.get("exp_alerts") or []:
                    levels.add((t["alertname"], a["exp_labels"]["severity"]))
    for rule in load_rules():
        assert (rule["alert"], rule["labels"]["severity"]) in levels, rule["alert"]


def test_rules_only_use_metrics_herald_exports():
    exported = set()
    for fam in metrics.REGISTRY.collect():
        exported.add(fam.name)
        exported.update(s.name for s in fam.samples)
    exported |= {f"{n}_total" for n in list(exported)}
    for name in (
        "herald_attempt_duration_seconds",
        "herald_platform_response_seconds",
        "herald_publish_latency_seconds",
        "herald_reconcile_time_seconds",
    ):
        exported |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    for rule in load_rules():
        for used in re.findall(r"\bherald_[a-z_]+", rule["expr"]):
            assert used in exported, f"{rule['alert']} uses {used}, which herald.metrics does not define"


def test_rules_load_into_a_real_prometheus(prometheus_factory):
    prom = prometheus_factory(prometheus_config(rule_files=[RULES], evaluation_interval="1s"))

    def loaded():
        rules = [r for g in prom.rules() for r in g["rules"]]
        evaluated = [r for r in rules if not r.get("lastEvaluation", "0001").startswith("0001")]
        return rules if len(evaluated) == len(load_rules()) else None

    rules = wait_until(loaded, timeout=30, what="rules evaluated")
    assert {r["name"] for r in rules} == {r["alert"] for r in load_rules()}
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    # With nothing scraped, only the "operator absent" rule becomes active.
    active = {a["labels"]["alertname"] for a in prom.alerts()}
    assert active <= {"HeraldOperatorDown"}

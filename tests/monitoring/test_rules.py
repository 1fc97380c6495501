"""The Prometheus alert rules: generated files, promtool (restarts included), PrometheusRule parity, the
Helm values, annotations, runbooks."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import yaml

from herald import metrics
from herald.alerts import events

from .servers import REPO_ROOT, prometheus_config, wait_until

GENERATOR = REPO_ROOT / "alert-rules" / "rules.py"

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


def test_the_generated_rule_files_are_up_to_date():
    proc = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_the_generator_notices_a_stale_file(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("herald_rules_generator", GENERATOR)
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, gen)  # dataclasses look their module up
    spec.loader.exec_module(gen)
    stale = tmp_path / "herald.rules.yml"
    stale.write_text("groups: []\n")
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    monkeypatch.setattr(gen, "outputs", lambda: {stale: "groups:\n"})
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0 and stale.read_text() == "groups:\n"
    assert gen.main(["--check"]) == 0


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
    text = (
        (RULES.parent / "tests" / "herald_test.yml").read_text().replace("moved 3 publication", "moved 4 publication")
    )
    assert text != (RULES.parent / "tests" / "herald_test.yml").read_text()
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


# --- what the issue asked of every expression -------------------------------------------------------


def test_no_expression_depends_on_the_pods_identity():
    for rule in load_rules():
        expr = rule["expr"]
        assert not re.search(r"\b(pod|instance)\b", expr), rule["alert"]
        groupings = re.findall(r"\bby \(([^)]*)\)", expr)
        assert groupings, f"{rule['alert']} aggregates nothing"
        for g in groupings:
            labels = [x.strip() for x in g.split(",")]
            assert labels[:1] == ["cluster"], (rule["alert"], g)
            assert labels[1:3] == ["namespace", "adapter"] or labels[1:2] == ["job"], (rule["alert"], g)


def test_every_alert_has_a_restart_case():
    cases = yaml.safe_load((RULES.parent / "tests" / "restart_test.yml").read_text())["tests"]
    fired_through_restart = set()
    for case in cases:
        pods = {s["series"].split('pod="')[1].split('"')[0] for s in case["input_series"] if 'pod="' in s["series"]}
        assert len(pods) == 2, case["name"]  # the old pod's series and the new one's
        fired_through_restart |= {t["alertname"] for t in case["alert_rule_test"] if t.get("exp_alerts")}
    assert fired_through_restart == {r["alert"] for r in load_rules()}


def test_high_error_rate_counts_only_the_platforms_and_heralds_failures():
    from herald.errors import BREAKER_CLASSES

    for rule in load_rules():
        if rule["alert"] == "HeraldHighErrorRate":
            classes = re.search(r'error_class=~"([^"]+)"', rule["expr"]).group(1).split("|")
            assert set(classes) == {c.value for c in BREAKER_CLASSES}
            assert not {"auth", "rate_limited", "rejected", "destination_forbidden", "invalid_spec"} & set(classes)
            assert re.search(r"increase\(herald_attempts_total\[5m\]\)\) >= \d+", rule["expr"])  # minimum volume


def test_dead_letter_growing_reads_the_counter():
    (rule,) = [r for r in load_rules() if r["alert"] == "HeraldDeadLetterGrowing"]
    assert "herald_dead_letters_total" in rule["expr"] and "herald_dead_letter_targets" not in rule["expr"]


# --- the Helm chart ---------------------------------------------------------------------------------


def _helm_rules(*sets: str) -> dict:
    from tests.helm.chart import helm

    args = ["--set", "metrics.prometheusRule.enabled=true"]
    for s in sets:
        args += ["--set", s]
    # --skip-schema-validation: values.schema.json (owned by the chart) does not list
    # metrics.prometheusRule.rules yet.
    out = helm(
        "template",
        "herald",
        str(REPO_ROOT / "helm" / "herald"),
        "--skip-schema-validation",
        "--show-only",
        "templates/prometheusrule.yaml",
        *args,
    )
    return yaml.safe_load(out.stdout)


def test_the_charts_prometheusrule_is_the_rule_file_by_default():
    rendered = _helm_rules()
    assert rendered["kind"] == "PrometheusRule"
    assert rendered["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_thresholds_and_switches_are_helm_values(monitoring_binaries, tmp_path):
    rendered = _helm_rules(
        "metrics.prometheusRule.rules.HeraldHighErrorRate.critical=0.2",
        "metrics.prometheusRule.rules.HeraldHighErrorRate.minAttempts=50",
        "metrics.prometheusRule.rules.HeraldQueueOverloaded.threshold=500",
        "metrics.prometheusRule.rules.HeraldPlatformDown.for=3m",
        "metrics.prometheusRule.rules.HeraldOperatorDown.job=my-herald",
        "metrics.prometheusRule.rules.HeraldSlowPlatformResponse.enabled=false",
    )
    rules = {(r["alert"], r["labels"]["severity"]): r for g in rendered["spec"]["groups"] for r in g["rules"]}
    assert ") > 0.2\n" in rules[("HeraldHighErrorRate", "critical")]["expr"]
    assert ") > 0.01\n" in rules[("HeraldHighErrorRate", "warning")]["expr"]  # untouched: the default
    assert ">= 50" in rules[("HeraldHighErrorRate", "warning")]["expr"]
    assert rules[("HeraldQueueOverloaded", "warning")]["expr"].strip().endswith("> 500")
    assert rules[("HeraldPlatformDown", "critical")]["for"] == "3m"
    assert 'up{job=~"my-herald"}' in rules[("HeraldOperatorDown", "critical")]["expr"]
    assert not [k for k in rules if k[0] == "HeraldSlowPlatformResponse"]
    # The Prometheus templates of the annotations come through Helm untouched.
    assert "{{ $labels.adapter }}" in rules[("HeraldPlatformDown", "critical")]["annotations"]["description"]
    path = tmp_path / "rendered.rules.yml"
    path.write_text(yaml.safe_dump({"groups": rendered["spec"]["groups"]}))
    proc = subprocess.run(
        [monitoring_binaries["promtool"], "check", "rules", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

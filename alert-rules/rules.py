"""Herald's Prometheus alert rules, written once; the files Prometheus, the Prometheus Operator and
Helm read are generated from here.

    python alert-rules/rules.py          # write the generated files
    python alert-rules/rules.py --check  # fail if one of them is out of date (a test runs this)

Generated (do not edit them by hand):

* ``alert-rules/herald.rules.yml``: a plain Prometheus rule file, every threshold at its default;
* ``alert-rules/prometheusrule.yaml``: the same groups as a ``monitoring.coreos.com/v1`` PrometheusRule;
* ``helm/herald/files/herald.rules.yml``: a copy of the first, for the chart;
* ``helm/herald/templates/prometheusrule.yaml``: the chart's PrometheusRule, where every rule can be
  switched off and every threshold set, under ``metrics.prometheusRule.rules.<alert>``.

Every expression aggregates ``by (cluster, namespace, adapter)`` (or ``by (cluster, job)`` for the
operator itself): no expression depends on the operator pod's identity (``pod``, ``instance``), so a
restart, which changes them, changes no alert. Gauges are read through ``*_over_time`` windows, which
also bridge the scrapes a restart misses. Herald's own alerts (herald.alerts) have the same names and
labels and the same timing (``for`` and the hold window) as the rules here.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "adapters"))

from herald.metrics import PLATFORM_ERROR_CLASSES  # noqa: E402

RUNBOOK = "https://github.com/herald-dev/herald/blob/main/docs/runbooks.md#"
ADAPTER = "cluster, namespace, adapter"
OPERATOR = "cluster, job"
PLATFORM_CLASSES = "|".join(PLATFORM_ERROR_CLASSES)


@dataclass(frozen=True)
class Rule:
    """One alerting rule. ``<<name>>`` in ``expr`` is a parameter (default in ``params``); a rule's
    parameters, ``for`` and ``enabled`` are Helm values under ``metrics.prometheusRule.rules.<alert>``."""

    alert: str
    severity: str
    expr: str
    summary: str
    description: str
    for_: str = ""
    params: dict[str, float | str] = field(default_factory=dict)
    comment: str = ""


def _error_rate(severity: str, threshold: str, summary: str) -> Rule:
    return Rule(
        "HeraldHighErrorRate",
        severity,
        f"""(
  sum by ({ADAPTER}) (rate(herald_attempts_total{{result="failed", error_class=~"{PLATFORM_CLASSES}"}}[5m]))
/
  sum by ({ADAPTER}) (rate(herald_attempts_total[5m]))
) > <<{threshold}>>
and on ({ADAPTER})
sum by ({ADAPTER}) (increase(herald_attempts_total[5m])) >= <<minAttempts>>""",
        summary,
        "{{ $value | humanizePercentage }} of the publication attempts of adapter {{ $labels.adapter }} in namespace "
        "{{ $labels.namespace }} failed over the last 5 minutes with an error that points at the platform or at "
        f"Herald ({PLATFORM_CLASSES.replace('|', ', ')}).",
        "1m",
        {"critical": 0.05, "warning": 0.01, "minAttempts": 10},
        ""
        if severity == "warning"
        else "Only failures that point at the platform or at Herald count (the circuit breaker's classes); auth and "
        "rate_limited have alerts of their own, rejected, destination_forbidden and invalid_spec are the "
        "content's or the spec's. Below minAttempts attempts in 5 minutes a ratio says nothing. Alertmanager "
        "inhibits the warning while the critical fires (alert-rules/alertmanager/herald.yml).",
    )


def _slow(severity: str, threshold: str, summary: str) -> Rule:
    return Rule(
        "HeraldSlowPlatformResponse",
        severity,
        f"""histogram_quantile(0.95,
  sum by ({ADAPTER}, platform, le) (rate(herald_platform_response_seconds_bucket[5m]))
) > <<{threshold}>>""",
        summary,
        "The 95th percentile response time of {{ $labels.platform }} through adapter {{ $labels.adapter }} in "
        "namespace {{ $labels.namespace }} is {{ $value | humanizeDuration }}.",
        "5m",
        {"critical": 1, "warning": 0.5},
    )


GROUPS: list[tuple[str, list[Rule]]] = [
    (
        "herald-publishing",
        [
            _error_rate("critical", "critical", "Herald publication attempts are failing at a high rate."),
            _error_rate("warning", "warning", "Herald publication attempts are failing at an elevated rate."),
            Rule(
                "HeraldQueueOverloaded",
                "warning",
                f"max by ({ADAPTER}) (max_over_time(herald_queue_depth[2m])) > <<threshold>>",
                "A Herald adapter queue is overloaded.",
                "{{ $value | humanize }} publication targets of adapter {{ $labels.adapter }} in namespace "
                "{{ $labels.namespace }} are due and waiting for a Job slot, for more than 5 minutes.",
                "5m",
                {"threshold": 100},
                "max_over_time: a dip shorter than 2 minutes (or a restart's missed scrapes) does not start over.",
            ),
            Rule(
                "HeraldDeadLetterGrowing",
                "warning",
                f"""sum by ({ADAPTER}) (
    herald_dead_letters_total
      and ignoring (platform, error_class)
      (time() - herald_adapter_first_seen_timestamp_seconds < 900)
  or
    increase(herald_dead_letters_total[15m])
) > 0""",
                "Publications are being moved to Herald's dead letter.",
                "Adapter {{ $labels.adapter }} in namespace {{ $labels.namespace }} moved "
                '{{ $value | printf "%.0f" }} publication target(s) to the dead letter in the last 15 minutes.',
                comment="A counter, created at 0 with the adapter: a restart (new series from 0) loses nothing. A "
                "series younger than the window counts whole, so a target dead-lettered before the first "
                "scrape of its adapter (or of a restarted operator) counts too.",
            ),
        ],
    ),
    (
        "herald-platforms",
        [
            _slow("critical", "critical", "A platform behind Herald responds very slowly."),
            _slow("warning", "warning", "A platform behind Herald responds slowly."),
            Rule(
                "HeraldPlatformDown",
                "critical",
                f"""max by ({ADAPTER}) (max_over_time(herald_circuit_state{{state="Open"}}[15m])) == 1
unless on ({ADAPTER})
max by ({ADAPTER}) (min_over_time(herald_circuit_state{{state="Closed"}}[2m])) == 1""",
                "A platform is down; Herald's circuit breaker for it is open.",
                "The circuit breaker of adapter {{ $labels.adapter }} in namespace {{ $labels.namespace }} is open: "
                "Herald stopped starting attempts for it and probes again after the cool-down.",
                "1m",
                comment="Open in the last 15 minutes and not closed for the last 2: a circuit that keeps "
                "re-opening after failed half-open probes is one alert, also across an operator restart.",
            ),
            Rule(
                "HeraldCredentialsInvalid",
                "critical",
                f"min by ({ADAPTER}) (last_over_time(herald_adapter_credentials_valid[2m])) == 0",
                "Herald adapter credentials are invalid.",
                "The credentials of adapter {{ $labels.adapter }} in namespace {{ $labels.namespace }} are invalid "
                "or missing; its publications cannot be published until they are fixed.",
                "1m",
                comment="last_over_time bridges the scrapes a restart misses.",
            ),
            Rule(
                "HeraldRateLimitedTooLong",
                "warning",
                f"max by ({ADAPTER}) (max_over_time(herald_adapter_rate_limited[2m])) == 1",
                "A Herald adapter has been blocked by a platform rate limit for a long time.",
                "Adapter {{ $labels.adapter }} in namespace {{ $labels.namespace }} has been blocked by the platform "
                "rate limit for more than 15 minutes (pauses of less than 2 minutes included).",
                "15m",
                comment="A limit that lifts and is hit again within 2 minutes (every ~45 s, say) is one long limit.",
            ),
        ],
    ),
    (
        "herald-operator",
        [
            Rule(
                "HeraldOperatorDown",
                "critical",
                f'max by ({OPERATOR}) (up{{job=~"<<job>>"}}) == 0 or absent(up{{job=~"<<job>>"}})',
                "The Herald operator is down or not scraped.",
                "Prometheus has not scraped the Herald operator (job "
                "{{ with $labels.job }}{{ . }}{{ else }}absent{{ end }}) successfully for 5 minutes.",
                "5m",
                {"job": ".*herald.*"},
            ),
            Rule(
                "HeraldNotReconciling",
                "critical",
                f"""(time() - max by ({OPERATOR}) (herald_last_reconcile_timestamp_seconds) > <<seconds>>)
and on ({OPERATOR})
(sum by ({OPERATOR}) (herald_queue_depth) > 0 or sum by ({OPERATOR}) (herald_running_jobs) > 0)""",
                "The Herald operator has stopped reconciling.",
                "Herald has not finished a reconciliation for {{ $value | humanizeDuration }} although publication "
                "targets are queued or running.",
                "5m",
                {"seconds": 600},
                "Only while there is work: an idle operator has nothing to reconcile.",
            ),
            Rule(
                "HeraldAlertDeliveryFailing",
                "warning",
                f'sum by ({OPERATOR}, channel) (increase(herald_alerts_sent_total{{result="failed"}}[15m])) > 0',
                "Herald cannot deliver its own alerts.",
                "Herald failed to deliver alert notifications through channel {{ $labels.channel }} in the last 15 "
                "minutes; it keeps trying, but they are late.",
                "5m",
            ),
        ],
    ),
]


# --- rendering ------------------------------------------------------------------------------------


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _value(v: float | str) -> str:
    return v if isinstance(v, str) else repr(v).removesuffix(".0") if float(v).is_integer() else repr(v)


def _helm_value(rule: Rule, name: str, default: float | str) -> str:
    literal = f'"{default}"' if isinstance(default, str) else _value(default)
    return f'{{{{ dig "rules" "{rule.alert}" "{name}" {literal} $r }}}}'


def _render_rule(rule: Rule, helm: bool, indent: str) -> list[str]:
    def text(s: str) -> str:
        return s.replace("{{", '{{ "{{" }}') if helm else s

    expr = text(rule.expr)
    for name, default in rule.params.items():
        expr = expr.replace(f"<<{name}>>", _helm_value(rule, name, default) if helm else _value(default))
    assert "<<" not in expr, (rule.alert, expr)
    out = []
    if rule.comment and not helm:
        words, line = rule.comment.split(), ""
        for w in words:
            if len(line) + len(w) > 90:
                out.append(f"{indent}# {line.rstrip()}")
                line = ""
            line += w + " "
        out.append(f"{indent}# {line.rstrip()}")
    out.append(f"{indent}- alert: {rule.alert}")
    out.append(f"{indent}  expr: |")
    out += [f"{indent}    {line}" for line in expr.splitlines()]
    if rule.for_:
        out.append(f"{indent}  for: " + (_helm_value(rule, "for", rule.for_) if helm else rule.for_))
    out.append(f"{indent}  labels:")
    out.append(f"{indent}    severity: {rule.severity}")
    out.append(f"{indent}  annotations:")
    out.append(f"{indent}    summary: {_quote(rule.summary)}")
    out.append(f"{indent}    description: {_quote(text(rule.description))}")
    out.append(f"{indent}    runbook_url: {RUNBOOK}{rule.alert.lower()}")
    if helm:
        out = [f'{indent}{{{{- if dig "rules" "{rule.alert}" "enabled" true $r }}}}', *out, f"{indent}{{{{- end }}}}"]
    return out


def render_groups(helm: bool = False, indent: str = "") -> str:
    lines = [f"{indent}groups:"]
    for name, rules in GROUPS:
        lines.append(f"{indent}  - name: {name}")
        lines.append(f"{indent}    rules:")
        for rule in rules:
            lines += _render_rule(rule, helm, indent + "      ")
    return "\n".join(lines) + "\n"


HEADER = """\
# GENERATED by alert-rules/rules.py from the rules written there: edit that file, then run
#   python alert-rules/rules.py
# (a test fails when this file is out of date). docs/alerting.md lists the rules and how to tune them.
"""

PLAIN = (
    HEADER
    + """#
# Prometheus alerting rules for Herald. Every alert has a `severity` label, a static `summary`, a
# templated `description` and a `runbook_url` pointing at its section of docs/runbooks.md. Unit tests
# (promtool test rules): alert-rules/tests/.
"""
)

CRD = (
    HEADER
    + """#
# Herald's alerting rules as a Prometheus Operator PrometheusRule: the groups of herald.rules.yml.
# Adjust metadata.labels so that your Prometheus' ruleSelector picks the object up
# (kube-prometheus-stack selects `release: <its release name>` by default). The Helm chart renders
# the same, with thresholds as values (metrics.prometheusRule.rules).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: herald
  labels:
    app.kubernetes.io/name: herald
    app.kubernetes.io/component: alerting-rules
    release: kube-prometheus-stack
spec:
"""
)

HELM = """\
{{- /*
GENERATED by alert-rules/rules.py (the rules of alert-rules/herald.rules.yml): edit that file, then run
  python alert-rules/rules.py
Every rule can be switched off and its thresholds and `for` set under
metrics.prometheusRule.rules.<alert>, e.g.
  metrics.prometheusRule.rules.HeraldHighErrorRate: {critical: 0.1, minAttempts: 20}
  metrics.prometheusRule.rules.HeraldQueueOverloaded: {enabled: false}
*/}}
{{- if .Values.metrics.prometheusRule.enabled }}
{{- $r := .Values.metrics.prometheusRule }}
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: {{ include "herald.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "herald.labels" . | nindent 4 }}
    app.kubernetes.io/component: alerting-rules
    {{- with .Values.metrics.prometheusRule.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
"""


def outputs() -> dict[Path, str]:
    plain = PLAIN + render_groups()
    return {
        ROOT / "alert-rules" / "herald.rules.yml": plain,
        ROOT / "alert-rules" / "prometheusrule.yaml": CRD + render_groups(indent="  "),
        ROOT / "helm" / "herald" / "files" / "herald.rules.yml": plain,
        ROOT / "helm" / "herald" / "templates" / "prometheusrule.yaml": HELM
        + render_groups(helm=True, indent="  ")
        + "{{- end }}\n",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("out of date (run python alert-rules/rules.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

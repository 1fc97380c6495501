"""Herald's Grafana dashboard, built as code with grafana-foundation-sdk; the JSON is generated.

    python grafana-dashboards/herald.py          # write grafana-dashboards/herald.json and the chart's copy
    python grafana-dashboards/herald.py --check  # fail if either is out of date (a test runs this)

Variables: ``datasource``, ``cluster``, ``job``, ``namespace``, ``adapter`` (``cluster`` and ``job``
match series without the label too, so a single Prometheus without a ``cluster`` label works).
Rows: an overview, one row of single-stat and time-series panels repeated per selected adapter, and
the operator itself. Idle adapters show 0, not NaN or "No data": quantiles and ratios of nothing are 0.
Every query is run against a real Prometheus by tests/monitoring/test_dashboard.py and
tests/e2e/test_monitoring.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dash

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "adapters"))

from herald.metrics import PLATFORM_ERROR_CLASSES  # noqa: E402

OUTPUTS = (ROOT / "grafana-dashboards" / "herald.json", ROOT / "helm" / "herald" / "files" / "herald.json")
DS = dash.DataSourceRef(type_val="prometheus", uid="${datasource}")
RUNBOOKS = "https://github.com/herald-dev/herald/blob/main/docs/runbooks.md"

#: The operator's series (cluster and scrape job).
OP = 'cluster=~"$cluster", job=~"$job"'
#: An adapter's series: the operator's, and the selected namespaces and adapters.
AD = OP + ', namespace=~"$namespace", adapter=~"$adapter"'
PLATFORM_CLASSES = "|".join(PLATFORM_ERROR_CLASSES)
RATE = "$__rate_interval"


def quantile(q: float, metric: str, selector: str, by: str = "") -> str:
    """A histogram quantile that is 0, not NaN, when nothing was observed (an idle adapter)."""
    group = f"{by}, le" if by else "le"
    expr = f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{selector}}}[{RATE}])))"
    zero = f"sum by ({by}) (rate({metric}_count{{{selector}}}[{RATE}])) * 0" if by else "vector(0)"
    return f"({expr} >= 0) or {zero}"


def ratio(numerator: str, denominator: str) -> str:
    """numerator / denominator, and 0 (not NaN) where the denominator is 0."""
    return f"({numerator} / ({denominator} > 0)) or ({denominator} * 0)"


def error_rate(by: str) -> str:
    failures = f'{AD}, result="failed", error_class=~"{PLATFORM_CLASSES}"'
    failed = f"sum by ({by}) (rate(herald_attempts_total{{{failures}}}[{RATE}]))"
    if not by:
        failed = failed.replace("sum by () ", "sum ")
    total = f"sum by ({by}) (rate(herald_attempts_total{{{AD}}}[{RATE}]))".replace("sum by () ", "sum ")
    return ratio(failed, total)


def target(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DS)
    return q.legend_format(legend) if legend else q


def ts(
    title: str, targets: list[tuple[str, str]], unit: str = "short", w: int = 8, h: int = 8, desc: str = ""
) -> timeseries.Panel:
    p = timeseries.Panel().title(title).datasource(DS).unit(unit).span(w).height(h).min(0)
    if desc:
        p = p.description(desc)
    for i, (expr, legend) in enumerate(targets):
        p = p.with_target(target(expr, legend, chr(ord("A") + i)))
    return p


def thresholds(*steps: tuple[float | None, str]) -> dash_b.ThresholdsConfig:
    return (
        dash_b.ThresholdsConfig()
        .mode(dash.ThresholdsMode.ABSOLUTE)
        .steps([dash.Threshold(value=v, color=c) for v, c in steps])
    )


def mapping(values: dict[str, tuple[str, str]]) -> list[dash.ValueMap]:
    return [
        dash.ValueMap(
            {k: dash.ValueMappingResult(text=t, color=c, index=i) for i, (k, (t, c)) in enumerate(values.items())}
        )
    ]


def single(
    title: str,
    expr: str,
    unit: str = "short",
    w: int = 3,
    maps: dict[str, tuple[str, str]] | None = None,
    steps: tuple[tuple[float | None, str], ...] = ((None, "green"),),
    desc: str = "",
) -> stat.Panel:
    p = (
        stat.Panel()
        .title(title)
        .datasource(DS)
        .unit(unit)
        .span(w)
        .height(4)
        .with_target(target(expr))
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .thresholds(thresholds(*steps))
    )
    if maps:
        p = p.mappings(mapping(maps))
    return p.description(desc) if desc else p


def build() -> dash.Dashboard:
    d = (
        dash_b.Dashboard("Herald")
        .uid("herald-overview")
        .description("Herald operator: publications, attempts, queues, adapters and the operator itself.")
        .tags(["herald", "kubernetes", "operator"])
        .timezone("browser")
        .editable()
        .tooltip(dash.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-6h", "now")
        .link(
            dash_b.DashboardLink("Runbooks")
            .type(dash.DashboardLinkType.LINK)
            .url(RUNBOOKS)
            .target_blank(True)
            .icon("doc")
        )
        .with_variable(dash_b.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    variables = (
        ("cluster", "Cluster", "label_values(herald_build_info, cluster)", False),
        ("job", "Job", 'label_values(herald_build_info{cluster=~"$cluster"}, job)', False),
        ("namespace", "Namespace", f"label_values(herald_adapter_info{{{OP}}}, namespace)", True),
        ("adapter", "Adapter", f'label_values(herald_adapter_info{{{OP}, namespace=~"$namespace"}}, adapter)', True),
    )
    for name, label, query, multi in variables:
        d = d.with_variable(
            dash_b.QueryVariable(name)
            .label(label)
            .datasource(DS)
            .query({"query": query, "refId": f"{name}-values"})
            .refresh(dash.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dash.VariableSort.ALPHABETICAL_ASC)
            .multi(multi)
            .include_all(True)
            .all_value(".*")
            .current(dash.VariableOption(selected=True, text="All", value="$__all"))
        )

    # --- overview ---------------------------------------------------------------------------
    d = d.with_row(dash_b.Row("Overview"))
    for panel in (
        ts(
            "Publications per minute by outcome",
            [(f"sum by (outcome) (rate(herald_publications_total{{{AD}}}[{RATE}])) * 60", "{{outcome}}")],
        ),
        ts(
            "Error rate (failures that point at the platform or at Herald)",
            [(error_rate("namespace, adapter"), "{{namespace}}/{{adapter}}")],
            unit="percentunit",
            desc=f"Failed attempts of class {PLATFORM_CLASSES.replace('|', ', ')} over all attempts "
            "(HeraldHighErrorRate). 0 for an adapter without attempts.",
        ),
        ts(
            "Failed attempts per minute by error class",
            [
                (
                    f'sum by (error_class) (rate(herald_attempts_total{{{AD}, result="failed"}}[{RATE}])) * 60',
                    "{{error_class}}",
                )
            ],
        ),
        ts(
            "Retries per minute by error class",
            [(f"sum by (error_class) (rate(herald_retries_total{{{AD}}}[{RATE}])) * 60", "{{error_class}}")],
        ),
        ts(
            "Queue depth and running Jobs",
            [
                (f"sum by (namespace, adapter) (herald_queue_depth{{{AD}}})", "queued {{namespace}}/{{adapter}}"),
                (f"sum by (namespace, adapter) (herald_running_jobs{{{AD}}})", "running {{namespace}}/{{adapter}}"),
            ],
        ),
        ts(
            "Dead letter",
            [
                (
                    f"sum by (namespace, adapter) (herald_dead_letter_targets{{{AD}}})",
                    "in it {{namespace}}/{{adapter}}",
                ),
                (
                    f"sum by (namespace, adapter) (increase(herald_dead_letters_total{{{AD}}}[1h]))",
                    "moved in the last hour {{namespace}}/{{adapter}}",
                ),
            ],
        ),
        ts(
            "End-to-end publish latency (due → published)",
            [(quantile(q, "herald_publish_latency_seconds", AD), f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)],
            unit="s",
            w=12,
        ),
        ts(
            "Attempt duration (Job created → outcome seen, and the container's own time)",
            [(quantile(q, "herald_attempt_duration_seconds", AD), f"p{int(q * 100)} operator") for q in (0.5, 0.95)]
            + [
                (quantile(q, "herald_attempt_container_duration_seconds", AD), f"p{int(q * 100)} container")
                for q in (0.5, 0.95)
            ],
            unit="s",
            w=12,
        ),
    ):
        d = d.with_panel(panel)

    # --- one row per adapter ------------------------------------------------------------------
    d = d.with_row(dash_b.Row("Adapter $adapter").repeat("adapter"))
    ok, bad, warn = "green", "red", "orange"
    for panel in (
        single(
            "Circuit",
            f'max(herald_circuit_state{{{AD}, state="Open"}}) * 2'
            f' + max(herald_circuit_state{{{AD}, state="HalfOpen"}})',
            maps={"0": ("Closed", ok), "1": ("HalfOpen", warn), "2": ("Open", bad)},
        ),
        single(
            "Available",
            f"min(herald_adapter_available{{{AD}}})",
            maps={"0": ("No", bad), "1": ("Yes", ok)},
        ),
        single(
            "Credentials",
            f"min(herald_adapter_credentials_valid{{{AD}}})",
            maps={"0": ("Invalid", bad), "1": ("Valid", ok)},
        ),
        single(
            "Rate limited",
            f"max(herald_adapter_rate_limited{{{AD}}})",
            maps={"0": ("No", ok), "1": ("Yes", warn)},
        ),
        single("Queued", f"sum(herald_queue_depth{{{AD}}})", steps=((None, ok), (100, warn))),
        single("Running", f"sum(herald_running_jobs{{{AD}}})"),
        single("Dead letter", f"sum(herald_dead_letter_targets{{{AD}}})", steps=((None, ok), (1, warn))),
        single(
            "Error rate (5m)",
            error_rate("").replace(RATE, "5m"),
            unit="percentunit",
            steps=((None, ok), (0.01, warn), (0.05, bad)),
        ),
        ts(
            "Attempts per minute by result",
            [
                (
                    f"sum by (result, error_class) (rate(herald_attempts_total{{{AD}}}[{RATE}])) * 60",
                    "{{result}} {{error_class}}",
                )
            ],
        ),
        ts(
            "Platform response time",
            [
                (
                    quantile(q, "herald_platform_response_seconds", AD, by="platform"),
                    f"p{int(q * 100)} {{{{platform}}}}",
                )
                for q in (0.5, 0.95, 0.99)
            ],
            unit="s",
        ),
        ts("Circuit state over time", [(f"max by (state) (herald_circuit_state{{{AD}}})", "{{state}}")], unit="short"),
        ts(
            "Rate limit remaining",
            [(f"min by (namespace, adapter) (herald_rate_limit_remaining{{{AD}}})", "{{namespace}}/{{adapter}}")],
            desc="As the adapter last reported it; no data until it reported one.",
        ),
        ts(
            "Attempt duration",
            [
                (quantile(0.95, "herald_attempt_duration_seconds", AD), "p95 operator"),
                (quantile(0.95, "herald_attempt_container_duration_seconds", AD), "p95 container"),
            ],
            unit="s",
        ),
        ts(
            "Published and dead-lettered per hour",
            [
                (f'sum(increase(herald_publications_total{{{AD}, outcome="published"}}[1h]))', "published"),
                (f"sum(increase(herald_dead_letters_total{{{AD}}}[1h]))", "dead-lettered"),
            ],
        ),
    ):
        d = d.with_panel(panel)

    # --- the operator -------------------------------------------------------------------------
    d = d.with_row(dash_b.Row("Operator health"))
    for panel in (
        ts(
            "Reconciles per second",
            [
                (
                    f"sum by (controller, result) (rate(herald_reconcile_total{{{OP}}}[{RATE}]))",
                    "{{controller}} {{result}}",
                )
            ],
        ),
        ts(
            "Reconcile errors per second",
            [(f"sum by (controller) (rate(herald_reconcile_errors_total{{{OP}}}[{RATE}]))", "{{controller}}")],
        ),
        ts(
            "Reconcile time",
            [
                (
                    quantile(q, "herald_reconcile_time_seconds", OP, by="controller"),
                    f"p{int(q * 100)} {{{{controller}}}}",
                )
                for q in (0.5, 0.95)
            ],
            unit="s",
        ),
        ts("Work queue", [(f"sum by (queue) (herald_workqueue_depth{{{OP}}})", "{{queue}}")]),
        ts(
            "API requests per second",
            [(f"sum by (verb, code) (rate(herald_api_requests_total{{{OP}}}[{RATE}]))", "{{verb}} {{code}}")],
            unit="reqps",
        ),
        ts(
            "API request time (p95)",
            [(quantile(0.95, "herald_api_request_duration_seconds", OP, by="verb"), "{{verb}}")],
            unit="s",
        ),
        ts(
            "Wait for a request slot (p99)",
            [(quantile(0.99, "herald_api_request_slot_wait_seconds", OP, by="pool"), "{{pool}}")],
            unit="s",
            desc="How long the engine's writes and Events waited for one of their HERALD_REQUESTS slots; "
            "much longer than the API request time: raise HERALD_REQUESTS.",
        ),
        ts(
            "Watch restarts per hour",
            [
                (
                    f"sum by (resource, reason) (increase(herald_watch_restarts_total{{{OP}}}[1h]))",
                    "{{resource}} {{reason}}",
                )
            ],
        ),
        ts(
            "Event lag (p95)",
            [(quantile(0.95, "herald_event_lag_seconds", OP, by="resource"), "{{resource}}")],
            unit="s",
            desc="From the API server recording a change to the operator receiving its watch event.",
        ),
        ts(
            "Time since the last reconcile",
            [(f"time() - max(herald_last_reconcile_timestamp_seconds{{{OP}}})", "seconds")],
            unit="s",
        ),
        ts(
            "CPU",
            [
                (
                    f"rate(process_cpu_seconds_total{{{OP}}}[{RATE}]) and on (job, instance) herald_build_info{{{OP}}}",
                    "{{instance}}",
                )
            ],
            unit="percentunit",
        ),
        ts(
            "Memory",
            [
                (
                    f"process_resident_memory_bytes{{{OP}}} and on (job, instance) herald_build_info{{{OP}}}",
                    "{{instance}}",
                )
            ],
            unit="bytes",
        ),
        ts(
            "Herald's own alert notifications per minute",
            [
                (
                    f"sum by (channel, result) (rate(herald_alerts_sent_total{{{OP}}}[{RATE}])) * 60",
                    "{{channel}} {{result}}",
                ),
                (
                    f"sum by (channel, reason) (rate(herald_alerts_suppressed_total{{{OP}}}[{RATE}])) * 60",
                    "{{channel}} suppressed: {{reason}}",
                ),
            ],
        ),
        single("Version", f"max by (version, python_version) (herald_build_info{{{OP}}})", w=8)
        .with_target(target("", "", "B"))
        .targets(
            [
                target(
                    f"max by (version, python_version) (herald_build_info{{{OP}}})",
                    "{{version}} (Python {{python_version}})",
                )
            ]
        )
        .text_mode(common.BigValueTextMode.NAME),
    ):
        d = d.with_panel(panel)
    built = d.build()
    for i, panel in enumerate(built.panels or [], start=1):  # stable ids, in layout order
        panel.id_val = i
    return built


def render() -> str:
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is out of date")
    args = parser.parse_args(argv)
    text = render()
    stale = [p for p in OUTPUTS if not p.exists() or p.read_text() != text]
    if args.check:
        if stale:
            print(
                "out of date (run python grafana-dashboards/herald.py): " + ", ".join(map(str, stale)), file=sys.stderr
            )
            return 1
        return 0
    for p in stale:
        p.write_text(text)
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

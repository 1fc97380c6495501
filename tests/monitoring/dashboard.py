"""Read Herald's Grafana dashboard and turn its panels into runnable PromQL.

:func:`panel_queries` returns every panel target's expression with the
dashboard variables substituted, ready for a real Prometheus::

    from tests.monitoring.dashboard import panel_queries
    for q in panel_queries(namespace="news", adapter="mastodon-main"):
        assert prometheus.query(q.expr), q

Substitutions (Grafana's syntaxes ``$var``, ``${var}``, ``${var:fmt}`` and
``[[var]]``):

* ``$namespace``, ``$adapter`` -> a regex that matches exactly the given
  namespace or adapter (the panels use them as ``adapter=~"$adapter"``), or
  ``.*`` (the variables' *All*) when none is given;
* ``$cluster``, ``$job`` -> ``.*`` (*All*) unless given;
* ``$__rate_interval`` -> ``1m``, ``$__interval`` -> ``15s``,
  ``$__range`` -> ``1h`` (each overridable);
* any other variable must be given in ``variables`` or :func:`substitute`
  raises ``KeyError``, so a new dashboard variable cannot be missed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_PATH = REPO_ROOT / "grafana-dashboards" / "herald.json"

# $var, ${var}, ${var:format}, [[var]]
_VAR = re.compile(r"\$\{(?P<braced>\w+)(?::\w+)?\}|\[\[(?P<old>\w+)\]\]|\$(?P<plain>\w+)")
# RE2 metacharacters; '-' and '/' are literal outside a character class.
_REGEX_META = set(r".+*?()|[]{}^$\\")


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel, with variables substituted."""

    panel_id: int
    panel_title: str
    ref_id: str
    expr: str
    raw_expr: str
    row: str | None
    panel_type: str = ""


def load_dashboard(path: Path | str = DASHBOARD_PATH) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Every non-row panel with the title of the row it is in (collapsed rows included)."""
    current_row: str | None = None
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            current_row = panel.get("title")
            for inner in panel.get("panels", []):
                yield inner, current_row
            continue
        yield panel, current_row


def rows(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard.get("panels", []) if p.get("type") == "row"]


def adapter_regex(adapter: str) -> str:
    """A PromQL-string-ready RE2 regex matching exactly ``adapter`` (or a namespace).

    Regex metacharacters get a backslash, written doubled because PromQL
    string literals process escapes themselves.
    """
    return "".join("\\\\" + c if c in _REGEX_META else c for c in adapter)


def default_variables(
    adapter: str | None = None,
    *,
    namespace: str | None = None,
    rate_interval: str = "1m",
    interval: str = "15s",
    range_: str = "1h",
) -> dict[str, str]:
    return {
        "adapter": adapter_regex(adapter) if adapter is not None else ".*",
        "namespace": adapter_regex(namespace) if namespace is not None else ".*",
        "cluster": ".*",
        "job": ".*",
        "__rate_interval": rate_interval,
        "__interval": interval,
        "__range": range_,
        "datasource": "prometheus",
    }


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """``expr`` with every dashboard variable replaced; unknown ones raise ``KeyError``."""

    def repl(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("old") or m.group("plain")
        if name not in variables:
            raise KeyError(f"dashboard variable ${name} has no value (in {expr!r})")
        return variables[name]

    return _VAR.sub(repl, expr)


def panel_queries(
    adapter: str | None = None,
    *,
    namespace: str | None = None,
    dashboard: Mapping[str, Any] | None = None,
    variables: Mapping[str, str] | None = None,
    rate_interval: str = "1m",
    interval: str = "15s",
) -> list[PanelQuery]:
    """Every panel target's PromQL with variables substituted (see module doc)."""
    dash = load_dashboard() if dashboard is None else dashboard
    values = default_variables(adapter, namespace=namespace, rate_interval=rate_interval, interval=interval)
    if variables:
        values.update(variables)
    out: list[PanelQuery] = []
    for panel, row in iter_panels(dash):
        for target in panel.get("targets", []):
            raw = target.get("expr")
            if not raw:
                continue
            out.append(
                PanelQuery(
                    panel_id=int(panel.get("id", 0)),
                    panel_title=str(panel.get("title", "")),
                    ref_id=str(target.get("refId", "")),
                    expr=substitute(raw, values),
                    raw_expr=raw,
                    row=row,
                    panel_type=str(panel.get("type", "")),
                )
            )
    return out

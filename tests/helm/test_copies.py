"""The chart carries copies of files whose source of truth lives elsewhere in the repo: keep them identical."""
from __future__ import annotations

import pytest

from tests.helm.chart import CHART
from tests.support.cluster import ROOT


def test_chart_crds_are_the_top_level_crds():
    top = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    chart = sorted(p.name for p in (CHART / "crds").iterdir())
    assert top, "no CRDs in crds/"
    assert chart == top, "helm/herald/crds/ must hold exactly the files of crds/ (cp crds/*.yaml helm/herald/crds/)"
    for name in top:
        assert (CHART / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes(), \
            f"helm/herald/crds/{name} differs from crds/{name}: cp crds/{name} helm/herald/crds/"


@pytest.mark.parametrize("source,copy", [
    ("alert-rules/herald.rules.yml", "files/herald.rules.yml"),
    ("grafana-dashboards/herald.json", "files/herald.json"),
])
def test_monitoring_files_are_copies(source, copy):
    src, dst = ROOT / source, CHART / copy
    assert src.exists(), f"{source} is missing"
    assert dst.exists(), f"helm/herald/{copy} is missing: cp {source} helm/herald/{copy}"
    assert dst.read_bytes() == src.read_bytes(), f"helm/herald/{copy} differs from {source}: cp {source} helm/herald/{copy}"

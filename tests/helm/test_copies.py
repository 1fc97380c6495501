"""The chart carries copies of files whose source of truth lives elsewhere in the repo: keep them identical."""

from __future__ import annotations

import pytest

from tests.helm.chart import CHART
from tests.support.cluster import ROOT


def test_chart_crds_are_the_top_level_crds():
    """templates/crds.yaml renders files/crds/*.yaml (CRDs as templates, so that `helm upgrade` updates them)."""
    top = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    chart = sorted(p.name for p in (CHART / "files" / "crds").iterdir())
    assert top, "no CRDs in crds/"
    assert chart == top, (
        "helm/herald/files/crds/ must hold exactly the files of crds/ (cp crds/*.yaml helm/herald/files/crds/)"
    )
    for name in top:
        assert (CHART / "files" / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes(), (
            f"helm/herald/files/crds/{name} differs from crds/{name}: cp crds/{name} helm/herald/files/crds/"
        )


@pytest.mark.parametrize(
    "source,copy",
    [
        ("alert-rules/herald.rules.yml", "files/herald.rules.yml"),
        ("grafana-dashboards/herald.json", "files/herald.json"),
    ],
)
def test_monitoring_files_are_copies(source, copy):
    src, dst = ROOT / source, CHART / copy
    assert src.exists(), f"{source} is missing"
    assert dst.exists(), f"helm/herald/{copy} is missing: cp {source} helm/herald/{copy}"
    assert dst.read_bytes() == src.read_bytes(), (
        f"helm/herald/{copy} differs from {source}: cp {source} helm/herald/{copy}"
    )


def test_the_charts_redrive_policy_is_the_one_in_crds_policies():
    """crds/policies/herald-redrive-policy.yaml (for `kubectl apply -R -f crds/`) and the chart's template are the
    same policy; only the names (per release) and the binding's namespaces (the watched ones) differ."""
    import yaml

    from tests.helm.chart import render

    plain = {
        d["kind"]: d
        for d in yaml.safe_load_all((ROOT / "crds" / "policies" / "herald-redrive-policy.yaml").read_text())
        if d
    }
    for values in ({"rbac.clusterWide": True}, {"watchNamespaces": ["news", "blog"]}):
        chart = {o["kind"]: o for o in render(values=values) if o["kind"].startswith("ValidatingAdmissionPolicy")}
        assert set(chart) == set(plain) == {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
        assert chart["ValidatingAdmissionPolicy"]["spec"] == plain["ValidatingAdmissionPolicy"]["spec"]
        binding, plain_binding = (
            chart["ValidatingAdmissionPolicyBinding"]["spec"],
            plain["ValidatingAdmissionPolicyBinding"]["spec"],
        )
        assert binding.pop("policyName") == chart["ValidatingAdmissionPolicy"]["metadata"]["name"]
        assert plain_binding["policyName"] == plain["ValidatingAdmissionPolicy"]["metadata"]["name"]
        selector = binding.pop("matchResources", None)
        assert binding == {k: v for k, v in plain_binding.items() if k != "policyName"}
        if values.get("rbac.clusterWide"):
            assert selector is None
        else:
            assert selector == {
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["news", "blog"]}
                    ]
                }
            }
    for obj in plain.values():
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "herald"


def test_crds_holds_only_crds():
    """`kubectl apply -f crds/` installs the CRDs; the policy sits in crds/policies/ (`-R` adds it)."""
    import yaml

    for path in (ROOT / "crds").glob("*.yaml"):
        kinds = {d["kind"] for d in yaml.safe_load_all(path.read_text()) if d}
        assert kinds == {"CustomResourceDefinition"}, path
    assert sorted(p.name for p in (ROOT / "crds" / "policies").iterdir()) == ["herald-redrive-policy.yaml"]

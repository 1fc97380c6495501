"""What gitops/argocd ships, checked without a cluster: the argocd-cm keys carry the scripts as they are,
and each kind's health_test.yaml passes, run as Argo CD's own test runner runs it (util/lua), on the
objects capture.py read from the real operator."""

from __future__ import annotations

import pytest
import yaml
from lupa import lua51

from tests.gitops.argo_lua import ARGOCD, KINDS, health, run, script
from tests.gitops.capture import CONFIGMAP, configmap_text, input_path
from tests.gitops.scenarios import CASES


def test_the_argocd_cm_keys_carry_the_scripts_unchanged():
    cm = yaml.safe_load(CONFIGMAP.read_text())
    assert (cm["apiVersion"], cm["kind"], cm["metadata"]["name"]) == ("v1", "ConfigMap", "argocd-cm")
    assert cm["data"] == {f"resource.customizations.health.herald.dev_{kind}": script(kind) for kind in KINDS}
    assert CONFIGMAP.read_text() == configmap_text(), "regenerate: python -m tests.gitops.capture configmap"


@pytest.mark.parametrize("kind", KINDS)
def test_argo_cd_health_tests_pass_on_the_captured_objects(kind):
    here = ARGOCD / "herald.dev" / kind
    tests = yaml.safe_load((here / "health_test.yaml").read_text())["tests"]
    # Every case of this kind is there, under the name capture.py gives it.
    assert {t["inputPath"] for t in tests} == {input_path(c) for c in CASES.values() if c.kind == kind}
    for t in tests:
        obj = yaml.safe_load((here / t["inputPath"]).read_text())
        assert obj["kind"] == kind
        assert health(kind, obj) == t["healthStatus"], t["inputPath"]
    assert {t["healthStatus"]["status"] for t in tests} == {"Healthy", "Progressing", "Degraded", "Suspended"}


@pytest.mark.parametrize(
    "snippet",
    [
        'return {status = string.lower("HEALTHY")}',  # the string library
        'return {status = ("Healthy"):lower()}',  # string methods
        'return {status = os.getenv("STATUS")}',  # os (Argo CD's safe os has no getenv)
        "return {status = math.floor(1)}",
    ],
)
def test_scripts_get_only_the_libraries_argo_cd_opens(snippet):
    assert run('return {status = "Healthy", message = tostring(#obj.items)}', {"items": [1, 2]}) == {
        "status": "Healthy",
        "message": "2",
    }
    with pytest.raises(lua51.LuaError):
        run(snippet, {})

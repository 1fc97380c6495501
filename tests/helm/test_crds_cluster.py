"""Herald's CRDs as chart templates, against the API server: `helm upgrade` updates them, `crds.keep` leaves them on
`helm uninstall`, CRDs from elsewhere are taken over only on request. And NOTES.txt's manifests are valid.

The cluster is shared: a release here would take over publications.herald.dev from every other test, so these
tests install a copy of the chart whose CRDs are in a group of their own (<unique>.test.herald.dev)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.helm.chart import CHART, helm, set_args
from tests.integration.conftest import crds  # noqa: F401 - the fixture
from tests.support.cluster import unique_name
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster

EXTRA_FIELD = "chartUpgradeProbe"


def chart_copy(tmp_path: Path, group: str, version: str, extra_field: bool = False) -> Path:
    """The chart, its CRDs moved to ``group``; with ``extra_field`` a new spec field (as a later release adds)."""
    chart = tmp_path / f"herald-{version}"
    shutil.copytree(CHART, chart)
    for path in (chart / "files" / "crds").glob("*.yaml"):
        [crd] = [d for d in yaml.safe_load_all(path.read_text()) if d]
        crd["spec"]["group"] = group
        crd["metadata"]["name"] = f"{crd['spec']['names']['plural']}.{group}"
        # No short names or categories: `kubectl get pub` elsewhere must not find two kinds.
        crd["spec"]["names"].pop("shortNames", None)
        crd["spec"]["names"].pop("categories", None)
        if extra_field:
            for v in crd["spec"]["versions"]:
                v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][EXTRA_FIELD] = {
                    "type": "string",
                    "description": "Added by a later chart version (tests/helm/test_crds_cluster.py).",
                }
        path.write_text(yaml.safe_dump(crd, sort_keys=False))
    return chart


class Release:
    def __init__(self, cluster, api, namespace: str, tmp_path: Path):
        self.cluster, self.namespace, self.tmp_path = cluster, namespace, tmp_path
        self.name = unique_name("crd")
        self.group = f"{unique_name('t').replace('-', '')}.test.herald.dev"
        self.ext = client.ApiextensionsV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.installed = False

    @property
    def crd_names(self) -> list[str]:
        return [f"publications.{self.group}", f"platformadapters.{self.group}"]

    def chart(self, version: str, extra_field: bool = False) -> Path:
        return chart_copy(self.tmp_path, self.group, version, extra_field)

    def helm(self, verb: str, chart: Path, *extra: str, values: dict | None = None, check: bool = True):
        args = set_args(
            {
                "watchNamespaces": [self.namespace],
                # No operator pod, no admission policy: only the objects these tests look at.
                "replicaCount": 0,
                "admissionPolicy.enabled": False,
                **(values or {}),
            }
        )
        proc = helm(
            verb,
            self.name,
            str(chart),
            "--namespace",
            self.namespace,
            *args,
            *extra,
            kubeconfig=self.cluster.kubeconfig,
            check=check,
        )
        if verb == "install" and proc.returncode == 0:
            self.installed = True
        return proc

    def uninstall(self) -> None:
        helm("uninstall", self.name, "--namespace", self.namespace, "--wait", kubeconfig=self.cluster.kubeconfig)
        self.installed = False

    def crd(self, name: str):
        try:
            return self.ext.read_custom_resource_definition(name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def spec_properties(self, name: str) -> dict:
        crd = self.crd(name)
        [version] = [v for v in crd.spec.versions if v.storage]
        return version.schema.open_apiv3_schema.properties["spec"].properties

    def dry_run_publication(self, **spec_extra: str):
        pub = {
            "apiVersion": f"{self.group}/v1alpha1",
            "kind": "Publication",
            "metadata": {"name": "probe"},
            "spec": {"content": {"text": "probe"}, "targets": [{"adapter": "a"}], **spec_extra},
        }
        return self.cluster.kubectl(
            "create",
            "--dry-run=server",
            "--validate=strict",
            "-n",
            self.namespace,
            "-o",
            "json",
            "-f",
            "-",
            input=json.dumps(pub),
            check=False,
        )

    def cleanup(self) -> None:
        if self.installed:
            helm("uninstall", self.name, "--namespace", self.namespace, kubeconfig=self.cluster.kubeconfig, check=False)
        for name in self.crd_names:
            self.cluster.kubectl("delete", "crd", name, "--ignore-not-found", "--wait=false", check=False)


@pytest.fixture
def release(cluster, api, namespace, tmp_path):
    rel = Release(cluster, api, namespace, tmp_path)
    yield rel
    rel.cleanup()


def established(rel: Release, name: str) -> bool:
    crd = rel.crd(name)
    return bool(
        crd and crd.status and any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])
    )


def test_helm_upgrade_updates_the_crds_and_uninstall_keeps_them(release):
    out = release.helm("install", release.chart("v1")).stdout
    assert "STATUS: deployed" in out and "`helm upgrade` updates them" in out, out
    for name in release.crd_names:
        wait_until(lambda name=name: established(release, name), timeout=60, what=f"CRD {name} Established")
        crd = release.crd(name)
        assert crd.metadata.annotations["helm.sh/resource-policy"] == "keep"
        assert crd.metadata.annotations["meta.helm.sh/release-name"] == release.name
        assert crd.metadata.annotations["meta.helm.sh/release-namespace"] == release.namespace
        assert crd.metadata.labels["app.kubernetes.io/managed-by"] == "Helm"
        assert EXTRA_FIELD not in release.spec_properties(name)
    refused = release.dry_run_publication(**{EXTRA_FIELD: "x"})
    assert refused.returncode != 0 and EXTRA_FIELD in refused.stderr, refused.stderr

    # A later chart whose CRDs have a new field: `helm upgrade` applies it, and the API server serves it.
    release.helm("upgrade", release.chart("v2", extra_field=True))
    for name in release.crd_names:
        assert release.spec_properties(name)[EXTRA_FIELD].type == "string"

    def accepted():
        proc = release.dry_run_publication(**{EXTRA_FIELD: "x"})
        return proc.returncode == 0 and json.loads(proc.stdout)["spec"][EXTRA_FIELD] == "x"

    wait_until(accepted, timeout=30, what=f"the API server to accept spec.{EXTRA_FIELD}")

    # Uninstall: the operator's objects go, the CRDs stay (crds.keep).
    release.uninstall()
    assert not release.apps.list_namespaced_deployment(release.namespace).items
    for name in release.crd_names:
        crd = release.crd(name)
        assert crd is not None and crd.metadata.deletion_timestamp is None, name
        assert EXTRA_FIELD in release.spec_properties(name)


def test_without_keep_uninstall_deletes_the_crds(release):
    out = release.helm("install", release.chart("v1"), values={"crds.keep": False}).stdout
    assert "`helm uninstall` DELETES them" in out, out
    for name in release.crd_names:
        assert "helm.sh/resource-policy" not in (release.crd(name).metadata.annotations or {})
    release.uninstall()
    wait_until(
        lambda: all(release.crd(name) is None for name in release.crd_names), timeout=60, what="the CRDs deleted"
    )


@pytest.mark.parametrize("adopt", ["take-ownership", "labels"])
def test_crds_from_elsewhere_are_taken_over_only_on_request(release, adopt):
    """CRDs applied with kubectl (or by the chart's earlier versions, from its crds/ directory): Helm refuses to
    adopt them silently; `--take-ownership` (Helm 3.17+), or Helm's labels and annotations set by hand
    (docs/install.md), hand them to the release; crds.enabled=false leaves them alone."""
    chart = release.chart("v1")
    text = helm("template", "x", str(chart), "--show-only", "templates/crds.yaml", "--set", "crds.keep=false").stdout
    unowned = []
    for doc in yaml.safe_load_all(text):
        if doc:
            doc["metadata"].pop("labels")
            unowned.append(doc)
    release.cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(unowned))

    proc = release.helm("install", chart, check=False)
    assert proc.returncode != 0
    assert "exists and cannot be imported into the current release" in proc.stderr, proc.stderr

    release.helm("install", chart, values={"crds.enabled": False})
    for name in release.crd_names:
        assert "meta.helm.sh/release-name" not in (release.crd(name).metadata.annotations or {})

    if adopt == "take-ownership":
        release.helm("upgrade", chart, "--take-ownership")
    else:
        for name in release.crd_names:
            release.cluster.kubectl("label", "crd", name, "app.kubernetes.io/managed-by=Helm", "--overwrite")
            release.cluster.kubectl(
                "annotate",
                "crd",
                name,
                f"meta.helm.sh/release-name={release.name}",
                f"meta.helm.sh/release-namespace={release.namespace}",
                "--overwrite",
            )
        release.helm("upgrade", chart)
    for name in release.crd_names:
        crd = release.crd(name)
        assert crd.metadata.annotations["meta.helm.sh/release-name"] == release.name
        assert crd.metadata.annotations["helm.sh/resource-policy"] == "keep"
        assert crd.metadata.labels["app.kubernetes.io/component"] == "crd"
    # From now on the release upgrades them.
    v2 = release.chart("v2", extra_field=True)
    release.helm("upgrade", v2)
    for name in release.crd_names:
        assert EXTRA_FIELD in release.spec_properties(name)
    # And handing them elsewhere again (crds.enabled=false) leaves them in place: they were kept.
    release.helm("upgrade", v2, values={"crds.enabled": False})
    for name in release.crd_names:
        crd = release.crd(name)
        assert crd is not None and crd.metadata.deletion_timestamp is None, name


def test_the_notes_commands_run(cluster, crds, namespace):  # noqa: F811 - crds is a fixture
    """NOTES.txt's `kubectl apply -f - <<'EOF'` commands, pasted into bash as they are, with a strict server-side
    dry run added: the heredocs end, and the API server takes the Secret, PlatformAdapter and Publication."""
    # `helm install --dry-run=server` prints the NOTES of a release in this namespace and creates nothing.
    out = helm(
        "install",
        unique_name("notes"),
        str(CHART),
        "--namespace",
        namespace,
        "--dry-run=server",
        "--set",
        "crds.enabled=false",
        kubeconfig=cluster.kubeconfig,
    ).stdout
    notes = out[out.index("NOTES:") :]
    commands = re.findall(r"^ *(kubectl -n \S+ apply -f - <<'EOF'\n.*?\nEOF)$", notes, re.S | re.M)
    assert len(commands) == 2, notes
    printed = ""
    for command in commands:
        assert command.startswith(f"kubectl -n {namespace} apply -f - <<'EOF'"), command
        script = command.replace("apply -f -", "apply --dry-run=server --validate=strict -f -", 1)
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            env=dict(os.environ, KUBECONFIG=cluster.kubeconfig),
            timeout=60,
        )
        assert proc.returncode == 0, f"{script}\n{proc.stderr}"
        printed += proc.stdout
    for obj in (
        "secret/my-webhook-credentials",
        "platformadapter.herald.dev/my-webhook",
        "publication.herald.dev/hello-herald",
    ):
        assert re.search(rf"^{re.escape(obj)} (created|configured|unchanged) \(server dry run\)$", printed, re.M), (
            printed
        )

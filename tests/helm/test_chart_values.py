"""The chart's conventions without a cluster: one source per setting (the operator's configuration read back from
the rendered environment), images, adapter Job defaults, CRDs as templates, the PodDisruptionBudget, the
ServiceMonitor's relabelings, kubeVersion."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.helm.chart import CHART, helm, objects, set_args
from tests.support.cluster import ROOT

CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text())
APP_VERSION = CHART_META["appVersion"]
DIGEST = "sha256:" + "0123456789abcdef" * 4
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def env_sources() -> dict[str, str]:
    """The chart's own list of the variables it sets (templates/_helpers.tpl, herald.envSources)."""
    text = (CHART / "templates" / "_helpers.tpl").read_text()
    block = re.search(r'define "herald.envSources" -}}\n(.*?)\n{{- end }}', text, re.S).group(1)
    return yaml.safe_load(block)


def operator_config(env: dict):
    """The operator's configuration (herald.config.OperatorConfig) from exactly this environment."""
    from herald.config import OperatorConfig

    plain = {k: v for k, v in env.items() if isinstance(v, str)}
    import os
    from unittest import mock

    with mock.patch.dict(os.environ, plain, clear=True):
        return OperatorConfig()


def refused(values: dict) -> str:
    proc = helm("template", "herald", str(CHART), *set_args(values), check=False)
    assert proc.returncode != 0, f"{values} rendered"
    return proc.stderr


# -- one source per setting ----------------------------------------------------------------------------------


def test_each_setting_is_set_once_and_only_as_an_environment_variable():
    values = {
        "watchNamespaces": ["news", "blog"],
        "peering.enabled": True,
        "config.verbose": True,
        "config.publicationTtlSeconds": 3600,
        "logFormat": "json",
        "alerts.enabled": True,
        "leaderElection.enabled": True,
        "alerts.existingSecret": "herald-alerts",
        "adapter.imagePullSecrets": ["regcred"],
        "adapter.priorityClassName": "low",
        "adapter.affinity": {"nodeAffinity": {}},
        "rbac.secretNames": ["mastodon-credentials"],
    }
    c = objects(values=values).container()
    assert c["command"] == ["herald-operator"] and "args" not in c
    names = [e["name"] for e in c["env"]]
    assert len(names) == len(set(names)), names
    # Every HERALD_ variable the chart may set is in its list (which extraEnv refuses), and the operator reads it.
    from herald.config import OperatorConfig

    fields = {f"HERALD_{name.upper()}" for name in OperatorConfig.model_fields}
    herald = {n for n in names if n.startswith("HERALD_")}
    # HERALD_SHARD comes with `shards`, which needs rbac.clusterWide (test_chart.py renders it).
    assert herald | {"HERALD_SHARD"} == {n for n in env_sources() if n.startswith("HERALD_")}
    assert herald <= fields, herald - fields


def test_the_operator_reads_the_values_from_the_rendered_environment():
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["jobs"]}]}]
            }
        }
    }
    values = {
        "watchNamespaces": ["news", "blog"],
        "health.port": 9091,
        "metrics.port": 9090,
        "peering.enabled": True,
        "peering.name": "herald-prod",
        "config.verbose": True,
        "logFormat": "json",
        "config.jobTtlSeconds": 60,
        "config.jobDeadlineSeconds": 120,
        "config.adapterTimeoutSeconds": 5,
        "config.queueAlertThreshold": 7,
        "config.publicationTtlSeconds": 3600,
        "alerts.enabled": True,
        "alerts.existingSecret": "herald-alerts",
        "adapter.image": {"repository": "registry.example/herald-adapter", "tag": "1.2.3"},
        "adapter.serviceAccount.name": "publisher",
        "adapter.imagePullSecrets": ["regcred", {"name": "mirror"}],
        "adapter.priorityClassName": "herald-adapters",
        "adapter.affinity": affinity,
        "adapter.resources": {"limits": {"memory": "512Mi", "cpu": "500m"}},
    }
    config = operator_config(objects(values=values).env())
    assert config.namespaces == ["news", "blog"]
    assert (config.health_port, config.metrics_port) == (9091, 9090)
    assert config.peering == "herald-prod"
    assert config.verbose is True and config.log_format == "json"
    assert (config.job_ttl_seconds, config.job_deadline_seconds, config.adapter_timeout_seconds) == (60, 120, 5)
    assert config.queue_alert_threshold == 7 and config.publication_ttl_seconds == 3600
    assert config.alerts_config == "/etc/herald/alerts/config.yaml"
    assert config.adapter_image == "registry.example/herald-adapter:1.2.3"
    assert config.adapter_service_account == "publisher"
    assert config.adapter_image_pull_secrets == ["regcred", "mirror"]
    assert config.adapter_priority_class_name == "herald-adapters"
    assert config.adapter_affinity == affinity
    # Merged with the defaults, as Helm merges maps.
    assert config.adapter_resources == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "512Mi", "cpu": "500m"},
    }


def test_the_defaults_read_back_are_the_operators():
    from herald.jobs import DEFAULT_RESOURCES

    config = operator_config(objects().env())
    assert config.namespaces == ["herald-system"]
    assert config.peering is None and config.verbose is False and config.log_format == "text"
    assert config.adapter_image == f"herald-adapter:{APP_VERSION}"
    assert config.adapter_resources == DEFAULT_RESOURCES == VALUES["adapter"]["resources"]
    assert config.adapter_image_pull_secrets == [] and config.adapter_priority_class_name == ""
    assert config.adapter_affinity is None and config.alerts_config is None
    assert config.publication_ttl_seconds is None
    # Cluster-wide: no namespace, so kopf watches them all.
    assert operator_config(objects(values={"rbac.clusterWide": True}).env()).namespaces == []


def test_a_resource_default_can_be_removed_with_null():
    config = operator_config(objects(sets=["adapter.resources.limits.memory=null"]).env())
    assert config.adapter_resources == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {}}


@pytest.mark.parametrize("name", sorted(env_sources()))
def test_extra_env_cannot_set_a_setting_twice(name):
    err = refused({"extraEnv": [{"name": name, "value": "x"}]})
    assert f"extraEnv: {name} is set by the chart from {env_sources()[name]}" in err, err


def test_extra_env_passes_other_variables():
    objs = objects(
        values={
            "extraEnv": [{"name": "HERALD_WORKERS", "value": "4"}, {"name": "HERALD_PEERING_PRIORITY", "value": "9"}]
        }
    )
    config = operator_config(objs.env())
    assert config.workers == 4 and config.peering_priority == 9


@pytest.mark.parametrize(
    "args,option,source",
    [
        (["-n", "news"], "--namespace", "watchNamespaces"),
        (["-nnews"], "--namespace", "watchNamespaces"),
        (["--namespace=news"], "--namespace", "watchNamespaces"),
        (["--health-port", "9"], "--health-port", "health.port"),
        (["--peering", "x"], "--peering", "peering.enabled"),
        (["--peer=x"], "--peering", "peering.enabled"),
        (["-v"], "--verbose", "config.verbose"),
        (["--verbose"], "--verbose", "config.verbose"),
        (["--log-format", "json"], "--log-format", "logFormat"),
        (["--log=json"], "--log-format", "logFormat"),
    ],
)
def test_extra_args_cannot_set_a_setting_twice(args, option, source):
    err = refused({"extraArgs": args})
    assert f"extraArgs: {args[0].split('=')[0]}" in err and option in err and source in err, err


def test_the_refused_options_are_the_operators_options_for_chart_settings():
    """herald/__main__.py's options, except --priority (HERALD_PEERING_PRIORITY, which the chart does not set):
    exactly those extraArgs refuses."""
    import subprocess
    import sys

    help_text = subprocess.run(
        [sys.executable, "-m", "herald", "--help"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    options = set(re.findall(r"(--[a-z][-a-z]*)", help_text)) - {"--help", "--priority"}
    text = (CHART / "templates" / "_helpers.tpl").read_text()
    block = re.search(r'define "herald.argSources" -}}\n(.*?)\n{{- end }}', text, re.S).group(1)
    assert options == set(yaml.safe_load(block)), help_text


def test_extra_args_are_passed_after_the_command():
    c = objects(values={"extraArgs": ["--priority", 10]}).container()
    assert c["command"] == ["herald-operator"] and c["args"] == ["--priority", "10"]


# -- images --------------------------------------------------------------------------------------------------


def test_image_tag_defaults_to_app_version_and_digest_pins_it():
    assert objects().container()["image"] == f"herald-operator:{APP_VERSION}"
    assert objects(values={"image.tag": "1.2.3"}).container()["image"] == "herald-operator:1.2.3"
    pinned = objects(
        values={"image.repository": "registry.example/herald-operator", "image.tag": "1.2.3", "image.digest": DIGEST}
    )
    assert pinned.container()["image"] == f"registry.example/herald-operator@{DIGEST}"


@pytest.mark.parametrize(
    "values,image",
    [
        ({}, f"herald-adapter:{APP_VERSION}"),
        ({"adapter.image.tag": "1.2.3"}, "herald-adapter:1.2.3"),
        (
            {"adapter.image.repository": "registry.example/a", "adapter.image.digest": DIGEST},
            f"registry.example/a@{DIGEST}",
        ),
        # The earlier form: one string, used as it is.
        ({"adapter.image": "registry.example/herald-adapter:0.9"}, "registry.example/herald-adapter:0.9"),
    ],
    ids=["default", "tag", "digest", "legacy-string"],
)
def test_adapter_image(values, image):
    assert objects(values=values).env()["HERALD_ADAPTER_IMAGE"] == image


@pytest.mark.parametrize(
    "values,key",
    [
        ({"image.digest": "0123abcd"}, "/image/digest"),
        ({"image.digest": f"registry.example/x@{DIGEST}"}, "/image/digest"),
        ({"adapter.image": {"repository": "a", "tagg": "1"}}, "tagg"),
        ({"adapter.image": ""}, "/adapter/image"),
        ({"adapter.imagePullSecrets": [{"nam": "x"}]}, "/adapter/imagePullSecrets/0"),
        ({"adapter.affinity": {"nodeAfinity": {}}}, "nodeAfinity"),
        ({"adapter.resources": {"limit": {"cpu": "1"}}}, "limit"),
        ({"crds": {"enable": False}}, "enable"),
        ({"podDisruptionBudget": {"minAvailable": "half"}}, "/podDisruptionBudget/minAvailable"),
        ({"metrics.serviceMonitor.relabeling": []}, "relabeling"),
        ({"extraArgs": [{"a": 1}]}, "/extraArgs/0"),
    ],
)
def test_the_schema_refuses_bad_new_values(values, key):
    err = refused(values)
    assert key in err, err


# -- CRDs as templates ----------------------------------------------------------------------------------------


def repo_crds() -> dict[str, dict]:
    out = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out[doc["metadata"]["name"]] = doc
    return out


def test_crds_are_rendered_from_the_repos_crds_with_helm_metadata():
    source = repo_crds()
    rendered = {c["metadata"]["name"]: c for c in objects().of("CustomResourceDefinition")}
    assert set(rendered) == set(source) == {"publications.herald.dev", "platformadapters.herald.dev"}
    for name, crd in rendered.items():
        src = source[name]
        # Exactly the same object, types included (the template parses and re-renders the file).
        assert json.dumps({k: v for k, v in crd.items() if k != "metadata"}, sort_keys=True) == json.dumps(
            {k: v for k, v in src.items() if k != "metadata"}, sort_keys=True
        ), name
        meta = crd["metadata"]
        assert set(meta) == {"name", "labels", "annotations"}, meta
        assert "namespace" not in meta
        assert meta["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert src["metadata"]["labels"].items() <= meta["labels"].items()
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert meta["labels"]["app.kubernetes.io/instance"] == "herald"
        assert meta["labels"]["app.kubernetes.io/component"] == "crd"


def test_crds_keep_false_drops_the_keep_policy_and_crds_enabled_false_renders_none():
    for crd in objects(values={"crds.keep": False}).of("CustomResourceDefinition"):
        assert "annotations" not in crd["metadata"], crd["metadata"]
    assert not objects(values={"crds.enabled": False}).of("CustomResourceDefinition")
    # The kopf peering CRDs are their own setting.
    objs = objects(values={"crds.enabled": False, "peering.enabled": True})
    assert {c["metadata"]["name"] for c in objs.of("CustomResourceDefinition")} == {
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
    }


def test_the_chart_has_no_crds_directory():
    """Helm installs crds/ on the first install only and never upgrades it; the templates do both. Both at once
    would be two owners of the same objects."""
    assert not (CHART / "crds").exists()
    assert helm("show", "crds", str(CHART)).stdout.strip() == ""


# -- PodDisruptionBudget ---------------------------------------------------------------------------------------


def test_no_pod_disruption_budget_by_default():
    assert not objects().of("PodDisruptionBudget")


@pytest.mark.parametrize(
    "values",
    [
        {"podDisruptionBudget.enabled": True},
        {"peering.enabled": True, "replicaCount": 2},
        {"peering.enabled": True, "replicaCount": 3, "podDisruptionBudget.minAvailable": "50%"},
    ],
    ids=["enabled", "two-replicas", "percentage"],
)
def test_pod_disruption_budget(values):
    objs = objects(values=values)
    pdb = objs.one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["metadata"]["namespace"] == "herald-system"
    assert pdb["spec"]["minAvailable"] == values.get("podDisruptionBudget.minAvailable", 1)
    dep = objs.deployment()
    assert pdb["spec"]["selector"] == dep["spec"]["selector"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()


# -- ServiceMonitor relabelings -------------------------------------------------------------------------------


def test_service_monitor_relabelings():
    relabelings = [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}]
    metric_relabelings = [{"sourceLabels": ["__name__"], "regex": "python_gc_.*", "action": "drop"}]
    sm = objects(
        values={
            "metrics.serviceMonitor.enabled": True,
            "metrics.serviceMonitor.relabelings": relabelings,
            "metrics.serviceMonitor.metricRelabelings": metric_relabelings,
        }
    ).one("ServiceMonitor")
    [endpoint] = sm["spec"]["endpoints"]
    assert endpoint["relabelings"] == relabelings
    assert endpoint["metricRelabelings"] == metric_relabelings
    [endpoint] = objects(values={"metrics.serviceMonitor.enabled": True}).one("ServiceMonitor")["spec"]["endpoints"]
    assert "relabelings" not in endpoint and "metricRelabelings" not in endpoint


# -- kubeVersion ---------------------------------------------------------------------------------------------------


def test_kube_version_is_required():
    assert CHART_META["kubeVersion"] == ">=1.30.0-0"
    proc = helm("template", "herald", str(CHART), "--kube-version", "1.29.9", check=False)
    assert proc.returncode != 0 and "kubeVersion" in proc.stderr, proc.stderr
    helm("template", "herald", str(CHART), "--kube-version", "1.30.0")

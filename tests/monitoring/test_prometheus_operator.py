"""Herald through the Prometheus Operator, for real, as kube-prometheus-stack users consume it.

The pinned prometheus-operator (tests/cluster/prometheus-operator) runs as a host process against the
cluster, with its own CRDs, a `Prometheus` and an `Alertmanager` object. Herald is installed with Helm,
its operator a pod on the real node, with the chart's ServiceMonitor, PrometheusRule and
AlertmanagerConfig on. Then:

* the configuration prometheus-operator generates scrapes Herald's Service: a real Prometheus, run on
  that configuration (kubernetes_sd through the API server), scrapes the operator pod. It is built from the
  Go module prometheus-operator depends on (tests/cluster/prometheus-operator): Debian's has no kubernetes_sd;
* the rule files it generates are alert-rules/herald.rules.yml;
* a Herald alert fires in that Prometheus, on the operator's real metrics, and travels through the
  Alertmanager configuration prometheus-operator generated from the chart's AlertmanagerConfig (merged
  into an existing configuration) to a local receiver, delivered by Debian's Alertmanager.

What is substituted, and only that: the pods' in-cluster API access (address and credentials), the mount
path of the rule files, the config-reloader's ``$(VAR)`` placeholders, and where the Alertmanager pod
would be: the `Prometheus` object sends alerts to a Service whose Endpoints name the Alertmanager run on
this host.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

from tests.e2e.conftest import REAL_NODE_LABEL, REAL_NODE_TAINT, RealNode, real_node  # noqa: F401
from tests.helm.chart import CHART, helm, set_args
from tests.monitoring.prometheus_operator import (
    PrometheusOperator,
    api_access,
    crd_files,
    gunzip_secret,
    host_prometheus_config,
    operator_binary,
    prometheus_binary,
)
from tests.monitoring.receivers import RecordingReceiver
from tests.monitoring.servers import RULES_FILE, AlertmanagerServer, PrometheusServer, binaries
from tests.support.cluster import ROOT, Cluster, unique_name
from tests.support.herald import Herald, fate, result
from tests.support.waiting import Timeout, wait_until, watch_until

pytestmark = pytest.mark.cluster

MONITORING = "monitoring.coreos.com"
PROMETHEUS = "herald"  # the Prometheus and Alertmanager objects' name
SELECTOR = {"herald.dev/monitoring": "herald"}  # what they select, like kube-prometheus-stack's `release`
EXISTING_ALERTMANAGER = ROOT / "tests" / "monitoring" / "data" / "existing-alertmanager.yml"
ON_REAL_NODE = {
    "nodeSelector": {REAL_NODE_LABEL: "real"},
    "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
}
AVAILABLE_TIMEOUT = 180


def _version(binary: str) -> str:
    """``v3.13.1`` from ``prometheus --version``: the objects ask the operator for this version's syntax."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=True)
    found = re.search(r"version (\d+\.\d+\.\d+)", out.stdout + out.stderr)
    assert found, out.stdout + out.stderr
    return "v" + found.group(1)


def _normalised(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rule groups compared by meaning: expressions without layout whitespace, keys in any order."""
    out = []
    for g in groups:
        rules = [{**r, "expr": " ".join(str(r["expr"]).split())} for r in g["rules"]]
        out.append({**g, "rules": rules})
    return out


@dataclass
class Stack:
    cluster: Cluster
    core: client.CoreV1Api
    release: str
    fullname: str
    namespace: str  # the release, the monitoring objects, prometheus-operator's scope
    adapters: Herald  # Herald's watched namespace, where the adapters and their alerts live
    operator: PrometheusOperator
    prometheus_config: str  # generated, as the Secret holds it
    rule_files: dict[str, str]  # generated ConfigMap: file name -> content
    alertmanager_config: str  # generated
    prometheus: PrometheusServer
    alertmanager: AlertmanagerServer
    receiver: RecordingReceiver
    amtool: str
    workdir: Path

    def operator_pod(self) -> client.V1Pod:
        (pod,) = self.core.list_namespaced_pod(
            self.namespace,
            label_selector=f"app.kubernetes.io/instance={self.release},app.kubernetes.io/component=operator",
        ).items
        return pod


def _apply_crds(cluster: Cluster) -> None:
    """prometheus-operator's CRDs (server-side: they are too large for an annotation) and Herald's."""
    for path in [*crd_files(), ROOT / "crds"]:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path), timeout=120)
    # monitoring.coreos.com_<plural>.yaml (PyYAML's safe loader refuses their `=` tag)
    names = [f"{p.stem.split('_', 1)[1]}.{MONITORING}" for p in crd_files()]
    for crd in [*names, "publications.herald.dev", "platformadapters.herald.dev"]:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s", timeout=90)


def _wait_secret(core: client.CoreV1Api, namespace: str, name: str, key: str, needle: str) -> str:
    """The gunzipped ``key`` of a generated Secret, once it mentions ``needle``."""

    def ready(s: dict[str, Any]) -> bool:
        return s["metadata"]["name"] == name and key in (s.get("data") or {}) and needle in gunzip_secret(s, key)

    secret = watch_until(
        core.list_namespaced_secret,
        ready,
        timeout=60,
        what=f"Secret {namespace}/{name} with {needle!r}",
        namespace=namespace,
        field_selector=f"metadata.name={name}",
    )
    return gunzip_secret(secret, key)


def _install(cluster: Cluster, release: str, namespace: str, watched: str, receiver: RecordingReceiver) -> str:
    """helm install with the ServiceMonitor, PrometheusRule and AlertmanagerConfig on; returns the output."""
    values = {
        "watchNamespaces": [watched],
        "crds.enabled": False,  # applied above, shared by every test
        "image.repository": "herald-operator",
        "image.tag": "dev",
        "image.pullPolicy": "Never",
        "adapter.image": "herald-adapter:dev",
        **ON_REAL_NODE,
        "metrics.serviceMonitor.enabled": True,
        "metrics.serviceMonitor.interval": "1s",
        "metrics.serviceMonitor.scrapeTimeout": "1s",
        "metrics.serviceMonitor.labels": SELECTOR,
        "metrics.prometheusRule.enabled": True,
        "metrics.prometheusRule.labels": SELECTOR,
        "metrics.alertmanagerConfig.enabled": True,
        "metrics.alertmanagerConfig.labels": SELECTOR,
        "metrics.alertmanagerConfig.groupWait": "1s",
        "metrics.alertmanagerConfig.groupInterval": "1s",
        # A URL with a token in it comes from a Secret; the on-call one is plain.
        "metrics.alertmanagerConfig.receivers.team": {
            "webhookConfigs": [{"urlSecret": {"name": "herald-team-webhook", "key": "url"}, "sendResolved": True}]
        },
        "metrics.alertmanagerConfig.receivers.oncall": {
            "webhookConfigs": [{"url": f"{receiver.url}/herald-oncall", "sendResolved": True}]
        },
    }
    return helm(
        "install", release, str(CHART), "--namespace", namespace, *set_args(values), kubeconfig=cluster.kubeconfig
    ).stdout


def _monitoring_objects(custom: client.CustomObjectsApi, namespace: str, am_service: str) -> None:
    """The `Prometheus` and `Alertmanager` objects, for the versions run here, selecting Herald's objects."""
    bins = {"prometheus": str(prometheus_binary()), "alertmanager": binaries()["alertmanager"]}
    prometheus = {
        "apiVersion": f"{MONITORING}/v1",
        "kind": "Prometheus",
        "metadata": {"name": PROMETHEUS},
        "spec": {
            "version": _version(bins["prometheus"]),
            "replicas": 1,
            "scrapeInterval": "1s",
            "evaluationInterval": "1s",
            "serviceMonitorSelector": {"matchLabels": SELECTOR},
            "ruleSelector": {"matchLabels": SELECTOR},
            "alerting": {"alertmanagers": [{"namespace": namespace, "name": am_service, "port": "web"}]},
        },
    }
    alertmanager = {
        "apiVersion": f"{MONITORING}/v1",
        "kind": "Alertmanager",
        "metadata": {"name": PROMETHEUS},
        "spec": {
            "version": _version(bins["alertmanager"]),
            "replicas": 1,
            "alertmanagerConfigSelector": {"matchLabels": SELECTOR},
            # Herald's alerts carry the adapter's namespace, not the release's (docs/alerting.md).
            "alertmanagerConfigMatcherStrategy": {"type": "None"},
        },
    }
    custom.create_namespaced_custom_object(MONITORING, "v1", namespace, "prometheuses", prometheus)
    custom.create_namespaced_custom_object(MONITORING, "v1", namespace, "alertmanagers", alertmanager)


def _alertmanager_on_host(core: client.CoreV1Api, namespace: str, name: str, am: AlertmanagerServer) -> None:
    """A Service without selector whose Endpoints are the Alertmanager on this host (the pod it stands for)."""
    core.create_namespaced_service(
        namespace,
        {"metadata": {"name": name}, "spec": {"ports": [{"name": "web", "port": 9093, "targetPort": am.port}]}},
    )
    core.create_namespaced_endpoints(
        namespace,
        {
            "metadata": {"name": name},
            "subsets": [{"addresses": [{"ip": am.host}], "ports": [{"name": "web", "port": am.port}]}],
        },
    )


@pytest.fixture(scope="module")
def stack(cluster, api, real_node: RealNode, tmp_path_factory) -> Iterator[Stack]:  # noqa: F811
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    custom = client.CustomObjectsApi(api)
    workdir = tmp_path_factory.mktemp("prometheus-operator")
    bins = binaries()
    binary = operator_binary()
    namespace, watched = unique_name("t-promop"), unique_name("t-promop-adapters")
    release = unique_name("herald")  # contains "herald": the objects are named after the release
    for ns in (namespace, watched):
        core.create_namespace({"metadata": {"name": ns, "labels": {"herald.dev/test": "true"}}})
    started: list[Any] = []
    operator = PrometheusOperator(binary, cluster.kubeconfig, [namespace], workdir)
    installed = False
    try:
        _apply_crds(cluster)
        receiver = RecordingReceiver().start()
        started.append(receiver)
        core.create_namespaced_secret(
            namespace,
            {"metadata": {"name": "herald-team-webhook"}, "stringData": {"url": f"{receiver.url}/herald-team"}},
        )
        # The configuration Herald's routes merge into: the Alertmanager's own Secret.
        core.create_namespaced_secret(
            namespace,
            {
                "metadata": {"name": f"alertmanager-{PROMETHEUS}"},
                "stringData": {"alertmanager.yaml": EXISTING_ALERTMANAGER.read_text()},
            },
        )
        out = _install(cluster, release, namespace, watched, receiver)
        installed = True
        assert "STATUS: deployed" in out, out
        deploy = watch_until(
            apps.list_namespaced_deployment,
            lambda d: (
                d["metadata"]["labels"].get("app.kubernetes.io/instance") == release
                and d["status"].get("availableReplicas") == 1
            ),
            timeout=AVAILABLE_TIMEOUT,
            what=f"Herald's deployment in {namespace} available on the real node",
            namespace=namespace,
        )
        fullname = deploy["metadata"]["name"]

        # Debian's Alertmanager on this host, where the Alertmanager pod would be; its configuration comes later.
        am = AlertmanagerServer(workdir / "alertmanager")
        # An Endpoints address may not be a loopback one: this host's address on the pod network's bridge.
        am.host = real_node.pod_gateway
        am.start()
        started.append(am)
        _alertmanager_on_host(core, namespace, "alertmanager-on-host", am)

        operator.start()
        _monitoring_objects(custom, namespace, "alertmanager-on-host")
        prometheus_config = _wait_secret(
            core, namespace, f"prometheus-{PROMETHEUS}", "prometheus.yaml.gz", f"serviceMonitor/{namespace}/{fullname}/"
        )
        rulefiles = watch_until(
            core.list_namespaced_config_map,
            lambda c: c["metadata"]["name"] == f"prometheus-{PROMETHEUS}-rulefiles-0" and bool(c.get("data")),
            timeout=60,
            what="the generated rule files",
            namespace=namespace,
        )
        alertmanager_config = _wait_secret(
            core, namespace, f"alertmanager-{PROMETHEUS}-generated", "alertmanager.yaml.gz", "herald-team"
        )

        # The generated Alertmanager configuration, in the local Alertmanager.
        am.config_path.write_text(alertmanager_config)
        reload = httpx.post(am.url + "/-/reload", timeout=10)
        assert reload.status_code == 200, f"{reload.status_code} {reload.text}\n{am.log_tail()}"
        # The generated Prometheus configuration on this host, its rule files where the pod mounts them.
        rules_dir = workdir / "rules"
        mounted = rules_dir / f"prometheus-{PROMETHEUS}-rulefiles-0"
        mounted.mkdir(parents=True)
        for file, content in rulefiles["data"].items():
            (mounted / file).write_text(content)
        pod_env = {"POD_NAME": f"prometheus-{PROMETHEUS}-0", "SHARD": "0"}
        host_config = host_prometheus_config(
            prometheus_config, api_access(cluster.kubeconfig, workdir / "api"), rules_dir, pod_env
        )
        prom = PrometheusServer(workdir / "prometheus", host_config)
        prom.binary = str(prometheus_binary())
        prom.start()
        started.append(prom)

        yield Stack(
            cluster=cluster,
            core=core,
            release=release,
            fullname=fullname,
            namespace=namespace,
            adapters=Herald(api, watched),
            operator=operator,
            prometheus_config=prometheus_config,
            rule_files=dict(rulefiles["data"]),
            alertmanager_config=alertmanager_config,
            prometheus=prom,
            alertmanager=am,
            receiver=receiver,
            amtool=bins["amtool"],
            workdir=workdir,
        )
    finally:
        for server in reversed(started):
            server.stop()
        operator.stop()
        print(f"prometheus-operator log (tail):\n{operator.log()}")
        if installed:
            helm("uninstall", release, "--namespace", namespace, "--wait", kubeconfig=cluster.kubeconfig, check=False)
        for ns in (namespace, watched):
            core.delete_namespace(ns, propagation_policy="Background")


def test_prometheus_operator_generates_a_scrape_of_herald_service(stack: Stack):
    """The ServiceMonitor is selected: the Prometheus run on the generated configuration finds Herald's
    Service through the API server and scrapes the operator pod on the real node."""
    jobs = [j["job_name"] for j in yaml.safe_load(stack.prometheus_config)["scrape_configs"]]
    assert jobs == [f"serviceMonitor/{stack.namespace}/{stack.fullname}/0"], jobs
    pod = stack.operator_pod()

    def herald_target() -> dict[str, Any] | None:
        return next((t for t in stack.prometheus.targets() if t["health"] == "up"), None)

    try:
        target = wait_until(herald_target, timeout=60, what="the operator pod scraped")
    except Timeout as e:
        raise AssertionError(f"{e}\ntargets: {stack.prometheus.targets()}\n{stack.prometheus.log_tail()}") from None
    assert target["discoveredLabels"]["__address__"] == f"{pod.status.pod_ip}:8080"
    assert target["labels"]["service"] == stack.fullname and target["labels"]["pod"] == pod.metadata.name
    assert target["labels"]["job"] == stack.fullname  # HeraldOperatorDown's job=~".*herald.*" selects it
    stack.prometheus.wait_for_query(f'herald_last_reconcile_timestamp_seconds{{pod="{pod.metadata.name}"}}')


def test_prometheus_operator_generates_herald_rules(stack: Stack):
    """The PrometheusRule is selected: the generated rule file is alert-rules/herald.rules.yml, and the
    Prometheus run on it loaded every group."""
    (content,) = stack.rule_files.values()
    generated = yaml.safe_load(content)["groups"]
    expected = yaml.safe_load(RULES_FILE.read_text())["groups"]
    assert _normalised(generated) == _normalised(expected)
    loaded = wait_until(stack.prometheus.rules, timeout=30, what="rule groups loaded")
    assert sorted(g["name"] for g in loaded) == sorted(g["name"] for g in expected)
    assert sum(len(g["rules"]) for g in loaded) == sum(len(g["rules"]) for g in expected)


def _routes(stack: Stack, **labels: str) -> list[str]:
    """The receivers the generated Alertmanager configuration routes an alert with ``labels`` to (amtool)."""
    path = stack.workdir / "alertmanager-generated.yml"
    path.write_text(stack.alertmanager_config)
    proc = subprocess.run(
        [stack.amtool, "config", "routes", "test", f"--config.file={path}", *(f"{k}={v}" for k, v in labels.items())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip().split(",")


def test_prometheus_operator_renders_the_alertmanager_config(stack: Stack):
    """The chart's AlertmanagerConfig, merged by prometheus-operator into the existing configuration:
    Herald's alerts go to Herald's receivers first, everything else is routed as before."""
    prefix = f"{stack.namespace}/{stack.fullname}/"
    adapter = {"namespace": stack.adapters.namespace, "adapter": "main"}
    assert _routes(stack, alertname="HeraldDeadLetterGrowing", severity="warning", **adapter) == [
        prefix + "herald-team"
    ]
    # The operator sets `continue: true` on an AlertmanagerConfig's route: a later route of the existing
    # configuration that matches a Herald alert gets it too (docs/alerting.md says so).
    assert _routes(stack, alertname="HeraldPlatformDown", severity="critical", **adapter) == [
        prefix + "herald-oncall",
        "ops-pager",
    ]
    assert _routes(stack, alertname="NodeDown", severity="critical") == ["ops-pager"]
    assert _routes(stack, alertname="PaymentsSlow", team="payments") == ["payments"]
    assert _routes(stack, alertname="Watchdog") == ["default"]
    cfg = yaml.safe_load(stack.alertmanager_config)
    herald_inhibitions = [r for r in cfg["inhibit_rules"] if any("Herald" in m for m in r["source_matchers"])]
    assert len(herald_inhibitions) == 4, cfg["inhibit_rules"]
    check = subprocess.run(
        [stack.amtool, "check-config", str(stack.workdir / "alertmanager-generated.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_herald_alert_fires_and_is_delivered(stack: Stack):
    """A target dead-lettered by the real operator: HeraldDeadLetterGrowing fires in the Prometheus run on
    the generated configuration, goes to the Alertmanager it discovered, and the generated configuration
    delivers it to herald-team (a URL from a Secret), once, and not to on-call."""
    herald = stack.adapters
    herald.adapter("quick", annotations=fate(result("failed", errorClass="rejected", message="HTTP 422"), exit_code=1))
    herald.publication("doomed", ["quick"], retryPolicy={"maxAttempts": 1})
    herald.wait_phase("doomed", "Failed", timeout=90)
    labels = {"namespace": herald.namespace, "adapter": "quick"}
    try:
        alert = stack.prometheus.wait_for_alert("HeraldDeadLetterGrowing", labels=labels, timeout=90)
    except TimeoutError as e:
        raise AssertionError(f"{e}\nalerts: {stack.prometheus.alerts()}\n{stack.prometheus.log_tail()}") from None
    assert alert["labels"]["severity"] == "warning"

    def delivered() -> list[dict[str, Any]]:
        return [
            r.json()
            for r in stack.receiver.requests
            if r.path == "/herald-team"
            and any(a["labels"].get("alertname") == "HeraldDeadLetterGrowing" for a in r.json()["alerts"])
        ]

    try:
        (notification, *_) = wait_until(delivered, timeout=60, what="the notification at herald-team")
    except Timeout as e:
        raise AssertionError(f"{e}\n{stack.alertmanager.log_tail()}\n{stack.prometheus.log_tail()}") from None
    assert notification["receiver"] == f"{stack.namespace}/{stack.fullname}/herald-team"
    assert notification["status"] == "firing"
    (sent,) = notification["alerts"]
    assert {k: sent["labels"][k] for k in ("alertname", "namespace", "adapter", "severity")} == {
        "alertname": "HeraldDeadLetterGrowing",
        **labels,
        "severity": "warning",
    }
    assert sent["annotations"]["runbook_url"].endswith("#heralddeadlettergrowing")
    assert not [r for r in stack.receiver.requests if r.path == "/herald-oncall"]
    # The team's URL (a credential, for most receivers) stays in its Secret: not in the chart's object.
    amc = stack.adapters.custom.get_namespaced_custom_object(
        MONITORING, "v1alpha1", stack.namespace, "alertmanagerconfigs", stack.fullname
    )
    assert "/herald-team" not in json.dumps(amc)

"""The Helm chart without a cluster: helm lint, helm template, the values schema."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helm.chart import APP_VERSION, CHART, Objects, helm, objects, set_args, template_text
from tests.support.cluster import ROOT

MONITORING = {
    "metrics.serviceMonitor.enabled": True,
    "metrics.prometheusRule.enabled": True,
    "metrics.dashboard.enabled": True,
}
ALERTS = {
    "alerts.enabled": True,
    "alerts.config": {
        "channels": [
            {
                "type": "webhook",
                "name": "audit",
                "url": "https://hooks.example.org/herald",
                "secret": "0123456789abcdef0123",
            }
        ]
    },
}

# The operator's permissions in each watched namespace: exactly these (docs/install.md says why).
NAMESPACED_RULES = [
    {"apiGroups": ["herald.dev"], "resources": ["publications"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["herald.dev"], "resources": ["platformadapters"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["herald.dev"], "resources": ["publications/status", "platformadapters/status"], "verbs": ["patch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]
KOPF_CRDS = {
    "apiGroups": ["apiextensions.k8s.io"],
    "resources": ["customresourcedefinitions"],
    "verbs": ["list", "watch"],
}
KOPF_NAMESPACES = {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}
READ_VERBS = {"get", "list", "watch"}


def all_rules(objs: Objects) -> list[dict]:
    return [r for o in objs if o["kind"] in ("Role", "ClusterRole") for r in o["rules"]]


def assert_no_wildcards(objs: Objects) -> None:
    for o in objs:
        for rule in o.get("rules") or []:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert "*" not in (rule.get(field) or []), (o["kind"], o["metadata"]["name"], rule)
                assert not any("*" in v for v in rule.get(field) or [] if v), (o["metadata"]["name"], rule)


def assert_no_cluster_wide_writes(objs: Objects) -> None:
    for role in objs.of("ClusterRole"):
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= READ_VERBS, (role["metadata"]["name"], rule)


# -- helm lint ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {},
        MONITORING,
        {"watchNamespaces": ["news", "blog"], **ALERTS, "peering.enabled": True, "replicaCount": 2},
        {"rbac.clusterWide": True, "peering.enabled": True, **MONITORING},
    ],
    ids=["defaults", "monitoring", "namespaced-alerts-peering", "clusterwide"],
)
def test_helm_lint_passes(values):
    args = [a for k, v in values.items() for a in ("--set-json", f"{k}={json.dumps(v)}")]
    out = helm("lint", "--strict", str(CHART), *args)
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout, out.stdout


# -- defaults ----------------------------------------------------------------------------------------


def test_defaults_one_replica_recreate_and_the_operator_command():
    objs = objects()
    dep = objs.deployment()
    assert dep["metadata"]["namespace"] == "herald-system"
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    c = objs.container()
    # image.tag defaults to the chart's appVersion.
    assert c["image"] == f"herald-operator:{APP_VERSION}" and c["imagePullPolicy"] == "IfNotPresent"
    assert "args" not in c  # every setting is an environment variable
    assert c["command"] == ["herald-operator"]
    # Namespaced by default: the release namespace only.
    assert objs.env()["HERALD_NAMESPACES"] == "herald-system"
    assert dep["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()


def test_defaults_security_context():
    objs = objects()
    pod = objs.deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsUser"] != 0
    sc = objs.container()["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # The only writable path: /tmp, an emptyDir.
    assert objs.container()["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]


def test_defaults_probes_on_the_health_endpoint_and_resources():
    c = objects().container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
        assert c[probe]["periodSeconds"] > 0 and c[probe]["timeoutSeconds"] > 0
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}, c["resources"]


def test_defaults_environment():
    env = objects().env()
    assert env["HERALD_NAMESPACES"] == "herald-system"
    assert env["HERALD_ADAPTER_IMAGE"] == f"herald-adapter:{APP_VERSION}"
    assert env["HERALD_ADAPTER_SERVICE_ACCOUNT"] == "herald-adapter"
    assert env["HERALD_JOB_TTL_SECONDS"] == "86400"
    assert env["HERALD_JOB_DEADLINE_SECONDS"] == "600"
    assert env["HERALD_ADAPTER_TIMEOUT_SECONDS"] == "10"
    assert env["HERALD_QUEUE_ALERT_THRESHOLD"] == "100"
    assert env["HERALD_METRICS_PORT"] == "8080"
    assert env["HERALD_HEALTH_PORT"] == "8081"
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "HERALD_ALERTS_CONFIG" not in env and "HERALD_PEERING" not in env
    # Every value is a string, as the API requires.
    assert all(isinstance(v, (str, dict)) for v in env.values())


def test_environment_follows_values():
    env = objects(
        values={
            "adapter.image": "registry.example/herald-adapter:1.2",
            "config.jobTtlSeconds": 60,
            "config.jobDeadlineSeconds": 120,
            "config.adapterTimeoutSeconds": 5,
            "config.queueAlertThreshold": 7,
            "metrics.port": 9090,
            "health.port": 9091,
            "extraEnv": [{"name": "HERALD_RESYNC_SECONDS", "value": "30"}],
        }
    ).env()
    assert env["HERALD_ADAPTER_IMAGE"] == "registry.example/herald-adapter:1.2"
    assert (
        env["HERALD_JOB_TTL_SECONDS"],
        env["HERALD_JOB_DEADLINE_SECONDS"],
        env["HERALD_ADAPTER_TIMEOUT_SECONDS"],
        env["HERALD_QUEUE_ALERT_THRESHOLD"],
    ) == ("60", "120", "5", "7")
    assert (env["HERALD_METRICS_PORT"], env["HERALD_HEALTH_PORT"]) == ("9090", "9091")
    assert env["HERALD_RESYNC_SECONDS"] == "30"


def test_defaults_service_accounts_service_and_no_monitoring():
    objs = objects()
    sa = objs.one("ServiceAccount", "herald")
    assert sa["automountServiceAccountToken"] is False
    pod = objs.deployment()["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "herald" and pod["automountServiceAccountToken"] is True
    adapter = objs.one("ServiceAccount", "herald-adapter", "herald-system")
    assert adapter["automountServiceAccountToken"] is False
    # Nothing grants the adapters' ServiceAccount anything.
    for binding in objs.of("RoleBinding") + objs.of("ClusterRoleBinding"):
        assert all(s["name"] == "herald" and s["namespace"] == "herald-system" for s in binding["subjects"])
    svc = objs.one("Service")
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    assert svc["spec"]["selector"].items() <= objs.deployment()["spec"]["template"]["metadata"]["labels"].items()
    kinds = {o["kind"] for o in objs}
    assert not kinds & {
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
        "Secret",
        "KopfPeering",
        "ClusterKopfPeering",
    }, kinds


def test_defaults_rbac_is_namespaced_and_exact():
    objs = objects()
    [role] = objs.of("Role")
    assert role["metadata"]["namespace"] == "herald-system"
    assert role["rules"] == NAMESPACED_RULES
    [binding] = objs.of("RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "herald"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "herald", "namespace": "herald-system"}]
    # The one ClusterRole: kopf's observers, read-only.
    [cr] = objs.of("ClusterRole")
    assert cr["rules"] == [KOPF_CRDS, KOPF_NAMESPACES]
    [crb] = objs.of("ClusterRoleBinding")
    assert crb["roleRef"]["name"] == cr["metadata"]["name"] == "herald-system-herald-kopf"
    assert_no_wildcards(objs)
    assert_no_cluster_wide_writes(objs)


# -- namespaced with two namespaces ----------------------------------------------------------------


def test_two_watched_namespaces_get_a_role_each_and_no_cluster_wide_write():
    objs = objects(release="news", namespace="ops", values={"watchNamespaces": ["news", "blog"]})
    roles = {r["metadata"]["namespace"]: r for r in objs.of("Role")}
    assert set(roles) == {"news", "blog"}
    for ns, role in roles.items():
        if role["metadata"]["name"].endswith("-leader-election"):
            continue
        assert role["rules"] == NAMESPACED_RULES
        binding = objs.one("RoleBinding", role["metadata"]["name"], ns)
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "news-herald", "namespace": "ops"}]
    assert len(objs.of("RoleBinding")) == 2
    # The adapters' ServiceAccount wherever adapter Jobs may run.
    assert {
        s["metadata"]["namespace"] for s in objs.of("ServiceAccount") if s["metadata"]["name"] == "herald-adapter"
    } == {"ops", "news", "blog"}
    assert "args" not in objs.container()
    assert objs.env()["HERALD_NAMESPACES"] == "news,blog"
    assert [cr["rules"] for cr in objs.of("ClusterRole")] == [[KOPF_CRDS, KOPF_NAMESPACES]]
    assert_no_wildcards(objs)
    assert_no_cluster_wide_writes(objs)


def test_by_default_the_operator_has_no_access_to_secrets():
    for values in ({}, {"rbac.clusterWide": True}, {"watchNamespaces": ["news", "blog"]}):
        objs = objects(values=values)
        assert not [r for r in all_rules(objs) if "secrets" in r["resources"]], values
        assert "HERALD_READ_SECRET_METADATA" not in objs.env()


def test_secret_names_grant_get_on_those_secrets_in_the_watched_namespaces_only():
    objs = objects(
        values={
            "watchNamespaces": ["news", "blog"],
            "rbac.secretNames": ["mastodon-credentials", "discord-credentials"],
        }
    )
    roles = [r for r in objs.of("Role") if r["metadata"]["name"].endswith("-credentials")]
    assert {r["metadata"]["namespace"] for r in roles} == {"news", "blog"}
    for role in roles:
        assert role["rules"] == [
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": ["mastodon-credentials", "discord-credentials"],
                "verbs": ["get"],
            }
        ]
    bindings = [b for b in objs.of("RoleBinding") if b["metadata"]["name"].endswith("-credentials")]
    assert {b["metadata"]["namespace"] for b in bindings} == {"news", "blog"}
    assert objs.env()["HERALD_READ_SECRET_METADATA"] == "true"
    assert not [r for r in objs.of("ClusterRole") for rule in r["rules"] if "secrets" in rule["resources"]]


def test_cluster_wide_secret_names_never_become_a_cluster_role():
    refused = helm(
        "template", "herald", str(CHART), *set_args({"rbac.clusterWide": True, "rbac.secretNames": ["c"]}), check=False
    )
    assert refused.returncode != 0 and "needs rbac.secretNamespaces" in refused.stderr, refused.stderr
    objs = objects(values={"rbac.clusterWide": True, "rbac.secretNames": ["creds"], "rbac.secretNamespaces": ["news"]})
    [role] = [r for r in objs.of("Role") if r["metadata"]["name"].endswith("-credentials")]
    assert role["metadata"]["namespace"] == "news"
    assert not [r for r in objs.of("ClusterRole") for rule in r["rules"] if "secrets" in rule["resources"]]


def test_rbac_create_false_renders_no_rbac():
    objs = objects(values={"rbac.create": False})
    assert not [o for o in objs if o["kind"] in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")]


# -- cluster-wide ------------------------------------------------------------------------------------


def test_cluster_wide_uses_a_cluster_role_and_watches_every_namespace():
    objs = objects(values={"rbac.clusterWide": True})
    assert not objs.of("Role") and not objs.of("RoleBinding")
    roles = {r["metadata"]["name"]: r for r in objs.of("ClusterRole")}
    assert roles["herald-system-herald"]["rules"] == NAMESPACED_RULES
    # kopf does not observe namespaces when it runs cluster-wide.
    assert roles["herald-system-herald-kopf"]["rules"] == [KOPF_CRDS]
    bindings = {b["roleRef"]["name"]: b for b in objs.of("ClusterRoleBinding")}
    assert set(bindings) == set(roles)
    for b in bindings.values():
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": "herald", "namespace": "herald-system"}]
    assert "args" not in objs.container()
    assert objs.env()["HERALD_NAMESPACES"] == ""
    assert_no_wildcards(objs)
    adapters = objs.of("ServiceAccount")
    assert {(s["metadata"]["name"], s["metadata"]["namespace"]) for s in adapters} == {
        ("herald", "herald-system"),
        ("herald-adapter", "herald-system"),
    }


def test_cluster_wide_adapter_service_account_in_extra_namespaces():
    objs = objects(values={"rbac.clusterWide": True, "adapter.serviceAccount.extraNamespaces": ["news", "blog"]})
    assert {
        s["metadata"]["namespace"] for s in objs.of("ServiceAccount") if s["metadata"]["name"] == "herald-adapter"
    } == {"herald-system", "news", "blog"}


def test_no_adapter_service_account_means_the_namespace_default():
    objs = objects(values={"adapter.serviceAccount.name": ""})
    assert objs.env()["HERALD_ADAPTER_SERVICE_ACCOUNT"] == ""
    assert [s["metadata"]["name"] for s in objs.of("ServiceAccount")] == ["herald"]


# -- monitoring -------------------------------------------------------------------------------------


def test_monitoring_templates_are_off_by_default_and_on_behind_their_flags():
    objs = objects(values=MONITORING)
    svc = objs.one("Service")
    sm = objs.one("ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    [endpoint] = sm["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert endpoint["port"] in [p["name"] for p in svc["spec"]["ports"]]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["herald-system"]}

    rule = objs.one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    source = yaml.safe_load((ROOT / "alert-rules" / "herald.rules.yml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    assert rule["spec"]["groups"], "no rule groups rendered"

    cm = objs.one("ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["herald.json"]) == json.loads(
        (ROOT / "grafana-dashboards" / "herald.json").read_text()
    )


def test_each_monitoring_flag_is_independent():
    for flag, kind in [
        ("metrics.serviceMonitor.enabled", "ServiceMonitor"),
        ("metrics.prometheusRule.enabled", "PrometheusRule"),
        ("metrics.dashboard.enabled", "ConfigMap"),
    ]:
        kinds = {o["kind"] for o in objects(values={flag: True})}
        assert kind in kinds
        assert not ({"ServiceMonitor", "PrometheusRule", "ConfigMap"} - {kind}) & kinds, (flag, kinds)


def test_monitoring_labels_and_dashboard_namespace():
    objs = objects(
        values={
            **MONITORING,
            "metrics.serviceMonitor.labels": {"release": "kps"},
            "metrics.prometheusRule.labels": {"release": "kps"},
            "metrics.dashboard.namespace": "monitoring",
            "metrics.dashboard.annotations": {"grafana_folder": "Herald"},
        }
    )
    assert objs.one("ServiceMonitor")["metadata"]["labels"]["release"] == "kps"
    assert objs.one("PrometheusRule")["metadata"]["labels"]["release"] == "kps"
    cm = objs.one("ConfigMap")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Herald"}


# -- alerts -----------------------------------------------------------------------------------------


def test_alerts_config_secret_is_mounted():
    objs = objects(values=ALERTS)
    secret = objs.one("Secret", "herald-alerts")
    assert yaml.safe_load(secret["stringData"]["config.yaml"]) == ALERTS["alerts.config"]
    assert objs.env()["HERALD_ALERTS_CONFIG"] == "/etc/herald/alerts/config.yaml"
    pod = objs.deployment()["spec"]["template"]["spec"]
    vol = next(v for v in pod["volumes"] if v["name"] == "alerts")
    assert vol["secret"]["secretName"] == "herald-alerts"
    assert vol["secret"]["items"] == [{"key": "config.yaml", "path": "config.yaml"}]
    assert {"name": "alerts", "mountPath": "/etc/herald/alerts", "readOnly": True} in objs.container()["volumeMounts"]
    # A config change rolls the pod.
    before = objs.deployment()["spec"]["template"]["metadata"]["annotations"]["checksum/alerts"]
    other = objects(values={**ALERTS, "alerts.config": {"enabled": False}})
    assert other.deployment()["spec"]["template"]["metadata"]["annotations"]["checksum/alerts"] != before


def test_alerts_from_an_existing_secret():
    objs = objects(
        values={"alerts.enabled": True, "alerts.existingSecret": "my-alerts", "alerts.secretKey": "herald.yaml"}
    )
    assert not objs.of("Secret")
    vol = next(v for v in objs.deployment()["spec"]["template"]["spec"]["volumes"] if v["name"] == "alerts")
    assert vol["secret"]["secretName"] == "my-alerts"
    assert vol["secret"]["items"] == [{"key": "herald.yaml", "path": "config.yaml"}]
    assert objs.env()["HERALD_ALERTS_CONFIG"] == "/etc/herald/alerts/config.yaml"


# -- peering ----------------------------------------------------------------------------------------


def test_peering_namespaced():
    objs = objects(values={"watchNamespaces": ["news", "blog"], "peering.enabled": True, "replicaCount": 2})
    assert objs.deployment()["spec"]["replicas"] == 2
    # Two replicas: leader election, and rolling updates that wait for the Lease.
    assert objs.deployment()["spec"]["strategy"]["type"] == "RollingUpdate"
    assert objs.env()["HERALD_PEERING"] == "herald"
    assert {c["metadata"]["name"] for c in objs.of("CustomResourceDefinition")} == {
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
        "publications.herald.dev",
        "platformadapters.herald.dev",
    }
    peerings = objs.of("KopfPeering")
    assert {p["metadata"]["namespace"] for p in peerings} == {"news", "blog"}
    assert all(p["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade" for p in peerings)
    for role in objs.of("Role"):
        if role["metadata"]["name"].endswith("-leader-election"):
            continue
        assert role["rules"] == [
            *NAMESPACED_RULES,
            {"apiGroups": ["kopf.dev"], "resources": ["kopfpeerings"], "verbs": ["list", "watch", "patch"]},
        ]
    assert_no_cluster_wide_writes(objs)


def test_peering_cluster_wide():
    objs = objects(
        values={
            "rbac.clusterWide": True,
            "peering.enabled": True,
            "peering.name": "herald-prod",
            "peering.createCRDs": False,
        }
    )
    assert not [c for c in objs.of("CustomResourceDefinition") if c["spec"]["group"] == "kopf.dev"]
    assert objs.one("ClusterKopfPeering")["metadata"]["name"] == "herald-prod"
    roles = {r["metadata"]["name"]: r for r in objs.of("ClusterRole")}
    assert roles["herald-system-herald-kopf"]["rules"] == [
        KOPF_CRDS,
        {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"], "verbs": ["list", "watch", "patch"]},
    ]
    assert roles["herald-system-herald"]["rules"] == NAMESPACED_RULES


# -- the redrive admission policy -------------------------------------------------------------------


def test_redrive_policy_is_on_by_default_for_the_watched_namespaces():
    objs = objects(values={"watchNamespaces": ["news", "blog"]})
    policy = objs.one("ValidatingAdmissionPolicy")
    binding = objs.one("ValidatingAdmissionPolicyBinding")
    # Cluster-scoped: named after the release namespace and release, like the ClusterRoles.
    assert policy["metadata"]["name"] == binding["metadata"]["name"] == "herald-system-herald-redrive"
    assert "namespace" not in policy["metadata"] and "namespace" not in binding["metadata"]
    assert policy["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["news", "blog"]}
    ]
    [rule] = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule == {
        "apiGroups": ["herald.dev"],
        "apiVersions": ["*"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["publications"],
    }
    [check] = policy["spec"]["validations"]
    assert "1024" in check["expression"] and "metadata.annotations[herald.dev/redrive]" in check["message"]
    assert policy["metadata"]["labels"]["app.kubernetes.io/component"] == "admission"


def test_redrive_policy_defaults_to_the_release_namespace_and_to_every_namespace_cluster_wide():
    binding = objects().one("ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"] == ["herald-system"]
    binding = objects(values={"rbac.clusterWide": True}).one("ValidatingAdmissionPolicyBinding")
    assert "matchResources" not in binding["spec"]


def test_redrive_policy_can_be_turned_off():
    kinds = {o["kind"] for o in objects(values={"admissionPolicy.enabled": False})}
    assert not kinds & {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}, kinds


# -- the schema and other refusals --------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting,key",
    [
        ("replicas=2", "replicas"),
        ("image.name=x", "name"),
        ("rbac.clusterwide=true", "clusterwide"),
        ("metrics.serviceMonitor.enable=true", "enable"),
        ("peering.priority=10", "priority"),
        ("admissionPolicy.enable=false", "enable"),
    ],
)
def test_unknown_keys_are_rejected_by_the_schema(setting, key):
    proc = helm("template", "herald", str(CHART), "--set", setting, check=False)
    assert proc.returncode != 0
    assert "additional properties" in proc.stderr and f"'{key}'" in proc.stderr, proc.stderr


def test_unknown_keys_in_a_values_file_are_rejected(tmp_path):
    f = tmp_path / "values.yaml"
    f.write_text("watchNamespace: [news]\n")  # a typo of watchNamespaces
    proc = helm("template", "herald", str(CHART), "-f", str(f), check=False)
    assert proc.returncode != 0 and "'watchNamespace'" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "values,message",
    [
        ({"rbac.clusterWide": True, "watchNamespaces": ["news"]}, "leave watchNamespaces empty"),
        ({"alerts.enabled": True}, "alerts.existingSecret or alerts.config"),
        ({"watchNamespaces": ["Not_A_Namespace"]}, "watchNamespaces"),
        ({"image.pullPolicy": "Sometimes"}, "pullPolicy"),
    ],
    ids=[
        "clusterwide-with-namespaces",
        "alerts-without-config",
        "bad-namespace",
        "bad-pull-policy",
    ],
)
def test_invalid_combinations_are_refused(values, message):
    args = [a for k, v in values.items() for a in ("--set-json", f"{k}={json.dumps(v)}")]
    proc = helm("template", "herald", str(CHART), *args, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


# -- NOTES.txt and the whole stream -------------------------------------------------------------------


def render_notes(tmp_path, values: dict) -> str:
    """NOTES.txt as `helm install` would print it, without a cluster: a copy of the chart renders it
    into a ConfigMap."""
    import shutil

    chart = tmp_path / "herald"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes-under-test.txt")
    (chart / "templates" / "notes-under-test.yaml").write_text(
        "kind: ConfigMap\napiVersion: v1\nmetadata: {name: notes}\n"
        'data: {notes: {{ tpl (.Files.Get "notes-under-test.txt") . | toJson }}}\n'
    )
    args = [a for k, v in values.items() for a in ("--set-json", f"{k}={json.dumps(v)}")]
    out = helm(
        "template",
        "herald",
        str(chart),
        "--namespace",
        "herald-system",
        *args,
        "--show-only",
        "templates/notes-under-test.yaml",
    ).stdout
    return yaml.safe_load(out)["data"]["notes"]


@pytest.mark.parametrize(
    "values,expected",
    [
        ({}, "The operator watches: herald-system (a Role and RoleBinding in each)"),
        ({"watchNamespaces": ["news", "blog"]}, "The operator watches: news, blog"),
        ({"rbac.clusterWide": True}, "watches EVERY namespace"),
        ({"peering.enabled": True, **ALERTS, **MONITORING}, 'kopf peering "herald" is on'),
    ],
    ids=["defaults", "namespaces", "clusterwide", "everything"],
)
def test_notes_render(tmp_path, values, expected):
    notes = render_notes(tmp_path, values)
    assert expected in notes, notes
    assert "docs/install.md" in notes and "deployment/herald" in notes


def test_rendered_stream_is_valid_yaml_with_names_and_labels():
    text = template_text(values={"watchNamespaces": ["a", "b"], "peering.enabled": True, **ALERTS, **MONITORING})
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert len(docs) > 10
    for d in docs:
        assert d["apiVersion"] and d["kind"] and d["metadata"]["name"], d
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "herald", d["metadata"]
    names = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), names


def test_two_replicas_elect_a_leader_and_update_rolling_with_surge():
    objs = objects(values={"replicaCount": 2})
    dep = objs.deployment()
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    env = objs.env()
    assert env["HERALD_LEADER_ELECTION"] == "true" and env["HERALD_LEASE_NAME"] == dep["metadata"]["name"]
    (role,) = [o for o in objs.of("Role") if o["metadata"]["name"].endswith("-leader-election")]
    assert role["metadata"]["namespace"] == "herald-system"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]


# -- shards -------------------------------------------------------------------------------------------


def test_shards_render_one_deployment_per_shard_each_with_its_lease_pods_and_budget():
    objs = objects(values={"rbac.clusterWide": True, "shards": ["a", "default"], "replicaCount": 2, **ALERTS})
    deployments = {d["metadata"]["name"]: d for d in objs.of("Deployment")}
    assert set(deployments) == {"herald-a", "herald-default"}
    selectors = []
    for shard in ("a", "default"):
        dep = deployments[f"herald-{shard}"]
        selector = dep["spec"]["selector"]["matchLabels"]
        assert selector["herald.dev/shard"] == shard
        assert dep["spec"]["template"]["metadata"]["labels"]["herald.dev/shard"] == shard
        selectors.append(selector)
        [container] = dep["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        # what tests/integration/test_sharding.py runs: every namespace, this shard, a Lease per shard
        assert env["HERALD_SHARD"] == shard and env["HERALD_NAMESPACES"] == ""
        assert env["HERALD_LEADER_ELECTION"] == "true" and env["HERALD_LEASE_NAME"] == "herald"
        assert env["HERALD_ALERTS_STATE_CONFIGMAP"] == f"herald-alerts-state-{shard}"
        assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    assert selectors[0] != selectors[1]  # the Deployments never adopt each other's pods
    budgets = {b["metadata"]["name"]: b["spec"]["selector"]["matchLabels"] for b in objs.of("PodDisruptionBudget")}
    assert budgets == {f"herald-{s}": sel for s, sel in zip(("a", "default"), selectors, strict=True)}
    [state_role] = [r for r in objs.of("Role") if r["metadata"]["name"].endswith("-alerts-state")]
    assert state_role["rules"][1]["resourceNames"] == ["herald-alerts-state-a", "herald-alerts-state-default"]


def test_without_shards_one_deployment_keeps_its_name_and_selector():
    dep = objects().deployment()
    assert dep["metadata"]["name"] == "herald"
    assert "herald.dev/shard" not in dep["spec"]["selector"]["matchLabels"]
    assert "HERALD_SHARD" not in {e["name"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize(
    "values,message",
    [
        ({"shards": ["a", "b"]}, "shards needs rbac.clusterWide"),
        ({"rbac.clusterWide": True, "shards": ["Not A Shard"]}, "shards"),
    ],
    ids=["shards-without-cluster-wide", "bad-shard-name"],
)
def test_invalid_shards_are_refused(values, message):
    proc = helm("template", "herald", str(CHART), *set_args(values), check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr

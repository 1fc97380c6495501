"""The chart's RBAC against the real API server: the operator works as the chart's ServiceAccount, and fails without it.

The operator runs on the host with a kubeconfig holding a token minted for the chart's ServiceAccount
(TokenRequest), so every API call it makes, its own and kopf's, is authorised as that ServiceAccount.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.helm.chart import CHART, RBAC_KINDS, helm, render, set_args
from tests.support.cluster import ROOT, Cluster, unique_name
from tests.support.herald import Herald, fate, target
from tests.support.operator import OperatorProcess
from tests.support.waiting import Timeout, wait_until

pytestmark = pytest.mark.cluster

ADAPTER_SA = "herald-adapter"
# A 403 as a status code (a word of its own): release names end in a hash that may hold "403", and a log
# line's time has milliseconds ("07:25:09,403") that may be 403, so a 403 after "," or "." is not one.
FORBIDDEN = re.compile(r"(?<![,.])\b403\b|Forbidden|forbidden|Not enough permissions")


@pytest.fixture(scope="session")
def crds(cluster):
    """Herald's CRDs, from crds/ (the chart renders the same, see test_copies.py); shared by every test on the
    cluster, so the releases installed here leave them alone (crds.enabled=false)."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/publications.herald.dev",
        "crd/platformadapters.herald.dev",
        "--timeout=60s",
    )


@pytest.fixture(scope="session")
def peering_crds(cluster):
    """kopf's peering CRDs as the chart renders them (peering.enabled). Left installed, like Herald's CRDs:
    they change nothing for operators that run standalone (Herald without --peering)."""
    text = helm(
        "template", "x", str(CHART), "--set", "peering.enabled=true", "--show-only", "templates/peering-crds.yaml"
    ).stdout
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=text)
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/kopfpeerings.kopf.dev",
        "crd/clusterkopfpeerings.kopf.dev",
        "--timeout=60s",
    )


@dataclass
class Installed:
    """The chart's RBAC objects, applied for one test namespace."""

    cluster: Cluster
    namespace: str
    release: str
    objects: list[dict]
    tmp: Path
    values: dict = field(default_factory=dict)

    @property
    def service_account(self) -> str:
        [sa] = [
            o["metadata"]["name"]
            for o in self.objects
            if o["kind"] == "ServiceAccount" and o["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
        ]
        return sa

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def deployment_env(self) -> dict[str, str]:
        """The operator's environment exactly as the chart's Deployment sets it (plain values only)."""
        dep = next(o for o in render_for(self.namespace, self.release, self.values) if o["kind"] == "Deployment")
        env = {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e}
        # The test process picks free ports and sets these itself.
        for k in ("HERALD_METRICS_PORT", "HERALD_HEALTH_PORT", "PYTHONUNBUFFERED"):
            env.pop(k)
        return env

    def kubeconfig(self, service_account: str | None = None) -> str:
        """A kubeconfig that authenticates as the ServiceAccount with a token bound to it (TokenRequest)."""
        sa = service_account or self.service_account
        core = client.CoreV1Api(self.cluster.api_client())
        token = core.create_namespaced_service_account_token(
            sa, self.namespace, {"spec": {"expirationSeconds": 3600}}
        ).status.token
        admin = yaml.safe_load(Path(self.cluster.kubeconfig).read_text())
        ctx = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
        cl = next(c for c in admin["clusters"] if c["name"] == ctx["cluster"])
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cl],
            "users": [{"name": sa, "user": {"token": token}}],
            "contexts": [{"name": sa, "context": {"cluster": cl["name"], "user": sa, "namespace": self.namespace}}],
            "current-context": sa,
        }
        path = self.tmp / f"kubeconfig-{sa}"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return str(path)

    def kubectl_as(self, kubeconfig: str, *args: str) -> subprocess.CompletedProcess:
        return Cluster(kubeconfig).kubectl(*args, check=False)

    def can_i(self, kubeconfig: str, verb: str, resource: str, *where: str) -> bool:
        where = where or ("-n", self.namespace)
        out = self.kubectl_as(kubeconfig, "auth", "can-i", verb, resource, *where)
        answer = out.stdout.strip()
        assert answer in ("yes", "no"), (verb, resource, out.stdout, out.stderr)
        return answer == "yes"


def render_for(namespace: str, release: str, values: dict) -> list[dict]:
    return render(release=release, namespace=namespace, values={"watchNamespaces": [namespace], **values})


@pytest.fixture
def install_rbac(cluster, namespace, crds, tmp_path):
    """Apply only the ServiceAccounts and RBAC the chart renders for the test namespace (plus ``kinds``)."""
    cluster_scoped: list[tuple[str, str]] = []

    def apply(values: dict | None = None, kinds: tuple[str, ...] = ()) -> Installed:
        values = values or {}
        release = unique_name("h")
        objs = [o for o in render_for(namespace, release, values) if o["kind"] in RBAC_KINDS + kinds]
        for o in objs:
            if o["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                cluster_scoped.append((o["kind"].lower(), o["metadata"]["name"]))
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))
        return Installed(cluster, namespace, release, objs, tmp_path, values=values)

    yield apply
    for kind, name in cluster_scoped:
        cluster.kubectl("delete", kind, name, "--ignore-not-found", "--wait=false")


def start_operator(inst: Installed, kubeconfig: str, log_dir: Path, wait: bool = True, **env: str) -> OperatorProcess:
    op = OperatorProcess(kubeconfig, inst.namespace, log_dir, env={**inst.deployment_env(), **env})
    if wait:
        return op.start()
    # Started as OperatorProcess.start does, without waiting for health (it may never get healthy).
    import os
    import sys

    from tests.support.cluster import ROOT

    op.starts += 1
    op._log = open(op.log_path, "w")
    op.proc = subprocess.Popen(
        [sys.executable, "-m", "herald", "-n", inst.namespace, "--health-port", str(op.health_port)],
        env=dict(
            os.environ,
            KUBECONFIG=kubeconfig,
            HERALD_METRICS_PORT=str(op.metrics_port),
            PYTHONUNBUFFERED="1",
            **op.extra_env,
        ),
        stdout=op._log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    return op


def assert_no_permission_errors(log: str) -> None:
    bad = [line for line in log.splitlines() if FORBIDDEN.search(line)]
    assert not bad, "the operator hit permission errors:\n" + "\n".join(bad[:20])


def test_permission_errors_are_found_in_the_log_and_a_time_is_not_one():
    """A log line's milliseconds may read 403; that is not a refusal (it failed CI once, at 07:25:09,403)."""
    assert_no_permission_errors(
        "2026-12-01 07:25:09,403 INFO kopf._core.engines.activities: Initial authentication has been initiated.\n"
        '{"time": "2026-12-01T07:25:09.403Z", "release": "rbac-1f403c"}'
    )
    for refused in (
        "2026-12-01 07:25:09,100 ERROR herald: POST jobs: 403 jobs.batch is forbidden",
        'HTTP 403 {"reason": "Forbidden"}',
        "APIForbiddenError: ('Not enough permissions', ...)",
        'kopf: Request failed with {"code":403}',
    ):
        with pytest.raises(AssertionError):
            assert_no_permission_errors(refused)


def publish_once(api, namespace: str, name: str = "hello") -> dict:
    h = Herald(api, namespace)
    client.CoreV1Api(api).create_namespaced_secret(
        namespace, {"metadata": {"name": "mastodon-credentials"}, "stringData": {"token": "t0k3n"}}
    )
    h.adapter("mastodon", credentialsSecretRef={"name": "mastodon-credentials"})
    h.publication(name, ["mastodon"], text="Hello from the chart's RBAC")
    return h.wait_phase(name, "Published", timeout=60)


# -- the operator under exactly the chart's permissions ----------------------------------------------------


def test_operator_publishes_as_the_charts_service_account(api, namespace, install_rbac, tmp_path):
    inst = install_rbac()
    kubeconfig = inst.kubeconfig()
    whoami = inst.kubectl_as(kubeconfig, "auth", "whoami", "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == inst.user, whoami.stderr

    op = start_operator(inst, kubeconfig, tmp_path, POD_ID=f"test-{inst.release}")
    try:
        pub = publish_once(api, namespace)
        h = Herald(api, namespace)
        [job] = h.jobs("hello")
        pod = job.spec.template.spec
        assert pod.service_account_name == ADAPTER_SA
        assert pod.automount_service_account_token is False
        # Status on both kinds (status patches), Events (create).
        assert pub["status"]["publishedTargets"] == 1
        h.wait_adapter("mastodon", lambda a: bool(a.get("status")), what="adapter status")
        reasons = {e.reason for e in h.events("hello")}
        assert {"AttemptStarted", "AttemptSucceeded"} <= reasons, reasons
        # By default the operator never reads the credentials Secret: the pod mounts it.
        assert "herald.dev/credentials-version" not in (job.metadata.annotations or {})
        [volume] = [v for v in pod.volumes if v.name == "credentials"]
        assert volume.secret.secret_name == "mastodon-credentials"
    finally:
        op.stop()
    log = op.log()
    assert "Herald engine started" in log, log[-5000:]
    assert_no_permission_errors(log)


def test_service_account_can_do_exactly_what_the_chart_grants(api, namespace, install_rbac):
    inst = install_rbac()
    kc = inst.kubeconfig()
    allowed = [
        ("get", "publications.herald.dev"),
        ("list", "publications.herald.dev"),
        ("watch", "publications.herald.dev"),
        ("patch", "publications.herald.dev"),
        ("patch", "publications.herald.dev", "--subresource=status"),
        ("list", "platformadapters.herald.dev"),
        ("watch", "platformadapters.herald.dev"),
        ("patch", "platformadapters.herald.dev", "--subresource=status"),
        ("create", "jobs.batch"),
        ("delete", "jobs.batch"),
        ("list", "jobs.batch"),
        ("watch", "jobs.batch"),
        ("list", "pods"),
        ("watch", "pods"),
        ("get", "pods"),
        ("create", "events"),
    ]
    denied = [
        ("get", "secrets"),
        ("get", "secrets/mastodon-credentials"),
        ("create", "publications.herald.dev"),
        ("update", "publications.herald.dev"),
        ("delete", "publications.herald.dev"),
        ("patch", "platformadapters.herald.dev"),
        ("create", "platformadapters.herald.dev"),
        ("delete", "platformadapters.herald.dev"),
        ("update", "publications.herald.dev", "--subresource=status"),
        ("patch", "jobs.batch"),
        ("update", "jobs.batch"),
        ("deletecollection", "jobs.batch"),
        ("create", "pods"),
        ("delete", "pods"),
        ("create", "pods", "--subresource=exec"),
        ("get", "pods", "--subresource=log"),
        ("list", "secrets"),
        ("watch", "secrets"),
        ("create", "secrets"),
        ("update", "secrets"),
        ("get", "configmaps"),
        ("create", "deployments.apps"),
        ("create", "roles.rbac.authorization.k8s.io"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
        ("create", "serviceaccounts/token"),
        ("patch", "events"),
        ("delete", "events"),
        ("create", "events.events.k8s.io"),
    ]
    for verb, resource, *extra in allowed:
        assert inst.can_i(kc, verb, resource, "-n", namespace, *extra), f"{inst.user} cannot {verb} {resource} {extra}"
    for verb, resource, *extra in denied:
        assert not inst.can_i(kc, verb, resource, "-n", namespace, *extra), f"{inst.user} may {verb} {resource} {extra}"
    # Nothing outside the watched namespace, nothing cluster-wide beyond kopf's read-only observers.
    for verb, resource in [
        ("list", "publications.herald.dev"),
        ("get", "secrets"),
        ("create", "jobs.batch"),
        ("list", "pods"),
    ]:
        assert not inst.can_i(kc, verb, resource, "-n", "default"), f"{verb} {resource} in default"
        assert not inst.can_i(kc, verb, resource, "--all-namespaces"), f"{verb} {resource} cluster-wide"
    assert inst.can_i(kc, "list", "customresourcedefinitions.apiextensions.k8s.io", "--all-namespaces")
    assert inst.can_i(kc, "watch", "namespaces", "--all-namespaces")
    for verb, resource in [
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("delete", "namespaces"),
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("list", "nodes"),
        ("get", "customresourcedefinitions.apiextensions.k8s.io"),
    ]:
        assert not inst.can_i(kc, verb, resource, "--all-namespaces"), f"{verb} {resource}"


def can_i_list(inst: Installed, kubeconfig: str, namespace: str) -> list[str]:
    """`kubectl auth can-i --list` as the operator, one line per rule (header dropped)."""
    out = inst.kubectl_as(kubeconfig, "auth", "can-i", "--list", "-n", namespace)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()[1:]


@pytest.mark.parametrize(
    "values", [{}, {"rbac.clusterWide": True, "watchNamespaces": []}], ids=["namespaced", "cluster-wide"]
)
def test_the_operator_may_read_no_secret_by_default(api, namespace, install_rbac, values):
    inst = install_rbac(values)
    kc = inst.kubeconfig()
    client.CoreV1Api(api).create_namespaced_secret(
        namespace, {"metadata": {"name": "unrelated"}, "stringData": {"password": "hunter2"}}
    )
    for where in (namespace, "kube-system", "default"):
        for verb, resource in [("get", "secrets/unrelated"), ("get", "secrets"), ("list", "secrets")]:
            assert not inst.can_i(kc, verb, resource, "-n", where), f"{verb} {resource} in {where}"
        assert not [rule for rule in can_i_list(inst, kc, where) if rule.split()[0].startswith("secrets")]
    # and the operator still publishes (the pod mounts the Secret; the operator never reads it)
    assert inst.can_i(kc, "create", "jobs.batch", "-n", namespace)


def test_secret_names_grant_only_those_secrets_and_rotation_is_seen_at_once(api, namespace, install_rbac, tmp_path):
    inst = install_rbac({"rbac.secretNames": ["mastodon-credentials"]})
    kc = inst.kubeconfig()
    assert inst.can_i(kc, "get", "secrets/mastodon-credentials", "-n", namespace)
    for verb, resource, where in [
        ("get", "secrets/unrelated", namespace),
        ("list", "secrets", namespace),
        ("get", "secrets/mastodon-credentials", "kube-system"),
        ("get", "secrets/mastodon-credentials", "default"),
    ]:
        assert not inst.can_i(kc, verb, resource, "-n", where), f"{verb} {resource} in {where}"
    assert inst.deployment_env()["HERALD_READ_SECRET_METADATA"] == "true"
    op = start_operator(inst, kc, tmp_path, POD_ID=f"test-{inst.release}")
    try:
        publish_once(api, namespace)
        [job] = Herald(api, namespace).jobs("hello")
        secret = client.CoreV1Api(api).read_namespaced_secret("mastodon-credentials", namespace)
        assert job.metadata.annotations["herald.dev/credentials-version"] == secret.metadata.resource_version
    finally:
        op.stop()
    assert_no_permission_errors(op.log())


def test_refused_credentials_are_probed_without_any_secret_access(api, namespace, install_rbac, tmp_path):
    """The chart's default: no Secret access. The platform refuses the credentials twice (someone
    then fixes the Secret); probes, one attempt at a time with a doubling delay, notice the fix."""
    inst = install_rbac()
    kc = inst.kubeconfig()
    op = start_operator(inst, kc, tmp_path, POD_ID=f"test-{inst.release}", HERALD_CREDENTIALS_PROBE_SECONDS="1")
    try:
        h = Herald(api, namespace)
        refused = json.dumps({"outcome": "failed", "errorClass": "auth", "message": "HTTP 401 Unauthorized"})
        h.adapter(
            "mastodon",
            annotations=fate(refused, exit_code=1, fail_attempts="1,2", success=json.dumps({"outcome": "published"})),
            credentialsSecretRef={"name": "mastodon-credentials"},
        )
        h.publication("hello", ["mastodon"], text="Hello after a credentials fix")
        pub = h.wait_phase("hello", "Published", timeout=60)
        t = target(pub, "mastodon")
        assert t["attempts"] == 3 and t["failures"] == {"auth": 2}
        jobs = sorted(h.jobs("hello"), key=lambda j: j.metadata.name)
        created = {j.metadata.annotations["herald.dev/attempt"]: j.metadata.creation_timestamp for j in jobs}
        # never early: the second probe waits twice the first delay (timestamps are whole seconds)
        assert (created["3"] - created["2"]).total_seconds() >= 1
        adapter = h.wait_adapter("mastodon", lambda a: a["status"]["credentials"]["valid"] is True)
        assert not adapter["status"]["credentials"].get("probes")
        wait_until(
            lambda: {"CredentialsRefused", "CredentialsAccepted"} <= {e.reason for e in h.events("mastodon")},
            timeout=30,
            what="the adapter's CredentialsRefused and CredentialsAccepted Events",
        )
    finally:
        op.stop()
    assert_no_permission_errors(op.log())


def test_adapter_service_account_has_no_api_access(api, namespace, install_rbac):
    inst = install_rbac()
    adapter = next(
        o
        for o in inst.objects
        if o["kind"] == "ServiceAccount"
        and o["metadata"]["name"] == ADAPTER_SA
        and o["metadata"]["namespace"] == namespace
    )
    assert adapter["automountServiceAccountToken"] is False
    live = client.CoreV1Api(api).read_namespaced_service_account(ADAPTER_SA, namespace)
    assert live.automount_service_account_token is False
    kc = inst.kubeconfig(ADAPTER_SA)
    for verb, resource in [
        ("get", "pods"),
        ("list", "publications.herald.dev"),
        ("get", "secrets"),
        ("create", "jobs.batch"),
        ("create", "events"),
        ("get", "configmaps"),
    ]:
        assert not inst.can_i(kc, verb, resource, "-n", namespace), f"the adapter may {verb} {resource}"
    forbidden = inst.kubectl_as(kc, "get", "pods", "-n", namespace)
    assert forbidden.returncode != 0 and "Forbidden" in forbidden.stderr, forbidden.stderr


def test_without_the_role_binding_the_operator_is_forbidden(api, cluster, namespace, install_rbac, tmp_path):
    inst = install_rbac()
    binding = next(o["metadata"]["name"] for o in inst.objects if o["kind"] == "RoleBinding")
    cluster.kubectl("delete", "rolebinding", binding, "-n", namespace)
    kc = inst.kubeconfig()
    wait_until(
        lambda: not inst.can_i(kc, "list", "publications.herald.dev", "-n", namespace),
        timeout=15,
        what="the RoleBinding's removal to reach the authorizer",
    )
    assert not inst.can_i(kc, "create", "jobs.batch", "-n", namespace)

    h = Herald(api, namespace)
    h.adapter("mastodon")
    h.publication("denied", ["mastodon"])
    op = start_operator(inst, kc, tmp_path, wait=False, POD_ID=f"test-{inst.release}")
    try:
        wait_until(
            lambda: (
                'cannot list resource \\"publications\\"' in op.log()
                or 'cannot list resource "publications"' in op.log()
            ),
            timeout=30,
            what="the operator to be refused listing publications",
        )
        # It cannot do its job: no status, no Job, within a generous deadline.
        with pytest.raises(Timeout):
            h.wait_publication("denied", lambda o: bool(o.get("status")), timeout=10, what="any status")
        assert h.jobs("denied") == []
    finally:
        op.stop()
    log = op.log()
    assert any(FORBIDDEN.search(line) and inst.user in line for line in log.splitlines()), log[-5000:]


# -- kopf peering under the chart's permissions -------------------------------------------------------


def test_operator_with_kopf_peering_as_the_charts_service_account(
    api, cluster, namespace, install_rbac, peering_crds, tmp_path
):
    inst = install_rbac({"peering.enabled": True, "peering.name": "herald"}, kinds=("KopfPeering",))
    assert inst.deployment_env()["HERALD_PEERING"] == "herald"
    identity = f"test-{inst.release}"
    kc = inst.kubeconfig()
    assert inst.can_i(kc, "patch", "kopfpeerings.kopf.dev", "-n", namespace)
    assert not inst.can_i(kc, "create", "kopfpeerings.kopf.dev", "-n", namespace)
    op = start_operator(inst, kc, tmp_path, POD_ID=identity)
    try:
        publish_once(api, namespace)
        custom = client.CustomObjectsApi(api)
        wait_until(
            lambda: (
                identity
                in (
                    custom.get_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", "herald").get(
                        "status"
                    )
                    or {}
                )
            ),
            timeout=30,
            what="the operator's keep-alive in its KopfPeering",
        )
    finally:
        op.stop()
    assert_no_permission_errors(op.log())


# -- helm install / upgrade / uninstall against the API server ---------------------------------------------


def test_helm_install_upgrade_uninstall(api, cluster, namespace, crds, peering_crds):
    release = unique_name("h")
    base = [
        "--namespace",
        namespace,
        *set_args(
            {
                "watchNamespaces": [namespace],
                # The cluster's CRDs belong to no release (the crds fixture applied them); test_crds_cluster.py
                # installs CRDs with a release.
                "crds.enabled": False,
                "peering.enabled": True,
                "peering.createCRDs": False,
                "metrics.dashboard.enabled": True,
            }
        ),
    ]
    kc = cluster.kubeconfig
    installed = False
    try:
        out = helm("install", release, str(CHART), *base, kubeconfig=kc).stdout
        installed = True
        assert "STATUS: deployed" in out and "NOTES:" in out and f"The operator watches: {namespace}" in out, out
        apps = client.AppsV1Api(api)
        dep = apps.read_namespaced_deployment(f"{release}-herald", namespace)
        assert dep.spec.replicas == 1 and dep.spec.strategy.type == "Recreate"
        rbac = client.RbacAuthorizationV1Api(api)
        assert rbac.read_namespaced_role(f"{release}-herald", namespace).rules
        rbac.read_cluster_role(f"{namespace}-{release}-herald-kopf")
        # The post-install hook created the KopfPeering (its CRD existed before the hook ran).
        client.CustomObjectsApi(api).get_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", "herald")

        helm("upgrade", release, str(CHART), *base, *set_args({"config.jobTtlSeconds": 60}), kubeconfig=kc)
        dep = apps.read_namespaced_deployment(f"{release}-herald", namespace)
        env = {e.name: e.value for e in dep.spec.template.spec.containers[0].env}
        assert env["HERALD_JOB_TTL_SECONDS"] == "60"
        client.CustomObjectsApi(api).get_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", "herald")

        helm("uninstall", release, "--namespace", namespace, "--wait", kubeconfig=kc)
        installed = False
        assert not rbac.list_cluster_role(label_selector=f"app.kubernetes.io/instance={release}").items
        assert not rbac.list_cluster_role_binding(label_selector=f"app.kubernetes.io/instance={release}").items
        assert not apps.list_namespaced_deployment(namespace).items
        # crds.enabled=false: the release never owned Herald's CRDs; they are still there.
        client.ApiextensionsV1Api(api).read_custom_resource_definition("publications.herald.dev")
    finally:
        if installed:
            helm("uninstall", release, "--namespace", namespace, kubeconfig=kc, check=False)


def test_without_the_kopf_cluster_role_kopf_cannot_observe(api, cluster, namespace, install_rbac, tmp_path):
    """The cluster-wide read-only ClusterRole is kopf's, for its namespace and CRD observers. Without it kopf is
    refused both, and retries with backoff (about a minute) before it falls back to a fixed namespace list and a
    one-off CRD scan: no watch, hence no publishing, starts until then."""
    inst = install_rbac()
    binding = next(o["metadata"]["name"] for o in inst.objects if o["kind"] == "ClusterRoleBinding")
    cluster.kubectl("delete", "clusterrolebinding", binding)
    kc = inst.kubeconfig()
    wait_until(
        lambda: not inst.can_i(kc, "list", "namespaces", "--all-namespaces"),
        timeout=15,
        what="the ClusterRoleBinding's removal to reach the authorizer",
    )
    op = start_operator(inst, kc, tmp_path, wait=False, POD_ID=f"test-{inst.release}")
    try:

        def refused(resource: str) -> bool:
            return any("APIForbiddenError" in line and f"/{resource} " in line for line in op.log().splitlines())

        wait_until(
            lambda: refused("namespaces") and refused("customresourcedefinitions"),
            timeout=30,
            what="kopf to be refused observing namespaces and CRDs",
        )
        assert inst.user in op.log()
    finally:
        op.stop()

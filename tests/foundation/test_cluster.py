"""The local cluster behaves like Kubernetes: CRDs, Jobs on kwok nodes, simulated pod fates, RBAC."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.cluster import unique_name
from tests.support.waiting import watch_until

pytestmark = pytest.mark.cluster


def _condition(obj: dict, type_: str) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c["status"]
    return None


def _job(name: str, annotations: dict[str, str] | None = None, backoff_limit: int = 0) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "adapter", "image": "herald/adapter:test"}],
                },
            },
        },
    }


def _finished_job(api, namespace: str, name: str) -> dict:
    batch = client.BatchV1Api(api)
    return watch_until(
        batch.list_namespaced_job,
        lambda j: (
            j["metadata"]["name"] == name and (_condition(j, "Complete") == "True" or _condition(j, "Failed") == "True")
        ),
        timeout=60,
        what=f"job {name} to finish",
        namespace=namespace,
    )


def _terminated(api, namespace: str, job: str) -> dict:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return pods[0]


def test_version_is_the_pinned_release(api):
    info = client.VersionApi(api).get_code()
    assert info.git_version == "v1.34.4"


def test_crd_becomes_established(api, cluster):
    plural = unique_name("widgets").replace("-", "")
    group = "test.herald.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": "Widget" + plural[-8:]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(crd)
    try:
        established = watch_until(
            ext.list_custom_resource_definition,
            lambda o: o["metadata"]["name"] == crd["metadata"]["name"] and _condition(o, "Established") == "True",
            timeout=30,
            what="CRD Established",
        )
        assert established["status"]["acceptedNames"]["plural"] == plural
    finally:
        ext.delete_custom_resource_definition(crd["metadata"]["name"])


def test_job_pod_runs_on_a_kwok_node_and_completes(api, namespace):
    client.BatchV1Api(api).create_namespaced_job(namespace, _job("ok"))
    job = _finished_job(api, namespace, "ok")
    assert _condition(job, "Complete") == "True"
    pod = _terminated(api, namespace, "ok")
    node = client.CoreV1Api(api).read_node(pod.spec.node_name)
    assert node.metadata.labels["type"] == "kwok"
    assert pod.status.phase == "Succeeded"


def test_pod_fails_with_annotated_exit_code_and_message(api, namespace):
    message = json.dumps({"outcome": "server_error"}, separators=(",", ":"))
    ann = {"kwok.herald.dev/exit-code": "3", "kwok.herald.dev/message": message}
    client.BatchV1Api(api).create_namespaced_job(namespace, _job("boom", ann))
    job = _finished_job(api, namespace, "boom")
    assert _condition(job, "Failed") == "True"
    pod = _terminated(api, namespace, "boom")
    assert pod.status.phase == "Failed"
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 3
    assert terminated.message == '{"outcome":"server_error"}'


def test_fail_attempts_fails_attempt_one_and_succeeds_attempt_two(api, namespace):
    """The same pod template, run as attempt 1 and then attempt 2 (one Job per attempt, as Herald does)."""
    base = {
        "kwok.herald.dev/fail-attempts": "1",
        "kwok.herald.dev/exit-code": "2",
        "kwok.herald.dev/message": '{"outcome":"failed","errorClass":"network"}',
        "kwok.herald.dev/success-message": '{"outcome":"published","postId":"42"}',
    }
    batch = client.BatchV1Api(api)
    for attempt in ("1", "2"):
        batch.create_namespaced_job(namespace, _job(f"try-{attempt}", {**base, "herald.dev/attempt": attempt}))
    first = _finished_job(api, namespace, "try-1")
    second = _finished_job(api, namespace, "try-2")
    assert _condition(first, "Failed") == "True"
    assert _condition(second, "Complete") == "True"
    t1 = _terminated(api, namespace, "try-1").status.container_statuses[0].state.terminated
    t2 = _terminated(api, namespace, "try-2").status.container_statuses[0].state.terminated
    assert (t1.exit_code, json.loads(t1.message)["errorClass"]) == (2, "network")
    assert (t2.exit_code, json.loads(t2.message)["postId"]) == (0, "42")


def test_duration_annotation_keeps_the_container_running(api, namespace):
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(namespace, _job("slow", {"kwok.herald.dev/duration": "2s"}))
    job = _finished_job(api, namespace, "slow")
    t = _terminated(api, namespace, "slow").status.container_statuses[0].state.terminated
    assert _condition(job, "Complete") == "True"
    running = (t.finished_at - _terminated(api, namespace, "slow").status.start_time).total_seconds()
    assert running >= 1.5, running


def test_service_account_without_grants_is_forbidden(api, cluster, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    cfg = client.Configuration()
    cfg.host = api.configuration.host
    cfg.ssl_ca_cert = api.configuration.ssl_ca_cert
    cfg.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(cfg) as anon:
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(anon).list_namespaced_pod(namespace)
        assert refused.value.status == 403
        message = json.loads(refused.value.body)["message"]
        assert 'cannot list resource "pods"' in message and "system:serviceaccount" in message
        # The same ServiceAccount is authenticated: it can ask what it may do.
        review = client.AuthorizationV1Api(anon).create_self_subject_access_review(
            {"spec": {"resourceAttributes": {"namespace": namespace, "verb": "list", "resource": "pods"}}}
        )
        assert review.status.allowed is False

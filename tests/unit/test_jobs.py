"""build_job_spec: the Job for one attempt, per the adapter contract."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.jobs import JobDefaults, build_job_spec, target_content
from herald.naming import idempotency_key, job_name
from herald.views import JobView

from .builders import DETERMINISTIC

META = {"namespace": "news", "name": "launch", "uid": "4c1c-uid"}
SPEC = {
    "content": {
        "text": "Herald 1.0 is out",
        "title": "Release",
        "link": "https://example.org/h",
        "media": [{"url": "https://example.org/c.png", "altText": "A cover"}],
        "tags": ["release"],
    },
    "targets": [
        {"adapter": "mastodon-main"},
        {"adapter": "bluesky-main", "overrides": {"text": "Herald 1.0!", "tags": ["short"], "title": ""}},
    ],
    "truncate": True,
}
ADAPTER = {
    "platform": "mastodon",
    "endpoint": "https://mastodon.social",
    "image": "example/adapter:1.2",
    "credentialsSecretRef": {"name": "mastodon-credentials"},
}
DEFAULTS = JobDefaults(
    image="herald-adapter:dev",
    service_account="",
    ttl_seconds_after_finished=3600,
    active_deadline_seconds=300,
    timeout_seconds=10,
)


def build(adapter=ADAPTER, target="mastodon-main", attempt=1, verify=False, spec=SPEC, defaults=DEFAULTS):
    return build_job_spec(META, spec, target, adapter, attempt, verify, defaults)


def pod_spec(job):
    return job["spec"]["template"]["spec"]


def container(job):
    (c,) = pod_spec(job)["containers"]
    return c


def env(job):
    return {e["name"]: e["value"] for e in container(job)["env"]}


def test_one_pod_never_retried_by_kubernetes():
    job = build()
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["completions"] == 1 and job["spec"]["parallelism"] == 1
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_name_and_namespace():
    job = build(attempt=3)
    assert job["metadata"]["name"] == job_name("launch", "mastodon-main", 3)
    assert job["metadata"]["namespace"] == "news"


def test_owned_by_the_publication_as_controller():
    (ref,) = build()["metadata"]["ownerReferences"]
    assert ref["apiVersion"] == "herald.dev/v1alpha1"
    assert ref["kind"] == "Publication"
    assert ref["name"] == "launch" and ref["uid"] == "4c1c-uid"
    assert ref["controller"] is True


def test_attempt_and_mode_annotations_and_labels():
    job = build(attempt=4, verify=True)
    tpl = job["spec"]["template"]["metadata"]
    assert tpl["annotations"]["herald.dev/attempt"] == "4"
    assert tpl["annotations"]["herald.dev/mode"] == "verify"
    assert tpl["labels"]["herald.dev/publication"] == "launch"
    assert tpl["labels"]["herald.dev/adapter"] == "mastodon-main"
    assert job["metadata"]["labels"]["herald.dev/publication"] == "launch"
    assert job["metadata"]["labels"]["herald.dev/adapter"] == "mastodon-main"


def test_the_job_reads_back_as_the_attempt_it_was_built_for():
    body = build(attempt=7, verify=True)
    body["metadata"].update(uid="job-uid", resourceVersion="5", creationTimestamp="2030-06-01T09:00:00Z")
    view = JobView.from_body(body)
    assert view is not None
    assert (view.target, view.attempt, view.verify, view.owner_uid) == ("mastodon-main", 7, True, "4c1c-uid")
    body = build(attempt=2, verify=False)
    body["metadata"].update(uid="u", creationTimestamp="2030-06-01T09:00:00Z")
    assert JobView.from_body(body).verify is False


def test_environment_follows_the_contract():
    e = env(build(attempt=2))
    assert e == {
        "HERALD_PLATFORM": "mastodon",
        "HERALD_ENDPOINT": "https://mastodon.social",
        "HERALD_ATTEMPT": "2",
        "HERALD_MODE": "publish",
        "HERALD_IDEMPOTENCY_KEY": idempotency_key("4c1c-uid", "mastodon-main"),
        "HERALD_PUBLICATION": "news/launch",
        "HERALD_TARGET": "mastodon-main",
        "HERALD_PAYLOAD_FILE": "/etc/herald/payload/publication.json",
        "HERALD_CREDENTIALS_DIR": "/etc/herald/credentials",
        "HERALD_RESULT_FILE": "/dev/termination-log",
        "HERALD_TIMEOUT_SECONDS": "10",
    }
    assert re.fullmatch(r"[0-9a-f]{32}", e["HERALD_IDEMPOTENCY_KEY"])
    assert all(isinstance(v, str) for v in e.values())


def test_idempotency_key_is_the_same_for_every_attempt_and_mode():
    keys = {env(build(attempt=n, verify=v))["HERALD_IDEMPOTENCY_KEY"] for n in (1, 2, 9) for v in (False, True)}
    assert len(keys) == 1


def test_verify_mode_env():
    assert env(build(verify=True))["HERALD_MODE"] == "verify"


def test_endpoint_empty_means_platform_default():
    e = env(build(adapter={"platform": "bluesky"}))
    assert e["HERALD_ENDPOINT"] == ""
    assert e["HERALD_PLATFORM"] == "bluesky"


def test_payload_annotation_is_the_contracts_json_with_overrides_applied():
    job = build(target="bluesky-main")
    payload = json.loads(job["spec"]["template"]["metadata"]["annotations"]["herald.dev/payload"])
    assert payload == {
        "publication": {"namespace": "news", "name": "launch", "uid": "4c1c-uid"},
        "target": "bluesky-main",
        "content": {
            "text": "Herald 1.0!",
            "title": "Release",
            "link": "https://example.org/h",
            "media": [{"url": "https://example.org/c.png", "altText": "A cover"}],
            "tags": ["short"],
        },
        "truncate": True,
    }
    # the other target sees the publication's own content
    other = json.loads(build()["spec"]["template"]["metadata"]["annotations"]["herald.dev/payload"])
    assert other["content"] == SPEC["content"] and other["target"] == "mastodon-main"


def test_overrides_do_not_leak_into_the_publication_spec():
    target_content(SPEC, "bluesky-main")
    assert SPEC["content"]["text"] == "Herald 1.0 is out"


def test_payload_is_mounted_through_the_downward_api():
    job = build()
    vols = {v["name"]: v for v in pod_spec(job)["volumes"]}
    (item,) = vols["payload"]["downwardAPI"]["items"]
    assert item["path"] == "publication.json"
    assert item["fieldRef"]["fieldPath"] == "metadata.annotations['herald.dev/payload']"
    mounts = {m["name"]: m for m in container(job)["volumeMounts"]}
    assert mounts["payload"]["mountPath"] == "/etc/herald/payload" and mounts["payload"]["readOnly"] is True


def test_credentials_secret_is_mounted_read_only_when_set():
    job = build()
    vols = {v["name"]: v for v in pod_spec(job)["volumes"]}
    assert vols["credentials"]["secret"]["secretName"] == "mastodon-credentials"
    mounts = {m["name"]: m for m in container(job)["volumeMounts"]}
    assert mounts["credentials"]["mountPath"] == "/etc/herald/credentials"
    assert mounts["credentials"]["readOnly"] is True


def test_no_secret_volume_without_credentials():
    job = build(adapter={"platform": "webhook"})
    assert [v["name"] for v in pod_spec(job)["volumes"]] == ["tmp", "payload"]
    assert [m["name"] for m in container(job)["volumeMounts"]] == ["payload", "tmp"]


def test_no_service_account_token_and_a_hardened_container():
    job = build()
    assert pod_spec(job)["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod_spec(job)
    c = container(job)
    assert c["name"] == "adapter"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_image_command_args():
    job = build(adapter={**ADAPTER, "command": ["/bin/adapter"], "args": ["--verbose"]})
    assert container(job)["image"] == "example/adapter:1.2"
    assert container(job)["command"] == ["/bin/adapter"]
    assert container(job)["args"] == ["--verbose"]
    assert container(build(adapter={"platform": "mastodon"}))["image"] == "herald-adapter:dev"
    assert "command" not in container(build())


def test_job_template_settings_are_honoured():
    tpl = {
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "herald", "effect": "NoSchedule"}],
        "activeDeadlineSeconds": 120,
        "ttlSecondsAfterFinished": 0,
        "serviceAccountName": "herald-adapter",
    }
    job = build(adapter={**ADAPTER, "jobTemplate": tpl})
    assert container(job)["resources"] == tpl["resources"]
    assert pod_spec(job)["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod_spec(job)["tolerations"] == tpl["tolerations"]
    assert job["spec"]["activeDeadlineSeconds"] == 120
    assert job["spec"]["ttlSecondsAfterFinished"] == 0, "0 means delete at once, not the default"
    assert pod_spec(job)["serviceAccountName"] == "herald-adapter"
    assert pod_spec(job)["automountServiceAccountToken"] is False


def test_operator_defaults_apply_without_a_job_template():
    job = build()
    assert job["spec"]["activeDeadlineSeconds"] == 300
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    assert container(job)["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    assert "nodeSelector" not in pod_spec(job) and "tolerations" not in pod_spec(job)
    assert "imagePullSecrets" not in pod_spec(job) and "priorityClassName" not in pod_spec(job)
    assert env(build(defaults=JobDefaults(timeout_seconds=25)))["HERALD_TIMEOUT_SECONDS"] == "25"


def test_pod_annotations_and_labels_reach_the_pod_but_cannot_override_heralds_own():
    tpl = {
        "podAnnotations": {
            "prometheus.io/scrape": "false",
            "herald.dev/attempt": "99",
            "herald.dev/mode": "x",
            "herald.dev/payload": "{}",
        },
        "podLabels": {"team": "comms", "herald.dev/publication": "evil", "herald.dev/adapter": "evil"},
    }
    job = build(adapter={**ADAPTER, "jobTemplate": tpl}, attempt=2)
    meta = job["spec"]["template"]["metadata"]
    assert meta["annotations"]["prometheus.io/scrape"] == "false"
    assert meta["annotations"]["herald.dev/attempt"] == "2"
    assert meta["annotations"]["herald.dev/mode"] == "publish"
    assert json.loads(meta["annotations"]["herald.dev/payload"])["target"] == "mastodon-main"
    assert meta["labels"]["team"] == "comms"
    assert meta["labels"]["herald.dev/publication"] == "launch"
    assert meta["labels"]["herald.dev/adapter"] == "mastodon-main"


def test_long_publication_names_give_valid_labels():
    meta = {**META, "name": "p" * 200}
    job = build_job_spec(meta, SPEC, "mastodon-main", ADAPTER, 1, False, DEFAULTS)
    for v in job["metadata"]["labels"].values():
        assert len(v) <= 63
    assert len(job["metadata"]["name"]) <= 63


def test_building_does_not_change_its_inputs():
    spec, adapter = json.loads(json.dumps(SPEC)), {**ADAPTER, "jobTemplate": {"podLabels": {"a": "b"}}}
    before = json.dumps([spec, adapter], sort_keys=True)
    build(adapter=adapter, spec=spec, target="bluesky-main")
    assert json.dumps([spec, adapter], sort_keys=True) == before


@DETERMINISTIC
@given(st.text(min_size=1, max_size=300), st.integers(min_value=1, max_value=1000), st.booleans())
def test_payload_round_trips_any_text(text, attempt, verify):
    spec = {"content": {"text": text}, "targets": [{"adapter": "mastodon-main"}]}
    job = build(spec=spec, attempt=attempt, verify=verify)
    payload = json.loads(job["spec"]["template"]["metadata"]["annotations"]["herald.dev/payload"])
    assert payload["content"]["text"] == text
    assert env(job)["HERALD_ATTEMPT"] == str(attempt)
    assert env(job)["HERALD_MODE"] == ("verify" if verify else "publish")


@pytest.mark.parametrize(
    "override, expected", [({"text": "T"}, "T"), ({"text": ""}, "base"), ({"text": None}, "base"), ({}, "base")]
)
def test_empty_overrides_keep_the_publication_text(override, expected):
    spec = {"content": {"text": "base"}, "targets": [{"adapter": "a", "overrides": override}]}
    assert target_content(spec, "a")["text"] == expected


def test_attempt_pods_are_restricted_by_default():
    """What Pod Security "restricted" requires, on the pod and the container."""
    job = build()
    pod = pod_spec(job)
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    sc = container(job)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp  # the one writable place


def test_pull_secrets_priority_affinity_and_resources_from_the_template_or_the_defaults():
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["social"]}]}]
            }
        }
    }
    defaults = JobDefaults(
        image_pull_secrets=("registry",),
        priority_class_name="low",
        affinity=affinity,
        resources={"requests": {"cpu": "10m"}},
    )
    job = build(defaults=defaults)
    assert pod_spec(job)["imagePullSecrets"] == [{"name": "registry"}]
    assert pod_spec(job)["priorityClassName"] == "low" and pod_spec(job)["affinity"] == affinity
    assert container(job)["resources"] == {"requests": {"cpu": "10m"}}
    own = build(
        defaults=defaults,
        adapter={
            "platform": "webhook",
            "jobTemplate": {
                "imagePullSecrets": [{"name": "mine"}],
                "priorityClassName": "high",
                "runAsUser": 1000,
                "resources": {"limits": {"memory": "1Gi"}},
            },
        },
    )
    assert pod_spec(own)["imagePullSecrets"] == [{"name": "mine"}] and pod_spec(own)["priorityClassName"] == "high"
    assert pod_spec(own)["securityContext"]["runAsUser"] == 1000
    assert container(own)["resources"] == {"limits": {"memory": "1Gi"}}


def test_a_projected_token_only_when_the_adapter_asks_for_one():
    plain = build()
    assert all(v["name"] != "kube-api-access" for v in pod_spec(plain)["volumes"])
    job = build(
        adapter={"platform": "x", "jobTemplate": {"serviceAccountName": "herald-x-tokens", "serviceAccountToken": True}}
    )
    pod = pod_spec(job)
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "herald-x-tokens"
    (vol,) = [v for v in pod["volumes"] if v["name"] == "kube-api-access"]
    token = vol["projected"]["sources"][0]["serviceAccountToken"]
    assert token == {"path": "token", "expirationSeconds": 600}
    mount = next(m for m in container(job)["volumeMounts"] if m["name"] == "kube-api-access")
    assert mount == {
        "name": "kube-api-access",
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        "readOnly": True,
    }

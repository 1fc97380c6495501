"""``build_job_spec``: the Job for one attempt of one target. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from herald_contract.tracing import ANNOTATION_TRACEPARENT, TRACEPARENT_ENV

from .naming import idempotency_key, job_name, label_value

PAYLOAD_DIR = "/etc/herald/payload"
CREDENTIALS_DIR = "/etc/herald/credentials"
CONTAINER = "adapter"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# Labels and annotations Herald sets; users cannot override them through jobTemplate.
LABEL_PUBLICATION = "herald.dev/publication"
LABEL_ADAPTER = "herald.dev/adapter"
LABEL_ATTEMPT = "herald.dev/attempt"
ANNOTATION_ATTEMPT = "herald.dev/attempt"
ANNOTATION_MODE = "herald.dev/mode"
ANNOTATION_PAYLOAD = "herald.dev/payload"
ANNOTATION_TARGET = "herald.dev/target"


# The pod of every attempt runs restricted (Pod Security Standard "restricted") unless the adapter's
# jobTemplate says otherwise: not root, no privilege escalation, no capabilities, the default
# seccomp profile, a read-only root filesystem with a writable /tmp.
ADAPTER_UID = 65532
DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}


@dataclass(frozen=True)
class JobDefaults:
    image: str = "herald-adapter:latest"
    service_account: str = ""  # empty: the namespace default, with no token mounted
    ttl_seconds_after_finished: int = 86400
    active_deadline_seconds: int = 600
    timeout_seconds: int = 10
    resources: Mapping[str, Any] = field(default_factory=lambda: DEFAULT_RESOURCES)
    image_pull_secrets: tuple[str, ...] = ()
    priority_class_name: str = ""
    affinity: Mapping[str, Any] | None = None


def target_content(spec: Mapping[str, Any], adapter: str) -> dict[str, Any]:
    """The publication's content with the target's overrides applied."""
    content = dict(spec.get("content") or {})
    for t in spec.get("targets") or []:
        if t.get("adapter") == adapter:
            for k, v in (t.get("overrides") or {}).items():
                if v not in (None, "", []):
                    content[k] = v
    return content


def build_payload(meta: Mapping[str, Any], spec: Mapping[str, Any], adapter: str) -> dict[str, Any]:
    return {
        "publication": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
        "target": adapter,
        "content": target_content(spec, adapter),
        "truncate": bool(spec.get("truncate", False)),
    }


def build_job_spec(
    meta: Mapping[str, Any],
    spec: Mapping[str, Any],
    adapter_name: str,
    adapter_spec: Mapping[str, Any],
    attempt: int,
    verify: bool,
    defaults: JobDefaults,
) -> dict[str, Any]:
    """The Job manifest for ``attempt`` of the target ``adapter_name`` of one publication.

    ``meta`` holds the publication's namespace, name and uid."""
    tpl = adapter_spec.get("jobTemplate") or {}
    name = job_name(meta["name"], adapter_name, attempt)
    mode = "verify" if verify else "publish"
    labels = {
        LABEL_PUBLICATION: label_value(meta["name"]),
        LABEL_ADAPTER: label_value(adapter_name),
        LABEL_ATTEMPT: str(attempt),
    }
    pod_annotations = {
        **(tpl.get("podAnnotations") or {}),
        ANNOTATION_ATTEMPT: str(attempt),
        ANNOTATION_MODE: mode,
        ANNOTATION_PAYLOAD: json.dumps(build_payload(meta, spec, adapter_name), separators=(",", ":"), sort_keys=True),
    }
    env = {
        "HERALD_PLATFORM": adapter_spec.get("platform", ""),
        "HERALD_ENDPOINT": adapter_spec.get("endpoint", ""),
        "HERALD_ATTEMPT": str(attempt),
        "HERALD_MODE": mode,
        "HERALD_IDEMPOTENCY_KEY": idempotency_key(meta["uid"], adapter_name),
        "HERALD_PUBLICATION": f"{meta['namespace']}/{meta['name']}",
        "HERALD_TARGET": adapter_name,
        "HERALD_PAYLOAD_FILE": f"{PAYLOAD_DIR}/publication.json",
        "HERALD_CREDENTIALS_DIR": CREDENTIALS_DIR,
        "HERALD_RESULT_FILE": "/dev/termination-log",
        "HERALD_TIMEOUT_SECONDS": str(defaults.timeout_seconds),
    }
    mounts = [
        {"name": "payload", "mountPath": PAYLOAD_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {
            "name": "payload",
            "downwardAPI": {
                "items": [
                    {
                        "path": "publication.json",
                        "fieldRef": {"fieldPath": f"metadata.annotations['{ANNOTATION_PAYLOAD}']"},
                    }
                ]
            },
        },
    ]
    if tpl.get("serviceAccountToken") is True:
        # The adapter writes state back (X's rotating refresh tokens) with its own ServiceAccount,
        # whose Role names only its Secret: a short-lived projected token, never the automounted one.
        mounts.append({"name": "kube-api-access", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "kube-api-access",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 600}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {
                            "downwardAPI": {
                                "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                            }
                        },
                    ]
                },
            }
        )
    secret = (adapter_spec.get("credentialsSecretRef") or {}).get("name")
    if secret:
        mounts.append({"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True})
        # Optional: a missing Secret reaches the adapter as no credentials (an auth failure it names),
        # rather than a pod stuck in ContainerCreating until its deadline; the operator need not read it.
        volumes.append(
            {"name": "credentials", "secret": {"secretName": secret, "defaultMode": 0o444, "optional": True}}
        )
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": adapter_spec.get("image") or defaults.image,
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "volumeMounts": mounts,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": dict(tpl.get("resources") or defaults.resources),
    }
    if adapter_spec.get("command"):
        container["command"] = list(adapter_spec["command"])
    if adapter_spec.get("args"):
        container["args"] = list(adapter_spec["args"])
    run_as = tpl.get("runAsUser") if isinstance(tpl.get("runAsUser"), int) else ADAPTER_UID
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": run_as,
            "runAsGroup": run_as,
            "fsGroup": run_as,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    pull_secrets = tpl.get("imagePullSecrets") or [{"name": n} for n in defaults.image_pull_secrets]
    if pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s["name"]} for s in pull_secrets if isinstance(s, Mapping)]
    if tpl.get("priorityClassName") or defaults.priority_class_name:
        pod_spec["priorityClassName"] = tpl.get("priorityClassName") or defaults.priority_class_name
    if tpl.get("affinity") or defaults.affinity:
        pod_spec["affinity"] = dict(tpl.get("affinity") or defaults.affinity or {})
    if tpl.get("serviceAccountName") or defaults.service_account:
        pod_spec["serviceAccountName"] = tpl.get("serviceAccountName") or defaults.service_account
    if tpl.get("nodeSelector"):
        pod_spec["nodeSelector"] = dict(tpl["nodeSelector"])
    if tpl.get("tolerations"):
        pod_spec["tolerations"] = list(tpl["tolerations"])
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": {ANNOTATION_ATTEMPT: str(attempt), ANNOTATION_MODE: mode, ANNOTATION_TARGET: adapter_name},
            "ownerReferences": [
                {
                    "apiVersion": "herald.dev/v1alpha1",
                    "kind": "Publication",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "activeDeadlineSeconds": int(tpl.get("activeDeadlineSeconds") or defaults.active_deadline_seconds),
            "ttlSecondsAfterFinished": int(
                tpl["ttlSecondsAfterFinished"]
                if tpl.get("ttlSecondsAfterFinished") is not None
                else defaults.ttl_seconds_after_finished
            ),
            "template": {
                "metadata": {"labels": {**(tpl.get("podLabels") or {}), **labels}, "annotations": pod_annotations},
                "spec": pod_spec,
            },
        },
    }


def with_trace_context(manifest: Mapping[str, Any], traceparent: str, otlp_env: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the Job ``manifest`` that carries the attempt's trace into its pod: the W3C
    ``traceparent`` as an annotation on the Job and the pod, and in the adapter's environment
    next to the OTLP settings ``otlp_env`` (the adapter exports only when those are set)."""
    template = manifest["spec"]["template"]
    containers = []
    for c in template["spec"]["containers"]:
        if c.get("name") == CONTAINER:
            extra = {TRACEPARENT_ENV: traceparent, **otlp_env}
            kept = [e for e in c.get("env") or [] if e.get("name") not in extra]
            c = {**c, "env": [*kept, *({"name": k, "value": v} for k, v in extra.items())]}
        containers.append(c)
    meta = manifest["metadata"]
    return {
        **manifest,
        "metadata": {**meta, "annotations": {**(meta.get("annotations") or {}), ANNOTATION_TRACEPARENT: traceparent}},
        "spec": {
            **manifest["spec"],
            "template": {
                **template,
                "metadata": {
                    **template["metadata"],
                    "annotations": {
                        **(template["metadata"].get("annotations") or {}),
                        ANNOTATION_TRACEPARENT: traceparent,
                    },
                },
                "spec": {**template["spec"], "containers": containers},
            },
        },
    }

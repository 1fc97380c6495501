"""Herald's images on a real node: real containers (containerd + runc), a real pod
network (CNI bridge) and Service routing (kube-proxy), next to the kwok nodes.

The `real_node` fixture brings the node up when it is missing (tests/e2e/conftest.py).
"""

from __future__ import annotations

import base64
import json
import secrets

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]

ADAPTER_IMAGE = "herald-adapter:dev"
OPERATOR_IMAGE = "herald-operator:dev"


def _terminated(pod: dict) -> dict:
    (status,) = pod["status"]["containerStatuses"]
    return status["state"]["terminated"]


def _restricted(container: dict) -> dict:
    """The security context Herald gives adapter containers (operator/herald/jobs.py)."""
    return {
        **container,
        "imagePullPolicy": "Never",  # there is no registry: the image must be on the node
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
    }


def test_adapter_image_runs_on_the_real_node(real_node, run_pod, pod_logs):
    pod = run_pod(
        "adapter-cli",
        {
            "automountServiceAccountToken": False,
            "containers": [
                _restricted(
                    {
                        "name": "adapter",
                        "image": ADAPTER_IMAGE,
                        "command": ["sh", "-c"],
                        "args": [
                            "herald-adapter --help && "
                            "python3 -c 'import json, os, sys, herald_adapters; "
                            'print(json.dumps({"uid": os.getuid(), "python": sys.version.split()[0]}))\' && '
                            'printf \'{"outcome": "published", "message": "from the real node"}\' '
                            "> /dev/termination-log"
                        ],
                    }
                )
            ],
        },
    )
    assert pod["spec"]["nodeName"] == real_node.name
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    terminated = _terminated(pod)
    assert terminated["exitCode"] == 0
    assert json.loads(terminated["message"]) == {"outcome": "published", "message": "from the real node"}
    logs = pod_logs("adapter-cli")  # through the API server, from this kubelet
    assert "usage: herald-adapter" in logs
    facts = json.loads(logs.strip().splitlines()[-1])
    assert facts["uid"] == 65532  # the image's non-root USER
    assert facts["python"].startswith("3.11")


def test_pod_reaches_a_server_on_the_host(real_node, run_pod, pod_logs, host_server):
    port = host_server.port
    urls = [f"http://{real_node.pod_gateway}:{port}/hello", f"http://{real_node.internal_ip}:{port}/hello"]
    script = (
        "import sys, urllib.request\n"
        "for url in sys.argv[1:]:\n"
        "    print(url, urllib.request.urlopen(url, timeout=10).read().decode())\n"
    )
    pod = run_pod(
        "reach-host",
        {
            "automountServiceAccountToken": False,
            "containers": [
                _restricted({"name": "c", "image": ADAPTER_IMAGE, "command": ["python3", "-c", script, *urls]})
            ],
        },
    )
    logs = pod_logs("reach-host")
    assert pod["status"]["phase"] == "Succeeded", (pod["status"], logs)
    body = host_server.hello.decode()
    for url in urls:
        assert f"{url} {body}" in logs
    pod_ip = pod["status"]["podIP"]
    assert pod_ip.startswith("10.88."), pod_ip  # the CNI bridge's range, not kwok's
    assert [(r.method, r.path) for r in host_server.requests] == [("GET", "/hello"), ("GET", "/hello")]


def test_in_cluster_config_reaches_the_api_server_through_the_service(real_node, run_pod, pod_logs):
    # What the operator does as a pod: in-cluster config (KUBERNETES_SERVICE_HOST, the
    # automounted ServiceAccount token and CA) to https://10.96.0.1:443, which kube-proxy's
    # iptables rules send to the API server on this host. The name kubernetes.default.svc
    # (there is no cluster DNS) is given through hostAliases and checked against the
    # API server's certificate.
    script = """
import json, os, ssl, urllib.error, urllib.request
from kubernetes import client, config
config.load_incluster_config()
out = {"host": client.Configuration.get_default_copy().host}
out["version"] = client.VersionApi().get_code().git_version
try:
    client.CoreV1Api().list_namespace(limit=1)
    out["namespaces"] = 200
except client.ApiException as e:
    out["namespaces"] = e.status
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
ctx = ssl.create_default_context(cafile=f"{sa}/ca.crt")
req = urllib.request.Request("https://kubernetes.default.svc/version",
                             headers={"Authorization": "Bearer " + open(f"{sa}/token").read()})
out["by_name"] = json.load(urllib.request.urlopen(req, context=ctx, timeout=10))["gitVersion"]
print(json.dumps(out))
"""
    pod = run_pod(
        "in-cluster",
        {
            "automountServiceAccountToken": True,
            "hostAliases": [{"ip": "10.96.0.1", "hostnames": ["kubernetes.default.svc", "kubernetes.default"]}],
            "containers": [_restricted({"name": "c", "image": OPERATOR_IMAGE, "command": ["python3", "-c", script]})],
        },
    )
    logs = pod_logs("in-cluster")
    assert pod["status"]["phase"] == "Succeeded", (pod["status"], logs)
    out = json.loads(logs.strip().splitlines()[-1])
    assert out["host"] == "https://10.96.0.1:443"
    assert out["version"].startswith("v1.34.")
    assert out["namespaces"] == 403  # authenticated as the ServiceAccount, and RBAC says no
    assert out["by_name"] == out["version"]


def test_adapter_contract_on_the_real_node(real_node, api, namespace, run_pod, pod_logs, host_server):
    """The adapter as Herald runs it: payload from a downward-API annotation, the Secret
    mounted, HERALD_* environment, a webhook POST to a server on the host, and the result
    in the termination message."""
    from kubernetes import client

    secret = secrets.token_hex(16)
    client.CoreV1Api(api).create_namespaced_secret(
        namespace, {"metadata": {"name": "hook"}, "data": {"hmacSecret": base64.b64encode(secret.encode()).decode()}}
    )
    key = secrets.token_hex(16)
    payload = {
        "publication": {"namespace": namespace, "name": "launch", "uid": "u-1"},
        "target": "hook",
        "content": {"text": "Herald on a real node", "tags": ["e2e"]},
        "truncate": False,
    }
    env = {
        "HERALD_PLATFORM": "webhook",
        "HERALD_ENDPOINT": f"http://{real_node.pod_gateway}:{host_server.port}/hook",
        "HERALD_ATTEMPT": "1",
        "HERALD_MODE": "publish",
        "HERALD_IDEMPOTENCY_KEY": key,
        "HERALD_PUBLICATION": f"{namespace}/launch",
        "HERALD_TARGET": "hook",
        "HERALD_PAYLOAD_FILE": "/etc/herald/payload/publication.json",
        "HERALD_CREDENTIALS_DIR": "/etc/herald/credentials",
        "HERALD_RESULT_FILE": "/dev/termination-log",
        "HERALD_TIMEOUT_SECONDS": "10",
    }
    pod = run_pod(
        "attempt-1",
        {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [
                _restricted(
                    {
                        "name": "adapter",
                        "image": ADAPTER_IMAGE,
                        "env": [{"name": k, "value": v} for k, v in env.items()],
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "volumeMounts": [
                            {"name": "payload", "mountPath": "/etc/herald/payload", "readOnly": True},
                            {"name": "credentials", "mountPath": "/etc/herald/credentials", "readOnly": True},
                        ],
                    }
                )
            ],
            "volumes": [
                {
                    "name": "payload",
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "publication.json",
                                "fieldRef": {"fieldPath": "metadata.annotations['herald.dev/payload']"},
                            }
                        ]
                    },
                },
                {"name": "credentials", "secret": {"secretName": "hook", "defaultMode": 0o444}},
            ],
        },
        metadata={"annotations": {"herald.dev/payload": json.dumps(payload)}},
    )
    logs = pod_logs("attempt-1")
    assert pod["status"]["phase"] == "Succeeded", (pod["status"], logs)
    result = json.loads(_terminated(pod)["message"])
    assert result["outcome"] == "published", result
    assert result["postId"] == "post-1"
    assert secret not in logs and secret not in _terminated(pod)["message"]
    (request,) = host_server.requests
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.headers["idempotency-key"] == key
    sent = json.loads(request.body)
    assert sent["content"]["text"] == "Herald on a real node"
    assert sent["publication"]["name"] == "launch"

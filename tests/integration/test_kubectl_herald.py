"""`kubectl herald` as a user runs it (kubectl finds the `kubectl-herald` console script on PATH),
against the local cluster and Herald's real operator; kwok simulates the adapter pods."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from herald.naming import job_name
from tests.support.herald import condition, fate, result, target

pytestmark = pytest.mark.cluster

OK = result(postId="99", url="https://example.social/@h/99")
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def kubectl_herald(cluster, namespace: str | None, *args: str) -> subprocess.CompletedProcess:
    """``kubectl herald ARGS -n NAMESPACE --kubeconfig ...``, with the virtualenv's bin (which holds the
    ``kubectl-herald`` console script) on PATH, as after ``pip install``."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("KUBECONFIG", None)
    ns = ["-n", namespace] if namespace else []
    return subprocess.run(
        ["kubectl", "herald", *args, *ns, "--kubeconfig", cluster.kubeconfig],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def test_status_of_a_published_publication(herald, operator, cluster):
    herald.adapter("mastodon")
    herald.publication("launch", ["mastodon"])
    herald.wait_phase("launch", "Published")
    out = ok(kubectl_herald(cluster, herald.namespace, "status", "launch"))
    assert f"Publication: {herald.namespace}/launch\n" in out
    assert "Phase:       Published\n" in out and "Reason:      Published\n" in out
    assert "Targets:     1 of 1 published, 1 attempt(s)\n" in out
    assert re.search(r"\nmastodon +Published +1 +Published +- +https://example\.social/@h/1\n", out), out
    assert re.search(r"\nReady +True +Published +\S+ +1 of 1 targets published\n", out), out
    assert re.search(r"\nStalled +False +NotStalled ", out), out
    assert "Targets not published" not in out
    as_json = json.loads(ok(kubectl_herald(cluster, herald.namespace, "status", "launch", "-o", "json")))
    assert as_json["metadata"]["uid"] == herald.get_publication("launch")["metadata"]["uid"]
    as_yaml = yaml.safe_load(ok(kubectl_herald(cluster, herald.namespace, "status", "launch", "-o", "yaml")))
    assert as_yaml["status"]["phase"] == "Published"
    missing = kubectl_herald(cluster, herald.namespace, "status", "nope")
    assert missing.returncode == 1
    assert missing.stderr == f'error: publications.herald.dev "nope" in namespace "{herald.namespace}" not found\n'


def test_status_of_a_publication_stuck_on_bad_credentials(herald, operator, cluster):
    herald.core.create_namespaced_secret(
        herald.namespace, {"metadata": {"name": "creds"}, "stringData": {"accessToken": "expired-token"}}
    )
    auth_failure = fate(
        result("failed", errorClass="auth", message="HTTP 401 The access token is invalid"), exit_code=1
    )
    herald.adapter("mastodon", annotations=auth_failure, credentialsSecretRef={"name": "creds"})
    herald.adapter("bluesky", platform="bluesky")
    herald.publication("launch", ["mastodon", "bluesky"])
    adapter = herald.wait_adapter(
        "mastodon", lambda a: (condition(a, "Ready") or {}).get("reason") == "CredentialsRefused"
    )
    pub = herald.wait_publication(
        "launch",
        lambda p: (
            target(p, "mastodon").get("reason") == "CredentialsInvalid"
            and target(p, "bluesky").get("phase") == "Published"
        ),
        what="mastodon waiting on its credentials, bluesky published",
    )
    refused = target(pub, "mastodon")["message"]  # the operator's wording, with the platform's message
    assert refused.startswith("credentials are invalid") and "HTTP 401 The access token is invalid" in refused
    out = ok(kubectl_herald(cluster, herald.namespace, "status", "launch"))
    assert "Phase:       Queued\n" in out and "Reason:      CredentialsInvalid\n" in out
    assert f"Message:     mastodon: {refused}\n" in out
    assert "Targets:     1 of 2 published, 2 attempt(s)\n" in out
    assert re.search(r"\nmastodon +Queued +1 +CredentialsInvalid +- +-\n", out), out
    assert re.search(r"\nbluesky +Published +1 +Published +- +https://example\.social/@h/1\n", out), out
    assert re.search(rf"\nReady +False +CredentialsInvalid +\S+ +mastodon: {re.escape(refused)}\n", out), out
    assert re.search(rf"\nStalled +True +CredentialsInvalid +\S+ +mastodon: {re.escape(refused)}\n", out), out
    assert re.search(r"\nReconciling +False ", out), out
    assert (
        "Targets not published:\n"
        f"  mastodon: {refused}\n"
        "    last error: auth: HTTP 401 The access token is invalid\n"
        f"    adapter mastodon: Ready=False CredentialsRefused: {condition(adapter, 'Ready')['message']}\n"
        "    next step: put working credentials in the Secret creds; the next credentials probe, at "
        f"{adapter['status']['credentials']['nextProbeTime']}, tries them\n"
    ) in out
    assert "expired-token" not in out


def test_redrive_of_dead_lettered_publications(herald, operator, cluster):
    rejected = fate(
        result("failed", errorClass="rejected", message="HTTP 422 invalid"), exit_code=1, fail_attempts="1", success=OK
    )
    herald.adapter("mastodon", annotations=rejected)
    herald.adapter("bluesky", platform="bluesky")
    herald.custom.create_namespaced_custom_object(
        "herald.dev",
        "v1alpha1",
        herald.namespace,
        "publications",
        {
            "apiVersion": "herald.dev/v1alpha1",
            "kind": "Publication",
            "metadata": {"name": "d1", "labels": {"team": "a"}},
            "spec": {"content": {"text": "one"}, "targets": [{"adapter": "mastodon"}]},
        },
    )
    herald.publication("d2", ["mastodon"], "two")
    herald.publication("fine", ["bluesky"])
    for name in ("d1", "d2"):
        herald.wait_publication(
            name, lambda p: p["metadata"].get("labels", {}).get("herald.dev/dead-letter") == "true", what=f"{name} dead"
        )
    herald.wait_phase("fine", "Published")

    # By label: only d1.
    out = ok(kubectl_herald(cluster, herald.namespace, "redrive", "-l", "team=a"))
    assert re.fullmatch(rf"publication\.herald\.dev/d1 redriven \(herald\.dev/redrive=({TIMESTAMP})\): mastodon\n", out)
    value = re.search(TIMESTAMP, out).group(0)
    d1 = herald.wait_phase("d1", "Published")
    assert d1["metadata"]["annotations"]["herald.dev/redrive"] == value
    assert (target(d1, "mastodon")["attempts"], d1["status"]["observedRedrive"]) == (2, value)
    assert "herald.dev/redrive" not in (herald.get_publication("d2")["metadata"].get("annotations") or {})

    # Every dead-lettered one: d2 (d1 has left the dead letter); "fine" is never touched.
    herald.wait_publication("d1", lambda p: "herald.dev/dead-letter" not in p["metadata"].get("labels", {}))
    out = ok(kubectl_herald(cluster, herald.namespace, "redrive", "--dead-letter"))
    assert re.fullmatch(rf"publication\.herald\.dev/d2 redriven \(herald\.dev/redrive={TIMESTAMP}\): mastodon\n", out)
    assert target(herald.wait_phase("d2", "Published"), "mastodon")["attempts"] == 2
    assert "herald.dev/redrive" not in (herald.get_publication("fine")["metadata"].get("annotations") or {})

    # A named publication with nothing in the dead letter is skipped, and said so.
    done = kubectl_herald(cluster, herald.namespace, "redrive", "fine")
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == "publication.herald.dev/fine skipped: no target is in the dead letter (Published)\n"
    assert "herald.dev/redrive" not in (herald.get_publication("fine")["metadata"].get("annotations") or {})


def test_retry_now_ends_the_backoff_of_a_retrying_target(herald, operator, cluster):
    flaky = fate(
        result("failed", errorClass="server_error", message="HTTP 503"), exit_code=1, fail_attempts="1", success=OK
    )
    # Without retry-now the second attempt would wait 10 minutes (the test's deadline is far shorter).
    herald.adapter("mastodon", annotations=flaky, retryPolicy={"backoff": {"initial": "10m", "jitter": 0}})
    herald.adapter("bluesky", platform="bluesky")
    herald.publication("launch", ["mastodon", "bluesky"])
    pub = herald.wait_publication(
        "launch",
        lambda p: target(p, "mastodon").get("phase") == "Retrying" and target(p, "bluesky").get("phase") == "Published",
        what="mastodon Retrying",
    )
    next_at = datetime.fromisoformat(target(pub, "mastodon")["nextAttemptAt"].replace("Z", "+00:00"))
    assert next_at - datetime.now(UTC) > timedelta(minutes=9)

    out = ok(kubectl_herald(cluster, herald.namespace, "retry-now", "launch", "--target", "mastodon"))
    value = herald.get_publication("launch")["metadata"]["annotations"]["herald.dev/retry-now"]
    assert re.fullmatch(rf"{TIMESTAMP} targets=mastodon", value), value
    assert out.startswith(f"publication.herald.dev/launch: herald.dev/retry-now={value}\n")
    assert re.search(r"\n  mastodon: next attempt now; it was due in 9m\d+s\n", out), out

    pub = herald.wait_phase("launch", "Published", timeout=30)
    assert target(pub, "mastodon")["attempts"] == 2
    assert pub["status"]["observedRetryNow"] == value
    assert any(e.reason == "RetryNow" for e in herald.events("launch"))

    done = kubectl_herald(cluster, herald.namespace, "retry-now", "launch")
    assert done.returncode == 1
    assert done.stderr == (
        "error: nothing to retry now: no target is Retrying (mastodon: it is published; bluesky: it is published)\n"
    )


def test_suspend_and_resume(herald, operator, cluster):
    herald.adapter("mastodon")
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    herald.publication("later", ["mastodon"], publishAt=later)
    herald.publication("held", ["mastodon"], suspend=True)
    herald.wait_phase("later", "Scheduled")
    herald.wait_phase("held", "Suspended")

    out = ok(kubectl_herald(cluster, herald.namespace, "suspend", "later", "held"))
    assert out == "publication.herald.dev/later suspended\npublication.herald.dev/held already suspended (no change)\n"
    assert herald.get_publication("later")["spec"]["suspend"] is True
    herald.wait_phase("later", "Suspended")

    out = ok(kubectl_herald(cluster, herald.namespace, "resume", "held", "later"))
    assert out == "publication.herald.dev/held resumed\npublication.herald.dev/later resumed\n"
    assert herald.wait_phase("held", "Published")["spec"]["suspend"] is False
    herald.wait_phase("later", "Scheduled")
    assert herald.jobs("later") == []


def test_logs_find_the_attempt_pods_and_say_why_kwok_has_no_logs(herald, operator, cluster):
    flaky = fate(
        result("failed", errorClass="server_error", message="HTTP 503"), exit_code=1, fail_attempts="1", success=OK
    )
    herald.adapter("mastodon", annotations=flaky, retryPolicy={"backoff": {"initial": "1s", "jitter": 0}})
    herald.publication("launch", ["mastodon"])
    assert target(herald.wait_phase("launch", "Published"), "mastodon")["attempts"] == 2

    def pods(attempt: int) -> list:
        job = job_name("launch", "mastodon", attempt)
        found = herald.core.list_namespaced_pod(herald.namespace, label_selector=f"job-name={job}").items
        assert found, f"no pod for {job}"
        return found

    # Default: the latest attempt (2). kwok's nodes serve no logs: the plugin says so, and shows the result.
    done = kubectl_herald(cluster, herald.namespace, "logs", "launch")
    assert done.returncode == 1
    for pod in pods(2):
        assert f"cannot read the log of pod {pod.metadata.name}: Error from server (NotFound)" in done.stderr
        assert f"  node {pod.spec.node_name} has no kubelet endpoint to serve logs from" in done.stderr
    assert f"its result (termination message): {OK}" in done.stderr
    assert job_name("launch", "mastodon", 1) not in done.stderr

    done = kubectl_herald(cluster, herald.namespace, "logs", "launch", "--target", "mastodon", "--attempt", "1")
    assert done.returncode == 1
    for pod in pods(1):
        assert f"cannot read the log of pod {pod.metadata.name}:" in done.stderr
    assert "  the adapter exited 1 (Error); its result (termination message): " in done.stderr
    assert job_name("launch", "mastodon", 2) not in done.stderr

    done = kubectl_herald(cluster, herald.namespace, "logs", "launch", "--attempt", "3")
    assert (done.returncode, done.stderr) == (1, "mastodon: no attempt 3 (attempts so far: 2)\n")


LONG = " ".join(["Herald publishes content to social platforms from Kubernetes."] * 10)  # 629 characters
SLACK = "Slack gets more room. " * 1820  # 40040 characters
LINK_PARAGRAPH = "\n\nhttps://example.org/herald"


def _file(tmp_path: Path, truncate: bool) -> Path:
    adapters = [
        {
            "apiVersion": "herald.dev/v1alpha1",
            "kind": "PlatformAdapter",
            "metadata": {"name": n},
            "spec": {"platform": p},
        }
        for n, p in (("mastodon-main", "mastodon"), ("bluesky-main", "bluesky"), ("slack-eng", "slack"))
    ]
    pub = {
        "apiVersion": "herald.dev/v1alpha1",
        "kind": "Publication",
        "metadata": {"name": "launch"},
        "spec": {
            "content": {"text": LONG, "link": "https://example.org/herald", "tags": ["release", "kubernetes"]},
            "truncate": truncate,
            "targets": [
                {"adapter": "mastodon-main"},
                {"adapter": "bluesky-main"},
                {"adapter": "slack-eng", "overrides": {"text": SLACK}},
            ],
        },
    }
    path = tmp_path / f"launch-{truncate}.yaml"
    path.write_text(yaml.safe_dump_all([*adapters, pub], sort_keys=False))
    return path


def test_preview_offline_from_a_file_over_the_limits(cluster, tmp_path):
    # Offline: a kubeconfig that does not exist is never read.
    offline = ("--kubeconfig", str(tmp_path / "no-kubeconfig"))
    done = kubectl_herald(cluster, None, "preview", "-f", str(_file(tmp_path, truncate=False)), *offline)
    assert done.returncode == 1, done.stderr
    assert done.stderr == "error: the adapter would reject the text for mastodon-main, bluesky-main, slack-eng\n"
    out = done.stdout
    link_and_tags = len("\n\nhttps://example.org/herald\n\n#release #kubernetes")
    for header, length, result_line in (
        (
            "mastodon-main (platform mastodon)",
            f"{len(LONG) + link_and_tags - 26 + 23} of 500 characters (URLs count as 23)",  # a link counts 23
            "REJECTED: text is",
        ),
        ("bluesky-main (platform bluesky)", f"{len(LONG) + link_and_tags} of 300 graphemes", "REJECTED: text is"),
        (
            "slack-eng (platform slack)",
            f"{len(SLACK.rstrip()) + len(LINK_PARAGRAPH)} of 40000 characters (after escaping &, <, >)",
            "REJECTED: text is",
        ),
    ):
        section = out[out.index(header) :]
        assert f"  length: {length}\n" in section, section[:400]
        assert f"  result: {result_line}" in section
    assert "  links:  https://example.org/herald\n  tags:   #release #kubernetes\n" in out
    assert "content.tags are not sent: slack posts have no hashtags" in out
    assert "text (as composed, not sent):" in out

    done = kubectl_herald(cluster, None, "preview", "-f", str(_file(tmp_path, truncate=True)), "-o", "json", *offline)
    previews = {p["adapter"]: p for p in json.loads(ok(done))}
    assert {a: (p["outcome"], p["sizes"], p["limit"]) for a, p in previews.items()} == {
        "mastodon-main": ("truncated", [500], 500),
        "bluesky-main": ("truncated", [300], 300),
        "slack-eng": ("truncated", [40000], 40000),
    }
    for adapter in ("mastodon-main", "bluesky-main"):
        (text,) = previews[adapter]["texts"]
        assert text.endswith("…\n\nhttps://example.org/herald\n\n#release #kubernetes"), text[-80:]
    assert previews["slack-eng"]["texts"][0].endswith("…\n\nhttps://example.org/herald")


def test_preview_of_a_publication_in_the_cluster_uses_its_platformadapters(herald, cluster):
    herald.adapter("bsky", platform="bluesky")
    herald.adapter("chat", platform="slack")
    herald.publication("launch", ["bsky", "chat"], "👍🏽" * 301)  # 301 graphemes, 602 code points
    done = kubectl_herald(cluster, herald.namespace, "preview", "launch")
    assert done.returncode == 1
    assert "bsky (platform bluesky)\n  length: 301 of 300 graphemes\n  result: REJECTED: text is 301 graphemes;" in (
        done.stdout
    )
    assert "chat (platform slack)\n  length: 602 of 40000 characters (after escaping &, <, >)\n  result: fits\n" in (
        done.stdout
    )
    done = kubectl_herald(cluster, herald.namespace, "preview", "launch", "--target", "chat")
    assert (done.returncode, done.stdout.splitlines()[0]) == (0, "chat (platform slack)")

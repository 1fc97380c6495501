"""One bad object never stops the others, against the real API server and the real operator.

The poison objects are created under the CRDs as they were before admission learned to refuse
them (``legacy_crds``): such objects exist in clusters that upgraded. A control Publication
created alongside must publish on time, and each poison object must say what is wrong with it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from tests.support.herald import PUBLISHED, condition, fate, result, target
from tests.support.legacy_crds import legacy_crds
from tests.support.operator import OperatorProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster

# Generous: the control publishes in well under a second on an idle machine.
CONTROL_DEADLINE = 60


def stalled_message(herald, name: str, kind: str = "publication") -> str:
    obj = herald.get_publication(name) if kind == "publication" else herald.get_adapter(name)
    c = condition(obj, "Stalled") or {}
    return c.get("message", "") if c.get("status") == "True" else ""


def warnings(herald, name: str, reason: str) -> list:
    return [e for e in herald.events(name) if e.type == "Warning" and e.reason == reason]


POISON_SPECS = {
    "publish-at-year-1": ({"publishAt": "0001-01-01T00:00:00+01:00"}, "spec.publishAt"),
    "publish-at-year-10000": ({"publishAt": "9999-12-31T23:59:59-01:00"}, "spec.publishAt"),
    "publish-at-lower-case": ({"publishAt": "2030-06-01t09:00:00z"}, "spec.publishAt"),
    "publish-at-offset-25h": ({"publishAt": "2030-06-01T09:00:00+25:00"}, "spec.publishAt"),
    "min-delay-overflow": (
        {"retryPolicy": {"rateLimited": {"minDelay": "99999999h"}}},
        "spec.retryPolicy.rateLimited.minDelay",
    ),
    "credentials-timeout-overflow": (
        {"retryPolicy": {"credentialsTimeout": "99999999h"}},
        "spec.retryPolicy.credentialsTimeout",
    ),
}


def test_poison_objects_and_results_stall_only_themselves(cluster, herald, operator):
    deep = "[" * 2000 + "]" * 2000
    with legacy_crds(cluster):
        herald.adapter("mastodon")
        herald.adapter("deep", annotations=fate(deep, exit_code=1))
        herald.adapter(
            "reset-year-1",
            annotations=fate(result(postId="9", rateLimit={"remaining": 5, "resetAt": "0001-01-01T00:00:00+01:00"})),
        )
        herald.adapter(
            "reset-year-999",
            annotations=fate(result(postId="9", rateLimit={"remaining": 4, "resetAt": "0999-01-01T00:00:00Z"})),
        )
        herald.adapter("cooldown-overflow", circuitBreaker={"cooldown": "99999999h"})
        for name, (spec, _) in POISON_SPECS.items():
            herald.publication(name, ["mastodon"], **spec)
        herald.publication("deep-result", ["deep"])
        herald.publication("reset-1", ["reset-year-1"])
        herald.publication("reset-999", ["reset-year-999"])
        herald.publication("to-invalid-adapter", ["cooldown-overflow"])
        herald.publication("long-redrive", ["mastodon"])
        herald.patch_publication("long-redrive", {"metadata": {"annotations": {"herald.dev/redrive": "r" * 2048}}})
    started = time.monotonic()
    herald.publication("control", ["mastodon"])
    herald.wait_phase("control", "Published", timeout=CONTROL_DEADLINE)
    print(f"control published {time.monotonic() - started:.2f}s after its create, next to the poison")

    for name, (_, field) in POISON_SPECS.items():
        wait_until(
            lambda: stalled_message(herald, name).startswith(field),
            timeout=30,
            what=f"{name}: Stalled naming {field} (now {stalled_message(herald, name)!r})",
        )
        assert herald.jobs(name) == []
    # The adapter results: classified, recorded, never breaking a status write.
    herald.wait_publication("deep-result", lambda p: target(p, "deep").get("lastErrorClass") == "pod_failure")
    herald.wait_phase("reset-1", "Published")
    herald.wait_phase("reset-999", "Published")
    for name, remaining in (("reset-year-1", 5), ("reset-year-999", 4)):
        rl = herald.wait_adapter(
            name, lambda a: (a.get("status") or {}).get("rateLimit", {}).get("remaining") == remaining
        )["status"]["rateLimit"]
        assert rl.get("resetAt") in (None, "0999-01-01T00:00:00Z")
    # An adapter whose spec overflows holds only its own targets, and says why.
    pub = herald.wait_publication(
        "to-invalid-adapter", lambda p: target(p, "cooldown-overflow").get("reason") == "AdapterInvalid"
    )
    assert "spec.circuitBreaker.cooldown" in target(pub, "cooldown-overflow")["message"]
    wait_until(
        lambda: stalled_message(herald, "cooldown-overflow", "adapter").startswith("spec.circuitBreaker"),
        timeout=30,
        what="the adapter's Stalled condition",
    )
    # A redrive annotation longer than status can hold is recorded by digest; status writes go on.
    pub = herald.wait_publication(
        "long-redrive", lambda p: (p.get("status") or {}).get("observedRedrive", "").startswith("sha256:")
    )
    assert pub["status"]["phase"] == "Published"

    # One Warning Event per stalled object, not one per tick.
    wait_until(
        lambda: all(warnings(herald, n, "InvalidSpec") for n in POISON_SPECS),
        timeout=30,
        what="an InvalidSpec Event for each poison publication",
    )
    another = herald.publication("control-2", ["mastodon"])
    assert another
    herald.wait_phase("control-2", "Published", timeout=CONTROL_DEADLINE)
    for name in POISON_SPECS:
        assert len(warnings(herald, name, "InvalidSpec")) == 1, name
    assert "ERROR" not in "\n".join(line for line in operator.log().splitlines() if "cannot write status" in line), (
        "a status write was refused"
    )


def test_a_job_the_api_server_refuses_is_a_dead_lettered_attempt(cluster, herald, operator):
    cases = {
        "bad-annotation-key": {"podAnnotations": {**PUBLISHED, "bad key!": "x"}},
        "reserved-job-label": {"podAnnotations": PUBLISHED, "podLabels": {"batch.kubernetes.io/job-name": "other"}},
        "limits-below-requests": {
            "podAnnotations": PUBLISHED,
            "resources": {"requests": {"memory": "256Mi"}, "limits": {"memory": "64Mi"}},
        },
    }
    with legacy_crds(cluster):
        for name, template in cases.items():
            herald.adapter(name, jobTemplate=template)
            herald.publication(f"to-{name}", [name])
    herald.adapter("mastodon")
    herald.publication("control", ["mastodon"])
    herald.wait_phase("control", "Published", timeout=CONTROL_DEADLINE)
    for name in cases:
        pub = herald.wait_phase(f"to-{name}", "Failed", timeout=30)
        t = target(pub, name)
        assert (t["deadLetter"], t["lastErrorClass"], t["attempts"]) == (True, "invalid_spec", 1), t
        assert "the API server refused Job" in t["lastError"]
        assert "Invalid" in t["lastError"] or "invalid" in t["lastError"]
        reasons = [e.reason for e in herald.events(f"to-{name}")]
        assert "AttemptStarted" not in reasons
        assert reasons.count("DeadLetter") == 1
        assert len(reasons) <= 3, reasons  # AttemptFailed, DeadLetter (no Event per retry)
        assert herald.jobs(f"to-{name}") == []


def test_a_payload_over_the_annotation_limit_is_refused_once(cluster, herald, operator):
    herald.adapter("mastodon")
    with legacy_crds(cluster):
        # 30,000 emoji: within the text limit, but escaped in the payload annotation it is over 256 KiB.
        herald.publication("huge", ["mastodon"], text="\U0001f600" * 30_000)
    herald.publication("control", ["mastodon"])
    herald.wait_phase("control", "Published", timeout=CONTROL_DEADLINE)
    pub = herald.wait_phase("huge", "Failed", timeout=60)
    t = target(pub, "mastodon")
    assert t["lastErrorClass"] == "invalid_spec" and "262144" in t["lastError"], t["lastError"]


def _health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def test_a_wedged_loop_fails_healthz(cluster, herald, namespace, crds, tmp_path):
    """A loop that stops ticking while work is due makes /healthz fail, so Kubernetes restarts it.
    The wedge is the operator's test-only fault HERALD_TEST_WEDGE_ON (the loop hangs on an await)."""
    proc = OperatorProcess(
        cluster.kubeconfig, namespace, tmp_path, env={"HERALD_TEST_WEDGE_ON": "wedge", "HERALD_LIVENESS_SECONDS": "3"}
    )
    proc.start()
    try:
        herald.adapter("mastodon")
        herald.publication("fine", ["mastodon"])
        herald.wait_phase("fine", "Published")
        assert _health(proc.health_port) == 200
        herald.publication("wedge", ["mastodon"])
        herald.publication("after", ["mastodon"])
        wait_until(lambda: _health(proc.health_port) == 500, timeout=60, what="/healthz to fail")
        assert "no reconcile tick ended" in proc.log()
    finally:
        proc.stop()


def test_reconcile_errors_are_counted_per_kind(cluster, herald, operator):
    herald.adapter("mastodon")
    herald.publication("control", ["mastodon"])
    herald.wait_phase("control", "Published")
    text = operator.metrics()
    for kind in ("publications", "platformadapters"):
        assert f'herald_reconcile_errors_total{{controller="{kind}"}}' in text
    assert json.dumps(text)  # the exposition is text

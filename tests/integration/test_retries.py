"""Retries that fit the error, against the real cluster with kwok failing chosen attempts."""

from __future__ import annotations

import itertools
import json

import pytest

from tests.support.herald import PUBLISHED, JobRecorder, PodRecorder, condition, fate, result, target
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.cluster

OK = result(postId="99", url="https://example.social/@h/99")


def _ms(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _attempt_jobs(recorder: JobRecorder, publication: str) -> list[str]:
    names = [n for n, j in recorder.jobs.items() if j.metadata.labels["herald.dev/publication"] == publication]
    return sorted(names, key=lambda n: int(recorder.jobs[n].metadata.annotations["herald.dev/attempt"]))


def test_server_errors_back_off_1_2_4_8_16_seconds(herald, operator, api, namespace):
    failing = fate(
        result("failed", errorClass="server_error", message="HTTP 503"),
        exit_code=1,
        fail_attempts="1,2,3,4,5",
        success=OK,
    )
    # The breaker would open after 5 failures (its default) and hold attempt 6 for its cooldown.
    herald.adapter("mastodon", annotations=failing, circuitBreaker={"failureThreshold": 10})
    jobs = JobRecorder(api, namespace)
    pods = PodRecorder(api, namespace)
    seen_next: dict[int, float] = {}

    def note_next(p: dict) -> bool:
        t = target(p, "mastodon")
        if t.get("phase") == "Retrying" and t.get("nextAttemptAt"):
            seen_next.setdefault(t["attempts"] + 1, _ms(t["nextAttemptAt"]))
        return p.get("status", {}).get("phase") == "Published"

    try:
        herald.publication("flaky", ["mastodon"])
        pub = herald.wait_publication("flaky", note_next, timeout=60, what="published after 5 retries")
        t = target(pub, "mastodon")
        assert (t["attempts"], t["retries"], t["postId"]) == (6, 5, "99")
        names = _attempt_jobs(jobs, "flaky")
        assert len(names) == 6
        # From each failed attempt's end (its container terminated) to the next attempt's Job.
        ended = {pods.job_of(p): t for p, t in pods.finished.items()}
        delays = [jobs.added[b] - ended[a] for a, b in itertools.pairwise(names)]
        # The backoffs in order, late by at most a generous 5 s (how late is a benchmark figure,
        # not a test's). These delays come from two watches of this process (Pods, then Jobs),
        # whose deliveries can differ by a few hundred ms on a loaded machine (the client decodes
        # each event into typed models; the operator's informer sees the Pod sooner), so they
        # allow 0.5 s; "never early" is asserted exactly just below, against Herald's own record.
        for expected, got in zip([1, 2, 4, 8, 16], delays, strict=False):
            assert expected - 0.5 <= got <= expected + 5, f"delays {delays}"
        assert [target(pub, "mastodon")["lastBackoffSeconds"]] == [16]
        # Never early: each retry's Job was created at or after the nextAttemptAt in status, which
        # Herald sets to the moment it saw the failure plus the backoff.
        for attempt in range(2, 7):
            created = jobs.added[names[attempt - 1]]
            assert -0.05 <= created - seen_next[attempt] <= 5, (attempt, created - seen_next[attempt])
    finally:
        jobs.stop()
        pods.stop()


def test_retrying_condition_reads_like_a_sentence(herald, operator):
    herald.adapter(
        "mastodon",
        annotations=fate(
            result("failed", errorClass="server_error", message="HTTP 503"),
            exit_code=1,
            fail_attempts="1,2",
            success=OK,
        ),
        retryPolicy={"backoff": {"initial": "5s"}},
    )
    herald.publication("r", ["mastodon"])
    pub = herald.wait_phase("r", "Retrying")
    t = target(pub, "mastodon")
    assert (t["lastErrorClass"], t["lastBackoffSeconds"], t["attempts"]) == ("server_error", 5, 1)
    message = condition(pub, "Retrying")["message"]
    assert "attempt 1 of 6 failed: server_error (HTTP 503); next attempt in 5s at " + t["nextAttemptAt"] in message
    assert condition(pub, "Retrying")["status"] == "True"


def test_network_error_first_retry_is_immediate(herald, operator, api, namespace):
    herald.adapter(
        "mastodon",
        annotations=fate(
            result("failed", errorClass="network", message="connect refused"),
            exit_code=1,
            fail_attempts="1",
            success=OK,
        ),
    )
    jobs = JobRecorder(api, namespace)
    try:
        herald.publication("n", ["mastodon"])
        pub = herald.wait_phase("n", "Published")
        t = target(pub, "mastodon")
        assert (t["attempts"], t["lastBackoffSeconds"]) == (2, 0)
        first, second = _attempt_jobs(jobs, "n")
        assert jobs.added[second] - jobs.finished[first] < 5  # at once: no backoff (1 s would be the next)
    finally:
        jobs.stop()


def test_rate_limit_blocks_the_whole_adapter_until_retry_after(herald, operator, api, namespace):
    limited = result(
        "failed",
        errorClass="rate_limited",
        retryAfterSeconds=4,
        message="HTTP 429",
        rateLimit={"remaining": 0, "resetAt": "2030-01-01T00:00:00Z"},
    )
    herald.adapter(
        "mastodon",
        annotations=fate(limited, exit_code=1, fail_attempts="1", success=OK),
        concurrency=5,
        retryPolicy={"rateLimited": {"minDelay": "1s"}},
    )
    jobs = JobRecorder(api, namespace)
    try:
        herald.publication("a", ["mastodon"])
        adapter = herald.wait_adapter(
            "mastodon",
            lambda a: (a.get("status") or {}).get("rateLimit", {}).get("blockedUntil"),
            what="adapter blocked by the platform's rate limit",
        )
        blocked_until = _ms(adapter["status"]["rateLimit"]["blockedUntil"])
        assert adapter["status"]["rateLimit"]["remaining"] == 0
        herald.publication("b", ["mastodon"])
        pub_b = herald.wait_publication(
            "b", lambda p: target(p, "mastodon").get("reason") == "RateLimited", what="b waits for the rate limit"
        )
        assert target(pub_b, "mastodon")["attempts"] == 0 and pub_b["status"]["phase"] == "Queued"
        herald.wait_phase("a", "Published", timeout=20)
        herald.wait_phase("b", "Published", timeout=20)
        later = [jobs.added[n] for n in jobs.added if not n.startswith("a-") or n.endswith("-2")]
        assert min(later) >= blocked_until - 0.01, "a Job started while the adapter was blocked"
        a = target(herald.get_publication("a"), "mastodon")
        assert a["lastBackoffSeconds"] == 4  # Retry-After (4s) beats minDelay (1s)
    finally:
        jobs.stop()


def test_auth_failure_pauses_the_adapter_until_the_secret_changes(herald, cluster, tmp_path):
    """With read access to the Secret's metadata (the chart's rbac.secretNames), a change of the
    Secret resumes the adapter at once and no attempt is spent while it waits."""
    operator = OperatorProcess(
        cluster.kubeconfig, herald.namespace, tmp_path, env={"HERALD_READ_SECRET_METADATA": "true"}
    )
    operator.start()
    try:
        _auth_failure_pauses_the_adapter_until_the_secret_changes(herald)
    finally:
        operator.stop()


def _auth_failure_pauses_the_adapter_until_the_secret_changes(herald):
    herald.core.create_namespaced_secret(
        herald.namespace, {"metadata": {"name": "creds"}, "stringData": {"accessToken": "expired-token"}}
    )
    refused = fate(result("failed", errorClass="auth", message="HTTP 401 The access token is invalid"), exit_code=1)
    herald.adapter("mastodon", annotations=refused, credentialsSecretRef={"name": "creds"})
    herald.publication("first", ["mastodon"])
    adapter = herald.wait_adapter(
        "mastodon",
        lambda a: (condition(a, "CredentialsValid") or {}).get("status") == "False",
        what="CredentialsValid False",
    )
    assert "expired-token" not in json.dumps(adapter)
    pub = herald.wait_publication("first", lambda p: target(p, "mastodon").get("reason") == "CredentialsInvalid")
    assert (pub["status"]["phase"], target(pub, "mastodon")["attempts"]) == ("Queued", 1)
    herald.publication("second", ["mastodon"])
    second = herald.wait_publication("second", lambda p: target(p, "mastodon").get("reason") == "CredentialsInvalid")
    assert target(second, "mastodon")["attempts"] == 0
    assert herald.jobs("second") == []
    # The user fixes the token (and, in this simulation, what the platform answers).
    herald.patch_adapter(
        "mastodon", {"jobTemplate": {"podAnnotations": {**PUBLISHED, "kwok.herald.dev/exit-code": None}}}
    )
    herald.core.patch_namespaced_secret("creds", herald.namespace, {"stringData": {"accessToken": "fresh-token"}})
    first = herald.wait_phase("first", "Published", timeout=30)
    second = herald.wait_phase("second", "Published", timeout=30)
    assert target(first, "mastodon")["attempts"] == 2 and target(second, "mastodon")["attempts"] == 1
    herald.wait_adapter("mastodon", lambda a: (condition(a, "CredentialsValid") or {}).get("status") == "True")


def test_unknown_outcome_runs_the_next_attempt_in_verify_mode(herald, operator):
    herald.adapter(
        "mastodon",
        annotations=fate(
            result("failed", errorClass="unknown_outcome", message="read timeout"),
            exit_code=1,
            fail_attempts="1",
            success=result(postId="7", verified=True),
        ),
    )
    herald.publication("u", ["mastodon"])
    pub = herald.wait_phase("u", "Published")
    t = target(pub, "mastodon")
    assert (t["attempts"], t["postId"]) == (2, "7")
    assert "verified an earlier post" in t["message"]
    modes = {
        j.metadata.annotations["herald.dev/attempt"]: j.metadata.annotations["herald.dev/mode"]
        for j in herald.jobs("u")
    }
    assert modes == {"1": "publish", "2": "verify"}
    env = {
        e.name: e.value
        for j in herald.jobs("u")
        if j.metadata.annotations["herald.dev/attempt"] == "2"
        for e in j.spec.template.spec.containers[0].env
    }
    first_key = {
        e.name: e.value
        for j in herald.jobs("u")
        if j.metadata.annotations["herald.dev/attempt"] == "1"
        for e in j.spec.template.spec.containers[0].env
    }["HERALD_IDEMPOTENCY_KEY"]
    assert env["HERALD_MODE"] == "verify" and env["HERALD_IDEMPOTENCY_KEY"] == first_key


def test_unknown_outcome_with_policy_fail_goes_to_the_dead_letter(herald, operator):
    herald.adapter(
        "discord",
        platform="discord",
        annotations=fate(result("failed", errorClass="unknown_outcome"), exit_code=1),
        retryPolicy={"unknownOutcome": {"policy": "Fail"}},
    )
    herald.publication("f", ["discord"])
    pub = herald.wait_phase("f", "Failed")
    assert target(pub, "discord")["attempts"] == 1 and len(herald.jobs("f")) == 1


def test_circuit_opens_after_five_failures_holds_others_and_closes_after_a_probe(herald, operator):
    down = fate(result("failed", errorClass="server_error", message="HTTP 502"), exit_code=1)
    herald.adapter(
        "mastodon",
        annotations=down,
        concurrency=5,
        circuitBreaker={"failureThreshold": 5, "cooldown": "4s", "maxCooldown": "1m"},
        retryPolicy={"backoff": {"initial": "30s"}},
    )
    for i in range(5):
        herald.publication(f"f{i}", ["mastodon"])
    adapter = herald.wait_adapter(
        "mastodon", lambda a: (a.get("status") or {}).get("circuit", {}).get("state") == "Open", what="circuit Open"
    )
    assert adapter["status"]["circuit"]["consecutiveFailures"] == 5
    assert condition(adapter, "Available")["status"] == "False"
    herald.publication("held", ["mastodon"])
    held = herald.wait_publication("held", lambda p: target(p, "mastodon").get("reason") == "CircuitOpen")
    assert held["status"]["phase"] == "Queued" and target(held, "mastodon")["attempts"] == 0
    # The platform recovers before the cooldown ends; one probe goes through and closes the circuit.
    herald.patch_adapter(
        "mastodon",
        {
            "jobTemplate": {
                "podAnnotations": {**PUBLISHED, "kwok.herald.dev/exit-code": None, "kwok.herald.dev/duration": "1s"}
            }
        },
    )
    herald.wait_adapter(
        "mastodon",
        lambda a: (a.get("status") or {}).get("circuit", {}).get("state") == "HalfOpen",
        timeout=15,
        what="circuit HalfOpen",
    )
    herald.wait_phase("held", "Published", timeout=20)
    closed = herald.wait_adapter("mastodon", lambda a: a["status"]["circuit"]["state"] == "Closed", what="Closed")
    assert condition(closed, "Available")["status"] == "True"


def test_dead_letter_then_bulk_redrive(herald, operator, cluster):
    rejected = fate(result("failed", errorClass="rejected", message="HTTP 422 invalid"), exit_code=1)
    herald.adapter("mastodon", annotations=rejected)
    herald.adapter("bluesky", platform="bluesky")
    herald.publication("d1", ["mastodon", "bluesky"])
    herald.publication("d2", ["mastodon"])
    for name in ("d1", "d2"):
        herald.wait_publication(
            name,
            lambda p: p["metadata"].get("labels", {}).get("herald.dev/dead-letter") == "true",
            what=f"{name} in the dead letter",
        )
    assert herald.get_publication("d1")["status"]["phase"] == "PartiallyPublished"
    assert herald.get_publication("d2")["status"]["phase"] == "Failed"
    assert any(e.reason == "DeadLetter" for e in herald.events("d2"))
    herald.patch_adapter(
        "mastodon", {"jobTemplate": {"podAnnotations": {**PUBLISHED, "kwok.herald.dev/exit-code": None}}}
    )
    cluster.kubectl(
        "annotate",
        "publications",
        "-n",
        herald.namespace,
        "-l",
        "herald.dev/dead-letter=true",
        "herald.dev/redrive=1",
        "--overwrite",
    )
    for name in ("d1", "d2"):
        pub = herald.wait_phase(name, "Published", timeout=30)
        t = target(pub, "mastodon")
        assert t["attempts"] == 2 and t["retries"] == 0
        herald.wait_publication(
            name,
            lambda p: "herald.dev/dead-letter" not in p["metadata"].get("labels", {}),
            what="dead-letter label removed",
        )
    assert target(herald.get_publication("d1"), "bluesky")["attempts"] == 1  # the published target was untouched
    names = [j.metadata.name for j in herald.jobs()]
    assert len(names) == len(set(names)) == 5


def test_sigkill_during_backoff_retries_once_at_the_stored_time(herald, operator, api, namespace):
    herald.adapter(
        "mastodon",
        annotations=fate(result("failed", errorClass="server_error"), exit_code=1, fail_attempts="1", success=OK),
        retryPolicy={"backoff": {"initial": "6s"}},
    )
    jobs = JobRecorder(api, namespace)
    try:
        herald.publication("k", ["mastodon"])
        pub = herald.wait_phase("k", "Retrying")
        next_at = _ms(target(pub, "mastodon")["nextAttemptAt"])
        operator.kill()
        operator.start()
        pub = herald.wait_phase("k", "Published", timeout=30)
        assert target(pub, "mastodon")["attempts"] == 2
        second = [n for n in jobs.added if jobs.jobs[n].metadata.annotations["herald.dev/attempt"] == "2"]
        assert len(second) == 1
        assert -0.05 <= jobs.added[second[0]] - next_at <= 10  # never early, across the restart
        assert len(herald.jobs("k")) == 2
    finally:
        jobs.stop()

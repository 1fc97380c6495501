"""The pure reconcile(world, now) -> Plan, driven through a small simulator (builders.Sim) that
applies each plan the way the engine and the API server would."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.durations import parse_time
from herald.naming import job_name
from herald.reconciler import DEAD_LETTER_LABEL, changed, clean, progress_only, reconcile
from herald.retry import DEFAULT_CREDENTIALS_TIMEOUT

from .builders import (
    DETERMINISTIC,
    NS,
    T0,
    Sim,
    at,
    condition_of,
    failed,
    merge_patch,
    pod_body,
    published,
    status_diff,
    ts,
)

A = "mastodon-main"


def names(plan) -> list[str]:
    return [c.manifest["metadata"]["name"] for c in plan.creates]


def reasons(plan) -> list[str]:
    """Every Event the plan posts: its own, and each created Job's AttemptStarted (posted after the create)."""
    return [e.reason for e in plan.events] + [c.started.reason for c in plan.creates if c.started]


def env_of(manifest) -> dict[str, str]:
    (c,) = manifest["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in c["env"]}


def one_target_sim(**adapter) -> Sim:
    s = Sim()
    s.add_adapter(A, **adapter)
    s.add_publication("launch")
    return s


def fail_until_dead(s: Sim, pub: str, cls: str, now, **result) -> tuple[list[float], object]:
    """Let every attempt of ``pub`` fail with ``cls`` until it is dead-lettered; the delays chosen."""
    delays = []
    for _ in range(100):
        s.finish(pub, A, failed(cls, **result), now=now)
        s.step(now)
        t = s.target(pub)
        if t["phase"] == "Failed":
            return delays, now
        delays.append(t["lastBackoffSeconds"])
        now = now + timedelta(seconds=t["lastBackoffSeconds"])
        plan = s.step(now)
        assert len(plan.creates) == 1, f"the retry should start at nextAttemptAt: {s.target(pub)}"
    raise AssertionError("never dead-lettered")


# -- first attempt, scheduling -------------------------------------------------------------------


def test_new_publication_due_now_creates_one_job_for_attempt_1():
    s = one_target_sim()
    plan = s.reconcile(T0)
    assert names(plan) == [job_name("launch", A, 1)]
    (jc,) = plan.creates
    assert jc.manifest["metadata"]["annotations"]["herald.dev/attempt"] == "1"
    assert jc.publication == (NS, "launch") and jc.previous_attempt == 0
    st_ = plan.publication_status[(NS, "launch")]
    assert st_["phase"] == "Publishing"
    assert st_["attempts"] == 1 and st_["totalTargets"] == 1 and st_["publishedTargets"] == 0
    (t,) = st_["targets"]
    assert t["phase"] == "Publishing" and t["attempts"] == 1 and t["jobName"] == job_name("launch", A, 1)
    assert "AttemptStarted" in reasons(plan)
    assert plan.adapter_status[(NS, A)]["queue"] == {"pending": 0, "running": 1}


def test_publish_at_in_the_future_is_scheduled():
    s = Sim()
    s.add_adapter(A)
    s.add_publication("launch", publishAt=ts(at(3600)))
    plan = s.step(T0)
    assert plan.creates == []
    assert plan.wake_at == at(3600)
    st_ = s.status("launch")
    assert st_["phase"] == "Scheduled"
    assert st_["nextAttemptAt"] == ts(at(3600))
    assert s.target("launch")["phase"] == "Scheduled"
    assert condition_of(st_, "Scheduled")["status"] == "True"
    assert s.step(at(3599)).creates == []
    assert names(s.step(at(3600))) == [job_name("launch", A, 1)]


def test_publish_at_in_the_past_publishes_at_once():
    s = Sim()
    s.add_adapter(A)
    s.add_publication("launch", publishAt=ts(at(-60)))
    assert len(s.step(T0).creates) == 1


def test_a_running_job_keeps_the_target_publishing_without_new_jobs():
    s = one_target_sim()
    s.step(T0)
    for dt in (1, 30, 300):
        plan = s.step(at(dt))
        assert plan.creates == []
        assert s.target("launch")["phase"] == "Publishing"
        assert s.status("launch")["phase"] == "Publishing"


# -- outcomes ---------------------------------------------------------------------------------------


def test_successful_job_publishes_the_target():
    s = one_target_sim()
    s.step(T0)
    s.finish("launch", A, published("109876", "https://mastodon.example/@h/109876"), now=at(4))
    plan = s.step(at(5))
    t = s.target("launch")
    assert t["phase"] == "Published"
    assert t["postId"] == "109876" and t["url"] == "https://mastodon.example/@h/109876"
    assert t["publishedTime"] == ts(at(4))
    st_ = s.status("launch")
    assert st_["phase"] == "Published" and st_["publishedTargets"] == 1
    assert condition_of(st_, "Published")["status"] == "True"
    assert "AttemptSucceeded" in reasons(plan)
    assert "NoResult" not in reasons(plan)
    assert s.adapter_status()["lastPublishedTime"] == ts(at(4))
    (obs,) = plan.attempts
    assert obs.attempt == 1 and obs.outcome.published
    assert s.step(at(100)).creates == []


def test_exit_0_without_result_is_published_with_a_warning():
    s = one_target_sim()
    s.step(T0)
    s.finish("launch", A, None, exit_code=0, now=at(4))
    plan = s.step(at(5))
    assert s.target("launch")["phase"] == "Published"
    assert s.target("launch")["postId"] is None
    warn = [e for e in plan.events if e.reason == "NoResult"]
    assert len(warn) == 1 and warn[0].type == "Warning"


def test_server_error_at_attempt_1_schedules_a_retry_in_1s():
    s = one_target_sim()
    s.step(T0)
    s.finish("launch", A, failed("server_error", "HTTP 503 Service Unavailable"), now=at(5))
    plan = s.step(at(5))
    assert plan.creates == []
    t = s.target("launch")
    assert t["phase"] == "Retrying"
    assert t["reason"] == "RetryServerError"
    assert t["lastBackoffSeconds"] == 1
    assert t["nextAttemptAt"] == ts(at(6))
    assert t["lastErrorClass"] == "server_error"
    assert t["lastError"] == "HTTP 503 Service Unavailable"
    assert t["retries"] == 1
    assert t["message"] == (
        f"attempt 1 of 6 failed: server_error (HTTP 503 Service Unavailable); next attempt in 1s at {ts(at(6))}"
    )
    assert s.status("launch")["phase"] == "Retrying"
    assert s.status("launch")["nextAttemptAt"] == ts(at(6))
    assert condition_of(s.status("launch"), "Retrying")["status"] == "True"
    assert plan.wake_at == at(6)
    failed_events = [e for e in plan.events if e.reason == "AttemptFailed"]
    assert len(failed_events) == 1 and failed_events[0].type == "Warning"


def test_the_retry_starts_at_next_attempt_at_not_before():
    s = one_target_sim()
    s.step(T0)
    s.finish("launch", A, failed("server_error"), now=at(5))
    s.step(at(5))
    assert s.step(at(5.5)).creates == []
    plan = s.step(at(6))
    assert names(plan) == [job_name("launch", A, 2)]
    assert plan.creates[0].manifest["metadata"]["annotations"]["herald.dev/attempt"] == "2"
    assert s.target("launch")["attempts"] == 2
    assert s.target("launch")["phase"] == "Publishing"


def test_retries_back_off_1_2_4_8_16_then_dead_letter():
    s = one_target_sim(circuitBreaker={"failureThreshold": 100})
    s.step(T0)
    delays, now = fail_until_dead(s, "launch", "server_error", T0)
    assert delays == [1, 2, 4, 8, 16]
    t = s.target("launch")
    assert t["phase"] == "Failed" and t["deadLetter"] is True and t["attempts"] == 6
    assert t["reason"] == "DeadLetter"
    assert t["message"].startswith("attempt 6 of 6 failed: server_error")
    assert t["nextAttemptAt"] is None
    st_ = s.status("launch")
    assert st_["phase"] == "Failed"
    assert condition_of(st_, "Failed")["status"] == "True"
    assert s.publications["launch"]["metadata"]["labels"][DEAD_LETTER_LABEL] == "true"
    assert [e.reason for e in s.events].count("DeadLetter") == 1
    assert [e.reason for e in s.events].count("AttemptStarted") == 6
    # and nothing more happens
    assert s.step(now + timedelta(hours=1)).creates == []


def test_attempt_observations_for_metrics():
    s = one_target_sim(retryPolicy={"maxAttempts": 2}, circuitBreaker={"failureThreshold": 100})
    s.step(T0)
    s.finish("launch", A, failed("server_error"), now=at(1))
    plan = s.step(at(1))
    (obs,) = plan.attempts
    assert (obs.attempt, obs.retried, obs.dead_letter, obs.platform) == (1, True, False, "mastodon")
    assert obs.outcome.error_class.value == "server_error"
    s.step(at(2))
    s.finish("launch", A, failed("server_error"), now=at(3))
    plan = s.step(at(3))
    (obs,) = plan.attempts
    assert (obs.attempt, obs.retried, obs.dead_letter) == (2, False, True)


def test_conditions_keep_their_transition_time_across_retries():
    s = one_target_sim(circuitBreaker={"failureThreshold": 100})
    s.step(T0)
    published_since = condition_of(s.status("launch"), "Published")["lastTransitionTime"]
    assert published_since == ts(T0)
    s.finish("launch", A, failed("server_error"), now=at(1))
    s.step(at(1))
    retrying = condition_of(s.status("launch"), "Retrying")
    assert retrying["status"] == "True" and retrying["lastTransitionTime"] == ts(at(1))
    s.step(at(2))  # attempt 2 starts: no longer retrying
    assert condition_of(s.status("launch"), "Retrying")["status"] == "False"
    assert condition_of(s.status("launch"), "Retrying")["lastTransitionTime"] == ts(at(2))
    s.finish("launch", A, failed("server_error"), now=at(3))
    s.step(at(3))
    assert condition_of(s.status("launch"), "Published")["lastTransitionTime"] == ts(T0)
    s.step(at(5))
    s.finish("launch", A, published(), now=at(6))
    s.step(at(6))
    c = condition_of(s.status("launch"), "Published")
    assert c["status"] == "True" and c["lastTransitionTime"] == ts(at(6))


def test_publication_retry_policy_overrides_the_adapters():
    s = Sim()
    s.add_adapter(
        A, retryPolicy={"maxAttempts": 6, "backoff": {"initial": "1s"}}, circuitBreaker={"failureThreshold": 100}
    )
    s.add_publication("launch", retryPolicy={"maxAttempts": 3, "backoff": {"initial": "10s", "factor": 3}})
    s.step(T0)
    delays, _ = fail_until_dead(s, "launch", "server_error", T0)
    assert delays == [10, 30]
    assert s.target("launch")["attempts"] == 3


def test_rejected_is_dead_lettered_at_once():
    s = one_target_sim()
    s.step(T0)
    s.finish("launch", A, failed("rejected", "text too long (612 > 500)"), now=at(3))
    plan = s.step(at(3))
    t = s.target("launch")
    assert t["phase"] == "Failed" and t["deadLetter"] and t["lastErrorClass"] == "rejected"
    assert plan.publication_labels == {(NS, "launch"): {DEAD_LETTER_LABEL: "true"}}
    assert "DeadLetter" in reasons(plan)


def test_network_failure_is_retried_at_once():
    s = one_target_sim()
    s.step(T0)
    s.finish("launch", A, failed("network", "connection refused"), now=at(3))
    plan = s.step(at(3))
    assert names(plan) == [job_name("launch", A, 2)]
    assert s.target("launch")["lastBackoffSeconds"] == 0


def test_image_pull_error_stops_the_job_and_retries_as_pod_failure():
    s = one_target_sim()
    s.step(T0)
    jname = job_name("launch", A, 1)
    s.pods["p"] = pod_body(
        jname, name="p", phase="Pending", waiting={"reason": "ImagePullBackOff", "message": "Back-off pulling image"}
    )
    plan = s.step(at(30))
    assert plan.deletes == [(NS, jname)]
    t = s.target("launch")
    assert t["phase"] == "Retrying" and t["lastErrorClass"] == "pod_failure"


def test_unknown_outcome_verify_runs_the_next_attempt_in_verify_mode_until_success():
    s = one_target_sim()
    s.step(T0)
    s.finish("launch", A, failed("unknown_outcome", "read timeout"), now=at(3))
    s.step(at(3))
    t = s.target("launch")
    assert t["verifyNext"] is True and "verify mode" in t["message"]
    plan = s.step(at(4))
    (jc,) = plan.creates
    assert jc.manifest["metadata"]["annotations"]["herald.dev/mode"] == "verify"
    assert env_of(jc.manifest)["HERALD_MODE"] == "verify"
    # a later server error still verifies first: the earlier request may have posted
    s.finish("launch", A, failed("server_error"), now=at(5))
    s.step(at(5))
    plan = s.step(at(7))
    assert env_of(plan.creates[0].manifest)["HERALD_MODE"] == "verify"
    s.finish("launch", A, published(verified=True), now=at(8))
    s.step(at(8))
    assert s.target("launch")["phase"] == "Published"
    assert s.target("launch")["verifyNext"] is False
    assert "verified" in s.target("launch")["message"]


@pytest.mark.parametrize("policy, phase, mode", [("Fail", "Failed", None), ("Retry", "Retrying", "publish")])
def test_unknown_outcome_fail_and_retry_policies(policy, phase, mode):
    s = one_target_sim(retryPolicy={"unknownOutcome": {"policy": policy}})
    s.step(T0)
    s.finish("launch", A, failed("unknown_outcome", "read timeout"), now=at(3))
    s.step(at(3))
    assert s.target("launch")["phase"] == phase
    plan = s.step(at(10))
    if mode is None:
        assert plan.creates == []
    else:
        assert env_of(plan.creates[0].manifest)["HERALD_MODE"] == mode


def test_job_that_disappeared_while_running_is_an_unknown_outcome_then_verify():
    s = one_target_sim()
    s.step(T0)
    s.jobs.clear()
    plan = s.step(at(3))
    assert plan.creates == []
    t = s.target("launch")
    assert t["lastErrorClass"] == "unknown_outcome"
    assert "disappeared" in t["lastError"]
    assert t["phase"] == "Retrying" and t["verifyNext"] is True
    plan = s.step(at(10))
    assert names(plan) == [job_name("launch", A, 2)]
    assert env_of(plan.creates[0].manifest)["HERALD_MODE"] == "verify"


def test_a_job_whose_status_write_was_lost_is_adopted_not_duplicated():
    s = one_target_sim()
    before = json.loads(json.dumps(s.status("launch")))
    s.step(T0)  # creates the Job for attempt 1 ...
    s.publications["launch"]["status"] = before  # ... but the status write after it was lost
    plan = s.step(at(1))
    assert plan.creates == []
    t = s.target("launch")
    assert t["attempts"] == 1 and t["jobName"] == job_name("launch", A, 1)
    assert t["phase"] == "Publishing"


def test_adopting_an_attempt_n_job_when_status_says_n_minus_1():
    s = one_target_sim(circuitBreaker={"failureThreshold": 100})
    s.step(T0)
    s.finish("launch", A, failed("server_error"), now=at(1))
    s.step(at(1))
    lost = json.loads(json.dumps(s.status("launch")))  # attempts = 1, Retrying
    s.step(at(2))  # creates attempt 2
    s.publications["launch"]["status"] = lost
    plan = s.step(at(3))
    assert plan.creates == []
    assert s.target("launch")["attempts"] == 2
    # the adopted attempt's result is read when it finishes
    s.finish("launch", A, published(), now=at(4))
    s.step(at(4))
    assert s.target("launch")["phase"] == "Published"


# -- the adapter's limits ---------------------------------------------------------------------------


def test_concurrency_queues_the_rest_in_priority_order():
    s = Sim()
    s.add_adapter(A, concurrency=1)
    s.add_publication("old", created=at(-100))
    s.add_publication("urgent", created=at(-10), priority=50)
    s.add_publication("new", created=at(-50))
    plan = s.step(T0)
    assert names(plan) == [job_name("urgent", A, 1)]
    for p in ("old", "new"):
        assert s.target(p)["phase"] == "Queued" and s.target(p)["reason"] == "ConcurrencyLimit"
    assert s.status("old")["phase"] == "Queued"
    assert s.adapter_status()["queue"] == {"pending": 2, "running": 1}
    s.finish("urgent", A, published(), now=at(10))
    assert names(s.step(at(10))) == [job_name("old", A, 1)]


def test_a_job_being_deleted_does_not_hold_a_concurrency_slot():
    s = Sim()
    s.add_adapter(A, concurrency=1)
    s.add_publication("a")
    s.add_publication("b", created=at(1))
    s.step(T0)
    job = json.loads(json.dumps(s.job_for("a", A)))
    s.publications["a"]["spec"]["suspend"] = True
    plan = s.step(at(1))
    assert plan.deletes == [(NS, job["metadata"]["name"])]
    # the API keeps the Job a while with a deletionTimestamp (foreground deletion)
    job["metadata"]["deletionTimestamp"] = ts(at(1))
    s.jobs[job["metadata"]["name"]] = job
    assert names(s.step(at(2))) == [job_name("b", A, 1)]


def test_retries_queue_by_their_due_time():
    """Both targets' retries are due and one slot is free: the one due first goes first, even if
    its publication is younger."""
    s = Sim()
    s.add_adapter(A, concurrency=2)
    s.add_publication("old", created=T0)
    s.add_publication("young", created=at(1))
    s.step(at(1))
    s.finish("young", A, failed("server_error"), now=at(2))
    s.step(at(2))  # young retries at 3s
    s.finish("old", A, failed("server_error"), now=at(2.5))
    s.adapters[A]["spec"]["concurrency"] = 1
    s.step(at(2.5))  # old retries at 3.5s
    plan = s.step(at(5))
    assert names(plan) == [job_name("young", A, 2)]


def test_adapter_rate_limit_window():
    s = Sim()
    s.add_adapter(A, concurrency=10, rateLimit={"limit": 2, "period": "1m"})
    for i in range(3):
        s.add_publication(f"p{i}", created=at(i - 10))
    assert len(s.step(T0).creates) == 2
    plan = s.step(at(1))
    assert plan.creates == []
    assert s.target("p2")["reason"] == "RateLimitWindow"
    assert plan.wake_at is not None and plan.wake_at <= at(60)
    assert names(s.step(at(60))) == [job_name("p2", A, 1)]


def test_paused_adapter_starts_nothing():
    s = one_target_sim(paused=True)
    plan = s.step(T0)
    assert plan.creates == []
    assert s.target("launch")["phase"] == "Queued" and s.target("launch")["reason"] == "AdapterPaused"
    assert condition_of(s.adapter_status(), "Available")["status"] == "False"
    s.adapters[A]["spec"]["paused"] = False
    assert len(s.step(at(1)).creates) == 1


def test_missing_adapter():
    s = Sim()
    s.add_publication("launch")
    plan = s.step(T0)
    assert plan.creates == []
    assert s.target("launch")["reason"] == "AdapterNotFound"
    s.add_adapter(A)
    assert len(s.step(at(1)).creates) == 1


def test_rate_limited_blocks_the_whole_adapter_until_retry_after():
    s = Sim()
    s.add_adapter(A, concurrency=5)
    s.add_publication("a")
    s.step(T0)
    s.add_publication("b", created=at(2))
    s.finish("a", A, failed("rate_limited", "HTTP 429", retryAfterSeconds=120), now=at(5))
    plan = s.step(at(5))
    assert plan.creates == []
    assert s.adapter_status()["rateLimit"]["blockedUntil"] == ts(at(125))
    assert s.target("a")["phase"] == "Retrying" and s.target("a")["nextAttemptAt"] == ts(at(125))
    assert s.target("a")["message"].startswith("attempt 1 of 20 failed: rate_limited")
    assert s.target("b")["phase"] == "Queued" and s.target("b")["reason"] == "RateLimited"
    assert plan.wake_at == at(125)
    assert s.step(at(124)).creates == []
    assert sorted(names(s.step(at(125)))) == sorted([job_name("a", A, 2), job_name("b", A, 1)])


def test_rate_limited_attempts_do_not_spend_the_retry_budget():
    s = one_target_sim(circuitBreaker={"failureThreshold": 100})
    s.step(T0)
    now = T0
    for _ in range(8):
        s.finish("launch", A, failed("rate_limited", retryAfterSeconds=1), now=now)
        s.step(now)
        now += timedelta(seconds=30)
        s.step(now)
    delays, _ = fail_until_dead(s, "launch", "server_error", now)
    assert delays == [1, 2, 4, 8, 16], "8 rate-limited attempts left the 6-attempt budget untouched"
    assert s.target("launch")["attempts"] == 8 + 6


def test_breaker_opens_after_five_failures_and_holds_everyone():
    s = Sim()
    s.add_adapter(A, concurrency=10)
    for i in range(5):
        s.add_publication(f"p{i}")
    s.step(T0)
    for i in range(5):
        s.finish(f"p{i}", A, failed("server_error"), now=at(5))
    s.add_publication("late", created=at(3))
    plan = s.step(at(5))
    assert plan.creates == []
    circuit = s.adapter_status()["circuit"]
    assert circuit["state"] == "Open" and circuit["nextProbeAt"] == ts(at(125))
    assert s.target("late")["phase"] == "Queued" and s.target("late")["reason"] == "CircuitOpen"
    assert condition_of(s.adapter_status(), "Available")["status"] == "False"
    # the failed ones' retries fall due during the cooldown: they wait too
    plan = s.step(at(30))
    assert plan.creates == []
    assert {s.target(f"p{i}")["reason"] for i in range(5)} == {"CircuitOpen"}
    assert plan.wake_at == at(125)
    # after the cooldown exactly one probe
    plan = s.step(at(125))
    assert len(plan.creates) == 1
    assert s.adapter_status()["circuit"]["state"] == "HalfOpen"
    assert s.step(at(126)).creates == []


@pytest.mark.parametrize("cls", ["auth", "rate_limited", "rejected"])
def test_failures_that_say_nothing_about_platform_health_do_not_open_the_breaker(cls):
    s = Sim()
    s.add_adapter(A, concurrency=10)
    for i in range(6):
        s.add_publication(f"p{i}")
    s.step(T0)
    for i in range(6):
        s.finish(f"p{i}", A, failed(cls, retryAfterSeconds=1), now=at(2))
    s.step(at(2))
    assert s.adapter_status()["circuit"]["state"] == "Closed"
    assert s.adapter_status()["circuit"]["consecutiveFailures"] == 0


def test_failed_probe_doubles_the_cooldown_and_a_good_one_closes():
    s = Sim()
    s.add_adapter(A, concurrency=10, circuitBreaker={"failureThreshold": 1, "cooldown": "1m"})
    s.add_publication("a")
    s.add_publication("b", created=at(1))
    s.step(T0)  # both start
    s.finish("a", A, failed("server_error"), now=at(2))
    s.step(at(2))
    assert s.adapter_status()["circuit"]["nextProbeAt"] == ts(at(62))
    s.finish("b", A, failed("server_error"), now=at(3))  # already running: does not extend the cooldown
    s.step(at(3))
    assert s.adapter_status()["circuit"]["nextProbeAt"] == ts(at(62))
    plan = s.step(at(62))
    (probe,) = plan.creates
    probe_pub = "a" if probe.publication == (NS, "a") else "b"
    s.finish(probe_pub, A, failed("network"), now=at(70))
    s.step(at(70))
    assert s.adapter_status()["circuit"]["state"] == "Open"
    assert s.adapter_status()["circuit"]["nextProbeAt"] == ts(at(70 + 120))
    plan = s.step(at(190))
    (probe,) = plan.creates
    probe_pub = "a" if probe.publication == (NS, "a") else "b"
    s.finish(probe_pub, A, published(), now=at(195))
    plan = s.step(at(195))
    assert s.adapter_status()["circuit"]["state"] == "Closed"
    assert s.adapter_status()["circuit"]["opens"] == 0
    assert len(plan.creates) == 1  # the other target may go at once


# -- credentials ------------------------------------------------------------------------------------


def creds_sim(**retry) -> Sim:
    s = Sim()
    s.add_adapter(A, credentialsSecretRef={"name": "creds"}, **({"retryPolicy": retry} if retry else {}))
    s.set_secret("creds", "7")
    s.add_publication("a")
    s.add_publication("b", created=at(1))
    return s


def test_auth_failure_invalidates_credentials_and_everyone_waits_without_spending_attempts():
    s = creds_sim()
    plan = s.step(T0)
    assert plan.creates[0].manifest["metadata"]["annotations"]["herald.dev/credentials-version"] == "7"
    s.finish("a", A, failed("auth", "HTTP 401 Unauthorized"), now=at(5))
    s.step(at(5))
    cred = condition_of(s.adapter_status(), "CredentialsValid")
    assert cred["status"] == "False"
    assert s.adapter_status()["credentials"]["valid"] is False
    assert s.adapter_status()["credentials"]["secretResourceVersion"] == "7"
    for p in ("a", "b"):
        assert s.target(p)["phase"] == "Queued" and s.target(p)["reason"] == "CredentialsInvalid"
    for dt in (10, 600, 3600):
        assert s.step(at(dt)).creates == []
    assert s.target("a")["attempts"] == 1 and s.target("b")["attempts"] == 0
    # the Secret is updated: attempts resume
    s.set_secret("creds", "8")
    plan = s.step(at(4000))
    assert len(plan.creates) == 1
    assert s.adapter_status()["credentials"]["valid"] is True
    assert condition_of(s.adapter_status(), "CredentialsValid")["status"] == "True"
    assert plan.creates[0].manifest["metadata"]["annotations"]["herald.dev/credentials-version"] == "8"


def test_auth_failure_does_not_spend_the_budget():
    s = creds_sim()
    del s.publications["b"]
    s.step(T0)
    s.finish("a", A, failed("auth"), now=at(5))
    s.step(at(5))
    s.set_secret("creds", "8")
    plan = s.step(at(6))
    assert names(plan) == [job_name("a", A, 2)]
    assert s.target("a")["failures"] == {"auth": 1}
    s.finish("a", A, failed("server_error"), now=at(7))
    s.step(at(7))
    # attempt 2 overall, but the first failure that spends the 6-attempt budget
    assert s.target("a")["message"].startswith("attempt 1 of 6 failed: server_error")
    assert s.target("a")["lastBackoffSeconds"] == 1


def test_auth_failure_of_an_attempt_that_ran_with_an_older_secret_does_not_hold_the_new_one():
    """a's Job started with Secret version 7; the Secret was then fixed (version 8) and a's attempt
    fails with auth. The refused credentials are no longer the current ones: b must not be held
    CredentialsInvalid waiting for a Secret change that already happened."""
    s = creds_sim()
    s.step(T0)  # a starts with version 7; b waits for the slot
    s.set_secret("creds", "8")
    s.finish("a", A, failed("auth", "HTTP 401"), now=at(5))
    s.step(at(5))
    assert s.target("b")["reason"] != "CredentialsInvalid"
    assert s.adapter_status()["credentials"]["valid"] is True


def test_credentials_invalid_longer_than_the_timeout_dead_letters():
    s = creds_sim(credentialsTimeout="1h")
    s.step(T0)
    s.finish("a", A, failed("auth"), now=at(5))
    plan = s.step(at(5))
    assert plan.wake_at is not None and plan.wake_at <= at(3605)
    s.step(at(3604))
    assert s.target("a")["phase"] == "Queued"
    s.step(at(3605))
    t = s.target("a")
    assert t["phase"] == "Failed" and t["deadLetter"] is True
    assert "credentials" in t["message"]
    assert s.publications["a"]["metadata"]["labels"][DEAD_LETTER_LABEL] == "true"


def probe_sim(**retry) -> Sim:
    """Like creds_sim, but the operator may not read the Secret (the chart's default)."""
    s = Sim()
    s.add_adapter(A, credentialsSecretRef={"name": "creds"}, **({"retryPolicy": retry} if retry else {}))
    s.add_publication("a")
    s.add_publication("b", created=at(1))
    return s


def test_without_secret_access_refused_credentials_are_probed_one_attempt_at_a_time():
    s = probe_sim()
    plan = s.step(T0)
    assert "herald.dev/credentials-version" not in plan.creates[0].manifest["metadata"]["annotations"]
    s.finish("a", A, failed("auth", "HTTP 401 Unauthorized"), now=at(5))
    plan = s.step(at(5))
    creds = s.adapter_status()["credentials"]
    assert creds["valid"] is False and creds["probes"] == 0 and creds["nextProbeTime"] == ts(at(35))
    assert plan.wake_at is not None and plan.wake_at <= at(35)
    assert "next credentials probe at" in s.target("b")["message"]
    assert s.step(at(34)).creates == []  # never early
    plan = s.step(at(35))
    assert names(plan) == [job_name("b", A, 1)]  # one probe: the head of the queue (due since 1 s)
    assert s.target("a")["reason"] == "CredentialsInvalid"
    assert s.adapter_status()["credentials"]["probes"] == 1
    # the probe is refused too: the next one after twice the delay
    s.finish("b", A, failed("auth", "HTTP 401 Unauthorized"), now=at(40))
    s.step(at(40))
    assert s.adapter_status()["credentials"]["nextProbeTime"] == ts(at(100))
    assert s.step(at(99)).creates == []
    assert names(s.step(at(100))) == [job_name("a", A, 2)]
    # the Secret was fixed: the probe publishes, and the queue resumes
    s.finish("a", A, published(), now=at(110))
    plan = s.step(at(110))
    assert s.target("a")["phase"] == "Published"
    assert names(plan) == [job_name("b", A, 2)]
    creds = s.adapter_status()["credentials"]
    assert creds["valid"] is True and not creds.get("probes") and creds.get("nextProbeTime") is None


def test_probe_delays_double_up_to_the_longest():
    s = probe_sim()
    del s.publications["b"]
    s.step(T0)
    s.finish("a", A, failed("auth"), now=at(0))
    s.step(at(0))
    now, delays = 0, []
    for attempt in range(2, 9):
        probe_at = parse_time(s.adapter_status()["credentials"]["nextProbeTime"])
        delays.append(round((probe_at - at(now)).total_seconds()))
        now = round((probe_at - T0).total_seconds())
        assert names(s.step(at(now))) == [job_name("a", A, attempt)]
        s.finish("a", A, failed("auth"), now=at(now))
        s.step(at(now))
    assert delays == [30, 60, 120, 240, 480, 900, 900]


def test_probes_do_not_reset_the_credentials_timeout():
    s = probe_sim(credentialsTimeout="5m")
    del s.publications["b"]
    s.step(T0)
    s.finish("a", A, failed("auth"), now=at(5))
    s.step(at(5))
    for now in (35, 100, 230):  # probes at +30 s, +60 s, +120 s, each refused
        assert len(s.step(at(now)).creates) == 1
        s.finish("a", A, failed("auth"), now=at(now))
        s.step(at(now))
    s.step(at(304))
    assert s.target("a")["phase"] == "Queued"
    s.step(at(305))
    assert s.target("a")["phase"] == "Failed" and s.target("a")["deadLetter"] is True


def test_a_watched_secret_is_not_probed():
    s = creds_sim()
    s.step(T0)
    s.finish("a", A, failed("auth"), now=at(5))
    s.step(at(5))
    assert s.adapter_status()["credentials"].get("nextProbeTime") is None
    assert s.step(at(3600)).creates == []


def test_default_credentials_timeout_is_a_day():
    s = creds_sim()
    s.step(T0)
    s.finish("a", A, failed("auth"), now=at(5))
    s.step(at(5))
    s.step(at(5 + DEFAULT_CREDENTIALS_TIMEOUT - 1))
    assert s.target("a")["phase"] == "Queued"
    s.step(at(5 + DEFAULT_CREDENTIALS_TIMEOUT))
    assert s.target("a")["phase"] == "Failed"


def test_missing_secret_holds_attempts():
    s = creds_sim()
    s.set_secret("creds", None)
    assert s.step(T0).creates == []
    assert s.target("a")["reason"] == "CredentialsInvalid"
    assert "not found" in s.adapter_status()["credentials"]["message"]
    s.set_secret("creds", "9")
    assert len(s.step(at(1)).creates) == 1


def test_a_successful_post_shows_the_credentials_work_again():
    """docs/api.md, PlatformAdapter.status.credentials.valid: "False after an auth failure, until the
    Secret changes or a post succeeds". b's attempt, started before a's auth failure, succeeds."""
    s = Sim()
    s.add_adapter(A, concurrency=2, credentialsSecretRef={"name": "creds"})
    s.set_secret("creds", "7")
    s.add_publication("a")
    s.add_publication("b")
    s.step(T0)
    s.finish("a", A, failed("auth", "HTTP 401"), now=at(5))
    s.step(at(5))
    s.finish("b", A, published(), now=at(6))
    s.step(at(6))
    assert s.target("b")["phase"] == "Published"
    assert s.adapter_status()["credentials"]["valid"] is True
    assert s.target("a")["reason"] != "CredentialsInvalid"


def test_earlier_credentials_wait_does_not_shorten_a_later_one():
    """a waited for credentials once (09:00:05), they were fixed, and a then waited for a free slot.
    Two hours later the credentials are refused again: a must get the full credentialsTimeout (1h)
    from then, not be dead-lettered at once because of its stale waitingSince."""
    s = creds_sim(credentialsTimeout="1h")
    s.step(T0)
    s.finish("a", A, failed("auth", "401"), now=at(5))
    s.step(at(5))
    s.set_secret("creds", "8")
    s.step(at(100))  # b starts (it is older in the queue); a waits for the slot
    assert s.target("a")["reason"] == "ConcurrencyLimit"
    s.finish("b", A, failed("auth", "401"), now=at(7300))
    s.step(at(7300))
    s.step(at(7301))
    assert s.target("a")["phase"] == "Queued", s.target("a")["message"]
    assert s.target("a")["deadLetter"] is False


# -- redrive, suspend -------------------------------------------------------------------------------


def test_redrive_gives_failed_targets_a_fresh_budget_and_leaves_published_ones_alone():
    s = Sim()
    s.add_adapter(A, circuitBreaker={"failureThreshold": 100})
    s.add_adapter("bsky", platform="bluesky")
    s.add_publication("launch", targets=[A, "bsky"])
    s.step(T0)
    s.finish("launch", "bsky", published("bsky-post"), now=at(1))
    _, now = fail_until_dead(s, "launch", "server_error", at(1))
    assert s.status("launch")["phase"] == "PartiallyPublished"
    bsky_before = dict(s.target("launch", "bsky"))
    s.publications["launch"]["metadata"]["annotations"]["herald.dev/redrive"] = "2030-06-01-1"
    now += timedelta(minutes=5)
    plan = s.step(now)
    assert names(plan) == [job_name("launch", A, 7)], "attempt numbers continue upwards"
    assert "Redriven" in reasons(plan)
    t = s.target("launch")
    assert t["deadLetter"] is False and t["failures"] == {}
    assert s.target("launch", "bsky") == bsky_before
    assert DEAD_LETTER_LABEL not in s.publications["launch"]["metadata"]["labels"]
    assert s.status("launch")["observedRedrive"] == "2030-06-01-1"
    # a fresh budget: five more retries
    delays, now = fail_until_dead(s, "launch", "server_error", now)
    assert delays == [1, 2, 4, 8, 16]
    assert s.target("launch")["attempts"] == 12
    # the same annotation value again does nothing
    assert s.step(now + timedelta(minutes=1)).creates == []


def test_redrive_of_a_publication_without_failures_changes_nothing_but_is_recorded():
    s = one_target_sim()
    s.step(T0)
    s.finish("launch", A, published(), now=at(1))
    s.step(at(1))
    s.publications["launch"]["metadata"]["annotations"]["herald.dev/redrive"] = "x"
    plan = s.step(at(2))
    assert plan.creates == []
    assert s.target("launch")["phase"] == "Published"


def test_suspend_deletes_the_running_job_and_cancels():
    s = one_target_sim()
    s.step(T0)
    s.publications["launch"]["spec"]["suspend"] = True
    plan = s.step(at(3))
    assert plan.deletes == [(NS, job_name("launch", A, 1))]
    assert s.target("launch")["phase"] == "Suspended"
    assert s.status("launch")["phase"] == "Suspended"
    assert "AttemptCancelled" in reasons(plan)
    assert s.step(at(60)).creates == []
    # clearing suspend resumes, with a new attempt number
    s.publications["launch"]["spec"]["suspend"] = False
    plan = s.step(at(120))
    assert names(plan) == [job_name("launch", A, 2)]
    assert s.status("launch")["phase"] == "Publishing"


def test_suspended_before_it_starts():
    s = Sim()
    s.add_adapter(A)
    s.add_publication("launch", suspend=True)
    plan = s.step(T0)
    assert plan.creates == []
    assert s.status("launch")["phase"] == "Suspended"
    s.publications["launch"]["spec"]["suspend"] = False
    assert names(s.step(at(1))) == [job_name("launch", A, 1)]


def test_resuming_a_suspended_retry_shows_it_as_retrying():
    """Suspended while waiting for a retry, then resumed before the retry is due: the target is
    Retrying again, and its reason/message say so (not "Suspended")."""
    s = one_target_sim(retryPolicy={"backoff": {"initial": "10m"}})
    s.step(T0)
    s.finish("launch", A, failed("server_error"), now=at(1))
    s.step(at(1))
    assert s.target("launch")["nextAttemptAt"] == ts(at(601))
    s.publications["launch"]["spec"]["suspend"] = True
    s.step(at(2))
    assert s.target("launch")["phase"] == "Suspended"
    s.publications["launch"]["spec"]["suspend"] = False
    s.step(at(3))
    t = s.target("launch")
    assert t["phase"] == "Retrying"
    assert s.status("launch")["phase"] == "Retrying"
    assert t["reason"] != "Suspended", f"a Retrying target that is no longer suspended: {t['reason']}: {t['message']}"
    assert names(s.step(at(601))) == [job_name("launch", A, 2)]


def test_multiple_targets_partially_published():
    s = Sim()
    s.add_adapter(A)
    s.add_adapter("bsky", platform="bluesky")
    s.add_publication("launch", targets=[A, {"adapter": "bsky", "overrides": {"text": "short"}}])
    plan = s.step(T0)
    assert len(plan.creates) == 2
    bsky_payload = next(c for c in plan.creates if c.manifest["metadata"]["annotations"]["herald.dev/target"] == "bsky")
    payload = json.loads(bsky_payload.manifest["spec"]["template"]["metadata"]["annotations"]["herald.dev/payload"])
    assert payload["content"]["text"] == "short"
    s.finish("launch", A, published(), now=at(1))
    s.finish("launch", "bsky", failed("rejected"), now=at(1))
    s.step(at(1))
    st_ = s.status("launch")
    assert st_["phase"] == "PartiallyPublished"
    assert st_["publishedTargets"] == 1 and st_["totalTargets"] == 2
    assert s.publications["launch"]["metadata"]["labels"][DEAD_LETTER_LABEL] == "true"


# -- robustness: one bad adapter result must not stop the operator ----------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        '{"outcome":"failed","errorClass":"rate_limited","retryAfterSeconds":1e12}',
        '{"outcome":"failed","errorClass":"rate_limited","retryAfterSeconds":Infinity}',
        '{"outcome":"failed","errorClass":"rate_limited","retryAfterSeconds":NaN}',
    ],
    ids=["retry-after-1e12s", "retry-after-Infinity", "retry-after-NaN"],
)
def test_absurd_retry_after_does_not_break_reconcile(raw):
    s = one_target_sim()
    s.add_publication("other", created=at(1))
    s.step(T0)
    s.finish("launch", A, raw, now=at(5))
    s.step(at(5))  # must not raise: reconcile covers every publication of every namespace
    t = s.target("launch")
    assert t["lastErrorClass"] == "rate_limited"
    assert t["phase"] in ("Retrying", "Failed")


def test_malformed_rate_limit_in_a_result_does_not_break_reconcile():
    s = one_target_sim()
    s.step(T0)
    s.finish("launch", A, '{"outcome":"failed","errorClass":"server_error","rateLimit":"unknown"}', now=at(5))
    s.step(at(5))
    assert s.target("launch")["lastErrorClass"] == "server_error"


# -- idempotence ------------------------------------------------------------------------------------


def second_pass_changes(s: Sim, now, ignore: tuple[str, ...] = ()) -> list[str]:
    """What reconciling again at the same time, after the previous plan was applied, would change
    (differences at the status paths in ``ignore`` are left out)."""
    plan = s.reconcile(now)
    out = []
    if plan.creates:
        out.append(f"creates {names(plan)}")
    if plan.deletes:
        out.append(f"deletes {plan.deletes}")
    if plan.publication_labels:
        out.append(f"labels {plan.publication_labels}")
    if plan.events:
        out.append(f"events {[(e.reason, e.message) for e in plan.events]}")
    for (_, name), new in plan.publication_status.items():
        old = s.publications[name]["status"]
        diff = [d for d in status_diff(old, merge_patch(old, json.loads(json.dumps(new)))) if not d.startswith(ignore)]
        if diff:
            out.append(f"publication {name} status: {diff}")
    for (_, name), new in plan.adapter_status.items():
        old = s.adapters[name]["status"]
        diff = [d for d in status_diff(old, merge_patch(old, json.loads(json.dumps(new)))) if not d.startswith(ignore)]
        if diff:
            out.append(f"adapter {name} status: {diff}")
    return out


def sc_new_publication():
    s = one_target_sim()
    s.step(T0)
    return s, T0


def sc_running():
    s, _ = sc_new_publication()
    s.step(at(1))
    return s, at(1)


def sc_scheduled():
    s = Sim()
    s.add_adapter(A)
    s.add_publication("launch", publishAt=ts(at(600)))
    s.step(T0)
    return s, T0


def sc_published():
    s, _ = sc_running()
    s.finish("launch", A, published(), now=at(2))
    s.step(at(2))
    return s, at(2)


def sc_retrying():
    s, _ = sc_running()
    s.finish("launch", A, failed("server_error"), now=at(2))
    s.step(at(2))
    return s, at(2)


def sc_retry_started():
    s, _ = sc_retrying()
    s.step(at(3))
    return s, at(3)


def sc_dead_letter():
    s, _ = sc_running()
    s.finish("launch", A, failed("rejected"), now=at(2))
    s.step(at(2))
    return s, at(2)


def sc_rate_limited():
    s = Sim()
    s.add_adapter(A, concurrency=3)
    s.add_publication("a")
    s.step(T0)
    s.add_publication("b", created=at(1))
    s.finish("a", A, failed("rate_limited", retryAfterSeconds=90), now=at(2))
    s.step(at(2))
    return s, at(2)


def sc_auth_waiting():
    s = creds_sim()
    s.step(T0)
    s.finish("a", A, failed("auth"), now=at(2))
    s.step(at(2))
    return s, at(2)


def sc_credentials_fixed():
    s, _ = sc_auth_waiting()
    s.set_secret("creds", "8")
    s.step(at(30))
    return s, at(30)


def sc_auth_failure_with_an_older_secret():
    s = creds_sim()
    s.step(T0)
    s.set_secret("creds", "8")
    s.finish("a", A, failed("auth"), now=at(2))
    s.step(at(2))
    return s, at(2)


def sc_credentials_timeout():
    s = creds_sim(credentialsTimeout="10m")
    s.step(T0)
    s.finish("a", A, failed("auth"), now=at(2))
    s.step(at(2))
    s.step(at(602))
    return s, at(602)


def sc_circuit_open():
    s = Sim()
    s.add_adapter(A, concurrency=10)
    for i in range(5):
        s.add_publication(f"p{i}")
    s.step(T0)
    for i in range(5):
        s.finish(f"p{i}", A, failed("server_error"), now=at(2))
    s.add_publication("late", created=at(1))
    s.step(at(2))
    return s, at(2)


def sc_circuit_probe():
    s, _ = sc_circuit_open()
    s.step(at(122))
    return s, at(122)


def sc_half_open_while_an_old_attempt_runs():
    s = Sim()
    s.add_adapter(A, concurrency=10, circuitBreaker={"failureThreshold": 1})
    s.add_publication("slow")
    s.add_publication("fails", created=at(1))
    s.step(T0)
    s.finish("fails", A, failed("server_error"), now=at(2))
    s.step(at(2))
    s.add_publication("late", created=at(3))
    s.step(at(3))
    # the cooldown ends while "slow" still runs: no probe can start, everyone waits
    s.step(at(122))
    return s, at(122)


def sc_redriven():
    s, _ = sc_dead_letter()
    s.publications["launch"]["metadata"]["annotations"]["herald.dev/redrive"] = "r1"
    s.step(at(10))
    return s, at(10)


def sc_suspended_while_running():
    s, _ = sc_running()
    s.publications["launch"]["spec"]["suspend"] = True
    s.step(at(5))
    return s, at(5)


def sc_job_vanished():
    s, _ = sc_running()
    s.jobs.clear()
    s.step(at(5))
    return s, at(5)


def sc_adopted():
    s = one_target_sim()
    s.step(T0)
    s.publications["launch"]["status"] = {}
    s.step(at(1))
    return s, at(1)


def sc_paused():
    s = one_target_sim(paused=True)
    s.step(T0)
    return s, T0


def sc_concurrency_queue():
    s = Sim()
    s.add_adapter(A, concurrency=1, rateLimit={"limit": 5, "period": "1m"})
    for i in range(3):
        s.add_publication(f"p{i}", created=at(i))
    s.step(at(5))
    s.step(at(6))
    return s, at(6)


SCENARIOS: dict[str, Callable] = {
    f.__name__[3:]: f
    for f in [
        sc_new_publication,
        sc_running,
        sc_scheduled,
        sc_published,
        sc_retrying,
        sc_retry_started,
        sc_dead_letter,
        sc_rate_limited,
        sc_auth_waiting,
        sc_credentials_fixed,
        sc_auth_failure_with_an_older_secret,
        sc_credentials_timeout,
        sc_circuit_open,
        sc_circuit_probe,
        sc_half_open_while_an_old_attempt_runs,
        sc_redriven,
        sc_suspended_while_running,
        sc_job_vanished,
        sc_adopted,
        sc_paused,
        sc_concurrency_queue,
    ]
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_reconciling_again_after_applying_the_plan_changes_nothing(scenario):
    """Level-based and idempotent: once a plan is applied, the same world at the same time asks for
    nothing more (no Jobs, no deletes, no status or label writes, no repeated Events)."""
    s, now = SCENARIOS[scenario]()
    # A plan that deletes a running Job changes the world beyond status: the adapter's running
    # count drops once the deletion is seen. That is not a lack of idempotence.
    ignore = (".queue.running",) if s.plans[-1].deletes else ()
    assert second_pass_changes(s, now, ignore) == []


def test_reconcile_is_deterministic_and_does_not_touch_the_world():
    s, now = sc_circuit_open()
    world = s.world()
    snapshot = json.dumps([s.publications, s.adapters], sort_keys=True, default=str)
    p1, p2 = reconcile(world, now), reconcile(world, now)
    assert names(p1) == names(p2)
    assert json.dumps(p1.publication_status, sort_keys=True) == json.dumps(p2.publication_status, sort_keys=True)
    assert json.dumps(p1.adapter_status, sort_keys=True) == json.dumps(p2.adapter_status, sort_keys=True)
    assert json.dumps([s.publications, s.adapters], sort_keys=True, default=str) == snapshot
    for pub in world.publications.values():
        json.dumps(pub.status)  # still plain data


# -- random histories -------------------------------------------------------------------------------

OUTCOMES = {
    "published": lambda: published(),
    "server_error": lambda: failed("server_error"),
    "network": lambda: failed("network", "connection reset"),
    "rate_limited": lambda: failed("rate_limited", "HTTP 429", retryAfterSeconds=45),
    "auth": lambda: failed("auth", "HTTP 401"),
    "rejected": lambda: failed("rejected", "too long"),
    "unknown_outcome": lambda: failed("unknown_outcome", "read timeout"),
    "no_result": lambda: None,
    "crash": lambda: "segfault",
}
PUBS = {"p0": [A], "p1": [A, "bsky"], "p2": ["bsky"], "p3": [A, "bsky"]}

op_st = st.one_of(
    st.tuples(st.just("tick"), st.sampled_from([0, 1, 5, 30, 90, 200, 1000])),
    st.tuples(
        st.just("finish"),
        st.sampled_from(sorted(PUBS)),
        st.sampled_from([A, "bsky"]),
        st.sampled_from(sorted(OUTCOMES)),
    ),
    st.tuples(st.just("suspend"), st.sampled_from(sorted(PUBS))),
    st.tuples(st.just("redrive"), st.sampled_from(sorted(PUBS))),
    st.tuples(st.just("pause"), st.sampled_from([A, "bsky"])),
    st.tuples(
        st.just("secret"),
    ),
    st.tuples(st.just("vanish"), st.sampled_from(sorted(PUBS)), st.sampled_from([A, "bsky"])),
)


def random_world() -> Sim:
    s = Sim()
    s.add_adapter(
        A,
        concurrency=2,
        rateLimit={"limit": 3, "period": "1m"},
        circuitBreaker={"failureThreshold": 3, "cooldown": "1m"},
    )
    s.add_adapter(
        "bsky",
        platform="bluesky",
        concurrency=1,
        credentialsSecretRef={"name": "creds"},
        retryPolicy={"maxAttempts": 4, "credentialsTimeout": "30m"},
    )
    s.set_secret("creds", "1")
    for i, (name, targets) in enumerate(PUBS.items()):
        kw = {"publishAt": ts(at(100))} if name == "p3" else {}
        s.add_publication(name, targets=targets, created=at(i), priority=i % 2, **kw)
    return s


def running_job(s: Sim, pub: str, target: str):
    uid = s.publications[pub]["metadata"]["uid"]
    for b in s.jobs.values():
        if (
            b["metadata"]["ownerReferences"][0]["uid"] == uid
            and b["metadata"]["annotations"]["herald.dev/target"] == target
            and not b["status"].get("conditions")
        ):
            return b
    return None


def check_invariants(s: Sim, plan, now) -> None:
    # Every Job is for the attempt after the previous one, and at most one runs per target.
    for jc in plan.creates:
        attempt = int(jc.manifest["metadata"]["annotations"]["herald.dev/attempt"])
        assert attempt == jc.previous_attempt + 1
    for pub in PUBS:
        for t in s.status(pub).get("targets") or []:
            uid = s.publications[pub]["metadata"]["uid"]
            jobs = [
                b
                for b in s.jobs.values()
                if b["metadata"]["ownerReferences"][0]["uid"] == uid
                and b["metadata"]["annotations"]["herald.dev/target"] == t["adapter"]
            ]
            active = [b for b in jobs if not b["status"].get("conditions")]
            assert len(active) <= 1, f"{pub}/{t['adapter']} has {len(active)} running Jobs"
            attempts = [int(b["metadata"]["annotations"]["herald.dev/attempt"]) for b in jobs]
            assert t["attempts"] >= max(attempts, default=0)
            if t["phase"] == "Failed":
                assert t["deadLetter"] is True
            if t["phase"] == "Published":
                assert not active
            budget = sum(n for k, n in (t.get("failures") or {}).items() if k not in ("rate_limited", "auth"))
            assert budget <= (6 if t["adapter"] == A else 4)
    # Never more running than the adapter's concurrency; nothing starts through a paused adapter.
    for name, body in s.adapters.items():
        running = [
            b
            for b in s.jobs.values()
            if b["metadata"]["annotations"]["herald.dev/target"] == name and not b["status"].get("conditions")
        ]
        assert len(running) <= body["spec"]["concurrency"]
        if body["spec"].get("paused"):
            assert not [c for c in plan.creates if c.manifest["metadata"]["annotations"]["herald.dev/target"] == name]
    # Reconciling again at the same time asks for no new Job and no delete (unless this plan deleted
    # Jobs: their slots free up once the deletion is seen, which is a change of the world).
    again = s.reconcile(now)
    if not plan.deletes:
        assert again.creates == [] and again.deletes == [], (names(again), again.deletes)


@settings(DETERMINISTIC, max_examples=150)
@given(st.lists(op_st, min_size=1, max_size=25))
def test_random_histories_keep_the_invariants(ops):
    s = random_world()
    now = T0
    plan = s.step(now)
    check_invariants(s, plan, now)
    secret = 1
    for op in ops:
        kind = op[0]
        if kind == "tick":
            now += timedelta(seconds=op[1])
        elif kind == "finish":
            _, pub, target, outcome = op
            if target in PUBS[pub] and running_job(s, pub, target) is not None:
                result = OUTCOMES[outcome]()
                exit_code = 0 if outcome in ("published", "no_result") else 1
                s.finish(pub, target, result, exit_code=exit_code, now=now)
        elif kind == "suspend":
            spec = s.publications[op[1]]["spec"]
            spec["suspend"] = not spec.get("suspend", False)
        elif kind == "redrive":
            s.publications[op[1]]["metadata"]["annotations"]["herald.dev/redrive"] = f"r{len(s.plans)}"
        elif kind == "pause":
            spec = s.adapters[op[1]]["spec"]
            spec["paused"] = not spec.get("paused", False)
        elif kind == "secret":
            secret += 1
            s.set_secret("creds", str(secret))
        elif kind == "vanish":
            job = running_job(s, op[1], op[2])
            if job is not None:
                del s.jobs[job["metadata"]["name"]]
        plan = s.step(now)
        check_invariants(s, plan, now)


# -- progress_only: which status writes the engine may hold back ------------------------------------


def test_a_started_attempt_is_progress_only():
    s = one_target_sim()
    old = json.loads(json.dumps(s.status("launch")))
    plan = s.reconcile(T0)
    assert progress_only(plan.publication_status[(NS, "launch")], old)


def test_a_retry_starting_is_progress_only():
    s, _now = sc_retrying()
    old = json.loads(json.dumps(s.status("launch")))
    plan = s.reconcile(at(3))
    assert len(plan.creates) == 1
    assert progress_only(plan.publication_status[(NS, "launch")], old)


@pytest.mark.parametrize(
    "outcome",
    [published(), failed("server_error"), failed("rejected"), failed("auth")],
    ids=["published", "server_error", "rejected", "auth"],
)
def test_an_outcome_is_never_held_back(outcome):
    s, _now = sc_running()
    old = json.loads(json.dumps(s.status("launch")))
    s.finish("launch", A, outcome, now=at(2))
    plan = s.reconcile(at(2))
    assert not progress_only(plan.publication_status[(NS, "launch")], old)


def test_dead_letter_scheduling_and_redrive_are_not_progress():
    s, _ = sc_dead_letter()
    old = json.loads(json.dumps(s.status("launch")))
    s.publications["launch"]["metadata"]["annotations"]["herald.dev/redrive"] = "r1"
    plan = s.reconcile(at(10))
    assert not progress_only(plan.publication_status[(NS, "launch")], old)
    s, _ = sc_scheduled()
    s.publications["launch"]["spec"]["publishAt"] = ts(at(1200))
    plan = s.reconcile(T0)
    assert not progress_only(plan.publication_status[(NS, "launch")], s.status("launch"))


# -- a big unit is written in bounded slices (Plan.keep_writes) --------------------------------------


def test_a_big_unit_is_written_in_slices_and_every_attempt_still_starts_once():
    s = Sim()
    s.add_adapter(A, concurrency=100)
    for i in range(40):
        s.add_publication(f"p{i:02d}", created=at(i / 100))
    started: list[str] = []
    for tick in range(10):
        plan = s.reconcile(at(1 + tick))
        dropped = plan.keep_writes(16)
        writes = 2 * len(plan.creates) + len(plan.publication_status) + len(plan.publication_labels)
        writes += len([e for e in plan.events if e.kind == "Publication"])
        assert writes <= 16 or len({jc.publication for jc in plan.creates}) == 1
        kept = {jc.publication for jc in plan.creates} | set(plan.publication_status)
        assert not kept & dropped  # nothing of a dropped Publication is written
        s.apply(plan, at(1 + tick))
        started += names(plan)
        if not dropped:
            break
    # Every publication got exactly its first attempt, over several slices, in queue order.
    assert started == [job_name(f"p{i:02d}", A, 1) for i in range(40)]
    assert all(s.target(f"p{i:02d}")["attempts"] == 1 for i in range(40))


@DETERMINISTIC
@given(st.integers(min_value=1, max_value=40), st.integers(min_value=1, max_value=30))
def test_keep_writes_keeps_whole_publications_within_the_budget(count, budget):
    s = Sim()
    s.add_adapter(A, concurrency=100)
    for i in range(count):
        s.add_publication(f"p{i:02d}", created=at(i / 100))
    full = s.reconcile(at(1))
    plan = s.reconcile(at(1))
    dropped = plan.keep_writes(budget)
    everyone = {jc.publication for jc in full.creates} | set(full.publication_status)
    kept = {jc.publication for jc in plan.creates} | set(plan.publication_status)
    assert kept | dropped == everyone and not kept & dropped
    cost = 2 * len(plan.creates) + len(plan.publication_status) + len(plan.events)
    assert cost <= budget or len(kept) == 1
    for e in plan.events:
        assert (e.namespace, e.name) in kept
    assert not plan.attempts or {(a.namespace, a.publication) for a in plan.attempts} <= kept


# -- a decision starts at most start_budget attempts (the rest: postponed, nothing built) -----------


def test_a_start_budget_starts_the_first_admitted_and_postpones_the_rest_untouched():
    s = Sim()
    s.add_adapter(A, concurrency=100)
    for i in range(10):
        s.add_publication(f"p{i:02d}", created=at(i / 100))
    s.add_publication("urgent", created=at(1), priority=50)
    plan = s.reconcile(at(2), start_budget=3)
    # Admission order decides who starts now: priority first, then the oldest.
    assert sorted(names(plan)) == sorted(job_name(n, A, 1) for n in ("urgent", "p00", "p01"))
    assert plan.postponed == {(NS, f"p{i:02d}") for i in range(2, 10)}
    # Nothing is decided for a postponed publication: no status, no Event.
    written = set(plan.publication_status) | {(e.namespace, e.name) for e in plan.events}
    assert not written & plan.postponed
    assert plan.gauges[(NS, A)]["pending"] == 8  # they wait meanwhile: the queue gauge counts them


@DETERMINISTIC
@given(
    st.integers(min_value=1, max_value=30),
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=1, max_value=40),
)
def test_decisions_with_a_start_budget_start_each_attempt_once_and_never_past_concurrency(count, budget, limit):
    s = Sim()
    s.add_adapter(A, concurrency=limit)
    for i in range(count):
        s.add_publication(f"p{i:02d}", created=at(i / 100))
    started: list[str] = []
    for tick in range(count + 2):
        plan = s.reconcile(at(1 + tick), start_budget=budget)
        assert len(plan.creates) <= budget
        plan.drop(plan.postponed)
        s.apply(plan, at(1 + tick))
        started += names(plan)
    # The Jobs never finish here: exactly min(count, limit) first attempts, each once, in order.
    assert started == [job_name(f"p{i:02d}", A, 1) for i in range(min(count, limit))]


# -- whether a status write changes anything: the API drops None entries of a merge patch ------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "a", "Queued"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "phase"]), inner, max_size=3)
    ),
    max_leaves=12,
)
statuses = st.dictionaries(st.sampled_from(["phase", "targets", "conditions", "attempts"]), json_values, max_size=4)


@DETERMINISTIC
@given(statuses, statuses)
def test_changed_is_whether_the_cleaned_values_differ(new, old):
    assert changed(new, old) == any(clean(new.get(k)) != clean(old.get(k)) for k in new)
    # Writing what is stored changes nothing; a None entry changes nothing either.
    assert not changed(old, old)
    assert not changed({**old, "extra": None}, old)


def test_merge_patch_applied_is_never_changed_again():
    old = {"phase": "Queued", "targets": [{"adapter": "a", "message": None, "attempts": 1}]}
    new = merge_patch(old, {"phase": "Publishing"})
    assert changed(new, old) and not changed(new, merge_patch(old, new))


def test_an_outcome_is_written_with_its_adapters_status_or_not_at_all():
    s = Sim()
    s.add_adapter(A, concurrency=10, circuitBreaker={"failureThreshold": 2, "cooldown": "1m"})
    for name in ("f1", "f2", "new"):
        s.add_publication(name, created=at(0))
    s.step(at(1))
    s.finish("f1", A, failed("server_error"), now=at(2))
    s.finish("f2", A, failed("server_error"), now=at(2))
    plan = s.reconcile(at(3))
    assert plan.adapter_effects[(NS, A)] == {(NS, "f1"), (NS, "f2")}
    assert plan.keep_writes(1) == set()  # outcomes are never cut by the budget
    plan = s.reconcile(at(3))
    assert plan.drop({(NS, "f1")}) == {(NS, "f1"), (NS, "f2")}  # the other outcome goes with it
    assert (NS, A) not in plan.adapter_status
    assert not [e for e in plan.events if e.kind == "PlatformAdapter"]

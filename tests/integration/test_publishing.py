"""The operator core against a real cluster: one Job per attempt, schedule, queue, suspend, status."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.herald import PUBLISHED, JobRecorder, condition, fate, result, target
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_publish_now_runs_one_job_and_records_the_post(herald, operator):
    herald.adapter(
        "mastodon",
        annotations={**PUBLISHED, "team": "news"},
        jobTemplate={"podAnnotations": {**PUBLISHED, "team": "news"}, "podLabels": {"tier": "social"}},
    )
    herald.publication("hello", ["mastodon"], text="Hello world", content={"text": "Hello world", "tags": ["launch"]})
    pub = herald.wait_phase("hello", "Published")
    t = target(pub, "mastodon")
    assert (t["attempts"], t["retries"], t["postId"], t["url"]) == (1, 0, "1", "https://example.social/@h/1")
    assert condition(pub, "Published")["status"] == "True"
    assert pub["status"]["publishedTargets"] == 1 and pub["status"]["totalTargets"] == 1

    [job] = herald.jobs("hello")
    assert job.metadata.name == t["jobName"]
    assert job.spec.backoff_limit == 0
    owner = job.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("Publication", "hello", pub["metadata"]["uid"])
    pod_meta = job.spec.template.metadata
    assert pod_meta.annotations["herald.dev/attempt"] == "1"
    assert pod_meta.annotations["team"] == "news"
    assert pod_meta.labels["herald.dev/publication"] == "hello"
    assert pod_meta.labels["herald.dev/adapter"] == "mastodon"
    assert pod_meta.labels["tier"] == "social"
    payload = json.loads(pod_meta.annotations["herald.dev/payload"])
    assert payload["content"] == {"text": "Hello world", "tags": ["launch"]}
    env = {e.name: e.value for e in job.spec.template.spec.containers[0].env}
    assert env["HERALD_ATTEMPT"] == "1" and env["HERALD_MODE"] == "publish" and len(env["HERALD_IDEMPOTENCY_KEY"]) == 32

    reasons = [e.reason for e in herald.events("hello")]
    assert "AttemptStarted" in reasons and "AttemptSucceeded" in reasons


def test_target_overrides_reach_the_adapter(herald, operator):
    herald.adapter("discord", platform="discord")
    herald.publication(
        "ov",
        [{"adapter": "discord", "overrides": {"text": "short", "tags": ["x"]}}],
        content={"text": "long text", "title": "T", "tags": ["a", "b"]},
    )
    herald.wait_phase("ov", "Published")
    [job] = herald.jobs("ov")
    payload = json.loads(job.spec.template.metadata.annotations["herald.dev/payload"])
    assert payload["content"] == {"text": "short", "title": "T", "tags": ["x"]}


def test_scheduled_publication_starts_within_a_second_of_publish_at(herald, operator, api, namespace):
    herald.adapter("mastodon")
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    jobs = JobRecorder(api, namespace)
    try:
        herald.publication("later", ["mastodon"], publishAt=_iso(at))
        pub = herald.wait_phase("later", "Scheduled", timeout=10)
        assert condition(pub, "Scheduled")["status"] == "True"
        assert herald.jobs("later") == []
        jobs.wait_count(1, timeout=15)
        [name] = jobs.added
        delay = jobs.added[name] - at.timestamp()
        assert 0 <= delay <= 1.0, f"job created {delay:.3f}s after publishAt"
        herald.wait_phase("later", "Published")
    finally:
        jobs.stop()


def test_queue_respects_concurrency_and_priority(herald, operator, api, namespace):
    herald.adapter("slow", annotations={**PUBLISHED, **fate(duration="2s")}, concurrency=1)
    jobs = JobRecorder(api, namespace)
    try:
        herald.publication("first", ["slow"])
        jobs.wait_count(1)
        # While "first" runs, three more arrive; the highest priority goes next.
        herald.publication("low", ["slow"], priority=-5)
        herald.publication("normal", ["slow"])
        herald.publication("urgent", ["slow"], priority=10)
        pub = herald.wait_phase("low", "Queued")
        assert target(pub, "slow")["reason"] == "ConcurrencyLimit"
        for name in ("first", "urgent", "normal", "low"):
            herald.wait_phase(name, "Published", timeout=40)
        order = [n.split("-slow-")[0] for n in sorted(jobs.added, key=jobs.added.get)]
        assert order == ["first", "urgent", "normal", "low"]
        # Never two at once: each job starts after the previous one finished.
        names = sorted(jobs.added, key=jobs.added.get)
        for prev, nxt in itertools.pairwise(names):
            assert jobs.added[nxt] >= jobs.finished[prev]
    finally:
        jobs.stop()


def test_adapter_status_shows_the_queue(herald, operator):
    herald.adapter("busy", annotations={**PUBLISHED, **fate(duration="60s")}, concurrency=1)
    for i in range(4):
        herald.publication(f"q{i}", ["busy"])
    # Queue counts alone are written at most every 10s (docs/performance.md), so allow for that.
    adapter = herald.wait_adapter(
        "busy",
        lambda a: (a.get("status") or {}).get("queue") == {"pending": 3, "running": 1},
        timeout=25,
        what="queue pending=3 running=1",
    )
    assert adapter["status"]["circuit"]["state"] == "Closed"


def test_rate_limit_caps_attempts_per_period(herald, operator, api, namespace):
    herald.adapter("limited", rateLimit={"limit": 2, "period": "4s"}, concurrency=10)
    jobs = JobRecorder(api, namespace)
    try:
        for i in range(4):
            herald.publication(f"p{i}", ["limited"])
        jobs.wait_count(2)

        def waiting():
            return [
                p
                for p in (f"p{i}" for i in range(4))
                if target(herald.get_publication(p), "limited").get("reason") == "RateLimitWindow"
            ]

        wait_until(lambda: len(waiting()) == 2, timeout=10, what="two publications waiting for the rate limit window")
        assert len(jobs.added) == 2
        for i in range(4):
            herald.wait_phase(f"p{i}", "Published", timeout=20)
        starts = sorted(jobs.added.values())
        assert starts[2] - starts[0] >= 3.5, "the third attempt started inside the first window"
    finally:
        jobs.stop()


def test_suspend_cancels_the_running_job_and_resume_publishes(herald, operator):
    herald.adapter("mastodon", annotations={**PUBLISHED, **fate(duration="60s")})
    herald.publication("s", ["mastodon"])
    herald.wait_phase("s", "Publishing")
    herald.patch_publication("s", {"spec": {"suspend": True}})
    pub = herald.wait_phase("s", "Suspended")
    assert target(pub, "mastodon")["phase"] == "Suspended"
    wait_until(
        lambda: all(j.metadata.deletion_timestamp for j in herald.jobs("s")) or not herald.jobs("s"),
        timeout=20,
        what="the running Job deleted",
    )
    # The next attempt runs quickly (merge patch: null removes the duration).
    herald.patch_adapter("mastodon", {"jobTemplate": {"podAnnotations": {"kwok.herald.dev/duration": None}}})
    herald.patch_publication("s", {"spec": {"suspend": False}})
    pub = herald.wait_phase("s", "Published")
    assert target(pub, "mastodon")["attempts"] == 2


def test_paused_adapter_starts_nothing_until_unpaused(herald, operator):
    herald.adapter("mastodon", paused=True)
    herald.publication("p", ["mastodon"])
    pub = herald.wait_publication(
        "p", lambda p: target(p, "mastodon").get("reason") == "AdapterPaused", what="waiting on the paused adapter"
    )
    assert pub["status"]["phase"] == "Queued"
    assert herald.jobs("p") == []
    herald.patch_adapter("mastodon", {"paused": False})
    herald.wait_phase("p", "Published")


def test_one_failed_target_of_several_gives_partially_published(herald, operator):
    herald.adapter("mastodon")
    herald.adapter("bluesky", platform="bluesky")
    herald.adapter(
        "strict",
        platform="webhook",
        annotations=fate(result("failed", errorClass="rejected", message="HTTP 422: text too long"), exit_code=1),
    )
    herald.publication("multi", ["mastodon", "bluesky", "strict"])
    pub = herald.wait_phase("multi", "PartiallyPublished")
    assert pub["status"]["publishedTargets"] == 2
    strict = target(pub, "strict")
    assert (strict["phase"], strict["lastErrorClass"], strict["attempts"]) == ("Failed", "rejected", 1)
    assert "HTTP 422" in strict["lastError"]
    assert condition(pub, "Failed")["status"] == "True"
    herald.wait_publication(
        "multi",
        lambda p: p["metadata"].get("labels", {}).get("herald.dev/dead-letter") == "true",
        what="the dead-letter label",
    )


def test_sigkill_while_jobs_run_and_others_queue_loses_nothing(herald, operator, api, namespace):
    herald.adapter("mastodon", annotations={**PUBLISHED, **fate(duration="2s")}, concurrency=2)
    names = [f"k{i}" for i in range(8)]
    for n in names:
        herald.publication(n, ["mastodon"])
    wait_until(lambda: len(herald.jobs()) >= 2, timeout=20, what="two running jobs")
    operator.kill()
    operator.start()
    for n in names:
        pub = herald.wait_phase(n, "Published", timeout=60)
        assert target(pub, "mastodon")["attempts"] == 1
    per_attempt: dict[tuple, int] = {}
    for job in herald.jobs():
        key = (job.metadata.labels["herald.dev/publication"], job.metadata.annotations["herald.dev/attempt"])
        per_attempt[key] = per_attempt.get(key, 0) + 1
    assert per_attempt == {(n, "1"): 1 for n in names}


def test_job_deleted_by_hand_is_retried_in_verify_mode(herald, operator):
    herald.adapter("mastodon", annotations={**PUBLISHED, **fate(duration="60s")})
    herald.publication("d", ["mastodon"])
    herald.wait_phase("d", "Publishing")
    [job] = herald.jobs("d")
    herald.batch.delete_namespaced_job(job.metadata.name, herald.namespace, propagation_policy="Background")
    pub = herald.wait_publication("d", lambda p: target(p, "mastodon")["attempts"] == 2, what="attempt 2")
    t = target(pub, "mastodon")
    assert t["lastErrorClass"] == "unknown_outcome"
    jobs = wait_until(
        lambda: [j for j in herald.jobs("d") if j.metadata.annotations["herald.dev/attempt"] == "2"],
        timeout=20,
        what="attempt 2's Job",
    )
    assert jobs[0].metadata.annotations["herald.dev/mode"] == "verify"

"""read_outcome: an attempt's outcome from its Job and pod, per the contract's table."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.errors import ErrorClass
from herald.results import read_outcome
from herald.views import JobView, PodView

from .builders import DETERMINISTIC, at, failed, job_body, pod_body, published, termination

JOB = "launch-mastodon-main-abcdef-1"


def job(**kw) -> JobView:
    return JobView.from_body(job_body(JOB, **kw))


def pod(**kw) -> PodView:
    return PodView.from_body(pod_body(JOB, **kw))


def finished(result, exit_code=None, reason=None, job_failed=None):
    if exit_code is None:
        exit_code = 0 if isinstance(result, dict) and result.get("outcome") == "published" else 1
    ok = exit_code == 0
    j = job(complete=ok, failed=not ok, failed_reason="" if ok else (job_failed or "BackoffLimitExceeded"))
    p = pod(
        phase="Succeeded" if ok else "Failed",
        terminated=termination(result, exit_code, reason=reason, started=at(1), finished=at(3)),
    )
    return read_outcome(j, [p])


def test_exit_0_with_a_published_result():
    o = finished(published(responseSeconds=0.231, rateLimit={"remaining": 299, "resetAt": "2030-06-01T10:00:00Z"}))
    assert o.published is True
    assert o.error_class is None
    assert o.post_id == "109876"
    assert o.url == "https://mastodon.example/@herald/109876"
    assert o.no_result is False
    assert o.response_seconds == pytest.approx(0.231)
    assert o.rate_limit_remaining == 299
    assert o.rate_limit_reset_at == at(3600)
    assert (o.started, o.finished) == (at(1), at(3))


def test_verified_post_from_verify_mode():
    o = finished(published(verified=True))
    assert o.published and o.verified


def test_numeric_post_ids_become_strings():
    o = finished({"outcome": "published", "postId": 12345})
    assert o.post_id == "12345"


@pytest.mark.parametrize(
    "message", [None, "", "not json", "{", "[1,2]", '"published"', '{"outcome": "maybe"}', '{"postId": "1"}']
)
def test_exit_0_without_a_readable_result_is_published_without_a_post_id(message):
    o = finished(message, exit_code=0)
    assert o.published is True
    assert o.no_result is True
    assert o.post_id is None


@pytest.mark.parametrize("cls", ["rate_limited", "network", "server_error", "unknown_outcome", "auth", "rejected"])
def test_non_zero_with_a_failed_result_is_its_class(cls):
    o = finished(failed(cls, "boom"))
    assert o.published is False
    assert o.error_class is ErrorClass(cls)
    assert o.message == "boom"


@pytest.mark.parametrize("cls", [None, "", "teapot", 42, "pod_failure", "SERVER_ERROR"])
def test_missing_or_unknown_class_is_unknown_outcome(cls):
    result = {"outcome": "failed", "message": "?"}
    if cls is not None:
        result["errorClass"] = cls
    o = finished(result)
    assert o.published is False
    assert o.error_class is ErrorClass.UNKNOWN_OUTCOME


def test_retry_after_and_rate_limit_headers_are_read():
    o = finished(
        failed(
            "rate_limited",
            "HTTP 429",
            retryAfterSeconds=120,
            rateLimit={"remaining": 0, "resetAt": "2030-06-01T09:05:00Z"},
        )
    )
    assert o.error_class is ErrorClass.RATE_LIMITED
    assert o.retry_after == 120
    assert o.rate_limit_remaining == 0
    assert o.rate_limit_reset_at == at(300)


@pytest.mark.parametrize("ra", ["soon", None, [], {}])
def test_unreadable_retry_after_is_ignored(ra):
    o = finished(failed("rate_limited", retryAfterSeconds=ra))
    assert o.error_class is ErrorClass.RATE_LIMITED and o.retry_after is None


@pytest.mark.parametrize(
    "rate_limit", ["soon", [1, 2], 5, {"remaining": "3"}, {"resetAt": "never"}, {"resetAt": 5}, {"remaining": None}]
)
def test_malformed_rate_limit_does_not_break_reading_the_outcome(rate_limit):
    """A custom adapter writing a wrong shape must not make Herald unable to read the attempt
    (reconcile runs over the whole namespace: an exception here stops every publication)."""
    o = finished(failed("server_error", rateLimit=rate_limit))
    assert o.error_class is ErrorClass.SERVER_ERROR


def test_huge_remaining_count_does_not_break_reading_the_outcome():
    o = finished('{"outcome":"failed","errorClass":"server_error","rateLimit":{"remaining":1e400}}')
    assert o.error_class is ErrorClass.SERVER_ERROR


@pytest.mark.parametrize("exit_code", [1, 2, 255])
@pytest.mark.parametrize("message", [None, "", "Traceback (most recent call last): ...", '{"outcome": "maybe"}'])
def test_non_zero_without_a_result_is_a_pod_failure(exit_code, message):
    o = finished(message, exit_code=exit_code)
    assert o.published is False
    assert o.error_class is ErrorClass.POD_FAILURE
    assert f"exit code {exit_code}" in o.message


def test_oom_killed_is_a_pod_failure():
    o = finished(None, exit_code=137, reason="OOMKilled")
    assert o.error_class is ErrorClass.POD_FAILURE
    assert "OOMKilled" in o.message


def test_job_deadline_exceeded_with_no_pod_is_a_pod_failure():
    o = read_outcome(job(failed=True, failed_reason="DeadlineExceeded"), [])
    assert o.published is False
    assert o.error_class is ErrorClass.POD_FAILURE
    assert "DeadlineExceeded" in o.message


def test_evicted_pod_is_a_pod_failure():
    p = pod(phase="Failed", reason="Evicted", message="The node was low on resource: memory.")
    o = read_outcome(job(), [p])
    assert o.error_class is ErrorClass.POD_FAILURE
    assert "Evicted" in o.message and "low on resource" in o.message


@pytest.mark.parametrize(
    "reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError"]
)
def test_a_pod_that_cannot_start_is_a_pod_failure_and_its_job_is_stopped(reason):
    p = pod(phase="Pending", waiting={"reason": reason, "message": "pull access denied for example/adapter"})
    o = read_outcome(job(), [p])
    assert o is not None
    assert o.error_class is ErrorClass.POD_FAILURE
    assert o.stop_job is True
    assert reason in o.message


def test_still_pulling_or_running_is_no_outcome_yet():
    assert read_outcome(job(), []) is None
    assert read_outcome(job(), [pod(phase="Pending", waiting={"reason": "ContainerCreating"})]) is None
    assert read_outcome(job(), [pod(phase="Running")]) is None


def test_terminated_container_of_a_running_pod_waits_for_the_pod_or_job():
    # the container wrote its result, but neither the pod nor the Job has finished yet
    p = pod(phase="Running", terminated=termination(published(), 0))
    assert read_outcome(job(), [p]) is None
    # once the pod has succeeded the result counts, even if the Job has not caught up
    p = pod(phase="Succeeded", terminated=termination(published(), 0))
    assert read_outcome(job(), [p]).published is True


def test_complete_job_whose_pod_is_gone_counts_as_published_without_result():
    o = read_outcome(job(complete=True), [])
    assert o.published is True and o.no_result is True


def test_the_newest_pod_decides():
    old = pod_body(JOB, name="old", phase="Failed", terminated=termination(None, 1), rv=5)
    new = pod_body(JOB, name="new", phase="Succeeded", terminated=termination(published("new-post"), 0), rv=12)
    # resourceVersions compared as numbers: 12 is newer than 5 (and "12" < "5" as text)
    o = read_outcome(job(complete=True), [PodView.from_body(new), PodView.from_body(old)])
    assert o.post_id == "new-post"


def test_only_the_adapter_container_is_read():
    body = pod_body(JOB, phase="Succeeded", terminated=termination(failed("auth"), 1), container="sidecar")
    p = PodView.from_body(body)
    assert p.terminated is None


@pytest.mark.parametrize(
    "secret_text, secret",
    [
        ("401 for Authorization: Bearer abc.def-ghi_jkl", "abc.def-ghi_jkl"),
        (
            "POST https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage failed",
            "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        ),
        ("webhook https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX returned 404", "XXXXXXXXXXXXXXXX"),
        ("password=hunter2 rejected", "hunter2"),
    ],
)
def test_secrets_in_result_messages_are_redacted(secret_text, secret):
    o = finished(failed("auth", secret_text))
    assert secret not in o.message
    assert "[REDACTED]" in o.message


def test_secrets_in_pod_messages_are_redacted():
    p = pod(
        phase="Pending",
        waiting={"reason": "ErrImagePull", "message": "pull https://user:s3cretpw@registry.example/img failed"},
    )
    o = read_outcome(job(), [p])
    assert "s3cretpw" not in o.message
    p = pod(phase="Failed", reason="Evicted", message="token=abcdef123456 leaked")
    assert "abcdef123456" not in read_outcome(job(), [p]).message


def test_long_messages_are_shortened():
    o = finished(failed("server_error", "x" * 10_000))
    assert len(o.message) <= 1024


any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["remaining", "resetAt", "x"]), inner, max_size=3)
    ),
    max_leaves=6,
)
result_like = st.fixed_dictionaries(
    {"outcome": st.sampled_from(["published", "failed"])},
    optional=dict.fromkeys(
        ["errorClass", "retryAfterSeconds", "postId", "url", "rateLimit", "message", "verified", "responseSeconds"],
        any_json,
    ),
).map(json.dumps)


@DETERMINISTIC
@given(st.one_of(st.none(), st.text(max_size=200), result_like), st.sampled_from([0, 1, 2, 137]))
def test_any_termination_message_gives_an_outcome(message, exit_code):
    """Whatever an adapter writes, a finished attempt has an outcome, and it never raises."""
    o = finished(message, exit_code=exit_code)
    assert o is not None
    assert o.published or o.error_class is not None
    if exit_code != 0 and not o.published:
        assert isinstance(o.error_class, ErrorClass)

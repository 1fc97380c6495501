"""One bad object, or one bad adapter result, affects only itself: it gets a Stalled condition
naming the field and one Warning Event, while every other Publication keeps its pace."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.durations import format_time
from herald.naming import job_name
from herald.reconciler import reconcile

from .builders import DETERMINISTIC, T0, Sim, at, condition_of, failed, published

A = "mastodon-main"

POISON_PUBLISH_AT = [
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2030-06-01t09:00:00z",
    "2030-06-01T09:00:00+25:00",
]


def sim_with_control() -> Sim:
    s = Sim()
    s.add_adapter(A, concurrency=10)
    s.add_publication("control")
    return s


def created(plan) -> list[str]:
    return [c.manifest["metadata"]["name"] for c in plan.creates]


def stalled(s: Sim, name: str) -> dict[str, Any]:
    return condition_of(s.status(name), "Stalled")


@pytest.mark.parametrize("publish_at", POISON_PUBLISH_AT)
def test_an_unusable_publish_at_stalls_only_its_publication(publish_at):
    s = sim_with_control()
    s.add_publication("poison", publishAt=publish_at)
    plan = s.step(T0)
    assert created(plan) == [job_name("control", A, 1)]
    c = stalled(s, "poison")
    assert c["status"] == "True" and c["reason"] == "InvalidSpec"
    assert c["message"].startswith("spec.publishAt: ")
    warnings = [e for e in plan.events if e.name == "poison"]
    assert [(e.type, e.reason) for e in warnings] == [("Warning", "InvalidSpec")]
    # Deciding again changes nothing and posts no second Event.
    again = s.step(at(1))
    assert [e for e in again.events if e.name == "poison"] == []
    assert (s.ns, "poison") not in again.publication_status


@pytest.mark.parametrize(
    "where,spec",
    [
        ("spec.retryPolicy.rateLimited.minDelay", {"retryPolicy": {"rateLimited": {"minDelay": "99999999h"}}}),
        ("spec.retryPolicy.credentialsTimeout", {"retryPolicy": {"credentialsTimeout": "99999999h"}}),
        ("spec.retryPolicy.backoff.factor", {"retryPolicy": {"backoff": {"factor": float("nan")}}}),
        ("spec.priority", {"priority": "high"}),
    ],
)
def test_overflowing_or_malformed_spec_fields_are_named(where, spec):
    s = sim_with_control()
    s.add_publication("poison", **spec)
    plan = s.step(T0)
    assert created(plan) == [job_name("control", A, 1)]
    assert stalled(s, "poison")["message"].startswith(where)


def test_fixing_the_spec_clears_stalled_and_publishes():
    s = sim_with_control()
    s.add_publication("poison", publishAt="2030-06-01t09:00:00z")
    s.step(T0)
    s.publications["poison"]["spec"]["publishAt"] = "2030-06-01T09:00:00Z"
    s.publications["poison"]["metadata"]["generation"] = 2
    plan = s.step(at(1))
    assert job_name("poison", A, 1) in created(plan)
    c = stalled(s, "poison")
    assert c["status"] == "False" and c["observedGeneration"] == 2


def test_an_invalid_adapter_holds_only_its_own_targets_and_says_why():
    s = sim_with_control()
    s.add_adapter("broken", circuitBreaker={"cooldown": "99999999h"})
    s.add_publication("to-broken", targets=["broken"])
    plan = s.step(T0)
    assert created(plan) == [job_name("control", A, 1)]
    t = s.target("to-broken", "broken")
    assert t["phase"] == "Queued" and t["reason"] == "AdapterInvalid"
    assert "spec.circuitBreaker.cooldown" in t["message"]
    c = condition_of(s.adapter_status("broken"), "Stalled")
    assert c["status"] == "True" and c["reason"] == "InvalidSpec"
    adapter_events = [e for e in plan.events if e.kind == "PlatformAdapter"]
    assert [(e.name, e.reason) for e in adapter_events] == [("broken", "InvalidSpec")]
    assert [e for e in s.step(at(1)).events if e.kind == "PlatformAdapter"] == []


def test_a_failure_under_an_invalid_adapter_still_follows_the_publications_policy():
    s = Sim()
    s.add_adapter(A)
    s.add_publication("launch")
    s.step(T0)
    s.adapters[A]["spec"]["retryPolicy"] = {"backoff": {"max": "99999999h"}}
    s.finish("launch", A, failed("server_error"), now=at(3))
    s.step(at(3))
    assert s.target("launch")["phase"] == "Retrying"


# -- adapter results ------------------------------------------------------------------------------


def finish_with(s: Sim, message: str, exit_code: int = 1) -> None:
    s.finish("control", A, message, exit_code=exit_code, now=at(2))


@pytest.mark.parametrize(
    "message",
    [
        "[" * 2000 + "]" * 2000,
        '{"outcome": "failed", "x": ' + "[" * 2000 + "]" * 2000 + "}",
        '{"outcome": "failed", "errorClass": "server_error"' + " " * 70000 + "}",
        "\x00\xff not json",
    ],
)
def test_results_that_are_not_results_are_a_pod_failure(message):
    s = sim_with_control()
    s.step(T0)
    finish_with(s, message)
    s.step(at(2))
    t = s.target("control")
    assert t["phase"] == "Retrying" and t["lastErrorClass"] == "pod_failure"


@pytest.mark.parametrize("reset_at", ["0001-01-01T00:00:00+01:00", "0999-01-01T00:00:00Z", "soon", 7])
def test_a_reset_time_the_api_server_cannot_store_is_dropped(reset_at):
    s = sim_with_control()
    s.step(T0)
    s.finish("control", A, published(rateLimit={"remaining": 3, "resetAt": reset_at}), now=at(2))
    s.step(at(2))
    rl = s.adapter_status()["rateLimit"]
    assert rl["remaining"] == 3
    assert rl.get("resetAt") in (None, "0999-01-01T00:00:00Z")


def test_a_long_redrive_annotation_is_recorded_by_digest_within_the_status_limit():
    s = Sim()
    s.add_adapter(A)
    s.add_publication("launch")
    s.step(T0)
    s.finish("launch", A, failed("rejected"), now=at(1))
    s.step(at(1))
    assert s.target("launch")["phase"] == "Failed"
    s.publications["launch"]["metadata"]["annotations"]["herald.dev/redrive"] = "r" * 2048
    plan = s.step(at(2))
    observed = s.status("launch")["observedRedrive"]
    assert observed.startswith("sha256:") and len(observed) <= 1024
    assert created(plan) == [job_name("launch", A, 2)]
    assert created(s.step(at(3))) == []  # acted on once


def test_a_damaged_stored_status_is_read_as_what_it_can_be():
    s = sim_with_control()
    s.add_publication(
        "damaged",
        status={
            "targets": [
                {
                    "adapter": A,
                    "phase": "Exploded",
                    "attempts": "many",
                    "failures": {"auth": -3, "x": 1},
                    "nextAttemptAt": "yesterday",
                    "verifyNext": "yes",
                }
            ],
            "conditions": ["not a condition", {"type": "Published"}],
        },
    )
    plan = s.step(T0)
    assert sorted(created(plan)) == sorted([job_name("control", A, 1), job_name("damaged", A, 1)])


# -- a refused Job create is a failed attempt -------------------------------------------------------


def test_a_job_the_api_server_refuses_is_dead_lettered_with_its_message_and_no_started_event():
    s = Sim()
    s.add_adapter(A)
    s.add_publication("launch")
    s.refuse[job_name("launch", A, 1)] = 'Job.batch "x" is invalid: metadata.labels: Invalid value'
    s.step(T0)
    assert s.target("launch")["reason"] == "JobRefused"
    s.step(at(1))
    t = s.target("launch")
    assert t["phase"] == "Failed" and t["deadLetter"] is True
    assert t["lastErrorClass"] == "invalid_spec" and t["attempts"] == 1
    assert "metadata.labels: Invalid value" in t["lastError"]
    reasons = [e.reason for e in s.events]
    assert "AttemptStarted" not in reasons
    assert reasons.count("DeadLetter") == 1
    assert s.jobs == {}


# -- properties -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
spec_fields = st.fixed_dictionaries(
    {},
    optional={
        "publishAt": st.one_of(st.text(max_size=40), st.sampled_from(POISON_PUBLISH_AT), json_values),
        "priority": json_values,
        "suspend": json_values,
        "retryPolicy": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "maxAttempts": json_values,
                    "credentialsTimeout": json_values,
                    "backoff": st.fixed_dictionaries(
                        {},
                        optional={
                            "initial": json_values,
                            "factor": json_values,
                            "max": json_values,
                            "jitter": json_values,
                        },
                    ),
                    "rateLimited": st.fixed_dictionaries({}, optional={"minDelay": json_values}),
                    "unknownOutcome": st.fixed_dictionaries({}, optional={"policy": json_values}),
                },
            ),
        ),
        "targets": st.one_of(
            json_values, st.lists(st.fixed_dictionaries({"adapter": st.sampled_from([A, "x", ""])}), max_size=3)
        ),
        "ttlSecondsAfterFinished": json_values,
        "content": json_values,
    },
)


@DETERMINISTIC
@given(spec_fields, json_values)
def test_any_publication_spec_or_status_leaves_the_control_publishing(spec, status):
    """Whatever a Publication holds (from a looser CRD, an edit, a bug), deciding it never raises,
    and the control Publication's first attempt starts in the same decision."""
    s = sim_with_control()
    body = s.add_publication("fuzz")
    body["spec"] = {**body["spec"], **spec}
    body["status"] = status if isinstance(status, dict) else {"targets": status}
    plan = reconcile(s.world(), T0)
    assert job_name("control", A, 1) in created(plan)
    for st_ in plan.publication_status.values():
        json.dumps(st_, allow_nan=False)  # every status is valid JSON the API server accepts
        for c in st_.get("conditions") or []:
            assert len(c["message"]) <= 32768 and len(c["reason"]) <= 1024


@DETERMINISTIC
@given(
    st.one_of(
        json_values,
        st.text(max_size=200),
        st.fixed_dictionaries(
            {"outcome": st.sampled_from(["published", "failed"])},
            optional={
                "errorClass": json_values,
                "message": json_values,
                "retryAfterSeconds": json_values,
                "postId": json_values,
                "url": json_values,
                "responseSeconds": json_values,
                "rateLimit": st.fixed_dictionaries({}, optional={"remaining": json_values, "resetAt": json_values}),
            },
        ),
    ),
    st.integers(min_value=0, max_value=255),
)
def test_any_adapter_result_is_a_decision_for_its_target_only(result, exit_code):
    """Whatever an adapter writes as its result: the target gets a decision (published, retry or dead
    letter), the statuses are valid JSON with RFC 3339 times, and the other publication is unaffected."""
    s = sim_with_control()
    s.add_publication("other", targets=[A])
    s.step(T0)
    message = result if isinstance(result, str) else json.dumps(result)
    s.finish("control", A, message, exit_code=exit_code, now=at(2))
    plan = s.step(at(2))
    assert s.target("control")["phase"] in ("Published", "Retrying", "Failed", "Queued")
    assert s.target("other")["phase"] == "Publishing"
    for st_ in list(plan.publication_status.values()) + list(plan.adapter_status.values()):
        json.dumps(st_, allow_nan=False)
    rl = s.adapter_status().get("rateLimit") or {}
    for key in ("resetAt", "blockedUntil"):
        if rl.get(key):
            assert len(rl[key]) >= 20 and rl[key][4] == "-"
    assert format_time(T0)  # the clock itself is fine


def test_a_stalled_status_is_written_at_once_never_held_as_progress():
    """Only a status that records a started attempt may wait to be merged with its outcome; a
    Stalled condition on a Publication with no status yet is news the user needs now."""
    from herald.reconciler import progress_only

    s = sim_with_control()
    s.add_publication("poison", publishAt="2030-06-01t09:00:00z")
    plan = reconcile(s.world(), T0)
    new = plan.publication_status[(s.ns, "poison")]
    assert progress_only(new, {}) is False
    started = plan.publication_status[(s.ns, "control")]
    assert progress_only(started, {}) is True


def test_statuses_stay_within_the_crd_limits_whatever_the_adapters_say():
    """64 targets failing with long messages: the Retrying condition joins them all, and is clipped
    to 32768 characters rather than refused by the API server."""
    s = Sim()
    names = [f"a{i}" for i in range(64)]
    for n in names:
        s.add_adapter(n, circuitBreaker={"failureThreshold": 100})
    s.add_publication("wide", targets=names)
    s.step(T0)
    for n in names:
        s.finish("wide", n, failed("server_error", message="x" * 5000), now=at(1))
    plan = s.step(at(1))
    status = plan.publication_status[(s.ns, "wide")]
    assert all(len(c["message"]) <= 32768 for c in status["conditions"])
    assert condition_of(s.status("wide"), "Retrying")["message"].endswith("…")
    assert all(len(t["lastError"]) <= 32768 and len(t["message"]) <= 32768 for t in status["targets"])


def test_a_destination_the_bot_cannot_reach_fails_only_that_target():
    """destination_forbidden: the target is dead-lettered with what to do; the adapter is neither
    paused (its credentials are fine) nor does its circuit count the failure."""
    s = Sim()
    s.add_adapter(A, concurrency=5, circuitBreaker={"failureThreshold": 1})
    s.add_publication("to-private-channel")
    s.add_publication("elsewhere")
    s.step(T0)
    s.finish("to-private-channel", A, failed("destination_forbidden", message="not_in_channel"), now=at(1))
    plan = s.step(at(1))
    t = s.target("to-private-channel")
    assert (t["phase"], t["deadLetter"], t["lastErrorClass"]) == ("Failed", True, "destination_forbidden")
    assert "invite the bot" in t["message"]
    dead = [e for e in plan.events if e.reason == "DeadLetter"]
    assert len(dead) == 1 and "give it access" in dead[0].message
    adapter = s.adapter_status()
    assert adapter["credentials"]["valid"] is True and adapter["circuit"]["state"] == "Closed"
    s.finish("elsewhere", A, published(), now=at(2))
    s.step(at(2))
    assert s.target("elsewhere")["phase"] == "Published"


def test_what_an_adapter_reports_is_cleaned_before_status_and_events():
    s = sim_with_control()
    s.step(T0)
    s.finish(
        "control",
        A,
        published(
            postId='{"accessToken": "tok-0123456789abcdef"}',
            url="javascript:alert(document.cookie)",
            message="\x1b[31mok\x1b[0m\r\nFORGED",
        ),
        now=at(1),
    )
    plan = s.step(at(1))
    t = s.target("control")
    assert "tok-0123456789abcdef" not in json.dumps(s.status("control"))
    assert t["url"] is None
    assert all("\x1b" not in e.message and "\n" not in e.message for e in plan.events)

"""The retry policy: what happens after a failed attempt, per error class."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.errors import BREAKER_CLASSES, POLICY_KEYS, ErrorClass, error_class_from_result
from herald.retry import (
    DEFAULT_CREDENTIALS_TIMEOUT,
    Action,
    Backoff,
    RetryPolicy,
    UnknownOutcomePolicy,
    budget_attempts,
    decide,
)

from .builders import DETERMINISTIC

BUDGET_CLASSES = [ErrorClass.NETWORK, ErrorClass.SERVER_ERROR, ErrorClass.UNKNOWN_OUTCOME, ErrorClass.POD_FAILURE]


def run_failures(policy: RetryPolicy, classes: list[ErrorClass], retry_after=None, seed="seed"):
    """Feed failures one after the other, as the reconciler does; return the decisions."""
    failures: dict[str, int] = {}
    out = []
    for cls in classes:
        d = decide(policy, cls, failures, retry_after, seed=seed)
        out.append(d)
        failures[cls.value] = failures.get(cls.value, 0) + 1
        if d.action is not Action.RETRY:
            break
    return out


# -- Backoff --------------------------------------------------------------------------------------


def test_default_backoff_doubles_from_one_second():
    b = Backoff()
    assert [b.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 32, 64]


def test_default_backoff_is_capped_at_ten_minutes():
    b = Backoff()
    assert b.delay(10) == 512
    assert b.delay(11) == 600
    assert b.delay(50) == 600
    assert b.delay(10_000) == 600  # no overflow for absurd retry numbers


def test_backoff_from_spec_reads_durations_and_keeps_unset_fields():
    b = Backoff.from_spec({"initial": "2s", "factor": 3, "max": "1m"})
    assert (b.initial, b.factor, b.max, b.jitter) == (2.0, 3.0, 60.0, 0.0)
    assert [b.delay(n) for n in range(1, 6)] == [2, 6, 18, 54, 60]
    base = Backoff(initial=5, factor=1.5, max=100, jitter=0.1)
    assert Backoff.from_spec({"max": "10s"}, base) == Backoff(5, 1.5, 10, 0.1)
    assert Backoff.from_spec(None) == Backoff()


def test_retry_numbers_start_at_one():
    with pytest.raises(ValueError):
        Backoff().delay(0)


@DETERMINISTIC
@given(
    initial=st.floats(min_value=0.1, max_value=60),
    factor=st.floats(min_value=1, max_value=10),
    max_=st.floats(min_value=60, max_value=3600),
    jitter=st.floats(min_value=0.01, max_value=1),
    retry=st.integers(min_value=1, max_value=40),
    seed=st.text(max_size=20),
)
def test_jitter_is_deterministic_and_bounded(initial, factor, max_, jitter, retry, seed):
    b = Backoff(initial, factor, max_, jitter)
    base = Backoff(initial, factor, max_, 0).delay(retry)
    d = b.delay(retry, seed)
    assert d == b.delay(retry, seed), "the same attempt must always get the same delay"
    assert 0 <= d <= max_
    assert base * (1 - jitter) - 1e-9 <= d <= base * (1 + jitter) + 1e-9


def test_jitter_spreads_delays_across_seeds():
    b = Backoff(initial=10, factor=1, max=600, jitter=0.5)
    delays = {b.delay(1, f"pub-{i}/mastodon") for i in range(50)}
    assert len(delays) > 40, "different targets should get different delays"
    assert min(delays) >= 5 and max(delays) <= 15


@DETERMINISTIC
@given(
    st.floats(min_value=0.1, max_value=30), st.floats(min_value=1, max_value=10), st.floats(min_value=1, max_value=3600)
)
def test_unjittered_delays_never_decrease_and_never_exceed_max(initial, factor, max_):
    b = Backoff(initial, factor, max_, 0)
    delays = [b.delay(n) for n in range(1, 30)]
    assert all(a <= c for a, c in itertools.pairwise(delays))
    assert all(d <= max_ for d in delays)


# -- the default policy ---------------------------------------------------------------------------


def test_default_policy_retries_five_times_with_1_2_4_8_16_then_dead_letters():
    decisions = run_failures(RetryPolicy(), [ErrorClass.SERVER_ERROR] * 10)
    assert [d.action for d in decisions] == [Action.RETRY] * 5 + [Action.DEAD_LETTER]
    assert [d.delay for d in decisions[:5]] == [1, 2, 4, 8, 16]
    assert [d.attempt_in_budget for d in decisions] == [1, 2, 3, 4, 5, 6]
    assert all(d.max_attempts == 6 for d in decisions)
    assert "6 of 6" in decisions[-1].reason


def test_policy_from_empty_specs_equals_defaults():
    p = RetryPolicy.from_spec(None, None)
    assert p.max_attempts == 6
    assert p.backoff == Backoff(1, 2, 600, 0)
    assert p.unknown_outcome is UnknownOutcomePolicy.VERIFY
    assert p.credentials_timeout == DEFAULT_CREDENTIALS_TIMEOUT == 86400
    assert p.rule(ErrorClass.RATE_LIMITED).max_attempts == 20
    assert p.rule(ErrorClass.RATE_LIMITED).min_delay == 30
    for cls in BUDGET_CLASSES:
        assert p.rule(cls).max_attempts == 6
        assert p.rule(cls).backoff == Backoff()


def test_pod_failure_uses_the_backoff():
    decisions = run_failures(RetryPolicy(), [ErrorClass.POD_FAILURE] * 6)
    assert [d.delay for d in decisions[:5]] == [1, 2, 4, 8, 16]
    assert decisions[-1].action is Action.DEAD_LETTER


def test_classes_share_one_budget():
    classes = [
        ErrorClass.SERVER_ERROR,
        ErrorClass.POD_FAILURE,
        ErrorClass.UNKNOWN_OUTCOME,
        ErrorClass.SERVER_ERROR,
        ErrorClass.POD_FAILURE,
        ErrorClass.SERVER_ERROR,
    ]
    policy = RetryPolicy.from_spec({"unknownOutcome": {"policy": "Retry"}})
    decisions = run_failures(policy, classes)
    assert [d.action for d in decisions] == [Action.RETRY] * 5 + [Action.DEAD_LETTER]


def test_max_attempts_one_means_no_retry():
    policy = RetryPolicy.from_spec({"maxAttempts": 1})
    assert decide(policy, ErrorClass.SERVER_ERROR, {}).action is Action.DEAD_LETTER
    assert decide(policy, ErrorClass.NETWORK, {}).action is Action.DEAD_LETTER


# -- per class ------------------------------------------------------------------------------------


def test_network_first_retry_is_immediate_then_backoff():
    decisions = run_failures(RetryPolicy(), [ErrorClass.NETWORK] * 6)
    assert decisions[0].action is Action.RETRY and decisions[0].delay == 0
    assert all(d.delay > 0 for d in decisions[1:5])
    assert decisions[1].delay in (1, 2)  # a backoff step, not another immediate retry
    assert decisions[2].delay > decisions[1].delay
    assert decisions[-1].action is Action.DEAD_LETTER


def test_network_after_other_failures_is_still_retried_at_once_the_first_time():
    d = decide(RetryPolicy(), ErrorClass.NETWORK, {"server_error": 2})
    assert d.action is Action.RETRY and d.delay == 0
    assert d.attempt_in_budget == 3


def test_rejected_is_never_retried():
    d = decide(RetryPolicy(), ErrorClass.REJECTED, {})
    assert d.action is Action.DEAD_LETTER
    assert d.delay == 0


def test_auth_waits_for_credentials_and_never_dead_letters_by_count():
    for n in range(0, 200, 37):
        d = decide(RetryPolicy(), ErrorClass.AUTH, {"auth": n, "server_error": 5})
        assert d.action is Action.WAIT_CREDENTIALS


@pytest.mark.parametrize("retry_after, expected", [(None, 30), (5, 30), (29.9, 30), (30, 30), (120, 120), (3600, 3600)])
def test_rate_limited_waits_for_the_larger_of_retry_after_and_min_delay(retry_after, expected):
    d = decide(RetryPolicy(), ErrorClass.RATE_LIMITED, {}, retry_after)
    assert d.action is Action.RETRY
    assert d.delay == expected


def test_rate_limited_min_delay_is_configurable():
    policy = RetryPolicy.from_spec({"rateLimited": {"minDelay": "2m"}})
    assert decide(policy, ErrorClass.RATE_LIMITED, {}, 10).delay == 120
    assert decide(policy, ErrorClass.RATE_LIMITED, {}, 300).delay == 300


def test_rate_limited_without_retry_after_uses_its_backoff_but_never_below_min_delay():
    policy = RetryPolicy.from_spec({"rateLimited": {"backoff": {"initial": "1m", "factor": 2, "max": "5m"}}})
    delays = [d.delay for d in run_failures(policy, [ErrorClass.RATE_LIMITED] * 5)]
    assert delays == [60, 120, 240, 300, 300]
    # the default backoff (1s, 2s, ...) is lifted to the 30s floor
    assert [d.delay for d in run_failures(RetryPolicy(), [ErrorClass.RATE_LIMITED] * 7)][:7] == [30] * 5 + [32, 64]


def test_rate_limited_has_its_own_budget_of_twenty():
    decisions = run_failures(RetryPolicy(), [ErrorClass.RATE_LIMITED] * 30, retry_after=1)
    assert [d.action for d in decisions] == [Action.RETRY] * 19 + [Action.DEAD_LETTER]
    assert decisions[0].attempt_in_budget == 1 and decisions[0].max_attempts == 20
    assert decisions[-1].attempt_in_budget == 20


def test_rate_limited_failures_do_not_spend_the_shared_budget():
    failures = {"rate_limited": 15, "auth": 3, "server_error": 1}
    assert budget_attempts(failures) == 1
    d = decide(RetryPolicy(), ErrorClass.SERVER_ERROR, failures)
    assert d.action is Action.RETRY
    assert d.attempt_in_budget == 2
    assert d.delay == 2


def test_shared_budget_failures_do_not_spend_the_rate_limited_budget():
    d = decide(RetryPolicy(), ErrorClass.RATE_LIMITED, {"server_error": 5})
    assert d.action is Action.RETRY
    assert d.attempt_in_budget == 1


@pytest.mark.parametrize(
    "policy, action, verify",
    [
        ("Verify", Action.RETRY, True),
        ("Retry", Action.RETRY, False),
        ("Fail", Action.DEAD_LETTER, False),
    ],
)
def test_unknown_outcome_policy(policy, action, verify):
    p = RetryPolicy.from_spec({"unknownOutcome": {"policy": policy}})
    d = decide(p, ErrorClass.UNKNOWN_OUTCOME, {})
    assert d.action is action
    assert d.verify is verify


def test_unknown_outcome_defaults_to_verify():
    d = decide(RetryPolicy.from_spec({}), ErrorClass.UNKNOWN_OUTCOME, {})
    assert d.action is Action.RETRY and d.verify and d.delay == 1


@pytest.mark.parametrize("cls", [c for c in ErrorClass if c is not ErrorClass.UNKNOWN_OUTCOME])
def test_only_unknown_outcome_asks_for_verify_mode(cls):
    assert decide(RetryPolicy(), cls, {}, 1).verify is False


def test_per_class_overrides_have_their_own_max_attempts_and_backoff():
    policy = RetryPolicy.from_spec(
        {
            "maxAttempts": 6,
            "serverError": {"maxAttempts": 3, "backoff": {"initial": "10s", "factor": 3}},
            "podFailure": {"backoff": {"max": "3s"}},
            "network": {"maxAttempts": 10},
            "unknownOutcome": {"maxAttempts": 2, "policy": "Retry"},
            "rateLimited": {"maxAttempts": 4},
        }
    )
    se = run_failures(policy, [ErrorClass.SERVER_ERROR] * 5)
    assert [d.action for d in se] == [Action.RETRY, Action.RETRY, Action.DEAD_LETTER]
    assert [d.delay for d in se[:2]] == [10, 30]  # factor 3 from 10s; unset max keeps 10m
    pf = run_failures(policy, [ErrorClass.POD_FAILURE] * 6)
    assert [d.delay for d in pf[:5]] == [1, 2, 3, 3, 3]  # initial/factor inherited, max overridden
    assert pf[-1].action is Action.DEAD_LETTER and pf[-1].attempt_in_budget == 6
    net = run_failures(policy, [ErrorClass.NETWORK] * 12)
    assert len(net) == 10 and net[-1].action is Action.DEAD_LETTER
    uo = run_failures(policy, [ErrorClass.UNKNOWN_OUTCOME] * 3)
    assert [d.action for d in uo] == [Action.RETRY, Action.DEAD_LETTER]
    rl = run_failures(policy, [ErrorClass.RATE_LIMITED] * 6)
    assert [d.action for d in rl] == [Action.RETRY] * 3 + [Action.DEAD_LETTER]


def test_class_limit_applies_to_the_budget_spent_so_far():
    # network allows 3 attempts: after two server errors the first network failure is the 3rd.
    policy = RetryPolicy.from_spec({"network": {"maxAttempts": 3}})
    assert decide(policy, ErrorClass.NETWORK, {"server_error": 2}).action is Action.DEAD_LETTER
    assert decide(policy, ErrorClass.SERVER_ERROR, {"server_error": 2}).action is Action.RETRY


def test_publication_override_merges_field_by_field_over_the_adapter_policy():
    adapter = {
        "maxAttempts": 5,
        "backoff": {"initial": "2s", "factor": 2, "max": "10m", "jitter": 0.2},
        "unknownOutcome": {"policy": "Verify"},
        "credentialsTimeout": "24h",
    }
    publication = {"backoff": {"initial": "10s"}, "unknownOutcome": {"policy": "Fail"}, "credentialsTimeout": "2h"}
    p = RetryPolicy.from_spec(adapter, publication)
    assert p.max_attempts == 5
    assert p.backoff == Backoff(10, 2, 600, 0.2)
    assert p.unknown_outcome is UnknownOutcomePolicy.FAIL
    assert p.credentials_timeout == 7200
    # the adapter's spec is not modified by merging
    assert adapter["backoff"]["initial"] == "2s"


def test_class_backoff_inherits_the_merged_top_level_backoff():
    p = RetryPolicy.from_spec({"backoff": {"initial": "5s"}}, {"serverError": {"backoff": {"factor": 1}}})
    assert p.rule(ErrorClass.SERVER_ERROR).backoff == Backoff(5, 1, 600, 0)
    assert p.rule(ErrorClass.NETWORK).backoff == Backoff(5, 2, 600, 0)


def test_error_class_from_adapter_result():
    assert error_class_from_result("server_error") is ErrorClass.SERVER_ERROR
    assert error_class_from_result("rate_limited") is ErrorClass.RATE_LIMITED
    # unknown or missing classes are never blindly re-posted
    assert error_class_from_result("teapot") is ErrorClass.UNKNOWN_OUTCOME
    assert error_class_from_result(None) is ErrorClass.UNKNOWN_OUTCOME
    # pod_failure is Herald's own judgement, an adapter cannot claim it
    assert error_class_from_result("pod_failure") is ErrorClass.UNKNOWN_OUTCOME


def test_breaker_classes_and_policy_keys():
    assert {
        ErrorClass.NETWORK,
        ErrorClass.SERVER_ERROR,
        ErrorClass.UNKNOWN_OUTCOME,
        ErrorClass.POD_FAILURE,
    } == BREAKER_CLASSES
    assert set(POLICY_KEYS.values()) == {"rateLimited", "network", "serverError", "unknownOutcome", "podFailure"}


failures_st = st.dictionaries(
    st.sampled_from([c.value for c in ErrorClass]), st.integers(min_value=0, max_value=30), max_size=7
)


@DETERMINISTIC
@given(
    cls=st.sampled_from(list(ErrorClass)),
    failures=failures_st,
    max_attempts=st.integers(min_value=1, max_value=20),
    retry_after=st.none() | st.floats(min_value=0, max_value=7200),
    jitter=st.sampled_from([0, 0.2, 1.0]),
)
def test_decide_properties(cls, failures, max_attempts, retry_after, jitter):
    policy = RetryPolicy.from_spec({"maxAttempts": max_attempts, "backoff": {"jitter": jitter}})
    d = decide(policy, cls, failures, retry_after, seed="uid/target")
    assert d == decide(policy, cls, failures, retry_after, seed="uid/target"), "deterministic"
    assert d.delay >= 0
    if cls in (ErrorClass.REJECTED, ErrorClass.INVALID_SPEC, ErrorClass.DESTINATION_FORBIDDEN):  # never retried
        assert d.action is Action.DEAD_LETTER
    elif cls is ErrorClass.AUTH:
        assert d.action is Action.WAIT_CREDENTIALS
    elif cls is ErrorClass.RATE_LIMITED:
        spent = failures.get("rate_limited", 0) + 1
        assert (d.action is Action.DEAD_LETTER) == (spent >= 20)
        if d.action is Action.RETRY:
            wait = retry_after if retry_after is not None else policy.rule(cls).backoff.delay(spent, "uid/target")
            assert d.delay == max(wait, 30)
    else:
        spent = budget_attempts(failures) + 1
        if spent >= max_attempts:
            assert d.action is Action.DEAD_LETTER
        elif cls is ErrorClass.UNKNOWN_OUTCOME:
            assert d.action is Action.RETRY and d.verify
        else:
            assert d.action is Action.RETRY
            assert d.delay <= 600


@DETERMINISTIC
@given(st.lists(st.sampled_from([*BUDGET_CLASSES, ErrorClass.RATE_LIMITED, ErrorClass.AUTH]), min_size=1, max_size=60))
def test_a_target_never_gets_more_budget_attempts_than_max(classes):
    policy = RetryPolicy()
    failures: dict[str, int] = {}
    for cls in classes:
        d = decide(policy, cls, failures, 1)
        failures[cls.value] = failures.get(cls.value, 0) + 1
        if d.action is Action.DEAD_LETTER:
            break
        assert budget_attempts(failures) < 6
        assert failures.get("rate_limited", 0) < 20

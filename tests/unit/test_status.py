"""Status roll-up: target phases into the publication's phase, and conditions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.status import Phase, condition, publication_conditions, publication_phase

from .builders import DETERMINISTIC, T0, at, ts

P = Phase


@pytest.mark.parametrize(
    "targets, suspended, expected",
    [
        ([], False, P.PENDING),
        ([P.PUBLISHED], False, P.PUBLISHED),
        ([P.PUBLISHED, P.PUBLISHED], False, P.PUBLISHED),
        ([P.PUBLISHED, P.FAILED], False, P.PARTIALLY_PUBLISHED),
        ([P.FAILED, P.PUBLISHED, P.PUBLISHED], False, P.PARTIALLY_PUBLISHED),
        ([P.FAILED], False, P.FAILED),
        ([P.FAILED, P.FAILED], False, P.FAILED),
        ([P.PUBLISHED, P.RETRYING], False, P.RETRYING),
        ([P.FAILED, P.PUBLISHING], False, P.PUBLISHING),
        ([P.QUEUED, P.RETRYING, P.PUBLISHING], False, P.PUBLISHING),
        ([P.QUEUED, P.RETRYING], False, P.RETRYING),
        ([P.SCHEDULED, P.QUEUED], False, P.QUEUED),
        ([P.PENDING, P.SCHEDULED], False, P.SCHEDULED),
        ([P.PENDING, P.PENDING], False, P.PENDING),
        ([P.PUBLISHED, P.SUSPENDED], True, P.SUSPENDED),
        ([P.SUSPENDED, P.SUSPENDED], True, P.SUSPENDED),
        ([P.RETRYING, P.PUBLISHING], True, P.SUSPENDED),
        # suspending a publication that is already done does not make it Suspended
        ([P.PUBLISHED, P.PUBLISHED], True, P.PUBLISHED),
        ([P.PUBLISHED, P.FAILED], True, P.PARTIALLY_PUBLISHED),
    ],
)
def test_publication_phase_roll_up(targets, suspended, expected):
    assert publication_phase(targets, suspended) == expected


ACTIVE = [P.PENDING, P.SCHEDULED, P.QUEUED, P.PUBLISHING, P.RETRYING]


@DETERMINISTIC
@given(st.lists(st.sampled_from([*ACTIVE, P.PUBLISHED, P.FAILED]), min_size=1, max_size=8))
def test_phase_is_never_terminal_while_a_target_is_still_active(phases):
    phase = publication_phase(phases, suspended=False)
    if any(p in ACTIVE for p in phases):
        assert phase in ACTIVE
        # the most advanced activity wins
        rank = [P.PUBLISHING, P.RETRYING, P.QUEUED, P.SCHEDULED, P.PENDING]
        assert phase == min((p for p in phases if p in ACTIVE), key=rank.index)
    else:
        assert phase in (P.PUBLISHED, P.FAILED, P.PARTIALLY_PUBLISHED)
    # order of targets does not matter
    assert publication_phase(list(reversed(phases)), False) == phase


def test_condition_keeps_last_transition_time_while_status_is_unchanged():
    first = condition("Published", False, "Publishing", "0 of 1", 1, [], T0)
    assert first["lastTransitionTime"] == ts(T0)
    assert first["status"] == "False"
    later = condition("Published", False, "Retrying", "0 of 1 (retrying)", 2, [first], at(60))
    assert later["lastTransitionTime"] == ts(T0), "status unchanged: the transition time stays"
    assert later["reason"] == "Retrying" and later["observedGeneration"] == 2
    flipped = condition("Published", True, "AllTargetsPublished", "1 of 1", 2, [later], at(120))
    assert flipped["status"] == "True"
    assert flipped["lastTransitionTime"] == ts(at(120))


def test_condition_ignores_other_types_in_previous():
    other = {"type": "Failed", "status": "False", "lastTransitionTime": ts(at(-100))}
    c = condition("Published", False, "x", "", 1, [other], T0)
    assert c["lastTransitionTime"] == ts(T0)


def _t(adapter, phase, **kw):
    return {"adapter": adapter, "phase": phase, "message": kw.pop("message", ""), **kw}


def test_publication_conditions():
    targets = [
        _t("mastodon", P.PUBLISHED),
        _t("bluesky", P.RETRYING, message="attempt 1 of 6 failed: server_error", nextAttemptAt=ts(at(30))),
        _t("slack", P.RETRYING, message="attempt 2 of 6 failed: network", nextAttemptAt=ts(at(10))),
        _t("discord", P.FAILED, message="rejected: text too long"),
    ]
    conds = {c["type"]: c for c in publication_conditions(targets, P.RETRYING, None, 3, [], T0)}
    assert set(conds) == {"Published", "Scheduled", "Retrying", "Failed"}
    assert conds["Published"]["status"] == "False"
    assert conds["Published"]["message"] == "1 of 4 targets published"
    assert conds["Scheduled"]["status"] == "False"
    assert conds["Retrying"]["status"] == "True"
    # the earliest retry first
    assert conds["Retrying"]["message"].index("slack") < conds["Retrying"]["message"].index("bluesky")
    assert conds["Failed"]["status"] == "True" and conds["Failed"]["reason"] == "DeadLetter"
    assert "discord: rejected: text too long" in conds["Failed"]["message"]
    assert all(c["observedGeneration"] == 3 for c in conds.values())


def test_published_and_scheduled_conditions():
    done = publication_conditions([_t("a", P.PUBLISHED), _t("b", P.PUBLISHED)], P.PUBLISHED, None, 1, [], T0)
    conds = {c["type"]: c for c in done}
    assert conds["Published"]["status"] == "True"
    assert conds["Published"]["reason"] == "AllTargetsPublished"
    assert conds["Failed"]["status"] == "False" and conds["Retrying"]["status"] == "False"
    sched = {c["type"]: c for c in publication_conditions([_t("a", P.SCHEDULED)], P.SCHEDULED, at(3600), 1, [], T0)}
    assert sched["Scheduled"]["status"] == "True"
    assert sched["Scheduled"]["message"] == f"publishing at {ts(at(3600))}"


def test_conditions_are_stable_for_an_unchanged_picture():
    targets = [_t("a", P.RETRYING, message="m", nextAttemptAt=ts(at(5)))]
    first = publication_conditions(targets, P.RETRYING, None, 1, [], T0)
    again = publication_conditions(targets, P.RETRYING, None, 1, first, at(100))
    assert again == first

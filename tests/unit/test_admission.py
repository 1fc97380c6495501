"""Queue admission per adapter: who may start now, who waits, and why."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.admission import Admission, Candidate, Gate, Wait, admit
from herald.circuit import BreakerConfig, Circuit, CircuitState

from .builders import DETERMINISTIC, T0, at

NOW = at(3600)


def cand(key, priority=0, due=T0, created=T0):
    return Candidate(key=key, priority=priority, due=due, created=created)


def test_nothing_to_admit():
    assert admit(Gate(), [], NOW) == Admission([], {}, None)


def test_concurrency_limits_running_attempts():
    cands = [cand(f"p{i}", created=at(i)) for i in range(5)]
    a = admit(Gate(concurrency=2), cands, NOW)
    assert a.start == ["p0", "p1"]
    assert a.waiting == {"p2": Wait.CONCURRENCY, "p3": Wait.CONCURRENCY, "p4": Wait.CONCURRENCY}
    assert a.wake_at is None  # a finishing Job is an event; no timer needed


def test_running_attempts_use_up_slots():
    cands = [cand("a"), cand("b", created=at(1))]
    assert admit(Gate(concurrency=3, running=2), cands, NOW).start == ["a"]
    assert admit(Gate(concurrency=3, running=3), cands, NOW).start == []
    assert admit(Gate(concurrency=3, running=7), cands, NOW).start == []


def test_order_is_priority_then_due_time_then_creation():
    cands = [
        cand("old-low", priority=0, due=T0, created=T0),
        cand("new-high", priority=10, due=at(50), created=at(50)),
        cand("early-due", priority=0, due=at(-100), created=at(20)),
        cand("same-due-later-created", priority=0, due=T0, created=at(5)),
        cand("negative", priority=-5, due=at(-1000), created=at(-1000)),
    ]
    a = admit(Gate(concurrency=10), cands, NOW)
    assert a.start == ["new-high", "early-due", "old-low", "same-due-later-created", "negative"]
    a = admit(Gate(concurrency=2), cands, NOW)
    assert a.start == ["new-high", "early-due"]


def test_rate_limit_is_a_sliding_window():
    starts = [NOW - timedelta(seconds=s) for s in (50, 30, 10)]  # 3 starts within the last minute
    gate = Gate(concurrency=10, rate_limit=3, rate_period=60, recent_starts=starts)
    a = admit(gate, [cand("x")], NOW)
    assert a.start == []
    assert a.waiting == {"x": Wait.RATE_LIMIT}
    assert a.wake_at == NOW + timedelta(seconds=10), "the oldest start leaves the window 60s after it was made"
    # 10 seconds later the oldest start has aged out: one more may start
    later = admit(gate, [cand("x"), cand("y", created=at(1))], NOW + timedelta(seconds=10))
    assert later.start == ["x"]
    assert later.waiting == {"y": Wait.RATE_LIMIT}


def test_old_starts_do_not_count():
    starts = [NOW - timedelta(seconds=s) for s in (600, 300, 61, 60)]
    gate = Gate(concurrency=10, rate_limit=1, rate_period=60, recent_starts=starts)
    assert admit(gate, [cand("x")], NOW).start == ["x"]


def test_room_in_the_window_limits_how_many_start():
    starts = [NOW - timedelta(seconds=5)]
    gate = Gate(concurrency=10, rate_limit=3, rate_period=60, recent_starts=starts)
    a = admit(gate, [cand(i, created=at(i)) for i in range(5)], NOW)
    assert a.start == [0, 1]
    assert set(a.waiting.values()) == {Wait.RATE_LIMIT}


@pytest.mark.parametrize(
    "ago, expected_wake",
    [
        ((), 60),  # empty window, limit 2: a and b start now, the window is full until now+60s
        ((50,), 10),  # one start 50s ago: a starts, the window is full until that one ages out (now+10s)
    ],
)
def test_wake_at_when_the_starts_admitted_now_fill_the_window(ago, expected_wake):
    """The candidates admitted now fill the window: the rest wait RateLimitWindow, and admission
    must say when the window frees (no event will come at that time)."""
    gate = Gate(concurrency=10, rate_limit=2, rate_period=60, recent_starts=[NOW - timedelta(seconds=s) for s in ago])
    a = admit(gate, [cand("a"), cand("b", created=at(1)), cand("c", created=at(2))], NOW)
    assert len(a.start) == 2 - len(ago)
    assert set(a.waiting.values()) == {Wait.RATE_LIMIT}
    assert a.wake_at == NOW + timedelta(seconds=expected_wake)


def test_paused_adapter_starts_nothing():
    a = admit(Gate(concurrency=5, paused=True), [cand("a"), cand("b")], NOW)
    assert a.start == []
    assert a.waiting == {"a": Wait.PAUSED, "b": Wait.PAUSED}


def test_missing_adapter_starts_nothing():
    a = admit(Gate(exists=False), [cand("a")], NOW)
    assert a.start == [] and a.waiting == {"a": Wait.NO_ADAPTER}


def test_invalid_credentials_start_nothing():
    a = admit(Gate(concurrency=5, credentials_valid=False), [cand("a")], NOW)
    assert a.start == [] and a.waiting == {"a": Wait.CREDENTIALS}


def test_platform_rate_limit_blocks_until_then():
    until = NOW + timedelta(seconds=90)
    gate = Gate(concurrency=5, blocked_until=until)
    a = admit(gate, [cand("a"), cand("b")], NOW)
    assert a.start == []
    assert a.waiting == {"a": Wait.RATE_LIMITED, "b": Wait.RATE_LIMITED}
    assert a.wake_at == until
    assert admit(gate, [cand("a"), cand("b")], until).start == ["a", "b"]


def test_open_circuit_starts_nothing_until_the_probe_time():
    circuit = Circuit()
    for _ in range(5):
        circuit = circuit.record_failure(NOW, BreakerConfig())
    assert circuit.state is CircuitState.OPEN
    gate = Gate(concurrency=5, circuit=circuit)
    a = admit(gate, [cand("a"), cand("b")], NOW + timedelta(seconds=60))
    assert a.start == []
    assert set(a.waiting.values()) == {Wait.CIRCUIT_OPEN}
    assert a.wake_at == NOW + timedelta(seconds=120)


def test_half_open_circuit_lets_one_probe_through():
    circuit = Circuit()
    for _ in range(5):
        circuit = circuit.record_failure(NOW, BreakerConfig())
    probe_time = NOW + timedelta(seconds=120)
    a = admit(Gate(concurrency=5, circuit=circuit), [cand("a"), cand("b"), cand("c")], probe_time)
    assert a.start == ["a"]
    assert a.waiting == {"b": Wait.CIRCUIT_OPEN, "c": Wait.CIRCUIT_OPEN}
    # while the probe runs, nobody else starts
    a = admit(Gate(concurrency=5, circuit=circuit, running=1), [cand("b"), cand("c")], probe_time)
    assert a.start == []


gate_st = st.builds(
    Gate,
    concurrency=st.integers(min_value=1, max_value=6),
    rate_limit=st.none() | st.integers(min_value=1, max_value=5),
    rate_period=st.sampled_from([10.0, 60.0, 300.0]),
    recent_starts=st.lists(
        st.integers(min_value=0, max_value=400).map(lambda s: NOW - timedelta(seconds=s)), max_size=8
    ),
    running=st.integers(min_value=0, max_value=8),
)
cands_st = st.lists(
    st.builds(
        cand,
        key=st.uuids().map(str),
        priority=st.integers(min_value=-3, max_value=3),
        due=st.integers(min_value=-100, max_value=100).map(at),
        created=st.integers(min_value=-100, max_value=100).map(at),
    ),
    max_size=12,
    unique_by=lambda c: c.key,
)


@DETERMINISTIC
@given(gate_st, cands_st)
def test_admission_properties(gate, cands):
    a = admit(gate, cands, NOW)
    ordered = [c.key for c in sorted(cands, key=lambda c: (-c.priority, c.due, c.created, str(c.key)))]
    # everyone is either started or waiting, never both
    assert set(a.start) | set(a.waiting) == set(ordered)
    assert not set(a.start) & set(a.waiting)
    # never more than the free slots, never more than the window has room for
    room = len(cands)
    if gate.rate_limit is not None:
        in_window = [t for t in gate.recent_starts if t > NOW - timedelta(seconds=gate.rate_period)]
        room = max(0, gate.rate_limit - len(in_window))
    assert len(a.start) == min(max(0, gate.concurrency - gate.running), room, len(cands))
    # the started ones are the head of the queue
    assert a.start == ordered[: len(a.start)]
    # a wait for the window always comes with a time it frees, in the future, within one period
    if Wait.RATE_LIMIT in a.waiting.values() and len(a.start) == 0:
        assert a.wake_at is not None
    if a.wake_at is not None:
        assert NOW < a.wake_at <= NOW + timedelta(seconds=gate.rate_period)
        # and at that time, room has indeed freed up
        assert admit(gate, cands, a.wake_at).start or gate.concurrency <= gate.running


@DETERMINISTIC
@given(gate_st, cands_st, st.integers(min_value=0, max_value=3))
def test_adding_a_lower_priority_candidate_never_displaces_a_started_one(gate, cands, extra):
    base = admit(gate, cands, NOW)
    low = cand("zz-lowest", priority=-100, due=at(1000), created=at(1000))
    more = admit(gate, [*cands, low], NOW)
    assert more.start[: len(base.start)] == base.start


# -- credentials probes: refused credentials, and an operator that may not read the Secret ---------


def test_refused_credentials_hold_everyone_until_the_probe_time():
    cands = [cand("a"), cand("b", created=at(1))]
    gate = Gate(concurrency=3, credentials_valid=False, credentials_probe_at=NOW + timedelta(seconds=30))
    early = admit(gate, cands, NOW)
    assert early.start == [] and set(early.waiting.values()) == {Wait.CREDENTIALS}
    assert early.wake_at == NOW + timedelta(seconds=30)
    due = admit(gate, cands, NOW + timedelta(seconds=30))
    assert due.start == ["a"]  # one probe, the head of the queue, whatever the concurrency
    assert due.waiting == {"b": Wait.CREDENTIALS}


def test_no_probe_while_an_attempt_runs_or_without_a_probe_time():
    cands = [cand("a")]
    running = Gate(concurrency=3, running=1, credentials_valid=False, credentials_probe_at=T0)
    assert admit(running, cands, NOW).start == [] and admit(running, cands, NOW).wake_at is None
    watched = Gate(credentials_valid=False, credentials_probe_at=None)  # the Secret's version is watched
    assert admit(watched, cands, NOW) == Admission([], {"a": Wait.CREDENTIALS}, None)


@DETERMINISTIC
@given(gate_st, cands_st, st.none() | st.integers(min_value=-600, max_value=600))
def test_a_credentials_probe_is_one_attempt_never_early(gate, cands, probe_in):
    probe_at = None if probe_in is None else NOW + timedelta(seconds=probe_in)
    probing = Gate(**{**gate.__dict__, "credentials_valid": False, "credentials_probe_at": probe_at})
    a = admit(probing, cands, NOW)
    assert len(a.start) <= 1
    if a.start:
        assert probe_at is not None and probe_at <= NOW and gate.running == 0
        assert a.start == admit(gate, cands, NOW).start[:1]  # the probe is the one that would go first
    assert set(a.waiting.values()) <= {Wait.CREDENTIALS, Wait.RATE_LIMIT, Wait.CONCURRENCY}

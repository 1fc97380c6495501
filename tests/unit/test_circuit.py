"""The per-adapter circuit breaker."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from herald.circuit import BreakerConfig, Circuit, CircuitState

from .builders import DETERMINISTIC, T0, at

CFG = BreakerConfig()  # failureThreshold 5, cooldown 2m, maxCooldown 30m


def fail(c: Circuit, now, n: int = 1, cfg: BreakerConfig = CFG) -> Circuit:
    for _ in range(n):
        c = c.record_failure(now, cfg)
    return c


def test_defaults_match_the_documented_breaker():
    assert (CFG.failure_threshold, CFG.cooldown, CFG.max_cooldown) == (5, 120, 1800)
    assert BreakerConfig.from_spec({"failureThreshold": 3, "cooldown": "30s", "maxCooldown": "5m"}) == BreakerConfig(
        3, 30, 300
    )
    assert BreakerConfig.from_spec(None) == CFG


def test_closed_circuit_allows_everything():
    c = Circuit()
    assert c.state is CircuitState.CLOSED
    assert c.allows(T0, running=0) >= 1000
    assert c.allows(T0, running=50) >= 1000


def test_four_failures_keep_it_closed_the_fifth_opens_it_for_the_cooldown():
    c = fail(Circuit(), T0, 4)
    assert c.state is CircuitState.CLOSED and c.consecutive_failures == 4
    c = fail(c, at(10))
    assert c.state is CircuitState.OPEN
    assert c.opened_at == at(10)
    assert c.next_probe_at == at(10 + 120)
    assert c.allows(at(10), 0) == 0
    assert c.allows(at(129), 0) == 0


def test_a_success_resets_the_count():
    c = fail(Circuit(), T0, 4).record_success()
    c = fail(c, T0, 4)
    assert c.state is CircuitState.CLOSED


def test_after_the_cooldown_half_open_lets_exactly_one_probe_through():
    c = fail(Circuit(), T0, 5)
    assert c.at(at(119)).state is CircuitState.OPEN
    assert c.at(at(120)).state is CircuitState.HALF_OPEN
    assert c.allows(at(120), running=0) == 1
    assert c.allows(at(120), running=1) == 0  # the probe is running: nobody else


def test_successful_probe_closes_the_circuit_and_resets_the_cooldown():
    c = fail(Circuit(), T0, 5).at(at(120)).record_success()
    assert c == Circuit()
    c = fail(c, at(200), 5)
    assert c.next_probe_at == at(200 + 120), "cooldown back to the initial 2m after a success"


def test_failed_probe_reopens_with_a_doubled_cooldown_up_to_max():
    c = fail(Circuit(), T0, 5)
    now = T0
    cooldowns = [120]
    for _ in range(6):
        now = c.next_probe_at
        assert c.at(now).state is CircuitState.HALF_OPEN
        c = c.record_failure(now, CFG)  # the probe fails
        assert c.state is CircuitState.OPEN
        cooldowns.append((c.next_probe_at - now).total_seconds())
    assert cooldowns == [120, 240, 480, 960, 1800, 1800, 1800]


def test_failures_while_open_do_not_extend_the_cooldown():
    c = fail(Circuit(), T0, 5)
    c2 = fail(c, at(30), 3)  # attempts that were already running fail during the cooldown
    assert c2.state is CircuitState.OPEN
    assert c2.next_probe_at == c.next_probe_at
    assert c2.opens == 1


def test_custom_threshold_and_cooldown():
    cfg = BreakerConfig(failure_threshold=2, cooldown=10, max_cooldown=25)
    c = fail(Circuit(), T0, 2, cfg)
    assert c.state is CircuitState.OPEN and c.next_probe_at == at(10)
    c = c.record_failure(at(10), cfg)
    assert c.next_probe_at == at(30)
    c = c.record_failure(at(30), cfg)
    assert c.next_probe_at == at(55)  # 40s capped at 25s


def test_status_round_trip():
    c = fail(Circuit(), T0 + timedelta(milliseconds=250), 5)
    st_ = c.to_status()
    assert st_ == {
        "state": "Open",
        "consecutiveFailures": 5,
        "openedAt": "2030-06-01T09:00:00.250Z",
        "nextProbeAt": "2030-06-01T09:02:00.250Z",
        "opens": 1,
    }
    assert Circuit.from_status(st_) == c
    assert Circuit.from_status(None) == Circuit()
    assert Circuit.from_status({}) == Circuit()
    assert Circuit.from_status(Circuit().to_status()) == Circuit()


@DETERMINISTIC
@given(
    st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=900)), max_size=40),
    st.integers(min_value=1, max_value=6),
)
def test_breaker_properties(events, threshold):
    """Random successes/failures over time: the status always round-trips, the cooldown stays within
    [cooldown, maxCooldown], and it takes `threshold` failures in a row to open a closed circuit."""
    cfg = BreakerConfig(failure_threshold=threshold, cooldown=120, max_cooldown=1800)
    c, now, run = Circuit(), T0, 0
    for ok, dt in events:
        now += timedelta(seconds=dt)
        before = c.at(now)
        c = c.record_success() if ok else c.record_failure(now, cfg)
        run = 0 if ok else run + 1
        assert Circuit.from_status(c.to_status()) == c
        if c.state is CircuitState.OPEN:
            cooldown = (c.next_probe_at - c.opened_at).total_seconds()
            assert 120 <= cooldown <= 1800
            if before.state is CircuitState.CLOSED:
                assert run >= threshold
        if ok:
            assert c.state is CircuitState.CLOSED and c.consecutive_failures == 0
        if before.state is CircuitState.CLOSED and c.state is CircuitState.CLOSED:
            assert c.consecutive_failures == run

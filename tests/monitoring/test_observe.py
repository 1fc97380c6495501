"""herald.observe: what a decided plan becomes in metrics and in Herald's own alerts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from herald import metrics as m
from herald.alerts import AlertEvent
from herald.circuit import CircuitState
from herald.config import OperatorConfig
from herald.errors import ErrorClass
from herald.observe import Observer, install_watch_restart_counter, last_change
from herald.reconciler import AttemptObservation, Failure, JobCreate, Plan
from herald.results import Outcome

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class RecordingAlerter:
    """Stands in for the Alerter: records what the observer reports."""

    def __init__(self) -> None:
        self.conditions: list[tuple[str, str, bool | None]] = []
        self.notified: list[AlertEvent] = []
        self.present: list[set[tuple[str, str]]] = []

    def condition(self, event: AlertEvent, active: bool | None) -> None:
        self.conditions.append((event.name, event.adapter or "", active))

    def notify(self, event: AlertEvent) -> None:
        self.notified.append(event)

    def adapters_present(self, keys: set[tuple[str, str]]) -> None:
        self.present.append(set(keys))

    def last(self, name: str, adapter: str) -> bool | None:
        return [c for c in self.conditions if c[0] == name and c[1] == adapter][-1][2]


def observer() -> tuple[Observer, RecordingAlerter]:
    alerter = RecordingAlerter()
    return Observer(OperatorConfig(queue_alert_threshold=10), alerter=alerter), alerter  # type: ignore[arg-type]


def gauges(**over: Any) -> dict[str, Any]:
    g = {
        "platform": "mastodon",
        "pending": 0,
        "running": 0,
        "circuit": CircuitState.CLOSED,
        "remaining": None,
        "rate_limited": False,
        "available": True,
        "credentials_valid": True,
        "opened": False,
        "dead_letter": 0,
        "credentials_message": "",
    }
    return {**g, **over}


def get(name: str, **labels: str) -> float | None:
    return m.REGISTRY.get_sample_value(name, labels)


def test_gauges_become_series_and_conditions():
    obs, alerter = observer()
    ns = "obs-gauges"
    obs(Plan(gauges={(ns, "a"): gauges(pending=12, running=2, circuit=CircuitState.OPEN, remaining=5)}), T0)
    assert get("herald_queue_depth", namespace=ns, adapter="a") == 12
    assert get("herald_running_jobs", namespace=ns, adapter="a") == 2
    assert get("herald_circuit_state", namespace=ns, adapter="a", state="Open") == 1
    assert get("herald_circuit_state", namespace=ns, adapter="a", state="Closed") == 0
    assert get("herald_rate_limit_remaining", namespace=ns, adapter="a") == 5
    assert get("herald_adapter_info", namespace=ns, adapter="a", platform="mastodon") == 1
    # every series a rule reads exists at once
    assert get("herald_dead_letters_total", namespace=ns, adapter="a", platform="mastodon", error_class="network") == 0
    assert alerter.last("HeraldPlatformDown", "a") is True
    assert alerter.last("HeraldQueueOverloaded", "a") is True  # 12 > 10
    assert alerter.last("HeraldCredentialsInvalid", "a") is False
    assert alerter.last("HeraldRateLimitedTooLong", "a") is False
    obs(
        Plan(gauges={(ns, "a"): gauges(circuit=CircuitState.HALF_OPEN, rate_limited=True, credentials_valid=False)}), T0
    )
    assert alerter.last("HeraldPlatformDown", "a") is None  # half-open: keep what it is
    assert alerter.last("HeraldRateLimitedTooLong", "a") is True
    assert alerter.last("HeraldCredentialsInvalid", "a") is True
    obs(Plan(gauges={(ns, "a"): gauges()}), T0)
    assert alerter.last("HeraldPlatformDown", "a") is False


def outcome(published: bool, **kw: Any) -> Outcome:
    return Outcome(published=published, **kw)


def test_attempt_duration_is_the_operators_own_measure_next_to_the_containers():
    obs, _ = observer()
    ns = "obs-duration"
    manifest = {"metadata": {"namespace": ns, "name": "launch-a-2"}}
    obs(Plan(gauges={(ns, "a"): gauges()}, creates=[JobCreate(manifest, (ns, "launch"), "a", 1)]), T0)
    seen = T0 + timedelta(seconds=3.25)
    o = outcome(True, started=T0 + timedelta(seconds=1), finished=T0 + timedelta(seconds=3), response_seconds=0.2)
    obs(Plan(attempts=[AttemptObservation(ns, "launch", "a", "mastodon", 2, o, latency=4.0)]), seen)
    labels = {"namespace": ns, "adapter": "a", "platform": "mastodon", "result": "published"}
    assert get("herald_attempt_duration_seconds_sum", **labels) == 3.25  # Job create decided -> outcome seen
    assert get("herald_attempt_container_duration_seconds_sum", **labels) == 2.0
    assert get("herald_publish_latency_seconds_sum", namespace=ns, adapter="a", platform="mastodon") == 4.0
    # An attempt whose creation this operator did not see (started before a restart): no operator measure.
    obs(Plan(attempts=[AttemptObservation(ns, "other", "a", "mastodon", 1, o)]), seen)
    assert get("herald_attempt_duration_seconds_count", **labels) == 1
    assert get("herald_attempt_container_duration_seconds_count", **labels) == 2


def test_failures_retries_dead_letters_and_repeated_failures():
    obs, alerter = observer()
    ns = "obs-failures"
    obs(Plan(gauges={(ns, "a"): gauges()}), T0)
    bad = outcome(False, error_class=ErrorClass.SERVER_ERROR, message="HTTP 503")
    plan = Plan(
        attempts=[
            AttemptObservation(ns, "p", "a", "mastodon", 1, bad, retried=True, failed_attempts=1),
            AttemptObservation(ns, "p", "a", "mastodon", 3, bad, retried=True, failed_attempts=3),
            AttemptObservation(ns, "q", "a", "mastodon", 5, bad, dead_letter=True, failed_attempts=5),
        ],
        failures=[Failure("platformadapters", (ns, "a"), "boom")],
    )
    before = get("herald_reconcile_errors_total", controller="platformadapters") or 0
    obs(plan, T0)
    base = {"namespace": ns, "adapter": "a", "platform": "mastodon", "error_class": "server_error"}
    assert get("herald_attempts_total", **base, result="failed") == 3
    assert get("herald_retries_total", **base) == 2
    assert get("herald_dead_letters_total", **base) == 1
    assert get("herald_publications_total", namespace=ns, adapter="a", platform="mastodon", outcome="failed") == 1
    assert get("herald_reconcile_errors_total", controller="platformadapters") == before + 1
    names = [(e.name, e.annotations.get("publication")) for e in alerter.notified]
    assert names == [("HeraldTargetRepeatedFailure", "p"), ("HeraldDeadLetterGrowing", "q")]
    assert alerter.notified[1].labels == {} and alerter.notified[1].key == ("HeraldDeadLetterGrowing", ns, "a")


def test_adapters_gone_lose_their_series_and_alerts():
    obs, alerter = observer()
    ns = "obs-gone"
    obs(Plan(gauges={(ns, "a"): gauges(), (ns, "b"): gauges()}), T0)
    obs.adapters_present({(ns, "b")})
    assert get("herald_queue_depth", namespace=ns, adapter="a") is None
    assert get("herald_queue_depth", namespace=ns, adapter="b") == 0
    assert alerter.present == [{(ns, "b")}]


def test_ticks_degrade_after_three_failed_and_recover():
    obs, alerter = observer()
    for _ in range(3):
        obs.tick(0.01, failed_units=1)
    assert alerter.conditions[-1] == ("HeraldOperatorDegraded", "", True)
    obs.tick(0.01, failed_units=0)
    assert alerter.conditions[-1] == ("HeraldOperatorDegraded", "", False)


def test_queue_depth():
    obs, _ = observer()
    obs.queue_depth(ready=4, deferred=1, scheduled=30, in_flight=2)
    assert get("herald_workqueue_depth", queue="ready") == 4
    assert get("herald_workqueue_depth", queue="in_flight") == 2


def test_event_lag_from_the_latest_managed_fields_time():
    obs, _ = observer()
    obj = {
        "metadata": {
            "creationTimestamp": "2030-01-01T00:00:00Z",
            "managedFields": [{"time": "2030-01-01T00:00:05Z"}, {"time": "2030-01-01T00:00:09Z"}, {}],
        }
    }
    assert last_change(obj) == T0 + timedelta(seconds=9)
    assert last_change({"metadata": {}}) is None
    before = get("herald_event_lag_seconds_sum", resource="jobs") or 0
    obs.watch_event("jobs", {"type": "MODIFIED", "object": obj}, now=T0 + timedelta(seconds=9.5))
    obs.watch_event("jobs", {"type": None, "object": obj}, now=T0 + timedelta(seconds=100))  # initial listing
    assert get("herald_event_lag_seconds_sum", resource="jobs") == before + 0.5


def test_the_lag_from_a_decision_to_its_event_is_observed():
    before = get("herald_decision_event_lag_seconds_count") or 0
    obs = Observer(OperatorConfig())
    obs.event_posted(0.25)
    obs.event_posted(-1.0)  # a clock step never gives a negative lag
    assert get("herald_decision_event_lag_seconds_count") == before + 2
    assert (get("herald_decision_event_lag_seconds_bucket", le="0.005") or 0) >= 1  # the -1 s as 0


def test_the_wait_for_a_request_slot_is_observed_by_pool():
    before = get("herald_api_request_slot_wait_seconds_count", pool="events") or 0
    writes = get("herald_api_request_slot_wait_seconds_sum", pool="writes") or 0
    obs = Observer(OperatorConfig())
    obs.request_slot_waited("events", 0.3)
    obs.request_slot_waited("writes", 0.02)
    assert get("herald_api_request_slot_wait_seconds_count", pool="events") == before + 1
    assert get("herald_api_request_slot_wait_seconds_sum", pool="writes") == pytest.approx(writes + 0.02)
    with pytest.raises(ValueError):
        obs.request_slot_waited("reads", 1.0)  # not a pool: a bug, not a new series


def test_watch_restarts_are_counted_from_kopfs_log():
    install_watch_restart_counter()
    install_watch_restart_counter()  # idempotent
    logger = logging.getLogger("kopf._cogs.clients.watching")
    before = get("herald_watch_restarts_total", resource="jobs", reason="expired") or 0
    inactive = get("herald_watch_restarts_total", resource="pods", reason="inactive") or 0
    logger.debug("Restarting the watch-stream for jobs.v1.batch in 'ns'.")
    logger.debug("Watch-stream for pods.v1 cluster-wide is inactive, reconnecting.")
    logger.debug("Starting the watch-stream for pods.v1 cluster-wide.")  # not a restart
    assert get("herald_watch_restarts_total", resource="jobs", reason="expired") == before + 1
    assert get("herald_watch_restarts_total", resource="pods", reason="inactive") == inactive + 1


async def test_one_open_circuit_pages_once_and_a_standby_sends_nothing(tmp_path):
    from herald.alerts import Alerter, MemoryStateStore, Timing
    from tests.monitoring.receivers import RecordingReceiver

    with RecordingReceiver() as rec:
        store = MemoryStateStore()
        store.document = {"version": 1, "alerts": []}
        cfg = {"channels": [{"type": "slack", "url": rec.url}]}
        alerter = Alerter.from_config(cfg, store=store, timings={"HeraldPlatformDown": Timing(0, 0.2)})
        obs = Observer(OperatorConfig(metrics_port=0), alerter=alerter)
        await obs.start()
        try:
            # A standby: started, never called by an engine. Its alerter does not run.
            assert store.saves == 0 and not alerter.active
            ns = "obs-pages-once"
            for state in [CircuitState.OPEN] * 10 + [CircuitState.HALF_OPEN, CircuitState.OPEN] * 5:
                obs(Plan(gauges={(ns, "a"): gauges(circuit=state)}), T0)
            assert await obs.flush(10)
            assert [r.json()["text"].split(":")[0] for r in rec.requests] == ["[FIRING"]
            obs(Plan(gauges={(ns, "a"): gauges()}), T0)  # closed: resolved after the hold
            (_, resolved) = await rec.await_requests(2, timeout=10)
            assert resolved.json()["text"].startswith("[RESOLVED] HeraldPlatformDown (obs-pages-once/a)")
            assert store.saves > 0
        finally:
            await obs.stop()

"""Status that says why: kstatus conditions (Ready, Reconciling, Stalled), the REASON and MESSAGE a
user sees in `kubectl get`, Events on PlatformAdapters, and reacting to fixes."""

from __future__ import annotations

from datetime import timedelta

from .builders import T0, Sim, at, condition_of, failed, published

A = "mastodon-main"


def conds(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


def adapter_events(s: Sim, since: int = 0) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in s.events[since:] if e.kind == "PlatformAdapter"]


def test_a_published_publication_is_ready_and_nothing_else():
    s = Sim()
    s.add_adapter(A)
    s.add_publication("launch")
    s.step(T0)
    c = conds(s.status("launch"))
    assert c["Ready"] == ("False", "JobRunning") and c["Reconciling"] == ("True", "JobRunning")
    assert c["Stalled"] == ("False", "NotStalled")
    s.finish("launch", A, published(), now=at(1))
    s.step(at(1))
    st = s.status("launch")
    assert conds(st)["Ready"] == ("True", "Published")
    assert conds(st)["Reconciling"][0] == "False" and conds(st)["Stalled"][0] == "False"
    assert st["reason"] == "Published" and st["message"] == "1 of 1 targets published"
    assert all(c["observedGeneration"] == 1 for c in st["conditions"])


def test_a_retrying_publication_is_reconciling_with_the_retry_as_its_reason():
    s = Sim()
    s.add_adapter(A)
    s.add_publication("launch")
    s.step(T0)
    s.finish("launch", A, failed("server_error"), now=at(1))
    s.step(at(1))
    st = s.status("launch")
    assert conds(st)["Reconciling"] == ("True", "RetryServerError")
    assert st["reason"] == "RetryServerError" and "next attempt" in st["message"]


def test_waiting_on_credentials_is_stalled_with_a_reason_and_one_warning():
    s = Sim()
    s.add_adapter(A, credentialsSecretRef={"name": "creds"})
    s.set_secret("creds", "5")
    s.add_publication("first")
    s.step(T0)
    s.finish("first", A, failed("auth", message="HTTP 401"), now=at(1))
    s.step(at(1))
    s.add_publication("second")
    before = len(s.events)
    s.step(at(2))
    st = s.status("second")
    assert st["phase"] == "Queued" and st["reason"] == "CredentialsInvalid"
    assert conds(st)["Stalled"] == ("True", "CredentialsInvalid")
    assert conds(st)["Failed"][0] == "False"  # nothing failed: it waits
    warnings = [(e.name, e.type, e.reason) for e in s.events[before:]]
    assert ("second", "Warning", "CredentialsInvalid") in warnings
    s.step(at(3))
    assert [e for e in s.events[before + len(warnings) :] if e.name == "second"] == []  # once


def test_a_missing_adapter_is_stalled_and_said_once():
    s = Sim()
    s.add_publication("orphan", targets=["nowhere"])
    plan = s.step(T0)
    st = s.status("orphan")
    assert conds(st)["Stalled"] == ("True", "AdapterNotFound")
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "AdapterNotFound")]
    assert s.step(at(1)).events == []


def test_suspended_is_its_own_phase_and_not_final():
    s = Sim()
    s.add_adapter(A)
    s.add_publication("launch", suspend=True)
    s.step(T0)
    st = s.status("launch")
    assert st["phase"] == "Suspended" and s.target("launch")["phase"] == "Suspended"
    assert conds(st)["Ready"] == ("False", "Suspended") and conds(st)["Stalled"][0] == "False"
    s.publications["launch"]["spec"]["suspend"] = False
    assert len(s.step(at(1)).creates) == 1


def test_a_dead_letter_is_stalled_and_says_how_to_redrive():
    s = Sim()
    s.add_adapter(A)
    s.add_publication("launch")
    s.step(T0)
    s.finish("launch", A, failed("rejected", message="HTTP 422 too long"), now=at(1))
    s.step(at(1))
    st = s.status("launch")
    assert conds(st)["Stalled"] == ("True", "DeadLetter")
    assert "kubectl herald redrive launch" in st["message"]


def test_adapter_conditions_and_events_follow_the_circuit():
    s = Sim()
    s.add_adapter(A, circuitBreaker={"failureThreshold": 1, "cooldown": "60s"})
    s.add_publication("launch")
    s.step(T0)
    assert conds(s.adapter_status())["Ready"] == ("True", "Ready")
    s.finish("launch", A, failed("server_error"), now=at(1))
    s.step(at(1))
    assert conds(s.adapter_status())["Ready"] == ("False", "CircuitOpen")
    assert conds(s.adapter_status())["Reconciling"] == ("True", "CircuitOpen")
    assert ("Warning", "CircuitOpened") in adapter_events(s)
    n = len(s.events)
    s.step(at(62))  # the cooldown is over: a probe starts
    circuit = s.adapter_status()["circuit"]
    assert circuit["state"] == "HalfOpen" and circuit.get("nextProbeAt") is None
    assert ("Normal", "CircuitHalfOpen") in adapter_events(s, n)
    s.finish("launch", A, published(), now=at(63))
    s.step(at(63))
    assert ("Normal", "CircuitClosed") in adapter_events(s, n)
    assert conds(s.adapter_status())["Ready"] == ("True", "Ready")


def test_refused_and_missing_credentials_are_told_apart_and_their_return_is_said():
    s = Sim()
    s.add_adapter(A, credentialsSecretRef={"name": "creds"})
    s.add_publication("launch")
    s.set_secret("creds", None)  # the Secret does not exist
    s.step(T0)
    st = s.adapter_status()
    assert st["credentials"]["reason"] == "SecretNotFound"
    assert condition_of(st, "CredentialsValid")["reason"] == "SecretNotFound"
    assert conds(st)["Stalled"] == ("True", "SecretNotFound")
    assert ("Warning", "SecretNotFound") in adapter_events(s)
    n = len(s.events)
    s.set_secret("creds", "7")  # created
    s.step(at(1))
    assert ("Normal", "CredentialsAccepted") in adapter_events(s, n)
    s.finish("launch", A, failed("auth", message="HTTP 401"), now=at(2))
    s.step(at(2))
    st = s.adapter_status()
    assert st["credentials"]["reason"] == "Refused" and conds(st)["Stalled"] == ("True", "CredentialsRefused")
    assert ("Warning", "CredentialsRefused") in adapter_events(s, n)


def test_pause_and_resume_are_events_and_the_resume_is_written_at_once():
    s = Sim()
    s.add_adapter(A, paused=True)
    s.add_publication("launch")
    s.step(T0)
    assert conds(s.adapter_status())["Ready"] == ("False", "Paused")
    assert ("Normal", "Paused") in adapter_events(s)
    assert s.target("launch")["reason"] == "AdapterPaused"
    s.adapters[A]["spec"]["paused"] = False
    s.adapters[A]["metadata"]["generation"] = 2
    plan = s.step(at(1))
    assert ("Normal", "Resumed") in adapter_events(s)
    from herald.reconciler import progress_only

    new = plan.publication_status[(s.ns, "launch")]
    assert progress_only(new, {"targets": [dict(s.target("launch"), phase="Queued", reason="AdapterPaused")]}) is False


def test_fixing_the_adapters_spec_lets_the_circuit_probe_at_once_and_retries_refused_credentials():
    s = Sim()
    s.add_adapter(A, credentialsSecretRef={"name": "creds"}, circuitBreaker={"failureThreshold": 1, "cooldown": "30m"})
    s.set_secret("creds", "5")
    s.add_publication("launch")
    s.step(T0)
    s.finish("launch", A, failed("network"), now=at(1))
    s.step(at(1))
    assert s.adapter_status()["circuit"]["state"] == "Open"
    # The user fixes the endpoint: the next decision probes instead of waiting 30 minutes.
    s.adapters[A]["spec"]["endpoint"] = "https://fixed.example"
    s.adapters[A]["metadata"]["generation"] = 2
    plan = s.step(at(2))
    assert len(plan.creates) == 1
    assert s.adapter_status()["circuit"]["state"] == "HalfOpen"
    s.finish("launch", A, failed("auth", message="HTTP 401"), now=at(3))
    s.step(at(3))
    assert s.adapter_status()["credentials"]["valid"] is False
    s.adapters[A]["spec"]["credentialsSecretRef"] = {"name": "creds"}  # any spec change re-checks
    s.adapters[A]["metadata"]["generation"] = 3
    s.step(at(4) + timedelta(seconds=0))
    assert s.adapter_status()["credentials"]["valid"] is True


def test_retry_now_ends_the_backoff_once():
    s = Sim()
    s.add_adapter(A)
    s.add_publication("launch", retryPolicy={"backoff": {"initial": "10m"}})
    s.step(T0)
    s.finish("launch", A, failed("server_error"), now=at(1))
    s.step(at(1))
    assert s.target("launch")["phase"] == "Retrying" and s.step(at(2)).creates == []
    s.publications["launch"]["metadata"]["annotations"]["herald.dev/retry-now"] = "2030-06-01T09:00:03Z"
    s.step(at(3))
    plan = s.step(at(3))
    assert len(plan.creates) == 1 or s.target("launch")["attempts"] == 2
    assert s.status("launch")["observedRetryNow"] == "2030-06-01T09:00:03Z"
    assert [e.reason for e in s.events].count("RetryNow") == 1


def test_retry_now_for_one_target_leaves_the_other_waiting():
    s = Sim()
    for name in ("a1", "a2"):
        s.add_adapter(name)
    s.add_publication("launch", targets=["a1", "a2"], retryPolicy={"backoff": {"initial": "10m"}})
    s.step(T0)
    for name in ("a1", "a2"):
        s.finish("launch", name, failed("server_error"), now=at(1))
    s.step(at(1))
    waiting = s.target("launch", "a2")["nextAttemptAt"]
    s.publications["launch"]["metadata"]["annotations"]["herald.dev/retry-now"] = "2030-06-01T09:00:03Z targets=a1"
    s.step(at(3))
    s.step(at(3))
    assert s.target("launch", "a1")["attempts"] == 2
    assert s.target("launch", "a2")["nextAttemptAt"] == waiting and s.target("launch", "a2")["attempts"] == 1

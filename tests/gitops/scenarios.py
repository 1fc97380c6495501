"""Real Publications and PlatformAdapters in every state a GitOps tool has to judge, made by the real
operator against the cluster (kwok decides what each simulated adapter pod reports), then read back
from the API. Used by the health tests and by ``capture.py``, which writes Argo CD's testdata."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.support.herald import Herald, condition, fate, result
from tests.support.operator import OperatorProcess

PUB, ADAPTER = "Publication", "PlatformAdapter"


def _cond(obj: dict, type_: str, status: str, reason: str | None = None) -> bool:
    c = condition(obj, type_) or {}
    current = (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
    return current and c.get("status") == status and (reason is None or c.get("reason") == reason)


@dataclass(frozen=True)
class Case:
    """One object: its kind and name, the state it is waited into (None: taken as it is), and the
    health Argo CD (with gitops/argocd's scripts) and kstatus give it."""

    name: str
    kind: str
    what: str
    ready: Callable[[dict], bool] | None
    argo: str
    kstatus: str


# The operator runs while these are made; each is waited into its state.
LIVE = (
    Case(
        "healthy", ADAPTER, "an adapter that posted", lambda a: _cond(a, "Ready", "True", "Ready"), "Healthy", "Current"
    ),
    Case(
        "circuit-open",
        ADAPTER,
        "circuit open (failureThreshold 1, a server_error; cooldown 10m)",
        lambda a: _cond(a, "Ready", "False", "CircuitOpen") and _circuit(a) == "Open",
        "Progressing",
        "InProgress",
    ),
    Case(
        "half-open",
        ADAPTER,
        "circuit half-open (cooldown 1s over, no attempt due for the probe)",
        lambda a: _cond(a, "Ready", "True", "HalfOpen") and _circuit(a) == "HalfOpen",
        "Healthy",
        "InProgress",  # kstatus: Reconciling=True wins over Ready=True
    ),
    Case(
        "paused",
        ADAPTER,
        "spec.paused",
        lambda a: _cond(a, "Ready", "False", "Paused"),
        "Suspended",
        "InProgress",  # kstatus has no suspended: Ready=False alone is InProgress
    ),
    Case(
        "credentials-refused",
        ADAPTER,
        "the platform refused its credentials (auth)",
        lambda a: _cond(a, "Stalled", "True", "CredentialsRefused"),
        "Degraded",
        "Failed",
    ),
    Case("published", PUB, "published", lambda p: _cond(p, "Ready", "True", "Published"), "Healthy", "Current"),
    Case(
        "retrying",
        PUB,
        "attempt 1 failed with server_error; the next one waits 10m",
        lambda p: _cond(p, "Reconciling", "True", "RetryServerError"),
        "Progressing",
        "InProgress",
    ),
    Case(
        "stuck-on-credentials",
        PUB,
        "waits for credentials only a user can fix",
        lambda p: _cond(p, "Stalled", "True", "CredentialsInvalid"),
        "Degraded",
        "Failed",
    ),
    Case(
        "dead-lettered",
        PUB,
        "rejected by the platform: in the dead letter",
        lambda p: _cond(p, "Stalled", "True", "DeadLetter"),
        "Degraded",
        "Failed",
    ),
    Case(
        "suspended",
        PUB,
        "spec.suspend",
        lambda p: _cond(p, "Ready", "False", "Suspended"),
        "Suspended",
        "InProgress",  # kstatus has no suspended: Ready=False alone is InProgress
    ),
)
# Made or changed once the operator has stopped, so they show what it has not seen yet.
UNOBSERVED = (
    Case(
        "not-yet-observed",
        PUB,
        "created while no operator runs: no status",
        None,
        "Progressing",
        "Current",  # kstatus: no observedGeneration and no conditions is Current
    ),
    Case(
        "published-then-edited",
        PUB,
        "spec edited after it published, not yet observed",
        None,
        "Progressing",
        "InProgress",
    ),
    Case("healthy-then-edited", ADAPTER, "spec edited, not yet observed", None, "Progressing", "InProgress"),
)
CASES = {c.name: c for c in (*LIVE, *UNOBSERVED)}


def _circuit(a: dict) -> str | None:
    return ((a.get("status") or {}).get("circuit") or {}).get("state")


def produce(herald: Herald, operator: OperatorProcess) -> dict[str, dict]:
    """Makes every case in ``herald.namespace`` with ``operator`` running, stops it, makes the
    unobserved ones, and returns each object as the API server returns it, by case name."""
    server_error = fate(result("failed", errorClass="server_error", message="HTTP 503"), exit_code=1)
    herald.core.create_namespaced_secret(
        herald.namespace, {"metadata": {"name": "expired"}, "stringData": {"accessToken": "expired-token"}}
    )
    herald.adapter("healthy")
    herald.adapter(
        "flaky",
        annotations=server_error,
        retryPolicy={"backoff": {"initial": "10m"}},
        circuitBreaker={"failureThreshold": 100},
    )
    herald.adapter(
        "circuit-open",
        annotations=server_error,
        retryPolicy={"backoff": {"initial": "10m"}},
        circuitBreaker={"failureThreshold": 1, "cooldown": "10m", "maxCooldown": "30m"},
    )
    herald.adapter(
        "half-open",
        annotations=server_error,
        retryPolicy={"backoff": {"initial": "10m"}},
        circuitBreaker={"failureThreshold": 1, "cooldown": "1s", "maxCooldown": "30m"},
    )
    herald.adapter("paused", paused=True)
    herald.adapter(
        "credentials-refused",
        annotations=fate(
            result("failed", errorClass="auth", message="HTTP 401 The access token is invalid"), exit_code=1
        ),
        credentialsSecretRef={"name": "expired"},
    )
    herald.adapter(
        "rejecting",
        annotations=fate(result("failed", errorClass="rejected", message="HTTP 422 text too long"), exit_code=1),
    )
    herald.publication("published", ["healthy"])
    herald.publication("retrying", ["flaky"])
    herald.publication("stuck-on-credentials", ["credentials-refused"])
    herald.publication("dead-lettered", ["rejecting"])
    herald.publication("suspended", ["healthy"], suspend=True)
    herald.publication("opens-the-circuit", ["circuit-open"])
    herald.publication("opens-it-briefly", ["half-open"])

    got: dict[str, dict] = {}
    for case in LIVE:
        wait = herald.wait_adapter if case.kind == ADAPTER else herald.wait_publication
        assert case.ready is not None
        got[case.name] = wait(case.name, case.ready, timeout=60, what=f"{case.kind} {case.name}: {case.what}")

    # The edits below must land on objects the operator has finished with (no write of its own racing).
    operator.stop()
    herald.publication("not-yet-observed", ["healthy"])
    herald.patch_publication("published", {"spec": {"priority": 5}})
    herald.patch_adapter("healthy", {"concurrency": 2})
    got["not-yet-observed"] = herald.get_publication("not-yet-observed")
    got["published-then-edited"] = herald.get_publication("published")
    got["healthy-then-edited"] = herald.get_adapter("healthy")
    for name in ("published-then-edited", "healthy-then-edited"):
        obj = got[name]
        assert obj["metadata"]["generation"] == obj["status"]["observedGeneration"] + 1, obj
    assert "status" not in got["not-yet-observed"]
    return got


def without_noise(obj: dict) -> dict:
    """The object as a test input: managedFields (which field manager wrote what) dropped."""
    meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    return {**obj, "metadata": meta}

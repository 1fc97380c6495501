"""The level-based decision: from the objects in the API (and the clock) to the writes to make.

``reconcile(world, now)`` is pure. It reads Publications, PlatformAdapters, Jobs, Pods and the
Secrets' versions, and returns a ``Plan``: Jobs to create or delete, statuses and labels to patch,
Events to emit, observations for metrics and alerts, and when to look again. Running it twice on
the same world gives the same plan; running it after a restart continues where the last one ended.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Mapping

from .admission import Candidate, Gate, Wait, admit
from .circuit import BreakerConfig, Circuit, CircuitState
from .durations import format_duration, format_time, parse_duration, parse_time
from .errors import BREAKER_CLASSES, ErrorClass
from .jobs import JobDefaults, build_job_spec
from .results import Outcome, read_outcome
from .retry import Action, RetryPolicy, decide
from .status import TERMINAL, Phase, condition, publication_conditions, publication_phase
from .views import AdapterView, JobView, PodView, PublicationView

DEAD_LETTER_LABEL = "herald.dev/dead-letter"
JOB_CREATE_FAILED = "JobCreateFailed"
ANNOTATION_CREDENTIALS_VERSION = "herald.dev/credentials-version"

Key = tuple[str, str]


@dataclass(frozen=True)
class World:
    publications: Mapping[Key, PublicationView]
    adapters: Mapping[Key, AdapterView]
    jobs: Mapping[Key, JobView]
    pods: Mapping[Key, PodView]
    # (namespace, secret name) -> resourceVersion; None when the Secret does not exist.
    secrets: Mapping[Key, str | None] = field(default_factory=dict)
    # Exact creation times of the Jobs this process created (the API keeps whole seconds).
    job_starts: Mapping[Key, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class EventSpec:
    kind: str  # Publication | PlatformAdapter
    namespace: str
    name: str
    uid: str
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class AttemptObservation:
    """One finished attempt, for metrics and alerts."""

    namespace: str
    publication: str
    adapter: str
    platform: str
    attempt: int
    outcome: Outcome
    retried: bool = False
    dead_letter: bool = False
    latency: float | None = None  # due time -> published
    failed_attempts: int = 0  # failed attempts of this target since its last success or redrive


@dataclass
class JobCreate:
    manifest: dict[str, Any]
    publication: Key
    target: dict[str, Any]  # the planned target status, amended if the create fails
    previous_attempt: int


@dataclass
class Plan:
    creates: list[JobCreate] = field(default_factory=list)
    deletes: list[Key] = field(default_factory=list)
    publication_status: dict[Key, dict[str, Any]] = field(default_factory=dict)
    publication_labels: dict[Key, dict[str, str | None]] = field(default_factory=dict)
    adapter_status: dict[Key, dict[str, Any]] = field(default_factory=dict)
    events: list[EventSpec] = field(default_factory=list)
    attempts: list[AttemptObservation] = field(default_factory=list)
    gauges: dict[Key, dict[str, Any]] = field(default_factory=dict)  # per adapter
    wake_at: datetime | None = None

    def wake(self, at: datetime | None) -> None:
        if at is not None and (self.wake_at is None or at < self.wake_at):
            self.wake_at = at


@dataclass
class _AdapterState:
    view: AdapterView | None
    circuit: Circuit
    breaker: BreakerConfig
    blocked_until: datetime | None
    remaining: int | None
    reset_at: datetime | None
    creds_valid: bool
    creds_since: datetime | None
    creds_version: str | None
    creds_message: str
    last_published: datetime | None
    secret_version: str | None = None
    running: int = 0
    starts: list[datetime] = field(default_factory=list)
    pending: int = 0
    dead: int = 0
    candidates: list[tuple[Candidate, dict[str, Any], PublicationView, int]] = field(default_factory=list)
    opened: bool = False

    @property
    def platform(self) -> str:
        return (self.view.spec.get("platform") if self.view else None) or "unknown"


def _adapter_state(view: AdapterView | None, secrets: Mapping[Key, str | None]) -> _AdapterState:
    st = view.status if view else {}
    rl = st.get("rateLimit") or {}
    cr = st.get("credentials") or {}
    valid = cr.get("valid", True) is not False
    version = cr.get("secretResourceVersion")
    message = cr.get("message") or ""
    ref = ((view.spec.get("credentialsSecretRef") or {}).get("name")) if view else None
    current = None
    if view is not None and ref:
        current = secrets.get((view.namespace, ref), "unknown")
        if current is None:
            valid, message = False, f"Secret {ref} not found"
        elif not valid and current != "unknown" and (version is None or current != version):
            valid, message = True, f"Secret {ref} changed"
        elif not valid and message.startswith("Secret") and message.endswith("not found") and current != "unknown":
            valid, message = True, f"Secret {ref} found"
    return _AdapterState(
        view=view,
        circuit=Circuit.from_status(st.get("circuit")),
        breaker=BreakerConfig.from_spec(view.spec.get("circuitBreaker") if view else None),
        blocked_until=parse_time(rl.get("blockedUntil")),
        remaining=rl.get("remaining"),
        reset_at=parse_time(rl.get("resetAt")),
        creds_valid=valid,
        creds_since=None if valid else (parse_time(cr.get("invalidSince")) or None),
        creds_version=version if not valid else None,
        creds_message=message if not valid else "",
        last_published=parse_time(st.get("lastPublishedTime")),
        secret_version=current if current not in (None, "unknown") else None,
    )


def _fresh_target(adapter: str) -> dict[str, Any]:
    return {
        "adapter": adapter, "phase": Phase.PENDING, "reason": "", "message": "",
        "attempts": 0, "retries": 0, "jobName": None, "lastErrorClass": None, "lastError": None,
        "lastBackoffSeconds": None, "nextAttemptAt": None, "postId": None, "url": None,
        "publishedTime": None, "observedAttempt": 0, "verifyNext": False, "budgetStart": 0,
        "failures": {}, "deadLetter": False, "waitingSince": None,
    }


def reconcile(world: World, now: datetime, defaults: JobDefaults = JobDefaults()) -> Plan:
    plan = Plan()
    adapters: dict[Key, _AdapterState] = {}

    def adapter(ns: str, name: str) -> _AdapterState:
        if (ns, name) not in adapters:
            adapters[(ns, name)] = _adapter_state(world.adapters.get((ns, name)), world.secrets)
        return adapters[(ns, name)]

    for key in world.adapters:
        adapter(*key)

    jobs_by_owner: dict[str, dict[str, list[JobView]]] = defaultdict(lambda: defaultdict(list))
    for job in world.jobs.values():
        if job.owner_uid:
            jobs_by_owner[job.owner_uid][job.target].append(job)
        a = adapter(job.namespace, job.target)
        # Without the exact time, assume the latest moment in the creation second: never over-admit.
        a.starts.append(world.job_starts.get(job.key) or job.created + timedelta(seconds=1))
        if not job.done and not job.deleting:
            a.running += 1
    pods_by_job: dict[Key, list[PodView]] = defaultdict(list)
    for pod in world.pods.values():
        pods_by_job[(pod.namespace, pod.job)].append(pod)

    staged: list[tuple[PublicationView, list[dict[str, Any]], dict[str, Any]]] = []
    for pub in sorted(world.publications.values(), key=lambda p: (p.namespace, p.name)):
        targets, extra = _reconcile_publication(pub, jobs_by_owner.get(pub.uid, {}), pods_by_job, adapter, now, plan)
        staged.append((pub, targets, extra))

    # Admission, per adapter, over every due target in the namespace.
    for akey, a in sorted(adapters.items()):
        if not a.candidates:
            continue
        gate = Gate(
            concurrency=int((a.view.spec.get("concurrency") if a.view else 1) or 1),
            rate_limit=_rate(a.view)[0],
            rate_period=_rate(a.view)[1],
            recent_starts=a.starts,
            running=a.running,
            paused=bool(a.view.spec.get("paused")) if a.view else False,
            circuit=a.circuit,
            blocked_until=a.blocked_until,
            credentials_valid=a.creds_valid,
            exists=a.view is not None,
        )
        decision = admit(gate, [c for c, *_ in a.candidates], now)
        plan.wake(decision.wake_at)
        started = set(decision.start)
        for cand, t, pub, _ in a.candidates:
            if cand.key in started:
                _start_attempt(pub, t, a, now, defaults, plan, world.secrets)
            else:
                reason = decision.waiting[cand.key]
                _set(t, Phase.QUEUED, reason, _wait_message(reason, a, now))
                a.pending += 1
                if reason != Wait.CREDENTIALS:
                    t["waitingSince"] = None
                else:
                    t["waitingSince"] = t.get("waitingSince") or format_time(now)
                    timeout = _policy(pub, a).credentials_timeout
                    since = parse_time(t["waitingSince"])
                    plan.wake(since + timedelta(seconds=timeout))

    for pub, targets, extra in staged:
        for t in targets:
            if t.get("deadLetter"):
                adapter(pub.namespace, t["adapter"]).dead += 1
        _write_publication(pub, targets, extra, now, plan)
    for akey, a in adapters.items():
        if a.view is not None:
            _write_adapter(a, now, plan)
    return plan


def _rate(view: AdapterView | None) -> tuple[int | None, float]:
    rl = (view.spec.get("rateLimit") if view else None) or {}
    if not rl.get("limit"):
        return None, 60.0
    return int(rl["limit"]), parse_duration(rl.get("period"), 60.0)


def _policy(pub: PublicationView, a: _AdapterState) -> RetryPolicy:
    return RetryPolicy.from_spec(a.view.spec.get("retryPolicy") if a.view else None, pub.spec.get("retryPolicy"))


def _wait_message(reason: str, a: _AdapterState, now: datetime) -> str:
    circuit = a.circuit.at(now)
    probe = "a probe attempt is running" if circuit.state is CircuitState.HALF_OPEN \
        else f"next probe at {format_time(circuit.next_probe_at)}"
    return {
        Wait.PAUSED: "the adapter is paused",
        Wait.CIRCUIT_OPEN: f"circuit {circuit.state.value}; {probe}",
        Wait.RATE_LIMITED: f"the platform rate-limited this adapter until {format_time(a.blocked_until)}",
        Wait.CREDENTIALS: f"credentials are invalid: {a.creds_message}".rstrip(": "),
        Wait.CONCURRENCY: "waiting for a free concurrency slot",
        Wait.RATE_LIMIT: "waiting for the adapter's rate limit window",
        Wait.NO_ADAPTER: "the PlatformAdapter does not exist",
    }.get(reason, reason)


def _set(t: dict[str, Any], phase: str, reason: str = "", message: str = "") -> None:
    t["phase"], t["reason"], t["message"] = phase, reason, message


def _reconcile_publication(pub, jobs_by_target, pods_by_job, adapter, now, plan):
    spec, status = pub.spec, pub.status
    old_targets = {t.get("adapter"): t for t in status.get("targets") or []}
    publish_at = parse_time(spec.get("publishAt")) if spec.get("publishAt") else None
    suspended = bool(spec.get("suspend"))
    redrive = pub.redrive if pub.redrive and pub.redrive != status.get("observedRedrive") else None
    targets: list[dict[str, Any]] = []
    extra: dict[str, Any] = {"observedRedrive": status.get("observedRedrive")}
    if pub.redrive and pub.redrive != status.get("observedRedrive"):
        extra["observedRedrive"] = pub.redrive

    for entry in spec.get("targets") or []:
        name = entry["adapter"]
        t = {**_fresh_target(name), **{k: v for k, v in (old_targets.get(name) or {}).items()}}
        t["failures"] = dict(t.get("failures") or {})
        a = adapter(pub.namespace, name)
        jobs = sorted(jobs_by_target.get(name, []), key=lambda j: j.attempt)
        if jobs and jobs[-1].attempt > t["attempts"]:
            # The Job exists but the status write after creating it was lost: adopt it.
            t["attempts"] = jobs[-1].attempt
            t["jobName"] = jobs[-1].name
        latest = next((j for j in reversed(jobs) if j.attempt == t["attempts"]), None)

        if redrive and t["phase"] == Phase.FAILED:
            t.update(failures={}, budgetStart=t["attempts"], deadLetter=False, nextAttemptAt=None,
                     lastBackoffSeconds=None, waitingSince=None)
            _set(t, Phase.PENDING, "Redriven", f"redriven ({redrive}) with a fresh retry budget")
            plan.events.append(_event(pub, "Normal", "Redriven", f"target {name} redriven with a fresh retry budget"))

        in_flight = t["attempts"] > t["observedAttempt"]
        if in_flight:
            outcome: Outcome | None
            if latest is None:
                outcome = Outcome(published=False, error_class=ErrorClass.UNKNOWN_OUTCOME,
                                  message=f"Job {t['jobName']} disappeared before it finished")
            else:
                outcome = read_outcome(latest, pods_by_job.get(latest.key, []))
            if outcome is None:
                if suspended:
                    plan.deletes.append(latest.key)
                    t["observedAttempt"] = t["attempts"]
                    _set(t, Phase.CANCELLED, "Suspended", f"attempt {t['attempts']} stopped: publication suspended")
                    plan.events.append(_event(pub, "Normal", "AttemptCancelled",
                                              f"attempt {t['attempts']} of {name} cancelled (suspend)"))
                else:
                    _set(t, Phase.PUBLISHING, "JobRunning", f"attempt {t['attempts']} running in Job {latest.name}")
                targets.append(t)
                continue
            if outcome.stop_job and latest is not None:
                plan.deletes.append(latest.key)
            _apply_outcome(pub, t, a, outcome, latest, now, plan)

        if t["phase"] in TERMINAL:
            targets.append(t)
            continue
        if suspended:
            if t["phase"] != Phase.CANCELLED:
                _set(t, Phase.CANCELLED, "Suspended", "publication suspended")
            targets.append(t)
            continue
        if t["phase"] == Phase.QUEUED and t["reason"] == Wait.CREDENTIALS and not a.creds_valid:
            policy = _policy(pub, a)
            since = parse_time(t.get("waitingSince")) or now
            if now >= since + timedelta(seconds=policy.credentials_timeout):
                _dead_letter(pub, t, a, now, plan,
                             f"credentials stayed invalid for more than {format_duration(policy.credentials_timeout)}")
                targets.append(t)
                continue
        due = _due(t, publish_at, pub, now)
        if due is None:  # retry later, or scheduled
            next_at = parse_time(t.get("nextAttemptAt"))
            if next_at is None:
                plan.wake(publish_at)
                _set(t, Phase.SCHEDULED, "PublishAtInFuture", f"publishing at {format_time(publish_at)}")
            else:
                plan.wake(next_at)
                if t["phase"] == Phase.CANCELLED:  # resumed after a suspend, during a backoff
                    _set(t, Phase.RETRYING, "BackoffScheduled", f"next attempt at {t['nextAttemptAt']}")
                elif t["reason"] != JOB_CREATE_FAILED:
                    t["phase"] = Phase.RETRYING
            targets.append(t)
            continue
        cand = Candidate(key=(pub.namespace, pub.name, name), priority=int(spec.get("priority") or 0),
                         due=due, created=pub.created)
        a.candidates.append((cand, t, pub, 0))
        targets.append(t)
    return targets, extra


def _due(t: dict[str, Any], publish_at: datetime | None, pub: PublicationView, now: datetime) -> datetime | None:
    """When the target became due, or None if it is not due yet."""
    nxt = parse_time(t.get("nextAttemptAt"))
    if nxt is not None and nxt > now:
        return None
    if t["attempts"] == 0 and publish_at is not None and publish_at > now:
        return None
    if t["attempts"] == 0 or t["phase"] in (Phase.PENDING, Phase.CANCELLED):
        return nxt or publish_at or pub.created
    if t["phase"] == Phase.QUEUED and t["reason"] == Wait.CREDENTIALS:
        return parse_time(t.get("waitingSince")) or now
    return nxt or now


def _start_attempt(pub, t, a: _AdapterState, now, defaults, plan, secrets) -> None:
    attempt = t["attempts"] + 1
    meta = {"namespace": pub.namespace, "name": pub.name, "uid": pub.uid}
    job = build_job_spec(meta, pub.spec, t["adapter"], a.view.spec, attempt, bool(t["verifyNext"]), defaults)
    ref = (a.view.spec.get("credentialsSecretRef") or {}).get("name")
    if ref and secrets.get((pub.namespace, ref)):
        job["metadata"]["annotations"][ANNOTATION_CREDENTIALS_VERSION] = secrets[(pub.namespace, ref)]
    plan.creates.append(JobCreate(job, pub.key, t, t["attempts"]))
    a.running += 1
    a.starts.append(now)
    mode = " in verify mode" if t["verifyNext"] else ""
    t.update(attempts=attempt, jobName=job["metadata"]["name"], nextAttemptAt=None, waitingSince=None)
    _set(t, Phase.PUBLISHING, "JobRunning", f"attempt {attempt} running in Job {job['metadata']['name']}")
    plan.events.append(_event(pub, "Normal", "AttemptStarted",
                              f"attempt {attempt} for {t['adapter']} started{mode} (Job {job['metadata']['name']})"))


def _apply_outcome(pub, t, a: _AdapterState, outcome: Outcome, job: JobView | None, now, plan) -> None:
    attempt = t["attempts"]
    t["observedAttempt"] = attempt
    if outcome.rate_limit_remaining is not None:
        a.remaining = outcome.rate_limit_remaining
        a.reset_at = outcome.rate_limit_reset_at
    name = t["adapter"]
    if outcome.published:
        due = parse_time(pub.spec.get("publishAt")) if pub.spec.get("publishAt") else pub.created
        finished = outcome.finished or now
        t.update(postId=outcome.post_id, url=outcome.url, publishedTime=format_time(finished),
                 nextAttemptAt=None, verifyNext=False, waitingSince=None)
        how = "verified an earlier post" if outcome.verified else "published"
        _set(t, Phase.PUBLISHED, "Published", f"attempt {attempt} {how}" + (f": {outcome.post_id}" if outcome.post_id else ""))
        a.circuit = a.circuit.record_success()
        if not a.creds_valid:  # a post went through: the credentials work
            a.creds_valid, a.creds_since, a.creds_version, a.creds_message = True, None, None, ""
        a.last_published = max(filter(None, [a.last_published, finished]))
        plan.events.append(_event(pub, "Normal", "AttemptSucceeded", f"attempt {attempt} for {name} {how}"
                                  + (f" (post {outcome.post_id})" if outcome.post_id else "")))
        if outcome.no_result:
            plan.events.append(_event(pub, "Warning", "NoResult",
                                      f"attempt {attempt} for {name} exited 0 without a result; counted as published"))
        plan.attempts.append(AttemptObservation(pub.namespace, pub.name, name, a.platform, attempt, outcome,
                                                latency=max(0.0, (finished - due).total_seconds()) if due else None))
        return

    cls = outcome.error_class or ErrorClass.POD_FAILURE
    policy = _policy(pub, a)
    decision = decide(policy, cls, t["failures"], outcome.retry_after, seed=f"{pub.uid}/{name}")
    t["failures"][cls.value] = t["failures"].get(cls.value, 0) + 1
    failed_so_far = sum(t["failures"].values())
    t.update(lastErrorClass=cls.value, lastError=outcome.message or None)
    detail = f"{cls.value}" + (f" ({outcome.message})" if outcome.message else "")
    budget = f" of {decision.max_attempts}" if decision.max_attempts else ""
    failed_text = f"attempt {decision.attempt_in_budget or attempt}{budget} failed: {detail}"

    if cls in BREAKER_CLASSES:
        before = a.circuit.at(now).state
        a.circuit = a.circuit.record_failure(now, a.breaker)
        if a.circuit.state is CircuitState.OPEN and before is not CircuitState.OPEN:
            a.opened = True
            plan.wake(a.circuit.next_probe_at)
    elif cls is ErrorClass.REJECTED:
        a.circuit = a.circuit.record_success() if a.circuit.state is not CircuitState.OPEN else a.circuit
    if cls is ErrorClass.RATE_LIMITED:
        until = now + timedelta(seconds=decision.delay) if decision.action is Action.RETRY else now
        a.blocked_until = max(filter(None, [a.blocked_until, until]))
    if cls is ErrorClass.AUTH and job is not None and job.credentials_version and a.secret_version \
            and job.credentials_version != a.secret_version:
        # The refused attempt ran with an older Secret; the new one has not been tried yet.
        plan.events.append(_event(pub, "Warning", "AttemptFailed", f"attempt {attempt} for {name} failed: {detail}"))
        plan.attempts.append(AttemptObservation(pub.namespace, pub.name, name, a.platform, attempt, outcome,
                                                retried=True, failed_attempts=failed_so_far))
        t.update(retries=t["retries"] + 1, lastBackoffSeconds=0.0, nextAttemptAt=format_time(now))
        _set(t, Phase.RETRYING, "RetryAuth", f"{failed_text}; the Secret changed since, retrying with it now")
        plan.wake(now)
        return
    if cls is ErrorClass.AUTH:
        version = job.credentials_version if job else None
        a.creds_valid = False
        a.creds_since = a.creds_since or now
        a.creds_version = version or a.creds_version
        a.creds_message = f"the platform refused the credentials (attempt {attempt} of {name})"

    plan.events.append(_event(pub, "Warning", "AttemptFailed", f"attempt {attempt} for {name} failed: {detail}"))
    if decision.action is Action.DEAD_LETTER:
        plan.attempts.append(AttemptObservation(pub.namespace, pub.name, name, a.platform, attempt, outcome,
                                                dead_letter=True, failed_attempts=failed_so_far))
        _dead_letter(pub, t, a, now, plan, f"{failed_text}; {decision.reason}")
        return
    if decision.action is Action.WAIT_CREDENTIALS:
        plan.attempts.append(AttemptObservation(pub.namespace, pub.name, name, a.platform, attempt, outcome,
                                                failed_attempts=failed_so_far))
        t.update(waitingSince=format_time(now), nextAttemptAt=None, lastBackoffSeconds=None)
        _set(t, Phase.QUEUED, Wait.CREDENTIALS, f"{failed_text}; waiting for the Secret to change")
        return
    at = now + timedelta(seconds=decision.delay)
    t.update(retries=t["retries"] + 1, lastBackoffSeconds=decision.delay, nextAttemptAt=format_time(at),
             # Once an outcome was unknown, every later attempt verifies first, until one succeeds.
             verifyNext=decision.verify or bool(t.get("verifyNext")))
    verify = " in verify mode" if decision.verify else ""
    _set(t, Phase.RETRYING, f"Retry{_camel(cls.value)}",
         f"{failed_text}; next attempt{verify} in {format_duration(decision.delay)} at {format_time(at)}")
    plan.attempts.append(AttemptObservation(pub.namespace, pub.name, name, a.platform, attempt, outcome, retried=True,
                                            failed_attempts=failed_so_far))
    plan.wake(at)


def _camel(s: str) -> str:
    return "".join(p.capitalize() for p in s.split("_"))


def _dead_letter(pub, t, a, now, plan, message: str) -> None:
    t.update(deadLetter=True, nextAttemptAt=None, waitingSince=None)
    _set(t, Phase.FAILED, "DeadLetter", message)
    plan.events.append(_event(pub, "Warning", "DeadLetter", f"target {t['adapter']} moved to the dead letter: {message}"))


def _event(pub: PublicationView, type_: str, reason: str, message: str) -> EventSpec:
    return EventSpec("Publication", pub.namespace, pub.name, pub.uid, type_, reason, message)


def clean(value: Any) -> Any:
    """``value`` without None entries in its mappings: the API drops them on a merge patch."""
    if isinstance(value, Mapping):
        return {k: clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def changed(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    return any(clean(new.get(k)) != clean(old.get(k)) for k in new)


_PROGRESS_TARGET_FIELDS = ("phase", "reason", "message", "attempts", "jobName", "nextAttemptAt", "waitingSince")
_PROGRESS_FIELDS = ("phase", "attempts", "nextAttemptAt", "conditions")


def progress_only(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether a status change only records attempts that started (no outcome, no decision).

    Such a change may be held back briefly: an attempt that ends soon is then written once,
    with its outcome, instead of twice."""
    old_targets = {t.get("adapter"): t for t in old.get("targets") or []}
    top = _PROGRESS_FIELDS + ("targets",)
    if not old_targets:  # no status yet: compare with what a fresh status would hold
        old_targets = {t["adapter"]: _fresh_target(t["adapter"]) for t in new.get("targets") or []}
        top += ("observedGeneration", "totalTargets", "publishedTargets", "observedRedrive")
    if len(old_targets) != len(new.get("targets") or []):
        return False
    for t in new.get("targets") or []:
        o = old_targets.get(t["adapter"])
        if o is None:
            return False
        if t["phase"] == Phase.PUBLISHING and int(t.get("observedAttempt") or 0) == int(o.get("observedAttempt") or 0):
            t, o = _without(t, _PROGRESS_TARGET_FIELDS), _without(o, _PROGRESS_TARGET_FIELDS)
        if clean(t) != clean(o):
            return False
    return clean(_without(new, top)) == clean(_without(old, top))


def _without(d: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


def _write_publication(pub: PublicationView, targets, extra, now, plan) -> None:
    status = pub.status
    suspended = bool(pub.spec.get("suspend"))
    phase = publication_phase([t["phase"] for t in targets], suspended)
    publish_at = parse_time(pub.spec.get("publishAt")) if pub.spec.get("publishAt") else None
    nexts = sorted(t["nextAttemptAt"] for t in targets if t.get("nextAttemptAt") and t["phase"] == Phase.RETRYING)
    new = {
        "phase": phase,
        "observedGeneration": pub.generation,
        "observedRedrive": extra.get("observedRedrive"),
        "publishedTargets": sum(1 for t in targets if t["phase"] == Phase.PUBLISHED),
        "totalTargets": len(targets),
        "attempts": sum(int(t["attempts"]) for t in targets),
        "nextAttemptAt": nexts[0] if nexts else (format_time(publish_at) if phase == Phase.SCHEDULED else None),
        "targets": targets,
    }
    new["conditions"] = publication_conditions(targets, phase, publish_at, pub.generation,
                                               list(status.get("conditions") or []), now)
    if changed(new, status):
        plan.publication_status[pub.key] = new
    dead = any(t.get("deadLetter") for t in targets)
    has_label = pub.labels.get(DEAD_LETTER_LABEL) == "true"
    if dead and not has_label:
        plan.publication_labels[pub.key] = {DEAD_LETTER_LABEL: "true"}
    elif not dead and has_label:
        plan.publication_labels[pub.key] = {DEAD_LETTER_LABEL: None}


def _write_adapter(a: _AdapterState, now: datetime, plan: Plan) -> None:
    view = a.view
    old = view.status
    circuit = a.circuit.at(now)
    blocked = a.blocked_until if a.blocked_until and a.blocked_until > now else None
    if blocked:
        plan.wake(blocked)
    if circuit.state is CircuitState.OPEN:
        plan.wake(circuit.next_probe_at)
    prev = list(old.get("conditions") or [])
    available = circuit.state is not CircuitState.OPEN
    paused = bool(view.spec.get("paused"))
    new = {
        "observedGeneration": view.generation,
        "queue": {"pending": a.pending, "running": a.running},
        "lastPublishedTime": format_time(a.last_published),
        "circuit": circuit.to_status(),
        "rateLimit": {"blockedUntil": format_time(blocked), "remaining": a.remaining,
                      "resetAt": format_time(a.reset_at)},
        "credentials": {"valid": a.creds_valid, "invalidSince": format_time(a.creds_since),
                        "secretResourceVersion": a.creds_version, "message": a.creds_message},
    }
    new["conditions"] = [
        condition("Available", available and not paused,
                  "CircuitOpen" if not available else ("Paused" if paused else "CircuitClosed" if circuit.state is CircuitState.CLOSED else "HalfOpen"),
                  f"circuit {circuit.state.value}" + (f" until {format_time(circuit.next_probe_at)}" if not available else ""),
                  view.generation, prev, now),
        condition("CredentialsValid", a.creds_valid, "Valid" if a.creds_valid else "Refused",
                  a.creds_message or "no credential failures seen", view.generation, prev, now),
    ]
    if changed(new, old):
        plan.adapter_status[view.key] = new
    plan.gauges[view.key] = {
        "platform": a.platform, "pending": a.pending, "running": a.running, "circuit": circuit.state,
        "remaining": a.remaining, "rate_limited": blocked is not None, "available": available,
        "credentials_valid": a.creds_valid, "opened": a.opened, "dead_letter": a.dead,
        "credentials_message": a.creds_message,
    }

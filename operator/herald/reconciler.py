"""The level-based decision: from the objects in the API (and the clock) to the writes to make.

``reconcile(world, now)`` is pure. It reads Publications, PlatformAdapters, Jobs, Pods and the
Secrets' versions, and returns a ``Plan``: Jobs to create or delete, statuses and labels to patch,
Events to emit, observations for metrics and alerts, and when to look again. Running it twice on
the same world gives the same plan; running it after a restart continues where the last one ended.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from herald_contract.redact import redact

from .admission import Candidate, Gate, Wait, admit
from .circuit import BreakerConfig, Circuit, CircuitState
from .durations import InvalidValue, format_duration, format_time, parse_duration, parse_time, safe_time
from .errors import BREAKER_CLASSES, ErrorClass
from .jobs import JobDefaults, build_job_spec
from .models import (
    AdapterStatus,
    CircuitStatus,
    Condition,
    CredentialsStatus,
    PublicationStatus,
    QueueStatus,
    RateLimitStatus,
    TargetStatus,
)
from .naming import job_name
from .queues import LATEST, AdapterQueue, QueueEntry
from .results import Outcome, read_outcome
from .retry import Action, RetryPolicy, decide
from .status import (
    FINISHED,
    TERMINAL,
    USER_FIX_REASONS,
    Phase,
    Readiness,
    condition,
    publication_conditions,
    publication_phase,
    publication_readiness,
    upsert_condition,
)
from .views import AdapterView, JobView, PodView, PublicationView

log = logging.getLogger("herald.reconciler")

DEAD_LETTER_LABEL = "herald.dev/dead-letter"
JOB_CREATE_FAILED = "JobCreateFailed"
ANNOTATION_CREDENTIALS_VERSION = "herald.dev/credentials-version"
# Why an adapter's credentials are not usable (status.credentials.reason, the CredentialsValid reason).
CREDENTIALS_REFUSED = "Refused"
SECRET_NOT_FOUND = "SecretNotFound"

Key = tuple[str, str]

# Stalled reasons: the object cannot progress until someone changes it (or, for a reconcile
# error, until the operator's retry succeeds).
INVALID_SPEC = "InvalidSpec"
RECONCILE_ERROR = "ReconcileError"
MAX_MESSAGE = 1024


@dataclass(frozen=True)
class AdapterLoad:
    """An adapter's Jobs as admission needs them: how many run, and when recent ones started."""

    running: int
    starts: tuple[datetime, ...]


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
    # Per adapter, from the store's indexes; None: computed from ``jobs`` (the whole world).
    loads: Mapping[Key, AdapterLoad] | None = None
    # Per adapter, targets in the dead letter as stored; None: counted from ``publications``.
    dead_letters: Mapping[Key, int] | None = None
    # Job creates the API server refused: (namespace, Job name) -> its message.
    create_failures: Mapping[Key, str] = field(default_factory=dict)
    # Credentials probes while an adapter's credentials are refused: the first delay and the
    # longest, in seconds (each failed probe doubles the delay).
    credentials_probe: tuple[float, float] = (30.0, 900.0)
    # A Publication decided alone (see Engine._decide): its adapters are read, and their status is
    # neither derived nor written (their own units do that, seeing their whole queues).
    adapters_read_only: bool = False
    # Per adapter, its queue as the store keeps it; None: every waiting target is in this world.
    # With queues, a decision sees only the queues' heads and what changed (Store.close): the
    # other targets still wait ahead in admission order, and count as pending.
    queues: Mapping[Key, AdapterQueue] | None = None


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


@dataclass(frozen=True)
class JobCreate:
    manifest: dict[str, Any]
    publication: Key
    target: str  # the adapter: its entry in the publication's planned status is amended if the create fails
    previous_attempt: int
    started: EventSpec | None = None  # posted once the Job exists, never before


@dataclass(frozen=True)
class Failure:
    """An object whose decision or write failed unexpectedly; the engine retries it with backoff."""

    kind: str  # publications | platformadapters
    key: Key
    message: str


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
    deletes_publications: list[Key] = field(default_factory=list)  # past spec.ttlSecondsAfterFinished
    # Admitted, but past the decision's start budget: nothing is decided for them now (the engine
    # drops them and decides them again next; see ``reconcile``'s start_budget).
    postponed: set[Key] = field(default_factory=set)
    # Per adapter, the Publications whose decision changed what its status records (an outcome
    # for the circuit breaker, the rate limit or the credentials; a credentials probe). An outcome
    # is written together with its adapter's status or not at all: it must count exactly once.
    adapter_effects: dict[Key, set[Key]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    wake_at: datetime | None = None

    def wake(self, at: datetime | None) -> None:
        if at is not None and (self.wake_at is None or at < self.wake_at):
            self.wake_at = at

    def keep_writes(self, budget: int) -> set[Key]:
        """Keep the writes of the first Publications (in the order decided) up to ``budget``
        writes, and drop everything about the others: their Jobs, statuses, labels, Events and
        finished attempts. Returns the dropped ones; deciding them again gives the same writes
        (the decision is level-based), so a big unit is written in bounded slices."""
        affecting = self.affecting()
        cost: dict[Key, int] = dict.fromkeys(affecting, 0)  # always kept (see adapter_effects)
        for jc in self.creates:
            cost[jc.publication] = cost.get(jc.publication, 0) + 2  # the Job and its AttemptStarted
        for key in [*self.publication_status, *self.publication_labels, *self.deletes_publications]:
            cost[key] = cost.get(key, 0) + 1
        for e in self.events:
            if e.kind == "Publication":
                key = (e.namespace, e.name)
                cost[key] = cost.get(key, 0) + 1
        kept, used = set(), 0
        for key, n in cost.items():
            if key not in affecting and used and used + n > budget:
                break
            kept.add(key)
            used += n
        return self.drop(set(cost) - kept)

    def affecting(self) -> set[Key]:
        """The Publications whose decision changed an adapter's recorded state."""
        return set().union(*self.adapter_effects.values()) if self.adapter_effects else set()

    def drop(self, pubs: set[Key]) -> set[Key]:
        """Drop everything this plan would write about ``pubs`` (they are decided again later).
        An adapter status that records a dropped Publication's outcome goes too, with its Events
        and every other Publication whose outcome it records. Returns all that was dropped."""
        if not pubs:
            return set()
        pubs = set(pubs)
        adapters: set[Key] = set()
        grew = True
        while grew:
            grew = False
            for akey, members in self.adapter_effects.items():
                if akey not in adapters and members & pubs:
                    adapters.add(akey)
                    pubs |= members
                    grew = True
        self.creates = [jc for jc in self.creates if jc.publication not in pubs]
        self.publication_status = {k: v for k, v in self.publication_status.items() if k not in pubs}
        self.publication_labels = {k: v for k, v in self.publication_labels.items() if k not in pubs}
        self.deletes_publications = [k for k in self.deletes_publications if k not in pubs]
        self.events = [
            e for e in self.events if (e.namespace, e.name) not in (pubs if e.kind == "Publication" else adapters)
        ]
        self.attempts = [a for a in self.attempts if (a.namespace, a.publication) not in pubs]
        # An adapter status recording kept outcomes is written with them; any other one waits for
        # the dropped ones (its queue counts include their starts) and is written with the rest.
        self.adapter_status = {
            k: v for k, v in self.adapter_status.items() if k in self.adapter_effects and k not in adapters
        }
        return pubs

    def written_publications(self) -> set[Key]:
        """The Publications this plan writes anything about."""
        keys = {jc.publication for jc in self.creates}
        keys.update(self.publication_status, self.publication_labels, self.deletes_publications)
        keys.update((e.namespace, e.name) for e in self.events if e.kind == "Publication")
        return keys

    def written_adapters(self) -> set[Key]:
        """The adapters this plan writes the status of or posts an Event about."""
        keys = set(self.adapter_status)
        keys.update((e.namespace, e.name) for e in self.events if e.kind == "PlatformAdapter")
        return keys

    def write_count(self) -> int:
        """How many API writes the plan makes (a Job create counts with its AttemptStarted Event)."""
        return (
            2 * len(self.creates)
            + len(self.deletes)
            + len(self.publication_status)
            + len(self.publication_labels)
            + len(self.adapter_status)
            + len(self.events)
            + len(self.deletes_publications)
        )


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
    creds_reason: str
    last_published: datetime | None
    secret_version: str | None = None
    running: int = 0
    starts: list[datetime] = field(default_factory=list)
    pending: int = 0
    dead: int = 0
    candidates: list[tuple[Candidate, TargetStatus, PublicationView, int]] = field(default_factory=list)
    opened: bool = False
    problems: tuple[str, ...] = ()
    creds_probes: int = 0  # credentials probes started since the refusal
    creds_probe_at: datetime | None = None  # when the next one may start
    probe_delays: tuple[float, float] = (30.0, 900.0)
    # Probes stand in for the Secret's resourceVersion when the operator does not read it (the
    # default: no Secret access); with a read Secret, its change resumes the queue instead.
    probing: bool = True

    def probe_delay(self) -> timedelta:
        first, longest = self.probe_delays
        return timedelta(seconds=min(longest, first * 2.0 ** min(self.creds_probes, 32)))

    def credentials_accepted(self) -> None:
        self.creds_valid, self.creds_since, self.creds_version, self.creds_message, self.creds_reason = (
            True,
            None,
            None,
            "",
            "",
        )
        self.creds_probes, self.creds_probe_at = 0, None

    @property
    def platform(self) -> str:
        return (self.view.spec.get("platform") if self.view else None) or "unknown"


def _adapter_state(
    view: AdapterView | None, secrets: Mapping[Key, str | None], probe_delays: tuple[float, float] = (30.0, 900.0)
) -> _AdapterState:
    st = view.status if view else {}
    rl = _obj(st.get("rateLimit"))
    cr = _obj(st.get("credentials"))
    valid = cr.get("valid", True) is not False
    version = cr.get("secretResourceVersion") if isinstance(cr.get("secretResourceVersion"), str) else None
    stored_message, stored_reason = cr.get("message"), cr.get("reason")
    message: str = stored_message if isinstance(stored_message, str) else ""
    reason: str = stored_reason if stored_reason in (CREDENTIALS_REFUSED, SECRET_NOT_FOUND) else CREDENTIALS_REFUSED
    ref = view.credentials_secret if view else None
    current: str | None = None
    if view is not None and ref:
        current = secrets.get((view.namespace, ref), "unknown")
        if current is None:
            valid, reason, message = False, SECRET_NOT_FOUND, f"Secret {ref} not found"
        elif not valid and current != "unknown" and reason == SECRET_NOT_FOUND:
            valid, message = True, f"Secret {ref} found"
        elif not valid and current != "unknown" and (version is None or current != version):
            valid, message = True, f"Secret {ref} changed"
    # A change to the adapter's spec (endpoint, Secret, image, template) may be the fix: the
    # circuit probes at once, and refused credentials are tried again.
    stored_generation = st.get("observedGeneration")
    spec_changed = view is not None and isinstance(stored_generation, int) and stored_generation != view.generation
    if spec_changed and not valid and reason == CREDENTIALS_REFUSED:
        valid, message = True, "the adapter's spec changed: trying the credentials again"
    problems = view.problems if view is not None else ()
    probes = cr.get("probes")
    watched = bool(view is not None and ref and current != "unknown")
    probe_at = safe_time(cr.get("nextProbeTime"))
    if not valid and probe_at is None:  # refused before probes existed, or status lost: probe soon
        probe_at = safe_time(cr.get("invalidSince"))
    try:
        breaker = BreakerConfig.from_spec(view.spec.get("circuitBreaker") if view else None)
    except InvalidValue:
        breaker = BreakerConfig()
    remaining = rl.get("remaining")
    circuit = Circuit.from_status(st.get("circuit"))
    if spec_changed and circuit.state is CircuitState.OPEN:
        circuit = replace(circuit, state=CircuitState.HALF_OPEN, next_probe_at=None)
    return _AdapterState(
        view=view,
        circuit=circuit,
        breaker=breaker,
        blocked_until=safe_time(rl.get("blockedUntil")),
        remaining=remaining
        if isinstance(remaining, int) and not isinstance(remaining, bool) and 0 <= remaining < 2**31
        else None,
        reset_at=safe_time(rl.get("resetAt")),
        creds_valid=valid,
        creds_since=None if valid else safe_time(cr.get("invalidSince")),
        creds_version=version if not valid else None,
        creds_message=message if not valid else "",
        creds_reason=reason if not valid else "",
        last_published=safe_time(st.get("lastPublishedTime")),
        secret_version=current if current not in (None, "unknown") else None,
        problems=problems,
        creds_probes=probes if not valid and isinstance(probes, int) and 0 <= probes < 2**31 else 0,
        creds_probe_at=probe_at if not valid and not watched else None,
        probe_delays=probe_delays,
        probing=not watched,
    )


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def settled(pub: PublicationView) -> bool:
    """Whether a Publication needs nothing from the operator until it changes: every target
    published or dead-lettered with no attempt in flight, and its status up to date."""
    status = pub.status
    if status.get("observedGeneration") != pub.generation or status.get("phase") not in FINISHED:
        return False
    if pub.redrive and pub.redrive != status.get("observedRedrive"):
        return False
    if pub.retry_now and pub.retry_now != status.get("observedRetryNow"):
        return False
    targets = status.get("targets")
    if not isinstance(targets, list) or len(targets) != len(pub.target_names):
        return False
    for t in targets:
        if (
            not isinstance(t, Mapping)
            or t.get("phase") not in TERMINAL
            or t.get("attempts") != t.get("observedAttempt")
        ):
            return False
    return (pub.labels.get(DEAD_LETTER_LABEL) == "true") == any(t.get("deadLetter") for t in targets)


def _update(t: TargetStatus, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(t, name, value)


DEFAULT_JOBS = JobDefaults()


def reconcile(
    world: World,
    now: datetime,
    defaults: JobDefaults = DEFAULT_JOBS,
    publication_ttl: int | None = None,
    start_budget: int | None = None,
) -> Plan:
    """Decide ``world``: every Publication and adapter in it (the whole namespace, or the part the
    store closed over a change). ``publication_ttl`` is the operator-wide default for
    spec.ttlSecondsAfterFinished (None: finished Publications are kept). With ``start_budget``,
    at most that many attempts start; Publications admitted past it are ``plan.postponed``
    (nothing of theirs is built: a big burst costs each slice its own starts, not all of them)."""
    plan = Plan()
    budget = [start_budget]
    adapters: dict[Key, _AdapterState] = {}

    def adapter(ns: str, name: str) -> _AdapterState:
        if (ns, name) not in adapters:
            adapters[(ns, name)] = _adapter_state(
                world.adapters.get((ns, name)), world.secrets, world.credentials_probe
            )
        return adapters[(ns, name)]

    for key in world.adapters:
        adapter(*key)

    jobs_by_owner: dict[str, dict[str, list[JobView]]] = defaultdict(lambda: defaultdict(list))
    for job in world.jobs.values():
        if job.owner_uid:
            jobs_by_owner[job.owner_uid][job.target].append(job)
        if world.loads is None:
            a = adapter(job.namespace, job.target)
            # Without the exact time, assume the latest moment in the creation second: never over-admit.
            a.starts.append(world.job_starts.get(job.key) or job.created + timedelta(seconds=1))
            if not job.done and not job.deleting:
                a.running += 1
    for akey, load in (world.loads or {}).items():
        a = adapter(*akey)
        a.running, a.starts = load.running, list(load.starts)
    pods_by_job: dict[Key, list[PodView]] = defaultdict(list)
    for pod in world.pods.values():
        pods_by_job[(pod.namespace, pod.job)].append(pod)

    # Each Publication is decided on its own: a bad spec or an unexpected error stalls only it.
    staged: list[tuple[PublicationView, list[TargetStatus], dict[str, Any]]] = []
    broken: set[Key] = set()
    for pub in sorted(world.publications.values(), key=lambda p: (p.namespace, p.name)):
        problems = pub.problems
        if problems:
            _stall_publication(pub, INVALID_SPEC, "; ".join(problems), now, plan)
            continue
        try:
            targets, extra = _reconcile_publication(
                pub, jobs_by_owner.get(pub.uid, {}), pods_by_job, adapter, now, plan, world
            )
        except Exception as e:  # noqa: BLE001 - a bug in one object must not stop the others; retried
            broken.add(pub.key)
            _reconcile_error(pub, e, now, plan)
            continue
        staged.append((pub, targets, extra))

    # Admission, per adapter, over every due target that competes for it.
    for akey, a in sorted(adapters.items()):
        a.candidates = [c for c in a.candidates if c[2].key not in broken]
        if not a.candidates:
            continue
        try:
            _admit(a, now, defaults, plan, world, budget)
        except Exception as e:
            log.exception("admission for adapter %s/%s failed", *akey)
            plan.failures.append(Failure("platformadapters", akey, _error_text(e)))
            for _, t, _, _ in a.candidates:
                t.set(Phase.QUEUED, RECONCILE_ERROR, "the operator could not decide this target; retrying")

    dead_stored: dict[Key, int] = defaultdict(int)
    for pub, targets, extra in staged:
        for name in pub.dead_letter_targets:
            dead_stored[(pub.namespace, name)] += 1
        for t in targets:
            if t.dead_letter:
                adapter(pub.namespace, t.adapter).dead += 1
        if pub.key in plan.postponed:
            continue
        try:
            _write_publication(pub, targets, extra, now, plan, publication_ttl)
        except Exception as e:  # noqa: BLE001 - isolation
            _reconcile_error(pub, e, now, plan)
    if world.dead_letters is not None:  # the indexed count, with this tick's changes applied
        for akey, count in world.dead_letters.items():
            adapter(*akey).dead += count - dead_stored.get(akey, 0)
    for a in adapters.values():
        a.pending += _unseen(world, a)
    for akey, a in adapters.items():
        if a.view is not None and not world.adapters_read_only:
            try:
                _write_adapter(a, a.view, now, plan)
            except Exception as e:
                log.exception("status of adapter %s/%s failed", *akey)
                plan.failures.append(Failure("platformadapters", akey, _error_text(e)))
    return plan


def _admit(
    a: _AdapterState, now: datetime, defaults: JobDefaults, plan: Plan, world: World, budget: list[int | None]
) -> None:
    if a.problems:
        for _, t, pub, _ in a.candidates:
            _wait(pub, t, Wait.INVALID_ADAPTER, f"the PlatformAdapter's spec is invalid: {'; '.join(a.problems)}", plan)
            t.waiting_since = None
            a.pending += 1
        return
    view = a.view
    gate = Gate(
        concurrency=int((view.spec.get("concurrency") if view else 1) or 1),
        rate_limit=_rate(view)[0],
        rate_period=_rate(view)[1],
        recent_starts=a.starts,
        running=a.running,
        paused=bool(view.spec.get("paused")) if view else False,
        circuit=a.circuit,
        blocked_until=a.blocked_until,
        credentials_valid=a.creds_valid,
        credentials_probe_at=a.creds_probe_at,
        exists=view is not None,
    )
    candidates = [c for c, *_ in a.candidates]
    ahead = _waiting_ahead(world, a, candidates)
    decision = admit(gate, candidates, now, ahead)
    plan.wake(decision.wake_at)
    started = set(decision.start)
    probe = bool(started) and not a.creds_valid
    if probe:  # a credentials probe: the next one not before the delay
        a.creds_probes += 1
        a.creds_probe_at = now + a.probe_delay()
    # Admitted targets start in admission order: not while one this decision did not see is ahead.
    now_starting = {k for k in started if not ahead.get(k)}
    if budget[0] is not None and not probe:  # the first admitted (in admission order) within the budget
        now_starting = set([k for k in decision.start if k in now_starting][: max(0, budget[0])])
        budget[0] -= len(now_starting)
    akey = (a.view.namespace, a.view.name) if a.view is not None else None
    affecting = plan.affecting()  # never postponed: their outcomes are written with this decision
    for cand, t, pub, _ in a.candidates:
        if pub.key in plan.postponed:
            continue
        if probe and cand.key in started and akey is not None:
            plan.adapter_effects.setdefault(akey, set()).add(pub.key)
            affecting.add(pub.key)
        if cand.key in started and cand.key not in now_starting and pub.key not in affecting:
            plan.postponed.add(pub.key)  # admitted: started by a later decision
            a.pending += 1  # it waits meanwhile (the queue gauges and alerts count it)
            continue
        if cand.key in started:
            _start_attempt(pub, t, a, now, defaults, plan, world)
        else:
            reason = decision.waiting[cand.key]
            _wait(pub, t, reason, _wait_message(reason, a, now), plan)
            a.pending += 1
            if reason != Wait.CREDENTIALS:
                t.waiting_since = None
            else:
                t.waiting_since = t.waiting_since or format_time(now)
                timeout = _policy(pub, a).credentials_timeout
                since = safe_time(t.waiting_since) or now
                plan.wake(since + timedelta(seconds=timeout))


def _waiting_ahead(world: World, a: _AdapterState, candidates: list[Candidate]) -> dict[Hashable, int]:
    """Per candidate, how many targets of the adapter's queue that this decision does not see
    wait ahead of it (none when the world holds the whole queue)."""
    queue = _queue(world, a)
    if queue is None:
        return {}
    # Those whose writes are in flight are not seen: they count as ahead (admission order holds).
    seen = sorted(o for p in world.publications if (o := queue.order_of(p)) is not None)
    ahead = {}
    for c in candidates:
        order = c.order()
        ahead[c.key] = queue.rank(order) - bisect.bisect_left(seen, order)
    return ahead


def _queue(world: World, a: _AdapterState) -> AdapterQueue | None:
    if world.queues is None or a.view is None:
        return None
    return world.queues.get((a.view.namespace, a.view.name))


def _unseen(world: World, a: _AdapterState) -> int:
    """How many due targets of the adapter's queue this decision does not see (they wait)."""
    queue = _queue(world, a)
    if queue is None:
        return 0
    seen = sum(1 for p in world.publications if queue.order_of(p) is not None)
    return queue.due() - seen


def _wait(pub: PublicationView, t: TargetStatus, reason: str, message: str, plan: Plan) -> None:
    """The target waits Queued; when it starts to wait on something only a user can fix, the
    Publication gets a Warning Event saying what (once: the reason is then in its status)."""
    if reason in USER_FIX_REASONS and t.reason != reason:
        plan.events.append(_event(pub, "Warning", reason, f"target {t.adapter} waits: {message}"))
    t.set(Phase.QUEUED, reason, _bound(message))


def _error_text(e: BaseException) -> str:
    return _bound(redact(f"{type(e).__name__}: {e}", limit=MAX_MESSAGE))


def _bound(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reconcile_error(pub: PublicationView, e: BaseException, now: datetime, plan: Plan) -> None:
    log.exception("reconcile of Publication %s/%s failed", pub.namespace, pub.name)
    message = _error_text(e)
    plan.failures.append(Failure("publications", pub.key, message))
    plan.publication_status.pop(pub.key, None)
    plan.publication_labels.pop(pub.key, None)
    plan.creates = [c for c in plan.creates if c.publication != pub.key]
    plan.events = [ev for ev in plan.events if (ev.namespace, ev.name) != pub.key]
    _stall_publication(
        pub, RECONCILE_ERROR, f"the operator failed to reconcile this object and retries: {message}", now, plan
    )


def _stall_publication(pub: PublicationView, reason: str, message: str, now: datetime, plan: Plan) -> None:
    """A Publication the operator cannot act on: a Stalled condition and one Warning Event."""
    message = _bound(message)
    prev = (
        [c for c in (pub.status.get("conditions") or []) if isinstance(c, Mapping)]
        if isinstance(pub.status.get("conditions"), list)
        else []
    )
    old = next((c for c in prev if c.get("type") == "Stalled"), None)
    conditions: list[dict[str, Any]] = [dict(c) for c in prev]
    for c in Readiness(False, False, True, reason, message).conditions(pub.generation, prev, now):
        conditions = upsert_condition(conditions, c)
    new = {"observedGeneration": pub.generation, "reason": reason, "message": message, "conditions": conditions}
    if changed(new, pub.status):
        plan.publication_status[pub.key] = new
    if not (old and old.get("status") == "True" and old.get("reason") == reason and old.get("message") == message):
        plan.events.append(_event(pub, "Warning", reason, message))


def _rate(view: AdapterView | None) -> tuple[int | None, float]:
    rl = (view.spec.get("rateLimit") if view else None) or {}
    if not rl.get("limit"):
        return None, 60.0
    return int(rl["limit"]), parse_duration(rl.get("period"), 60.0)


def _policy(pub: PublicationView, a: _AdapterState) -> RetryPolicy:
    """The adapter's policy with the publication's overrides; an invalid adapter policy (the
    adapter is then stalled) leaves the publication's own."""
    try:
        return RetryPolicy.from_spec(a.view.spec.get("retryPolicy") if a.view else None, pub.spec.get("retryPolicy"))
    except InvalidValue:
        return RetryPolicy.from_spec(pub.spec.get("retryPolicy"))


def _wait_message(reason: str, a: _AdapterState, now: datetime) -> str:
    circuit = a.circuit.at(now)
    probe = (
        "a probe attempt is running"
        if circuit.state is CircuitState.HALF_OPEN
        else f"next probe at {format_time(circuit.next_probe_at)}"
    )
    return {
        Wait.PAUSED: "the adapter is paused",
        Wait.CIRCUIT_OPEN: f"circuit {circuit.state.value}; {probe}",
        Wait.RATE_LIMITED: f"the platform rate-limited this adapter until {format_time(a.blocked_until)}",
        Wait.CREDENTIALS: f"credentials are invalid: {a.creds_message}".rstrip(": ")
        + (f"; next credentials probe at {format_time(a.creds_probe_at)}" if a.creds_probe_at else ""),
        Wait.CONCURRENCY: "waiting for a free concurrency slot",
        Wait.RATE_LIMIT: "waiting for the adapter's rate limit window",
        Wait.NO_ADAPTER: "the PlatformAdapter does not exist",
        Wait.INVALID_ADAPTER: "the PlatformAdapter's spec is invalid",
    }.get(reason, reason)


def _reconcile_publication(pub, jobs_by_target, pods_by_job, adapter, now, plan, world):
    spec, status = pub.spec, pub.status
    stored = status.get("targets") if isinstance(status.get("targets"), list) else []
    old_targets = {t.get("adapter"): t for t in stored if isinstance(t, Mapping)}
    publish_at = parse_time(spec.get("publishAt")) if spec.get("publishAt") else None
    suspended = bool(spec.get("suspend"))
    redrive = pub.redrive if pub.redrive and pub.redrive != status.get("observedRedrive") else None
    targets: list[TargetStatus] = []
    extra: dict[str, Any] = {"observedRedrive": status.get("observedRedrive")}
    if pub.redrive and pub.redrive != status.get("observedRedrive"):
        extra["observedRedrive"] = pub.redrive
    retry_now = pub.retry_now if pub.retry_now and pub.retry_now != status.get("observedRetryNow") else None
    extra["observedRetryNow"] = pub.retry_now if pub.retry_now else status.get("observedRetryNow")

    for entry in spec.get("targets") or []:
        name = entry["adapter"]
        t = TargetStatus.from_status(name, old_targets.get(name))
        a = adapter(pub.namespace, name)
        jobs = sorted(jobs_by_target.get(name, []), key=lambda j: j.attempt)
        if jobs and jobs[-1].attempt > t.attempts:
            # The Job exists but the status write after creating it was lost: adopt it.
            t.attempts = jobs[-1].attempt
            t.job_name = jobs[-1].name
        latest = next((j for j in reversed(jobs) if j.attempt == t.attempts), None)

        if redrive and t.phase == Phase.FAILED:
            _update(
                t,
                failures={},
                budget_start=t.attempts,
                dead_letter=False,
                next_attempt_at=None,
                last_backoff_seconds=None,
                waiting_since=None,
            )
            t.set(Phase.PENDING, "Redriven", _bound(f"redriven ({redrive}) with a fresh retry budget"))
            plan.events.append(_event(pub, "Normal", "Redriven", f"target {name} redriven with a fresh retry budget"))

        in_scope = pub.retry_now_targets is None or name in pub.retry_now_targets
        if retry_now and in_scope and t.phase == Phase.RETRYING and t.next_attempt_at:
            # kubectl herald retry-now: the backoff ends now (the retry budget is unchanged).
            t.next_attempt_at = format_time(now)
            plan.events.append(_event(pub, "Normal", "RetryNow", f"target {name}: next attempt now, on request"))

        in_flight = t.attempts > t.observed_attempt
        if in_flight:
            outcome: Outcome | None
            if latest is None:
                outcome = Outcome(
                    published=False,
                    error_class=ErrorClass.UNKNOWN_OUTCOME,
                    message=f"Job {t.job_name} disappeared before it finished",
                )
            else:
                outcome = read_outcome(latest, pods_by_job.get(latest.key, []))
            if outcome is None and latest is not None:  # still running
                if suspended:
                    plan.deletes.append(latest.key)
                    t.observed_attempt = t.attempts
                    t.set(Phase.SUSPENDED, "Suspended", f"attempt {t.attempts} stopped: publication suspended")
                    plan.events.append(
                        _event(pub, "Normal", "AttemptCancelled", f"attempt {t.attempts} of {name} cancelled (suspend)")
                    )
                else:
                    t.set(Phase.PUBLISHING, "JobRunning", f"attempt {t.attempts} running in Job {latest.name}")
                targets.append(t)
                continue
            assert outcome is not None
            if outcome.stop_job and latest is not None:
                plan.deletes.append(latest.key)
            _apply_outcome(pub, t, a, outcome, latest, now, plan)

        if t.phase in TERMINAL:
            targets.append(t)
            continue
        if suspended:
            if t.phase != Phase.SUSPENDED:
                t.set(Phase.SUSPENDED, "Suspended", "publication suspended")
            targets.append(t)
            continue
        if t.phase == Phase.QUEUED and t.reason == Wait.CREDENTIALS and not a.creds_valid:
            policy = _policy(pub, a)
            since = safe_time(t.waiting_since) or now
            if now >= since + timedelta(seconds=policy.credentials_timeout):
                _dead_letter(
                    pub,
                    t,
                    a,
                    now,
                    plan,
                    f"credentials stayed invalid for more than {format_duration(policy.credentials_timeout)}",
                )
                targets.append(t)
                continue
        due = _due(t, publish_at, pub, now)
        if due is None:  # retry later, or scheduled
            next_at = safe_time(t.next_attempt_at)
            if next_at is None:
                plan.wake(publish_at)
                t.set(Phase.SCHEDULED, "PublishAtInFuture", f"publishing at {format_time(publish_at)}")
            else:
                plan.wake(next_at)
                if t.phase == Phase.SUSPENDED:  # resumed after a suspend, during a backoff
                    t.set(Phase.RETRYING, "BackoffScheduled", f"next attempt at {t.next_attempt_at}")
                elif t.reason != JOB_CREATE_FAILED:
                    t.phase = Phase.RETRYING
            targets.append(t)
            continue
        cand = Candidate(
            key=(pub.namespace, pub.name, name), priority=int(spec.get("priority") or 0), due=due, created=pub.created
        )
        a.candidates.append((cand, t, pub, 0))
        targets.append(t)
    return targets, extra


def _due(t: TargetStatus, publish_at: datetime | None, pub: PublicationView, now: datetime) -> datetime | None:
    """When the target became due (its place in the queue), or None if it is not due yet."""
    due, due_from = _due_bounds(t, publish_at, pub)
    return None if due_from is not None and due_from > now else due


def _due_bounds(t: TargetStatus, publish_at: datetime | None, pub: PublicationView) -> tuple[datetime, datetime | None]:
    """The target's due time as admission orders it, and the time from which it is due (None:
    already). A target due with no recorded time (a retry whose time was lost, a credentials
    wait with no start) is due ``LATEST``: after every known due time, whatever the clock says."""
    nxt = safe_time(t.next_attempt_at)
    due_from = nxt
    if t.attempts == 0 and publish_at is not None:
        due_from = publish_at if due_from is None else max(due_from, publish_at)
    if t.attempts == 0 or t.phase in (Phase.PENDING, Phase.SUSPENDED):
        return nxt or publish_at or pub.created, due_from
    if t.phase == Phase.QUEUED and t.reason == Wait.CREDENTIALS:
        return safe_time(t.waiting_since) or LATEST, due_from
    return nxt or LATEST, due_from


def queue_entry(pub: PublicationView, name: str) -> QueueEntry | None:
    """A target's place in its adapter's queue as its stored status leaves it (the store keeps
    these, see ``AdapterQueue``); None when it does not wait for admission: finished, in flight,
    suspended, or of a spec the operator cannot act on. Deciding the Publication gives the same
    place unless the decision changes the target (then it is decided, not read from here)."""
    try:
        spec, status = pub.spec, pub.status
        if pub.problems or spec.get("suspend"):
            return None
        if status.get("reason") == RECONCILE_ERROR and status.get("observedGeneration") == pub.generation:
            return None  # stalled by an error: retried with backoff (a timer), never a head meanwhile
        stored: list[Any] = status["targets"] if isinstance(status.get("targets"), list) else []
        # the last entry for the adapter, as the decision reads it
        old = next((t for t in reversed(stored) if isinstance(t, Mapping) and t.get("adapter") == name), None)
        t = TargetStatus.from_status(name, old)
        if t.phase in TERMINAL or t.attempts > t.observed_attempt:
            return None
        publish_at = parse_time(spec.get("publishAt")) if spec.get("publishAt") else None
        due, due_from = _due_bounds(t, publish_at, pub)
        order = Candidate(
            key=(pub.namespace, pub.name, name), priority=int(spec.get("priority") or 0), due=due, created=pub.created
        ).order()
    except Exception:  # noqa: BLE001 - an unreadable status: the Publication is decided, not queued
        return None
    return QueueEntry(order, due_from)


def _start_attempt(pub, t, a: _AdapterState, now, defaults, plan, world: World) -> None:
    attempt = t.attempts + 1
    secrets = world.secrets
    name = job_name(pub.name, t.adapter, attempt)
    refused = world.create_failures.get((pub.namespace, name))
    if refused is not None:
        # The API server refused this attempt's Job: a failed attempt, decided by policy.
        _update(t, attempts=attempt, job_name=None, next_attempt_at=None, waiting_since=None)
        outcome = Outcome(
            published=False,
            error_class=ErrorClass.INVALID_SPEC,
            message=_bound(f"the API server refused Job {name}: {refused}", 900),
        )
        _apply_outcome(pub, t, a, outcome, None, now, plan)
        return
    view = a.view
    if view is None:  # admission starts nothing for an adapter that does not exist
        return
    meta = {"namespace": pub.namespace, "name": pub.name, "uid": pub.uid}
    job = build_job_spec(meta, pub.spec, t.adapter, view.spec, attempt, bool(t.verify_next), defaults)
    ref = view.credentials_secret
    if ref and secrets.get((pub.namespace, ref)):
        job["metadata"]["annotations"][ANNOTATION_CREDENTIALS_VERSION] = secrets[(pub.namespace, ref)]
    mode = " in verify mode" if t.verify_next else ""
    started = _event(
        pub,
        "Normal",
        "AttemptStarted",
        f"attempt {attempt} for {t.adapter} started{mode} (Job {job['metadata']['name']})",
    )
    plan.creates.append(JobCreate(job, pub.key, t.adapter, t.attempts, started))
    a.running += 1
    a.starts.append(now)
    # A credentials probe keeps the target's wait, so that credentialsTimeout still counts from its start.
    since = t.waiting_since if t.reason == Wait.CREDENTIALS and not a.creds_valid else None
    _update(t, attempts=attempt, job_name=job["metadata"]["name"], next_attempt_at=None, waiting_since=since)
    probe = " (a credentials probe)" if not a.creds_valid else ""
    t.set(Phase.PUBLISHING, "JobRunning", f"attempt {attempt} running in Job {job['metadata']['name']}{probe}")


def _apply_outcome(pub, t, a: _AdapterState, outcome: Outcome, job: JobView | None, now, plan) -> None:
    plan.adapter_effects.setdefault((pub.namespace, t.adapter), set()).add(pub.key)
    attempt = t.attempts
    t.observed_attempt = attempt
    if outcome.rate_limit_remaining is not None:
        a.remaining = outcome.rate_limit_remaining
        a.reset_at = outcome.rate_limit_reset_at
    name = t.adapter
    if outcome.published:
        due = parse_time(pub.spec.get("publishAt")) or pub.created
        finished = outcome.finished or now
        _update(
            t,
            post_id=outcome.post_id,
            url=outcome.url,
            published_time=format_time(finished),
            next_attempt_at=None,
            verify_next=False,
            waiting_since=None,
        )
        how = "verified an earlier post" if outcome.verified else "published"
        t.set(
            Phase.PUBLISHED,
            "Published",
            f"attempt {attempt} {how}" + (f": {outcome.post_id}" if outcome.post_id else ""),
        )
        a.circuit = a.circuit.record_success()
        if not a.creds_valid:  # a post went through: the credentials work
            a.credentials_accepted()
        a.last_published = max(filter(None, [a.last_published, finished]))
        plan.events.append(
            _event(
                pub,
                "Normal",
                "AttemptSucceeded",
                f"attempt {attempt} for {name} {how}" + (f" (post {outcome.post_id})" if outcome.post_id else ""),
            )
        )
        if outcome.no_result:
            plan.events.append(
                _event(
                    pub,
                    "Warning",
                    "NoResult",
                    f"attempt {attempt} for {name} exited 0 without a result; counted as published",
                )
            )
        plan.attempts.append(
            AttemptObservation(
                pub.namespace,
                pub.name,
                name,
                a.platform,
                attempt,
                outcome,
                latency=max(0.0, (finished - due).total_seconds()) if due else None,
            )
        )
        return

    cls = outcome.error_class or ErrorClass.POD_FAILURE
    policy = _policy(pub, a)
    decision = decide(policy, cls, t.failures, outcome.retry_after, seed=f"{pub.uid}/{name}")
    t.failures[cls.value] = t.failures.get(cls.value, 0) + 1
    failed_so_far = sum(t.failures.values())
    _update(t, last_error_class=cls.value, last_error=_bound(outcome.message, 2048) or None)
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
    if (
        cls is ErrorClass.AUTH
        and job is not None
        and job.credentials_version
        and a.secret_version
        and job.credentials_version != a.secret_version
    ):
        # The refused attempt ran with an older Secret; the new one has not been tried yet.
        plan.events.append(_event(pub, "Warning", "AttemptFailed", f"attempt {attempt} for {name} failed: {detail}"))
        plan.attempts.append(
            AttemptObservation(
                pub.namespace, pub.name, name, a.platform, attempt, outcome, retried=True, failed_attempts=failed_so_far
            )
        )
        _update(t, retries=t.retries + 1, last_backoff_seconds=0.0, next_attempt_at=format_time(now))
        t.set(Phase.RETRYING, "RetryAuth", f"{failed_text}; the Secret changed since, retrying with it now")
        plan.wake(now)
        return
    if cls is ErrorClass.AUTH:
        version = job.credentials_version if job else None
        if a.creds_valid:  # newly refused: the first probe after the first delay
            a.creds_probes = 0
        if a.probing:
            a.creds_probe_at = now + a.probe_delay()
            plan.wake(a.creds_probe_at)
        a.creds_valid = False
        a.creds_since = a.creds_since or now
        a.creds_version = version or a.creds_version
        said = f": {outcome.message}" if outcome.message else ""
        a.creds_message = _bound(
            f"the platform refused the credentials{said} (publication {pub.name}, attempt {attempt})"
        )
        a.creds_reason = CREDENTIALS_REFUSED

    plan.events.append(_event(pub, "Warning", "AttemptFailed", f"attempt {attempt} for {name} failed: {detail}"))
    if decision.action is Action.DEAD_LETTER:
        plan.attempts.append(
            AttemptObservation(
                pub.namespace,
                pub.name,
                name,
                a.platform,
                attempt,
                outcome,
                dead_letter=True,
                failed_attempts=failed_so_far,
            )
        )
        _dead_letter(pub, t, a, now, plan, f"{failed_text}; {decision.reason}")
        return
    if decision.action is Action.WAIT_CREDENTIALS:
        plan.attempts.append(
            AttemptObservation(
                pub.namespace, pub.name, name, a.platform, attempt, outcome, failed_attempts=failed_so_far
            )
        )
        # A failed probe keeps the target's wait (credentialsTimeout counts from its start).
        _update(t, waiting_since=t.waiting_since or format_time(now), next_attempt_at=None, last_backoff_seconds=None)
        probe = f"; next credentials probe at {format_time(a.creds_probe_at)}" if a.creds_probe_at else ""
        t.set(Phase.QUEUED, Wait.CREDENTIALS, f"{failed_text}{probe}")
        return
    at = now + timedelta(seconds=decision.delay)
    _update(
        t,
        retries=t.retries + 1,
        last_backoff_seconds=decision.delay,
        next_attempt_at=format_time(at),
        # Once an outcome was unknown, every later attempt verifies first, until one succeeds.
        verify_next=decision.verify or bool(t.verify_next),
    )
    verify = " in verify mode" if decision.verify else ""
    t.set(
        Phase.RETRYING,
        f"Retry{_camel(cls.value)}",
        f"{failed_text}; next attempt{verify} in {format_duration(decision.delay)} at {format_time(at)}",
    )
    plan.attempts.append(
        AttemptObservation(
            pub.namespace, pub.name, name, a.platform, attempt, outcome, retried=True, failed_attempts=failed_so_far
        )
    )
    plan.wake(at)


def _camel(s: str) -> str:
    return "".join(p.capitalize() for p in s.split("_"))


def _dead_letter(pub, t, a, now, plan, message: str) -> None:
    _update(t, dead_letter=True, next_attempt_at=None, waiting_since=None)
    t.set(Phase.FAILED, "DeadLetter", message)
    plan.events.append(_event(pub, "Warning", "DeadLetter", f"target {t.adapter} moved to the dead letter: {message}"))


def _event(pub: PublicationView, type_: str, reason: str, message: str) -> EventSpec:
    return EventSpec("Publication", pub.namespace, pub.name, pub.uid, type_, reason, message)


def with_target(status: Mapping[str, Any], adapter: str, **fields: Any) -> dict[str, Any]:
    """A copy of a planned publication status whose target ``adapter`` has ``fields`` (camelCase)
    changed, and whose totals follow; for the engine when a planned Job create fails."""
    targets = [dict(t, **fields) if t.get("adapter") == adapter else dict(t) for t in status.get("targets") or []]
    return {**status, "targets": targets, "attempts": sum(int(t.get("attempts") or 0) for t in targets)}


def clean(value: Any) -> Any:
    """``value`` without None entries in its mappings: the API drops them on a merge patch."""
    kind = type(value)  # exact types first: the ABC check is most of the cost
    if kind is dict:
        return {k: clean(v) for k, v in value.items() if v is not None}
    if kind is list:
        return [clean(v) for v in value]
    if kind in (str, int, float, bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {k: clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def changed(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` (a merge patch) would change ``old``. Equal values are equal once
    cleaned, so only unequal ones are cleaned (most statuses decided are already stored)."""
    for k in new:
        a, b = new.get(k), old.get(k)
        if a != b and clean(a) != clean(b):
            return True
    return False


_PROGRESS_TARGET_FIELDS = ("phase", "reason", "message", "attempts", "jobName", "nextAttemptAt", "waitingSince")
_PROGRESS_FIELDS = ("phase", "reason", "message", "attempts", "nextAttemptAt", "conditions")
# A start may be held only when the target waited on nothing a user would want to see end.
_QUIET_WAITS = frozenset({"", "ConcurrencyLimit", "RateLimitWindow", "JobRunning", "Redriven"})


def progress_only(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether a status change only records attempts that started (no outcome, no decision).

    Such a change may be held back briefly: an attempt that ends soon is then written once,
    with its outcome, instead of twice."""
    found = old.get("targets")
    stored: list[Any] = found if isinstance(found, list) else []
    old_targets = {t.get("adapter"): t for t in stored if isinstance(t, Mapping)}
    top: tuple[str, ...] = (*_PROGRESS_FIELDS, "targets")
    if not old_targets:  # no status yet: compare with what a fresh status would hold
        old_targets = {t["adapter"]: TargetStatus(adapter=t["adapter"]).to_status() for t in new.get("targets") or []}
        top += ("observedGeneration", "totalTargets", "publishedTargets", "observedRedrive", "completionTime")
    if len(old_targets) != len(new.get("targets") or []):
        return False
    started = False  # only a change that records a started attempt may wait
    for t in new.get("targets") or []:
        o = old_targets.get(t["adapter"])
        if o is None:
            return False
        if t["phase"] == Phase.PUBLISHING and int(t.get("observedAttempt") or 0) == int(o.get("observedAttempt") or 0):
            if (
                o.get("phase") in (Phase.QUEUED, Phase.SUSPENDED, Phase.CANCELLED)
                and o.get("reason") not in _QUIET_WAITS
            ):
                return False  # the end of a visible wait (paused, credentials, circuit, ...) is news
            started = started or clean(t) != clean(o)
            t, o = _without(t, _PROGRESS_TARGET_FIELDS), _without(o, _PROGRESS_TARGET_FIELDS)
        if clean(t) != clean(o):
            return False
    return started and clean(_without(new, top)) == clean(_without(old, top))


def _without(d: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


def _write_publication(pub: PublicationView, targets, extra, now, plan, ttl_default: int | None = None) -> None:
    status = pub.status
    suspended = bool(pub.spec.get("suspend"))
    phase = publication_phase([t.phase for t in targets], suspended)
    publish_at = parse_time(pub.spec.get("publishAt"))
    completion = None
    if phase in FINISHED:
        completion = safe_time(status.get("completionTime")) if status.get("phase") in FINISHED else None
        completion = completion or now
        ttl = pub.spec.get("ttlSecondsAfterFinished")
        ttl = ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else ttl_default
        if ttl is not None:
            expires = completion + timedelta(seconds=ttl)
            if now >= expires:
                plan.deletes_publications.append(pub.key)
            else:
                plan.wake(expires)
    nexts = sorted(t.next_attempt_at for t in targets if t.next_attempt_at and t.phase == Phase.RETRYING)
    prev = _conditions(status)
    written = [t.to_status() for t in targets]
    readiness = publication_readiness(written, phase, pub.name)
    conditions = publication_conditions(written, phase, publish_at, pub.generation, prev, now)
    conditions += readiness.conditions(pub.generation, prev, now)
    new = PublicationStatus(
        phase=phase,
        reason=readiness.reason,
        message=_bound(readiness.message, 4096),
        observed_generation=pub.generation,
        observed_redrive=extra.get("observedRedrive"),
        observed_retry_now=extra.get("observedRetryNow"),
        published_targets=sum(1 for t in targets if t.phase == Phase.PUBLISHED),
        total_targets=len(targets),
        attempts=sum(t.attempts for t in targets),
        next_attempt_at=nexts[0] if nexts else (format_time(publish_at) if phase == Phase.SCHEDULED else None),
        completion_time=format_time(completion),
        targets=targets,
        conditions=[Condition.model_validate(c) for c in conditions],
    ).to_status()
    if changed(new, status):
        plan.publication_status[pub.key] = new
    dead = any(t.dead_letter for t in targets)
    has_label = pub.labels.get(DEAD_LETTER_LABEL) == "true"
    if dead and not has_label:
        plan.publication_labels[pub.key] = {DEAD_LETTER_LABEL: "true"}
    elif not dead and has_label:
        plan.publication_labels[pub.key] = {DEAD_LETTER_LABEL: None}


def _conditions(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = status.get("conditions")
    return [c for c in found if isinstance(c, Mapping)] if isinstance(found, list) else []


def _write_adapter(a: _AdapterState, view: AdapterView, now: datetime, plan: Plan) -> None:
    old = view.status
    circuit = a.circuit.at(now)
    blocked = a.blocked_until if a.blocked_until and a.blocked_until > now else None
    if blocked:
        plan.wake(blocked)
    if circuit.state is CircuitState.OPEN:
        plan.wake(circuit.next_probe_at)
    prev = _conditions(old)
    available = circuit.state is not CircuitState.OPEN
    paused = bool(view.spec.get("paused"))
    conditions = [
        condition(
            "Available",
            available and not paused,
            "CircuitOpen"
            if not available
            else ("Paused" if paused else "CircuitClosed" if circuit.state is CircuitState.CLOSED else "HalfOpen"),
            f"circuit {circuit.state.value}"
            + (f" until {format_time(circuit.next_probe_at)}" if not available else ""),
            view.generation,
            prev,
            now,
        ),
        condition(
            "CredentialsValid",
            a.creds_valid,
            "Valid" if a.creds_valid else a.creds_reason or CREDENTIALS_REFUSED,
            a.creds_message or "no credential failures seen",
            view.generation,
            prev,
            now,
        ),
    ]
    readiness = _adapter_readiness(a, circuit, blocked, paused)
    conditions += readiness.conditions(view.generation, prev, now)
    new = AdapterStatus(
        observed_generation=view.generation,
        queue=QueueStatus(pending=a.pending, running=a.running),
        last_published_time=format_time(a.last_published),
        circuit=CircuitStatus.model_validate(circuit.to_status()),
        rate_limit=RateLimitStatus(
            blocked_until=format_time(blocked), remaining=a.remaining, reset_at=format_time(a.reset_at)
        ),
        credentials=CredentialsStatus(
            valid=a.creds_valid,
            reason=a.creds_reason if not a.creds_valid else "",
            invalid_since=format_time(a.creds_since),
            secret_resource_version=a.creds_version,
            message=a.creds_message,
            probes=a.creds_probes if not a.creds_valid else 0,
            next_probe_time=format_time(a.creds_probe_at) if not a.creds_valid else None,
        ),
        conditions=[Condition.model_validate(c) for c in conditions],
    ).to_status()
    for type_, reason, message in _adapter_transitions(a, view, circuit, blocked, paused, readiness, prev):
        plan.events.append(EventSpec("PlatformAdapter", view.namespace, view.name, view.uid, type_, reason, message))
    if changed(new, old):
        plan.adapter_status[view.key] = new
    plan.gauges[view.key] = {
        "platform": a.platform,
        "pending": a.pending,
        "running": a.running,
        "circuit": circuit.state,
        "remaining": a.remaining,
        "rate_limited": blocked is not None,
        "available": available,
        "credentials_valid": a.creds_valid,
        "opened": a.opened,
        "dead_letter": a.dead,
        "credentials_message": a.creds_message,
    }


def _adapter_readiness(a: _AdapterState, circuit: Circuit, blocked: datetime | None, paused: bool) -> Readiness:
    """Ready when attempts can start now; Stalled when only a user can change that."""
    if a.problems:
        return Readiness(False, False, True, INVALID_SPEC, _bound("; ".join(a.problems)))
    if not a.creds_valid:
        reason = SECRET_NOT_FOUND if a.creds_reason == SECRET_NOT_FOUND else "CredentialsRefused"
        return Readiness(False, False, True, reason, a.creds_message or "the credentials are not usable")
    if paused:
        return Readiness(False, False, False, "Paused", "spec.paused is true: no new attempt starts")
    if circuit.state is CircuitState.OPEN:
        return Readiness(
            False, True, False, "CircuitOpen", f"circuit open; next probe at {format_time(circuit.next_probe_at)}"
        )
    if blocked is not None:
        return Readiness(
            False, True, False, "RateLimited", f"the platform rate-limited it until {format_time(blocked)}"
        )
    if circuit.state is CircuitState.HALF_OPEN:
        return Readiness(True, True, False, "HalfOpen", "circuit half-open: one probe attempt may start")
    return Readiness(True, False, False, "Ready", "attempts may start")


def _adapter_transitions(
    a: _AdapterState,
    view: AdapterView,
    circuit: Circuit,
    blocked: datetime | None,
    paused: bool,
    readiness: Readiness,
    prev: list[Mapping[str, Any]],
) -> list[tuple[str, str, str]]:
    """Events for what changed since the stored status: (type, reason, message)."""
    old = view.status
    out: list[tuple[str, str, str]] = []
    was_ready = next((c for c in prev if c.get("type") == "Ready"), None) or {}
    old_circuit = _obj(old.get("circuit")).get("state") or CircuitState.CLOSED.value
    if circuit.state.value != old_circuit:
        if circuit.state is CircuitState.OPEN:
            out.append(
                (
                    "Warning",
                    "CircuitOpened",
                    f"circuit opened after {circuit.consecutive_failures} failures; "
                    f"next probe at {format_time(circuit.next_probe_at)}",
                )
            )
        elif circuit.state is CircuitState.HALF_OPEN:
            out.append(("Normal", "CircuitHalfOpen", "cooldown over: one probe attempt may start"))
        else:
            out.append(("Normal", "CircuitClosed", "a post went through: the circuit is closed"))
    old_creds = _obj(old.get("credentials"))
    if old_creds.get("valid", True) is not False and not a.creds_valid:
        reason = "SecretNotFound" if a.creds_reason == SECRET_NOT_FOUND else "CredentialsRefused"
        hint = (
            " create it, or fix spec.credentialsSecretRef"
            if reason == "SecretNotFound"
            else " update the Secret (or the adapter's spec); attempts wait until then"
        )
        out.append(("Warning", reason, _bound(f"{a.creds_message};{hint}")))
    elif old_creds.get("valid") is False and a.creds_valid:
        out.append(("Normal", "CredentialsAccepted", a.creds_message or "the credentials work again"))
    old_blocked = safe_time(_obj(old.get("rateLimit")).get("blockedUntil"))
    if blocked is not None and (old_blocked is None or old_blocked < blocked - timedelta(seconds=1)):
        out.append(("Warning", "RateLimited", f"the platform rate-limited this adapter until {format_time(blocked)}"))
    if paused and was_ready.get("reason") != "Paused":
        out.append(("Normal", "Paused", "spec.paused is true: no new attempt starts"))
    elif not paused and was_ready.get("reason") == "Paused":
        out.append(("Normal", "Resumed", "spec.paused is false: attempts start again"))
    if readiness.reason == INVALID_SPEC and not (
        was_ready.get("reason") == INVALID_SPEC and was_ready.get("message") == readiness.message
    ):
        out.append(("Warning", INVALID_SPEC, readiness.message))
    return out

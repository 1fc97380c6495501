"""Compact, immutable views of the API objects Herald decides from."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from .durations import MIN_TIME, InvalidValue, parse_duration, safe_time
from .validation import adapter_problems, publication_problems

# status.observedRedrive holds at most this many characters; a longer annotation is recorded by digest.
MAX_REDRIVE = 1024


def parse_time(v: Any) -> datetime | None:
    return safe_time(v)


def redrive_token(value: Any) -> str | None:
    """The ``herald.dev/redrive`` annotation as recorded in status: as is, or a digest when too long."""
    if not value or not isinstance(value, str):
        return None
    if len(value) <= MAX_REDRIVE:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def retry_scope(value: Any) -> tuple[str, ...] | None:
    """The targets a ``herald.dev/retry-now`` value names (``<time> targets=a,b``); None: all."""
    if not isinstance(value, str) or " targets=" not in value:
        return None
    names = value.partition(" targets=")[2].split(",")
    return tuple(n.strip() for n in names if n.strip())


def _rv(meta: Mapping[str, Any]) -> int:
    try:
        return int(meta.get("resourceVersion") or 0)
    except ValueError:
        return 0


@dataclass(frozen=True)
class PublicationView:
    namespace: str
    name: str
    uid: str
    generation: int
    rv: int
    created: datetime
    labels: Mapping[str, str]
    redrive: str | None
    spec: Mapping[str, Any]
    status: Mapping[str, Any]
    retry_now: str | None = None  # the herald.dev/retry-now annotation (kubectl herald retry-now)
    retry_now_targets: tuple[str, ...] | None = None  # its " targets=a,b" scope; None: every target

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def target_names(self) -> tuple[str, ...]:
        """The adapters named in spec.targets (whatever else the spec holds)."""
        targets = self.spec.get("targets")
        if not isinstance(targets, list):
            return ()
        names = (t.get("adapter") for t in targets if isinstance(t, Mapping))
        return tuple(dict.fromkeys(n for n in names if isinstance(n, str) and n))

    @cached_property
    def problems(self) -> tuple[str, ...]:
        """Why the operator cannot act on this spec (empty when it can); checked once per version,
        not on every decision of its adapter's unit."""
        return tuple(publication_problems(self.spec))

    @property
    def dead_letter_targets(self) -> tuple[str, ...]:
        """The targets whose stored status is in the dead letter."""
        targets = self.status.get("targets")
        if not isinstance(targets, list):
            return ()
        return tuple(
            t["adapter"]
            for t in targets
            if isinstance(t, Mapping) and t.get("deadLetter") is True and isinstance(t.get("adapter"), str)
        )

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PublicationView:
        m = body["metadata"]
        return cls(
            namespace=m["namespace"],
            name=m["name"],
            uid=m["uid"],
            generation=int(m.get("generation") or 0),
            rv=_rv(m),
            created=parse_time(m.get("creationTimestamp")) or MIN_TIME,
            labels=dict(m.get("labels") or {}),
            redrive=redrive_token((m.get("annotations") or {}).get("herald.dev/redrive")),
            retry_now=redrive_token((m.get("annotations") or {}).get("herald.dev/retry-now")),
            retry_now_targets=retry_scope((m.get("annotations") or {}).get("herald.dev/retry-now")),
            spec=_mapping(body.get("spec")),
            status=_mapping(body.get("status")),
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class AdapterView:
    namespace: str
    name: str
    uid: str
    generation: int
    rv: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def credentials_secret(self) -> str | None:
        ref = self.spec.get("credentialsSecretRef")
        name = ref.get("name") if isinstance(ref, Mapping) else None
        return name if isinstance(name, str) and name else None

    @cached_property
    def problems(self) -> tuple[str, ...]:
        """Why the operator cannot use this spec (empty when it can); checked once per version,
        not on every decision that reads the adapter."""
        return tuple(adapter_problems(self.spec))

    @property
    def rate_window(self) -> float | None:
        """The rate-limit period in seconds, when a rate limit is set (and readable)."""
        rl = self.spec.get("rateLimit")
        if not isinstance(rl, Mapping) or not rl.get("limit"):
            return None
        try:
            return parse_duration(rl.get("period"), 60.0)
        except InvalidValue:
            return None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> AdapterView:
        m = body["metadata"]
        return cls(
            namespace=m["namespace"],
            name=m["name"],
            uid=m["uid"],
            generation=int(m.get("generation") or 0),
            rv=_rv(m),
            spec=_mapping(body.get("spec")),
            status=_mapping(body.get("status")),
        )


@dataclass(frozen=True)
class JobView:
    namespace: str
    name: str
    uid: str
    rv: int
    owner_uid: str | None
    target: str
    attempt: int
    verify: bool
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    complete: bool = False
    failed: bool = False
    failed_reason: str = ""
    active: int = 0
    deleting: bool = False
    credentials_version: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def done(self) -> bool:
        return self.complete or self.failed

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JobView | None:
        m = body["metadata"]
        ann = m.get("annotations") or {}
        if "herald.dev/attempt" not in ann or "herald.dev/target" not in ann:
            return None
        try:
            attempt = int(ann["herald.dev/attempt"])
        except (TypeError, ValueError):
            return None
        owner = next((o.get("uid") for o in m.get("ownerReferences") or [] if o.get("kind") == "Publication"), None)
        st = body.get("status") or {}
        complete = failed = False
        reason = ""
        for c in st.get("conditions") or []:
            if c.get("status") != "True":
                continue
            if c["type"] == "Complete":
                complete = True
            elif c["type"] == "Failed":
                failed, reason = True, c.get("reason") or ""
        return cls(
            namespace=m["namespace"],
            name=m["name"],
            uid=m["uid"],
            rv=_rv(m),
            owner_uid=owner,
            target=ann["herald.dev/target"],
            attempt=attempt,
            verify=ann.get("herald.dev/mode") == "verify",
            created=parse_time(m.get("creationTimestamp")) or MIN_TIME,
            started=parse_time(st.get("startTime")),
            finished=parse_time(st.get("completionTime")),
            complete=complete,
            failed=failed,
            failed_reason=reason,
            active=int(st.get("active") or 0),
            deleting=bool(m.get("deletionTimestamp")),
            credentials_version=ann.get("herald.dev/credentials-version"),
        )


@dataclass(frozen=True)
class PodView:
    namespace: str
    name: str
    rv: int
    job: str
    phase: str
    reason: str = ""
    message: str = ""
    started: datetime | None = None
    terminated: Mapping[str, Any] | None = None
    waiting_reason: str = ""
    waiting_message: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PodView | None:
        m = body["metadata"]
        job = (m.get("labels") or {}).get("job-name") or (m.get("labels") or {}).get("batch.kubernetes.io/job-name")
        if not job:
            return None
        st = body.get("status") or {}
        terminated = None
        waiting_reason = waiting_message = ""
        for cs in st.get("containerStatuses") or []:
            if cs.get("name") != "adapter":
                continue
            state = cs.get("state") or {}
            if state.get("terminated"):
                terminated = dict(state["terminated"])
            elif state.get("waiting"):
                waiting_reason = state["waiting"].get("reason") or ""
                waiting_message = state["waiting"].get("message") or ""
        return cls(
            namespace=m["namespace"],
            name=m["name"],
            rv=_rv(m),
            job=job,
            phase=st.get("phase") or "Pending",
            reason=st.get("reason") or "",
            message=st.get("message") or "",
            started=parse_time(st.get("startTime")),
            terminated=terminated,
            waiting_reason=waiting_reason,
            waiting_message=waiting_message,
        )

"""Deterministic names: one Job name per (publication, target, attempt), and the idempotency key."""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 63  # Job names become the pods' job-name label value


def _digest(*parts: str, length: int) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def job_name(publication: str, target: str, attempt: int) -> str:
    """``<publication>-<target>-<hash>-<attempt>``, trimmed to fit 63 characters.

    The hash covers the full publication and target names, so trimming never makes two
    targets share a name, and the same attempt always gets the same name (a restarted
    operator's create then fails with AlreadyExists instead of starting a second Job)."""
    suffix = f"-{_digest(publication, target, length=12)}-{attempt}"
    room = MAX_NAME - len(suffix)
    head = f"{publication}-{target}"
    if len(head) > room:
        p = max(1, room // 2)
        head = f"{publication[:p].rstrip('-.')}-{target[: room - p - 1]}"
    head = re.sub(r"[^a-z0-9-]", "-", head[:room].lower()).strip("-")
    return head + suffix


def label_value(name: str) -> str:
    """A label value for a name that may be longer than 63 characters."""
    if len(name) <= MAX_NAME:
        return name
    return f"{name[:54].rstrip('-.')}-{_digest(name, length=8)}"


def idempotency_key(publication_uid: str, target: str) -> str:
    """Stable across all attempts of one publication and target (also across redrives)."""
    return _digest(publication_uid, target, length=32)

"""The plugin's commands. Each takes an ``Api`` (``kube.Kube``, or a fake in tests), its options and
an output stream, and returns the exit code."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml

from herald.durations import safe_time
from herald.jobs import ANNOTATION_TARGET, CONTAINER, LABEL_ADAPTER, LABEL_ATTEMPT, LABEL_PUBLICATION
from herald.naming import label_value
from herald.status import Phase

from . import preview as previews
from . import render
from .kube import Api, CliError, LogsUnavailable

KIND = "publication.herald.dev"
REDRIVE = "herald.dev/redrive"
RETRY_NOW = "herald.dev/retry-now"


def fresh_value(now: datetime | None = None) -> str:
    """A new annotation value: the time, RFC 3339 in UTC with microseconds (so two calls differ)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def retry_now_value(stamp: str, targets: Sequence[str]) -> str:
    """The herald.dev/retry-now value: ``<time>`` for every Retrying target, or
    ``<time> targets=<a>[,<b>...]`` for the named ones (see docs/kubectl-plugin.md)."""
    return f"{stamp} targets={','.join(targets)}" if targets else stamp


def _name(pub: Mapping[str, Any], with_namespace: bool) -> str:
    meta = pub.get("metadata") or {}
    return f"{KIND}/{meta.get('namespace')}/{meta.get('name')}" if with_namespace else f"{KIND}/{meta.get('name')}"


def _status_targets(pub: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [t for t in (pub.get("status") or {}).get("targets") or [] if isinstance(t, Mapping)]


def _spec_targets(pub: Mapping[str, Any]) -> list[str]:
    return [
        t["adapter"]
        for t in (pub.get("spec") or {}).get("targets") or []
        if isinstance(t, Mapping) and isinstance(t.get("adapter"), str)
    ]


# -- choosing publications --------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    names: Sequence[str] = ()
    selector: str | None = None
    all_namespaces: bool = False


def select(api: Api, namespace: str, sel: Selection) -> list[dict[str, Any]]:
    """The named publications (each must exist), or those matching the label selector."""
    if sel.names and sel.selector:
        raise CliError("give publication names or a selector (-l / --dead-letter), not both")
    if sel.names:
        if sel.all_namespaces:
            raise CliError("-A/--all-namespaces goes with a selector (-l or --dead-letter), not with names")
        return [api.get_publication(namespace, n) for n in dict.fromkeys(sel.names)]
    if sel.selector is None:
        raise CliError("name at least one publication, or select them with -l SELECTOR or --dead-letter")
    return api.list_publications(None if sel.all_namespaces else namespace, sel.selector)


def _no_match(out: TextIO, namespace: str, sel: Selection) -> None:
    where = "any namespace" if sel.all_namespaces else f"namespace {namespace}"
    print(f"No publications in {where} match {sel.selector}.", file=out)


# -- status -----------------------------------------------------------------------------------


def status(api: Api, namespace: str, names: Sequence[str], output: str | None, out: TextIO) -> int:
    pubs = [api.get_publication(namespace, n) for n in names]
    if output == "json":
        doc: Any = pubs[0] if len(pubs) == 1 else {"apiVersion": "v1", "kind": "List", "items": pubs}
        out.write(json.dumps(doc, indent=4, ensure_ascii=False) + "\n")
        return 0
    if output == "yaml":
        doc = pubs[0] if len(pubs) == 1 else {"apiVersion": "v1", "kind": "List", "items": pubs}
        out.write(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        return 0
    reports = []
    for pub in pubs:
        adapters: dict[str, dict[str, Any] | None] = {}
        for name in _spec_targets(pub):
            try:
                adapters[name] = api.get_adapter(pub["metadata"]["namespace"], name)
            except CliError:  # e.g. no permission to read PlatformAdapters: the report does without
                adapters[name] = None
        reports.append(render.status_report(pub, adapters))
    out.write("\n".join(reports))
    return 0


# -- redrive ----------------------------------------------------------------------------------


def dead_lettered(pub: Mapping[str, Any]) -> list[str]:
    return [
        str(t.get("adapter"))
        for t in _status_targets(pub)
        if t.get("deadLetter") is True or t.get("phase") == Phase.FAILED
    ]


def redrive(api: Api, namespace: str, sel: Selection, out: TextIO, err: TextIO, now: datetime | None = None) -> int:
    pubs = select(api, namespace, sel)
    if not pubs:
        _no_match(out, namespace, sel)
        return 0
    value = fresh_value(now)
    for pub in pubs:
        meta = pub["metadata"]
        targets = dead_lettered(pub)
        if not targets:
            phase = (pub.get("status") or {}).get("phase") or "no status yet"
            print(f"{_name(pub, sel.all_namespaces)} skipped: no target is in the dead letter ({phase})", file=err)
            continue
        api.patch_publication(meta["namespace"], meta["name"], {"metadata": {"annotations": {REDRIVE: value}}})
        print(
            f"{_name(pub, sel.all_namespaces)} redriven ({REDRIVE}={value}): {', '.join(targets)}",
            file=out,
        )
    return 0


# -- retry-now --------------------------------------------------------------------------------


def _why_not(t: Mapping[str, Any], name: str) -> str:
    phase, reason = t.get("phase"), t.get("reason")
    if phase == Phase.FAILED or t.get("deadLetter"):
        return f"it is in the dead letter: kubectl herald redrive {name}"
    if phase == Phase.PUBLISHED:
        return "it is published"
    if phase == Phase.PUBLISHING:
        return "an attempt is running now"
    if phase == Phase.QUEUED:
        return f"it is due and waits for its adapter ({reason}); retry-now cannot lift that"
    if phase == Phase.SCHEDULED:
        return "it waits for spec.publishAt"
    if phase in (Phase.SUSPENDED, Phase.CANCELLED):
        return f"the publication is suspended: kubectl herald resume {name}"
    return f"it is {phase or 'not started'}"


def retry_now(
    api: Api, namespace: str, name: str, targets: Sequence[str], out: TextIO, now: datetime | None = None
) -> int:
    pub = api.get_publication(namespace, name)
    now = now or datetime.now(UTC)
    spec_targets = _spec_targets(pub)
    by_name = {str(t.get("adapter")): t for t in _status_targets(pub)}
    for t in targets:
        if t not in spec_targets:
            raise CliError(f"publication {name} has no target {t!r} (targets: {', '.join(spec_targets)})")
    chosen = list(dict.fromkeys(targets)) or spec_targets
    retrying = [t for t in chosen if (by_name.get(t) or {}).get("phase") == Phase.RETRYING]
    if not retrying:
        why = "; ".join(f"{t}: {_why_not(by_name.get(t) or {}, name)}" for t in chosen)
        raise CliError(f"nothing to retry now: no target is Retrying ({why})")
    value = retry_now_value(fresh_value(now), retrying if targets else [])
    api.patch_publication(namespace, name, {"metadata": {"annotations": {RETRY_NOW: value}}})
    print(f"{KIND}/{name}: {RETRY_NOW}={value}", file=out)
    for t in retrying:
        when = safe_time(by_name[t].get("nextAttemptAt"))
        due = f"; it was due {render.relative(when, now)}" if when else ""
        print(f"  {t}: next attempt now{due}", file=out)
    skipped = [t for t in targets if t not in retrying]
    for t in skipped:
        print(f"  {t} not retried: {_why_not(by_name.get(t) or {}, name)}", file=out)
    return 0


# -- suspend / resume -------------------------------------------------------------------------


def set_suspend(api: Api, namespace: str, sel: Selection, suspend: bool, out: TextIO) -> int:
    pubs = select(api, namespace, sel)
    if not pubs:
        _no_match(out, namespace, sel)
        return 0
    verb = "suspended" if suspend else "resumed"
    for pub in pubs:
        meta = pub["metadata"]
        if bool((pub.get("spec") or {}).get("suspend")) == suspend:
            state = "already suspended" if suspend else "not suspended"
            print(f"{_name(pub, sel.all_namespaces)} {state} (no change)", file=out)
            continue
        api.patch_publication(meta["namespace"], meta["name"], {"spec": {"suspend": suspend}})
        print(f"{_name(pub, sel.all_namespaces)} {verb}", file=out)
    return 0


# -- logs -------------------------------------------------------------------------------------


@dataclass
class Attempt:
    target: str
    attempt: int
    job: dict[str, Any]
    pods: list[dict[str, Any]]


def _attempt_of(job: Mapping[str, Any]) -> int:
    try:
        return int(((job.get("metadata") or {}).get("labels") or {}).get(LABEL_ATTEMPT, "0"))
    except ValueError:
        return 0


def _target_of(job: Mapping[str, Any]) -> str:
    meta = job.get("metadata") or {}
    return str((meta.get("annotations") or {}).get(ANNOTATION_TARGET) or (meta.get("labels") or {}).get(LABEL_ADAPTER))


def find_attempts(
    api: Api, pub: Mapping[str, Any], target: str | None, attempt: int | None
) -> tuple[list[Attempt], list[str]]:
    """The attempts to show (the latest of each target, or the one asked for) with their pods, and a
    message for each target without one."""
    meta = pub["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid")
    targets = _spec_targets(pub)
    if target is not None:
        if target not in targets:
            raise CliError(f"publication {name} has no target {target!r} (targets: {', '.join(targets)})")
        targets = [target]
    selector = f"{LABEL_PUBLICATION}={label_value(name)}"
    if target is not None:
        selector += f",{LABEL_ADAPTER}={label_value(target)}"
    if attempt is not None:
        selector += f",{LABEL_ATTEMPT}={attempt}"
    jobs = [
        j
        for j in api.list_jobs(namespace, selector)
        # Only this publication's Jobs (not those of a deleted one of the same name).
        if not uid or any(o.get("uid") == uid for o in (j.get("metadata") or {}).get("ownerReferences") or [])
    ]
    by_target: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        by_target.setdefault(_target_of(job), []).append(job)
    status = {str(t.get("adapter")): t for t in _status_targets(pub)}
    found: list[Attempt] = []
    missing: list[str] = []
    for t in targets:
        candidates = sorted(by_target.get(t, []), key=_attempt_of)
        if not candidates:
            missing.append(_no_job(t, attempt, status.get(t) or {}))
            continue
        job = candidates[-1]
        job_name = job["metadata"]["name"]
        pods = sorted(
            api.list_pods(namespace, f"job-name={job_name}"),
            key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]),
        )
        found.append(Attempt(t, _attempt_of(job), job, pods))
    return found, missing


def _no_job(target: str, attempt: int | None, t: Mapping[str, Any]) -> str:
    attempts = int(t.get("attempts") or 0)
    if attempt is not None and attempt > attempts:
        return f"{target}: no attempt {attempt} (attempts so far: {attempts})"
    if not attempts and attempt is None:
        why = t.get("reason") or t.get("phase") or "the operator has not processed it yet"
        return f"{target}: no attempt has started ({why})"
    n = attempt or attempts
    last = f"; last error: {t['lastErrorClass']}: {t.get('lastError') or ''}" if t.get("lastErrorClass") else ""
    return f"{target}: the Job of attempt {n} is gone (deleted after its ttlSecondsAfterFinished), with its logs{last}"


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return (cs.get("state") or {}).get("terminated")
    return None


def explain_unavailable(api: Api, pod: Mapping[str, Any], error: str) -> str:
    """Why a pod's log cannot be read, and what the attempt reported instead."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    node = (pod.get("spec") or {}).get("nodeName")
    lines = [f"cannot read the log of pod {name}: {error}"]
    waiting = next(
        (
            (cs.get("state") or {}).get("waiting")
            for cs in status.get("containerStatuses") or []
            if (cs.get("state") or {}).get("waiting")
        ),
        None,
    )
    if status.get("phase") == "Pending" or waiting:
        why = (waiting or {}).get("reason") or "Pending"
        lines.append(f"  the adapter container has not started yet ({why})")
    elif node:
        info = api.get_node(node)
        port = (((info or {}).get("status") or {}).get("daemonEndpoints") or {}).get("kubeletEndpoint", {}).get("Port")
        if info is not None and not port:
            lines.append(f"  node {node} has no kubelet endpoint to serve logs from (a simulated node, such as kwok's)")
    term = _terminated(pod)
    if term:
        lines.append(
            f"  the adapter exited {term.get('exitCode')} ({term.get('reason') or 'Terminated'}); "
            f"its result (termination message): {(term.get('message') or '(none)').strip()}"
        )
    return "\n".join(lines)


def logs(
    api: Api,
    namespace: str,
    name: str,
    target: str | None,
    attempt: int | None,
    follow: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    pub = api.get_publication(namespace, name)
    attempts, missing = find_attempts(api, pub, target, attempt)
    failed = bool(missing)
    for message in missing:
        print(message, file=err)
    sections = [(a, pod) for a in attempts for pod in a.pods]
    for a in attempts:
        if not a.pods:
            failed = True
            print(f"{a.target}: the Job {a.job['metadata']['name']} of attempt {a.attempt} has no pod", file=err)
    headers = len(sections) > 1
    if follow:
        return _follow(api, namespace, sections, out, err, headers) or int(failed)
    for a, pod in sections:
        pod_name = pod["metadata"]["name"]
        if headers:
            print(f"==> {a.target} attempt {a.attempt}: pod {pod_name} <==", file=out)
        try:
            text = api.pod_log(namespace, pod_name, CONTAINER)
        except LogsUnavailable as exc:
            failed = True
            print(explain_unavailable(api, pod, str(exc)), file=err)
            continue
        out.write(text if not text or text.endswith("\n") else text + "\n")
        out.flush()
    return 1 if failed else 0


def _follow(
    api: Api, namespace: str, sections: list[tuple[Attempt, dict[str, Any]]], out: TextIO, err: TextIO, prefix: bool
) -> int:
    lock = threading.Lock()
    errors: list[str] = []

    def stream(a: Attempt, pod: dict[str, Any]) -> None:
        tag = f"[{a.target}/{a.attempt}] " if prefix else ""
        try:
            for line in api.follow_pod_log(namespace, pod["metadata"]["name"], CONTAINER):
                with lock:
                    out.write(f"{tag}{line}\n")
                    out.flush()
        except LogsUnavailable as exc:
            with lock:
                errors.append(explain_unavailable(api, pod, str(exc)))
        except CliError as exc:
            with lock:
                errors.append(str(exc))

    threads = [threading.Thread(target=stream, args=s, daemon=True) for s in sections]
    for th in threads:
        th.start()
    for th in threads:
        while th.is_alive():
            th.join(timeout=0.5)  # short joins keep Ctrl-C responsive
    for e in errors:
        print(e, file=err)
    return 1 if errors else 0


# -- preview ----------------------------------------------------------------------------------


def preview(
    api: Api | None,
    namespace: str,
    name: str | None,
    target: str | None,
    file_text: str | None,
    platform_flags: list[str],
    output: str | None,
    out: TextIO,
    err: TextIO,
) -> int:
    default, per_target = previews.parse_platform_flags(platform_flags)
    if file_text is not None:
        objects = previews.documents(file_text)
        pub = previews.pick_publication(objects, name)
        platforms = {
            (o.get("metadata") or {}).get("name"): (o.get("spec") or {}).get("platform")
            for o in objects
            if o.get("kind") == "PlatformAdapter"
        }
        endpoints = {
            (o.get("metadata") or {}).get("name"): (o.get("spec") or {}).get("endpoint") or ""
            for o in objects
            if o.get("kind") == "PlatformAdapter"
        }
    else:
        if api is None or name is None:
            raise CliError("name a publication in the cluster, or preview a file with -f FILE")
        pub = api.get_publication(namespace, name)
        platforms, endpoints = {}, {}
    results = []
    for adapter, payload in previews.payloads(pub, target):
        platform = per_target.get(adapter) or default or platforms.get(adapter)
        endpoint = endpoints.get(adapter, "")
        if platform is None and file_text is None and api is not None:
            found = api.get_adapter(pub["metadata"]["namespace"], adapter)
            if found is None:
                raise CliError(
                    f"PlatformAdapter {adapter!r} not found in namespace {pub['metadata']['namespace']}: "
                    f"pass --platform {adapter}=PLATFORM"
                )
            platform = (found.get("spec") or {}).get("platform")
            endpoint = (found.get("spec") or {}).get("endpoint") or ""
        if platform is None:
            raise CliError(
                f"cannot tell the platform of target {adapter!r}: pass --platform {adapter}=PLATFORM "
                "(or --platform PLATFORM for every target), or put its PlatformAdapter in the file"
            )
        results.append(previews.preview_target(adapter, platform, payload, endpoint))
    if output == "json":
        out.write(json.dumps([r.to_json() for r in results], indent=2, ensure_ascii=False) + "\n")
    elif output == "yaml":
        out.write(yaml.safe_dump([r.to_json() for r in results], sort_keys=False, allow_unicode=True))
    else:
        out.write(previews.render(results))
    rejected = [r.adapter for r in results if r.outcome == "rejected"]
    if rejected:
        print(f"error: the adapter would reject the text for {', '.join(rejected)}", file=err)
        return 1
    return 0

"""Herald's CRDs as they were before admission refused what the operator cannot use, to make objects that the
current CRDs refuse: objects created before a CRD upgrade.

``legacy_crds(cluster)`` serves the CRDs of crds/ without the rules and keywords that change added (listed
below), waits until the API server takes a poison object, yields, and in any case restores the CRDs of crds/ and
waits until the poison is refused again. Both steps are ``kubectl apply --server-side --force-conflicts``, the way
the CRDs are installed (so this is a real CRD downgrade and upgrade); the CRDs are shared by the whole cluster, so
nothing else may rely on them being strict meanwhile (the test suite runs serially).

The legacy CRDs are the CRDs of crds/ without the rules and keywords the change added, which is the CRDs before
the change (descriptions aside) but for one thing: the rules that compare two durations (rateLimit.period > 0s,
backoff max >= initial, circuitBreaker maxCooldown >= cooldown) keep the guard the change put in front of
duration(). The old rules refused a duration too large to parse with a CEL evaluation error; the legacy ones let
it through, as CRDs without those rules did, so tests can make objects such as circuitBreaker.cooldown 99999999h.

Objects created inside stay in the cluster after the upgrade: the API server stores them as they are and, with
CRD validation ratcheting, still lets the operator patch them (finalizers, labels, status) while the bad fields
stay unchanged. Examples are in ``POISON``.

The ValidatingAdmissionPolicy for the herald.dev/redrive annotation (crds/policies/) is not a CRD rule: the
operator test fixtures do not install it (they apply crds/ without -R), and ``redrive_policy_disabled(cluster)``
takes Herald's policy bindings away for a while when a test needs a longer annotation on a cluster that has them.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from tests.support.cluster import ROOT, Cluster
from tests.support.waiting import wait_until

CRDS = ROOT / "crds"
CRD_FILES = ("herald.dev_publications.yaml", "herald.dev_platformadapters.yaml")
SERVED_TIMEOUT = 60
DRY_RUN_NAMESPACE = "default"

# The rules added to crds/ by the change, by their messages (each pattern must match at least once).
ADDED_RULES = (
    r"must be at most 720h \(30 days\)$",  # every duration field
    r"^spec\.publishAt must be an RFC 3339 date-time",  # publishAt: form, calendar date, UTC range
    r"^spec\.targets: the content each target is sent",  # the payload budget per target
    r"are reserved for the Job controller$",  # podLabels, podAnnotations
    r"keys must be qualified names",  # podLabels, podAnnotations, nodeSelector
    r"^spec\.jobTemplate\.podAnnotations must total at most",  # the annotations budget
    r"^spec\.jobTemplate\.resources\.limits\.\w+ must not be below",  # cpu, memory
)

NO_CONTROL_CHARACTERS = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F]*$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

# Keywords added (value: what it was set to) and keywords removed (value: what it was before), per schema path
# (``{}`` is a map's value schema, ``[]`` an array's items).
ADDED_KEYWORDS: dict[str, dict[str, dict[str, Any]]] = {
    "publications.herald.dev": {
        ".spec.publishAt": {"maxLength": 64},
        ".spec.content.text": {"pattern": NO_CONTROL_CHARACTERS},
        ".spec.content.title": {"pattern": NO_CONTROL_CHARACTERS},
        ".spec.content.link": {"pattern": NO_CONTROL_CHARACTERS},
        ".spec.content.media[].url": {"pattern": NO_CONTROL_CHARACTERS},
        ".spec.content.media[].altText": {"pattern": NO_CONTROL_CHARACTERS},
        ".spec.targets[].overrides.text": {"pattern": NO_CONTROL_CHARACTERS},
        ".spec.targets[].overrides.title": {"pattern": NO_CONTROL_CHARACTERS},
        ".spec.targets[].overrides.link": {"pattern": NO_CONTROL_CHARACTERS},
    },
    "platformadapters.herald.dev": {
        ".spec.jobTemplate.podLabels{}": {"maxLength": 63, "pattern": LABEL_VALUE},
        ".spec.jobTemplate.nodeSelector{}": {"maxLength": 63, "pattern": LABEL_VALUE},
        ".spec.jobTemplate.podAnnotations{}": {"maxLength": 32768},
    },
}
REMOVED_KEYWORDS: dict[str, dict[str, dict[str, Any]]] = {
    # CEL sees a date-time string as a timestamp, parsed before any rule runs (and an error for the values the
    # rule is there to refuse), so publishAt lost its format to be checked as a string.
    "publications.herald.dev": {".spec.publishAt": {"format": "date-time"}},
}


def _publication(name: str, **spec: Any) -> dict:
    body = {"content": {"text": "Hello from before the upgrade"}, "targets": [{"adapter": "mastodon-main"}]}
    body.update(spec)
    return {"apiVersion": "herald.dev/v1alpha1", "kind": "Publication", "metadata": {"name": name}, "spec": body}


def _adapter(name: str, **spec: Any) -> dict:
    return {
        "apiVersion": "herald.dev/v1alpha1",
        "kind": "PlatformAdapter",
        "metadata": {"name": name},
        "spec": {"platform": "mastodon", **spec},
    }


# Objects the CRDs of crds/ refuse and the legacy ones accept: name -> (manifest, the field the refusal names).
POISON: dict[str, tuple[dict, str]] = {
    "publishAt before year 1 in UTC": (
        _publication("poison-publish-at-min", publishAt="0001-01-01T00:00:00+01:00"),
        "spec.publishAt",
    ),
    "publishAt after year 9999 in UTC": (
        _publication("poison-publish-at-max", publishAt="9999-12-31T23:59:59-01:00"),
        "spec.publishAt",
    ),
    "publishAt in lower case": (
        _publication("poison-publish-at-lower", publishAt="2030-06-01t09:00:00z"),
        "spec.publishAt",
    ),
    "publishAt offset +25:00": (
        _publication("poison-publish-at-offset", publishAt="2030-06-01T09:00:00+25:00"),
        "spec.publishAt",
    ),
    "publication rateLimited.minDelay 99999999h": (
        _publication("poison-min-delay", retryPolicy={"rateLimited": {"minDelay": "99999999h"}}),
        "spec.retryPolicy.rateLimited.minDelay",
    ),
    "publication backoff.max 99999999h": (
        _publication("poison-backoff-max", retryPolicy={"backoff": {"initial": "1s", "max": "99999999h"}}),
        "spec.retryPolicy.backoff.max",
    ),
    "publication text with a control character": (
        _publication("poison-control", content={"text": "bell\x07"}),
        "spec.content.text",
    ),
    "publication payload over 64 KiB": (
        _publication("poison-payload", content={"text": "x" * 65536, "title": "one byte too many"}),
        "spec.targets",
    ),
    "adapter credentialsTimeout 99999999h": (
        _adapter("poison-credentials-timeout", retryPolicy={"credentialsTimeout": "99999999h"}),
        "spec.retryPolicy.credentialsTimeout",
    ),
    "adapter circuitBreaker.cooldown 99999999h": (
        _adapter("poison-cooldown", circuitBreaker={"cooldown": "99999999h"}),
        "spec.circuitBreaker.cooldown",
    ),
    "adapter circuitBreaker.maxCooldown 721h": (
        _adapter("poison-max-cooldown", circuitBreaker={"cooldown": "721h", "maxCooldown": "800h"}),
        "spec.circuitBreaker.maxCooldown",
    ),
    "adapter rateLimit.period 99999999h": (
        _adapter("poison-period", rateLimit={"limit": 1, "period": "99999999h"}),
        "spec.rateLimit.period",
    ),
    "adapter podLabels job-name": (
        _adapter("poison-job-name", jobTemplate={"podLabels": {"job-name": "mine"}}),
        "spec.jobTemplate.podLabels",
    ),
    "adapter podLabels key not a qualified name": (
        _adapter("poison-label-key", jobTemplate={"podLabels": {"team name": "social"}}),
        "spec.jobTemplate.podLabels",
    ),
    "adapter podLabels value not a label value": (
        _adapter("poison-label-value", jobTemplate={"podLabels": {"team": "-social-"}}),
        "spec.jobTemplate.podLabels.team",
    ),
    "adapter cpu limit below request": (
        _adapter("poison-cpu", jobTemplate={"resources": {"limits": {"cpu": "100m"}, "requests": {"cpu": "1"}}}),
        "spec.jobTemplate.resources.limits",
    ),
}

# The probes that tell which schema is served: refused by the CRDs of crds/, accepted by the legacy ones.
PROBES = (
    "publishAt before year 1 in UTC",
    "publication rateLimited.minDelay 99999999h",
    "adapter podLabels job-name",
    "adapter credentialsTimeout 99999999h",
)


def strict_manifests() -> dict[str, dict]:
    """The CRDs of crds/, by name."""
    out = {}
    for name in CRD_FILES:
        crd = yaml.safe_load((CRDS / name).read_text())
        out[crd["metadata"]["name"]] = crd
    return out


def _nodes(node: dict, path: str = "") -> Iterator[tuple[str, dict]]:
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


def legacy_manifests() -> dict[str, dict]:
    """The CRDs of crds/ without the rules and keywords the change added, by name. Fails if something listed
    above is no longer in crds/ (the list would be stale)."""
    used = dict.fromkeys(ADDED_RULES, 0)
    out = {}
    for name, strict in strict_manifests().items():
        crd = copy.deepcopy(strict)
        (version,) = crd["spec"]["versions"]
        nodes = dict(_nodes(version["schema"]["openAPIV3Schema"]))
        for _path, node in nodes.items():
            rules = node.get("x-kubernetes-validations")
            if not rules:
                continue
            kept = []
            for rule in rules:
                hits = [p for p in ADDED_RULES if re.search(p, rule["message"])]
                for p in hits:
                    used[p] += 1
                if not hits:
                    kept.append(rule)
            if kept:
                node["x-kubernetes-validations"] = kept
            else:
                del node["x-kubernetes-validations"]
        for path, keywords in ADDED_KEYWORDS.get(name, {}).items():
            for key, value in keywords.items():
                if nodes[path].get(key) != value:
                    raise ValueError(
                        f"{name} {path}: expected {key}={value!r} (added by the change), found "
                        f"{nodes[path].get(key)!r}: update tests/support/legacy_crds.py"
                    )
                del nodes[path][key]
        for path, keywords in REMOVED_KEYWORDS.get(name, {}).items():
            for key, value in keywords.items():
                if key in nodes[path]:
                    raise ValueError(f"{name} {path}: {key} is back: update tests/support/legacy_crds.py")
                nodes[path][key] = value
        out[name] = crd
    unused = [p for p, n in used.items() if not n]
    if unused:
        raise ValueError(f"no rule in crds/ matches {unused}: update tests/support/legacy_crds.py")
    return out


def _apply(cluster: Cluster, crds: dict[str, dict]) -> None:
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        input=yaml.safe_dump_all(list(crds.values()), sort_keys=False),
    )


def dry_run(cluster: Cluster, obj: dict, namespace: str = DRY_RUN_NAMESPACE):
    """``kubectl create --dry-run=server`` of ``obj``: the completed process (returncode, stderr)."""
    return cluster.kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(obj), check=False)


def _probe_results(cluster: Cluster) -> dict[str, str | None]:
    """For each probe: None if accepted, else the error."""
    out = {}
    for case in PROBES:
        proc = dry_run(cluster, POISON[case][0])
        out[case] = None if proc.returncode == 0 else proc.stderr.strip()
    return out


def wait_served(cluster: Cluster, legacy: bool, timeout: float = SERVED_TIMEOUT) -> None:
    """Wait until the API server validates with the legacy (``legacy=True``) or the strict CRDs."""
    last: list[dict] = [{}]

    def served() -> bool:
        last[0] = _probe_results(cluster)
        if legacy:
            return all(err is None for err in last[0].values())
        return all(err is not None and POISON[case][1] in err for case, err in last[0].items())

    wait_until(
        served,
        timeout=timeout,
        interval=0.2,
        what=f"the {'legacy' if legacy else 'strict'} Herald CRDs to be served (probes: {last})",
    )


def apply_strict(cluster: Cluster) -> None:
    """Serve the CRDs of crds/ and wait until they are in force."""
    _apply(cluster, strict_manifests())
    wait_served(cluster, legacy=False)


@contextmanager
def legacy_crds(cluster: Cluster) -> Iterator[dict[str, dict]]:
    """Serve the legacy CRDs (yields them) until the block ends, then the CRDs of crds/ again."""
    legacy = legacy_manifests()
    try:
        _apply(cluster, legacy)
        wait_served(cluster, legacy=True)
        yield legacy
    finally:
        apply_strict(cluster)


# ---------------------------------------------------------------------------- the redrive admission policy

REDRIVE = "herald.dev/redrive"
POLICY_FILE = CRDS / "policies" / "herald-redrive-policy.yaml"


def redrive_probe(length: int, name: str = "redrive-probe") -> dict:
    """A Publication whose herald.dev/redrive annotation has ``length`` characters."""
    pub = _publication(name)
    pub["metadata"]["annotations"] = {REDRIVE: "r" * length}
    return pub


def redrive_policy_enforced(cluster: Cluster, namespace: str = DRY_RUN_NAMESPACE) -> bool:
    """Whether a 2048-character redrive annotation is refused (by a policy naming the annotation) in ``namespace``
    right now."""
    proc = dry_run(cluster, redrive_probe(2048), namespace=namespace)
    return proc.returncode != 0 and f"metadata.annotations[{REDRIVE}]" in proc.stderr


def _herald_bindings(cluster: Cluster) -> list[dict]:
    """Herald's ValidatingAdmissionPolicyBindings (crds/policies/ or the chart's)."""
    out = cluster.kubectl(
        "get", "validatingadmissionpolicybindings", "-l", "app.kubernetes.io/part-of=herald", "-o", "json"
    )
    return json.loads(out.stdout)["items"]


@contextmanager
def redrive_policy_disabled(cluster: Cluster, namespace: str = DRY_RUN_NAMESPACE) -> Iterator[None]:
    """Take Herald's redrive policy bindings away until the block ends (wait until a long annotation is accepted
    in ``namespace``), then put them back (and wait until it is refused there again). Only waits if there are
    none (the operator test fixtures install none)."""
    bindings = _herald_bindings(cluster)
    try:
        for b in bindings:
            cluster.kubectl("delete", "validatingadmissionpolicybinding", b["metadata"]["name"], "--ignore-not-found")
        wait_until(
            lambda: not redrive_policy_enforced(cluster, namespace),
            timeout=SERVED_TIMEOUT,
            interval=0.2,
            what="the redrive admission policy to be lifted",
        )
        yield
    finally:
        for b in bindings:
            meta = {k: v for k, v in b["metadata"].items() if k in ("name", "labels", "annotations")}
            restored = {"apiVersion": b["apiVersion"], "kind": b["kind"], "metadata": meta, "spec": b["spec"]}
            cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(restored))
        if bindings:
            wait_until(
                lambda: redrive_policy_enforced(cluster, namespace),
                timeout=SERVED_TIMEOUT,
                interval=0.2,
                what="the redrive admission policy to be enforced again",
            )


def install_redrive_policy(
    cluster: Cluster, manifest: str | None = None, namespace: str = DRY_RUN_NAMESPACE
) -> list[dict]:
    """Apply the redrive policy (crds/policies/ unless ``manifest`` is given, e.g. the chart's) and wait until it
    is enforced in ``namespace``; returns the objects applied (for ``uninstall_redrive_policy``)."""
    text = manifest if manifest is not None else POLICY_FILE.read_text()
    objs = [d for d in yaml.safe_load_all(text) if d]
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(objs))
    wait_until(
        lambda: redrive_policy_enforced(cluster, namespace),
        timeout=SERVED_TIMEOUT,
        interval=0.2,
        what=f"the redrive admission policy to be enforced in {namespace}",
    )
    return objs


def uninstall_redrive_policy(cluster: Cluster, objs: list[dict], namespace: str = DRY_RUN_NAMESPACE) -> None:
    """Delete what ``install_redrive_policy`` applied and wait until a long annotation is accepted again."""
    for o in reversed(objs):
        cluster.kubectl("delete", o["kind"].lower(), o["metadata"]["name"], "--ignore-not-found")
    wait_until(
        lambda: not redrive_policy_enforced(cluster, namespace),
        timeout=SERVED_TIMEOUT,
        interval=0.2,
        what=f"the redrive admission policy to be lifted in {namespace}",
    )

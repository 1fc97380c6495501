"""The CRDs in crds/ on a real API server: valid objects are accepted (with their defaults), and invalid
ones are refused by `kubectl apply` (client-side and server-side) with an error naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from tests.support.cluster import ROOT
from tests.support.legacy_crds import POISON, legacy_crds
from tests.support.waiting import wait_until

pytestmark = pytest.mark.cluster

CRD_NAMES = ("publications.herald.dev", "platformadapters.herald.dev")
EXAMPLES = sorted((ROOT / "examples").glob("publication*.yaml"))


def _manifest(obj: dict) -> str:
    return yaml.safe_dump(obj, sort_keys=False)


def _established(cluster, name: str) -> bool:
    # `kubectl wait` errors out (instead of waiting) while a brand-new CRD has no conditions yet.
    return (
        cluster.kubectl(
            "wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s", check=False, timeout=90
        ).returncode
        == 0
    )


@pytest.fixture(scope="module")
def served_crds(cluster):
    """The CRDs applied and served with their current schema."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    for name in CRD_NAMES:
        wait_until(lambda: _established(cluster, name), timeout=90, what=f"crd/{name} Established")

    # Established stays True across a schema update, and kubectl caches discovery: wait until the
    # API server takes the fullest example (which uses every spec field) under the schema just applied.
    probe = (ROOT / "examples" / "publication-multi.yaml").read_text()
    last: list[str] = []

    def served() -> bool:
        out = cluster.kubectl("apply", "--dry-run=server", "-n", "default", "-f", "-", input=probe, check=False)
        last[:] = [out.stderr]
        return out.returncode == 0

    wait_until(served, timeout=60, what=f"the Publication schema to be served (last error: {last})", interval=0.2)
    return cluster


# ---------------------------------------------------------------------------- manifests


def publication(**spec) -> dict:
    base = {
        "content": {"text": "Hello from Herald"},
        "targets": [{"adapter": "mastodon-main"}],
    }
    base.update(spec)
    return {
        "apiVersion": "herald.dev/v1alpha1",
        "kind": "Publication",
        "metadata": {"name": "pub-under-test"},
        "spec": base,
    }


def adapter(**spec) -> dict:
    base = {"platform": "mastodon"}
    base.update(spec)
    return {
        "apiVersion": "herald.dev/v1alpha1",
        "kind": "PlatformAdapter",
        "metadata": {"name": "adapter-under-test"},
        "spec": base,
    }


FULL_ADAPTER = adapter(
    platform="mastodon",
    image="registry.example.org/herald/adapter:1.0",
    command=["herald-adapter"],
    args=["--verbose"],
    endpoint="https://mastodon.example.org",
    credentialsSecretRef={"name": "mastodon-credentials"},
    concurrency=4,
    rateLimit={"limit": 30, "period": "5m"},
    retryPolicy={
        "maxAttempts": 5,
        "backoff": {"initial": "2s", "factor": 2.5, "max": "10m", "jitter": 0.1},
        "rateLimited": {"maxAttempts": 30, "minDelay": "1m", "backoff": {"initial": "30s", "max": "1h"}},
        "network": {"maxAttempts": 8, "backoff": {"initial": "500ms"}},
        "serverError": {"maxAttempts": 4},
        "podFailure": {"maxAttempts": 2, "backoff": {"initial": "1m", "max": "1m"}},
        "unknownOutcome": {"maxAttempts": 3, "policy": "Fail"},
        "credentialsTimeout": "12h",
    },
    circuitBreaker={"failureThreshold": 3, "cooldown": "1m30s", "maxCooldown": "1h"},
    jobTemplate={
        "podAnnotations": {"example.org/team": "social"},
        "podLabels": {"app.kubernetes.io/component": "adapter"},
        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "50m", "memory": 67108864}},
        "serviceAccountName": "herald-adapter",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "social", "effect": "NoSchedule"},
            {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ],
        "activeDeadlineSeconds": 120,
        "ttlSecondsAfterFinished": 0,
    },
    paused=True,
)


def _with(obj: dict, path: str, value) -> dict:
    """A copy of ``obj`` with ``path`` (dotted, from the top) set to ``value``; None deletes it."""
    out = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node.setdefault(p, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return out


INVALID = {
    # name: (manifest, text the error must contain)
    "missing content.text": (_with(publication(), "spec.content.text", None), "spec.content.text"),
    "empty content.text": (_with(publication(), "spec.content.text", ""), "spec.content.text"),
    "empty targets": (publication(targets=[]), "spec.targets"),
    "21 targets": (publication(targets=[{"adapter": f"a{i}"} for i in range(21)]), "spec.targets"),
    "duplicate adapter in targets": (
        publication(targets=[{"adapter": "mastodon-main"}, {"adapter": "bluesky"}, {"adapter": "mastodon-main"}]),
        "spec.targets",
    ),
    "target adapter not a DNS label": (publication(targets=[{"adapter": "Mastodon_Main"}]), "spec.targets[0].adapter"),
    "bad publishAt": (publication(publishAt="tomorrow at nine"), "spec.publishAt"),
    "bad link URL": (_with(publication(), "spec.content.link", "example.org/no-scheme"), "spec.content.link"),
    "ftp link": (_with(publication(), "spec.content.link", "ftp://example.org/x"), "spec.content.link"),
    "link with a space": (_with(publication(), "spec.content.link", "https://example.org/a b"), "spec.content.link"),
    "bad media URL": (
        _with(publication(), "spec.content.media", [{"url": "file:///etc/passwd"}]),
        "spec.content.media[0].url",
    ),
    "17 media": (
        _with(publication(), "spec.content.media", [{"url": f"https://e.org/{i}.png"} for i in range(17)]),
        "spec.content.media",
    ),
    "long altText": (
        _with(publication(), "spec.content.media", [{"url": "https://e.org/a.png", "altText": "x" * 1501}]),
        "spec.content.media[0].altText",
    ),
    "tag with spaces": (_with(publication(), "spec.content.tags", ["ok", "two words"]), "spec.content.tags[1]"),
    "tag with #": (_with(publication(), "spec.content.tags", ["#release"]), "spec.content.tags[0]"),
    "31 tags": (_with(publication(), "spec.content.tags", [f"t{i}" for i in range(31)]), "spec.content.tags"),
    "bad override link": (
        publication(targets=[{"adapter": "slack", "overrides": {"link": "mailto:someone@example.org"}}]),
        "spec.targets[0].overrides.link",
    ),
    "override tag with spaces": (
        publication(targets=[{"adapter": "slack", "overrides": {"tags": ["a b"]}}]),
        "spec.targets[0].overrides.tags[0]",
    ),
    "priority too high": (publication(priority=1001), "spec.priority"),
    "publication backoff max < initial": (
        publication(retryPolicy={"backoff": {"initial": "5m", "max": "30s"}}),
        "spec.retryPolicy.backoff.max",
    ),
    "publication unknownOutcome policy": (
        publication(retryPolicy={"unknownOutcome": {"policy": "Sometimes"}}),
        "spec.retryPolicy.unknownOutcome.policy",
    ),
    "publication maxAttempts 0": (publication(retryPolicy={"maxAttempts": 0}), "spec.retryPolicy.maxAttempts"),
    "publication unknown field": (publication(colour="red"), "spec.colour"),
    "publication unknown nested field": (_with(publication(), "spec.content.body", "x"), "spec.content.body"),
    "missing platform": (_with(adapter(), "spec.platform", None), "spec.platform"),
    "platform not a DNS label": (adapter(platform="Mastodon!"), "spec.platform"),
    "negative concurrency": (adapter(concurrency=-1), "spec.concurrency"),
    "concurrency over 1000": (adapter(concurrency=1001), "spec.concurrency"),
    "rateLimit with bad period": (adapter(rateLimit={"limit": 10, "period": "1 minute"}), "spec.rateLimit.period"),
    "rateLimit with zero period": (adapter(rateLimit={"limit": 10, "period": "0s"}), "spec.rateLimit.period"),
    "rateLimit without limit": (adapter(rateLimit={"period": "1m"}), "spec.rateLimit.limit"),
    "bad endpoint": (adapter(endpoint="mastodon.social"), "spec.endpoint"),
    "bad secret name": (adapter(credentialsSecretRef={"name": "Not_A_Name"}), "spec.credentialsSecretRef.name"),
    "maxCooldown < cooldown": (
        adapter(circuitBreaker={"cooldown": "10m", "maxCooldown": "5m"}),
        "spec.circuitBreaker.maxCooldown",
    ),
    "maxCooldown < default cooldown": (
        adapter(circuitBreaker={"maxCooldown": "1m"}),
        "spec.circuitBreaker.maxCooldown",
    ),
    "adapter network backoff max < initial": (
        adapter(retryPolicy={"network": {"backoff": {"initial": "1h", "max": "1m"}}}),
        "spec.retryPolicy.network.backoff.max",
    ),
    "backoff factor over 10": (adapter(retryPolicy={"backoff": {"factor": 11}}), "spec.retryPolicy.backoff.factor"),
    "podLabels with herald.dev/ key": (
        adapter(jobTemplate={"podLabels": {"team": "social", "herald.dev/publication": "x"}}),
        "spec.jobTemplate.podLabels",
    ),
    "podAnnotations with herald.dev/ key": (
        adapter(jobTemplate={"podAnnotations": {"herald.dev/payload": "{}"}}),
        "spec.jobTemplate.podAnnotations",
    ),
    "toleration Exists with value": (
        adapter(jobTemplate={"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}),
        "spec.jobTemplate.tolerations[0].value",
    ),
    "toleration bad effect": (
        adapter(jobTemplate={"tolerations": [{"key": "k", "effect": "Sometimes"}]}),
        "spec.jobTemplate.tolerations[0].effect",
    ),
    "bad resource quantity": (
        adapter(jobTemplate={"resources": {"limits": {"memory": "lots"}}}),
        "spec.jobTemplate.resources.limits",
    ),
    "activeDeadlineSeconds 0": (
        adapter(jobTemplate={"activeDeadlineSeconds": 0}),
        "spec.jobTemplate.activeDeadlineSeconds",
    ),
    "adapter unknown field": (adapter(retries=3), "spec.retries"),
}

# What the operator cannot use: refused with the field named, never with a CEL evaluation error.
LONG = "99999999h"  # about 11400 years: more than Go's time.Duration holds
OPERATOR_LIMITS = {
    # spec.publishAt: RFC 3339 as the API server writes it, within years 1..9999 in UTC
    "publishAt before year 1 in UTC": (publication(publishAt="0001-01-01T00:00:00+01:00"), "spec.publishAt"),
    "publishAt a second before year 1 in UTC": (publication(publishAt="0001-01-01T00:59:59.9+01:00"), "spec.publishAt"),
    "publishAt after year 9999 in UTC": (publication(publishAt="9999-12-31T23:59:59-01:00"), "spec.publishAt"),
    "publishAt year 0": (publication(publishAt="0000-12-31T23:00:00-01:00"), "spec.publishAt"),
    "publishAt lower-case t and z": (publication(publishAt="2030-06-01t09:00:00z"), "spec.publishAt"),
    "publishAt offset +25:00": (publication(publishAt="2030-06-01T09:00:00+25:00"), "spec.publishAt"),
    "publishAt offset +24:00": (publication(publishAt="2030-06-01T09:00:00+24:00"), "spec.publishAt"),
    "publishAt 30 February": (publication(publishAt="2030-02-30T09:00:00Z"), "spec.publishAt"),
    "publishAt 29 February 2100": (publication(publishAt="2100-02-29T09:00:00Z"), "spec.publishAt"),
    "publishAt hour 24": (publication(publishAt="2030-06-01T24:00:00Z"), "spec.publishAt"),
    "publishAt 10 fraction digits": (publication(publishAt="2030-06-01T09:00:00.0123456789Z"), "spec.publishAt"),
    "publishAt with a space": (publication(publishAt="2030-06-01 09:00:00Z"), "spec.publishAt"),
    "publishAt too long": (publication(publishAt="2030-06-01T09:00:00." + "0" * 60 + "Z"), "spec.publishAt"),
    # every duration: at most 720h
    "publication backoff.initial 721h": (
        publication(retryPolicy={"backoff": {"initial": "721h"}}),
        "spec.retryPolicy.backoff.initial",
    ),
    "publication backoff.max huge, with initial": (
        publication(retryPolicy={"backoff": {"initial": "1s", "max": LONG}}),
        "spec.retryPolicy.backoff.max",
    ),
    "publication rateLimited.minDelay huge": (
        publication(retryPolicy={"rateLimited": {"minDelay": LONG}}),
        "spec.retryPolicy.rateLimited.minDelay",
    ),
    "publication rateLimited.backoff.max 720h1ms": (
        publication(retryPolicy={"rateLimited": {"backoff": {"max": "720h1ms"}}}),
        "spec.retryPolicy.rateLimited.backoff.max",
    ),
    "publication network.backoff.initial 20 digits": (
        publication(retryPolicy={"network": {"backoff": {"initial": "9" * 20 + "h"}}}),
        "spec.retryPolicy.network.backoff.initial",
    ),
    "publication serverError.backoff.max in ms": (
        publication(retryPolicy={"serverError": {"backoff": {"max": "2592000001ms"}}}),
        "spec.retryPolicy.serverError.backoff.max",
    ),
    "publication podFailure.backoff.initial 43201m": (
        publication(retryPolicy={"podFailure": {"backoff": {"initial": "43201m"}}}),
        "spec.retryPolicy.podFailure.backoff.initial",
    ),
    "publication unknownOutcome.backoff.max in parts": (
        publication(retryPolicy={"unknownOutcome": {"backoff": {"max": "700h1200m0.001s"}}}),
        "spec.retryPolicy.unknownOutcome.backoff.max",
    ),
    "publication credentialsTimeout huge": (
        publication(retryPolicy={"credentialsTimeout": LONG}),
        "spec.retryPolicy.credentialsTimeout",
    ),
    "adapter backoff.initial huge, with max": (
        adapter(retryPolicy={"backoff": {"initial": LONG, "max": "10m"}}),
        "spec.retryPolicy.backoff.initial",
    ),
    "adapter rateLimited.minDelay huge": (
        adapter(retryPolicy={"rateLimited": {"minDelay": LONG}}),
        "spec.retryPolicy.rateLimited.minDelay",
    ),
    "adapter network.backoff.max 721h": (
        adapter(retryPolicy={"network": {"backoff": {"max": "721h"}}}),
        "spec.retryPolicy.network.backoff.max",
    ),
    "adapter credentialsTimeout huge": (
        adapter(retryPolicy={"credentialsTimeout": LONG}),
        "spec.retryPolicy.credentialsTimeout",
    ),
    "adapter rateLimit.period huge": (adapter(rateLimit={"limit": 1, "period": LONG}), "spec.rateLimit.period"),
    "adapter circuitBreaker.cooldown huge": (
        adapter(circuitBreaker={"cooldown": LONG, "maxCooldown": "1h"}),
        "spec.circuitBreaker.cooldown",
    ),
    "adapter circuitBreaker.maxCooldown 721h": (
        adapter(circuitBreaker={"maxCooldown": "721h"}),
        "spec.circuitBreaker.maxCooldown",
    ),
    # jobTemplate: labels, annotations and the node selector as the Job's pod template takes them
    "podLabels key with a space": (
        adapter(jobTemplate={"podLabels": {"team name": "social"}}),
        "spec.jobTemplate.podLabels",
    ),
    "podLabels key with an upper-case prefix": (
        adapter(jobTemplate={"podLabels": {"Example.com/team": "x"}}),
        "spec.jobTemplate.podLabels",
    ),
    "podLabels key name of 64": (
        adapter(jobTemplate={"podLabels": {"example.com/" + "n" * 64: "x"}}),
        "spec.jobTemplate.podLabels",
    ),
    "podLabels key prefix over 253": (
        adapter(
            jobTemplate={"podLabels": {"p" * 63 + "." + "p" * 63 + "." + "p" * 63 + "." + "p" * 63 + "/name": "x"}}
        ),
        "spec.jobTemplate.podLabels",
    ),
    "podLabels value not a label value": (
        adapter(jobTemplate={"podLabels": {"team": "-social"}}),
        "spec.jobTemplate.podLabels.team",
    ),
    "podLabels value of 64": (
        adapter(jobTemplate={"podLabels": {"team": "s" * 64}}),
        "spec.jobTemplate.podLabels.team",
    ),
    "podLabels job-name": (adapter(jobTemplate={"podLabels": {"job-name": "x"}}), "spec.jobTemplate.podLabels"),
    "podLabels controller-uid": (
        adapter(jobTemplate={"podLabels": {"controller-uid": "x"}}),
        "spec.jobTemplate.podLabels",
    ),
    "podLabels batch.kubernetes.io/": (
        adapter(jobTemplate={"podLabels": {"batch.kubernetes.io/job-name": "x"}}),
        "spec.jobTemplate.podLabels",
    ),
    "podAnnotations key not a qualified name": (
        adapter(jobTemplate={"podAnnotations": {"team/name/x": "social"}}),
        "spec.jobTemplate.podAnnotations",
    ),
    "podAnnotations batch.kubernetes.io/": (
        adapter(jobTemplate={"podAnnotations": {"batch.kubernetes.io/job-completion-index": "0"}}),
        "spec.jobTemplate.podAnnotations",
    ),
    "podAnnotations job-name": (
        adapter(jobTemplate={"podAnnotations": {"job-name": "x"}}),
        "spec.jobTemplate.podAnnotations",
    ),
    "podAnnotations over 32768 bytes": (
        adapter(jobTemplate={"podAnnotations": {"a": "x" * 16384, "b": "\u00e9" * 8192}}),
        "spec.jobTemplate.podAnnotations",
    ),
    "nodeSelector key not a qualified name": (
        adapter(jobTemplate={"nodeSelector": {"disk type": "ssd"}}),
        "spec.jobTemplate.nodeSelector",
    ),
    "nodeSelector value not a label value": (
        adapter(jobTemplate={"nodeSelector": {"disktype": "s s d"}}),
        "spec.jobTemplate.nodeSelector.disktype",
    ),
    "cpu limit below request": (
        adapter(jobTemplate={"resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}}}),
        "spec.jobTemplate.resources.limits",
    ),
    "memory limit below request": (
        adapter(jobTemplate={"resources": {"limits": {"memory": 1000}, "requests": {"memory": "1Ki"}}}),
        "spec.jobTemplate.resources.limits",
    ),
    # content: no control characters, and at most 64 KiB per target for the Job's payload annotation
    "text with a control character": (_with(publication(), "spec.content.text", "ding\x07"), "spec.content.text"),
    "title with an escape": (_with(publication(), "spec.content.title", "\x1b[1mBold"), "spec.content.title"),
    "link with a unit separator": (
        _with(publication(), "spec.content.link", "https://example.org/\x1f"),
        "spec.content.link",
    ),
    "media URL with a NUL": (
        _with(publication(), "spec.content.media", [{"url": "https://e.org/\x00.png"}]),
        "spec.content.media[0].url",
    ),
    "altText with a backspace": (
        _with(publication(), "spec.content.media", [{"url": "https://e.org/a.png", "altText": "a\x08"}]),
        "spec.content.media[0].altText",
    ),
    "override text with a control character": (
        publication(targets=[{"adapter": "slack", "overrides": {"text": "\x01"}}]),
        "spec.targets[0].overrides.text",
    ),
    "payload over 64 KiB": (_with(publication(), "spec.content.text", "\u00e9" * 32768 + "!"), "spec.targets"),
    "payload over 64 KiB with media": (
        _with(
            _with(publication(), "spec.content.text", "x" * 60000),
            "spec.content.media",
            [{"url": "https://e.org/a.png", "altText": "a" * 1500}] * 4,
        ),
        "spec.targets",
    ),
    "payload over 64 KiB for one target": (
        publication(
            content={"text": "short"},
            targets=[
                {"adapter": "mastodon"},
                {"adapter": "slack", "overrides": {"text": "\U0001f600" * 16384, "title": "t"}},
            ],
        ),
        "spec.targets",
    ),
}

CLEAN = ("evaluating rule", "Internal error", "type conversion error", "no such overload", "overflow")

APPLY_MODES = {
    "client-side": ["apply", "--dry-run=server"],
    "server-side": ["apply", "--server-side", "--dry-run=server"],
}


def _apply(cluster, namespace: str, obj: dict, mode: str = "client-side"):
    return cluster.kubectl(*APPLY_MODES[mode], "-n", namespace, "-f", "-", input=_manifest(obj), check=False)


# ---------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_accepted(served_crds, namespace, example: Path):
    out = served_crds.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(example), check=False)
    assert out.returncode == 0, out.stderr
    out = served_crds.kubectl(
        "apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", str(example), check=False
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("mode", APPLY_MODES)
@pytest.mark.parametrize(
    "obj", [adapter(), FULL_ADAPTER, publication()], ids=["minimal-adapter", "full-adapter", "minimal-publication"]
)
def test_valid_objects_are_accepted(served_crds, namespace, obj, mode):
    out = _apply(served_crds, namespace, obj, mode)
    assert out.returncode == 0, out.stderr


# The edges of what the operator can use: accepted.
EDGES = {
    "publishAt with an offset": publication(publishAt="2030-06-01T09:00:00+01:00"),
    "publishAt at the start of year 1": publication(publishAt="0001-01-01T00:00:00Z"),
    "publishAt in year 1 after the offset": publication(publishAt="0001-01-01T01:00:00+01:00"),
    "publishAt at the end of year 9999": publication(publishAt="9999-12-31T23:59:59Z"),
    "publishAt in year 9999 before the offset": publication(publishAt="9999-12-31T22:59:59.999999999-01:00"),
    "publishAt 29 February 2028": publication(publishAt="2028-02-29T09:00:00Z"),
    "publishAt 29 February 2000": publication(publishAt="2000-02-29T09:00:00Z"),
    "publishAt offset -23:59 with a fraction": publication(publishAt="2030-06-01T09:00:00.5-23:59"),
    "publication durations of 720h": publication(
        retryPolicy={
            "backoff": {"initial": "720h", "max": "720h"},
            "rateLimited": {"minDelay": "43200m"},
            "network": {"backoff": {"initial": "2592000s", "max": "2592000000ms"}},
            "serverError": {"backoff": {"max": "719h59m59.999s"}},
            "credentialsTimeout": "000000000000000000720h",
        }
    ),
    "adapter durations of 720h": adapter(
        rateLimit={"limit": 1, "period": "720h"},
        circuitBreaker={"cooldown": "720h", "maxCooldown": "720h"},
        retryPolicy={
            "credentialsTimeout": "720h",
            "rateLimited": {"minDelay": "720h"},
            "podFailure": {"backoff": {"initial": "1.5h", "max": "720h"}},
        },
    ),
    "labels at their limits": adapter(
        jobTemplate={
            "podLabels": {
                "example.com/team": "social",
                "empty": "",
                "n" * 63: "v" * 63,
                ("p" * 63 + ".") * 3 + "p" * 61 + "/" + "Name_with-dots.63" + "x" * 46: "A-b_c.9",
            },
            "nodeSelector": {"kubernetes.io/os": "linux", "topology.kubernetes.io/zone": ""},
        }
    ),
    "annotations at their limit": adapter(
        jobTemplate={"podAnnotations": {"Example.com/Team": "social", "a": "x" * (32768 - 16 - 6 - 1 - 1), "b": ""}}
    ),
    "requests equal to limits": adapter(
        jobTemplate={
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1024Mi"}}
        }
    ),
    "only limits, only requests": adapter(
        jobTemplate={"resources": {"limits": {"cpu": "1"}, "requests": {"memory": 67108864}}}
    ),
    "payload of exactly 64 KiB": _with(
        _with(publication(), "spec.content.text", "\u00e9" * 32760 + "\t\r\n"),
        "spec.content.tags",
        ["abcdefghij", "klm"],
    ),
    "longest text, shorter overrides": publication(
        content={"text": "x" * 65536},
        targets=[{"adapter": "slack", "overrides": {"text": "y" * 60000, "title": "t" * 1024}}],
    ),
}


@pytest.mark.parametrize("mode", APPLY_MODES)
@pytest.mark.parametrize("case", EDGES)
def test_the_edges_of_what_the_operator_can_use_are_accepted(served_crds, namespace, case, mode):
    out = _apply(served_crds, namespace, EDGES[case], mode)
    assert out.returncode == 0, f"{case}: {out.stderr}"


def _created(cluster, namespace: str, obj: dict) -> dict:
    out = cluster.kubectl("create", "-n", namespace, "-o", "json", "-f", "-", input=_manifest(obj), check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_platformadapter_defaults(served_crds, namespace):
    got = _created(served_crds, namespace, adapter(circuitBreaker={}, retryPolicy={"unknownOutcome": {}}))["spec"]
    assert got["concurrency"] == 1
    assert got["paused"] is False
    assert got["circuitBreaker"] == {"failureThreshold": 5, "cooldown": "2m", "maxCooldown": "30m"}
    assert got["retryPolicy"] == {"credentialsTimeout": "24h", "unknownOutcome": {"policy": "Verify"}}


def test_publication_defaults_leave_the_adapters_retry_policy_alone(served_crds, namespace):
    got = _created(served_crds, namespace, publication(retryPolicy={"unknownOutcome": {"maxAttempts": 2}}))["spec"]
    assert (got["priority"], got["suspend"], got["truncate"]) == (0, False, False)
    # Merged over the adapter's policy: a default here would override the adapter's values.
    assert got["retryPolicy"] == {"unknownOutcome": {"maxAttempts": 2}}


# ---------------------------------------------------------------------------- refused


@pytest.mark.parametrize("mode", APPLY_MODES)
@pytest.mark.parametrize("case", INVALID)
def test_invalid_objects_are_refused_naming_the_field(served_crds, namespace, case, mode):
    obj, field = INVALID[case]
    out = _apply(served_crds, namespace, obj, mode)
    assert out.returncode != 0, f"{case} was accepted:\n{out.stdout}"
    assert field in out.stderr, f"{case}: the error does not name {field}:\n{out.stderr}"


@pytest.mark.parametrize("mode", APPLY_MODES)
@pytest.mark.parametrize("case", OPERATOR_LIMITS)
def test_what_the_operator_cannot_use_is_refused_naming_the_field(served_crds, namespace, case, mode):
    obj, field = OPERATOR_LIMITS[case]
    out = _apply(served_crds, namespace, obj, mode)
    assert out.returncode != 0, f"{case} was accepted:\n{out.stdout}"
    assert f"{field}:" in out.stderr, f"{case}: the error does not name {field}:\n{out.stderr}"
    # A refusal, not a rule that failed to run: every message is one of ours or the schema's.
    assert not [c for c in CLEAN if c in out.stderr], f"{case}: an unclear error:\n{out.stderr}"


def test_duplicate_targets_error_is_clear(served_crds, namespace):
    obj, _ = INVALID["duplicate adapter in targets"]
    out = _apply(served_crds, namespace, obj, "client-side")
    assert "spec.targets[2]: Duplicate value" in out.stderr, out.stderr
    out = _apply(served_crds, namespace, obj, "server-side")
    assert 'duplicate entries for key [adapter="mastodon-main"]' in out.stderr, out.stderr


def test_cel_messages_say_what_is_wrong(served_crds, namespace):
    out = _apply(served_crds, namespace, INVALID["maxCooldown < cooldown"][0])
    assert (
        "spec.circuitBreaker.maxCooldown (5m) must be greater than or equal to spec.circuitBreaker.cooldown (10m)"
        in out.stderr
    ), out.stderr
    out = _apply(served_crds, namespace, INVALID["podLabels with herald.dev/ key"][0])
    assert "reserved for Herald" in out.stderr, out.stderr
    out = _apply(served_crds, namespace, INVALID["bad link URL"][0])
    assert "spec.content.link must be an absolute http:// or https:// URL" in out.stderr, out.stderr


@pytest.mark.parametrize(
    "case, message",
    [
        (
            "publication rateLimited.minDelay huge",
            "spec.retryPolicy.rateLimited.minDelay (99999999h) must be at most 720h (30 days)",
        ),
        ("adapter rateLimit.period huge", "spec.rateLimit.period (99999999h) must be at most 720h (30 days)"),
        (
            "publishAt before year 1 in UTC",
            "spec.publishAt (0001-01-01T00:00:00+01:00) must be an RFC 3339 date-time such as 2030-06-01T09:00:00Z",
        ),
        ("publishAt lower-case t and z", "between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in UTC"),
        ("podLabels key with a space", 'spec.jobTemplate.podLabels: "team name" is not a qualified name'),
        (
            "podLabels job-name",
            "spec.jobTemplate.podLabels: label keys batch.kubernetes.io/*, controller-uid and "
            "job-name are reserved for the Job controller",
        ),
        ("podAnnotations over 32768 bytes", "spec.jobTemplate.podAnnotations must total at most 32768 bytes"),
        (
            "cpu limit below request",
            "spec.jobTemplate.resources.limits.cpu (500m) must not be below "
            "spec.jobTemplate.resources.requests.cpu (1)",
        ),
        (
            "memory limit below request",
            "spec.jobTemplate.resources.limits.memory (1000) must not be below "
            "spec.jobTemplate.resources.requests.memory (1Ki)",
        ),
        ("payload over 64 KiB", "must be at most 65536 bytes in UTF-8"),
        ("text with a control character", "spec.content.text in body should match"),
    ],
)
def test_operator_limit_messages_say_what_is_wrong(served_crds, namespace, case, message):
    out = _apply(served_crds, namespace, OPERATOR_LIMITS[case][0])
    assert message in out.stderr, out.stderr


def test_delete_characters_are_refused(served_crds, namespace):
    """DEL (0x7f) too: the operator would escape it to 6 bytes in the Job's payload. A server-side apply never gets
    that far: the API server's YAML decoder refuses the raw character first."""
    obj = _with(publication(), "spec.content.link", "https://example.org/\x7f")
    out = _apply(served_crds, namespace, obj, "client-side")
    assert out.returncode != 0 and "spec.content.link: Invalid value" in out.stderr, out.stderr
    out = _apply(served_crds, namespace, obj, "server-side")
    assert out.returncode != 0 and "control characters are not allowed" in out.stderr, out.stderr


def test_a_huge_duration_gets_one_clear_error(served_crds, namespace):
    """The rule comparing max with initial skips a value it cannot parse: the field's own rule reports it."""
    out = _apply(served_crds, namespace, OPERATOR_LIMITS["publication backoff.max huge, with initial"][0])
    assert out.stderr.count("spec.retryPolicy.backoff.max") == 2, out.stderr  # the path, then the message
    assert "greater than or equal" not in out.stderr, out.stderr


def test_unknown_fields_are_refused_by_strict_validation(served_crds, namespace):
    out = _apply(served_crds, namespace, publication(colour="red"))
    assert 'unknown field "spec.colour"' in out.stderr, out.stderr


# ---------------------------------------------------------------------------- status, columns, names

STATUS = {
    "phase": "Retrying",
    "observedGeneration": 1,
    "observedRedrive": None,
    "publishedTargets": 1,
    "totalTargets": 2,
    "attempts": 3,
    "nextAttemptAt": "2030-01-01T00:00:30Z",
    "conditions": [
        {
            "type": "Published",
            "status": "True",
            "reason": "AllTargetsPublished",
            "message": "",
            "lastTransitionTime": "2030-01-01T00:00:00Z",
            "observedGeneration": 1,
        },
        {
            "type": "Retrying",
            "status": "True",
            "reason": "RetryScheduled",
            "message": "network",
            "lastTransitionTime": "2030-01-01T00:00:00Z",
        },
    ],
    "targets": [
        {
            "adapter": "mastodon-main",
            "phase": "Published",
            "reason": "Published",
            "message": "",
            "attempts": 1,
            "retries": 0,
            "jobName": "pub-mastodon-main-abc123-1",
            "lastErrorClass": None,
            "lastError": None,
            "lastBackoffSeconds": None,
            "nextAttemptAt": None,
            "postId": "1099",
            "url": "https://m.example/@h/1099",
            "publishedTime": "2030-01-01T00:00:05Z",
            "observedAttempt": 1,
            "verifyNext": False,
            "budgetStart": 0,
            "failures": {},
            "deadLetter": False,
            "waitingSince": None,
        },
        {
            "adapter": "bluesky",
            "phase": "Retrying",
            "reason": "RetryScheduled",
            "message": "connect timeout",
            "attempts": 2,
            "retries": 1,
            "jobName": None,
            "lastErrorClass": "network",
            "lastError": "connect timeout",
            "lastBackoffSeconds": 2.5,
            "nextAttemptAt": "2030-01-01T00:00:30Z",
            "postId": None,
            "url": None,
            "publishedTime": None,
            "observedAttempt": 2,
            "verifyNext": False,
            "budgetStart": 0,
            "failures": {"network": 2},
            "deadLetter": False,
            "waitingSince": None,
        },
    ],
}


def _patch_status(cluster, namespace: str, resource: str, status: dict, check: bool = True):
    # A JSON patch, not a merge patch: in a merge patch null means "delete", and nulls must reach the schema.
    patch = [{"op": "add", "path": "/status", "value": status}]
    out = cluster.kubectl(
        "patch", resource, "-n", namespace, "--subresource=status", "--type=json", "-p", json.dumps(patch), check=False
    )
    assert out.returncode == 0 or not check, out.stderr
    return out


def test_publication_status_the_operator_writes_is_accepted(served_crds, namespace):
    _created(served_crds, namespace, publication(targets=[{"adapter": "mastodon-main"}, {"adapter": "bluesky"}]))
    _patch_status(served_crds, namespace, "publication/pub-under-test", STATUS)
    got = json.loads(served_crds.kubectl("get", "pub", "pub-under-test", "-n", namespace, "-o", "json").stdout)[
        "status"
    ]
    assert got["targets"][1]["failures"] == {"network": 2}
    assert got["targets"][1]["lastBackoffSeconds"] == 2.5
    # Nullable fields keep an explicit null (others would have it pruned).
    assert got["targets"][0]["lastErrorClass"] is None
    assert got["targets"][1]["jobName"] is None
    assert got["observedRedrive"] is None

    table = served_crds.kubectl("get", "pub", "-n", namespace).stdout.splitlines()
    header = ["NAME", "PHASE", "REASON", "PUBLISHED", "TARGETS", "ATTEMPTS", "NEXT", "ATTEMPT", "AGE"]
    assert table[0].split() == header
    # The next attempt as a time, not "<invalid>" (what a date column shows for a future time).
    reason = [got["reason"]] if got.get("reason") else []  # an empty column leaves no word
    expected = ["pub-under-test", "Retrying", *reason, "1", "2", "3", "2030-01-01T00:00:30Z"]
    assert table[1].split()[: len(expected)] == expected

    out = served_crds.kubectl(
        "wait", "--for=condition=Published", "publication/pub-under-test", "-n", namespace, "--timeout=30s", check=False
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    "status, field",
    [
        ({"phase": "Done"}, "status.phase"),
        ({"targets": [{"adapter": "a", "lastErrorClass": "cosmic_rays"}]}, "status.targets[0].lastErrorClass"),
        ({"targets": [{"adapter": "a", "failures": {"network": "two"}}]}, "status.targets[0].failures.network"),
        ({"conditions": [{"type": "Published", "status": "Maybe"}]}, "status.conditions[0].status"),
    ],
    ids=["phase", "lastErrorClass", "failures", "condition-status"],
)
def test_bad_status_is_refused(served_crds, namespace, status, field):
    _created(served_crds, namespace, publication())
    out = _patch_status(served_crds, namespace, "publication/pub-under-test", status, check=False)
    assert out.returncode != 0, out.stdout
    assert field in out.stderr, out.stderr


def test_platformadapter_status_and_columns(served_crds, namespace):
    _created(served_crds, namespace, adapter(paused=True))
    status = {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Ready",
                "message": "",
                "lastTransitionTime": "2030-01-01T00:00:00Z",
            }
        ],
        "queue": {"pending": 7, "running": 2},
        "lastPublishedTime": None,
        "circuit": {
            "state": "HalfOpen",
            "consecutiveFailures": 5,
            "openedAt": "2030-01-01T00:00:00Z",
            "nextProbeAt": None,
            "opens": 1,
        },
        "rateLimit": {"blockedUntil": None, "remaining": None, "resetAt": None},
        "credentials": {"valid": True, "invalidSince": None, "secretResourceVersion": None, "message": ""},
    }
    _patch_status(served_crds, namespace, "platformadapter/adapter-under-test", status)
    table = served_crds.kubectl("get", "padapter", "-n", namespace).stdout.splitlines()
    header = ["NAME", "PLATFORM", "READY", "REASON", "PAUSED", "CIRCUIT", "PENDING", "RUNNING", "AGE"]
    assert table[0].split() == header
    # READY and REASON come from the Ready condition in this status.
    assert table[1].split()[:8] == ["adapter-under-test", "mastodon", "True", "Ready", "true", "HalfOpen", "7", "2"]
    out = _patch_status(
        served_crds, namespace, "platformadapter/adapter-under-test", {"circuit": {"state": "Ajar"}}, check=False
    )
    assert out.returncode != 0 and "status.circuit.state" in out.stderr, out.stderr


def test_short_names_and_category(served_crds, namespace):
    _created(served_crds, namespace, publication())
    _created(served_crds, namespace, adapter())
    names = served_crds.kubectl("get", "herald", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(names) == ["platformadapter.herald.dev/adapter-under-test", "publication.herald.dev/pub-under-test"]
    assert served_crds.kubectl("get", "pub", "-n", namespace, "-o", "name").stdout.split() == [
        "publication.herald.dev/pub-under-test"
    ]
    assert served_crds.kubectl("get", "padapter", "-n", namespace, "-o", "name").stdout.split() == [
        "platformadapter.herald.dev/adapter-under-test"
    ]


# ---------------------------------------------------------------------------- objects from before the upgrade


def _renamed(obj: dict, name: str) -> dict:
    out = copy.deepcopy(obj)
    out["metadata"]["name"] = name
    return out


def test_poison_objects_from_the_old_crds_are_refused_by_the_new_ones(served_crds, namespace):
    """tests/support/legacy_crds.py: the old CRDs take each poison object; after the upgrade the stored objects
    are still there (and can still be patched where they are fine), and the same objects are refused."""
    with legacy_crds(served_crds):
        for case, (obj, _) in POISON.items():
            out = served_crds.kubectl("create", "-n", namespace, "-f", "-", input=_manifest(obj), check=False)
            assert out.returncode == 0, f"{case}: the old CRDs refused it:\n{out.stderr}"

    for case, (obj, field) in POISON.items():
        kind, name = obj["kind"].lower(), obj["metadata"]["name"]
        stored = json.loads(served_crds.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)
        assert _field(stored, field) == _field(obj, field), f"{case}: {field} was not stored as given"
        # Ratcheting: a change that leaves the bad field as it is still goes through (the operator's patches).
        out = served_crds.kubectl("label", kind, name, "-n", namespace, "herald.dev/test-touched=yes", check=False)
        assert out.returncode == 0, f"{case}: a label patch was refused:\n{out.stderr}"
        for mode in APPLY_MODES:
            out = _apply(served_crds, namespace, _renamed(obj, name + "-again"), mode)
            assert out.returncode != 0, f"{case} ({mode}) was accepted again:\n{out.stdout}"
            assert f"{field}:" in out.stderr, f"{case} ({mode}): the error does not name {field}:\n{out.stderr}"


def _field(obj: dict, path: str):
    node = obj
    for part in path.split("."):
        node = node[part]
    return node

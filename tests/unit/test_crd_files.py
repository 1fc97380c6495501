"""The CRD files in crds/, checked without a cluster: shape, structural schemas, printer columns, CEL
rules, defaults that agree with the operator's, and the examples against the schema's keywords."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from herald.circuit import BreakerConfig
from herald.durations import DURATION_PATTERN, parse_duration
from herald.errors import ErrorClass
from herald.retry import DEFAULT_CREDENTIALS_TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
EXAMPLES = sorted((ROOT / "examples").glob("publication*.yaml"))


def _load(name: str) -> dict:
    docs = [d for d in yaml.safe_load_all((CRDS / name).read_text()) if d]
    assert len(docs) == 1, f"{name}: expected one document, got {len(docs)}"
    return docs[0]


ADAPTER = _load("herald.dev_platformadapters.yaml")
PUBLICATION = _load("herald.dev_publications.yaml")
BOTH = pytest.mark.parametrize("crd", [ADAPTER, PUBLICATION], ids=["platformadapters", "publications"])


def _version(crd: dict) -> dict:
    (version,) = crd["spec"]["versions"]
    return version


def _schema(crd: dict) -> dict:
    return _version(crd)["schema"]["openAPIV3Schema"]


def _walk(node: dict, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every schema node with its path (``.spec.targets[].adapter``; ``{}`` for map values)."""
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def _at(crd: dict, path: str) -> dict:
    node = _schema(crd)
    for part in re.findall(r"\.([A-Za-z]+)|(\[\])", path):
        node = node["properties"][part[0]] if part[0] else node["items"]
    return node


# ---------------------------------------------------------------------------- the resources


@pytest.mark.parametrize(
    "crd, plural, singular, kind, short",
    [
        (ADAPTER, "platformadapters", "platformadapter", "PlatformAdapter", ["padapter"]),
        (PUBLICATION, "publications", "publication", "Publication", ["pub"]),
    ],
    ids=["platformadapters", "publications"],
)
def test_names_group_scope_and_version(crd, plural, singular, kind, short):
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{plural}.herald.dev"
    spec = crd["spec"]
    assert spec["group"] == "herald.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["plural"] == plural
    assert spec["names"]["singular"] == singular
    assert spec["names"]["kind"] == kind
    assert spec["names"]["shortNames"] == short
    assert spec["names"]["categories"] == ["herald"]
    version = _version(crd)
    assert version["name"] == "v1alpha1"
    assert version["served"] is True and version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_publication_printer_columns():
    cols = [(c["name"], c["jsonPath"], c["type"]) for c in _version(PUBLICATION)["additionalPrinterColumns"]]
    # Next Attempt is a string column: kubectl shows a date column as an age, "<invalid>" for a future
    # time, and the next attempt is nearly always in the future.
    assert cols == [
        ("Phase", ".status.phase", "string"),
        ("Reason", ".status.reason", "string"),
        ("Published", ".status.publishedTargets", "integer"),
        ("Targets", ".status.totalTargets", "integer"),
        ("Attempts", ".status.attempts", "integer"),
        ("Next Attempt", ".status.nextAttemptAt", "string"),
        ("Age", ".metadata.creationTimestamp", "date"),
        ("Message", ".status.message", "string"),
    ]
    # MESSAGE only with -o wide
    assert [c.get("priority", 0) for c in _version(PUBLICATION)["additionalPrinterColumns"]][-1] == 1


def test_platformadapter_printer_columns():
    cols = [(c["name"], c["jsonPath"], c["type"]) for c in _version(ADAPTER)["additionalPrinterColumns"]]
    ready = '.status.conditions[?(@.type=="Ready")]'
    assert cols == [
        ("Platform", ".spec.platform", "string"),
        ("Ready", f"{ready}.status", "string"),
        ("Reason", f"{ready}.reason", "string"),
        ("Paused", ".spec.paused", "boolean"),
        ("Circuit", ".status.circuit.state", "string"),
        ("Pending", ".status.queue.pending", "integer"),
        ("Running", ".status.queue.running", "integer"),
        ("Age", ".metadata.creationTimestamp", "date"),
        ("Message", f"{ready}.message", "string"),
    ]


@BOTH
def test_printer_columns_point_at_schema_fields(crd):
    for col in _version(crd)["additionalPrinterColumns"]:
        if col["jsonPath"].startswith(".metadata."):
            continue
        node = _at(crd, re.sub(r"\[\?\(@\.type==\"\w+\"\)\]", "[]", col["jsonPath"]))
        expected = {"date": "string", "integer": "integer", "boolean": "boolean", "string": "string"}[col["type"]]
        assert node["type"] == expected, col
        if col["type"] == "date":
            assert node.get("format") == "date-time", col


# ---------------------------------------------------------------------------- structural schemas


@BOTH
def test_schema_is_structural_and_described(crd):
    for path, node in _walk(_schema(crd)):
        # Slack's Block Kit blocks are Slack's schema, checked by the adapter (tests/adapters).
        if path != ".spec.targets[].overrides.options.blocks[]":
            assert "x-kubernetes-preserve-unknown-fields" not in node, f"{path}: write the fields out"
        if node.get("x-kubernetes-int-or-string"):
            assert node.get("anyOf") == [{"type": "integer"}, {"type": "string"}], path
            continue
        assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, f"{path}: no type"
        if node["type"] == "object" and path != ".metadata":
            assert "properties" in node or "additionalProperties" in node, f"{path}: an object without fields"
        if node["type"] == "array":
            assert isinstance(node.get("items"), dict), f"{path}: an array without items"
        is_property = path and not path.endswith(("[]", "{}"))
        if is_property and path != ".metadata":
            assert node.get("description"), f"{path}: no description"


@BOTH
def test_metadata_is_left_to_the_apiserver(crd):
    assert _schema(crd)["properties"]["metadata"] == {"type": "object"}
    assert _schema(crd)["required"] == ["spec"]


@BOTH
def test_list_map_keys_are_required(crd):
    for path, node in _walk(_schema(crd)):
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            assert set(keys) <= set(node["items"].get("required", [])), f"{path}: map keys must be required"


@BOTH
def test_required_fields_exist(crd):
    for path, node in _walk(_schema(crd)):
        for name in node.get("required", []):
            assert name in node.get("properties", {}), f"{path}: required {name} is not a property"


@BOTH
def test_patterns_compile_and_defaults_fit(crd):
    for path, node in _walk(_schema(crd)):
        if "pattern" in node:
            re.compile(node["pattern"])
        if "default" in node:
            assert _errors(node["default"], node, path) == [], path


@BOTH
def test_every_rule_has_a_message_naming_the_field(crd):
    rules = [(path, r) for path, node in _walk(_schema(crd)) for r in node.get("x-kubernetes-validations", [])]
    assert rules
    for path, rule in rules:
        assert rule["rule"].strip()
        assert rule["message"].startswith(path.lstrip(".").split(".")[0] + "."), (path, rule)
        named = path.lstrip(".").replace("[]", "")
        if "fieldPath" in rule:
            named += rule["fieldPath"]
        assert named in rule["message"].replace("[]", ""), (path, rule["message"])
        if "fieldPath" in rule:
            node = _at(crd, path)
            field = rule["fieldPath"].lstrip(".")
            assert field in node["properties"], (path, rule["fieldPath"])


@BOTH
def test_strings_checked_by_cel_are_bounded(crd):
    """CEL cost estimates need bounded strings and collections under a rule (map values aside: the
    rules on maps only look at the keys)."""
    for path, node in _walk(_schema(crd)):
        if not node.get("x-kubernetes-validations"):
            continue
        for sub_path, sub in _walk(node, path):
            if sub.get("type") == "string" and "enum" not in sub and not sub_path.endswith("{}"):
                assert "maxLength" in sub, sub_path
            if sub.get("type") == "array":
                assert "maxItems" in sub, sub_path
            if sub.get("type") == "object" and "additionalProperties" in sub:
                assert "maxProperties" in sub, sub_path


# ---------------------------------------------------------------------------- the fields


def test_publication_spec_fields():
    spec = _at(PUBLICATION, ".spec")
    assert spec["required"] == ["content", "targets"]
    assert set(spec["properties"]) == {
        "content",
        "targets",
        "publishAt",
        "priority",
        "retryPolicy",
        "suspend",
        "truncate",
        "ttlSecondsAfterFinished",
    }
    content = spec["properties"]["content"]
    assert content["required"] == ["text"]
    assert set(content["properties"]) == {"text", "title", "link", "media", "tags"}
    text = content["properties"]["text"]
    assert (text["minLength"], text["maxLength"]) == (1, 65536)
    assert content["properties"]["media"]["maxItems"] == 16
    assert content["properties"]["media"]["items"]["properties"]["altText"]["maxLength"] == 1500
    assert content["properties"]["tags"]["maxItems"] == 30
    assert content["properties"]["tags"]["items"]["pattern"] == r"^[^\s#]+$"
    targets = spec["properties"]["targets"]
    assert (targets["minItems"], targets["maxItems"]) == (1, 20)
    assert targets["x-kubernetes-list-type"] == "map"
    assert targets["x-kubernetes-list-map-keys"] == ["adapter"]
    assert set(targets["items"]["properties"]["overrides"]["properties"]) == {
        "text",
        "title",
        "link",
        "tags",
        "options",
    }
    publish_at = spec["properties"]["publishAt"]
    # No format: CEL would see a date-time as a timestamp, parsed (or failed) before any rule could look at the
    # string; the rule checks the string itself, then timestamp(), and the UTC range.
    assert "format" not in publish_at and publish_at["maxLength"] == 64
    (rule,) = publish_at["x-kubernetes-validations"]
    assert "timestamp(self)" in rule["rule"] and rule["message"].startswith("spec.publishAt must be an RFC 3339")
    prio = spec["properties"]["priority"]
    assert (prio["default"], prio["minimum"], prio["maximum"], prio["format"]) == (0, -1000, 1000, "int32")
    assert spec["properties"]["suspend"]["default"] is False
    assert spec["properties"]["truncate"]["default"] is False


def test_publication_status_fields():
    status = _at(PUBLICATION, ".status")
    assert set(status["properties"]) == {
        "phase",
        "reason",
        "message",
        "observedGeneration",
        "observedRedrive",
        "observedRetryNow",
        "conditions",
        "publishedTargets",
        "totalTargets",
        "attempts",
        "nextAttemptAt",
        "completionTime",
        "targets",
    }
    assert status["properties"]["phase"]["enum"] == [
        "Pending",
        "Scheduled",
        "Queued",
        "Publishing",
        "Retrying",
        "Published",
        "PartiallyPublished",
        "Failed",
        "Suspended",
        "Cancelled",
    ]
    target = status["properties"]["targets"]["items"]
    assert status["properties"]["targets"]["x-kubernetes-list-map-keys"] == ["adapter"]
    assert set(target["properties"]) == {
        "adapter",
        "phase",
        "reason",
        "message",
        "attempts",
        "retries",
        "jobName",
        "lastErrorClass",
        "lastError",
        "lastBackoffSeconds",
        "nextAttemptAt",
        "postId",
        "url",
        "publishedTime",
        "observedAttempt",
        "verifyNext",
        "budgetStart",
        "failures",
        "deadLetter",
        "waitingSince",
    }
    assert "PartiallyPublished" not in target["properties"]["phase"]["enum"]
    # A CEL rule instead of an enum: the API server refuses null for an enum, even with nullable.
    error_class = target["properties"]["lastErrorClass"]
    assert error_class["nullable"] is True and "enum" not in error_class
    (rule,) = error_class["x-kubernetes-validations"]
    assert set(re.findall(r"'([a-z_]+)'", rule["rule"])) == {e.value for e in ErrorClass}
    assert target["properties"]["failures"]["additionalProperties"]["type"] == "integer"
    for name in (
        "jobName",
        "lastError",
        "lastBackoffSeconds",
        "nextAttemptAt",
        "postId",
        "url",
        "publishedTime",
        "waitingSince",
    ):
        assert target["properties"][name].get("nullable") is True, name


def test_platformadapter_spec_fields():
    spec = _at(ADAPTER, ".spec")
    assert spec["required"] == ["platform"]
    assert set(spec["properties"]) == {
        "platform",
        "image",
        "command",
        "args",
        "endpoint",
        "credentialsSecretRef",
        "concurrency",
        "rateLimit",
        "retryPolicy",
        "circuitBreaker",
        "jobTemplate",
        "paused",
    }
    platform = spec["properties"]["platform"]
    assert (platform["pattern"], platform["maxLength"]) == ("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", 63)
    conc = spec["properties"]["concurrency"]
    assert (conc["default"], conc["minimum"], conc["maximum"]) == (1, 1, 1000)
    assert spec["properties"]["rateLimit"]["required"] == ["limit", "period"]
    assert spec["properties"]["paused"]["default"] is False
    tpl = spec["properties"]["jobTemplate"]["properties"]
    assert set(tpl) == {
        "podAnnotations",
        "podLabels",
        "resources",
        "serviceAccountName",
        "nodeSelector",
        "imagePullSecrets",
        "priorityClassName",
        "affinity",
        "runAsUser",
        "serviceAccountToken",
        "tolerations",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    }
    tol = tpl["tolerations"]["items"]["properties"]
    assert tol["operator"]["enum"] == ["Exists", "Equal"]
    assert tol["effect"]["enum"] == ["NoSchedule", "PreferNoSchedule", "NoExecute"]
    assert tol["tolerationSeconds"]["format"] == "int64"
    for name in ("podLabels", "podAnnotations"):
        rules = tpl[name]["x-kubernetes-validations"]
        assert all(r["message"].startswith(f"spec.jobTemplate.{name}") for r in rules)
        reserved = " ".join(r["rule"] for r in rules if "startsWith" in r["rule"])
        for key in ("'herald.dev/'", "'batch.kubernetes.io/'", "'controller-uid'", "'job-name'"):
            assert key in reserved, (name, key)
        assert any("k.matches(" in r["rule"] for r in rules), f"{name}: keys are not checked as qualified names"
    for name in ("podLabels", "nodeSelector"):
        values = tpl[name]["additionalProperties"]
        assert (values["maxLength"], values["pattern"]) == (63, r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
    resources = " ".join(r["rule"] for r in tpl["resources"]["x-kubernetes-validations"])
    assert "quantity(string(self.limits['cpu'])).compareTo" in resources
    assert "quantity(string(self.limits['memory'])).compareTo" in resources


def test_platformadapter_status_fields():
    status = _at(ADAPTER, ".status")["properties"]
    assert set(status) == {
        "observedGeneration",
        "conditions",
        "queue",
        "lastPublishedTime",
        "circuit",
        "rateLimit",
        "credentials",
    }
    assert status["circuit"]["properties"]["state"]["enum"] == ["Closed", "Open", "HalfOpen"]
    for path in (
        "circuit.openedAt",
        "circuit.nextProbeAt",
        "rateLimit.blockedUntil",
        "rateLimit.remaining",
        "rateLimit.resetAt",
        "credentials.invalidSince",
        "credentials.secretResourceVersion",
    ):
        obj, field = path.split(".")
        assert status[obj]["properties"][field].get("nullable") is True, path


@BOTH
def test_conditions_have_the_standard_shape(crd):
    cond = _at(crd, ".status.conditions")
    assert cond["x-kubernetes-list-type"] == "map" and cond["x-kubernetes-list-map-keys"] == ["type"]
    props = cond["items"]["properties"]
    assert set(props) == {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}
    assert props["status"]["enum"] == ["True", "False", "Unknown"]
    assert props["lastTransitionTime"]["format"] == "date-time"


def _without(node: Any, keys: set[str]) -> Any:
    if isinstance(node, dict):
        return {k: _without(v, keys) for k, v in node.items() if k not in keys}
    if isinstance(node, list):
        return [_without(v, keys) for v in node]
    return node


def test_retry_policy_is_the_same_shape_in_both():
    a = _at(ADAPTER, ".spec.retryPolicy")
    p = _at(PUBLICATION, ".spec.retryPolicy")
    assert _without(a, {"description", "default"}) == _without(p, {"description", "default"})
    assert set(a["properties"]) == {
        "maxAttempts",
        "backoff",
        "rateLimited",
        "network",
        "serverError",
        "podFailure",
        "unknownOutcome",
        "credentialsTimeout",
    }
    assert set(a["properties"]["rateLimited"]["properties"]) == {"maxAttempts", "backoff", "minDelay"}
    assert set(a["properties"]["unknownOutcome"]["properties"]) == {"maxAttempts", "backoff", "policy"}
    # The publication's retryPolicy is merged over the adapter's: a default there would silently
    # replace the adapter's value, so only the adapter's copy has defaults.
    assert not [path for path, node in _walk(p) if "default" in node]


def test_defaults_agree_with_the_operator():
    breaker = _at(ADAPTER, ".spec.circuitBreaker")["properties"]
    config = BreakerConfig()
    assert breaker["failureThreshold"]["default"] == config.failure_threshold
    assert parse_duration(breaker["cooldown"]["default"]) == config.cooldown
    assert parse_duration(breaker["maxCooldown"]["default"]) == config.max_cooldown
    policy = _at(ADAPTER, ".spec.retryPolicy")["properties"]
    assert parse_duration(policy["credentialsTimeout"]["default"]) == DEFAULT_CREDENTIALS_TIMEOUT
    assert policy["unknownOutcome"]["properties"]["policy"]["default"] == "Verify"


@BOTH
def test_durations_use_the_operators_pattern(crd):
    durations = [path for path, node in _walk(_schema(crd)) if node.get("pattern") == DURATION_PATTERN]
    assert len(durations) >= 10
    for path, node in _walk(_schema(crd)):
        if (
            re.search(r"(initial|max|minDelay|cooldown|maxCooldown|period|credentialsTimeout)$", path)
            and node.get("type") == "string"
        ):
            assert node["pattern"] == DURATION_PATTERN, path


# ---------------------------------------------------------------------------- the examples
# A small validator for the keywords the schemas use, so a broken example is caught without a
# cluster (the integration tests also dry-run them against a real API server, CEL included).

FORMATS = {"date-time": lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")) is not None}


def _errors(value: Any, node: dict, path: str) -> list[str]:
    if path == ".metadata":
        return [] if isinstance(value, dict) else [f"{path}: not an object"]
    if value is None:
        return [] if node.get("nullable") else [f"{path}: null"]
    if node.get("x-kubernetes-int-or-string"):
        return [] if isinstance(value, (int, str)) and not isinstance(value, bool) else [f"{path}: int or string"]
    typ = node["type"]
    ok = {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }[typ]
    if not ok:
        return [f"{path}: not {typ}: {value!r}"]
    out: list[str] = []
    if "enum" in node and value not in node["enum"]:
        out.append(f"{path}: {value!r} not in {node['enum']}")
    if typ == "string":
        if len(value) < node.get("minLength", 0) or len(value) > node.get("maxLength", 1 << 30):
            out.append(f"{path}: length {len(value)}")
        if "pattern" in node and not re.search(node["pattern"], value):
            out.append(f"{path}: {value!r} does not match {node['pattern']}")
        if node.get("format") in FORMATS:
            try:
                FORMATS[node["format"]](value)
            except ValueError:
                out.append(f"{path}: not {node['format']}")
    if typ in ("integer", "number") and (
        value < node.get("minimum", float("-inf")) or value > node.get("maximum", float("inf"))
    ):
        out.append(f"{path}: {value} out of range")
    if typ == "array":
        if len(value) < node.get("minItems", 0) or len(value) > node.get("maxItems", 1 << 30):
            out.append(f"{path}: {len(value)} items")
        for i, item in enumerate(value):
            out += _errors(item, node["items"], f"{path}[{i}]")
    if typ == "object":
        props = node.get("properties", {})
        for name in node.get("required", []):
            if name not in value:
                out.append(f"{path}.{name}: required")
        for name, v in value.items():
            if name in props:
                out += _errors(v, props[name], f"{path}.{name}")
            elif isinstance(node.get("additionalProperties"), dict):
                out += _errors(v, node["additionalProperties"], f"{path}.{name}")
            else:
                out.append(f"{path}.{name}: unknown field")
    return out


def test_there_are_examples():
    names = {p.name for p in EXAMPLES}
    assert {"publication.yaml", "publication-multi.yaml"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_fit_the_schema(example):
    docs = [d for d in yaml.safe_load_all(example.read_text()) if d]
    assert docs
    for doc in docs:
        assert doc["apiVersion"] == "herald.dev/v1alpha1"
        assert doc["kind"] == "Publication"
        assert "namespace" not in doc["metadata"], "examples are applied with -n"
        assert _errors(doc, _schema(PUBLICATION), "") == []
        adapters = [t["adapter"] for t in doc["spec"]["targets"]]
        assert len(adapters) == len(set(adapters))


def test_the_multi_target_example_shows_the_options():
    (doc,) = yaml.safe_load_all((ROOT / "examples" / "publication-multi.yaml").read_text())
    spec = doc["spec"]
    assert len(spec["targets"]) > 1
    assert any("overrides" in t for t in spec["targets"])
    assert {"publishAt", "priority", "retryPolicy"} <= set(spec)


def test_the_validator_notices_mistakes():
    """The example check above would be worthless if the validator let anything through."""
    (doc,) = yaml.safe_load_all((ROOT / "examples" / "publication.yaml").read_text())
    schema = _schema(PUBLICATION)
    broken = copy.deepcopy(doc)
    broken["spec"]["content"].pop("text")
    broken["spec"]["targets"] = []
    broken["spec"]["content"]["tags"] = ["two words"]
    broken["spec"]["publishAt"] = "tomorrow at nine, or the day after, whichever comes first; or never" * 2
    broken["spec"]["priority"] = 5000
    broken["spec"]["colour"] = "red"
    errors = "\n".join(_errors(broken, schema, ""))
    for field in (
        ".spec.content.text",
        ".spec.targets",
        ".spec.content.tags[0]",
        ".spec.publishAt",
        ".spec.priority",
        ".spec.colour",
    ):
        assert field in errors


@BOTH
def test_every_field_is_in_the_api_reference(crd):
    doc = (ROOT / "docs" / "api.md").read_text()
    for path, _ in _walk(_schema(crd)):
        if path.startswith(".spec.jobTemplate.affinity."):
            continue  # a core/v1 Affinity, documented by Kubernetes (api.md links it)
        name = re.sub(r"(\[\]|\{\})+$", "", path).rsplit(".", 1)[-1]
        if name and name not in ("apiVersion", "kind", "metadata"):
            assert f"`{name}`" in doc, f"{path} is not documented in docs/api.md"


# ---------------------------------------------------------------------------- what the operator can use
# Admission refuses what the operator cannot use (tests/integration/test_crd_validation.py checks the rules on a
# real API server); here, the arguments the rules rest on.

MAX_DURATION = "720h"
_UNIT_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def _duration_rules(crd: dict) -> dict[str, dict]:
    return {
        path: rule
        for path, node in _walk(_schema(crd))
        if node.get("pattern") == DURATION_PATTERN
        for rule in node.get("x-kubernetes-validations", [])
        if MAX_DURATION in rule["rule"]
    }


def _safe_form(crd: dict) -> str:
    """The duration form the rules call duration() on (the one regex in every duration rule but the pattern)."""
    forms = {m for rule in _duration_rules(crd).values() for m in re.findall(r"matches\('([^']*)'\)", rule["rule"])}
    forms.discard("^([0-9]+([.][0-9]+)?(ms|s|m|h))+$")
    (form,) = forms
    return form


@BOTH
def test_every_duration_field_is_at_most_720h(crd):
    fields = [path for path, node in _walk(_schema(crd)) if node.get("pattern") == DURATION_PATTERN]
    rules = _duration_rules(crd)
    assert sorted(rules) == sorted(fields)
    for path, rule in rules.items():
        named = path.lstrip(".")
        assert f"duration(self) <= duration('{MAX_DURATION}')" in rule["rule"], path
        assert rule["message"] == f"{named} must be at most 720h (30 days)", path
        assert rule["messageExpression"] == f"'{named} (' + self + ') must be at most 720h (30 days)'", path
        assert _at(crd, path)["maxLength"] == 32, path
    assert len(rules) == {"platformadapters.herald.dev": 17, "publications.herald.dev": 14}[crd["metadata"]["name"]]


@BOTH
def test_rules_comparing_durations_only_parse_the_safe_form(crd):
    """duration() fails on values too large for Go's time.Duration; every call must sit behind the safe form."""
    safe = _safe_form(crd)
    for path, node in _walk(_schema(crd)):
        for rule in node.get("x-kubernetes-validations", []):
            for field in re.findall(r"duration\(self\.(\w+)\)", rule["rule"]):
                assert f"!self.{field}.matches('{safe}') ||" in rule["rule"], (path, field)
            if "duration(self)" in rule["rule"]:
                assert f"self.matches('{safe}') && duration(self)" in rule["rule"], path


def _ns(text: str) -> Fraction:
    return sum(
        (Fraction(m.group(1)) * _UNIT_NS[m.group(3)] for m in re.finditer(r"([0-9]+([.][0-9]+)?)(ms|s|m|h)", text)),
        Fraction(0),
    )


_part = st.tuples(
    st.integers(0, 3),
    st.text("0123456789", min_size=1, max_size=14),
    st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=4).map(lambda f: "." + f)),
    st.sampled_from(["ms", "s", "m", "h"]),
)


SAFE_FORM = re.compile(_safe_form(ADAPTER))


def test_both_crds_use_one_safe_form():
    assert _safe_form(PUBLICATION) == SAFE_FORM.pattern


@settings(max_examples=500)
@given(st.lists(_part, min_size=1, max_size=6))
def test_the_safe_duration_form_cannot_overflow_and_everything_else_is_above_720h(parts):
    text = "".join("0" * zeros + digits + fraction + unit for zeros, digits, fraction, unit in parts)
    assume(len(text) <= 32)
    assert re.fullmatch(DURATION_PATTERN[1:-1], text)
    if SAFE_FORM.search(text):
        # Go's time.ParseDuration fails above 2^63-1 ns (about 2562047h); keep a margin for its rounding.
        assert _ns(text) < 2**63 - 10**12, text
    else:
        assert _ns(text) > 720 * _UNIT_NS["h"], text


def test_the_safe_duration_form_takes_the_edges():
    safe = SAFE_FORM.pattern
    for ok in ("720h", "99999h", "999999m", "99999999s", "99999999999ms", "000000000000001h", "1.5h", "719h59m59.999s"):
        assert re.search(safe, ok), ok
    for big in ("100000h", "1000000m", "100000000s", "100000000000ms", "99999999h"):
        assert not re.search(safe, big), big
        assert _ns(big) > 720 * _UNIT_NS["h"]


def _payload_budget() -> int:
    [rule] = [r for r in _at(PUBLICATION, ".spec")["x-kubernetes-validations"] if r.get("fieldPath") == ".targets"]
    return int(re.search(r"<= (\d+)\)$", rule["rule"].strip()).group(1))


def _annotations_budget() -> int:
    [rule] = [
        r for r in _at(ADAPTER, ".spec.jobTemplate.podAnnotations")["x-kubernetes-validations"] if ".sum()" in r["rule"]
    ]
    return int(re.search(r"<= (\d+)$", rule["rule"].strip()).group(1))


def _payload_bytes(spec: dict, target: str) -> int:
    """What the payload rule counts for one target (the same sums, in Python)."""
    from herald.jobs import target_content

    content = target_content(spec, target)
    size = 0
    for key in ("text", "title", "link"):
        size += len(content.get(key, "").encode())
    size += sum(len(t.encode()) for t in content.get("tags", []))
    size += sum(len(m["url"].encode()) + len(m.get("altText", "").encode()) for m in spec["content"].get("media", []))
    return size


def test_the_largest_job_the_crds_allow_has_annotations_under_256_kib():
    """A Publication and a PlatformAdapter at every limit the CRDs set make a Job whose pod annotations (the
    payload, Herald's own and jobTemplate.podAnnotations) stay under the API server's 256 KiB."""
    from herald.jobs import JobDefaults, build_job_spec

    budget, user_budget = _payload_budget(), _annotations_budget()
    assert (budget, user_budget) == (65536, 32768)
    content_schema = _at(PUBLICATION, ".spec.content")["properties"]
    tag = content_schema["tags"]["items"]
    # The worst case per budget byte: control characters in tags (6 bytes of JSON each, the tags pattern lets them
    # through), astral characters elsewhere (a 12-byte surrogate pair escape for 4 bytes of UTF-8).
    tags = ["\x01" * tag["maxLength"]] * content_schema["tags"]["maxItems"]
    media = [{"url": "http://a", "altText": "a"}] * content_schema["media"]["maxItems"]
    content = {"title": "t", "link": "http://a", "media": media, "tags": tags, "text": ""}
    spec = {"content": content, "targets": [{"adapter": "a" * 63}], "truncate": True}
    left = budget - _payload_bytes(spec, "a" * 63)
    content["text"] = "\U0001f600" * (left // 4) + "a" * (left % 4)
    assert _payload_bytes(spec, "a" * 63) == budget
    key = "example.com/" + "k" * 63
    adapter_spec = {
        "platform": "mastodon",
        "jobTemplate": {
            "podAnnotations": {key: "\u00e9" * ((user_budget - len(key)) // 2) + "x" * ((user_budget - len(key)) % 2)}
        },
    }
    assert (
        sum(len(k.encode()) + len(v.encode()) for k, v in adapter_spec["jobTemplate"]["podAnnotations"].items())
        == user_budget
    )
    pub = {"apiVersion": "herald.dev/v1alpha1", "kind": "Publication", "metadata": {"name": "p" * 253}, "spec": spec}
    assert _errors(pub, _schema(PUBLICATION), "") == []

    meta = {"namespace": "n" * 63, "name": "p" * 253, "uid": "0" * 36}
    job = build_job_spec(meta, spec, "a" * 63, adapter_spec, attempt=99999, verify=True, defaults=JobDefaults())
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    total = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
    assert total <= 256 * 1024, f"{total} bytes of pod annotations"
    assert total > 200 * 1024, "the worst case above is not near the limit any more: tighten it"


def test_legacy_crds_are_the_crds_without_the_new_rules():
    """tests/support/legacy_crds.py: the CRDs as they were before admission refused what the operator cannot use."""
    from tests.support.legacy_crds import ADDED_RULES, legacy_manifests

    legacy = legacy_manifests()
    strict = {ADAPTER["metadata"]["name"]: ADAPTER, PUBLICATION["metadata"]["name"]: PUBLICATION}
    assert set(legacy) == set(strict)
    for name, crd in legacy.items():
        rules = [r for _, node in _walk(_schema(crd)) for r in node.get("x-kubernetes-validations", [])]
        assert not [r for r in rules if any(re.search(p, r["message"]) for p in ADDED_RULES)]
        # The rules comparing durations stay, with their guard (laxer than before: see legacy_crds.py).
        assert (
            len([r for r in rules if "duration(" in r["rule"]])
            == {"platformadapters.herald.dev": 8, "publications.herald.dev": 6}[name]
        )
        assert len(rules) < len(
            [r for _, n in _walk(_schema(strict[name])) for r in n.get("x-kubernetes-validations", [])]
        )
    publish_at = _at(legacy["publications.herald.dev"], ".spec.publishAt")
    assert publish_at == {"type": "string", "description": publish_at["description"], "format": "date-time"}
    labels = _at(legacy["platformadapters.herald.dev"], ".spec.jobTemplate.podLabels")
    assert labels["additionalProperties"] == {"type": "string"}
    assert [r["rule"] for r in labels["x-kubernetes-validations"]] == ["self.all(k, !k.startsWith('herald.dev/'))"]


def test_the_api_reference_names_the_maximums():
    doc = (ROOT / "docs" / "api.md").read_text()
    for text in (
        "`720h`",
        "65536 bytes",
        "32768 bytes",
        "256 KiB",
        "herald.dev/redrive",
        "1024 characters",
        "crds/policies/herald-redrive-policy.yaml",
        "admissionPolicy.enabled",
    ):
        assert text in doc, text

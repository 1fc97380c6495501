"""examples/adapters/*.yaml: each a Secret plus a PlatformAdapter that fits the CRD
and holds the Secret keys its platform's adapter reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from herald_adapters.cli import PLATFORMS
from tests.unit.test_crd_files import ADAPTER, _errors, _schema

EXAMPLES = sorted(
    p
    for p in (Path(__file__).resolve().parents[2] / "examples" / "adapters").glob("*.yaml")
    if not p.name.endswith("-rbac.yaml")  # RBAC for an adapter's pods (tested with that adapter)
)

# The keys docs/adapters.md says each platform needs.
REQUIRED_KEYS = {
    "webhook": [{"hmacSecret"}],
    "slack": [{"botToken", "channel"}, {"webhookUrl"}],
    "discord": [{"webhookUrl"}],
    "telegram": [{"botToken", "chatId"}],
    "mastodon": [{"accessToken"}],
    "bluesky": [{"identifier", "appPassword"}, {"identifier", "appPassword", "tokenStoreSecret"}],
    "x": [
        {"clientId", "refreshToken", "tokenStoreSecret"},
        {"clientId", "clientSecret", "refreshToken", "tokenStoreSecret"},
    ],
    "linkedin": [{"accessToken", "author"}, {"accessToken", "author", "linkedinVersion"}],
}


def test_every_built_in_platform_has_an_example():
    platforms = set()
    for example in EXAMPLES:
        for doc in yaml.safe_load_all(example.read_text()):
            if doc and doc["kind"] == "PlatformAdapter":
                platforms.add(doc["spec"]["platform"])
    assert platforms == set(PLATFORMS)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_is_a_secret_and_a_platform_adapter_that_fit_together(example):
    secret, adapter = [d for d in yaml.safe_load_all(example.read_text()) if d]
    assert (secret["apiVersion"], secret["kind"]) == ("v1", "Secret")
    assert (adapter["apiVersion"], adapter["kind"]) == ("herald.dev/v1alpha1", "PlatformAdapter")
    assert "namespace" not in secret["metadata"] and "namespace" not in adapter["metadata"], (
        "examples are applied with -n"
    )
    assert _errors(adapter, _schema(ADAPTER), "") == []
    spec = adapter["spec"]
    assert spec["credentialsSecretRef"]["name"] == secret["metadata"]["name"]
    assert {"platform", "credentialsSecretRef", "concurrency", "rateLimit", "paused"} <= set(spec)
    keys = set(secret["stringData"])
    assert any(required == keys for required in REQUIRED_KEYS[spec["platform"]]), keys
    if spec["platform"] == "webhook":
        assert spec["endpoint"].startswith("https://")


RBAC_EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "adapters").glob("*-rbac.yaml"))


@pytest.mark.parametrize("rbac", RBAC_EXAMPLES, ids=lambda p: p.name)
def test_an_adapters_write_back_rbac_names_only_its_own_secret_and_the_adapter_uses_it(rbac):
    """The ServiceAccount an adapter's pods write their session or tokens back with: a Role on
    that adapter's Secret alone, and the PlatformAdapter that mounts its projected token."""
    account, role, binding = [d for d in yaml.safe_load_all(rbac.read_text()) if d]
    users = [
        docs
        for example in EXAMPLES
        if (docs := [d for d in yaml.safe_load_all(example.read_text()) if d])[1]["spec"]
        .get("jobTemplate", {})
        .get("serviceAccountName")
        == account["metadata"]["name"]
    ]
    assert len(users) == 1, f"no example adapter uses {account['metadata']['name']}"
    [(secret, adapter)] = users
    name = secret["metadata"]["name"]
    assert secret["stringData"]["tokenStoreSecret"] == name
    assert adapter["spec"]["jobTemplate"]["serviceAccountToken"] is True
    assert account["automountServiceAccountToken"] is False
    [rule] = role["rules"]
    assert rule == {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [name], "verbs": ["get", "patch"]}
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"]}]

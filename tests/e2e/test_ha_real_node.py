"""High availability on the real node: the chart with `replicaCount: 2` runs one active operator
and one standby, as real pods. SIGKILL the active one and the other takes over within 15 s; run a
`helm upgrade` while publications keep arriving and publishing never stops. In both, every
publication is posted exactly once (the fake Mastodon counts the posts) and no attempt is lost.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client

from tests.e2e.helm_release import Release, fake_mastodon, installed_release, make_adapter, wait_published
from tests.helm.chart import CHART, helm, set_args
from tests.platforms import MastodonFake
from tests.support.herald import target
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]

TAKEOVER_BOUND = 15.0  # the bound; the Lease lasts 10 s


@pytest.fixture(scope="module")
def ha(cluster, api, real_node, crds) -> Iterator[Release]:
    with installed_release(cluster, api, real_node, {"replicaCount": 2}) as rel:
        yield rel


@pytest.fixture
def mastodon() -> Iterator[MastodonFake]:
    with fake_mastodon() as fake:
        yield fake


def lease_holder(release: Release) -> str:
    lease = client.CoordinationV1Api(release.herald.api).read_namespaced_lease(release.name, release.namespace)
    return lease.spec.holder_identity or ""


def operator_pid(pod_name: str) -> int:
    """The operator process of a pod on the real node (this host): the one whose POD_NAME is it."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if f"POD_NAME={pod_name}".encode() in environ and b"herald" in cmdline:
            found.append(int(proc.name))
    assert len(found) == 1, f"operator processes of {pod_name}: {found}"
    return found[0]


def publish_all(release: Release, adapter: str, names: list[str]) -> dict[str, str]:
    texts = {name: f"{name} ({secrets.token_hex(4)})" for name in names}
    for name in names:
        release.herald.publication(name, [adapter], text=texts[name])
    return texts


def assert_each_posted_once(release: Release, mastodon: MastodonFake, texts: dict[str, str], adapter: str) -> None:
    posted = [p["text"] for p in mastodon.posts]
    assert sorted(posted) == sorted(texts.values()), "a publication was posted twice or not at all"
    for name in texts:
        pub = wait_published(release, name)
        assert pub["status"]["phase"] == "Published", release.diagnostics(name)
        attempts = target(pub, adapter)["attempts"]
        jobs = release.herald.jobs(name)
        # one Job per attempt, none created twice (names are per attempt), none lost
        assert len(jobs) == attempts, [j.metadata.name for j in jobs]


def test_the_standby_takes_over_within_15s_of_a_sigkill(ha, mastodon):
    holder = lease_holder(ha)
    pods = {p.metadata.name for p in ha.operator_pods()}
    assert len(pods) == 2 and any(holder.startswith(f"{p}_") for p in pods), (holder, pods)
    active = next(p for p in pods if holder.startswith(f"{p}_"))
    adapter = make_adapter(ha, mastodon, "ha", concurrency=4)
    texts = publish_all(ha, adapter, [f"before-{i}" for i in range(3)])
    for name in texts:
        wait_published(ha, name)

    os.kill(operator_pid(active), signal.SIGKILL)
    killed = time.monotonic()
    # Publications keep arriving right after the kill: none may be lost or posted twice.
    texts |= publish_all(ha, adapter, [f"after-{i}" for i in range(3)])
    wait_until(
        lambda: lease_holder(ha) not in ("", holder),
        timeout=TAKEOVER_BOUND + 10,
        interval=0.2,
        what="a new Lease holder",
    )
    took_over = time.monotonic() - killed
    print(f"takeover after SIGKILL: {took_over:.1f}s")  # the figure for docs/scaling.md (pytest -s)
    assert took_over <= TAKEOVER_BOUND, f"took over after {took_over:.1f}s"
    for name in texts:
        pub = wait_published(ha, name)
        assert pub["status"]["phase"] == "Published", ha.diagnostics(name)
    assert_each_posted_once(ha, mastodon, texts, adapter)


def test_a_helm_upgrade_rolls_without_stopping_publishing(ha, mastodon, cluster):
    adapter = make_adapter(ha, mastodon, "rolling", concurrency=4)
    texts: dict[str, str] = {}
    created: dict[str, datetime] = {}
    stop = threading.Event()
    errors: list[BaseException] = []

    def keep_publishing() -> None:
        i = 0
        while not stop.is_set():
            name = f"during-{i:03d}"
            try:
                texts.update(publish_all(ha, adapter, [name]))
                created[name] = datetime.now(UTC)
            except BaseException as e:  # reported by the test, not lost in the thread
                errors.append(e)
                return
            i += 1
            stop.wait(2.0)

    before = {p.metadata.name for p in ha.operator_pods()}
    feeder = threading.Thread(target=keep_publishing, daemon=True)
    feeder.start()
    try:
        out = helm(
            "upgrade",
            ha.name,
            str(CHART),
            "--namespace",
            ha.namespace,
            "--reuse-values",
            *set_args({"podAnnotations": {"herald.dev/rollout": secrets.token_hex(4)}}),
            "--wait",
            "--timeout",
            "300s",
            kubeconfig=cluster.kubeconfig,
            timeout=330,
        ).stdout
        assert "has been upgraded" in out, out
        after = {p.metadata.name for p in ha.operator_pods() if p.metadata.deletion_timestamp is None}
        assert after and not after & before, (before, after)  # every pod was replaced
    finally:
        stop.set()
        feeder.join(timeout=30)
    assert not errors, errors
    assert len(texts) >= 5, texts
    # every publication made during the rollout published, each within a bound that no stop
    # of publishing would meet (a Recreate rollout waits for the new pod to start and elect)
    for name, at in created.items():
        pub = wait_published(ha, name)
        assert pub["status"]["phase"] == "Published", ha.diagnostics(name)
        published = datetime.fromisoformat(target(pub, adapter)["publishedTime"].replace("Z", "+00:00"))
        assert (published - at).total_seconds() < 30, (name, at, published)
    assert_each_posted_once(ha, mastodon, texts, adapter)

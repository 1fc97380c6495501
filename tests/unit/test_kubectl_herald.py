"""`kubectl herald` without a cluster: argument parsing, output formatting, the commands against an
in-memory API, the text preview (through the adapters' own code), and the krew manifest."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from herald.naming import job_name
from herald_adapters._text import count_graphemes, count_mastodon
from kubectl_herald import __version__, cli, commands, render
from kubectl_herald import preview as previews
from kubectl_herald.kube import CliError, LogsUnavailable, NotFound

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2030, 6, 1, 9, 0, 0, tzinfo=UTC)
NS = "news"


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- an in-memory API -----------------------------------------------------------------------------


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in selector.split(","):
        key, eq, value = term.partition("=")
        if eq and labels.get(key) != value:
            return False
        if not eq and key not in labels:
            return False
    return True


class FakeApi:
    def __init__(
        self,
        pubs: Sequence[dict] = (),
        adapters: Sequence[dict] = (),
        jobs: Sequence[dict] = (),
        pods: Sequence[dict] = (),
        nodes: Sequence[dict] = (),
        logs: dict[str, str] | None = None,
    ):
        self.pubs = {(p["metadata"]["namespace"], p["metadata"]["name"]): copy.deepcopy(p) for p in pubs}
        self.adapters = {(a["metadata"]["namespace"], a["metadata"]["name"]): a for a in adapters}
        self.jobs, self.pods = list(jobs), list(pods)
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.logs = logs or {}
        self.patches: list[tuple[str, str, dict]] = []
        self.job_selectors: list[str] = []

    def get_publication(self, namespace: str, name: str) -> dict:
        try:
            return copy.deepcopy(self.pubs[(namespace, name)])
        except KeyError:
            raise NotFound(f'publications.herald.dev "{name}" in namespace "{namespace}" not found') from None

    def list_publications(self, namespace: str | None, selector: str | None = None) -> list[dict]:
        return [
            copy.deepcopy(p)
            for (ns, _), p in sorted(self.pubs.items())
            if (namespace is None or ns == namespace)
            and (not selector or _matches(p["metadata"].get("labels") or {}, selector))
        ]

    def patch_publication(self, namespace: str, name: str, patch: dict) -> dict:
        self.patches.append((namespace, name, patch))
        pub = self.pubs[(namespace, name)]
        for section in ("metadata", "spec"):
            for key, value in (patch.get(section) or {}).items():
                if isinstance(value, dict):
                    pub.setdefault(section, {}).setdefault(key, {}).update(value)
                else:
                    pub.setdefault(section, {})[key] = value
        return copy.deepcopy(pub)

    def get_adapter(self, namespace: str, name: str) -> dict | None:
        return self.adapters.get((namespace, name))

    def list_jobs(self, namespace: str, selector: str) -> list[dict]:
        self.job_selectors.append(selector)
        return [j for j in self.jobs if _matches(j["metadata"]["labels"], selector)]

    def list_pods(self, namespace: str, selector: str) -> list[dict]:
        return [p for p in self.pods if _matches(p["metadata"]["labels"], selector)]

    def get_node(self, name: str) -> dict | None:
        return self.nodes.get(name)

    def pod_log(self, namespace: str, pod: str, container: str) -> str:
        assert container == "adapter"
        if pod not in self.logs:
            raise LogsUnavailable("Error from server (NotFound): the server could not find the requested resource")
        return self.logs[pod]

    def follow_pod_log(self, namespace: str, pod: str, container: str) -> Iterator[str]:
        yield from self.pod_log(namespace, pod, container).splitlines()


def pub_body(
    name: str = "launch",
    targets: tuple[str, ...] = ("mastodon",),
    status: dict | None = None,
    labels: dict | None = None,
    **spec: Any,
) -> dict:
    return {
        "apiVersion": "herald.dev/v1alpha1",
        "kind": "Publication",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "generation": 1,
            "labels": labels or {},
            "creationTimestamp": ts(NOW - timedelta(minutes=5)),
        },
        "spec": {"content": {"text": "Hello"}, "targets": [{"adapter": t} for t in targets], **spec},
        **({"status": status} if status is not None else {}),
    }


def cond(type_: str, status: str, reason: str, message: str = "", since: datetime = NOW) -> dict:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": ts(since),
        "observedGeneration": 1,
    }


REFUSED = "credentials are invalid: the platform refused the credentials (attempt 1 of mastodon)"

STUCK = pub_body(
    targets=("mastodon", "bluesky"),
    status={
        "phase": "Queued",
        "reason": "CredentialsInvalid",
        "message": f"mastodon: {REFUSED}",
        "observedGeneration": 1,
        "publishedTargets": 1,
        "totalTargets": 2,
        "attempts": 2,
        "conditions": [
            cond("Published", "False", "Queued", "1 of 2 targets published"),
            cond("Ready", "False", "CredentialsInvalid", f"mastodon: {REFUSED}", NOW - timedelta(minutes=3)),
            cond("Reconciling", "False", "Idle", "", NOW - timedelta(minutes=3)),
            cond("Stalled", "True", "CredentialsInvalid", f"mastodon: {REFUSED}", NOW - timedelta(minutes=3)),
        ],
        "targets": [
            {
                "adapter": "mastodon",
                "phase": "Queued",
                "reason": "CredentialsInvalid",
                "message": REFUSED,
                "attempts": 1,
                "lastErrorClass": "auth",
                "lastError": "HTTP 401 The access token is invalid",
                "deadLetter": False,
            },
            {
                "adapter": "bluesky",
                "phase": "Published",
                "reason": "Published",
                "attempts": 1,
                "postId": "at://did:plc:x/app.bsky.feed.post/3k",
                "url": "https://bsky.app/profile/did:plc:x/post/3k",
            },
        ],
    },
)

REFUSING_ADAPTER = {
    "metadata": {"name": "mastodon", "namespace": NS},
    "spec": {"platform": "mastodon", "credentialsSecretRef": {"name": "mastodon-credentials"}},
    "status": {
        "conditions": [
            cond("Ready", "False", "CredentialsRefused", "the platform refused the credentials (attempt 1 of mastodon)")
        ]
    },
}


# -- arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["-n", "a", "--context", "c", "--kubeconfig", "k", "status", "x"],
        ["status", "x", "-n", "a", "--context", "c", "--kubeconfig", "k"],
        ["--kubeconfig", "k", "status", "--namespace", "a", "x", "--context", "c"],
    ],
)
def test_connection_flags_go_before_or_after_the_command(argv):
    args = cli.build_parser().parse_args(argv)
    assert (args.namespace, args.context, args.kubeconfig, args.names) == ("a", "c", "k", ["x"])


def test_connection_flags_default_to_the_kubeconfig():
    args = cli.build_parser().parse_args(["status", "x"])
    assert (args.namespace, args.context, args.kubeconfig) == (None, None, None)


def test_logs_f_follows_and_preview_f_reads_a_file():
    parser = cli.build_parser()
    logs = parser.parse_args(["logs", "launch", "-f", "--target", "mastodon", "--attempt", "3"])
    assert (logs.follow, logs.target, logs.attempt) == (True, "mastodon", 3)
    preview = parser.parse_args(["preview", "-f", "pub.yaml", "--platform", "mastodon", "--platform", "b=bluesky"])
    assert (preview.filename, preview.name, preview.platform) == ("pub.yaml", None, ["mastodon", "b=bluesky"])


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_attempt_numbers_start_at_1(value, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["logs", "launch", "--attempt", value])
    assert exc.value.code == 2
    assert "--attempt" in capsys.readouterr().err


def test_retry_now_takes_several_targets():
    args = cli.build_parser().parse_args(["retry-now", "launch", "--target", "a", "--target", "b"])
    assert (args.name, args.target) == ("launch", ["a", "b"])


@pytest.mark.parametrize(
    "argv, selection",
    [
        (["redrive", "a", "b"], commands.Selection(("a", "b"), None, False)),
        (["redrive", "--dead-letter"], commands.Selection((), "herald.dev/dead-letter=true", False)),
        (
            ["redrive", "-l", "team=a", "--dead-letter", "-A"],
            commands.Selection((), "team=a,herald.dev/dead-letter=true", True),
        ),
        (["suspend", "-l", "app=blog"], commands.Selection((), "app=blog", False)),
        (["resume", "x"], commands.Selection(("x",), None, False)),
    ],
)
def test_selections(argv, selection):
    assert cli._selection(cli.build_parser().parse_args(argv)) == selection


@pytest.mark.parametrize(
    "selection, error",
    [
        (commands.Selection(("a",), "x=y"), "not both"),
        (commands.Selection(("a",), None, True), "-A/--all-namespaces goes with a selector"),
        (commands.Selection((), None), "name at least one publication"),
    ],
)
def test_selection_errors(selection, error):
    with pytest.raises(CliError, match=error):
        commands.select(FakeApi(), NS, selection)


def test_no_command_prints_the_help(capsys):
    assert cli.main([]) == 0
    assert "kubectl herald status launch" in capsys.readouterr().out


def test_errors_are_printed_as_kubectl_prints_them(capsys, tmp_path):
    assert cli.main(["preview", "-f", str(tmp_path / "missing.yaml")]) == 1
    assert capsys.readouterr().err == f"error: cannot read {tmp_path / 'missing.yaml'}: No such file or directory\n"


def test_run_connects_only_when_the_command_needs_the_cluster(tmp_path):
    path = tmp_path / "pub.yaml"
    path.write_text(yaml.safe_dump(pub_body()))
    args = cli.build_parser().parse_args(["preview", "-f", str(path), "--platform", "mastodon"])

    def connect():
        raise AssertionError("preview -f must not contact the cluster")

    out = io.StringIO()
    assert cli.run(args, connect, out, io.StringIO()) == 0
    assert "Hello" in out.getvalue()
    api = FakeApi([STUCK], [REFUSING_ADAPTER])
    out = io.StringIO()
    assert cli.run(cli.build_parser().parse_args(["status", "launch"]), lambda: (api, NS), out, io.StringIO()) == 0
    assert "CredentialsInvalid" in out.getvalue()


# -- formatting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0s"),
        (45.9, "45s"),
        (119, "119s"),
        (120, "2m"),
        (250, "4m10s"),
        (600, "10m"),
        (95 * 60, "95m"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (45 * 86400, "45d"),
        (2 * 365 * 86400, "2y"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_is_kubectls(seconds, text):
    assert render.human_duration(seconds) == text


def test_relative_times():
    assert render.relative(NOW + timedelta(seconds=250), NOW) == "in 4m10s"
    assert render.relative(NOW - timedelta(seconds=3), NOW) == "3s ago"
    assert render.relative(NOW + timedelta(milliseconds=400), NOW) == "now"
    assert render.when_cell("2030-06-01T09:04:10Z", NOW) == "in 4m10s (2030-06-01T09:04:10Z)"
    assert render.when_cell(None, NOW) == "-"


def test_tables_pad_columns_by_three_spaces_and_show_empty_cells_as_dashes():
    assert render.table(["A", "LONGER"], [["wide value", None], ["x", "y"]]) == (
        "A            LONGER\nwide value   -\nx            y"
    )


def test_status_of_a_publication_stuck_on_bad_credentials():
    report = render.status_report(STUCK, {"mastodon": REFUSING_ADAPTER, "bluesky": None}, NOW)
    assert report == (
        "Publication: news/launch\n"
        "Phase:       Queued\n"
        "Reason:      CredentialsInvalid\n"
        f"Message:     mastodon: {REFUSED}\n"
        "Targets:     1 of 2 published, 2 attempt(s)\n"
        "\n"
        "ADAPTER    PHASE       ATTEMPTS   REASON               NEXT ATTEMPT   POST URL\n"
        "mastodon   Queued      1          CredentialsInvalid   -              -\n"
        "bluesky    Published   1          Published            -              https://bsky.app/profile/did:plc:x/post/3k\n"
        "\n"
        "CONDITION     STATUS   REASON               SINCE   MESSAGE\n"
        f"Ready         False    CredentialsInvalid   3m      mastodon: {REFUSED}\n"
        "Reconciling   False    Idle                 3m      -\n"
        f"Stalled       True     CredentialsInvalid   3m      mastodon: {REFUSED}\n"
        "\n"
        "Targets not published:\n"
        f"  mastodon: {REFUSED}\n"
        "    last error: auth: HTTP 401 The access token is invalid\n"
        "    adapter mastodon: Ready=False CredentialsRefused: the platform refused the credentials "
        "(attempt 1 of mastodon)\n"
        "    next step: put working credentials in the Secret mastodon-credentials; attempts start again when it "
        "changes\n"
    )


def test_status_of_a_retrying_target_shows_when_its_next_attempt_starts():
    next_at = ts(NOW + timedelta(seconds=250))
    pub = pub_body(
        status={
            "phase": "Retrying",
            "reason": "RetryServerError",
            "observedGeneration": 1,
            "nextAttemptAt": next_at,
            "targets": [
                {
                    "adapter": "mastodon",
                    "phase": "Retrying",
                    "reason": "RetryServerError",
                    "attempts": 3,
                    "nextAttemptAt": next_at,
                    "lastErrorClass": "server_error",
                    "lastError": "HTTP 503",
                }
            ],
        }
    )
    report = render.status_report(pub, {}, NOW)
    assert f"Next attempt: in 4m10s ({next_at})\n" in report
    assert f"mastodon   Retrying   3          RetryServerError   in 4m10s ({next_at})   -\n" in report
    assert "next step: to retry before the backoff ends: kubectl herald retry-now launch --target mastodon" in report
    # Conditions the operator has not written are shown as such, not left out.
    assert "Ready         Unknown   -        -       not reported\n" in report


def test_status_of_a_dead_lettered_publication_says_how_to_redrive():
    pub = pub_body(
        labels={"herald.dev/dead-letter": "true"},
        status={
            "phase": "Failed",
            "reason": "DeadLetter",
            "observedGeneration": 1,
            "targets": [{"adapter": "mastodon", "phase": "Failed", "deadLetter": True, "attempts": 1}],
        },
    )
    report = render.status_report(pub, {}, NOW)
    assert "Dead letter: yes; kubectl herald redrive launch\n" in report
    assert "    next step: fix the cause, then kubectl herald redrive launch\n" in report


def test_status_before_the_operator_wrote_one_lists_the_spec_targets():
    report = render.status_report(pub_body(targets=("b", "a")), {}, NOW)
    assert "Phase:       (no status yet: the operator has not processed this publication)" in report
    assert report.index("\nb ") < report.index("\na ")
    assert "CONDITION" not in report


def test_status_notes_a_generation_the_operator_has_not_seen_yet():
    pub = pub_body(status={"phase": "Published", "observedGeneration": 1}, suspend=True)
    pub["metadata"]["generation"] = 2
    report = render.status_report(pub, {}, NOW)
    assert "Note:        the status is for generation 1; the operator has not yet seen 2\n" in report
    assert "Suspended:   yes (spec.suspend); kubectl herald resume launch\n" in report


# -- commands against the in-memory API ----------------------------------------------------------


def test_status_output_json_and_yaml_are_the_object():
    api = FakeApi([STUCK])
    out = io.StringIO()
    assert commands.status(api, NS, ["launch"], "json", out) == 0
    assert json.loads(out.getvalue()) == STUCK
    out = io.StringIO()
    assert commands.status(api, NS, ["launch"], "yaml", out) == 0
    assert yaml.safe_load(out.getvalue()) == STUCK


def test_status_of_a_missing_publication_fails():
    with pytest.raises(NotFound, match=r'publications\.herald\.dev "nope" in namespace "news" not found'):
        commands.status(FakeApi(), NS, ["nope"], None, io.StringIO())


def _dead(name: str, **labels: str) -> dict:
    return pub_body(
        name,
        labels={"herald.dev/dead-letter": "true", **labels},
        status={"phase": "Failed", "targets": [{"adapter": "mastodon", "phase": "Failed", "deadLetter": True}]},
    )


def test_redrive_sets_a_fresh_annotation_on_dead_lettered_publications_only():
    published = pub_body(
        "fine", status={"phase": "Published", "targets": [{"adapter": "mastodon", "phase": "Published"}]}
    )
    api = FakeApi([_dead("d1"), _dead("d2"), published])
    out, err = io.StringIO(), io.StringIO()
    sel = commands.Selection(names=("d1", "fine"))
    assert commands.redrive(api, NS, sel, out, err, now=NOW) == 0
    value = "2030-06-01T09:00:00.000000Z"
    assert api.patches == [(NS, "d1", {"metadata": {"annotations": {"herald.dev/redrive": value}}})]
    assert out.getvalue() == f"publication.herald.dev/d1 redriven (herald.dev/redrive={value}): mastodon\n"
    assert err.getvalue() == "publication.herald.dev/fine skipped: no target is in the dead letter (Published)\n"
    # A second redrive a microsecond later is a new value, so the operator acts on it again.
    commands.redrive(api, NS, sel, io.StringIO(), io.StringIO(), now=NOW + timedelta(microseconds=1))
    assert api.pubs[(NS, "d1")]["metadata"]["annotations"]["herald.dev/redrive"] == "2030-06-01T09:00:00.000001Z"


def test_redrive_by_selector_and_across_namespaces():
    other = _dead("elsewhere")
    other["metadata"]["namespace"] = "other"
    api = FakeApi([_dead("d1", team="a"), _dead("d2"), other])
    out = io.StringIO()
    sel = commands.Selection(selector="team=a,herald.dev/dead-letter=true")
    commands.redrive(api, NS, sel, out, io.StringIO(), now=NOW)
    assert [p[1] for p in api.patches] == ["d1"]
    out = io.StringIO()
    sel = commands.Selection(selector="herald.dev/dead-letter=true", all_namespaces=True)
    commands.redrive(api, NS, sel, out, io.StringIO(), now=NOW)
    assert "publication.herald.dev/other/elsewhere redriven" in out.getvalue()
    out = io.StringIO()
    commands.redrive(api, "empty", commands.Selection(selector="herald.dev/dead-letter=true"), out, io.StringIO())
    assert out.getvalue() == "No publications in namespace empty match herald.dev/dead-letter=true.\n"


def _retrying(*phases: tuple[str, str]) -> dict:
    return pub_body(
        targets=tuple(a for a, _ in phases),
        status={
            "targets": [
                {
                    "adapter": a,
                    "phase": p,
                    "reason": "CircuitOpen" if p == "Queued" else p,
                    "nextAttemptAt": ts(NOW + timedelta(minutes=10)) if p == "Retrying" else None,
                }
                for a, p in phases
            ]
        },
    )


def test_retry_now_of_every_retrying_target_sets_a_timestamp():
    api = FakeApi([_retrying(("mastodon", "Retrying"), ("bluesky", "Retrying"), ("slack", "Published"))])
    out = io.StringIO()
    assert commands.retry_now(api, NS, "launch", [], out, now=NOW) == 0
    assert api.patches == [
        (NS, "launch", {"metadata": {"annotations": {"herald.dev/retry-now": "2030-06-01T09:00:00.000000Z"}}})
    ]
    assert out.getvalue() == (
        "publication.herald.dev/launch: herald.dev/retry-now=2030-06-01T09:00:00.000000Z\n"
        "  mastodon: next attempt now; it was due in 10m\n"
        "  bluesky: next attempt now; it was due in 10m\n"
    )


def test_retry_now_of_one_target_names_it_in_the_annotation():
    api = FakeApi([_retrying(("mastodon", "Retrying"), ("bluesky", "Retrying"))])
    commands.retry_now(api, NS, "launch", ["bluesky"], io.StringIO(), now=NOW)
    value = api.pubs[(NS, "launch")]["metadata"]["annotations"]["herald.dev/retry-now"]
    assert value == "2030-06-01T09:00:00.000000Z targets=bluesky"
    assert commands.retry_now_value("T", ["a", "b"]) == "T targets=a,b"


def test_retry_now_refuses_when_nothing_is_retrying_and_says_why():
    api = FakeApi([_retrying(("mastodon", "Failed"), ("bluesky", "Queued"), ("slack", "Published"))])
    with pytest.raises(CliError) as exc:
        commands.retry_now(api, NS, "launch", [], io.StringIO(), now=NOW)
    assert str(exc.value) == (
        "nothing to retry now: no target is Retrying (mastodon: it is in the dead letter: kubectl herald redrive "
        "launch; bluesky: it is due and waits for its adapter (CircuitOpen); retry-now cannot lift that; "
        "slack: it is published)"
    )
    with pytest.raises(CliError, match="publication launch has no target 'x'"):
        commands.retry_now(api, NS, "launch", ["x"], io.StringIO(), now=NOW)
    assert api.patches == []


def test_suspend_and_resume_patch_spec_suspend():
    api = FakeApi([pub_body("a"), pub_body("b", suspend=True)])
    out = io.StringIO()
    commands.set_suspend(api, NS, commands.Selection(("a", "b")), True, out)
    assert api.patches == [(NS, "a", {"spec": {"suspend": True}})]
    assert (
        out.getvalue() == "publication.herald.dev/a suspended\npublication.herald.dev/b already suspended (no change)\n"
    )
    out = io.StringIO()
    commands.set_suspend(api, NS, commands.Selection(selector="app=none"), False, out)
    assert out.getvalue() == "No publications in namespace news match app=none.\n"
    out = io.StringIO()
    commands.set_suspend(api, NS, commands.Selection(("a", "b")), False, out)
    assert out.getvalue() == "publication.herald.dev/a resumed\npublication.herald.dev/b resumed\n"
    assert api.patches[-1] == (NS, "b", {"spec": {"suspend": False}})


# -- logs -----------------------------------------------------------------------------------------


def _job(pub: str, target: str, attempt: int, uid: str | None = None) -> dict:
    return {
        "metadata": {
            "name": job_name(pub, target, attempt),
            "labels": {
                "herald.dev/publication": pub,
                "herald.dev/adapter": target,
                "herald.dev/attempt": str(attempt),
            },
            "annotations": {"herald.dev/target": target, "herald.dev/attempt": str(attempt)},
            "ownerReferences": [{"kind": "Publication", "name": pub, "uid": uid or f"uid-{pub}"}],
        }
    }


def _pod(job: dict, suffix: str = "x", node: str = "node-a", message: str = '{"outcome":"published"}') -> dict:
    name = job["metadata"]["name"]
    return {
        "metadata": {
            "name": f"{name}-{suffix}",
            "labels": {"job-name": name, **job["metadata"]["labels"]},
            "creationTimestamp": ts(NOW),
        },
        "spec": {"nodeName": node},
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {
                    "name": "adapter",
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": message}},
                }
            ],
        },
    }


def _logs_world() -> FakeApi:
    jobs = [_job("launch", "mastodon", 1), _job("launch", "mastodon", 2), _job("launch", "bluesky", 1)]
    jobs.append(_job("launch", "bluesky", 7, uid="uid-of-a-deleted-launch"))  # not this publication's
    pods = [_pod(j) for j in jobs]
    logs = {p["metadata"]["name"]: f"log of {p['metadata']['name']}\n" for p in pods}
    return FakeApi([pub_body(targets=("mastodon", "bluesky"))], jobs=jobs, pods=pods, logs=logs)


def test_logs_show_the_latest_attempt_of_each_target():
    api = _logs_world()
    out, err = io.StringIO(), io.StringIO()
    assert commands.logs(api, NS, "launch", None, None, False, out, err) == 0
    m2, b1 = f"{job_name('launch', 'mastodon', 2)}-x", f"{job_name('launch', 'bluesky', 1)}-x"
    assert out.getvalue() == (
        f"==> mastodon attempt 2: pod {m2} <==\nlog of {m2}\n==> bluesky attempt 1: pod {b1} <==\nlog of {b1}\n"
    )
    assert err.getvalue() == ""
    assert api.job_selectors == ["herald.dev/publication=launch"]


def test_logs_of_one_attempt_of_one_target_are_printed_as_they_are():
    api = _logs_world()
    out = io.StringIO()
    assert commands.logs(api, NS, "launch", "mastodon", 1, False, out, io.StringIO()) == 0
    assert out.getvalue() == f"log of {job_name('launch', 'mastodon', 1)}-x\n"
    assert api.job_selectors == ["herald.dev/publication=launch,herald.dev/adapter=mastodon,herald.dev/attempt=1"]


def test_logs_say_why_an_attempt_has_none():
    api = _logs_world()
    api.pubs[(NS, "launch")]["spec"]["targets"].append({"adapter": "slack"})
    api.pubs[(NS, "launch")]["status"] = {
        "targets": [
            {"adapter": "slack", "phase": "Queued", "reason": "CredentialsInvalid", "attempts": 0},
            {"adapter": "bluesky", "attempts": 9, "lastErrorClass": "network", "lastError": "connection refused"},
        ]
    }
    err = io.StringIO()
    assert commands.logs(api, NS, "launch", "slack", None, False, io.StringIO(), err) == 1
    assert err.getvalue() == "slack: no attempt has started (CredentialsInvalid)\n"
    err = io.StringIO()
    assert commands.logs(api, NS, "launch", "bluesky", 9, False, io.StringIO(), err) == 1
    assert err.getvalue() == (
        "bluesky: the Job of attempt 9 is gone (deleted after its ttlSecondsAfterFinished), with its logs; "
        "last error: network: connection refused\n"
    )
    err = io.StringIO()
    assert commands.logs(api, NS, "launch", "mastodon", 5, False, io.StringIO(), err) == 1
    assert err.getvalue() == "mastodon: no attempt 5 (attempts so far: 0)\n"
    with pytest.raises(CliError, match="publication launch has no target 'x'"):
        commands.logs(api, NS, "launch", "x", None, False, io.StringIO(), io.StringIO())


def test_logs_a_node_cannot_serve_are_explained_with_the_attempts_result():
    job = _job("launch", "mastodon", 1)
    pod = _pod(job, node="kwok-node-0", message='{"outcome":"failed","errorClass":"auth"}\n')
    pod["status"]["containerStatuses"][0]["state"]["terminated"].update(exitCode=1, reason="Error")
    node = {"metadata": {"name": "kwok-node-0"}, "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}}}
    api = FakeApi([pub_body()], jobs=[job], pods=[pod], nodes=[node])
    out, err = io.StringIO(), io.StringIO()
    assert commands.logs(api, NS, "launch", None, None, False, out, err) == 1
    assert out.getvalue() == ""
    assert err.getvalue() == (
        f"cannot read the log of pod {pod['metadata']['name']}: Error from server (NotFound): the server could not "
        "find the requested resource\n"
        "  node kwok-node-0 has no kubelet endpoint to serve logs from (a simulated node, such as kwok's)\n"
        '  the adapter exited 1 (Error); its result (termination message): {"outcome":"failed","errorClass":"auth"}\n'
    )


def test_logs_of_a_pod_that_has_not_started():
    job = _job("launch", "mastodon", 1)
    pod = _pod(job)
    pod["status"] = {
        "phase": "Pending",
        "containerStatuses": [{"name": "adapter", "state": {"waiting": {"reason": "ContainerCreating"}}}],
    }
    err = io.StringIO()
    api = FakeApi([pub_body()], jobs=[job], pods=[pod])
    assert commands.logs(api, NS, "launch", None, None, False, io.StringIO(), err) == 1
    assert "  the adapter container has not started yet (ContainerCreating)\n" in err.getvalue()


def test_logs_follow_prefixes_each_line_with_its_attempt_when_there_are_several():
    api = _logs_world()
    out = io.StringIO()
    assert commands.logs(api, NS, "launch", None, None, True, out, io.StringIO()) == 0
    lines = sorted(out.getvalue().splitlines())
    assert lines == sorted(
        [
            f"[mastodon/2] log of {job_name('launch', 'mastodon', 2)}-x",
            f"[bluesky/1] log of {job_name('launch', 'bluesky', 1)}-x",
        ]
    )


# -- preview: the adapters' own text code, offline ------------------------------------------------

LINK = "https://example.org/herald"


def _preview(platform: str, text: str, truncate: bool = False, **content: Any) -> previews.TargetPreview:
    pub = pub_body(targets=("t",), truncate=truncate)
    pub["spec"]["content"] = {"text": text, **content}
    ((adapter, payload),) = previews.payloads(pub, None)
    return previews.preview_target(adapter, platform, payload)


def test_mastodon_over_the_limit_is_rejected_with_the_adapters_own_message():
    p = _preview("mastodon", "a" * 480, link=LINK, tags=["release"])
    assert p.outcome == "rejected"
    # 480 + 2 + 23 (the link, counted as 23) + 2 + 8
    assert (p.size, p.limit, p.unit) == (515, 500, "characters (URLs count as 23)")
    assert p.error == (
        "text is 515 characters (URLs count as 23); mastodon allows at most 500. "
        "Shorten it, or set truncate: true on the publication"
    )
    assert p.texts == [] and p.composed == "a" * 480 + f"\n\n{LINK}\n\n#release"
    assert (p.links, p.tags) == ([LINK], ["#release"])


def test_mastodon_truncates_the_text_but_keeps_the_link_and_tags():
    p = _preview("mastodon", "a" * 480, truncate=True, link=LINK, tags=["release"])
    assert p.outcome == "truncated"
    (text,) = p.texts
    assert text.endswith(f"…\n\n{LINK}\n\n#release")
    assert p.sizes == [count_mastodon(text)] == [500]


def test_bluesky_counts_graphemes_not_code_points():
    thumbs = "👍🏽"  # two code points, one grapheme
    fits = _preview("bluesky", thumbs * 300)
    assert (fits.outcome, fits.sizes, fits.limit, fits.unit) == ("fits", [300], 300, "graphemes")
    over = _preview("bluesky", thumbs * 301)
    assert over.outcome == "rejected"
    assert over.error.startswith("text is 301 graphemes; bluesky allows at most 300.")
    cut = _preview("bluesky", thumbs * 301, truncate=True, link=LINK)
    assert cut.outcome == "truncated" and count_graphemes(cut.texts[0]) == 300
    assert cut.texts[0].endswith(f"{thumbs}…\n\n{LINK}")
    assert f"link card (embed) for {LINK}" in cut.notes


def test_slack_measures_and_sends_the_escaped_text():
    over = _preview("slack", "&" * 8001)  # 8001 characters, 40005 once escaped
    assert (over.outcome, over.size, over.limit) == ("rejected", 40005, 40000)
    assert over.unit == "characters (after escaping &, <, >)"
    fits = _preview("slack", "a < b & c", tags=["x"])
    assert fits.texts == ["a &lt; b &amp; c"] and fits.sizes == [16]
    assert fits.tags == [] and "content.tags are not sent: slack posts have no hashtags" in fits.notes
    cut = _preview("slack", "a" * 40001, truncate=True)
    assert cut.outcome == "truncated" and len(cut.texts[0]) == 40000


def test_platform_options_from_the_overrides_reach_the_adapter():
    pub = pub_body(targets=("thread", "bad"))
    pub["spec"]["content"] = {"text": ("A sentence that goes on. " * 40).strip(), "link": LINK}
    pub["spec"]["targets"][0]["overrides"] = {"options": {"thread": True}}
    pub["spec"]["targets"][1]["overrides"] = {"options": {"visibility": "everyone"}}
    (_, thread), (_, bad) = previews.payloads(pub, None)
    p = previews.preview_target("thread", "bluesky", thread)
    assert (p.outcome, p.size, p.limit, len(p.texts)) == ("fits", 999 + 2 + len(LINK), 300, 4)
    assert p.sizes == [count_graphemes(t) for t in p.texts] and max(p.sizes) <= 300
    assert p.texts[-1].endswith(f"\n\n{LINK}")
    assert "a thread of 4 posts (option thread), each at most 300 graphemes" in p.notes
    p = previews.preview_target("bad", "mastodon", bad)
    assert p.outcome == "rejected" and p.error.startswith("invalid options for mastodon: visibility:")


def test_each_target_gets_its_own_overrides():
    pub = pub_body(targets=("m", "b"))
    pub["spec"]["content"] = {"text": "long " * 80, "link": LINK, "tags": ["a"]}
    pub["spec"]["targets"][1]["overrides"] = {"text": "short", "tags": ["b"]}
    results = {a: previews.preview_target(a, "bluesky", p) for a, p in previews.payloads(pub, None)}
    assert results["m"].outcome == "rejected"
    assert results["b"].texts == [f"short\n\n{LINK}\n\n#b"]
    ((only, _),) = previews.payloads(pub, "b")
    assert only == "b"


@pytest.mark.parametrize(
    "platform, sent",
    [
        ("discord", "Hello @everyone\n\nhttps://example.org/herald"),
        ("telegram", "Hello @everyone\n\nhttps://example.org/herald\n\n#release"),
        ("webhook", "Hello @everyone"),
    ],
)
def test_other_built_in_platforms(platform, sent):
    p = _preview(platform, "Hello @everyone", link=LINK, tags=["release"])
    assert p.outcome in ("fits", "unlimited")
    assert p.texts == [sent]


def test_a_custom_platform_gets_the_content_text():
    p = _preview("acme", "Hello")
    assert (p.outcome, p.texts) == ("unlimited", ["Hello"])
    assert "'acme' is not a built-in platform" in p.notes[0]


def test_preview_reads_platforms_from_the_file_and_the_flags():
    text = yaml.safe_dump_all(
        [
            {
                "apiVersion": "herald.dev/v1alpha1",
                "kind": "PlatformAdapter",
                "metadata": {"name": "m"},
                "spec": {"platform": "mastodon"},
            },
            {
                "apiVersion": "v1",
                "kind": "List",
                "items": [pub_body("p1", targets=("m", "s")), pub_body("p2")],
            },
        ]
    )
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CliError, match=r"several Publications \(p1, p2\): name one"):
        commands.preview(None, NS, None, None, text, [], None, out, err)
    with pytest.raises(CliError, match="cannot tell the platform of target 's'"):
        commands.preview(None, NS, "p1", None, text, [], None, out, err)
    assert commands.preview(None, NS, "p1", None, text, ["s=slack"], "json", out, err) == 0
    doc = json.loads(out.getvalue())
    assert [(d["adapter"], d["platform"], d["texts"]) for d in doc] == [
        ("m", "mastodon", ["Hello"]),
        ("s", "slack", ["Hello"]),
    ]
    out = io.StringIO()
    assert commands.preview(None, NS, "p1", "s", text, ["discord"], None, out, err) == 0
    assert out.getvalue().startswith("s (platform discord)\n  length: 5 of 2000 characters\n  result: fits\n")
    with pytest.raises(CliError, match="no Publication named 'p3'"):
        commands.preview(None, NS, "p3", None, text, [], None, out, err)


def test_preview_from_the_cluster_takes_the_platform_from_the_platformadapter():
    pub = pub_body(targets=("mastodon", "gone"))
    pub["spec"]["content"]["text"] = "x" * 501
    api = FakeApi([pub], [REFUSING_ADAPTER])
    out, err = io.StringIO(), io.StringIO()
    assert commands.preview(api, NS, "launch", "mastodon", None, [], None, out, err) == 1
    assert (
        "  result: REJECTED: text is 501 characters (URLs count as 23); mastodon allows at most 500." in out.getvalue()
    )
    assert err.getvalue() == "error: the adapter would reject the text for mastodon\n"
    with pytest.raises(CliError, match="PlatformAdapter 'gone' not found in namespace news: pass --platform gone="):
        commands.preview(api, NS, "launch", "gone", None, [], None, out, err)


def test_preview_text_output():
    p = _preview("mastodon", "Hello\nworld", link=LINK, tags=["release"])
    assert previews.render([p]).startswith(
        "t (platform mastodon)\n"
        "  length: 46 of 500 characters (URLs count as 23)\n"  # 11 + 2 + 23 (the link) + 2 + 8
        "  result: fits\n"
        f"  links:  {LINK}\n"
        "  tags:   #release\n"
    )
    assert previews.render([p]).endswith(
        f"  text:\n    | Hello\n    | world\n    |\n    | {LINK}\n    |\n    | #release\n"
    )


@pytest.mark.parametrize("flag", ["=mastodon", "m=", ""])
def test_bad_platform_flags(flag):
    with pytest.raises(CliError, match="use PLATFORM or ADAPTER=PLATFORM"):
        previews.parse_platform_flags(["m=x", flag] if flag else ["="])


# -- installation: the console script and the krew manifest --------------------------------------


def test_the_console_script_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["kubectl-herald"] == "kubectl_herald.cli:main"


def test_the_krew_manifest():
    manifest = yaml.safe_load((ROOT / "plugins" / "krew" / "herald.yaml").read_text())
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin" and manifest["metadata"]["name"] == "herald"
    spec = manifest["spec"]
    assert spec["version"] == f"v{__version__}"
    assert spec["homepage"].startswith("https://") and spec["shortDescription"] and spec["description"]
    (platform,) = spec["platforms"]
    assert platform["bin"] == "kubectl-herald"
    assert platform["files"] == [{"from": "kubectl-herald", "to": "."}]
    assert platform["uri"].endswith(f"/v{__version__}/kubectl-herald-v{__version__}.tar.gz")
    assert platform["sha256"] == "0" * 64  # the placeholder release.sh replaces


def test_release_fills_the_manifest_and_the_archive_runs_the_plugin(tmp_path):
    script = ROOT / "plugins" / "krew" / "release.sh"
    base = "https://downloads.example/herald/v9.8.7"
    done = subprocess.run([str(script), "v9.8.7", base, str(tmp_path)], capture_output=True, text=True, check=True)
    archive = tmp_path / "kubectl-herald-v9.8.7.tar.gz"
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert done.stdout.splitlines()[0] == f"{archive} {digest}"
    manifest = yaml.safe_load((tmp_path / "herald.yaml").read_text())
    assert manifest["spec"]["version"] == "v9.8.7"
    assert manifest["spec"]["platforms"][0]["uri"] == f"{base}/kubectl-herald-v9.8.7.tar.gz"
    assert manifest["spec"]["platforms"][0]["sha256"] == digest
    assert "RELEASE" not in (tmp_path / "herald.yaml").read_text()
    # The same input gives the same archive (krew pins its sha256).
    again = tmp_path / "again"
    subprocess.run([str(script), "v9.8.7", base, str(again)], capture_output=True, check=True)
    assert (again / archive.name).read_bytes() == archive.read_bytes()
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["kubectl-herald"]
        tar.extractall(tmp_path / "x", filter="data")
    shim = tmp_path / "x" / "kubectl-herald"
    env = dict(os.environ, HERALD_PYTHON=sys.executable)
    ran = subprocess.run([str(shim), "--version"], capture_output=True, text=True, env=env)
    assert (ran.returncode, ran.stdout) == (0, f"kubectl-herald {__version__}\n")
    env["HERALD_PYTHON"] = str(tmp_path / "no-python")
    ran = subprocess.run([str(shim), "--version"], capture_output=True, text=True, env=env)
    assert ran.returncode == 1 and "needs Python 3.11+ with the herald package" in ran.stderr

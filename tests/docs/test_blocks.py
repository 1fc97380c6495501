"""The rules of "docs that run" (tests/docs/blocks.py), checked without a cluster: how blocks are
found, parsed, classified and rewritten, how a failure is reported, and that every page follows
the rules (markers in their place, no runnable block that never ends, no unknown placeholder)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.docs.blocks import (
    PLACEHOLDERS,
    Rewrites,
    all_blocks,
    doc_files,
    markers_not_before_a_shell_block,
    never_ends,
    parse,
    talks_to_cluster,
    unsafe,
)
from tests.docs.runner import run_block

DOCS = doc_files()
KNOWN = Rewrites({}, dict.fromkeys(PLACEHOLDERS, "x"))  # the values only exist with a cluster


def _page(tmp_path: Path, text: str) -> list:
    (tmp_path / "docs").mkdir(exist_ok=True)
    page = tmp_path / "docs" / "page.md"
    page.write_text(text)
    return parse(page, tmp_path)


def test_blocks_commands_markers_and_kinds(tmp_path):
    blocks = _page(
        tmp_path,
        """# A page

```sh
# a comment
kubectl apply -n news -f - <<'EOF'   # publish
kind: Publication   # kubectl in a heredoc is not a command
EOF
kubectl get pub -n news \\
  -o wide
```

<!-- illustrative: needs Argo CD -->
```bash
kubectl -n argocd get applications
```

```console
$ kubectl herald status launch -n news
Publication: news/launch
$ echo done
done
```

```console
$ promtool check rules alert-rules/herald.rules.yml
SUCCESS
```

```yaml
kubectl: not a shell block
```

```
kubectl get pods   # no info string: not a shell block
```
""",
    )
    assert [(b.line, b.lang, b.kind) for b in blocks] == [
        (3, "sh", "run"),
        (13, "bash", "illustrative"),
        (17, "console", "run"),
        (24, "console", "local"),
    ]
    apply, get = blocks[0].commands
    assert (apply.line, apply.heredoc_lines, get.line) == (5, 2, 8)
    assert get.text == "kubectl get pub -n news \\\n  -o wide"
    assert blocks[1].illustrative == "needs Argo CD"
    status, echo = blocks[2].commands  # the output lines are not commands
    assert (status.line, status.text, echo.line, echo.text) == (
        18,
        "kubectl herald status launch -n news",
        20,
        "echo done",
    )
    script, where = blocks[2].script()
    assert script == "kubectl herald status launch -n news\necho done\n" and where == [18, 20]


@pytest.mark.parametrize(
    ("words", "cluster"),
    [
        ("kubectl get pods", True),
        ("helm upgrade herald helm/herald -n herald-system --reuse-values", True),
        ("kubectl-herald status x", True),
        ("curl -s localhost:8080/metrics | grep '^herald_'", True),
        ("curl -s http://127.0.0.1:18090/_herald/posts", True),
        ("curl -s https://example.org/", False),
        ("make demo", True),
        ("make test NODE=real", True),
        ("make lint", False),
        (".venv/bin/pytest tests/e2e", True),
        (".venv/bin/python bench/scale.py --pure", False),
        (".venv/bin/python bench/publications.py --n 200", True),
        ("promtool check rules alert-rules/herald.rules.yml", False),
        ("echo hi   # then kubectl get pods", False),
        ("x=$(kubectl get pub -o name)", True),
    ],
)
def test_what_talks_to_a_cluster(words, cluster):
    assert talks_to_cluster(words) is cluster


def test_rewrites_touch_whole_namespace_names_only():
    r = Rewrites(
        {"herald-system": "t-system", "news": "t-news", "blog": "t-blog", "18090": "4242"},
        {"ns": "t-news", "adapter": "mastodon-main"},
    )
    assert r("kubectl -n herald-system logs deploy/herald") == "kubectl -n t-system logs deploy/herald"
    assert r("--as=system:serviceaccount:herald-system:herald") == "--as=system:serviceaccount:t-system:herald"
    assert r("--set 'watchNamespaces={news,blog}'") == "--set 'watchNamespaces={t-news,t-blog}'"
    assert r("link: https://example.org/blog/herald-1-0") == "link: https://example.org/blog/herald-1-0"
    assert r("https://news.example.org herald-systems news-feed") == "https://news.example.org herald-systems news-feed"
    assert r("Publication: news/launch") == "Publication: t-news/launch"
    assert r("curl -s http://127.0.0.1:18090/_herald/posts") == "curl -s http://127.0.0.1:4242/_herald/posts"
    assert (
        r("kubectl -n <ns> describe platformadapter <adapter>")
        == "kubectl -n t-news describe platformadapter mastodon-main"
    )
    assert r.unknown_placeholders("kubectl -n <ns> get pod <pod>") == ["<pod>"]


def test_a_failing_block_names_the_file_line_and_command(tmp_path):
    (block,) = _page(
        tmp_path,
        """Text.

```console
$ echo first
first
$ printf '%s\\n' one two \\
>   three | grep -q four
$ echo never
```
""",
    )
    result = run_block(block, Rewrites({}, {}), dict(os.environ), timeout=30, cwd=tmp_path, keep_going=False)
    assert not result.ok and result.returncode == 1
    assert [(f.doc_line, f.returncode, f.run) for f in result.failures] == [(6, 1, "grep -q four")], result.output
    report = result.report()
    assert report.startswith("docs/page.md:6: exited 1: printf '%s\\n' one two \\\n  three | grep -q four"), report
    assert "first" in result.output and "never" not in result.output


def test_keep_going_reports_every_failing_command(tmp_path):
    (block,) = _page(tmp_path, "```sh\nfalse\necho between\nexit_code() { return 3; }\nexit_code\necho end\n```\n")
    result = run_block(block, Rewrites({}, {}), dict(os.environ), timeout=30, cwd=tmp_path, keep_going=True)
    assert not result.ok and result.returncode == 3
    assert [(f.doc_line, f.returncode) for f in result.failures] == [(2, 1), (5, 3)], result.output
    assert "between" in result.output and "end" in result.output


def test_a_block_that_is_not_shell_is_reported_with_its_line(tmp_path):
    (block,) = _page(tmp_path, "```sh\necho ok\nsum by (x) (rate(m[5m]))\n```\n")
    result = run_block(block, Rewrites({}, {}), dict(os.environ), timeout=30, cwd=tmp_path)
    assert not result.ok and "syntax error" in result.problem and "(document line 3)" in result.problem


def test_a_block_that_hangs_is_stopped_with_what_it_started(tmp_path):
    (block,) = _page(tmp_path, "```sh\nsleep 600 &\nsleep 600\n```\n")
    result = run_block(block, Rewrites({}, {}), dict(os.environ), timeout=1, cwd=tmp_path)
    assert not result.ok and result.problem == "did not finish within 1s"


def test_a_block_that_would_install_software_is_not_run(tmp_path):
    marker = tmp_path / "ran"
    (block,) = _page(tmp_path, f"```sh\ntouch {marker}\npython3 -m pip install .\nkubectl plugin list\n```\n")
    result = run_block(block, Rewrites({}, {}), dict(os.environ), timeout=30, cwd=tmp_path)
    assert not result.ok and "installs Python packages" in result.problem and not marker.exists()


def test_an_unknown_placeholder_is_reported_before_running(tmp_path):
    (block,) = _page(tmp_path, "```sh\nkubectl -n <ns> get pods <pod>\n```\n")
    result = run_block(block, KNOWN, dict(os.environ), timeout=30, cwd=tmp_path)
    assert not result.ok and "unknown placeholders ['<pod>']" in result.problem


@pytest.mark.parametrize("page", DOCS, ids=[str(p.name) for p in DOCS])
def test_illustrative_markers_stand_right_before_a_shell_block(page):
    assert markers_not_before_a_shell_block(page) == []


@pytest.mark.parametrize("page", DOCS, ids=[str(p.name) for p in DOCS])
def test_runnable_blocks_end_are_safe_and_use_known_placeholders(page):
    """A runnable block must not follow forever (`-w`, `logs -f`, a foreground port-forward), must not install
    software, change the checkout or stop the cluster (blocks.UNSAFE), and may only use the placeholders
    tests/docs/conftest.py fills in; otherwise mark it illustrative."""
    problems = []
    for block in parse(page):
        if not block.runs:
            continue
        problems += never_ends(block) + unsafe(block)
        unknown = KNOWN.unknown_placeholders(block.script()[0])
        if unknown:
            problems.append(f"{block.id}: unknown placeholders {unknown}")
    assert problems == []


def test_every_shell_block_is_run_illustrative_or_local():
    blocks = all_blocks()
    assert blocks, "no shell blocks found in README.md and docs/*.md"
    assert {b.kind for b in blocks} <= {"run", "illustrative", "local"}
    assert any(b.runs for b in blocks)


def test_misplaced_markers_are_found(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "Prose may quote `<!-- illustrative: REASON -->` inline.\n"
        "<!-- illustrative: before yaml -->\n```yaml\na: 1\n```\n"
        "<!-- illustrative: -->\n```sh\nkubectl get pods\n```\n"
        "<!-- illustrative: a blank line follows -->\n\n```sh\nkubectl get pods\n```\n"
        "<!-- illustrative: fine -->\n```console\n$ kubectl get pods\n```\n"
    )
    assert [p.split(": ", 1)[0] for p in markers_not_before_a_shell_block(page, tmp_path)] == [
        "docs/page.md:2",
        "docs/page.md:6",
        "docs/page.md:10",
    ]

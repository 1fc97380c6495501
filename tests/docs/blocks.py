"""The shell blocks of README.md and docs/*.md: which ones talk to a cluster, and what runs.

Rules (docs/testing.md, "Docs that run", says the same for writers):

- A **shell block** is a fenced block whose info string is ``sh``, ``bash``, ``shell``, ``console``
  or ``shell-session``. Other fences (``yaml``, ``promql``, none at all) are never run.
- In ``sh``/``bash``/``shell`` blocks every line is the script, comments included.
  In ``console``/``shell-session`` blocks only the commands run: a line starting with ``$ `` (the
  prompt is dropped), plus its continuation lines (a trailing ``\\``, or the body of a heredoc it
  opens, each optionally behind a ``> `` prompt). Every other line is output and is not run.
- A block **talks to a cluster** when one of its commands runs ``kubectl``, ``helm`` or
  ``kubectl-herald``; ``make`` with a target that touches the cluster (``CLUSTER_MAKE_TARGETS``);
  ``pytest`` (the suite needs the cluster); a benchmark under ``bench/`` other than ``--pure``; or
  ``curl`` to a local or in-cluster address (localhost, 127.0.0.1, 10.x, ``*.svc``).
  Heredoc bodies and comments do not count. Every other block is *local* and is not run.
- A block is **illustrative** when the line right before its opening fence is
  ``<!-- illustrative: REASON -->`` (a non-empty reason). It is never run.
- Every other cluster block is run by tests/docs/test_docs_run.py, as one bash script with
  ``errexit`` and ``pipefail``, after the rewrites of ``Rewrites`` (the test's unique namespaces,
  the placeholders such as ``<ns>``), and must exit 0.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGS = frozenset({"sh", "bash", "shell", "console", "shell-session"})
CONSOLE_LANGS = frozenset({"console", "shell-session"})
CLUSTER_COMMANDS = frozenset({"kubectl", "helm", "kubectl-herald"})
# `make` targets that bring up, use or tear down a cluster (the Makefile's help lists them).
CLUSTER_MAKE_TARGETS = frozenset(
    {
        "demo",
        "demo-kwok",
        "demo-stop",
        "test",
        "docs-test",
        "cluster-up",
        "cluster-down",
        "kind-up",
        "run",
        "bench",
        "images",
        "clean",
    }
)
LOCAL_HOST = re.compile(r"(?:localhost|127\.0\.0\.1|\b10\.\d+\.\d+\.\d+|\.svc\b|\.svc\.)")
MARKER = re.compile(r"^\s*<!--\s*illustrative:(.*?)-->\s*$")
ANY_MARKER = re.compile(r"^\s*<!--\s*illustrative\b")  # a marker starts its line (prose may quote one)
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")
PLACEHOLDER = re.compile(r"<([a-z][a-z0-9-]*)>")
# The placeholders a runnable block may use; tests/docs/conftest.py gives each a real object.
PLACEHOLDERS = ("ns", "namespace", "adapter", "publication", "secret", "release", "operator-pod")
# Commands a test must never run on the machine it runs on: they install software, change the
# repository's checkout or stop the shared cluster. A block with one of them must be illustrative.
UNSAFE = (
    (re.compile(r"\bpip3?\s+install\b|\bpip\s+uninstall\b"), "installs Python packages"),
    (re.compile(r"\bapt(-get)?\s+(install|remove|upgrade)\b"), "installs system packages"),
    (re.compile(r"\bmake\s+(\S+=\S+\s+)*(cluster-down|clean|demo-stop)\b"), "stops the shared cluster or demo"),
    (re.compile(r"\bgit\s+(checkout|reset|clean|stash|commit|add)\b"), "changes the checkout"),
)
# kubectl commands that never end on their own: a runnable block must not run them in the foreground.
FOREVER = (
    (re.compile(r"\s(-w|--watch|--watch-only)(\s|=|$)"), "kubectl --watch"),
    (re.compile(r"\slogs\b.*\s(-f|--follow)(\s|=|$)"), "kubectl logs --follow"),
    (re.compile(r"\sport-forward\b(?!.*&\s*$)"), "kubectl port-forward in the foreground"),
)


@dataclass(frozen=True)
class Command:
    """One logical command: its first line in the document, and its text (continuation lines
    and heredoc bodies included)."""

    line: int
    text: str
    heredoc_lines: int = 0  # how many of its last lines are heredoc bodies (and their terminators)

    @property
    def words(self) -> str:
        """The command without its heredoc bodies."""
        lines = self.text.split("\n")
        return "\n".join(lines[: len(lines) - self.heredoc_lines]) if self.heredoc_lines else self.text


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository
    line: int  # the opening fence's line, 1-based
    lang: str
    body: tuple[str, ...]  # the lines between the fences, the fence's indentation removed
    illustrative: str | None  # the marker's reason
    commands: tuple[Command, ...] = field(default=())

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def console(self) -> bool:
        return self.lang in CONSOLE_LANGS

    @property
    def talks_to_cluster(self) -> bool:
        return any(talks_to_cluster(c.words) for c in self.commands)

    @property
    def runs(self) -> bool:
        return self.illustrative is None and self.talks_to_cluster

    @property
    def kind(self) -> str:
        if self.illustrative is not None:
            return "illustrative"
        return "run" if self.talks_to_cluster else "local"

    def script(self) -> tuple[str, list[int]]:
        """The bash script to run, and the document line of each of its lines."""
        if not self.console:
            return "\n".join(self.body) + "\n", [self.line + 1 + i for i in range(len(self.body))]
        lines: list[str] = []
        where: list[int] = []
        for command in self.commands:
            for i, text in enumerate(command.text.split("\n")):
                lines.append(text)
                where.append(command.line + i)
        return "\n".join(lines) + "\n", where

    def command_at(self, doc_line: int) -> Command | None:
        """The logical command that contains this document line."""
        for command in self.commands:
            if command.line <= doc_line < command.line + command.text.count("\n") + 1:
                return command
        return None


def talks_to_cluster(words: str) -> bool:
    try:
        lexer = shlex.shlex(words, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: look at the raw words
        tokens = words.split()
    names = [t.rsplit("/", 1)[-1] for t in tokens]
    if CLUSTER_COMMANDS & set(names):
        return True
    if "pytest" in names:
        return True
    for i, name in enumerate(names):
        if name == "make":
            targets = [t for t in tokens[i + 1 :] if not t.startswith("-") and "=" not in t]
            if targets and targets[0] in CLUSTER_MAKE_TARGETS:
                return True
        if name == "curl" and any(LOCAL_HOST.search(t) for t in tokens[i + 1 :]):
            return True
    benches = [t for t in tokens if t.startswith("bench/") and t.endswith(".py")]
    return bool(benches) and "--pure" not in tokens


def _heredoc_ends(line: str) -> list[tuple[str, bool]]:
    """The heredoc delimiters a command line opens (in order), and whether each is <<- (tabs)."""
    code = line.split(" #", 1)[0]
    return [(m.group(3), m.group(1) == "-") for m in HEREDOC.finditer(code)]


def split_commands(lines: list[str], first_line: int, console: bool) -> list[Command]:
    """The logical commands of a block's lines (first_line: the document line of lines[0])."""
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        raw = lines[i]
        if console:
            if not raw.startswith("$ ") and raw.rstrip() != "$":
                i += 1
                continue
            raw = raw[2:]
        elif not raw.strip() or raw.lstrip().startswith("#"):
            i += 1
            continue
        start = i
        text = [raw]
        heredocs = _heredoc_ends(raw)
        while text[-1].rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            nxt = lines[i][2:] if console and lines[i].startswith("> ") else lines[i]
            text.append(nxt)
            heredocs += _heredoc_ends(nxt)
        body = 0
        for delimiter, tabs in heredocs:
            while i + 1 < len(lines):
                i += 1
                nxt = lines[i][2:] if console and lines[i].startswith("> ") else lines[i]
                text.append(nxt)
                body += 1
                if (nxt.lstrip("\t") if tabs else nxt) == delimiter:
                    break
        commands.append(Command(first_line + start, "\n".join(text), body))
        i += 1
    return commands


def parse(path: Path, root: Path = ROOT) -> list[Block]:
    """Every shell block of a Markdown file."""
    rel = str(path.relative_to(root))
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group("indent"), m.group("fence"), m.group("info").lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                break
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        else:
            raise ValueError(f"{rel}:{start + 1}: the fence {fence} is never closed")
        i += 1
        if info not in SHELL_LANGS:
            continue
        marker = MARKER.match(lines[start - 1]) if start > 0 else None
        reason = marker.group(1).strip() if marker else None
        commands = split_commands(body, start + 2, info in CONSOLE_LANGS)
        blocks.append(Block(rel, start + 1, info, tuple(body), reason, tuple(commands)))
    return blocks


def markers_not_before_a_shell_block(path: Path, root: Path = ROOT) -> list[str]:
    """Illustrative markers that mark nothing (not right before a shell fence) or give no reason."""
    rel = str(path.relative_to(root))
    lines = path.read_text(encoding="utf-8").split("\n")
    problems = []
    for i, line in enumerate(lines):
        if not ANY_MARKER.search(line):
            continue
        m = MARKER.match(line)
        if not m or not m.group(1).strip():
            problems.append(f"{rel}:{i + 1}: write it as <!-- illustrative: REASON --> on a line of its own")
            continue
        nxt = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not nxt or nxt.group("info").lower() not in SHELL_LANGS:
            problems.append(f"{rel}:{i + 1}: an illustrative marker must be the line right before a shell fence")
    return problems


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md, then docs/*.md by name: the order the blocks run in."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def all_blocks(root: Path = ROOT) -> list[Block]:
    return [b for f in doc_files(root) for b in parse(f, root)]


class Rewrites:
    """What the test changes in a block before running it: the documents' namespaces become the
    test's unique ones, the demo's port the test's, and placeholders such as ``<ns>`` real names.

    A name is rewritten only as a whole word: not inside a longer name (``herald-systems``), a
    path or a URL (``example.org/blog/``), or a host name (``news.example.org``)."""

    def __init__(self, names: dict[str, str], placeholders: dict[str, str]):
        self.names = dict(names)
        self.placeholders = dict(placeholders)
        words = "|".join(re.escape(n) for n in sorted(self.names, key=len, reverse=True))
        self._names = re.compile(rf"(?<![\w./@-])({words})(?![\w-]|\.\w)") if words else None

    def unknown_placeholders(self, text: str) -> list[str]:
        return sorted({f"<{m.group(1)}>" for m in PLACEHOLDER.finditer(text) if m.group(1) not in self.placeholders})

    def __call__(self, text: str) -> str:
        if self._names:
            text = self._names.sub(lambda m: self.names[m.group(1)], text)
        return PLACEHOLDER.sub(lambda m: self.placeholders.get(m.group(1), m.group(0)), text)


def never_ends(block: Block) -> list[str]:
    """The foreground kubectl commands of a block that never end on their own (a watch, a follow)."""
    found = []
    for command in block.commands:
        words = " ".join(command.words.replace("\\\n", " ").split("\n"))
        words = re.split(r"\s#", words, maxsplit=1)[0]
        for segment in re.split(r"\|\||&&|[|;]|\$\(", words):
            if not re.match(r"\s*(\S*/)?kubectl\s", segment):
                continue
            for pattern, what in FOREVER:
                if pattern.search(segment):
                    found.append(f"{block.path}:{command.line}: {what}: {command.words.strip()}")
    return found


def unsafe(block: Block) -> list[str]:
    """The commands of a block that must not run on the test machine (``UNSAFE``)."""
    found = []
    for command in block.commands:
        words = re.split(r"\s#", command.words, maxsplit=1)[0]
        for pattern, what in UNSAFE:
            if pattern.search(words):
                found.append(f"{block.path}:{command.line}: {what}: {command.words.strip()}")
    return found

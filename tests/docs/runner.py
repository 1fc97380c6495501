"""Running one shell block of the docs, and the summary of a run.

A block runs as one bash script (``errexit``, ``pipefail``) in the repository's root, after the
rewrites (tests/docs/blocks.py, ``Rewrites``). An ERR trap records the line and the command that
failed, which the report maps back to the document's line; an EXIT trap stops what the block left
running in the background (``kubectl port-forward ... &``).

``HERALD_DOCS_KEEP_GOING=1`` runs every command of a block even after one failed (no ``errexit``)
and reports each failure: what a page's owner wants when fixing it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tests.docs.blocks import ROOT, Block, Rewrites, unsafe

FAILED = "__HERALD_DOCS_FAILED__"
OUTPUT_TAIL = 3000
SYNTAX_ERROR = re.compile(r"\.sh: line (\d+): (syntax error.*)$", re.M)


def preamble(keep_going: bool) -> str:
    return (
        ("set -o pipefail\n" if keep_going else "set -o errexit -o pipefail\n")
        + "__docs_rc=0\n"
        + f"""trap 'rc=$?; __docs_rc=$rc; printf "\\n{FAILED} %s %s %s\\n" "$LINENO" "$rc" "$BASH_COMMAND" >&2' ERR\n"""
        + 'trap \'rc=$?; trap - ERR; set +e; [ "$rc" -ne 0 ] || rc=$__docs_rc; '
        + 'j=$(jobs -p); [ -z "$j" ] || kill $j 2>/dev/null; wait 2>/dev/null; exit $rc\' EXIT\n'
    )


@dataclass(frozen=True)
class Failure:
    doc_line: int  # the first line of the command in the document
    returncode: int
    run: str  # the simple command bash reported, after the rewrites


@dataclass
class BlockResult:
    block: Block
    returncode: int
    output: str
    seconds: float
    failures: list[Failure] = field(default_factory=list)
    problem: str | None = None  # why it did not run at all, timed out, or did not parse

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.problem is None and not self.failures

    def report(self) -> str:
        b = self.block
        heads = []
        if self.problem:
            heads.append(f"{b.id}: {self.problem}")
        for f in self.failures:
            command = b.command_at(f.doc_line)
            written = command.words.strip() if command else "?"
            head = f"{b.path}:{f.doc_line}: exited {f.returncode}: {written}"
            if f.run.strip() != written:
                head += f"\n  (as run: {f.run.strip()})"
            heads.append(head)
        if not heads:
            heads.append(f"{b.id}: exited {self.returncode}")
        tail = self.output[-OUTPUT_TAIL:]
        return "\n".join(heads) + f"\n--- output (last {OUTPUT_TAIL} characters) ---\n{tail}"


def run_block(
    block: Block,
    rewrites: Rewrites,
    env: dict[str, str],
    timeout: float,
    cwd: Path = ROOT,
    keep_going: bool | None = None,
) -> BlockResult:
    if keep_going is None:
        keep_going = os.environ.get("HERALD_DOCS_KEEP_GOING") == "1"
    script, where = block.script()
    refused = unsafe(block)
    if refused:
        return BlockResult(block, -1, "", 0.0, problem=f"not run, mark it illustrative: {'; '.join(refused)}")
    unknown = rewrites.unknown_placeholders(script)
    if unknown:
        known = ", ".join(f"<{k}>" for k in sorted(rewrites.placeholders))
        return BlockResult(block, -1, "", 0.0, problem=f"unknown placeholders {unknown} (known: {known})")
    head = preamble(keep_going)
    offset = head.count("\n")
    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="docs-block-", delete=False) as f:
        f.write(head + rewrites(script))
        path = f.name
    start = time.monotonic()
    proc = subprocess.Popen(
        ["bash", "--noprofile", "--norc", path],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a timeout stops everything it started
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
        problem = None
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        problem = f"did not finish within {timeout:.0f}s"
    finally:
        os.unlink(path)
    result = BlockResult(block, proc.returncode, output, time.monotonic() - start, problem=problem)

    def doc_line(script_line: int) -> int | None:
        i = script_line - offset - 1
        if not 0 <= i < len(where):
            return None
        at = block.command_at(where[i])
        return at.line if at else where[i]

    for line in output.splitlines():
        if line.startswith(FAILED + " "):
            _, lineno, rc, *command = line.split(" ")
            at = doc_line(int(lineno))
            if at is not None:
                result.failures.append(Failure(at, int(rc), " ".join(command)))
    syntax = SYNTAX_ERROR.search(output)
    if syntax and result.problem is None:
        at = doc_line(int(syntax.group(1)))
        result.problem = f"bash: {syntax.group(2)} (document line {at}): not a shell command?"
    return result


# What ran in this session, for the summary at the end (tests/docs/conftest.py prints it).
RESULTS: dict[str, BlockResult] = {}


def summary(blocks: list[Block]) -> list[str]:
    """Per file: the blocks run (passed, failed, not reached), illustrative, and local (no cluster)."""
    by_file: dict[str, list[Block]] = defaultdict(list)
    for b in blocks:
        by_file[b.path].append(b)
    lines = []
    totals: dict[str, int] = defaultdict(int)
    for path, file_blocks in by_file.items():
        runs = [b for b in file_blocks if b.runs]
        passed = [b for b in runs if b.id in RESULTS and RESULTS[b.id].ok]
        failed = [b for b in runs if b.id in RESULTS and not RESULTS[b.id].ok]
        illustrative = [b for b in file_blocks if b.kind == "illustrative"]
        local = [b for b in file_blocks if b.kind == "local"]
        totals["run"] += len(runs)
        totals["passed"] += len(passed)
        totals["failed"] += len(failed)
        totals["illustrative"] += len(illustrative)
        totals["local"] += len(local)
        not_run = len(runs) - len(passed) - len(failed)
        lines.append(
            f"{path}: {len(runs)} run ({len(passed)} passed, {len(failed)} failed"
            f"{f', {not_run} not run' if not_run else ''}), {len(illustrative)} illustrative, {len(local)} local"
        )
        for b in runs:
            if b.id in RESULTS:
                r = RESULTS[b.id]
                lines.append(f"    {'ok  ' if r.ok else 'FAIL'} line {b.line} ({r.seconds:.1f}s)")
        for b in illustrative:
            lines.append(f"    illustrative line {b.line}: {b.illustrative}")
    lines.append(
        f"total: {totals['run']} run ({totals['passed']} passed, {totals['failed']} failed), "
        f"{totals['illustrative']} illustrative, {totals['local']} local"
    )
    return lines

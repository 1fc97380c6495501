"""Docs that run: every shell block of README.md and docs/*.md that talks to a cluster runs, as
written, against one Helm install of Herald on the real node (tests/docs/conftest.py), unless the
line before it marks it ``<!-- illustrative: REASON -->``. A block that fails names the file, the
line and the command. The rules: tests/docs/blocks.py and docs/testing.md, "Docs that run".

Blocks run in document order, README.md first, then docs/*.md by name, so a block may use what an
earlier block of the same page created (api.md publishes ``launch-announcement``; the runbooks
look at it). The terminal summary lists, per file, the blocks run, illustrative and local.
"""

from __future__ import annotations

import pytest

from tests.docs.blocks import all_blocks
from tests.docs.conftest import BLOCK_TIMEOUT
from tests.docs.runner import RESULTS, run_block

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]

RUNNABLE = [b for b in all_blocks() if b.runs]


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_block_runs_as_written(docs_env, block):
    result = run_block(block, docs_env.rewrites, docs_env.env, timeout=BLOCK_TIMEOUT)
    RESULTS[block.id] = result
    assert result.ok, result.report()

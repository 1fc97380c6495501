"""helm/herald/README.md is generated from values.yaml's `# --` comments by the pinned helm-docs (`make chart-docs`);
`helm show readme` shows it."""

from __future__ import annotations

import re
import shutil
import subprocess

from tests.helm.chart import CHART, helm, helm_docs_bin
from tests.support.cluster import ROOT

README = CHART / "README.md"


def test_the_readme_is_what_helm_docs_generates(tmp_path):
    chart = tmp_path / "herald"
    shutil.copytree(CHART, chart)
    (chart / "README.md").unlink()
    proc = subprocess.run(
        [helm_docs_bin(), "--chart-search-root", str(chart)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    generated = (chart / "README.md").read_text()
    assert generated == README.read_text(), "helm/herald/README.md is stale: run `make chart-docs`"


def test_helm_docs_is_the_pinned_version():
    pinned = re.search(r"github\.com/norwoodj/helm-docs v(\S+)", (ROOT / "tests/cluster/helm-docs/go.mod").read_text())
    out = subprocess.run([helm_docs_bin(), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"helm-docs version {pinned.group(1)}"
    assert f"helm-docs v{pinned.group(1)}" in README.read_text()


def test_every_value_is_documented():
    rows = [line for line in README.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    table = [r for r in rows if not r.startswith("| Key ")]
    assert len(table) > 50, rows
    undocumented = [r.split("|")[1].strip() for r in table if not r.rstrip("|").split("|")[-1].strip()]
    assert not undocumented, f"values without a `# --` comment in values.yaml: {undocumented}"
    for key in ("crds.enabled", "crds.keep", "image.digest", "adapter.image.repository", "adapter.resources"):
        assert f"| {key} |" in README.read_text(), key


def test_helm_show_readme_shows_it():
    out = helm("show", "readme", str(CHART)).stdout
    assert out.strip() == README.read_text().strip()
    assert "## Values" in out and "| crds.keep | bool | `true` |" in out

"""The demo stays usable: after examples/demo-real.sh (what `make demo` runs) the fake Mastodon keeps
running, the command the script prints posts again, and a second run keeps what the user created.

The script ran once in the fixture (tests/docs/conftest.py, ``docs_env``), in its own namespace,
port and state directory, exactly as `make demo` runs it otherwise.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _printed_post_again(output: str) -> str:
    """The commands the script prints after "Post again": the export, the heredoc apply and the wait."""
    lines = ANSI.sub("", output).splitlines()
    start = next(i for i, line in enumerate(lines) if "Post again" in line) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("kubectl wait "))
    return "\n".join(lines[start : end + 1]) + "\n"


def _uid(docs_env, kind: str, name: str) -> str:
    ns = docs_env.demo.namespace
    return docs_env.kubectl("get", kind, name, "-n", ns, "-o", "jsonpath={.metadata.uid}").stdout


def test_the_demo_leaves_herald_and_its_fake_mastodon_running(docs_env):
    demo = docs_env.demo
    pid = demo.fake_pid()
    assert pid, f"no fake Mastodon running after the demo; its output:\n{demo.output}"
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"tests.platforms" in cmdline and str(demo.port).encode() in cmdline, cmdline
    (post,) = demo.posts()  # the demo's Publication, received by the fake that is still up
    assert post["text"].startswith("Hello from Herald"), post
    assert (demo.state / "demo-mastodon.log").read_text().startswith('{"platform": "mastodon"')
    pub = docs_env.kubectl("get", "pub", "hello-herald", "-n", demo.namespace, "-o", "jsonpath={.status.phase}")
    assert pub.stdout == "Published"


def test_the_printed_command_posts_again_and_can_be_seen(docs_env):
    demo = docs_env.demo
    commands = _printed_post_again(demo.output)
    assert f"kubectl apply -n {demo.namespace} -f - <<'EOF'" in commands, commands
    run = subprocess.run(["bash", "-euo", "pipefail"], input=commands, env=docs_env.env, capture_output=True, text=True)
    assert run.returncode == 0, f"{commands}\n{run.stdout}{run.stderr}"
    assert "publication.herald.dev/second-post condition met" in run.stdout
    texts = [p["text"] for p in demo.posts()]
    assert any(t.startswith("My second post through Herald.") for t in texts), texts
    # How to see it, as the script says: kubectl get -o wide and the kubectl plugin.
    out = ANSI.sub("", demo.output)
    wide = f"kubectl get pub -n {demo.namespace} -o wide"
    status = f"kubectl herald status second-post -n {demo.namespace}"
    assert wide in out and status in out, out
    seen = docs_env.kubectl(*wide.split()[1:]).stdout
    assert re.search(r"^second-post\s+Published\s+Published\s", seen, re.M), seen
    shown = subprocess.run(status.split(), env=docs_env.env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^mastodon\s+Published\s+1\s", shown.stdout, re.M), shown.stdout


def test_running_the_demo_again_keeps_what_the_user_created(docs_env):
    demo = docs_env.demo
    ns = demo.namespace
    docs_env.kubectl(
        "apply", "-n", ns, "-f", "-",
        input="""
apiVersion: herald.dev/v1alpha1
kind: Publication
metadata: {name: mine}
spec:
  content: {text: "Mine, kept across demo runs."}
  targets: [{adapter: mastodon}]
""",
    )  # fmt: skip
    docs_env.kubectl("create", "configmap", "my-notes", "-n", ns, "--from-literal=note=keep me")
    docs_env.kubectl("wait", "-n", ns, "--for=condition=Published", "publication/mine", "--timeout=120s")
    before = {(kind, name): _uid(docs_env, kind, name) for kind, name in [
        ("publication", "mine"), ("configmap", "my-notes"), ("publication", "hello-herald"),
        ("platformadapter", "mastodon"), ("namespace", ns),
    ]}  # fmt: skip
    pid = demo.fake_pid()
    posts = demo.posts()

    again = demo.run()
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    assert "The fake Mastodon is still running" in again.stdout, again.stdout
    after = {key: _uid(docs_env, *key) for key in before}
    assert after == before  # the same objects: nothing was deleted and created again
    assert demo.fake_pid() == pid
    assert demo.posts()[: len(posts)] == posts  # the fake kept its posts
    hello = [p for p in demo.posts() if p["text"].startswith("Hello from Herald")]
    assert len(hello) == 1, hello  # the demo's Publication was not published twice

"""The API client: credentials loaded again when the API server answers 401 (a rotated token is
picked up without a restart), transient failures of idempotent requests retried, every request
reported for metrics. A local HTTP server stands in for the API server's authentication only."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from herald.kube import ApiError, Kube


class TokenServer:
    """Accepts one bearer token at a time; can fail the next N requests with a status."""

    def __init__(self) -> None:
        self.token = "token-a"
        self.fail: list[int] = []
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/version":  # kr8s checks the server's version when it connects
                    self._send(200, {"major": "1", "minor": "34", "gitVersion": "v1.34.4"})
                    return
                outer.seen.append(self.headers.get("Authorization", ""))
                if outer.fail:
                    self._send(outer.fail.pop(0), {"kind": "Status", "reason": "ServiceUnavailable"})
                elif self.headers.get("Authorization") != f"Bearer {outer.token}":
                    self._send(401, {"kind": "Status", "reason": "Unauthorized"})
                else:
                    self._send(200, {"kind": "Namespace", "metadata": {"name": "default"}})

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()


def write_kubeconfig(path, server: str, token: str) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "t",
                "clusters": [{"name": "t", "cluster": {"server": server}}],
                "users": [{"name": "t", "user": {"token": token}}],
                "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
            }
        )
    )


@pytest.fixture
def server():
    s = TokenServer()
    yield s
    s.stop()


async def test_a_token_that_changes_is_picked_up_without_a_restart(server, tmp_path):
    config = tmp_path / "kubeconfig"
    write_kubeconfig(config, server.url, "token-a")
    seen: list[tuple[str, str]] = []
    kube = Kube(kubeconfig=str(config), on_request=lambda verb, code, *_: seen.append((verb, code)))
    try:
        assert (await kube.get("/api/v1/namespaces/default"))["metadata"]["name"] == "default"
        server.token = "token-b"  # the old token expires; the kubeconfig (or exec plugin) now gives the new one
        write_kubeconfig(config, server.url, "token-b")
        assert (await kube.get("/api/v1/namespaces/default"))["metadata"]["name"] == "default"
        assert server.seen[-2:] == ["Bearer token-a", "Bearer token-b"]
        assert seen == [("GET", "200"), ("GET", "401"), ("GET", "200")]
    finally:
        await kube.close()


async def test_transient_failures_are_retried_and_then_reported(server, tmp_path):
    config = tmp_path / "kubeconfig"
    write_kubeconfig(config, server.url, "token-a")
    kube = Kube(kubeconfig=str(config))
    try:
        server.fail = [503, 503]
        assert (await kube.get("/api/v1/namespaces/default"))["metadata"]["name"] == "default"
        server.fail = [503, 503, 503]
        with pytest.raises(ApiError) as e:
            await kube.get("/api/v1/namespaces/default")
        assert e.value.status == 503 and e.value.transient
    finally:
        await kube.close()

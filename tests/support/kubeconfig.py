"""A kubeconfig for a local stand-in server: one cluster, one user with a bearer token."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_kubeconfig(path: Path, server: str, token: str, proxy_url: str | None = None) -> None:
    cluster = {"server": server, **({"proxy-url": proxy_url} if proxy_url else {})}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "t",
                "clusters": [{"name": "t", "cluster": cluster}],
                "users": [{"name": "t", "user": {"token": token}}],
                "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
            }
        )
    )

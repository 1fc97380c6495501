"""The API calls the plugin makes, with the user's kubeconfig, returning plain JSON objects.

``Kube`` is the one place that talks to the API server; commands take any object with the same
methods, so they can be tested with an in-memory fake.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from urllib3.exceptions import HTTPError

GROUP, VERSION = "herald.dev", "v1alpha1"
PUBLICATIONS, ADAPTERS = "publications", "platformadapters"
REQUEST_TIMEOUT = 30.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class CliError(Exception):
    """An error for the user: printed as ``error: <message>``, exit code 1."""


class NotFound(CliError):
    pass


class LogsUnavailable(CliError):
    """The API server could not serve a container's log."""


class Api(Protocol):
    def get_publication(self, namespace: str, name: str) -> dict[str, Any]: ...

    def list_publications(self, namespace: str | None, selector: str | None = None) -> list[dict[str, Any]]: ...

    def patch_publication(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...

    def get_adapter(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...

    def get_node(self, name: str) -> dict[str, Any] | None: ...

    def pod_log(self, namespace: str, pod: str, container: str) -> str: ...

    def follow_pod_log(self, namespace: str, pod: str, container: str) -> Iterator[str]: ...


def _message(exc: Any) -> str:
    """The API server's Status message of an ApiException, as kubectl shows it."""
    body = getattr(exc, "body", None)
    try:
        status = json.loads(body) if body else {}
    except (TypeError, ValueError):
        status = {}
    if isinstance(status, dict) and status.get("message"):
        return f"Error from server ({status.get('reason') or exc.reason}): {status['message']}"
    return f"Error from server ({getattr(exc, 'status', '?')} {getattr(exc, 'reason', '')}): {body or ''}".strip()


@dataclass
class Kube:
    """The API server behind the user's kubeconfig (or the pod's service account, in a cluster)."""

    client: Any  # kubernetes.client.ApiClient
    namespace: str  # from -n, else the context's namespace, else "default"

    @classmethod
    def connect(cls, kubeconfig: str | None, context: str | None, namespace: str | None) -> Kube:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        configuration = client.Configuration()
        default_path = os.path.expanduser(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0])
        in_cluster = (
            not kubeconfig
            and not context
            and "KUBECONFIG" not in os.environ
            and not os.path.exists(default_path)
            and "KUBERNETES_SERVICE_HOST" in os.environ
        )
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=configuration)
                ns = namespace or _service_account_namespace()
            else:
                config.load_kube_config(
                    config_file=kubeconfig, context=context, client_configuration=configuration, persist_config=False
                )
                contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
                chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
                ns = namespace or ((chosen or {}).get("context") or {}).get("namespace") or "default"
        except (ConfigException, OSError, TypeError, ValueError) as exc:
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise CliError(f"cannot load the kubeconfig ({where}): {exc}") from None
        return cls(client.ApiClient(configuration), ns)

    # -- helpers -------------------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, what: str = "", **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            response = fn(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFound(_message(exc) if not what else f"{what} not found") from None
            raise CliError(_message(exc)) from None
        except (OSError, HTTPError) as exc:  # refused, timed out, TLS, DNS
            raise self._unreachable(exc) from None
        return json.loads(response.data) if response.data else {}

    def _unreachable(self, exc: Exception) -> CliError:
        host = getattr(getattr(self.client, "configuration", None), "host", "the API server")
        reason = getattr(exc, "reason", None) or exc
        return CliError(f"cannot reach the API server {host}: {reason}")

    def _custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.client)

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.client)

    # -- Herald objects ------------------------------------------------------------------------
    def get_publication(self, namespace: str, name: str) -> dict[str, Any]:
        api = self._custom()
        return self._call(
            api.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PUBLICATIONS,
            name,
            what=f'publications.{GROUP} "{name}" in namespace "{namespace}"',
        )

    def list_publications(self, namespace: str | None, selector: str | None = None) -> list[dict[str, Any]]:
        api = self._custom()
        kwargs = {"label_selector": selector} if selector else {}
        if namespace is None:
            listing = self._call(api.list_cluster_custom_object, GROUP, VERSION, PUBLICATIONS, **kwargs)
        else:
            listing = self._call(api.list_namespaced_custom_object, GROUP, VERSION, namespace, PUBLICATIONS, **kwargs)
        return list(listing.get("items") or [])

    def patch_publication(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        api = self._custom()
        return self._call(
            api.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PUBLICATIONS,
            name,
            patch,
            what=f'publications.{GROUP} "{name}" in namespace "{namespace}"',
            _content_type="application/merge-patch+json",
        )

    def get_adapter(self, namespace: str, name: str) -> dict[str, Any] | None:
        api = self._custom()
        try:
            return self._call(api.get_namespaced_custom_object, GROUP, VERSION, namespace, ADAPTERS, name)
        except NotFound:
            return None

    # -- Jobs, pods, logs ----------------------------------------------------------------------
    def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        from kubernetes import client

        api = client.BatchV1Api(self.client)
        return list(self._call(api.list_namespaced_job, namespace, label_selector=selector).get("items") or [])

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return list(self._call(self._core().list_namespaced_pod, namespace, label_selector=selector).get("items") or [])

    def get_node(self, name: str) -> dict[str, Any] | None:
        try:
            return self._call(self._core().read_node, name)
        except CliError:  # not found, or no permission to read nodes: only used to explain
            return None

    def pod_log(self, namespace: str, pod: str, container: str) -> str:
        from kubernetes.client.exceptions import ApiException

        try:
            response = self._core().read_namespaced_pod_log(
                pod, namespace, container=container, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            raise LogsUnavailable(_message(exc)) from None
        except (OSError, HTTPError) as exc:
            raise self._unreachable(exc) from None
        return response.data.decode("utf-8", errors="replace")

    def follow_pod_log(self, namespace: str, pod: str, container: str) -> Iterator[str]:
        """The log's lines as they are written, until the container ends."""
        from kubernetes.client.exceptions import ApiException

        try:
            response = self._core().read_namespaced_pod_log(
                pod, namespace, container=container, follow=True, _preload_content=False
            )
        except ApiException as exc:
            raise LogsUnavailable(_message(exc)) from None
        except (OSError, HTTPError) as exc:
            raise self._unreachable(exc) from None
        pending = b""
        try:
            for chunk in response.stream(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", errors="replace")
            if pending:
                yield pending.decode("utf-8", errors="replace")
        except (OSError, HTTPError) as exc:  # the stream broke off
            raise self._unreachable(exc) from None
        finally:
            response.release_conn()


def _service_account_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"

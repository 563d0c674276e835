"""The only module that talks to the Kubernetes API: reads objects as plain dicts, writes JSON patches.

Objects are read and written as the API server's JSON, not through the client's generated models: the
engine's readers (``observe.workload``) take manifests as dicts, and the models would drop fields they do not
know (a newer API server's) on a round trip.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from perfpilot.api.spec import GROUP, VERSION

FIELD_MANAGER = "perfpilot"
# Longest wait for one API call: a tick must not hang on an API server that stopped answering. Under leader
# election it is shorter still (commands/run.py): a write sent just before the renew deadline must be done before
# another replica may take over.
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API: ``/api/v1`` or ``/apis/<group>/<version>``, and its plural."""

    api_version: str
    plural: str

    @property
    def prefix(self) -> str:
        return f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"


RESOURCES: Mapping[str, Resource] = {
    "Deployment": Resource("apps/v1", "deployments"),
    "StatefulSet": Resource("apps/v1", "statefulsets"),
    "HorizontalPodAutoscaler": Resource("autoscaling/v2", "horizontalpodautoscalers"),
    "Pod": Resource("v1", "pods"),
    "ConfigMap": Resource("v1", "configmaps"),
    "Secret": Resource("v1", "secrets"),
    "Event": Resource("v1", "events"),
    "Lease": Resource("coordination.k8s.io/v1", "leases"),
    "Pooler": Resource("postgresql.cnpg.io/v1", "poolers"),
    "ScaledObject": Resource("keda.sh/v1alpha1", "scaledobjects"),
    "PerformanceProfile": Resource(f"{GROUP}/{VERSION}", "performanceprofiles"),
}


class KubeConfigError(Exception):
    """No cluster to connect to: the kubeconfig is missing or unreadable, and this is no pod."""


def connect(kubeconfig: Path | None) -> ApiClient:
    """A client for the cluster of ``kubeconfig``, else ``$KUBECONFIG``, else ``~/.kube/config``, else the
    pod's service account. The path is read here, not when the kubernetes package is imported (which reads
    ``$KUBECONFIG`` once, at import)."""
    environment = os.environ.get("KUBECONFIG", "")
    default = Path.home() / ".kube" / "config"
    path = kubeconfig or (Path(environment.split(os.pathsep)[0]) if environment else None)
    if path is None and default.is_file():
        path = default
    if path is not None and not path.is_file():
        raise KubeConfigError(f"kubeconfig {path}: no such file")
    try:
        configuration = Configuration()
        if path is not None:
            config.load_kube_config(config_file=str(path), client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        # No retries inside a call: each would get the whole timeout again, and under leader election a write
        # must end within its bound (commands/run.py). A failed call fails the write; the next tick tries again.
        configuration.retries = False
        return ApiClient(configuration)
    except (config.ConfigException, OSError, ValueError) as error:
        where = f"kubeconfig {path}" if path is not None else "in-cluster configuration"
        raise KubeConfigError(f"{where}: {error}") from error


class KubeError(Exception):
    """A call the API server refused or could not be made; ``status`` is the HTTP status (0: no answer).
    ``sent`` is False when the request is known never to have reached the server (no connection was made)."""

    def __init__(self, status: int, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.sent = sent

    @property
    def conflict(self) -> bool:
        """The object changed since it was read: the resourceVersion a write carried is no longer the object's
        (409), or one of that name was created first (409 AlreadyExists)."""
        return self.status == 409


def _path(kind: str, namespace: str | None, name: str | None = None, *, subresource: str = "") -> str:
    resource = RESOURCES[kind]
    path = resource.prefix
    if namespace is not None:
        path += f"/namespaces/{namespace}"
    path += f"/{resource.plural}"
    if name is not None:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


def _message(body: bytes | str | None, reason: object) -> str:
    """The API server's own words (a Status object's message), else the HTTP reason."""
    try:
        status = json.loads(body or "")
    except (TypeError, ValueError):
        status = None
    if isinstance(status, dict) and isinstance(status.get("message"), str):
        return str(status["message"])
    return str(reason)


class KubeApi:
    """Reads and writes through one ``kubernetes.client.ApiClient`` (its configuration: kubeconfig or the
    in-cluster service account). Blocking: the kopf handlers call it from a thread."""

    def __init__(self, client: ApiClient, *, request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self._client = client
        self._request_timeout_seconds = request_timeout_seconds

    def _call(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
              body: object = None, content_type: str | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        try:
            verb, url, sent_headers, sent_body, _ = self._client.param_serialize(
                method, path, query_params=query or [], header_params=headers, body=body,
                auth_settings=["BearerToken"])
            response = self._client.call_api(verb, url, header_params=sent_headers, body=sent_body,
                                             _request_timeout=self._request_timeout_seconds)
            data = response.read()  # type: ignore[no-untyped-call]
        except ApiException as error:
            raise KubeError(error.status or 0, f"{method} {path}: {_message(error.body, error.reason)}") from error
        except (urllib3.exceptions.HTTPError, OSError) as error:  # no answer: refused, reset, timed out
            cause = getattr(error, "reason", error)
            unsent = isinstance(cause, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError)
            raise KubeError(0, f"{method} {path}: {error}", sent=not unsent) from error
        if not 200 <= response.status <= 299:
            raise KubeError(response.status, f"{method} {path}: {_message(data, response.reason)}")
        return json.loads(data or b"null")

    def ensure_may_write(self) -> None:
        """Raises when a write may not go out now. Without leader election any may (``LeaderGuardedApi`` checks
        the Lease); a writer outside this API (pgBouncer's admin console) asks before it writes."""

    def fetch_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when there is none of that name."""
        try:
            found = self._call("GET", _path(kind, namespace, name))
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        return dict(found)

    def fetch_objects(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        """Every object of ``kind`` in ``namespace`` (None: every namespace), each with its kind and apiVersion
        (a list's items carry neither)."""
        found = self._call("GET", _path(kind, namespace))
        resource = RESOURCES[kind]
        items = found.get("items") if isinstance(found, dict) else None
        return [{**item, "kind": kind, "apiVersion": resource.api_version}
                for item in items or [] if isinstance(item, dict)]

    def apply_json_patch(self, kind: str, namespace: str, name: str, patch: list[dict[str, Any]]) -> dict[str, Any]:
        """Send an RFC 6902 patch with perfpilot's field manager; the object as written."""
        written = self._call("PATCH", _path(kind, namespace, name), query=[("fieldManager", FIELD_MANAGER)],
                             body=patch, content_type="application/json-patch+json")
        return dict(written)

    def apply_create(self, kind: str, namespace: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create an object (409 when one of that name exists)."""
        created = self._call("POST", _path(kind, namespace), query=[("fieldManager", FIELD_MANAGER)], body=obj,
                             content_type="application/json")
        return dict(created)

    def apply_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the profile's whole status (the status subresource): a field left out is gone, where a merge
        patch would keep it, and would merge a new change's values into the last one's."""
        written = self._call("PATCH", _path("PerformanceProfile", namespace, name, subresource="status"),
                             query=[("fieldManager", FIELD_MANAGER)],
                             body=[{"op": "add", "path": "/status", "value": status}],
                             content_type="application/json-patch+json")
        return dict(written)

    def apply_event(self, involved: Mapping[str, Any], *, reason: str, message: str, warning: bool,
                    now: datetime) -> None:
        """Record a core/v1 Event on ``involved`` (a profile): what ``kubectl describe`` lists."""
        metadata = involved.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "default")
        stamp = now.isoformat().replace("+00:00", "Z")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{metadata.get('name', 'profile')}.", "namespace": namespace},
            "involvedObject": {"apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
                               "name": metadata.get("name"), "namespace": namespace, "uid": metadata.get("uid")},
            "reason": reason, "message": message[:1024], "type": "Warning" if warning else "Normal",
            "source": {"component": FIELD_MANAGER}, "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }
        self._call("POST", _path("Event", namespace), body=event, content_type="application/json")

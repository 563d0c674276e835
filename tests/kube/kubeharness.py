"""A Kubernetes API for tests: kmock's in-memory emulator with the gaps that matter to perfpilot closed.

kmock 0.8 stores objects, merges writes and streams watch events; TESTING.md lists what it does not do like the
API server. `PerfpilotEmulator` closes those gaps; `emulated_cluster` serves it on a loopback port with perfpilot's
resources declared, writes a kubeconfig and hands out a configured client; the `kube` fixture wraps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import random
import re
import string
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import kmock
import kubernetes.client
import kubernetes.config
import pytest
import requests
import yaml
from kmock._internal import parsing

CRD_FILE = Path(__file__).parents[2] / "crds" / "performanceprofiles.perfpilot.io.yaml"
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
# The lists a strategic merge merges item by item, by these keys (the API's patchMergeKey); other lists are replaced.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
              "volumeMounts": "mountPath", "ports": "containerPort"}
# What a write cannot change in metadata: the server owns these.
SERVER_METADATA = {"name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion",
                   "deletionTimestamp", "managedFields"}

Key = tuple[kmock.resource, str | None, str]  # an object's resource, namespace and name, as kmock keys its objects

# (resource, kind, namespaced, has a status subresource, custom: no strategic merge)
RESOURCES = [
    ("v1/namespaces", "Namespace", False, True, False),
    ("v1/pods", "Pod", True, True, False),
    ("v1/configmaps", "ConfigMap", True, False, False),
    ("v1/secrets", "Secret", True, False, False),
    ("v1/events", "Event", True, False, False),
    ("events.k8s.io/v1/events", "Event", True, False, False),
    ("apps/v1/deployments", "Deployment", True, True, False),
    ("apps/v1/statefulsets", "StatefulSet", True, True, False),
    ("autoscaling/v2/horizontalpodautoscalers", "HorizontalPodAutoscaler", True, True, False),
    ("apiextensions.k8s.io/v1/customresourcedefinitions", "CustomResourceDefinition", False, True, False),
    ("coordination.k8s.io/v1/leases", "Lease", True, False, False),
    ("postgresql.cnpg.io/v1/poolers", "Pooler", True, True, True),
    ("keda.sh/v1alpha1/scaledobjects", "ScaledObject", True, True, True),
]


_kmock_parse_path = parsing.parse_path


def _fixed_parse_path(path: str) -> parsing.ParsedPath:
    # kmock reads /api/v1/namespaces[/NAME[/status]] as a namespace prefix (a crash, hence the 500): read it as the
    # namespaces resource. kmock's module function, as Request parsing happens before any method we could override.
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and (len(parts) <= 4 or parts[4:] in (["status"], ["finalize"])):
        return parsing.ParsedPath("", "v1", "namespaces", None, *parts[3:])
    return _kmock_parse_path(path)


parsing.parse_path = _fixed_parse_path


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(target: Any, patch: Any, merge_keys: Mapping[str, str], name: str = "") -> Any:
    """RFC 7386 merge of `patch` into `target` (null deletes, objects merge, the rest replaces); the lists named in
    `merge_keys` merge item by item by their key, as a strategic merge does."""
    key = merge_keys.get(name)
    if key and isinstance(target, list) and isinstance(patch, list):
        merged = list(target)
        for item in patch:
            same = [index for index, old in enumerate(merged) if old.get(key) == item.get(key)]
            if same:
                merged[same[0]] = merge(merged[same[0]], item, merge_keys)
            else:
                merged.append(item)
        return merged
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for field_name, value in patch.items():
        if value is None:
            result.pop(field_name, None)
        else:
            result[field_name] = merge(result.get(field_name), value, merge_keys, field_name)
    return result


PATCHES: dict[str, Callable[[dict[str, Any], Any], Any]] = {
    JSON_PATCH: jsonpatch.apply_patch,
    MERGE_PATCH: lambda obj, patch: merge(obj, patch, {}),
    STRATEGIC_MERGE_PATCH: lambda obj, patch: merge(obj, patch, MERGE_KEYS),
}


def selects(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether a label selector (`a=b`, `a==b`, `a!=b`, `a in (b,c)`, `a notin (b,c)`, `a`, `!a`) selects `labels`."""
    for term in (term.strip() for term in re.split(r",(?![^()]*\))", selector)):
        if match := re.fullmatch(r"(\S+)\s+(in|notin)\s*\((.*)\)", term):
            values = {value.strip() for value in match[3].split(",")}
            if (labels.get(match[1]) in values) != (match[2] == "in"):
                return False
        elif match := re.fullmatch(r"([^\s!=]+)\s*(==|=|!=)\s*(\S*)", term):
            if (labels.get(match[1]) == match[3]) != (match[2] != "!="):
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term and term not in labels:
            return False
    return True


def _error(request: kmock.Request, code: int, reason: str, message: str) -> kmock.KubernetesError:
    # A Status the way the API server words it (kmock's reasons are its own, e.g. "Object Not Found").
    details = {"name": request.name, "group": request.resource and request.resource.group,
               "kind": request.resource and request.resource.plural}
    return kmock.KubernetesError(status=code, reason=reason, message=message, details=details)


@attrs.define(kw_only=True)
class PerfpilotEmulator(kmock.KubernetesEmulator):
    """kmock's emulator, its object handling replaced by one that writes like the API server.

    Writes run synchronously on the server's loop (no await between reading and storing), so they need no lock.
    They are kmock fallbacks, so a reaction added to the emulator answers first and nothing is written, e.g.
    ``emulator["patch", kmock.resource("apps/v1/deployments")] << 503``.
    """

    _resource_version: int = 0  # one global counter, bumped by every write, as etcd's revision
    _events: list[tuple[Key, dict[str, Any]]] = attrs.field(factory=list)  # all, for watches from a version
    _changed: asyncio.Event = attrs.field(factory=asyncio.Event)  # set, then replaced, on every event
    _custom: set[kmock.resource] = attrs.field(factory=set)  # custom resources: the API refuses strategic merges
    _watching: bool = True  # cleared at shutdown: the server waits for open handlers, so watches must end first

    def __attrs_post_init__(self) -> None:
        kmock.KubernetesScaffold.__attrs_post_init__(self)  # discovery and errors; not the emulator's object fallbacks
        # The kubernetes client asks for /api/v1/ and /apis/GROUP/VERSION/, with a slash kmock's discovery misses.
        self.fallback["get", re.compile(r"/api/[^/]+/|/apis/[^/]+/[^/]+/")] << self._serve_version
        self.fallback[kmock.action.LIST] << self._list
        # Watches are JSON lines like the API server's (kmock sends application/octet-stream).
        self.fallback[kmock.action.WATCH] << {"Content-Type": "application/json"} << self._watch
        self.fallback[kmock.action.FETCH] << self._fetch
        self.fallback[kmock.action.CREATE] << 201 << self._create
        self.fallback[kmock.action.UPDATE] << self._patch
        self.fallback[kmock.method.PUT] << self._put  # kmock has no PUT at all
        self.fallback[kmock.action.DELETE] << self._delete

    def declare(self, resource: str, kind: str, *, namespaced: bool, status: bool, custom: bool) -> None:
        self.resources[resource] = kmock.ResourceInfo(kind=kind, singular=kind.lower(), namespaced=namespaced,
                                                      verbs=VERBS, subresources={"status"} if status else set())
        if custom:
            self._custom.add(kmock.resource(resource))

    def declare_crd(self, crd: Mapping[str, Any]) -> None:
        spec, names = crd["spec"], crd["spec"]["names"]
        for version in spec["versions"]:
            self.declare(f"{spec['group']}/{version['name']}/{names['plural']}", names["kind"],
                         namespaced=spec["scope"] == "Namespaced", status="status" in version.get("subresources", {}),
                         custom=True)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # Past the emulator's own _handle, which stores every write as a JSON merge before any reaction runs.
        return await kmock.RawHandler._handle(self, request)

    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        payload = cast(dict[str, Any], await super()._serve_version(request))
        return {**payload, "groupVersion": payload["groupVersion"].lstrip("/")}  # the core group is "v1", not "/v1"

    def _resource(self, request: kmock.Request) -> tuple[kmock.resource, kmock.ResourceInfo]:
        if request.resource is None or request.resource not in self.resources:
            raise _error(request, 404, "NotFound", "the server could not find the requested resource")
        return request.resource, self.resources[request.resource]

    def _current(self, request: kmock.Request) -> tuple[Key, dict[str, Any]]:
        key = (self._resource(request)[0], request.namespace, request.name or "")
        if key not in self.objects or self.objects[key].deleted:
            raise _error(request, 404, "NotFound", f'{_what(request)} "{request.name}" not found')
        return key, self.objects[key].raw

    def _selected(self, request: kmock.Request, obj: Mapping[str, Any]) -> bool:
        # The namespace asked for, and the labelSelector, on lists and watches alike (kmock ignores selectors).
        metadata = obj["metadata"]
        return request.namespace in (None, metadata.get("namespace")) and selects(
            request.params.get("labelSelector", ""), metadata.get("labels") or {})

    def _store(self, request: kmock.Request, key: Key, obj: dict[str, Any], event: str) -> dict[str, Any]:
        self._resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self._resource_version)
        if manager := request.params.get("fieldManager"):
            # Recorded as {manager, operation: Update} without the field sets: enough to tell who wrote last.
            others = [entry for entry in obj["metadata"].get("managedFields", []) if entry["manager"] != manager]
            obj["metadata"]["managedFields"] = [*others, {"manager": manager, "operation": "Update",
                                                          "apiVersion": obj.get("apiVersion"), "time": _now()}]
        if key in self.objects:
            self.objects[key].history.append(obj)
        else:
            self.objects[key] = obj
        if event == "DELETED":
            self.objects[key].delete()
        # Every write is one event, so the event of resourceVersion N is self._events[N - 1].
        self._events.append((key, {"type": event, "object": obj}))
        self._changed.set()
        self._changed = asyncio.Event()
        return obj

    def _list(self, request: kmock.Request) -> dict[str, Any]:
        resource, info = self._resource(request)
        items = sorted((obj.raw for (stored, _, _), obj in self.objects.items()
                        if stored == resource and not obj.deleted and self._selected(request, obj.raw)),
                       key=lambda obj: (obj["metadata"].get("namespace") or "", obj["metadata"]["name"]))
        if resource not in self._custom:  # the items of a built-in kind's list carry no kind and apiVersion
            items = [{name: value for name, value in item.items() if name not in ("kind", "apiVersion")}
                     for item in items]
        # A list names its kind and the version to watch from (kmock's has neither).
        return {"apiVersion": _api_version(resource),
                "kind": f"{info.kind}List", "metadata": {"resourceVersion": str(self._resource_version)},
                "items": items}

    async def _watch(self, request: kmock.Request) -> AsyncIterator[bytes | dict[str, Any]]:
        resource, _ = self._resource(request)
        since = request.params.get("resourceVersion", "")
        if since in ("", "0"):  # from now on, after the current objects as ADDED events
            backlog = [{"type": "ADDED", "object": obj} for obj in self._list(request)["items"]]
            position = len(self._events)
        else:  # only what came after that version (kmock replays every object as ADDED)
            backlog, position = [], int(since)
        yield b""  # the headers now: a quiet watch must still answer
        for event in backlog:
            yield event
        loop = asyncio.get_running_loop()
        timeout = request.params.get("timeoutSeconds")
        deadline = loop.time() + float(timeout) if timeout else None
        while self._watching:
            batch, position, changed = self._events[position:], len(self._events), self._changed
            for key, event in batch:
                if key[0] == resource and self._selected(request, event["object"]):
                    yield event
            if not batch:
                try:
                    await asyncio.wait_for(changed.wait(), None if deadline is None else deadline - loop.time())
                except TimeoutError:
                    return  # timeoutSeconds ends the watch, as on the API server

    def end_watches(self) -> None:
        """End the open watches now (and any later one at once)."""
        self._watching = False
        self._changed.set()

    def _fetch(self, request: kmock.Request) -> dict[str, Any]:
        return self._current(request)[1]

    def _create(self, request: kmock.Request) -> dict[str, Any]:
        resource, info = self._resource(request)
        obj = copy.deepcopy(request.data)
        metadata = obj.setdefault("metadata", {})
        if not metadata.get("name") and metadata.get("generateName"):  # kopf names its events so
            metadata["name"] = metadata["generateName"] + "".join(random.choices(string.ascii_lowercase, k=5))
        if not metadata.get("name"):
            raise _error(request, 422, "Invalid", "name or generateName is required")
        if request.namespace:
            metadata["namespace"] = request.namespace
        obj.update(apiVersion=_api_version(resource), kind=info.kind)  # filled in, even if the body has none
        key = (resource, request.namespace, metadata["name"])
        if key in self.objects and not self.objects[key].deleted:
            raise _error(request, 409, "AlreadyExists", f'{_what(request)} "{metadata["name"]}" already exists')
        if "status" in info.subresources:
            obj.pop("status", None)  # the API server takes a status only through /status
        metadata.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)  # kmock sets none of them
        return self._store(request, key, obj, "ADDED")

    def _patch(self, request: kmock.Request) -> dict[str, Any]:
        key, old = self._current(request)
        # The patch the Content-Type names (kmock merges every body, so a strategic merge replaced container lists).
        content_type = next((value for name, value in request.headers.items() if name.lower() == "content-type"), "")
        content_type = content_type.partition(";")[0].strip()
        patcher = PATCHES.get(content_type)
        if patcher is None or (content_type == STRATEGIC_MERGE_PATCH and key[0] in self._custom):
            raise _error(request, 415, "UnsupportedMediaType", f"{content_type!r} is not a patch this resource takes")
        try:
            new = patcher(old, request.data)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
            # A failed "test" or an operation that does not apply: the API server changes nothing and says 422.
            # The API server's words carry no detail of which operation failed (NewGenericServerResponse).
            raise _error(request, 422, "Invalid", "the server rejected our request due to an error in our request") \
                from error
        return self._update(request, key, old, new)

    def _put(self, request: kmock.Request) -> dict[str, Any]:
        key, old = self._current(request)
        return self._update(request, key, old, request.data)

    def _update(self, request: kmock.Request, key: Key, old: dict[str, Any], new: Any) -> dict[str, Any]:
        if not isinstance(new, dict):
            raise _error(request, 422, "Invalid", "the object is not a JSON object")
        version = old["metadata"]["resourceVersion"]
        if ((new.get("metadata") or {}).get("resourceVersion") or version) != version:  # the optimistic lock
            raise _error(request, 409, "Conflict", f'Operation cannot be fulfilled on {_what(request)} '
                         f'"{request.name}": the object has been modified; please apply your changes to the latest'
                         " version and try again")
        has_status = "status" in self._resource(request)[1].subresources
        if request.subresource not in (None, "status") or (request.subresource and not has_status):
            raise _error(request, 404, "NotFound", "the server could not find the requested resource")
        if request.subresource == "status":
            new = _with_status(old, new)  # a write to /status changes only .status,
        elif has_status:
            new = _with_status(new, old)  # and a write to the object anything but .status
        new = copy.deepcopy(new)
        new["metadata"] = ({name: value for name, value in (new.get("metadata") or {}).items()
                            if name not in SERVER_METADATA}
                           | {name: value for name, value in old["metadata"].items() if name in SERVER_METADATA})
        if new == old:
            return old  # a write that changes nothing bumps no version and sends no event
        # generation counts the changes of the spec: of all but metadata (and status, with a status subresource).
        unversioned = {"metadata", "status"} if has_status else {"metadata"}
        if any(new.get(name) != old.get(name) for name in (new.keys() | old.keys()) - unversioned):
            new["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            return self._store(request, key, new, "DELETED")  # the last finalizer of a deleted object is gone
        return self._store(request, key, new, "MODIFIED")

    def _delete(self, request: kmock.Request) -> dict[str, Any]:
        key, old = self._current(request)
        if not old["metadata"].get("finalizers"):
            return self._store(request, key, copy.deepcopy(old), "DELETED")
        if old["metadata"].get("deletionTimestamp"):
            return old
        new = copy.deepcopy(old)
        new["metadata"]["deletionTimestamp"] = _now()  # finalizers hold it until the last of them is removed
        return self._store(request, key, new, "MODIFIED")


def _api_version(resource: kmock.resource) -> str:
    return f"{resource.group}/{resource.version}".lstrip("/")


def _what(request: kmock.Request) -> str:
    """The resource as the API server's messages name it: deployments.apps, pods."""
    assert request.resource is not None
    return f"{request.resource.plural}.{request.resource.group}".rstrip(".")


def _with_status(obj: Mapping[str, Any], status_from: Mapping[str, Any]) -> dict[str, Any]:
    result = {name: value for name, value in obj.items() if name != "status"}
    if "status" in status_from:
        result["status"] = status_from["status"]
    return result


def _json(response: requests.Response) -> dict[str, Any]:
    if not response.ok:
        raise requests.HTTPError(f"{response.status_code} from {response.request.method} {response.url}: "
                                 f"{response.text}", response=response)
    return cast(dict[str, Any], response.json())


@dataclass
class EmulatedCluster:
    """What a test gets: the emulator's base URL, a kubeconfig pointing at it, a client built from that kubeconfig."""

    url: str
    kubeconfig: Path
    api: kubernetes.client.ApiClient
    # Runs on its own thread's loop: read its objects between requests; add kmock reactions to inject faults.
    emulator: PerfpilotEmulator
    http: requests.Session = field(default_factory=requests.Session)

    def path(self, api_version: str, kind: str, namespace: str | None = None, name: str | None = None) -> str:
        """The URL path of a collection (no name) or of one object, e.g. /apis/apps/v1/namespaces/ns/deployments/web."""
        group, _, version = api_version.rpartition("/")
        kinds = {(res.group, res.version, self.emulator.resources[res].kind): res for res in self.emulator.resources}
        resource = kinds[group, version, kind]
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        return "/".join([prefix, *(["namespaces", namespace] if namespace else []), str(resource.plural),
                         *([name] if name else [])])

    def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                params: Mapping[str, str] | None = None) -> requests.Response:
        """Plain HTTP, for what the kubernetes client cannot express."""
        return self.http.request(method, self.url + path, json=body, params=params, timeout=5,
                                 headers={"Content-Type": content_type})

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create `obj` (apiVersion, kind, metadata.name and, if namespaced, metadata.namespace) through the API and
        return it as stored. Its .status, which the API server ignores on create, is written through /status."""
        collection = self.path(obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace"))
        created = _json(self.request("POST", collection, obj))
        if "status" in obj and "status" not in created:
            created = _json(self.request("PATCH", f"{collection}/{created['metadata']['name']}/status",
                                         {"status": obj["status"]}, content_type=MERGE_PATCH))
        return created

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The object as currently stored; requests.HTTPError if there is none."""
        return _json(self.request("GET", self.path(api_version, kind, namespace, name)))


@contextlib.contextmanager
def emulated_cluster(directory: Path) -> Iterator[EmulatedCluster]:
    """Serve a PerfpilotEmulator on a loopback port with perfpilot's resources declared and its CRD stored.

    It runs on an event loop in a thread of its own, so that synchronous clients, kopf's runner thread and the test
    can all call it. The kubeconfig is written into `directory`.
    """
    crd = next(doc for doc in yaml.safe_load_all(CRD_FILE.read_text()) if doc)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="kube-emulator", daemon=True)
    thread.start()
    stack = contextlib.AsyncExitStack()

    async def start() -> tuple[PerfpilotEmulator, kmock.Server]:
        emulator = await stack.enter_async_context(PerfpilotEmulator())
        for resource, kind, namespaced, status, custom in RESOURCES:
            emulator.declare(resource, kind, namespaced=namespaced, status=status, custom=custom)
        emulator.declare_crd(crd)
        server = await stack.enter_async_context(kmock.Server(emulator))
        stack.callback(emulator.end_watches)  # before the server stops, which waits for the open watches
        return emulator, server

    try:
        emulator, server = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
        url = str(server.url).rstrip("/")
        kubeconfig = directory / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": url}}],
            "users": [{"name": "emulator", "user": {}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator"}}],
        }))
        cluster = EmulatedCluster(url, kubeconfig, kubernetes.config.new_client_from_config(str(kubeconfig)), emulator)
        try:
            cluster.create(crd)
            yield cluster
        finally:
            cluster.api.close()
            cluster.http.close()
    finally:
        asyncio.run_coroutine_threadsafe(stack.aclose(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[EmulatedCluster]:
    """A fresh emulated API server for one test (see emulated_cluster)."""
    with emulated_cluster(tmp_path) as cluster:
        yield cluster

"""The emulated Kubernetes API behaves like the API server where kmock alone does not (TESTING.md lists the gaps).

Driven through the `kubernetes` client, as the operator will drive it, and through plain HTTP where the client cannot
say it. Each test fails when the harness's fix for the behaviour it names is undone (tried one by one).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
import kopf.testing
import pytest
from kubeharness import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, EmulatedCluster
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

NAMESPACE = "shop"
READY = {"replicas": 2, "readyReplicas": 2}


def deployment(name: str = "web", status: dict[str, Any] | None = None, **labels: str) -> dict[str, Any]:
    """A Deployment the kubernetes client's models accept: two containers, the first with requests."""
    return {**({"status": status} if status else {}),
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [
                    {"name": "app", "image": "shop/web:1.4",
                     "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}},
                    {"name": "proxy", "image": "envoy:1.30"},
                ]},
            },
        },
    }


def profile(name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "mode": "Recommend",
                 "metrics": {"matchers": {"service": "web", "team": "shop"}}},
    }


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"containers": [{"name": "app", "image": "shop/web:1.4"}]}}


def rejection(call: Callable[[], object]) -> tuple[int, dict[str, Any]]:
    """The status code and the Status body of a call the API refuses."""
    with pytest.raises(ApiException) as refused:
        call()
    return refused.value.status, json.loads(refused.value.body)


@pytest.fixture
def apps(kube: EmulatedCluster) -> client.AppsV1Api:
    return client.AppsV1Api(kube.api)


@pytest.fixture
def core(kube: EmulatedCluster) -> client.CoreV1Api:
    return client.CoreV1Api(kube.api)


@pytest.fixture
def custom(kube: EmulatedCluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api)


def test_every_write_bumps_the_resource_version_and_keeps_uid_and_creation_time(
        kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    created = kube.create(deployment())
    patched = apps.patch_namespaced_deployment("web", NAMESPACE, {"spec": {"replicas": 3}})
    assert created["metadata"]["uid"] and created["metadata"]["creationTimestamp"]
    assert int(patched.metadata.resource_version) > int(created["metadata"]["resourceVersion"])
    assert patched.metadata.uid == created["metadata"]["uid"]
    assert f"{patched.metadata.creation_timestamp:%Y-%m-%dT%H:%M:%SZ}" == created["metadata"]["creationTimestamp"]
    other = kube.create(deployment("api"))
    assert int(other["metadata"]["resourceVersion"]) > int(patched.metadata.resource_version)  # one global counter
    assert other["metadata"]["uid"] != created["metadata"]["uid"]


def test_a_write_that_changes_nothing_keeps_the_resource_version(kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    created = kube.create(deployment())
    same = apps.patch_namespaced_deployment("web", NAMESPACE, {"spec": {"replicas": 2}})
    assert same.metadata.resource_version == created["metadata"]["resourceVersion"]


def test_a_write_with_a_stale_resource_version_conflicts_and_changes_nothing(
        kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    kube.create(deployment())
    stale = apps.read_namespaced_deployment("web", NAMESPACE)
    apps.patch_namespaced_deployment("web", NAMESPACE, {"spec": {"replicas": 3}})
    stale.spec.replicas = 5
    code, status = rejection(lambda: apps.replace_namespaced_deployment("web", NAMESPACE, stale))
    assert (code, status["kind"], status["reason"]) == (409, "Status", "Conflict")
    code, _ = rejection(lambda: apps.patch_namespaced_deployment(
        "web", NAMESPACE, {"metadata": {"resourceVersion": stale.metadata.resource_version}, "spec": {"replicas": 5}}))
    assert code == 409
    assert kube.get("apps/v1", "Deployment", "web", NAMESPACE)["spec"]["replicas"] == 3


def test_put_replaces_the_whole_object(kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    kube.create(deployment(tier="front"))
    current = apps.read_namespaced_deployment("web", NAMESPACE)
    current.metadata.labels = {"owner": "shop"}
    replaced = apps.replace_namespaced_deployment("web", NAMESPACE, current)
    assert replaced.metadata.labels == {"owner": "shop"}
    assert kube.get("apps/v1", "Deployment", "web", NAMESPACE)["metadata"]["labels"] == {"owner": "shop"}


def test_generation_counts_spec_changes_only(kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    assert kube.create(deployment())["metadata"]["generation"] == 1
    apps.patch_namespaced_deployment("web", NAMESPACE, {"metadata": {"labels": {"tier": "front"}}})
    apps.patch_namespaced_deployment_status("web", NAMESPACE, {"status": {"readyReplicas": 1}})
    assert kube.get("apps/v1", "Deployment", "web", NAMESPACE)["metadata"]["generation"] == 1
    apps.patch_namespaced_deployment("web", NAMESPACE, {"spec": {"replicas": 4}})
    assert kube.get("apps/v1", "Deployment", "web", NAMESPACE)["metadata"]["generation"] == 2


def test_json_patch_with_a_failing_test_answers_422_and_changes_nothing(
        kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    stale = kube.create(deployment())["metadata"]["resourceVersion"]
    apps.patch_namespaced_deployment("web", NAMESPACE, {"spec": {"replicas": 3}})
    before = kube.get("apps/v1", "Deployment", "web", NAMESPACE)
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": stale},
           {"op": "replace", "path": "/spec/replicas", "value": 7}]
    code, status = rejection(lambda: apps.patch_namespaced_deployment("web", NAMESPACE, ops))
    assert (code, status["reason"]) == (422, "Invalid")
    assert kube.get("apps/v1", "Deployment", "web", NAMESPACE) == before


def test_json_patch_that_does_not_apply_answers_422_and_changes_nothing(
        kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    before = kube.create(deployment())
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 7}, {"op": "remove", "path": "/spec/paused"}]
    code, _ = rejection(lambda: apps.patch_namespaced_deployment("web", NAMESPACE, ops))
    assert code == 422
    assert kube.get("apps/v1", "Deployment", "web", NAMESPACE) == before


def test_json_patch_whose_test_passes_applies(kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    version = kube.create(deployment())["metadata"]["resourceVersion"]
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": version},
           {"op": "replace", "path": "/spec/replicas", "value": 7}]
    assert apps.patch_namespaced_deployment("web", NAMESPACE, ops).spec.replicas == 7


def test_strategic_merge_of_one_containers_resources_keeps_the_other_containers_and_images(
        kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    kube.create(deployment())
    # A dict body: the kubernetes client sends it as a strategic merge patch to the built-in APIs.
    apps.patch_namespaced_deployment("web", NAMESPACE, {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "resources": {"requests": {"cpu": "500m"}}}]}}}})
    assert kube.emulator[-1].headers["Content-Type"] == STRATEGIC_MERGE_PATCH
    containers = kube.get("apps/v1", "Deployment", "web", NAMESPACE)["spec"]["template"]["spec"]["containers"]
    assert containers == [
        {"name": "app", "image": "shop/web:1.4", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}},
        {"name": "proxy", "image": "envoy:1.30"},
    ]


def test_strategic_merge_adds_a_container_it_does_not_name_yet(kube: EmulatedCluster) -> None:
    path = kube.path("apps/v1", "Deployment", NAMESPACE, "web")
    kube.create(deployment())
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "exporter", "image": "exporter:2"}]}}}}
    assert kube.request("PATCH", path, patch, content_type=STRATEGIC_MERGE_PATCH).ok
    containers = kube.get("apps/v1", "Deployment", "web", NAMESPACE)["spec"]["template"]["spec"]["containers"]
    assert [container["name"] for container in containers] == ["app", "proxy", "exporter"]


def test_merge_patch_replaces_lists_whole_and_deletes_nulls(kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    kube.create(deployment(tier="front", team="shop"))
    apps.patch_namespaced_deployment("web", NAMESPACE, _content_type=MERGE_PATCH, body={
        "metadata": {"labels": {"tier": None}},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop/web:1.5"}]}}}})
    stored = kube.get("apps/v1", "Deployment", "web", NAMESPACE)
    assert stored["metadata"]["labels"] == {"team": "shop"}
    assert stored["spec"]["template"]["spec"]["containers"] == [{"name": "app", "image": "shop/web:1.5"}]


def test_merge_patch_of_a_custom_resource_merges_its_maps(
        kube: EmulatedCluster, custom: client.CustomObjectsApi) -> None:
    kube.create(profile())
    custom.patch_namespaced_custom_object("perfpilot.io", "v1alpha1", NAMESPACE, "performanceprofiles", "web",
                                          {"spec": {"metrics": {"matchers": {"team": None, "env": "prod"}}}})
    stored = kube.get("perfpilot.io/v1alpha1", "PerformanceProfile", "web", NAMESPACE)
    assert stored["spec"]["metrics"]["matchers"] == {"service": "web", "env": "prod"}
    assert stored["spec"]["mode"] == "Recommend"


def test_strategic_merge_of_a_custom_resource_is_refused_with_415(kube: EmulatedCluster) -> None:
    kube.create(profile())
    path = kube.path("perfpilot.io/v1alpha1", "PerformanceProfile", NAMESPACE, "web")
    response = kube.request("PATCH", path, {"spec": {"mode": "Auto"}}, content_type=STRATEGIC_MERGE_PATCH)
    assert (response.status_code, response.json()["reason"]) == (415, "UnsupportedMediaType")


def test_a_patch_of_the_status_subresource_changes_only_the_status(
        kube: EmulatedCluster, apps: client.AppsV1Api, custom: client.CustomObjectsApi) -> None:
    kube.create(deployment(status=READY))
    apps.patch_namespaced_deployment_status("web", NAMESPACE, {"spec": {"replicas": 9},
                                                               "status": {"readyReplicas": 1}})
    stored = kube.get("apps/v1", "Deployment", "web", NAMESPACE)
    assert (stored["spec"]["replicas"], stored["status"]) == (2, {**READY, "readyReplicas": 1})
    current = apps.read_namespaced_deployment("web", NAMESPACE)
    current.spec.replicas, current.status.ready_replicas = 9, 2
    apps.replace_namespaced_deployment_status("web", NAMESPACE, current)
    stored = kube.get("apps/v1", "Deployment", "web", NAMESPACE)
    assert (stored["spec"]["replicas"], stored["status"]) == (2, READY)
    kube.create(profile())
    custom.patch_namespaced_custom_object_status("perfpilot.io", "v1alpha1", NAMESPACE, "performanceprofiles", "web",
                                                 {"spec": {"mode": "Auto"}, "status": {"phase": "Observing"}})
    stored = kube.get("perfpilot.io/v1alpha1", "PerformanceProfile", "web", NAMESPACE)
    assert (stored["spec"]["mode"], stored["status"]) == ("Recommend", {"phase": "Observing"})


def test_writes_to_the_object_leave_its_status_alone(kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    kube.create(deployment(status=READY))
    apps.patch_namespaced_deployment("web", NAMESPACE, {"spec": {"replicas": 3}, "status": {"readyReplicas": 0}})
    current = apps.read_namespaced_deployment("web", NAMESPACE)
    current.status.replicas = 7
    apps.replace_namespaced_deployment("web", NAMESPACE, current)
    stored = kube.get("apps/v1", "Deployment", "web", NAMESPACE)
    assert (stored["spec"]["replicas"], stored["status"]) == (3, READY)


def test_a_created_objects_status_is_written_through_the_status_subresource(kube: EmulatedCluster) -> None:
    created = kube.create(deployment(status=READY))
    assert created["status"] == READY
    posted = kube.request("POST", kube.path("apps/v1", "Deployment", NAMESPACE), deployment("api", READY)).json()
    assert "status" not in posted  # the API server drops a status sent on create


@pytest.mark.parametrize(("selector", "names"), [
    ("app=web", ["web-1", "web-2"]),
    ("app==web,tier=front", ["web-1"]),
    ("app!=web", ["api-1", "bare"]),
    ("tier in (front, back)", ["api-1", "web-1"]),
    ("tier notin (front)", ["api-1", "bare", "web-2"]),
    ("canary", ["web-2"]),
    ("!canary,app", ["api-1", "web-1"]),
    ("app in (web),!tier", ["web-2"]),
])
def test_label_selectors_select_like_the_api_server(
        kube: EmulatedCluster, core: client.CoreV1Api, selector: str, names: list[str]) -> None:
    kube.create(pod("web-1", app="web", tier="front"))
    kube.create(pod("web-2", app="web", canary="true"))
    kube.create(pod("api-1", app="api", tier="back"))
    kube.create(pod("bare"))
    listed = core.list_namespaced_pod(NAMESPACE, label_selector=selector)
    assert [item.metadata.name for item in listed.items] == names


def test_lists_carry_their_kind_api_version_and_resource_version(kube: EmulatedCluster) -> None:
    kube.create(deployment())
    kube.create(pod("web-1"))
    last = kube.create(profile())
    kinds = [("apps/v1", "Deployment"), ("v1", "Pod"), ("perfpilot.io/v1alpha1", "PerformanceProfile")]
    for api_version, kind in kinds:
        listed = kube.request("GET", kube.path(api_version, kind, NAMESPACE)).json()
        assert (listed["apiVersion"], listed["kind"]) == (api_version, f"{kind}List")
        assert listed["metadata"]["resourceVersion"] == last["metadata"]["resourceVersion"]


def test_list_items_carry_a_kind_only_for_custom_resources(kube: EmulatedCluster) -> None:
    kube.create(deployment())
    kube.create(profile())
    [deployment_item] = kube.request("GET", kube.path("apps/v1", "Deployment", NAMESPACE)).json()["items"]
    [profile_item] = kube.request("GET", kube.path("perfpilot.io/v1alpha1", "PerformanceProfile")).json()["items"]
    assert "kind" not in deployment_item and "apiVersion" not in deployment_item
    assert (profile_item["apiVersion"], profile_item["kind"]) == ("perfpilot.io/v1alpha1", "PerformanceProfile")


def test_a_created_object_gets_its_kind_even_if_the_body_has_none(kube: EmulatedCluster) -> None:
    response = kube.request("POST", kube.path("v1", "ConfigMap", NAMESPACE), {"metadata": {"name": "pool"}})
    assert response.status_code == 201
    assert kube.get("v1", "ConfigMap", "pool", NAMESPACE)["kind"] == "ConfigMap"


def test_namespaces_are_listed_and_read(kube: EmulatedCluster, core: client.CoreV1Api) -> None:
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    assert [item.metadata.name for item in core.list_namespace().items] == [NAMESPACE]
    assert core.read_namespace(NAMESPACE).metadata.uid


@pytest.mark.parametrize(("api_version", "kind"), [
    ("v1", "Namespace"), ("v1", "Pod"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Event"),
    ("events.k8s.io/v1", "Event"), ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"), ("perfpilot.io/v1alpha1", "PerformanceProfile"),
    ("postgresql.cnpg.io/v1", "Pooler"), ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
])
def test_the_resources_perfpilot_uses_are_served(kube: EmulatedCluster, api_version: str, kind: str) -> None:
    group_version = kube.request("GET", f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}")
    assert kind in [resource["kind"] for resource in group_version.json()["resources"]]
    namespace = None if kind in ("Namespace", "CustomResourceDefinition") else NAMESPACE
    assert kube.request("GET", kube.path(api_version, kind, namespace)).json()["kind"] == f"{kind}List"


def test_the_crd_is_served_as_an_object(kube: EmulatedCluster) -> None:
    crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "performanceprofiles.perfpilot.io")
    assert crd["spec"]["names"]["kind"] == "PerformanceProfile"


def test_core_discovery_names_the_group_version_v1(core: client.CoreV1Api) -> None:
    assert core.get_api_resources().group_version == "v1"


def test_a_missing_object_answers_a_not_found_status(kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    code, status = rejection(lambda: apps.read_namespaced_deployment("nope", NAMESPACE))
    assert code == 404
    assert {key: status[key] for key in ("kind", "apiVersion", "status", "reason", "code")} == {
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
    assert status["message"] == 'deployments.apps "nope" not found'


def test_a_watch_from_a_resource_version_sees_only_later_events(kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    kube.create(deployment("web"))
    since = kube.create(deployment("api"))["metadata"]["resourceVersion"]
    apps.patch_namespaced_deployment("web", NAMESPACE, {"spec": {"replicas": 5}})
    kube.create(deployment("db"))
    events = watch.Watch().stream(apps.list_namespaced_deployment, NAMESPACE, resource_version=since,
                                  timeout_seconds=1)
    seen = [(event["type"], event["object"].metadata.name, event["object"].spec.replicas) for event in events]
    assert seen == [("MODIFIED", "web", 5), ("ADDED", "db", 2)]


def test_a_watch_without_a_version_starts_with_the_current_objects_and_follows(
        kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    kube.create(deployment("web", tier="front"))
    kube.create(deployment("api"))
    seen: list[tuple[str, str]] = []
    watching = watch.Watch()
    for event in watching.stream(apps.list_namespaced_deployment, NAMESPACE, label_selector="tier=front",
                                 timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 1:
            kube.create(deployment("db", tier="front"))
            kube.create(deployment("cache"))  # not selected: would come before the deletion
            apps.delete_namespaced_deployment("web", NAMESPACE)
        if len(seen) == 3:
            watching.stop()
    assert seen == [("ADDED", "web"), ("ADDED", "db"), ("DELETED", "web")]


def test_watches_are_json_lines(kube: EmulatedCluster) -> None:
    kube.create(deployment())
    url = kube.url + kube.path("apps/v1", "Deployment", NAMESPACE)
    with kube.http.get(url, params={"watch": "true"}, stream=True, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        first = json.loads(next(line for line in response.iter_lines() if line))
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "web")


def test_a_field_manager_is_recorded(kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    kube.create(deployment())
    patched = apps.patch_namespaced_deployment("web", NAMESPACE, {"spec": {"replicas": 3}}, field_manager="perfpilot")
    assert [(entry.manager, entry.operation) for entry in patched.metadata.managed_fields] == [("perfpilot", "Update")]


def test_a_generated_name_is_given(kube: EmulatedCluster) -> None:
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "kopf-event-", "namespace": NAMESPACE},
             "reason": "Logging", "message": "Handled."}
    first, second = kube.create(event), kube.create(event)
    assert first["metadata"]["name"].startswith("kopf-event-")
    assert first["metadata"]["name"] != second["metadata"]["name"]


def test_finalizers_hold_a_deleted_object_until_the_last_is_removed(
        kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    held = deployment()
    held["metadata"]["finalizers"] = ["perfpilot.io/restore"]
    kube.create(held)
    apps.delete_namespaced_deployment("web", NAMESPACE)
    assert kube.get("apps/v1", "Deployment", "web", NAMESPACE)["metadata"]["deletionTimestamp"]
    apps.patch_namespaced_deployment("web", NAMESPACE, {"metadata": {"finalizers": None}}, _content_type=MERGE_PATCH)
    code, _ = rejection(lambda: apps.read_namespaced_deployment("web", NAMESPACE))
    assert code == 404


def test_json_patch_content_type_is_taken_for_a_list_body(kube: EmulatedCluster, apps: client.AppsV1Api) -> None:
    kube.create(deployment())
    apps.patch_namespaced_deployment("web", NAMESPACE, [{"op": "replace", "path": "/spec/replicas", "value": 4}])
    assert kube.emulator[-1].headers["Content-Type"] == JSON_PATCH


OPERATOR = '''
import os

import kopf
import kubernetes

objects = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(os.environ["KUBECONFIG"]))


@kopf.on.login()
def login(**kwargs):
    return kopf.login_with_kubeconfig(**kwargs)  # reads $KUBECONFIG now, and leaves the client's globals alone


@kopf.on.create("perfpilot.io", "v1alpha1", "performanceprofiles")
def observe(name, namespace, meta, **_):
    objects.patch_namespaced_custom_object_status(
        "perfpilot.io", "v1alpha1", namespace, "performanceprofiles", name,
        {"status": {"phase": "Observing", "observedGeneration": meta["generation"]}})
'''


def test_a_kopf_operator_sees_a_created_profile_and_writes_its_status(
        kube: EmulatedCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    operator = tmp_path / "operator.py"
    operator.write_text(OPERATOR)
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
    default_registry = kopf.get_default_registry()
    status: dict[str, Any] = {}
    try:
        with kopf.testing.KopfRunner(["run", "-A", "--standalone", str(operator)], timeout=5,
                                     registry=kopf.OperatorRegistry()) as runner:
            kube.create(profile())
            deadline = time.monotonic() + 5
            while not status and time.monotonic() < deadline:
                time.sleep(0.05)
                status = kube.get("perfpilot.io/v1alpha1", "PerformanceProfile", "web", NAMESPACE).get("status", {})
    finally:
        kopf.set_default_registry(default_registry)  # the runner installs its registry as the process's default
    assert status == {"phase": "Observing", "observedGeneration": 1}
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None

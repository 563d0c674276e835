"""`perfpilot run`'s kopf operator (perfpilot.handlers), started for real against the emulated API and a real
Prometheus: it finds the profile on its own, writes the change and the status, and serves its liveness probe; and
the ClusterRole of manifests/install grants every request it makes."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kopf
import pytest
import requests
import yaml
from kubeharness import MERGE_PATCH, EmulatedCluster
from promharness import PrometheusServer, free_port
from shop_scenario import AT, BEFORE, DATA, pool, profile_named, seed, status_of

from perfpilot.actuate.kube import KubeApi
from perfpilot.api.spec import PerformanceProfile
from perfpilot.api.status import ContainerResources, Edit, PoolSize, ScalingPolicy, ScalingRules, Setting
from perfpilot.control.cycle import apply_edit
from perfpilot.control.loop import LoopSettings
from perfpilot.handlers import REGISTRY
from perfpilot.observe.reader import PrometheusSettings

pytestmark = pytest.mark.integration


@contextmanager
def running_operator(kube: EmulatedCluster, prometheus_url: str, *, liveness: str) -> Iterator[kopf.Memo]:
    stop = threading.Event()
    memo = kopf.Memo(
        loop_settings=LoopSettings(prometheus=PrometheusSettings(url=prometheus_url), tick_seconds=0.2),
        kube_client=kube.api,
        clock=lambda: AT,  # the hour the test Prometheus holds
    )
    thread = threading.Thread(target=kopf.run, kwargs={
        "registry": REGISTRY, "clusterwide": True, "standalone": True, "memo": memo, "stop_flag": stop,
        "liveness_endpoint": liveness})
    thread.start()
    try:
        yield memo
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive(), "the operator did not stop"


def _wait_for(check: Callable[[], Any], *, seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _probed(liveness: str) -> Any:
    return requests.get(liveness, timeout=2).json()


def test_the_operator_evaluates_a_profile_writes_its_change_and_reports_healthy(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    seed(kube, profile_named())
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    with running_operator(kube, scenario_prometheus.url, liveness=liveness) as memo:
        status = _wait_for(lambda: status_of(kube).get("lastChange"))
        assert status, f"no change recorded; status: {status_of(kube)}"
        # The tick reports once all its profiles are done, a moment after their statuses are written.
        # kopf keeps a probe's answer for a while: probe once the tick has reported (memo.health, which the
        # startup handler put in this memo), so the first answer is the one checked.
        assert _wait_for(lambda: memo.get("health") is not None and memo.health.evaluated), "no tick reported"
        health = _probed(liveness)
    assert status["field"] == "pool.size"
    assert pool(kube) != BEFORE
    assert health, "the liveness probe never reported an evaluation"
    assert health["loop"]["lastError"] is None
    assert health["loop"]["lastTickAt"] == AT.isoformat()


INSTALL = Path(__file__).resolve().parents[2] / "manifests" / "install" / "perfpilot.yaml"
# /api, /apis, /apis/<group>/<version>: discovery, open to every authenticated user (system:discovery).
DISCOVERY = re.compile(r"^/apis?(/[^/]+(/[^/]+)?)?/?$")
RESOURCE_PATH = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/[^/]+)?"
                           r"/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$")


def _granted() -> set[tuple[str, str, str]]:
    role = next(d for d in yaml.safe_load_all(INSTALL.read_text()) if d["kind"] == "ClusterRole")
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def _asked(request: Any) -> tuple[str, str, str] | None:
    """(apiGroup, resource[/subresource], verb) of one request, as the API server's authorizer sees it."""
    path = request.url.path
    if DISCOVERY.match(path):
        return None
    found = RESOURCE_PATH.match(path)
    assert found is not None, f"not a resource path: {path}"
    method = str(request.method).rsplit(".", 1)[-1].upper()
    named = found["name"] is not None
    verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(method) or (
        "get" if named else "watch" if request.params.get("watch") in ("true", "1") else "list")
    resource = found["resource"] + (f"/{found['sub']}" if found["sub"] else "")
    return ("" if found["core"] else found["group"], resource, verb)


# shop/api's containers as tests/observe/data/shop-api-workload.yaml gives them.
SHOP_API_RESOURCES = [
    ContainerResources(name="app", cpu_request_millicores=500, cpu_limit_millicores=1000,
                       memory_request_bytes=512 * 2**20, memory_limit_bytes=2**30),
    ContainerResources(name="istio-proxy", cpu_request_millicores=100, cpu_limit_millicores=200,
                       memory_request_bytes=128 * 2**20, memory_limit_bytes=256 * 2**20),
]


def _cpu_grown(live: list[ContainerResources]) -> list[ContainerResources]:
    return [live[0].model_copy(update={"cpu_request_millicores": 600}), *live[1:]]


def _apply_statefulset_and_pooler_writes(kube: EmulatedCluster, api: KubeApi) -> None:
    """shop/api's pods as a StatefulSet whose pool is a CloudNativePG Pooler: its app container's CPU request
    grown, then its pool."""
    deployment = next(yaml.safe_load_all((DATA / "shop-api-workload.yaml").read_text()))  # as it was seeded
    kube.create({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db-api", "namespace": "shop"},
                 "spec": {**{key: deployment["spec"][key] for key in ("replicas", "selector", "template")},
                          "serviceName": "db-api"}})
    kube.create({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Pooler",
                 "metadata": {"name": "pooler-app", "namespace": "shop"},
                 "spec": {"cluster": {"name": "db"}, "instances": 2, "type": "rw",
                          "pgbouncer": {"poolMode": "transaction",
                                        "parameters": {"default_pool_size": "10", "reserve_pool_size": "2"}}}})
    document = profile_named("db-api")
    document["spec"]["targetRef"] = {"kind": "StatefulSet", "name": "db-api"}
    document["spec"]["pool"]["pgbouncer"] = {"poolerRef": {"name": "pooler-app"}, "database": "app"}
    profile = PerformanceProfile.model_validate(document)
    assert apply_edit(api, profile, Edit(setting=Setting.RESOURCES, from_value=SHOP_API_RESOURCES,
                                         to_value=_cpu_grown(SHOP_API_RESOURCES)), target="StatefulSet/db-api", now=AT)
    assert apply_edit(api, profile, Edit(setting=Setting.POOL_SIZE, from_value=BEFORE,
                                         to_value=PoolSize(default_pool_size=12, reserve_pool_size=2)),
                      target="Pooler/pooler-app", now=AT)
    parameters = kube.get("postgresql.cnpg.io/v1", "Pooler", "pooler-app", "shop")["spec"]["pgbouncer"]["parameters"]
    assert parameters == {"default_pool_size": "12", "reserve_pool_size": "2"}


def test_the_cluster_role_grants_every_request_the_operator_makes(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    seed(kube, profile_named())
    first = len(list(kube.emulator))
    with running_operator(kube, scenario_prometheus.url, liveness=""):
        assert _wait_for(lambda: status_of(kube).get("lastChange")), "the operator wrote no change"
    # The writes the pool scenario does not reach: an HPA's behaviour and a Deployment's resources.
    api, profile = KubeApi(kube.api), PerformanceProfile.model_validate(profile_named())
    rules = ScalingRules(policies=[ScalingPolicy(type="Percent", value=100, period_seconds=15)])
    assert apply_edit(api, profile, Edit(setting=Setting.HPA_SCALE_UP, to_value=rules),
                      target="HorizontalPodAutoscaler/api", now=AT)
    assert apply_edit(api, profile, Edit(setting=Setting.RESOURCES, from_value=SHOP_API_RESOURCES,
                                         to_value=_cpu_grown(SHOP_API_RESOURCES)), target="Deployment/api", now=AT)
    # And an HPA that KEDA owns, changed through its ScaledObject.
    kube.request("PATCH", kube.path("autoscaling/v2", "HorizontalPodAutoscaler", "shop", "api"), {"metadata": {
        "ownerReferences": [{"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "api", "uid": "1",
                             "controller": True}]}}, content_type=MERGE_PATCH).raise_for_status()
    kube.create({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                 "metadata": {"name": "api", "namespace": "shop"},
                 "spec": {"scaleTargetRef": {"name": "api"}, "maxReplicaCount": 10, "triggers": []}})
    assert apply_edit(api, profile, Edit(setting=Setting.HPA_MAX_REPLICAS, from_value=10, to_value=12),
                      target="HorizontalPodAutoscaler/api", now=AT)
    # A StatefulSet's resources, and a CloudNativePG Pooler's pool: the same writes on their own resources.
    _apply_statefulset_and_pooler_writes(kube, api)
    # The test's own requests (seeding, reading back) go through requests; perfpilot's and kopf's do not.
    made = [r for r in list(kube.emulator)[first:] if "python-requests" not in r.headers.get("User-Agent", "")]
    asked = {found for found in map(_asked, made) if found is not None}
    assert ("apps", "deployments", "patch") in asked  # the scenario reached every kind of write
    assert ("autoscaling", "horizontalpodautoscalers", "patch") in asked
    assert ("", "configmaps", "patch") in asked
    assert ("keda.sh", "scaledobjects", "patch") in asked
    assert ("apps", "statefulsets", "patch") in asked
    assert ("postgresql.cnpg.io", "poolers", "patch") in asked
    assert ("perfpilot.io", "performanceprofiles/status", "patch") in asked
    assert asked - _granted() == set()

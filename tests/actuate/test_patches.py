"""An Edit as a JSON patch (compute_edit_patch): applied to the object read, it sets exactly the edit's value,
and it refuses an object changed since it was read (resourceVersion) or with no place for the value."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from perfpilot.actuate.patches import (
    PatchError,
    compute_container_resources,
    compute_edit_patch,
    compute_scaled_object_patch,
)
from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import ContainerResources, Edit, PoolSize, ScalingPolicy, ScalingRules, Setting

SPEC = PerformanceProfileSpec.model_validate({"targetRef": {"kind": "Deployment", "name": "api"}})
POOLER_SPEC = PerformanceProfileSpec.model_validate({
    "targetRef": {"kind": "Deployment", "name": "api"},
    "pool": {"enabled": True, "pgbouncer": {"poolerRef": {"name": "pooler"}, "database": "app"}},
})


def _hpa(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "api", "namespace": "shop", "resourceVersion": "41"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
            "minReplicas": 2, "maxReplicas": 10,
            "metrics": [
                {"type": "Pods", "pods": {"metric": {"name": "queue"}, "target": {"type": "AverageValue",
                                                                                  "averageValue": "5"}}},
                {"type": "Resource", "resource": {"name": "memory",
                                                  "target": {"type": "Utilization", "averageUtilization": 80}}},
                {"type": "Resource", "resource": {"name": "cpu",
                                                  "target": {"type": "Utilization", "averageUtilization": 70}}},
            ],
            **spec,
        },
    }


def _deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "shop", "resourceVersion": "7"},
        "spec": {"template": {"spec": {
            "containers": [
                {"name": "proxy", "image": "envoy:1", "resources": {"requests": {"cpu": "100m"}}},
                {"name": "app", "image": "app:2", "resources": {
                    "requests": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "2Gi"},
                    "limits": {"cpu": "2", "memory": "2Gi"}}},
            ],
            "initContainers": [{"name": "log-shipper", "image": "fluent:3", "restartPolicy": "Always"}],
        }}},
    }


def _applied(obj: dict[str, Any], edit: Edit, spec: PerformanceProfileSpec = SPEC) -> dict[str, Any]:
    patch = compute_edit_patch(obj, edit, profile=spec)
    assert patch[0] == {"op": "replace", "path": "/metadata/resourceVersion",
                        "value": obj["metadata"]["resourceVersion"]}
    result: dict[str, Any] = jsonpatch.apply_patch(obj, patch)
    return result


@pytest.mark.parametrize(("setting", "index", "percent"), [
    (Setting.HPA_CPU_TARGET, 2, 60), (Setting.HPA_MEMORY_TARGET, 1, 75)])
def test_a_target_change_sets_that_resource_metric_and_nothing_else(setting: Setting, index: int,
                                                                     percent: int) -> None:
    hpa = _hpa()
    after = _applied(hpa, Edit(setting=setting, from_value=70, to_value=percent))
    expected = copy.deepcopy(hpa)
    expected["spec"]["metrics"][index]["resource"]["target"]["averageUtilization"] = percent
    assert after == expected


def test_a_target_change_on_an_hpa_without_that_metric_is_refused_naming_it() -> None:
    hpa = _hpa()
    del hpa["spec"]["metrics"][1]
    with pytest.raises(PatchError, match="HorizontalPodAutoscaler/api has no memory Utilization metric"):
        compute_edit_patch(hpa, Edit(setting=Setting.HPA_MEMORY_TARGET, from_value=80, to_value=75), profile=SPEC)


CPU_70_TO_60 = Edit(setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60)
AGGRESSIVE = ScalingRules(stabilization_window_seconds=0, select_policy="Max",
                          policies=[ScalingPolicy(type="Percent", value=100, period_seconds=15)])
AGGRESSIVE_JSON = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                   "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


def test_scale_up_rules_are_added_to_an_hpa_without_behavior() -> None:
    after = _applied(_hpa(), Edit(setting=Setting.HPA_SCALE_UP, from_value=None, to_value=AGGRESSIVE))
    assert after["spec"]["behavior"] == {"scaleUp": AGGRESSIVE_JSON}


def test_scale_up_rules_replace_the_old_ones_and_keep_scale_down() -> None:
    down = {"stabilizationWindowSeconds": 600, "policies": [{"type": "Percent", "value": 5, "periodSeconds": 120}]}
    hpa = _hpa(behavior={"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
                         "scaleDown": down})
    after = _applied(hpa, Edit(setting=Setting.HPA_SCALE_UP, from_value=None, to_value=AGGRESSIVE))
    assert after["spec"]["behavior"] == {"scaleUp": AGGRESSIVE_JSON, "scaleDown": down}


def test_rules_set_back_to_none_remove_that_direction_for_the_kubernetes_default() -> None:
    hpa = _hpa(behavior={"scaleUp": AGGRESSIVE_JSON, "scaleDown": {"stabilizationWindowSeconds": 60}})
    after = _applied(hpa, Edit(setting=Setting.HPA_SCALE_UP, from_value=AGGRESSIVE, to_value=None))
    assert after["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 60}}


def test_rules_already_at_the_default_need_no_patch() -> None:
    assert compute_edit_patch(_hpa(), Edit(setting=Setting.HPA_SCALE_DOWN, from_value=AGGRESSIVE, to_value=None),
                              profile=SPEC) == []


def test_max_replicas_is_replaced() -> None:
    after = _applied(_hpa(), Edit(setting=Setting.HPA_MAX_REPLICAS, from_value=10, to_value=15))
    assert after["spec"]["maxReplicas"] == 15


def test_a_resources_change_edits_the_named_container_only_keeping_its_other_resources() -> None:
    deployment = _deployment()
    wanted = ContainerResources(name="app", cpu_request_millicores=1500, cpu_limit_millicores=3000,
                                memory_request_bytes=1536 * 2**20, memory_limit_bytes=None)
    after = _applied(deployment, Edit(setting=Setting.RESOURCES, to_value=[wanted]))
    expected = copy.deepcopy(deployment)
    expected["spec"]["template"]["spec"]["containers"][1]["resources"] = {
        "requests": {"cpu": "1500m", "memory": "1536Mi", "ephemeral-storage": "2Gi"}, "limits": {"cpu": "3"}}
    assert after == expected


def test_a_native_sidecar_is_sized_where_it_is_declared() -> None:
    wanted = ContainerResources(name="log-shipper", cpu_request_millicores=200, memory_request_bytes=2**28)
    after = _applied(_deployment(), Edit(setting=Setting.RESOURCES, to_value=[wanted]))
    assert after["spec"]["template"]["spec"]["initContainers"][0]["resources"] == {
        "requests": {"cpu": "200m", "memory": "256Mi"}}


def test_a_resources_patch_tests_the_container_name_at_its_index() -> None:
    deployment = _deployment()
    patch = compute_edit_patch(deployment, Edit(setting=Setting.RESOURCES, to_value=[
        ContainerResources(name="app", cpu_request_millicores=500)]), profile=SPEC)
    moved = copy.deepcopy(deployment)
    moved["spec"]["template"]["spec"]["containers"].reverse()  # someone reordered the containers since
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(moved, patch)


def test_a_container_not_in_the_template_is_refused_naming_it() -> None:
    with pytest.raises(PatchError, match="Deployment/api has no container worker"):
        compute_edit_patch(_deployment(), Edit(setting=Setting.RESOURCES, to_value=[
            ContainerResources(name="worker", cpu_request_millicores=500)]), profile=SPEC)


def test_a_patch_computed_from_an_object_changed_since_carries_the_version_it_was_read_at() -> None:
    # The API server compares the patched object's resourceVersion with the stored one and answers 409 Conflict
    # when they differ (tests/control: the race on the emulated API); the patch must carry the one it read.
    hpa = _hpa()
    patch = compute_edit_patch(hpa, Edit(setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60), profile=SPEC)
    newer = copy.deepcopy(hpa)
    newer["metadata"]["resourceVersion"] = "42"
    assert jsonpatch.apply_patch(newer, patch)["metadata"]["resourceVersion"] == "41"


def test_an_object_without_resource_version_is_not_written() -> None:
    hpa = _hpa()
    del hpa["metadata"]["resourceVersion"]
    with pytest.raises(PatchError, match=r"no metadata\.resourceVersion"):
        compute_edit_patch(hpa, Edit(setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60), profile=SPEC)


def _pooler(**pgbouncer: Any) -> dict[str, Any]:
    return {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Pooler",
            "metadata": {"name": "pooler", "namespace": "shop", "resourceVersion": "3"},
            "spec": {"cluster": {"name": "db"}, "instances": 2, "pgbouncer": {"poolMode": "session", **pgbouncer}}}


def test_a_pooler_gets_its_pool_sizes_as_strings_beside_its_other_parameters() -> None:
    pooler = _pooler(parameters={"max_client_conn": "1000", "default_pool_size": "20"})
    after = _applied(pooler, Edit(setting=Setting.POOL_SIZE, to_value=PoolSize(default_pool_size=30,
                                                                               reserve_pool_size=20)), POOLER_SPEC)
    assert after["spec"]["pgbouncer"] == {"poolMode": "session", "parameters": {
        "max_client_conn": "1000", "default_pool_size": "30", "reserve_pool_size": "20"}}


def test_a_pooler_without_parameters_gets_them() -> None:
    after = _applied(_pooler(), Edit(setting=Setting.POOL_SIZE, to_value=PoolSize(default_pool_size=10,
                                                                                 reserve_pool_size=5)), POOLER_SPEC)
    assert after["spec"]["pgbouncer"]["parameters"] == {"default_pool_size": "10", "reserve_pool_size": "5"}


def test_container_resources_unset_drops_an_empty_section() -> None:
    assert compute_container_resources({"limits": {"cpu": "2"}, "claims": [{"name": "gpu"}]},
                                       ContainerResources(name="app", cpu_request_millicores=250)) == {
        "claims": [{"name": "gpu"}], "requests": {"cpu": "250m"}}


CONFIG_MAP_SPEC = PerformanceProfileSpec.model_validate({
    "targetRef": {"kind": "Deployment", "name": "api"},
    "pool": {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer", "key": "pgbouncer.ini"},
                                            "database": "app"}},
})


def test_a_config_map_gets_its_ini_edited_under_its_key_and_its_other_keys_kept() -> None:
    ini = "[databases]\napp = host=db dbname=app\n\n[pgbouncer]\n; sized by hand\ndefault_pool_size = 10\n"
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "pgbouncer", "namespace": "shop", "resourceVersion": "9"},
                  "data": {"pgbouncer.ini": ini, "userlist.txt": '"app" "secret"'}}
    after = _applied(config_map, Edit(setting=Setting.POOL_SIZE, to_value=PoolSize(default_pool_size=20,
                                                                                  reserve_pool_size=10)),
                     CONFIG_MAP_SPEC)
    assert after["data"] == {
        "pgbouncer.ini": ("[databases]\napp = host=db dbname=app\n\n[pgbouncer]\n; sized by hand\n"
                               "default_pool_size = 20\nreserve_pool_size = 10\n"),
        "userlist.txt": '"app" "secret"'}


def _scaled_object(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "api", "namespace": "shop", "resourceVersion": "5"},
            "spec": {"scaleTargetRef": {"name": "api"}, "minReplicaCount": 2, "maxReplicaCount": 10,
                     "triggers": [{"type": "prometheus", "metadata": {"query": "sum(rate(x[1m]))", "threshold": "5"}},
                                  {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}},
                                  {"type": "memory", "metadata": {"type": "Utilization", "value": "80"}}],
                     **spec}}


def _so_applied(scaled_object: dict[str, Any], edit: Edit) -> dict[str, Any]:
    patch = compute_scaled_object_patch(scaled_object, edit)
    assert patch[0] == {"op": "replace", "path": "/metadata/resourceVersion", "value": "5"}
    result: dict[str, Any] = jsonpatch.apply_patch(scaled_object, patch)
    return result


@pytest.mark.parametrize(("setting", "index", "percent"), [
    (Setting.HPA_CPU_TARGET, 1, 60), (Setting.HPA_MEMORY_TARGET, 2, 75)])
def test_a_keda_target_is_written_to_its_trigger_as_a_string(setting: Setting, index: int, percent: int) -> None:
    scaled_object = _scaled_object()
    after = _so_applied(scaled_object, Edit(setting=setting, from_value=70, to_value=percent))
    expected = copy.deepcopy(scaled_object)
    expected["spec"]["triggers"][index]["metadata"]["value"] = str(percent)
    assert after == expected


def test_a_keda_target_without_its_trigger_is_refused_naming_it() -> None:
    scaled_object = _scaled_object()
    del scaled_object["spec"]["triggers"][1]
    with pytest.raises(PatchError, match="ScaledObject/api has no cpu Utilization trigger"):
        compute_scaled_object_patch(scaled_object, CPU_70_TO_60)


@pytest.mark.parametrize("advanced", [
    None, {}, {"horizontalPodAutoscalerConfig": {}},
    {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}}}}])
def test_keda_scale_up_rules_land_under_advanced_whatever_of_it_exists(advanced: dict[str, Any] | None) -> None:
    scaled_object = _scaled_object() if advanced is None else _scaled_object(advanced=advanced)
    after = _so_applied(scaled_object, Edit(setting=Setting.HPA_SCALE_UP, from_value=None, to_value=AGGRESSIVE))
    behaviour = after["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behaviour["scaleUp"] == AGGRESSIVE_JSON
    kept = (advanced or {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {}).get("scaleDown")
    assert behaviour.get("scaleDown") == kept


def test_keda_rules_set_back_to_the_default_are_removed_and_max_replicas_is_max_replica_count() -> None:
    scaled_object = _scaled_object(advanced={"horizontalPodAutoscalerConfig": {"behavior": {
        "scaleUp": AGGRESSIVE_JSON}}})
    after = _so_applied(scaled_object, Edit(setting=Setting.HPA_SCALE_UP, from_value=AGGRESSIVE, to_value=None))
    assert after["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == {}
    assert _so_applied(scaled_object, Edit(setting=Setting.HPA_MAX_REPLICAS, from_value=10,
                                           to_value=15))["spec"]["maxReplicaCount"] == 15

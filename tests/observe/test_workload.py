"""LiveConfig from manifests: requests/limits from the pod template, the HPA, the pool's configuration."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from perfpilot.api.spec import PerformanceProfile
from perfpilot.observe.workload import (
    WorkloadSpecError,
    describe_template_held,
    live_config_from_manifests,
    parse_pgbouncer_ini,
    rollout_in_progress,
)
from perfpilot.tuning.observations import Unknown

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def load(name: str) -> list[object]:
    return list(yaml.safe_load_all((DATA / name).read_text()))


def profile(**spec: object) -> PerformanceProfile:
    return PerformanceProfile.model_validate({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"targetRef": {"kind": "Deployment", "name": "api"}, **spec},
    })


def test_requests_limits_hpa_and_pool_come_from_the_manifests() -> None:
    shop = PerformanceProfile.model_validate(load("shop-api-profile.yaml")[0])
    live = live_config_from_manifests(load("shop-api-workload.yaml"), shop, now=NOW)
    assert [c.name for c in live.containers] == ["app", "istio-proxy"]
    assert live.cpu_request_millicores_per_pod == 600
    assert live.memory_request_bytes_per_pod == (512 + 128) * 2**20
    assert live.containers[0].cpu_limit_millicores == 1000
    assert live.hpa is not None
    assert (live.hpa.name, live.hpa.min_replicas, live.hpa.max_replicas) == ("api", 2, 10)
    assert (live.hpa.cpu_target_percent, live.hpa.memory_target_percent) == (70, None)
    assert live.pool is not None
    assert (live.pool.default_pool_size, live.pool.reserve_pool_size, live.pool.pooler_replicas) == (10, 2, 2)


def test_a_kubectl_list_is_expanded_and_a_pooler_read() -> None:
    documents = [{"kind": "List", "items": [
        {"kind": "Deployment", "metadata": {"name": "api", "annotations": {"perfpilot.io/paused": "true"}},
         "spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}},
        {"kind": "Pooler", "metadata": {"name": "warehouse"},
         "spec": {"instances": 3, "pgbouncer": {"parameters": {"default_pool_size": "25"}}}},
    ]}]
    live = live_config_from_manifests(documents, profile(
        pool={"enabled": True, "pgbouncer": {"poolerRef": {"name": "warehouse"}}}), now=NOW)
    assert live.paused
    assert live.containers[0].cpu_request_millicores is None  # not set is not 0
    assert live.pool is not None
    assert (live.pool.default_pool_size, live.pool.reserve_pool_size, live.pool.pooler_replicas) == (25, 0, 3)
    assert live.hpa is None


def test_a_poolers_parameters_are_read_as_pgbouncer_reads_its_settings() -> None:
    # CloudNativePG writes them into [pgbouncer], where a leading 0 is octal and 0x hex.
    pooler = {"kind": "Pooler", "metadata": {"name": "warehouse"},
              "spec": {"pgbouncer": {"parameters": {"default_pool_size": "040", "reserve_pool_size": "0x8"}}}}
    live = live_config_from_manifests([_workload(), pooler], profile(
        pool={"enabled": True, "pgbouncer": {"poolerRef": {"name": "warehouse"}}}), now=NOW)
    assert live.pool is not None
    assert (live.pool.default_pool_size, live.pool.reserve_pool_size) == (32, 8)


def test_a_database_pool_size_overrides_the_default() -> None:
    ini = "[databases]\napp = host=db pool_size=7 reserve_pool=1\n[pgbouncer]\ndefault_pool_size = 30\n"
    pool = parse_pgbouncer_ini(ini, database="app")
    assert (pool.default_pool_size, pool.reserve_pool_size) == (7, 1)
    assert parse_pgbouncer_ini(ini, database="other").default_pool_size == 30


def test_a_missing_workload_is_a_clear_error() -> None:
    with pytest.raises(WorkloadSpecError, match=r"no Deployment named api in namespace shop among the manifests$"):
        live_config_from_manifests([{"kind": "Deployment", "metadata": {"name": "web"}}], profile(), now=NOW)


def test_a_workload_only_in_another_namespace_is_named_in_the_error() -> None:
    with pytest.raises(WorkloadSpecError, match=r"no Deployment named api in namespace shop among the manifests "
                                                r"\(there is one in namespace prod\)"):
        live_config_from_manifests([_in("prod", _workload())], profile(), now=NOW)


def _deployment(generation: int, status: dict[str, int] | None) -> dict[str, object]:
    manifest: dict[str, object] = {"kind": "Deployment", "metadata": {"name": "api", "generation": generation},
                                   "spec": {"replicas": 4}}
    if status is not None:
        manifest["status"] = status
    return manifest


@pytest.mark.parametrize(("generation", "status", "rolling"), [
    (3, {"observedGeneration": 3, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4}, False),
    (4, {"observedGeneration": 3, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4}, True),
    (3, {"observedGeneration": 3, "replicas": 5, "updatedReplicas": 3, "availableReplicas": 4}, True),
    (3, {"observedGeneration": 3, "replicas": 5, "updatedReplicas": 4, "availableReplicas": 5}, True),  # old pod left
    # Every pod on the latest template, one not available (starting, or crash-looping on OOM): no rollout.
    (3, {"observedGeneration": 3, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 3}, False),
    (3, None, False),
])
def test_a_rollout_is_in_progress_until_every_pod_runs_the_latest_template_and_no_older_one_is_left(
    generation: int, status: dict[str, int] | None, rolling: bool
) -> None:
    assert rollout_in_progress(_deployment(generation, status)) is rolling


@pytest.mark.parametrize(("reason", "rolling"), [("ReplicaSetUpdated", True), ("NewReplicaSetAvailable", False)])
def test_the_last_new_pod_coming_up_is_still_the_rollout_but_a_pod_failing_after_it_is_not(
    reason: str, rolling: bool
) -> None:
    status = {"observedGeneration": 3, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 3,
              "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                             {"type": "Progressing", "status": "True", "reason": reason}]}
    assert rollout_in_progress(_deployment(3, status)) is rolling


@pytest.mark.parametrize(("updated", "rolling"), [(2, False), (1, True)])
def test_a_statefulset_with_a_partition_rolls_out_only_the_pods_above_it(updated: int, rolling: bool) -> None:
    manifest = {"kind": "StatefulSet", "metadata": {"name": "api", "generation": 2},
                "spec": {"replicas": 5, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 3}}},
                "status": {"observedGeneration": 2, "replicas": 5, "updatedReplicas": updated, "readyReplicas": 5}}
    assert rollout_in_progress(manifest) is rolling


@pytest.mark.parametrize(("status", "rolling"), [
    # a scale-up under OrderedReady: 3 of 5 pods so far, all of the one revision (it may stall for good behind a
    # crash-looping pod, and is no rollout)
    ({"replicas": 3, "updatedReplicas": 3, "currentRevision": "api-7b", "updateRevision": "api-7b"}, False),
    # the rollout's tail: every pod updated, the last not yet ready, so the revisions are still apart
    ({"replicas": 5, "updatedReplicas": 5, "currentRevision": "api-6a", "updateRevision": "api-7b"}, True),
    ({"replicas": 5, "updatedReplicas": 2, "currentRevision": "api-6a", "updateRevision": "api-7b"}, True),
    # without revisions (a status written by hand): the updated pods against the pods there are
    ({"replicas": 3, "updatedReplicas": 3}, False),
    ({"replicas": 3, "updatedReplicas": 1}, True),
])
def test_a_statefulset_rolls_out_until_its_current_revision_is_the_update_revision(
    status: dict[str, object], rolling: bool
) -> None:
    manifest = {"kind": "StatefulSet", "metadata": {"name": "api", "generation": 2},
                "spec": {"replicas": 5, "updateStrategy": {"type": "RollingUpdate"}},
                "status": {"observedGeneration": 2, **status}}
    assert rollout_in_progress(manifest) is rolling


@pytest.mark.parametrize(("strategy", "rolling"), [("RollingUpdate", True), ("OnDelete", False)])
def test_an_on_delete_statefulset_is_never_rolling_out_by_itself(strategy: str, rolling: bool) -> None:
    manifest = {"kind": "StatefulSet", "metadata": {"name": "api", "generation": 2},
                "spec": {"replicas": 3, "updateStrategy": {"type": strategy}},
                "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 0, "readyReplicas": 3}}
    assert rollout_in_progress(manifest) is rolling


ON_DELETE = "the StatefulSet's updateStrategy is OnDelete: its pods take a new template only once deleted"
PAUSED = ("the Deployment is paused (spec.paused): its pods take a new template only once the rollout is resumed "
          "(kubectl rollout resume)")


def _partitioned(partition: int, replicas: int) -> str:
    return (f"the StatefulSet's rollingUpdate.partition {partition} is at or above its replicas {replicas}: no pod "
            f"takes a new template until the partition is lowered")


@pytest.mark.parametrize(("kind", "spec", "held_by"), [
    ("StatefulSet", {"replicas": 3, "updateStrategy": {"type": "OnDelete"}}, ON_DELETE),
    ("StatefulSet", {"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 3}}}, _partitioned(3, 3)),
    ("StatefulSet", {"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 2}}}, ""),
    ("StatefulSet", {"updateStrategy": {"rollingUpdate": {"partition": 1}}}, _partitioned(1, 1)),  # replicas 1
    ("StatefulSet", {"replicas": 0, "updateStrategy": {"rollingUpdate": {"partition": 1}}}, ""),  # no pod to hold
    ("StatefulSet", {"replicas": 3}, ""),
    ("Deployment", {"replicas": 3, "paused": True}, PAUSED),
    ("Deployment", {"replicas": 3, "paused": False, "strategy": {"type": "Recreate"}}, ""),
])
def test_a_template_that_reaches_no_pod_by_itself_says_why_and_what_would_let_it(
    kind: str, spec: dict[str, Any], held_by: str
) -> None:
    workload = {"kind": kind, "metadata": {"name": "api"},
                "spec": {**spec, "template": {"spec": {"containers": [{"name": "app"}]}}}}
    live = live_config_from_manifests([workload], profile(targetRef={"kind": kind, "name": "api"}), now=NOW)
    assert live.template_held_by == held_by


def test_a_deployments_paused_that_is_not_a_boolean_is_an_error_naming_it() -> None:
    with pytest.raises(WorkloadSpecError, match=r"spec.paused: expected a boolean"):
        describe_template_held({"kind": "Deployment", "metadata": {"name": "api"}, "spec": {"paused": "yes"}})


# --- every field read from a manifest: missing, null or of the wrong type is an error naming the object,
# --- the field path and the value, never a KeyError or TypeError

def _hpa(spec: object = None, status: object = None, name: str = "checkout-api") -> dict[str, object]:
    manifest: dict[str, object] = {"kind": "HorizontalPodAutoscaler", "metadata": {"name": name}}
    manifest["spec"] = spec if spec is not None else {
        "scaleTargetRef": {"kind": "Deployment", "name": "api"}, "minReplicas": 2, "maxReplicas": 10}
    if status is not None:
        manifest["status"] = status
    return manifest


def _workload(containers: object = None, *, replicas: object = 3, status: object = None) -> dict[str, object]:
    spec: dict[str, object] = {"template": {"spec": {"containers": containers if containers is not None else [
        {"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    manifest: dict[str, object] = {"kind": "Deployment", "metadata": {"name": "api"}, "spec": spec}
    if status is not None:
        manifest["status"] = status
    return manifest


def _error(documents: list[object], **spec: object) -> str:
    with pytest.raises(WorkloadSpecError) as raised:
        live_config_from_manifests(documents, profile(**spec), now=NOW)
    return str(raised.value)


def test_an_hpa_without_max_replicas_is_an_error_naming_the_hpa_and_field() -> None:
    hpa = _hpa({"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "minReplicas": 2})
    assert _error([_workload(), hpa]) == "HorizontalPodAutoscaler/checkout-api: spec.maxReplicas is required"


def test_null_containers_is_an_error_naming_the_workload_and_field() -> None:
    workload = _workload()
    workload["spec"] = {"template": {"spec": {"containers": None}}}
    assert _error([workload]) == (
        "Deployment/api: spec.template.spec.containers is required (at least one container)")


def test_a_bad_quantity_names_the_workload_the_container_and_the_field() -> None:
    workload = _workload([{"name": "app", "resources": {"requests": {"cpu": "lots"}}}])
    assert _error([workload]) == (
        "Deployment/api: spec.template.spec.containers[app].resources.requests.cpu: "
        "not a quantity: use e.g. 500m, 2, 0.5, 64Mi or 1Gi (got 'lots')")


@pytest.mark.parametrize(("documents", "expected"), [
    ([_workload([{"name": "app", "resources": "big"}])],
     "Deployment/api: spec.template.spec.containers[app].resources: expected an object (got 'big')"),
    ([_workload([{"name": "app", "resources": {"limits": {"memory": True}}}])],
     "Deployment/api: spec.template.spec.containers[app].resources.limits.memory: expected a quantity"),
    ([_workload([{"resources": {}}])], "Deployment/api: spec.template.spec.containers[0].name is required"),
    ([_workload(["app"])], "Deployment/api: spec.template.spec.containers[0]: expected an object (got 'app')"),
    ([_workload(), _hpa({"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": "10"})],
     "HorizontalPodAutoscaler/checkout-api: spec.maxReplicas: expected an integer (got '10')"),
    ([_workload(), _hpa({"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 10,
                         "minReplicas": None, "metrics": {"cpu": 70}})],
     "HorizontalPodAutoscaler/checkout-api: spec.metrics: expected a list (got {'cpu': 70})"),
    ([_workload(), _hpa({"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 10,
                         "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                             "type": "Utilization", "averageUtilization": "70%"}}}]})],
     "HorizontalPodAutoscaler/checkout-api: spec.metrics[0].resource.target.averageUtilization: "
     "expected an integer (got '70%')"),
    ([_workload(), _hpa({"scaleTargetRef": "api", "maxReplicas": 10})],
     "HorizontalPodAutoscaler/checkout-api: spec.scaleTargetRef: expected an object (got 'api')"),
    ([_workload(), _hpa({"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 10,
                         "behavior": {"scaleDown": {"stabilizationWindowSeconds": "long"}}})],
     "HorizontalPodAutoscaler/checkout-api: spec.behavior.scaleDown: stabilizationWindowSeconds:"),
    ([_workload(status={"replicas": "3"})], "Deployment/api: status.replicas: expected an integer (got '3')"),
    ([_workload([{"name": "App_1"}])],
     "Deployment/api: spec.template.spec.containers[0].name: not a DNS-1123 label (got 'App_1')"),
    ([{**_workload(), "metadata": {"name": "api", "annotations": {"perfpilot.io/paused": True}}}],
     "Deployment/api: metadata.annotations[perfpilot.io/paused]: expected a string (got True)"),
])
def test_unusable_fields_are_errors_naming_object_field_and_value(documents: list[object], expected: str) -> None:
    assert _error(documents).startswith(expected)


@pytest.mark.parametrize(("hpa", "max_replicas"), [
    (_hpa(), 10),
    (_hpa({"scaleTargetRef": None, "maxReplicas": 10}), None),  # scales nothing
    (_hpa({"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 10}), None),
    (_hpa({"scaleTargetRef": {"kind": "StatefulSet", "name": "api"}, "maxReplicas": 10}), None),
])
def test_an_hpa_is_the_workloads_only_when_its_scale_target_ref_names_it(
    hpa: dict[str, object], max_replicas: int | None
) -> None:
    live = live_config_from_manifests([_workload(), hpa], profile(), now=NOW)
    assert (live.hpa.max_replicas if live.hpa is not None else None) == max_replicas


def test_pod_level_resources_are_refused_not_read_past() -> None:
    # The HPA divides by the pod's own request when it is set: read as the container's 500m, the utilisation
    # perfpilot reasons with would be four times the HPA's.
    workload = _workload()
    workload["spec"]["template"]["spec"]["resources"] = {"requests": {"cpu": "2"}}  # type: ignore[index]
    assert _error([workload]) == (
        "Deployment/api: spec.template.spec.resources: pod-level requests and limits are not supported: perfpilot "
        "sizes and couples the containers' own (move them to the containers) (got {'requests': {'cpu': '2'}})")


@pytest.mark.parametrize("hpa_spec", [{}, {"name": "api-memory"}])
def test_two_hpas_scaling_the_workload_are_an_error_naming_both_not_a_guess(hpa_spec: dict[str, str]) -> None:
    # Kubernetes stops both scaling (AmbiguousSelector): tuning either, named or found first, tunes nothing.
    hpas = [_hpa(name="api-cpu"), _hpa(name="api-memory")]
    assert _error([_workload(), *hpas], **({"hpa": hpa_spec} if hpa_spec else {})) == (
        "Deployment/api is scaled by 2 HorizontalPodAutoscalers (api-cpu, api-memory), which Kubernetes stops "
        "scaling (AmbiguousSelector): keep one")


def test_an_hpa_named_in_the_profile_that_scales_another_workload_is_an_error() -> None:
    other = _hpa({"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 10}, name="web")
    assert _error([_workload(), other], hpa={"name": "web"}) == (
        "spec.hpa.name web: that HorizontalPodAutoscaler scales Deployment/web, not Deployment/api")


def test_of_two_utilisation_targets_on_one_resource_the_lower_decides_as_it_does_for_the_hpa() -> None:
    metrics = [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                          "averageUtilization": percent}}}
               for percent in (60, 40)]
    hpa = _hpa({"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 10, "metrics": metrics})
    live = live_config_from_manifests([_workload(), hpa], profile(), now=NOW)
    assert live.hpa is not None and live.hpa.cpu_target_percent == 40


@pytest.mark.parametrize(("config_map", "expected"), [
    ({"data": None}, "ConfigMap/pgbouncer: data.pgbouncer.ini is required"),
    ({"data": {"pgbouncer.ini": 42}}, "ConfigMap/pgbouncer: data.pgbouncer.ini: expected a string (got 42)"),
    ({"data": {"pgbouncer.ini": "[pgbouncer]\ndefault_pool_size = many\n"}},
     "ConfigMap/pgbouncer: data.pgbouncer.ini: [pgbouncer] default_pool_size: expected a whole number (decimal, "
     "0x hex or 0 octal, as pgBouncer reads it) (got 'many')"),
    ({"data": {"pgbouncer.ini": "[databases]\napp = host=db pool_size=-1\n"}},
     "ConfigMap/pgbouncer: data.pgbouncer.ini: [databases] app pool_size: expected a whole number (got '-1')"),
    ({"data": {"pgbouncer.ini": "default_pool_size = 5\n"}},
     "ConfigMap/pgbouncer: data.pgbouncer.ini: line 1: a setting before any [section] (got 'default_pool_size = 5')"),
    ({"data": {"pgbouncer.ini": "[pgbouncer]\n%include /etc/pgbouncer/extra.ini\n"}},
     "ConfigMap/pgbouncer: data.pgbouncer.ini: line 2: the included file is not among the manifests"),
    ({"data": {"pgbouncer.ini": "[pgbouncer\n"}}, "ConfigMap/pgbouncer: data.pgbouncer.ini: line 1: not a [section]"),
    # a digit to str.isdigit(), not to int()
    ({"data": {"pgbouncer.ini": "[pgbouncer]\ndefault_pool_size = ²\n"}},
     "ConfigMap/pgbouncer: data.pgbouncer.ini: [pgbouncer] default_pool_size: expected a whole number (decimal, "
     "0x hex or 0 octal, as pgBouncer reads it) (got '²')"),
    # quotes are taken on a [databases] line only: pgBouncer refuses them in [pgbouncer]
    ({"data": {"pgbouncer.ini": "[pgbouncer]\ndefault_pool_size = '30'\n"}},
     "ConfigMap/pgbouncer: data.pgbouncer.ini: [pgbouncer] default_pool_size: expected a whole number (decimal, "
     "0x hex or 0 octal, as pgBouncer reads it) (got \"'30'\")"),
    # past a C int pgBouncer wraps the number (2147483648 is negative to it): refused, not read as given
    ({"data": {"pgbouncer.ini": "[pgbouncer]\ndefault_pool_size = 2147483648\n"}},
     "ConfigMap/pgbouncer: data.pgbouncer.ini: [pgbouncer] default_pool_size: expected at most 2147483647"),
    ({"data": {"pgbouncer.ini": "[databases]\napp = host=db pool_size=4294967306\n"}},
     "ConfigMap/pgbouncer: data.pgbouncer.ini: [databases] app pool_size: expected at most 2147483647"),
    # 08 is no octal number: pgBouncer refuses it rather than reading 8
    ({"data": {"pgbouncer.ini": "[pgbouncer]\nreserve_pool_size = 08\n"}},
     "ConfigMap/pgbouncer: data.pgbouncer.ini: [pgbouncer] reserve_pool_size: expected a whole number (decimal, "
     "0x hex or 0 octal, as pgBouncer reads it) (got '08')"),
    # pgBouncer sizes that user's pools by it, before the database line: one pool per user
    ({"data": {"pgbouncer.ini": "[users]\nApp = pool_size=50\n"}},
     "ConfigMap/pgbouncer: data.pgbouncer.ini: [users] App: a per-user pool_size is not supported"),
])
def test_an_unusable_pgbouncer_config_map_names_the_key_and_setting(config_map: dict[str, object],
                                                                    expected: str) -> None:
    documents = [_workload(), {"kind": "ConfigMap", "metadata": {"name": "pgbouncer"}, **config_map}]
    pool = {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}, "database": "app"}}
    assert _error(documents, pool=pool).startswith(expected)


def test_an_unusable_pooler_names_the_field() -> None:
    pooler = {"kind": "Pooler", "metadata": {"name": "warehouse"}, "spec": {"instances": "three"}}
    pool = {"enabled": True, "pgbouncer": {"poolerRef": {"name": "warehouse"}}}
    assert _error([_workload(), pooler], pool=pool) == (
        "Pooler/warehouse: spec.instances: expected an integer (got 'three')")


# --- live state: unknown is never filled in with a default


def test_current_replicas_come_from_the_hpa_status() -> None:
    live = live_config_from_manifests(
        [_workload(replicas=3, status={"replicas": 4}), _hpa(status={"currentReplicas": 5, "desiredReplicas": 6})],
        profile(), now=NOW)
    assert live.hpa is not None
    assert (live.hpa.current_replicas, live.hpa.desired_replicas) == (5, 6)


def test_without_an_hpa_status_current_replicas_are_the_targets_pods_not_min_replicas() -> None:
    live = live_config_from_manifests([_workload(replicas=7, status={"replicas": 8}), _hpa()], profile(), now=NOW)
    assert live.hpa is not None
    assert live.hpa.min_replicas == 2
    assert (live.hpa.current_replicas, live.hpa.desired_replicas) == (8, 7)


def test_without_any_status_current_replicas_are_the_targets_spec_replicas() -> None:
    live = live_config_from_manifests([_workload(replicas=7), _hpa()], profile(), now=NOW)
    assert live.hpa is not None
    assert (live.hpa.current_replicas, live.hpa.desired_replicas) == (7, 7)


def test_with_no_replica_count_anywhere_current_replicas_are_an_error_not_min_replicas() -> None:
    message = _error([_workload(replicas=None), _hpa()])
    assert message.startswith("HorizontalPodAutoscaler/checkout-api: status.currentReplicas is missing and "
                              "Deployment/api has no status.replicas or spec.replicas")


@pytest.mark.parametrize(("ini", "database", "sizes"), [
    # spaces around = in a connection string, as pgBouncer allows
    ("[databases]\napp = host=db pool_size = 50\n", "app", (50, 0)),
    # a quoted value holding what looks like a setting
    ("[databases]\napp = host=db password='x pool_size=1' pool_size=9\n", "app", (9, 0)),
    # an indented setting is a setting, not a continuation of the line before
    ("[pgbouncer]\nlisten_port = 6432\n    default_pool_size = 30\n", "app", (30, 0)),
    # database names are case-sensitive, as every name pgBouncer reads
    ("[databases]\nApp = host=db pool_size=4\napp = host=db pool_size=6\n[pgbouncer]\ndefault_pool_size = 8\n",
     "App", (4, 0)),
    ("[databases]\nApp = host=db pool_size=4\n[pgbouncer]\ndefault_pool_size = 8\nreserve_pool_size=2\n",
     "app", (8, 2)),
    # comments with ; or #, a later setting wins
    ("; sizes\n[pgbouncer]\n# old\ndefault_pool_size = 10\ndefault_pool_size = 12\n", "app", (12, 0)),
    # a comment after a section header
    ("[pgbouncer] ; main\ndefault_pool_size = 14\n", "app", (14, 0)),
    # a quoted value with '' inside it
    ("[databases]\napp = host=db password='it''s pool_size=1' pool_size=5\n", "app", (5, 0)),
    # pgBouncer 1.24's name for the database line's reserve (reserve_pool stays as its alias)
    ("[databases]\napp = host=db reserve_pool_size=7\n[pgbouncer]\nreserve_pool_size=2\n", "app", (20, 7)),
    # a number in quotes, as pgBouncer's parser takes it
    ("[databases]\napp = host=db pool_size='30'\n", "app", (30, 0)),
    # [pgbouncer] settings are read with strtol base 0: a leading 0 is octal, 0x hex, a + sign taken
    ("[pgbouncer]\ndefault_pool_size = 010\nreserve_pool_size = 0x1A\n", "app", (8, 26)),
    ("[pgbouncer]\ndefault_pool_size = +12\nreserve_pool_size = 0\n", "app", (12, 0)),
    # a [databases] line's pool_size is read with atoi: decimal, a leading 0 is no octal
    ("[databases]\napp = host=db pool_size=010\n", "app", (10, 0)),
    # a second [pgbouncer] section starts again from the defaults (pgBouncer fills them at a section's start)
    ("[pgbouncer]\ndefault_pool_size = 12\n[pgbouncer]\nreserve_pool_size = 2\n", "app", (20, 2)),
])
def test_pgbouncer_ini_is_read_as_pgbouncer_reads_it(ini: str, database: str, sizes: tuple[int, int]) -> None:
    pool = parse_pgbouncer_ini(ini, database=database)
    assert (pool.default_pool_size, pool.reserve_pool_size) == sizes


@pytest.mark.parametrize("connection", [
    "host=db password='x pool_size=99",  # an unclosed quote
    "host=db password=ab'pool_size=99",  # a quote inside a bare value
    "host=db my.pool_size=9",  # not a parameter name
])
def test_a_connection_string_pgbouncer_would_refuse_is_refused_not_searched(connection: str) -> None:
    with pytest.raises(WorkloadSpecError, match=r"pgbouncer.ini: \[databases\] app: not a key=value connection"):
        parse_pgbouncer_ini(f"[databases]\napp = {connection}\n", database="app")


@pytest.mark.parametrize(("ini", "said"), [
    ("[pgbouncer]\ndefault_pool_size = 11\nmax_db_connections = 4\n", "[pgbouncer] max_db_connections = 4 caps "
     "the pool under 11"),
    ("[pgbouncer]\nmax_user_connections = 3\n", "[pgbouncer] max_user_connections = 3 caps the pool under "
     "20"),
    ("[databases]\napp = host=db max_db_connections=5\n", "[databases] app max_db_connections = 5 caps the pool "
     "under 20"),
])
def test_a_cap_on_server_connections_below_the_pool_size_is_refused(ini: str, said: str) -> None:
    # pgBouncer opens no more than the cap: a saturated pool of 11 capped at 4 reads 36% used, and a grow
    # changes nothing.
    with pytest.raises(WorkloadSpecError, match=re.escape(f"pgbouncer.ini: {said}")):
        parse_pgbouncer_ini(ini, database="app")


@pytest.mark.parametrize(("ini", "said"), [
    # a database line's 0 is no cap of its own: the [pgbouncer] one still holds (pgBouncer shows 4)
    ("[databases]\napp = host=db max_db_connections=0\n[pgbouncer]\ndefault_pool_size = 11\n"
     "max_db_connections = 4\n", "[pgbouncer] max_db_connections = 4 caps the pool under 11"),
    # a user's own cap (which user the application is, the manifests do not say)
    ("[users]\napp = max_user_connections=3\n[pgbouncer]\ndefault_pool_size = 11\n",
     "[users] app max_user_connections = 3 caps the pool under 11"),
])
def test_a_cap_pgbouncer_applies_through_a_fallback_or_a_user_is_refused_too(ini: str, said: str) -> None:
    with pytest.raises(WorkloadSpecError, match=re.escape(f"pgbouncer.ini: {said}")):
        parse_pgbouncer_ini(ini, database="app")


def test_a_cap_under_the_largest_pool_perfpilot_may_set_is_refused() -> None:
    # A cap of 12 holds a pool of 11, but not the 16 a grow within spec.pool.size.max would write.
    ini = "[pgbouncer]\ndefault_pool_size = 11\nmax_db_connections = 12\n"
    assert parse_pgbouncer_ini(ini, database="app").default_pool_size == 11
    with pytest.raises(WorkloadSpecError, match=re.escape("max_db_connections = 12 caps the pool under 50 (its size, "
                                                          "or spec.pool.size.max if larger)")):
        parse_pgbouncer_ini(ini, database="app", size_max=50)


@pytest.mark.parametrize("ini", [
    "[pgbouncer]\ndefault_pool_size = 11\nmax_db_connections = 11\nmax_user_connections = 0\n",
    # the database's own cap replaces the [pgbouncer] one for it (pgBouncer shows max_connections 50)
    "[databases]\napp = host=db max_db_connections=50\n[pgbouncer]\ndefault_pool_size = 11\nmax_db_connections = 4\n",
])
def test_a_cap_at_or_above_the_pool_size_leaves_the_pool_to_tune(ini: str) -> None:
    assert parse_pgbouncer_ini(ini, database="app").default_pool_size == 11


def test_a_poolers_cap_below_its_pool_size_is_refused() -> None:
    pooler = {"kind": "Pooler", "metadata": {"name": "pooler-rw"}, "spec": {"instances": 1, "pgbouncer": {
        "parameters": {"default_pool_size": "10", "max_db_connections": "6"}}}}
    pool = {"enabled": True, "pgbouncer": {"poolerRef": {"name": "pooler-rw"}, "database": "app"}}
    assert _error([_workload(), pooler], pool=pool).startswith(
        "Pooler/pooler-rw: spec.pgbouncer.parameters.max_db_connections = 6 caps the pool under 100")


def test_the_star_fallback_databases_pool_size_applies_to_a_database_without_a_line() -> None:
    ini = "[databases]\n* = host=db pool_size=12\nother = host=db pool_size=3\n[pgbouncer]\ndefault_pool_size = 30\n"
    assert parse_pgbouncer_ini(ini, database="app").default_pool_size == 12
    assert parse_pgbouncer_ini(ini, database="other").default_pool_size == 3


CONFIG_MAP_POOL = {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}, "database": "app"}}


def _pgbouncer_config_map(ini: str) -> dict[str, object]:
    return {"kind": "ConfigMap", "metadata": {"name": "pgbouncer"}, "data": {"pgbouncer.ini": ini}}


def _pgbouncer_deployment(volume: dict[str, object], replicas: int = 3) -> dict[str, object]:
    return {"kind": "Deployment", "metadata": {"name": "pgbouncer"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "pgbouncer"}],
                                                                 "volumes": [{"name": "config", **volume}]}}}}


def test_a_per_database_pool_size_in_the_config_map_is_the_live_pool_size() -> None:
    ini = "[databases]\napp = host=db pool_size=7\n[pgbouncer]\ndefault_pool_size = 30\n"
    documents = [_workload(), _pgbouncer_config_map(ini),
                 _pgbouncer_deployment({"configMap": {"name": "pgbouncer"}})]
    live = live_config_from_manifests(documents, profile(pool=CONFIG_MAP_POOL), now=NOW)
    assert live.pool is not None
    assert (live.pool.default_pool_size, live.pool.pooler_replicas) == (7, 3)


def test_a_config_map_mounted_through_a_projected_volume_counts_its_workloads_replicas() -> None:
    volume = {"projected": {"sources": [{"secret": {"name": "tls"}}, {"configMap": {"name": "pgbouncer"}}]}}
    documents = [_workload(), _pgbouncer_config_map("[pgbouncer]\n"), _pgbouncer_deployment(volume, replicas=4)]
    live = live_config_from_manifests(documents, profile(pool=CONFIG_MAP_POOL), now=NOW)
    assert live.pool is not None and live.pool.pooler_replicas == 4


def test_the_pool_names_every_workload_mounting_its_config_map_and_no_other_pgbouncer() -> None:
    # The pool size served is read from these workloads' pods alone (observe/snapshot.py): a pgBouncer on
    # another ConfigMap, serving the same database at its own size, is another pool.
    second = {**_pgbouncer_deployment({"configMap": {"name": "pgbouncer"}}), "metadata": {"name": "pgbouncer-b"}}
    other = {**_pgbouncer_deployment({"configMap": {"name": "pgbouncer-ro"}}), "metadata": {"name": "pgbouncer-ro"}}
    documents = [_workload(), _pgbouncer_config_map("[pgbouncer]\n"),
                 _pgbouncer_deployment({"configMap": {"name": "pgbouncer"}}), other, second]
    live = live_config_from_manifests(documents, profile(pool=CONFIG_MAP_POOL), now=NOW)
    assert live.pool is not None and live.pool.pooler_workloads == ("pgbouncer", "pgbouncer-b")


def test_a_pgbouncer_scaled_by_an_hpa_counts_its_max_replicas_in_the_server_budget() -> None:
    # Scaled out to 6, six pools each open their own server connections: 2 would let the pool grow three times
    # past what maxServerConnections leaves.
    pooler_hpa = _hpa({"scaleTargetRef": {"kind": "Deployment", "name": "pgbouncer"}, "minReplicas": 2,
                       "maxReplicas": 6}, name="pgbouncer")
    documents = [_workload(), _pgbouncer_config_map("[pgbouncer]\n"),
                 _pgbouncer_deployment({"configMap": {"name": "pgbouncer"}}, replicas=2), pooler_hpa]
    live = live_config_from_manifests(documents, profile(pool=CONFIG_MAP_POOL), now=NOW)
    assert live.pool is not None and live.pool.pooler_replicas == 6


def test_a_cloudnativepg_pooler_scaled_by_an_hpa_counts_its_max_replicas_in_the_server_budget() -> None:
    pooler = {"kind": "Pooler", "metadata": {"name": "pooler-rw"},
              "spec": {"instances": 2, "pgbouncer": {"parameters": {"default_pool_size": "10"}}}}
    pooler_hpa = _hpa({"scaleTargetRef": {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Pooler",
                                          "name": "pooler-rw"}, "maxReplicas": 5}, name="pooler-rw")
    pool = {"enabled": True, "pgbouncer": {"poolerRef": {"name": "pooler-rw"}, "database": "app"}}
    live = live_config_from_manifests([_workload(), pooler, pooler_hpa], profile(pool=pool), now=NOW)
    assert live.pool is not None and (live.pool.default_pool_size, live.pool.pooler_replicas) == (10, 5)


def test_pgbouncer_replicas_are_not_guessed_when_no_workload_mounts_the_config_map() -> None:
    # Each replica runs its own pool: taking 1 would let the pool grow past maxServerConnections.
    documents = [_workload(), _pgbouncer_config_map("[pgbouncer]\n")]
    with pytest.raises(WorkloadSpecError, match=re.escape("spec.pool.pgbouncer.configMapRef.name pgbouncer: no "
                                                          "Deployment or StatefulSet among the manifests mounts")):
        live_config_from_manifests(documents, profile(pool=CONFIG_MAP_POOL), now=NOW)


# --- OOMKilled terminations of the workload's Pods ---------------------------------------------------------


def _selected_workload(**selector: object) -> dict[str, object]:
    manifest = _workload()
    spec = manifest["spec"]
    assert isinstance(spec, dict)
    spec["selector"] = selector or {"matchLabels": {"app": "api"}}
    return manifest


def _pod(name: str, labels: dict[str, str], *, last: dict[str, object] | None = None,
         state: dict[str, object] | None = None) -> dict[str, object]:
    status: dict[str, object] = {"name": "app", "state": state or {"running": {}}}
    if last is not None:
        status["lastState"] = last
    return {"kind": "Pod", "metadata": {"name": name, "labels": labels}, "status": {"containerStatuses": [status]}}


def _oom(minutes_ago: float) -> dict[str, object]:
    finished = NOW.timestamp() - minutes_ago * 60
    return {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                           "finishedAt": datetime.fromtimestamp(finished, UTC).isoformat().replace("+00:00", "Z")}}


def test_oom_kills_of_the_workloads_pods_within_the_window_are_counted() -> None:
    documents = [
        _selected_workload(),
        _pod("api-1", {"app": "api"}, last=_oom(5)),  # in the 30 min window
        _pod("api-2", {"app": "api"}, last=_oom(45)),  # before it
        _pod("api-3", {"app": "api"}, state=_oom(1)),  # terminated right now
        _pod("web-1", {"app": "web"}, last=_oom(1)),  # another workload's pod
        _pod("api-4", {"app": "api"}, last={"terminated": {"reason": "Error", "finishedAt": "2026-11-29T11:59:00Z"}}),
    ]
    live = live_config_from_manifests(documents, profile(), now=NOW)
    assert (live.oom_kills_in_window, live.oom_kills_by_container) == (2, {"app": 2})


def test_pods_without_oom_kills_count_zero_so_memory_may_be_cut() -> None:
    documents = [_selected_workload(), _pod("api-1", {"app": "api"}, last=_oom(31))]
    assert live_config_from_manifests(documents, profile(), now=NOW).oom_kills_in_window == 0


def test_the_window_is_the_profiles_guardrails_window() -> None:
    documents = [_selected_workload(), _pod("api-1", {"app": "api"}, last=_oom(31))]
    live = live_config_from_manifests(documents, profile(guardrails={"window": "1h"}), now=NOW)
    assert live.oom_kills_in_window == 1


def test_match_expressions_select_pods_like_the_api_server() -> None:
    workload = _selected_workload(matchLabels={"app": "api"}, matchExpressions=[
        {"key": "track", "operator": "In", "values": ["stable", "canary"]},
        {"key": "debug", "operator": "DoesNotExist"},
    ])
    documents = [
        workload,
        _pod("api-1", {"app": "api", "track": "canary"}, last=_oom(1)),
        _pod("api-2", {"app": "api", "track": "shadow"}, last=_oom(1)),  # NotIn the values
        _pod("api-3", {"app": "api", "track": "stable", "debug": "1"}, last=_oom(1)),  # debug exists
    ]
    assert live_config_from_manifests(documents, profile(), now=NOW).oom_kills_in_window == 1


@pytest.mark.parametrize(
    ("documents", "reason"),
    [
        ([_workload()], "no Pods among the manifests"),
        ([_workload(), _pod("api-1", {"app": "api"})], "Deployment/api has no spec.selector"),
        ([_selected_workload(), _pod("web-1", {"app": "web"})], "no Pod of Deployment/api among the manifests"),
    ],
)
def test_oom_kills_are_unknown_when_the_pods_are_not_among_the_manifests(
    documents: list[object], reason: str
) -> None:
    oom = live_config_from_manifests(documents, profile(), now=NOW).oom_kills_in_window
    assert isinstance(oom, Unknown)
    assert reason in oom.reason


@pytest.mark.parametrize("finished", ["yesterday", "2026-11-29T11:59:00"])  # the second lacks its offset
def test_an_unreadable_finish_time_names_the_pod_and_field(finished: str) -> None:
    documents = [_selected_workload(), _pod("api-1", {"app": "api"},
                                            last={"terminated": {"reason": "OOMKilled", "finishedAt": finished}})]
    assert (f"Pod/api-1: status.containerStatuses[0].lastState.terminated.finishedAt: not an RFC 3339 time "
            f"(got '{finished}')") in _error(documents)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"key": "track", "operator": "Near", "values": []},
         "Deployment/api: spec.selector.matchExpressions[0].operator: not In, NotIn, Exists or DoesNotExist "
         "(got 'Near')"),
        ({"operator": "Exists"}, "Deployment/api: spec.selector.matchExpressions[0].key is required"),
    ],
)
def test_an_unusable_selector_expression_names_the_field(expression: dict[str, object], expected: str) -> None:
    documents = [_selected_workload(matchExpressions=[expression]), _pod("api-1", {"app": "api"})]
    assert expected in _error(documents)


def test_an_injected_sidecars_oom_kills_are_not_the_apps() -> None:
    pod = _pod("api-1", {"app": "api"})
    status = pod["status"]
    assert isinstance(status, dict)
    status["containerStatuses"] = [{"name": "istio-proxy", "state": {"running": {}}, "lastState": _oom(5)},
                                   {"name": "app", "state": {"running": {}}}]
    assert live_config_from_manifests([_selected_workload(), pod], profile(), now=NOW).oom_kills_in_window == 0


def test_a_pod_without_its_status_leaves_the_oom_kills_unknown() -> None:
    pod = {"kind": "Pod", "metadata": {"name": "api-1", "labels": {"app": "api"}}}  # e.g. through kubectl neat
    oom = live_config_from_manifests([_selected_workload(), pod], profile(), now=NOW).oom_kills_in_window
    assert oom == Unknown("Pod/api-1 has no status: OOMKilled terminations not read")


def test_only_pods_of_the_profiles_namespace_count() -> None:
    elsewhere = _pod("api-1", {"app": "api"}, last=_oom(5))
    metadata = elsewhere["metadata"]
    assert isinstance(metadata, dict)
    metadata["namespace"] = "staging"  # the profile is in shop
    unnamed = _pod("api-2", {"app": "api"}, last=_oom(5))  # written without a namespace: the profile's
    live = live_config_from_manifests([_selected_workload(), elsewhere, unnamed], profile(), now=NOW)
    assert live.oom_kills_in_window == 1


def test_a_kill_after_the_evaluation_time_is_not_counted() -> None:
    documents = [_selected_workload(), _pod("api-1", {"app": "api"}, last=_oom(-60))]  # an hour after --at
    assert live_config_from_manifests(documents, profile(), now=NOW).oom_kills_in_window == 0


@pytest.mark.parametrize("finished", [datetime(2026, 11, 29, 11, 55, tzinfo=UTC), "2026-11-29t11:55:00z"])
def test_an_unquoted_or_lowercase_finish_time_is_read(finished: object) -> None:
    last = {"terminated": {"reason": "OOMKilled", "finishedAt": finished}}
    documents = [_selected_workload(), _pod("api-1", {"app": "api"}, last=last)]
    assert live_config_from_manifests(documents, profile(), now=NOW).oom_kills_in_window == 1


def test_not_in_and_exists_select_pods_like_the_api_server() -> None:
    workload = _selected_workload(matchExpressions=[
        {"key": "track", "operator": "NotIn", "values": ["shadow"]},
        {"key": "app", "operator": "Exists"},
    ])
    documents = [
        workload,
        _pod("api-1", {"app": "api"}, last=_oom(1)),  # no track label: NotIn holds
        _pod("api-2", {"app": "api", "track": "shadow"}, last=_oom(1)),
        _pod("web-1", {"tier": "web"}, last=_oom(1)),  # no app label
    ]
    assert live_config_from_manifests(documents, profile(), now=NOW).oom_kills_in_window == 1


# --- review of real kubectl output: namespaces, HPA forms, named objects, newer fields, API units ---------

def _in(namespace: str, manifest: dict[str, Any]) -> dict[str, object]:
    return {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}


def test_objects_of_other_namespaces_are_not_the_profiles_even_when_listed_first() -> None:
    # kubectl get -A: another namespace's api, with bigger pods and another HPA, comes first.
    other = [_in("other", _workload([{"name": "app", "resources": {"requests": {"cpu": "4"}}}])),
             _in("other", _hpa({"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 50},
                               {"currentReplicas": 3, "desiredReplicas": 3}, name="api"))]
    own = [_in("shop", _workload()), _in("shop", _hpa(status={"currentReplicas": 3, "desiredReplicas": 3}))]
    live = live_config_from_manifests([*other, *own], profile(), now=NOW)
    assert live.cpu_request_millicores_per_pod == 500
    assert live.hpa is not None and live.hpa.max_replicas == 10


def test_an_autoscaling_v1_hpa_has_its_cpu_target() -> None:
    hpa = _hpa({"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "minReplicas": 2, "maxReplicas": 10,
                "targetCPUUtilizationPercentage": 60}, {"currentReplicas": 3, "desiredReplicas": 3})
    live = live_config_from_manifests([_workload(), hpa], profile(), now=NOW)
    assert live.hpa is not None and live.hpa.cpu_target_percent == 60


_MEMORY_TARGET = {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization",
                                                                                  "averageUtilization": 75}}}
_EXTERNAL = {"type": "External", "external": {"metric": {"name": "queue_depth"},
                                              "target": {"type": "AverageValue", "averageValue": "30"}}}
_CPU_AVERAGE_VALUE = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue",
                                                                                 "averageValue": "500m"}}}


@pytest.mark.parametrize(("extra", "annotations", "cpu_target"), [
    ({}, {}, 80),  # autoscaling/v2 without metrics (kubectl get shows the default filled in; by hand it is not)
    ({"metrics": []}, {}, 80),
    ({"metrics": [_MEMORY_TARGET]}, {}, None),  # it scales on memory: no CPU target to speak of
    ({"metrics": [_EXTERNAL]}, {}, None),
    ({"metrics": [_CPU_AVERAGE_VALUE]}, {}, None),  # CPU, but not as a utilisation perfpilot could couple
    # autoscaling/v1 keeps an HPA's other metrics in an annotation: one on memory alone has no CPU target
    ({}, {"autoscaling.alpha.kubernetes.io/metrics": "[{\"type\": \"Resource\"}]"}, None),
])
def test_only_an_hpa_without_any_metric_gets_the_api_servers_cpu_target_of_80(
    extra: dict[str, object], annotations: dict[str, str], cpu_target: int | None
) -> None:
    hpa = _hpa({"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 10, **extra},
               {"currentReplicas": 3, "desiredReplicas": 3})
    metadata = hpa["metadata"]
    assert isinstance(metadata, dict)
    metadata["annotations"] = annotations
    live = live_config_from_manifests([_workload(), hpa], profile(), now=NOW)
    assert live.hpa is not None and live.hpa.cpu_target_percent == cpu_target


def test_a_container_resource_target_after_a_resource_one_is_refused_as_well() -> None:
    resource = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                           "averageUtilization": 60}}}
    container = {"type": "ContainerResource", "containerResource": {
        "name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 50}}}
    hpa = _hpa({"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 10,
                "metrics": [resource, container]}, {"currentReplicas": 3, "desiredReplicas": 3})
    with pytest.raises(WorkloadSpecError, match=r"spec\.metrics\[1\]\.type: ContainerResource cpu targets are not"):
        live_config_from_manifests([_workload(), hpa], profile(), now=NOW)


def test_a_limit_without_a_request_is_the_request_as_the_api_server_stores_it() -> None:
    workload = _workload([{"name": "app", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}])
    (container,) = live_config_from_manifests([workload], profile(), now=NOW).containers
    assert (container.cpu_request_millicores, container.memory_request_bytes) == (2000, 2**30)


def test_a_container_status_name_that_is_not_a_string_is_named() -> None:
    pod = _pod("api-1", {"app": "api"})
    pod["status"] = {"containerStatuses": [{"name": ["app"], "state": {"running": {}}}]}
    message = _error([_selected_workload(), pod])
    assert message.startswith("Pod/api-1: status.containerStatuses[0].name: expected a string")


def test_a_container_resource_cpu_target_is_refused_rather_than_read_as_none() -> None:
    metric = {"type": "ContainerResource", "containerResource": {
        "name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 60}}}
    hpa = _hpa({"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 10, "metrics": [metric]},
               {"currentReplicas": 3, "desiredReplicas": 3})
    expected = (r"HorizontalPodAutoscaler/checkout-api: spec\.metrics\[0\]\.type: ContainerResource cpu targets are "
                r"not supported.*'ContainerResource'")
    with pytest.raises(WorkloadSpecError, match=expected):
        live_config_from_manifests([_workload(), hpa], profile(), now=NOW)
    # A profile that does not tune requests couples nothing with the target: it reads as none.
    live = live_config_from_manifests([_workload(), hpa], profile(resources={"enabled": False}), now=NOW)
    assert live.hpa is not None and live.hpa.cpu_target_percent is None


@pytest.mark.parametrize(("spec", "message"), [
    ({"hpa": {"name": "api-hpa"}}, "spec.hpa.name api-hpa: no HorizontalPodAutoscaler of that name"),
    ({"pool": {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}}}},
     "spec.pool.pgbouncer.configMapRef.name pgbouncer: no ConfigMap of that name"),
    ({"pool": {"enabled": True, "pgbouncer": {"poolerRef": {"name": "warehouse"}}}},
     "spec.pool.pgbouncer.poolerRef.name warehouse: no Pooler of that name"),
])
def test_an_object_the_profile_names_but_the_manifests_lack_is_an_error_not_none(
    spec: dict[str, object], message: str
) -> None:
    with pytest.raises(WorkloadSpecError, match=re.escape(message)):
        live_config_from_manifests([_workload()], profile(**spec), now=NOW)


def test_a_behaviour_field_perfpilot_does_not_tune_is_left_out_not_refused() -> None:
    hpa = _hpa({"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 10, "behavior": {
        "scaleDown": {"tolerance": "0.05", "stabilizationWindowSeconds": 120,
                      "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}}},
               {"currentReplicas": 3, "desiredReplicas": 3})
    live = live_config_from_manifests([_workload(), hpa], profile(), now=NOW)
    assert live.hpa is not None and live.hpa.scale_down is not None
    assert live.hpa.scale_down.stabilization_window_seconds == 120


@pytest.mark.parametrize(("cpu", "millicores"), [("250000n", 1), ("100u", 1), ("1500000000n", 1500)])
def test_cpu_in_the_api_servers_nano_and_micro_units_is_read_rounded_up(cpu: str, millicores: int) -> None:
    live = live_config_from_manifests([_workload([{"name": "app", "resources": {"requests": {"cpu": cpu}}}])],
                                      profile(), now=NOW)
    assert live.cpu_request_millicores_per_pod == millicores


def _owned(pod: dict[str, Any], kind: str, owner: str) -> dict[str, object]:
    owners = [{"apiVersion": "apps/v1", "kind": kind, "name": owner, "controller": True}]
    return {**pod, "metadata": {**pod["metadata"], "ownerReferences": owners}}


def test_a_canary_the_selector_also_matches_is_another_workloads_pod() -> None:
    documents = [
        _selected_workload(),
        _owned(_pod("api-7d9f-abcde", {"app": "api"}), "ReplicaSet", "api-7d9f8b6c5"),
        _owned(_pod("api-canary-1", {"app": "api", "track": "canary"}, last=_oom(2)), "ReplicaSet",
               "api-canary-5f6d7c8b9"),
    ]
    assert live_config_from_manifests(documents, profile(), now=NOW).oom_kills_in_window == 0
    owned = [documents[0], _owned(_pod("api-1", {"app": "api"}, last=_oom(2)), "ReplicaSet", "api-7d9f8b6c5")]
    assert live_config_from_manifests(owned, profile(), now=NOW).oom_kills_in_window == 1


def test_with_a_pod_template_hash_only_the_replica_set_named_after_it_is_the_deployments() -> None:
    # A hand-made ReplicaSet "api-v2" would pass a name pattern; the hash label settles it.
    hashed = {"app": "api", "pod-template-hash": "7d9f8b6c5"}
    documents = [_selected_workload(),
                 _owned(_pod("api-v2-x", hashed, last=_oom(2)), "ReplicaSet", "api-v2"),
                 _owned(_pod("api-7d9f8b6c5-y", hashed), "ReplicaSet", "api-7d9f8b6c5")]
    assert live_config_from_manifests(documents, profile(), now=NOW).oom_kills_in_window == 0


def test_a_native_sidecar_counts_in_the_pod_request_and_its_oom_kills_are_seen() -> None:
    sidecar = {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}}
    plain_init = {"name": "migrate", "resources": {"requests": {"cpu": "2"}}}  # runs to completion first
    workload: dict[str, Any] = _selected_workload()
    workload["spec"]["template"]["spec"]["initContainers"] = [plain_init, sidecar]
    pod: dict[str, Any] = _pod("api-1", {"app": "api"})
    pod["status"]["initContainerStatuses"] = [{"name": "proxy", "state": {"running": {}}, "lastState": _oom(3)}]
    live = live_config_from_manifests([workload, pod], profile(), now=NOW)
    assert [c.name for c in live.containers] == ["app", "proxy"]
    assert live.cpu_request_millicores_per_pod == 1000
    assert live.oom_kills_in_window == 1
    assert live.oom_kills_by_container == {"app": 0, "proxy": 1}  # the proxy's kill, not the app's

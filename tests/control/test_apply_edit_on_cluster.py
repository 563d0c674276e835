"""One edit written through the emulated API (apply_edit): the value is read again first and written only if it is
still the one the decision moved from; the JSON patch leaves everything else of the object as it was."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubeharness import MERGE_PATCH, EmulatedCluster
from shop_scenario import AT, profile_named, seed

from perfpilot.actuate.kube import KubeApi
from perfpilot.api.spec import PerformanceProfile
from perfpilot.api.status import ContainerResources, Edit, Setting
from perfpilot.control.cycle import EditNotWritten, apply_edit

pytestmark = pytest.mark.integration

PROFILE = PerformanceProfile.model_validate(profile_named())
CPU_TARGET_70_TO_60 = Edit(setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60)


def _hpa(kube: EmulatedCluster) -> dict[str, Any]:
    return kube.get("autoscaling/v2", "HorizontalPodAutoscaler", "api", "shop")


def _deployment(kube: EmulatedCluster) -> dict[str, Any]:
    return kube.get("apps/v1", "Deployment", "api", "shop")


def test_an_hpa_target_is_written_and_the_rest_of_the_hpa_kept(kube: EmulatedCluster) -> None:
    seed(kube)
    before = _hpa(kube)
    assert apply_edit(KubeApi(kube.api), PROFILE, CPU_TARGET_70_TO_60, target="HorizontalPodAutoscaler/api", now=AT)
    after = _hpa(kube)
    expected = copy.deepcopy(before["spec"])
    expected["metrics"][0]["resource"]["target"]["averageUtilization"] = 60
    assert after["spec"] == expected
    assert after["status"] == before["status"]


def test_a_resources_edit_changes_that_container_and_keeps_its_image_and_the_sidecar(kube: EmulatedCluster) -> None:
    seed(kube)
    containers = _deployment(kube)["spec"]["template"]["spec"]["containers"]
    live = [ContainerResources(name="app", cpu_request_millicores=500, cpu_limit_millicores=1000,
                               memory_request_bytes=512 * 2**20, memory_limit_bytes=2**30),
            ContainerResources(name="istio-proxy", cpu_request_millicores=100, cpu_limit_millicores=200,
                               memory_request_bytes=128 * 2**20, memory_limit_bytes=256 * 2**20)]
    wanted = [live[0].model_copy(update={"cpu_request_millicores": 750, "cpu_limit_millicores": 1500}), live[1]]
    edit = Edit(setting=Setting.RESOURCES, from_value=live, to_value=wanted)
    assert apply_edit(KubeApi(kube.api), PROFILE, edit, target="Deployment/api", now=AT)
    after = _deployment(kube)["spec"]["template"]["spec"]["containers"]
    expected = copy.deepcopy(containers)
    expected[0]["resources"]["requests"]["cpu"] = "750m"
    expected[0]["resources"]["limits"]["cpu"] = "1500m"
    assert after == expected
    assert _deployment(kube)["metadata"]["generation"] == 2  # a new template: the pods roll


def test_a_value_already_written_is_not_written_again(kube: EmulatedCluster) -> None:
    seed(kube)
    api = KubeApi(kube.api)
    assert apply_edit(api, PROFILE, CPU_TARGET_70_TO_60, target="HorizontalPodAutoscaler/api", now=AT)
    first = len(list(kube.emulator))
    assert not apply_edit(api, PROFILE, CPU_TARGET_70_TO_60, target="HorizontalPodAutoscaler/api", now=AT)
    # Read again, and nothing sent: the emulator keeps the resourceVersion of a patch that changes nothing, so
    # only the requests show that no patch went out.
    methods = {str(request.method).rsplit(".", 1)[-1].upper() for request in list(kube.emulator)[first:]}
    assert methods == {"GET"}


def test_a_value_someone_else_moved_since_the_decision_is_theirs(kube: EmulatedCluster) -> None:
    seed(kube)
    path = kube.path("autoscaling/v2", "HorizontalPodAutoscaler", "shop", "api")
    hpa = _hpa(kube)
    hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] = 75
    kube.request("PATCH", path, {"spec": {"metrics": hpa["spec"]["metrics"]}},
                 content_type=MERGE_PATCH).raise_for_status()
    moved = _hpa(kube)
    with pytest.raises(EditNotWritten, match=r"hpa\.cpuTarget on HorizontalPodAutoscaler/api is no longer the value"):
        apply_edit(KubeApi(kube.api), PROFILE, CPU_TARGET_70_TO_60, target="HorizontalPodAutoscaler/api", now=AT)
    assert _hpa(kube) == moved


def _owned_by_keda(kube: EmulatedCluster) -> None:
    path = kube.path("autoscaling/v2", "HorizontalPodAutoscaler", "shop", "api")
    owner = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "api", "uid": "1", "controller": True}
    kube.request("PATCH", path, {"metadata": {"ownerReferences": [owner]}},
                 content_type=MERGE_PATCH).raise_for_status()


def test_an_hpa_that_keda_writes_is_changed_through_its_scaled_object(kube: EmulatedCluster) -> None:
    seed(kube)
    _owned_by_keda(kube)
    kube.create({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                 "metadata": {"name": "api", "namespace": "shop"},
                 "spec": {"scaleTargetRef": {"name": "api"}, "maxReplicaCount": 10,
                          "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}]}})
    before = _hpa(kube)
    assert apply_edit(KubeApi(kube.api), PROFILE, CPU_TARGET_70_TO_60, target="HorizontalPodAutoscaler/api", now=AT)
    scaled_object = kube.get("keda.sh/v1alpha1", "ScaledObject", "api", "shop")
    assert scaled_object["spec"]["triggers"][0]["metadata"]["value"] == "60"
    assert scaled_object["metadata"]["managedFields"][-1]["manager"] == "perfpilot"
    assert _hpa(kube) == before  # KEDA, not perfpilot, writes its HPA


def test_an_hpa_whose_scaled_object_is_gone_is_not_written(kube: EmulatedCluster) -> None:
    seed(kube)
    _owned_by_keda(kube)
    before = _hpa(kube)
    with pytest.raises(EditNotWritten, match="belongs to KEDA ScaledObject api, which is gone"):
        apply_edit(KubeApi(kube.api), PROFILE, CPU_TARGET_70_TO_60, target="HorizontalPodAutoscaler/api", now=AT)
    assert _hpa(kube) == before

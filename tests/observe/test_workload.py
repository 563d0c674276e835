"""LiveConfig from manifests: requests/limits from the pod template, the HPA, the pool's configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from perfpilot.api.spec import PerformanceProfile
from perfpilot.observe.workload import (
    WorkloadSpecError,
    live_config_from_manifests,
    parse_pgbouncer_ini,
    rollout_in_progress,
)

DATA = Path(__file__).parent / "data"


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
    live = live_config_from_manifests(load("shop-api-workload.yaml"), shop)
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
        pool={"enabled": True, "pgbouncer": {"poolerRef": {"name": "warehouse"}}}))
    assert live.paused
    assert live.containers[0].cpu_request_millicores is None  # not set is not 0
    assert live.pool is not None
    assert (live.pool.default_pool_size, live.pool.reserve_pool_size, live.pool.pooler_replicas) == (25, 0, 3)
    assert live.hpa is None


def test_a_database_pool_size_overrides_the_default() -> None:
    ini = "[databases]\napp = host=db pool_size=7 reserve_pool=1\n[pgbouncer]\ndefault_pool_size = 30\n"
    pool = parse_pgbouncer_ini(ini, database="app")
    assert (pool.default_pool_size, pool.reserve_pool_size) == (7, 1)
    assert parse_pgbouncer_ini(ini, database="other").default_pool_size == 30


def test_a_missing_workload_is_a_clear_error() -> None:
    with pytest.raises(WorkloadSpecError, match="no Deployment named api among the manifests"):
        live_config_from_manifests([{"kind": "Deployment", "metadata": {"name": "web"}}], profile())


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
    (3, {"observedGeneration": 3, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 3}, True),
    (3, None, False),
])
def test_a_rollout_is_in_progress_until_the_status_shows_every_pod_updated_and_available(
    generation: int, status: dict[str, int] | None, rolling: bool
) -> None:
    assert rollout_in_progress(_deployment(generation, status)) is rolling

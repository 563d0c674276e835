"""Edges of the observe layer's pure parts that the other observe tests leave open (found by mutation):
series.py's rules and histogram_quantile, workload.py's defaults, refusals and rollout/OOM rules, and
snapshot.py's query plan (the cutting of results per profile is tested on a real Prometheus elsewhere)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from perfpilot.api.spec import PerformanceProfile
from perfpilot.observe.promql import PeakName, SignalName
from perfpilot.observe.reader import (
    PrometheusSettings,
)
from perfpilot.observe.series import expected_points, histogram_quantile, minimum_points
from perfpilot.observe.snapshot import (
    plan_queries,
)
from perfpilot.observe.workload import (
    WorkloadSpecError,
    flatten,
    live_config_from_manifests,
    oom_kills_of,
    parse_pgbouncer_ini,
    rollout_in_progress,
)
from perfpilot.tuning.observations import Unknown

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
INF = math.inf


# --- series.py: the rules' edges -----------------------------------------------------------------------------


def test_a_zero_min_share_still_needs_one_point() -> None:
    assert minimum_points(window_seconds=1800, step_seconds=60, min_share=0.0) == 1


def test_a_zero_step_is_a_value_error_not_a_division_by_zero() -> None:
    with pytest.raises(ValueError, match="step must be positive"):
        expected_points(window_seconds=1800, step_seconds=0)


def test_equal_bounds_of_several_series_add_their_counts() -> None:
    # Two series of one histogram that differ in another label: 10 + 0 at 0.1, 10 + 40 at 1.0 and +Inf.
    buckets = [(0.1, 10.0), (1.0, 10.0), (INF, 10.0), (0.1, 0.0), (1.0, 40.0), (INF, 40.0)]
    # rank 25 of 50 lies in (0.1, 1.0]: 0.1 + 0.9 * (25 - 10) / 40
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1 + 0.9 * 15 / 40)


def test_a_count_that_goes_down_is_raised_before_the_rank_is_looked_up_past_it() -> None:
    # The 0.5 bucket's 60 is raised to 70: rank 75 lies in (0.5, 1.0] at 0.5 + 0.5 * (75 - 70) / (90 - 70).
    buckets = [(0.1, 20.0), (0.2, 70.0), (0.5, 60.0), (1.0, 90.0), (INF, 100.0)]
    assert histogram_quantile(0.75, buckets) == pytest.approx(0.625)


def test_a_rank_equal_to_a_buckets_count_is_in_that_bucket() -> None:
    # sort.Search finds the first bucket whose count is >= the rank: 0.1, not the +Inf bucket's 0.2.
    assert histogram_quantile(0.5, [(0.1, 10.0), (0.2, 10.0), (INF, 20.0)]) == pytest.approx(0.1)


def test_quantile_zero_in_an_empty_lowest_bucket_at_zero_is_that_bound() -> None:
    assert histogram_quantile(0.0, [(0.0, 0.0), (1.0, 10.0), (INF, 10.0)]) == 0.0


def test_quantile_zero_in_an_empty_positive_lowest_bucket_is_nan_not_an_error() -> None:
    assert math.isnan(histogram_quantile(0.0, [(0.1, 0.0), (0.2, 10.0), (INF, 10.0)]))


# --- workload.py: builders ----------------------------------------------------------------------------------


def _profile(**spec: object) -> PerformanceProfile:
    return PerformanceProfile.model_validate({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"targetRef": {"kind": "Deployment", "name": "api"}, **spec},
    })


def _workload(*, replicas: object = 3, pod_spec: dict[str, Any] | None = None, selector: object = None,
              kind: str = "Deployment", status: object = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"spec": pod_spec or {
        "containers": [{"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    if selector is not None:
        spec["selector"] = selector
    manifest: dict[str, Any] = {"kind": kind, "metadata": {"name": "api"}, "spec": spec}
    if status is not None:
        manifest["status"] = status
    return manifest


def _hpa(spec: dict[str, Any] | None = None, *, name: str = "api") -> dict[str, Any]:
    return {"kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"}, "maxReplicas": 10, **(spec or {})}}


def _pod(name: str, *, namespace: str | None = None, last: dict[str, Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"name": "app", "state": {"running": {}}}
    if last is not None:
        status["lastState"] = last
    metadata: dict[str, Any] = {"name": name, "labels": {"app": "api"}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"kind": "Pod", "metadata": metadata, "status": {"containerStatuses": [status]}}


def _oom(finished: datetime | None) -> dict[str, Any]:
    terminated: dict[str, Any] = {"reason": "OOMKilled", "exitCode": 137}
    if finished is not None:
        terminated["finishedAt"] = finished.isoformat().replace("+00:00", "Z")
    return {"terminated": terminated}


SELECTOR = {"matchLabels": {"app": "api"}}
CONFIG_MAP_POOL = {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}, "database": "app"}}


# --- the HPA --------------------------------------------------------------------------------------------------


def test_an_hpa_without_min_replicas_has_the_api_servers_default_of_one() -> None:
    live = live_config_from_manifests([_workload(), _hpa()], _profile(), now=NOW)
    assert live.hpa is not None and live.hpa.min_replicas == 1


def test_an_hpa_min_replicas_of_zero_is_refused() -> None:
    with pytest.raises(WorkloadSpecError, match=r"HorizontalPodAutoscaler/api: spec.minReplicas: must be >= 1"):
        live_config_from_manifests([_workload(), _hpa({"minReplicas": 0})], _profile(), now=NOW)


def test_an_autoscaling_v1_cpu_target_is_not_a_memory_target() -> None:
    live = live_config_from_manifests([_workload(), _hpa({"targetCPUUtilizationPercentage": 60})], _profile(), now=NOW)
    assert live.hpa is not None
    assert (live.hpa.cpu_target_percent, live.hpa.memory_target_percent) == (60, None)


# --- containers and manifests ---------------------------------------------------------------------------------


def test_pod_level_limits_alone_are_refused_too() -> None:
    pod_spec = {"containers": [{"name": "app"}], "resources": {"limits": {"cpu": "1"}}}
    with pytest.raises(WorkloadSpecError, match="pod-level requests and limits are not supported"):
        live_config_from_manifests([_workload(pod_spec=pod_spec)], _profile(), now=NOW)


def test_a_typed_list_from_the_api_server_is_expanded_like_kubectls_list() -> None:
    assert flatten([{"kind": "DeploymentList", "items": [_workload()]}]) == [_workload()]
    live = live_config_from_manifests([{"kind": "DeploymentList", "items": [_workload()]}], _profile(), now=NOW)
    assert [c.name for c in live.containers] == ["app"]


def test_the_paused_annotation_is_read_in_any_case() -> None:
    workload = _workload()
    workload["metadata"]["annotations"] = {"perfpilot.io/paused": "True"}
    assert live_config_from_manifests([workload], _profile(), now=NOW).paused


# --- the pool -------------------------------------------------------------------------------------------------


def test_the_largest_c_int_is_a_pool_size_pgbouncer_keeps() -> None:
    assert parse_pgbouncer_ini("[pgbouncer]\ndefault_pool_size = 2147483647\n", database="app").default_pool_size \
        == 2**31 - 1


@pytest.mark.parametrize("ini", ["[PgBouncer]\ndefault_pool_size = 5\n", "[pgbouncer]\nDefault_Pool_Size = 5\n"])
def test_a_section_or_setting_name_in_another_case_is_refused_as_pgbouncer_refuses_it(ini: str) -> None:
    with pytest.raises(WorkloadSpecError, match="pgBouncer reads names as written"):
        parse_pgbouncer_ini(ini, database="app")


def test_a_per_user_reserve_pool_size_is_refused_like_a_per_user_pool_size() -> None:
    ini = "[pgbouncer]\n[users]\nreporter = reserve_pool_size=3\n"
    with pytest.raises(WorkloadSpecError, match="a per-user reserve_pool_size is not supported"):
        parse_pgbouncer_ini(ini, database="app")


def test_a_section_header_without_a_name_is_refused() -> None:
    with pytest.raises(WorkloadSpecError, match=r"line 1: not a \[section\] header"):
        parse_pgbouncer_ini("[ ]\ndefault_pool_size = 5\n", database="app")


def test_a_pgbouncer_deployment_without_spec_replicas_runs_one_pool() -> None:
    config_map = {"kind": "ConfigMap", "metadata": {"name": "pgbouncer"}, "data": {"pgbouncer.ini": "[pgbouncer]\n"}}
    pgbouncer = {"kind": "Deployment", "metadata": {"name": "pgbouncer"},
                 "spec": {"template": {"spec": {"containers": [{"name": "pgbouncer"}],
                                                "volumes": [{"name": "c", "configMap": {"name": "pgbouncer"}}]}}}}
    live = live_config_from_manifests([_workload(), config_map, pgbouncer], _profile(pool=CONFIG_MAP_POOL), now=NOW)
    assert live.pool is not None and live.pool.pooler_replicas == 1


def test_a_pooler_without_instances_runs_cloudnativepgs_default_of_one() -> None:
    pooler = {"kind": "Pooler", "metadata": {"name": "pooler-rw"}, "spec": {"pgbouncer": {"parameters": {}}}}
    pool = {"enabled": True, "pgbouncer": {"poolerRef": {"name": "pooler-rw"}, "database": "app"}}
    live = live_config_from_manifests([_workload(), pooler], _profile(pool=pool), now=NOW)
    assert live.pool is not None and live.pool.pooler_replicas == 1


# --- rollout state ----------------------------------------------------------------------------------------------


def test_a_deployment_without_replicas_anywhere_wants_one_pod_and_rolls_out_until_it_is_updated() -> None:
    assert rollout_in_progress(_workload(replicas=None, status={"observedGeneration": 1}))
    assert not rollout_in_progress(_workload(replicas=None, status={"observedGeneration": 1, "updatedReplicas": 1}))


def test_the_wanted_pods_are_the_specs_not_the_pods_there_are() -> None:
    # spec.replicas 4, three pods all on the latest template: kubectl rollout status still waits (3 of 4 updated).
    status = {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3,
              "conditions": [{"type": "Progressing", "reason": "NewReplicaSetAvailable"}]}
    assert rollout_in_progress(_workload(replicas=4, status=status))


# --- OOM kills ----------------------------------------------------------------------------------------------------


def _kills(objects: list[dict[str, Any]], workload: dict[str, Any]) -> dict[str, int] | Unknown:
    return oom_kills_of(objects, workload, containers=["app"], namespace="shop",
                        since=NOW - timedelta(minutes=30), until=NOW)


def test_a_kill_at_the_windows_first_instant_is_counted() -> None:
    workload = _workload(selector=SELECTOR)
    assert _kills([workload, _pod("api-1", last=_oom(NOW - timedelta(minutes=30)))], workload) == {"app": 1}


def test_a_kill_without_a_finish_time_is_recent_and_counted() -> None:
    workload = _workload(selector=SELECTOR)
    assert _kills([workload, _pod("api-1", last=_oom(None))], workload) == {"app": 1}


def test_a_workload_scaled_to_zero_without_pods_has_no_kills_not_unknown() -> None:
    workload = _workload(replicas=0, selector=SELECTOR)
    other = {"kind": "Pod", "metadata": {"name": "web-1", "labels": {"app": "web"}}, "status": {}}
    assert _kills([workload, other], workload) == {"app": 0}


def test_a_workload_without_spec_replicas_and_without_pods_has_unknown_kills() -> None:
    workload = _workload(replicas=None, selector=SELECTOR)
    other = {"kind": "Pod", "metadata": {"name": "web-1", "labels": {"app": "web"}}, "status": {}}
    assert isinstance(_kills([workload, other], workload), Unknown)


def test_a_pod_of_another_namespace_is_not_counted_when_called_directly() -> None:
    workload = _workload(selector=SELECTOR)
    killed_elsewhere = _pod("api-1", namespace="prod", last=_oom(NOW - timedelta(minutes=1)))
    assert _kills([workload, killed_elsewhere, _pod("api-2", namespace="shop")], workload) == {"app": 0}


# --- snapshot.py: the query plan ---------------------------------------------------------------------------

AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
URL = "http://prometheus:9090"


def test_a_peak_window_not_a_whole_number_of_steps_is_rounded_up_not_down() -> None:
    profile = _profile(guardrails={"peakWindow": "1h"})
    plan = plan_queries([profile], PrometheusSettings(url=URL, step_seconds=7))
    assert plan.peak_window_seconds == 3605  # 515 steps of 7 s: at least the hour, never less


def test_a_profile_without_a_template_is_read_with_the_unfiltered_container_shape() -> None:
    other = PerformanceProfile.model_validate({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "web", "namespace": "shop"}, "spec": {"targetRef": {"kind": "Deployment", "name": "web"}}})
    plan = plan_queries([_profile(), other], PrometheusSettings(url=URL), templates={("shop", "api"): ("app",)})
    assert plan.container_shape_for(("shop", "api")).containers == ("app",)
    assert plan.container_shapes[("shop", "web")].containers == ()


def test_a_pool_configured_but_disabled_makes_no_pool_query() -> None:
    pool = {**CONFIG_MAP_POOL, "enabled": False}
    plan = plan_queries([_profile(pool=pool)], PrometheusSettings(url=URL))
    pool_queries = {SignalName.POOL_SERVER_ACTIVE, SignalName.POOL_CLIENT_WAITING, SignalName.POOL_MAX_WAIT,
                    PeakName.POOL_DEMAND, PeakName.POOL_HISTORY}
    assert plan.queries and not [q for q in plan.queries if q.signal in pool_queries]


def test_a_refused_quoted_pool_size_is_shown_as_pgbouncer_reads_it() -> None:
    # In single quotes '' is one quote: the error names the value pgBouncer would read, 7'x, not the raw text.
    said = r"""\[databases\] app pool_size: expected a whole number \(got "7'x"\)"""
    with pytest.raises(WorkloadSpecError, match=said):
        parse_pgbouncer_ini("[databases]\napp = host=db pool_size='7''x'\n", database="app")

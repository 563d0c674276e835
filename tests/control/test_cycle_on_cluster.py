"""One operator cycle (run_cycle) against the emulated Kubernetes API and a real Prometheus: shop/api's pgBouncer
clients wait in the last 20 minutes of the hour (tests/observe/prom_scenarios.py), so the engine grows its pool
(test_plan.py shows the same decision through `perfpilot plan`). What is written, in which order, and what is not.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from kubeharness import MERGE_PATCH, EmulatedCluster
from promharness import PrometheusServer, free_port
from shop_scenario import (
    AT,
    BEFORE,
    conditions,
    events,
    pool,
    profile_named,
    run_shop_cycle,
    seed,
    seed_oldest_first,
    status_of,
)

from perfpilot.actuate.kube import FIELD_MANAGER, KubeApi
from perfpilot.api.status import PoolSize
from perfpilot.observe.instrumentation import PROMQL_QUERIES

pytestmark = pytest.mark.integration


def test_an_auto_profile_gets_its_change_written_recorded_and_announced(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    seed(kube, profile_named())
    [outcome] = run_shop_cycle(kube, scenario_prometheus.url)
    assert outcome.written, outcome.problem
    change = outcome.decision.change
    assert change.target == "ConfigMap/pgbouncer"
    assert change.edit.from_value == BEFORE
    assert pool(kube) == change.edit.to_value != BEFORE
    config_map = kube.get("v1", "ConfigMap", "pgbouncer", "shop")
    assert [entry["manager"] for entry in config_map["metadata"]["managedFields"]] == [FIELD_MANAGER]
    status = status_of(kube)
    assert status["phase"] == "Verifying"
    assert status["lastChange"]["field"] == "pool.size"
    assert status["lastChange"]["verdict"] == "Pending"
    assert status["lastChange"]["to"] == change.edit.to_value.model_dump(by_alias=True)
    assert conditions(status) == {"SpecValid": "True", "StateReadable": "True", "TargetFound": "True",
                                  "MetricsAvailable": "True", "Conflict": "False", "Ready": "True",
                                  "RolledBack": "False"}
    assert status["observed"]["poolWaitingClients"] == 20
    [event] = events(kube)
    assert (event["reason"], event["involvedObject"]["name"]) == ("Changed", "api")


def test_a_recommend_profile_gets_only_its_status_with_the_change_it_would_make(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    seed(kube, profile_named(mode="Recommend"))
    before = kube.get("v1", "ConfigMap", "pgbouncer", "shop")
    [outcome] = run_shop_cycle(kube, scenario_prometheus.url)
    assert not outcome.written
    assert kube.get("v1", "ConfigMap", "pgbouncer", "shop") == before
    status = status_of(kube)
    assert status["recommendation"]["field"] == "pool.size"
    assert status["recommendation"]["from"] == BEFORE.model_dump(by_alias=True)
    assert "lastChange" not in status
    assert events(kube) == []


def test_the_next_evaluation_verifies_and_does_not_step_again(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    seed(kube, profile_named())
    [first] = run_shop_cycle(kube, scenario_prometheus.url)
    written = kube.get("v1", "ConfigMap", "pgbouncer", "shop")
    [second] = run_shop_cycle(kube, scenario_prometheus.url, now=AT + timedelta(minutes=1))
    assert not second.written
    assert kube.get("v1", "ConfigMap", "pgbouncer", "shop")["metadata"]["resourceVersion"] == (
        written["metadata"]["resourceVersion"])
    assert first.written
    status = status_of(kube)
    assert status["lastChange"]["at"] == "2023-11-14T23:00:00Z"
    assert status["phase"] == "Verifying"


def test_a_pool_change_pgbouncer_does_not_serve_holds_its_verification_and_every_other_pool_move(
    kube: EmulatedCluster, served_scenario_prometheus: PrometheusServer
) -> None:
    # The exporter shows shop's two pgBouncers at 10, what the ConfigMap holds: the pool grows. Two minutes on
    # they still serve 10 (nothing reloaded the ini): the change is not judged on the old pool, and the clients
    # still waiting get no second size written where nothing reads it.
    seed(kube, profile_named())
    [first] = run_shop_cycle(kube, served_scenario_prometheus.url)
    assert first.written
    grown = pool(kube)
    assert grown.default_pool_size > BEFORE.default_pool_size
    [second] = run_shop_cycle(kube, served_scenario_prometheus.url, now=AT + timedelta(minutes=2))
    assert not second.written
    assert pool(kube) == grown
    status = status_of(kube)
    assert (status["phase"], status["lastChange"]["verdict"]) == ("Verifying", "Pending")
    assert (status["observed"]["poolSizeServedMin"], status["observed"]["poolSizeServedMax"]) == (10, 10)
    assert (f"pool size {grown.default_pool_size} written at 23:00:00 but pgBouncer serves pool size 10 on every "
            f"pooler pod: its verification begins once every pooler pod serves it") in (
        status["recommendation"]["reason"])


class _RacedApi(KubeApi):
    """Someone else writes the object between perfpilot's read and its patch."""

    def __init__(self, kube: EmulatedCluster) -> None:
        super().__init__(kube.api)
        self._kube = kube

    def apply_json_patch(self, kind: str, namespace: str, name: str, patch: list[dict[str, Any]]) -> dict[str, Any]:
        path = self._kube.path("v1", kind, namespace, name)
        self._kube.request("PATCH", path, {"metadata": {"labels": {"touched": "by-argo"}}},
                           content_type=MERGE_PATCH).raise_for_status()
        return super().apply_json_patch(kind, namespace, name, patch)


def test_an_object_changed_between_read_and_write_is_not_overwritten_and_no_change_is_recorded(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    seed(kube, profile_named())
    [outcome] = run_shop_cycle(kube, scenario_prometheus.url, api=_RacedApi(kube))
    assert not outcome.written
    assert "changed since it was read" in outcome.problem
    assert pool(kube) == BEFORE
    status = status_of(kube)
    assert "lastChange" not in status
    assert conditions(status)["Conflict"] == "True"
    assert status["recommendation"]["field"] == "pool.size"
    assert events(kube) == []


class _CrashingApi(KubeApi):
    """The operator dies after saving the state that records the change, before the change is written."""

    def apply_json_patch(self, kind: str, namespace: str, name: str, patch: list[dict[str, Any]]) -> dict[str, Any]:
        raise SystemExit("killed")


def test_a_change_recorded_but_never_written_is_found_reverted_after_a_restart(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    seed(kube, profile_named())
    with pytest.raises(SystemExit):
        run_shop_cycle(kube, scenario_prometheus.url, api=_CrashingApi(kube.api))
    assert status_of(kube)["lastChange"]["verdict"] == "Pending"  # saved before the write, as the contract says
    assert pool(kube) == BEFORE
    run_shop_cycle(kube, scenario_prometheus.url, now=AT + timedelta(minutes=1))
    status = status_of(kube)
    assert status["lastChange"]["verdict"] == "Reverted"
    assert pool(kube) == BEFORE  # the move is barred after it was found not in effect


def test_a_spec_the_models_refuse_gets_status_invalid_naming_the_field_and_nothing_else(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    profile = profile_named()
    profile["spec"]["pool"]["size"] = {"min": 50, "max": 40}
    seed(kube, profile)
    before = kube.get("v1", "ConfigMap", "pgbouncer", "shop")
    [outcome] = run_shop_cycle(kube, scenario_prometheus.url)
    status = status_of(kube)
    assert status["phase"] == "Invalid"
    [spec_valid] = [c for c in status["conditions"] if c["type"] == "SpecValid"]
    assert spec_valid["status"] == "False"
    assert "spec.pool.size" in spec_valid["message"]
    assert "50" in spec_valid["message"]
    assert kube.get("v1", "ConfigMap", "pgbouncer", "shop") == before
    assert not outcome.written


def test_of_two_profiles_on_one_workload_the_newer_waits_with_conflict(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    # The older one's name sorts last: age, not the name, must decide.
    seed_oldest_first(kube, profile_named("zz-old"), profile_named("api"))
    outcomes = {outcome.name: outcome for outcome in run_shop_cycle(kube, scenario_prometheus.url)}
    assert outcomes["zz-old"].written
    assert not outcomes["api"].written
    newer_status = status_of(kube, "api")
    assert newer_status["phase"] == "Holding"
    assert conditions(newer_status)["Conflict"] == "True"
    assert "zz-old (older)" in newer_status["recommendation"]["reason"]


def _queries_sent(url: str) -> float:
    """PromQL queries the reader has sent to ``url`` in this process (its own counter, every outcome)."""
    return sum(sample.value for metric in PROMQL_QUERIES.collect() for sample in metric.samples
               if sample.name.endswith("_total") and sample.labels.get("prometheus") == url)


def test_a_missing_workload_is_reported_and_nothing_is_read_or_written(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    profile = profile_named()
    profile["spec"]["targetRef"] = {"kind": "Deployment", "name": "checkout"}
    seed(kube, profile)
    queries_before = _queries_sent(scenario_prometheus.url)
    first = len(list(kube.emulator))
    [outcome] = run_shop_cycle(kube, scenario_prometheus.url)
    assert _queries_sent(scenario_prometheus.url) == queries_before  # nothing read from Prometheus
    # From the API: the profiles, the missing workload; then only the profile's status is written.
    asked = [(str(r.method).rsplit(".", 1)[-1].upper(), r.url.path) for r in list(kube.emulator)[first:]]
    assert [path for method, path in asked if method != "GET"] == [
        "/apis/perfpilot.io/v1alpha1/namespaces/shop/performanceprofiles/api/status"]
    assert not any("configmaps" in path or "horizontalpodautoscalers" in path for _, path in asked)
    status = status_of(kube)
    assert conditions(status)["TargetFound"] == "False"
    assert "no Deployment named checkout in namespace shop" in status["recommendation"]["reason"]
    [ready] = [condition for condition in status["conditions"] if condition["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "Holding")
    assert not outcome.written


def test_prometheus_unreachable_writes_no_change_and_says_so(kube: EmulatedCluster) -> None:
    seed(kube, profile_named())
    before = kube.get("v1", "ConfigMap", "pgbouncer", "shop")
    port = free_port()
    [outcome] = run_shop_cycle(kube, f"http://perfpilot:s3cret@127.0.0.1:{port}")
    assert not outcome.written
    assert outcome.decision.change is None
    assert kube.get("v1", "ConfigMap", "pgbouncer", "shop") == before
    status = status_of(kube)
    [metrics] = [condition for condition in status["conditions"] if condition["type"] == "MetricsAvailable"]
    assert (metrics["status"], metrics["reason"]) == ("False", "PrometheusUnreachable")
    assert f"http://***@127.0.0.1:{port}" in metrics["message"]
    assert "s3cret" not in str(status)  # the operator's URL is shown without its password
    assert set(status["observed"]["unknown"]) >= {"p95LatencySeconds", "requestRate"}


def test_an_emergency_while_verifying_moves_the_pending_change_into_history(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    # The hour's data does not see the first growth (it is history), so clients still wait: an emergency may act
    # toward capacity before the first change's verdict, and that change can no longer be judged alone.
    seed(kube, profile_named())
    run_shop_cycle(kube, scenario_prometheus.url)
    first = copy.deepcopy(status_of(kube)["lastChange"])
    [outcome] = run_shop_cycle(kube, scenario_prometheus.url, now=AT + timedelta(minutes=2))
    assert outcome.written
    status = status_of(kube)
    assert status["lastChange"]["from"] == first["to"]
    assert status["lastChange"]["emergency"] is True
    [earlier] = status["history"]
    assert (earlier["at"], earlier["to"], earlier["verdict"]) == (first["at"], first["to"], "Inconclusive")
    assert pool(kube) == PoolSize.model_validate(status["lastChange"]["to"])


def test_profiles_sharing_a_namespace_list_its_pods_and_hpas_once_per_tick(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    pooler = profile_named("pgbouncer", mode="Recommend")
    pooler["spec"]["targetRef"]["name"] = "pgbouncer"
    del pooler["spec"]["pool"]
    seed(kube, profile_named(mode="Recommend"), pooler)
    first = len(list(kube.emulator))
    outcomes = run_shop_cycle(kube, scenario_prometheus.url)
    assert sorted(outcome.name for outcome in outcomes) == ["api", "pgbouncer"]
    listed = ("/api/v1/namespaces/shop/pods", "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers")
    lists = [request.url.path for request in list(kube.emulator)[first:]
             if str(request.method).endswith("GET") and request.url.path in listed]
    assert sorted(lists) == sorted(listed)

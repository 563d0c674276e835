"""Which profiles a tick looks at (run_cycle on the emulated API): a profile is looked at again only once its
interval has passed or its spec changed, whatever it was told last time; the older of two profiles owns a
workload whether or not it is due, an Off one owns nothing; a state that cannot be read holds the profile and is
kept as it is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kubeharness import MERGE_PATCH, EmulatedCluster
from promharness import PrometheusServer
from shop_scenario import (
    AT,
    BEFORE,
    conditions,
    invoices_objects,
    pool,
    profile_named,
    run_shop_cycle,
    seed,
    seed_oldest_first,
    status_of,
)

pytestmark = pytest.mark.integration



def _version(kube: EmulatedCluster, name: str) -> str:
    version: str = kube.get("perfpilot.io/v1alpha1", "PerformanceProfile", name, "shop")["metadata"]["resourceVersion"]
    return version


def test_a_held_profile_is_looked_at_again_only_after_its_interval(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    profile = profile_named()
    profile["spec"]["targetRef"]["name"] = "checkout"  # no such Deployment: held, TargetFound=False
    seed(kube, profile)
    [held] = run_shop_cycle(kube, scenario_prometheus.url)
    assert held.phase is not None and held.phase.value == "Holding"
    assert conditions(status_of(kube))["TargetFound"] == "False"
    version = _version(kube, "api")
    assert run_shop_cycle(kube, scenario_prometheus.url, now=AT + timedelta(seconds=50)) == []
    assert _version(kube, "api") == version  # not rewritten every tick
    [again] = run_shop_cycle(kube, scenario_prometheus.url, now=AT + timedelta(seconds=60))  # the default interval
    assert again.name == "api"


def test_a_spec_change_is_looked_at_at_once(kube: EmulatedCluster, scenario_prometheus: PrometheusServer) -> None:
    seed(kube, profile_named(mode="Recommend"))
    run_shop_cycle(kube, scenario_prometheus.url)
    path = kube.path("perfpilot.io/v1alpha1", "PerformanceProfile", "shop", "api")
    kube.request("PATCH", path, {"spec": {"mode": "Auto"}}, content_type=MERGE_PATCH).raise_for_status()
    [outcome] = run_shop_cycle(kube, scenario_prometheus.url, now=AT + timedelta(seconds=10))
    assert outcome.written
    assert pool(kube) != BEFORE


def test_the_older_profile_owns_the_workload_even_when_it_is_not_due(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    # The older one's name sorts last: age, not the name, must decide.
    seed_oldest_first(kube, profile_named("zz-old"), profile_named("api", mode="Recommend"))
    run_shop_cycle(kube, scenario_prometheus.url)
    written = pool(kube)
    assert written != BEFORE  # zz-old wrote its change
    path = kube.path("perfpilot.io/v1alpha1", "PerformanceProfile", "shop", "api")
    kube.request("PATCH", path, {"spec": {"mode": "Auto"}}, content_type=MERGE_PATCH).raise_for_status()
    # Ten seconds on, only api is due (its spec changed): it is still the newer one, and waits.
    [outcome] = run_shop_cycle(kube, scenario_prometheus.url, now=AT + timedelta(seconds=10))
    assert (outcome.name, outcome.written) == ("api", False)
    assert conditions(status_of(kube, "api"))["Conflict"] == "True"
    assert pool(kube) == written


def test_an_off_profile_holds_no_workload(kube: EmulatedCluster, scenario_prometheus: PrometheusServer) -> None:
    # The Off profile is the older: were it counted, it would own the workload and api would wait.
    seed_oldest_first(kube, profile_named("old", mode="Off"), profile_named("api"))
    outcomes = {outcome.name: outcome for outcome in run_shop_cycle(kube, scenario_prometheus.url)}
    assert status_of(kube, "old")["phase"] == "Off"
    assert outcomes["api"].written
    assert "Conflict" not in conditions(status_of(kube, "old"))


def test_a_state_that_cannot_be_read_holds_the_profile_and_is_kept_for_mending(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    profile = profile_named()
    broken = {"at": "2023-11-14T22:40:00Z", "field": "hpa.somethingElse", "target": "HorizontalPodAutoscaler/api"}
    rolled_back = {"type": "RolledBack", "status": "True", "reason": "Regression", "message": "p95 up",
                   "lastTransitionTime": "2023-11-14T22:55:00Z"}
    profile["status"] = {"lastChange": broken, "conditions": [rolled_back]}
    seed(kube, profile)
    [outcome] = run_shop_cycle(kube, scenario_prometheus.url)
    assert not outcome.written
    status = status_of(kube)
    assert status["phase"] == "Holding"
    assert conditions(status)["StateReadable"] == "False"
    assert status["lastChange"] == broken
    assert conditions(status)["RolledBack"] == "True"  # an unread state says nothing of a rollback
    version = _version(kube, "api")
    assert run_shop_cycle(kube, scenario_prometheus.url, now=AT + timedelta(seconds=10)) == []  # held, not due
    assert _version(kube, "api") == version
    assert pool(kube) == BEFORE


def test_only_the_watched_namespaces_profiles_are_evaluated(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    seed(kube, profile_named())
    for document in invoices_objects(cpu_target_percent=70):
        kube.create(document)
    invoices = profile_named("invoices", mode="Recommend")
    invoices["metadata"]["namespace"] = "billing"
    invoices["spec"]["targetRef"] = {"kind": "Deployment", "name": "invoices"}
    del invoices["spec"]["pool"]
    kube.create(invoices)

    outcomes = run_shop_cycle(kube, scenario_prometheus.url, namespaces=("shop",))

    assert [(outcome.namespace, outcome.name) for outcome in outcomes] == [("shop", "api")]
    assert "status" not in kube.get("perfpilot.io/v1alpha1", "PerformanceProfile", "invoices", "billing")
    # Every namespace watched: billing's profile is evaluated too (shop's, evaluated just now, is not due).
    assert [(o.namespace, o.name) for o in run_shop_cycle(kube, scenario_prometheus.url)] == [
        ("billing", "invoices")]

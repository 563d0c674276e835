"""A rollback through the emulated API (run_cycle, real Prometheus): billing/invoices' p95 regresses at minute 45
of the hour, after a change that raised its HPA's CPU target 60% -> 70% at minute 40. The rollback is written
first and its verdict saved after; a rollback the API refuses leaves the change Pending, due again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import kmock
import pytest
from kubeharness import EmulatedCluster
from promharness import PrometheusServer
from shop_scenario import AT, conditions, invoices_objects, run_shop_cycle

pytestmark = pytest.mark.integration

CHANGED_AT = (AT - timedelta(minutes=20)).isoformat().replace("+00:00", "Z")


def _seed(kube: EmulatedCluster) -> None:
    for document in invoices_objects(cpu_target_percent=70):
        kube.create(document)
    kube.create({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "invoices", "namespace": "billing"},
        "spec": {"targetRef": {"kind": "Deployment", "name": "invoices"}, "mode": "Auto"},
        "status": {"lastChange": {
            "at": CHANGED_AT, "target": "HorizontalPodAutoscaler/invoices", "field": "hpa.cpuTarget",
            "from": 60, "to": 70, "reason": "p95 under 60% of the SLO all window", "tableRow": "Steady 70",
            "verdict": "Pending", "baseline": {"p95LatencySeconds": 0.13, "errorRatio": 0.01, "requestRate": 30}}},
    })


def _target(kube: EmulatedCluster) -> int:
    hpa = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", "invoices", "billing")
    target: int = hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]
    return target


def _status(kube: EmulatedCluster) -> dict[str, Any]:
    status: dict[str, Any] = kube.get("perfpilot.io/v1alpha1", "PerformanceProfile", "invoices", "billing")["status"]
    return status


def test_a_regression_is_rolled_back_barred_and_announced(kube: EmulatedCluster,
                                                          scenario_prometheus: PrometheusServer) -> None:
    _seed(kube)
    [outcome] = run_shop_cycle(kube, scenario_prometheus.url)
    assert outcome.written, outcome.problem
    assert _target(kube) == 60
    status = _status(kube)
    assert (status["lastChange"]["at"], status["lastChange"]["verdict"]) == (CHANGED_AT, "RolledBack")
    assert "regression" in status["lastChange"]["verdictReason"]
    assert conditions(status)["RolledBack"] == "True"
    [barred] = status["barred"]
    assert (barred["setting"], barred["from"], barred["to"]) == ("hpa.cpuTarget", 60, 70)
    [event] = kube.request("GET", kube.path("v1", "Event", "billing")).json()["items"]
    assert (event["reason"], event["type"]) == ("RolledBack", "Warning")


def test_a_rollback_the_api_refuses_leaves_the_change_pending_and_due(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    _seed(kube)
    kube.emulator["patch", kmock.resource("autoscaling/v2/horizontalpodautoscalers")] << 403
    [outcome] = run_shop_cycle(kube, scenario_prometheus.url)
    assert not outcome.written
    assert _target(kube) == 70
    status = _status(kube)
    assert status["lastChange"]["verdict"] == "Pending"
    assert status["lastChange"]["rollbackDueAt"] == AT.isoformat().replace("+00:00", "Z")
    assert "barred" not in status or status["barred"] == []
    assert conditions(status)["Conflict"] == "True"

"""Faults met while writing (run_cycle on the emulated API, faults injected as kmock reactions): an answer lost or
a server error keeps the change Pending (the API server may have applied it), a refusal records nothing, a
refused Event or one profile's status failing changes nothing for the rest; and a status written whole, so
two changes of different kinds in a row leave a state that reads back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import kmock
import pytest
from kubeharness import EmulatedCluster
from promharness import PrometheusServer
from shop_scenario import AT, BEFORE, conditions, events, pool, profile_named, run_shop_cycle, seed, status_of

from perfpilot.api.status import parse_tuning_state
from perfpilot.control.cycle import ProfileOutcome

pytestmark = pytest.mark.integration

CONFIG_MAPS = kmock.resource("v1/configmaps")
PROFILES = kmock.resource("perfpilot.io/v1alpha1/performanceprofiles")


def _cycle_with_config_map_writes_answered(kube: EmulatedCluster, prometheus_url: str,
                                           status: int) -> tuple[ProfileOutcome, dict[str, Any]]:
    """shop/api's pool change, every write of the ConfigMap answered with ``status``: the outcome, the status."""
    seed(kube, profile_named())
    kube.emulator["patch", CONFIG_MAPS] << status
    [outcome] = run_shop_cycle(kube, prometheus_url)
    assert not outcome.written
    return outcome, status_of(kube)


@pytest.mark.parametrize("status", [500, 503, 504])
def test_a_server_error_on_the_write_keeps_the_change_recorded_as_pending(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer, status: int
) -> None:
    outcome, recorded = _cycle_with_config_map_writes_answered(kube, scenario_prometheus.url, status)
    assert "not known to be written" in outcome.problem
    assert recorded["lastChange"]["verdict"] == "Pending"  # the next evaluation reads what was written
    assert conditions(recorded)["Conflict"] == "True"


@pytest.mark.parametrize("status", [403, 404])
def test_a_refused_write_records_nothing_and_shows_the_change_as_recommended(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer, status: int
) -> None:
    outcome, recorded = _cycle_with_config_map_writes_answered(kube, scenario_prometheus.url, status)
    assert "refused" in outcome.problem
    assert "lastChange" not in recorded
    assert recorded["recommendation"]["field"] == "pool.size"
    assert pool(kube) == BEFORE


def test_a_refused_event_leaves_the_change_written_and_recorded(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    seed(kube, profile_named())
    kube.emulator["post", kmock.resource("v1/events")] << 403
    [outcome] = run_shop_cycle(kube, scenario_prometheus.url)
    assert outcome.written, outcome.problem
    assert pool(kube) != BEFORE
    assert status_of(kube)["lastChange"]["verdict"] == "Pending"
    assert events(kube) == []


def test_one_profile_whose_status_cannot_be_written_does_not_stop_the_others(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    broken = profile_named("broken")
    broken["spec"]["targetRef"] = {"kind": "Deployment", "name": "checkout"}  # another workload: no conflict
    seed(kube, broken, profile_named("api"))
    kube.emulator["patch", PROFILES, kmock.name("broken")] << 500
    outcomes = {outcome.name: outcome for outcome in run_shop_cycle(kube, scenario_prometheus.url)}
    assert outcomes["broken"].phase is None
    assert "status not written" in outcomes["broken"].problem
    assert outcomes["api"].written
    assert pool(kube) != BEFORE


def _kept_scale_up(at: str) -> dict[str, Any]:
    rules = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
             "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}
    return {"at": at, "target": "HorizontalPodAutoscaler/api", "field": "hpa.scaleUp", "from": None, "to": rules,
            "reason": "flash crowd", "tableRow": "Aggressive", "verdict": "Kept", "verdictAt": at}


def test_a_change_of_another_kind_replaces_the_last_one_whole_and_the_state_reads_back(
    kube: EmulatedCluster, scenario_prometheus: PrometheusServer
) -> None:
    profile = profile_named()
    earlier = (AT - timedelta(hours=3)).isoformat().replace("+00:00", "Z")
    profile["status"] = {"phase": "Observing", "lastChange": _kept_scale_up(earlier)}
    seed(kube, profile)
    [outcome] = run_shop_cycle(kube, scenario_prometheus.url)
    assert outcome.written, outcome.problem
    status = status_of(kube)
    assert status["lastChange"]["from"] == BEFORE.model_dump(by_alias=True)  # nothing of the rules merged in
    assert status["history"][0]["field"] == "hpa.scaleUp"
    state = parse_tuning_state(status)
    assert state is not None and state.last_change is not None
    assert state.last_change.setting.value == "pool.size"

"""simulate notes a replay whose load never showed the scenario's problem (static met the SLO throughout)."""

from __future__ import annotations

import pytest

from perfpilot.commands.simulate import describe_unshown_scenario
from perfpilot.sim.replay import RunMetrics, RunResult, Simulation, Timeline
from perfpilot.sim.scenarios import SCENARIOS
from perfpilot.sim.trace import Trace


def _simulation(scenario: str, *, static_violation_minutes: int) -> Simulation:
    def run(name: str, minutes: int) -> RunResult:
        return RunResult(name, RunMetrics(slo_violation_minutes=minutes, replica_hours=1.0, cpu_core_hours=1.0,
                                          pool_connection_hours=1.0, scale_events=0, changes=0, rollbacks=0,
                                          p95_max_seconds=0.1), Timeline())
    runs = {"perfpilot": run("perfpilot", 0), "static": run("static", static_violation_minutes)}
    return Simulation(trace=Trace("t", "rps", 0.0, 60.0, (1.0,)), scenario=SCENARIOS[scenario], slo_seconds=0.5,
                      runs=runs)


@pytest.mark.parametrize("scenario", ["small-pool", "slow-scale-up"])
def test_a_scenario_static_should_breach_is_noted_when_static_met_the_slo(scenario: str) -> None:
    note = describe_unshown_scenario(_simulation(scenario, static_violation_minutes=0))
    assert note is not None
    assert note.startswith(f"static met the SLO all window: this load never showed what the {scenario} scenario")
    assert SCENARIOS[scenario].description in note


@pytest.mark.parametrize("scenario", ["small-pool", "slow-scale-up"])
def test_no_note_when_static_breached_the_slo(scenario: str) -> None:
    assert describe_unshown_scenario(_simulation(scenario, static_violation_minutes=1)) is None


@pytest.mark.parametrize("scenario", ["right-sized", "over-provisioned", "memory-growth"])
def test_no_note_for_scenarios_static_may_run_within_the_slo(scenario: str) -> None:
    assert describe_unshown_scenario(_simulation(scenario, static_violation_minutes=0)) is None

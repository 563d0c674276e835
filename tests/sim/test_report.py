"""The table and the JSON of a simulation give each run its own numbers."""

from __future__ import annotations

from perfpilot.sim.replay import RUN_NAMES, RunMetrics, RunResult, Simulation, Timeline
from perfpilot.sim.report import format_table, to_json
from perfpilot.sim.scenarios import SCENARIOS
from perfpilot.sim.trace import Trace


def _simulation() -> Simulation:
    # Every number differs from run to run, so a column or an entry holding another run's shows.
    runs = {
        name: RunResult(name, RunMetrics(
            slo_violation_minutes=10 + index, replica_hours=20.5 + index, cpu_core_hours=30.5 + index,
            pool_connection_hours=40.5 + index, scale_events=50 + index, changes=60 + index, rollbacks=70 + index,
            p95_max_seconds=0.125 + index,
        ), Timeline())
        for index, name in enumerate(RUN_NAMES)
    }
    trace = Trace("t", "rps", 0.0, 60.0, (1.0, 2.0))
    return Simulation(trace=trace, scenario=SCENARIOS["right-sized"], slo_seconds=0.5, runs=runs)


def test_the_json_holds_each_runs_own_metrics() -> None:
    runs = to_json(_simulation(), scale=1.0)["runs"]
    assert list(runs) == list(RUN_NAMES)
    for index, name in enumerate(RUN_NAMES):
        assert runs[name] == {
            "slo_violation_minutes": 10 + index, "replica_hours": 20.5 + index, "cpu_core_hours": 30.5 + index,
            "pool_connection_hours": 40.5 + index, "scale_events": 50 + index, "changes": 60 + index,
            "rollbacks": 70 + index, "p95_max_seconds": 0.125 + index,
        }


def test_the_table_has_one_column_per_run_in_order_with_its_own_numbers() -> None:
    lines = format_table(_simulation()).splitlines()
    assert lines[0].split() == list(RUN_NAMES)
    rows = {line[:24].strip(): line[24:].split() for line in lines[1:]}
    assert rows["SLO violation minutes"] == ["10", "11", "12", "13"]
    assert rows["CPU request core-hours"] == ["30.5", "31.5", "32.5", "33.5"]
    assert rows["rollbacks"] == ["70", "71", "72", "73"]
    assert rows["worst minute p95 (s)"] == ["0.125", "1.125", "2.125", "3.125"]


def test_the_json_lists_perfpilots_decisions_by_minute_of_the_window() -> None:
    simulation = _simulation()
    simulation.runs["perfpilot"].decisions.extend([(120.0, "change hpa.cpuTarget: why"), (600.0, "rollback x: y")])
    assert to_json(simulation, scale=1.0)["perfpilot_decisions"] == [
        {"minute": 2, "decision": "change hpa.cpuTarget: why"}, {"minute": 10, "decision": "rollback x: y"}]


def test_the_json_of_a_replay_without_perfpilot_has_no_decisions() -> None:
    simulation = _simulation()
    del simulation.runs["perfpilot"]
    assert "perfpilot_decisions" not in to_json(simulation, scale=1.0)

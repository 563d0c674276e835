"""The replay runs the production decide() in the loop and is deterministic."""

from __future__ import annotations

from perfpilot.sim.replay import RUN_NAMES, simulate
from perfpilot.sim.scenarios import SCENARIOS, default_profile
from perfpilot.sim.trace import Trace, bundled_trace_path, load_trace, scale_for_peak


def _window(hours: float) -> Trace:
    trace = load_trace(bundled_trace_path()).window(start_seconds=16 * 3600, hours=hours)
    return trace.scaled(scale_for_peak(trace, cpu_demand_seconds=0.055, cpu_request_millicores=1000))


def test_the_same_inputs_give_the_same_outputs() -> None:
    trace = _window(2)
    first = simulate(trace=trace, scenario=SCENARIOS["small-pool"], profile=default_profile())
    second = simulate(trace=trace, scenario=SCENARIOS["small-pool"], profile=default_profile())
    for name in RUN_NAMES:
        assert first.runs[name].metrics == second.runs[name].metrics
        assert first.runs[name].timeline.p95_seconds == second.runs[name].timeline.p95_seconds


def test_perfpilot_grows_a_pool_that_makes_clients_wait() -> None:
    simulation = simulate(trace=_window(3), scenario=SCENARIOS["small-pool"], profile=default_profile(),
                          runs=("perfpilot", "static"))
    perfpilot = simulation.runs["perfpilot"]
    assert any("pool.size" in why for _, why in perfpilot.decisions)
    assert perfpilot.timeline.tuned["pool size"][-1] > 8
    assert simulation.runs["static"].timeline.tuned["pool size"][-1] == 8


def test_the_trace_peak_is_scaled_to_eight_static_pods_at_seventy_percent() -> None:
    trace = _window(6)
    # 8 pods x 70% x 1000m = 5600m of CPU; at 55 ms of CPU per request that is 101.8 req/s.
    assert abs(trace.peak_per_second - 5.6 / 0.055) < 1e-6


def test_the_oracle_meets_the_slo_with_no_more_pods_than_static() -> None:
    simulation = simulate(trace=_window(3), scenario=SCENARIOS["right-sized"], profile=default_profile(),
                          runs=("static", "oracle"))
    oracle, static = simulation.runs["oracle"].metrics, simulation.runs["static"].metrics
    assert oracle.slo_violation_minutes == 0
    assert oracle.replica_hours <= static.replica_hours

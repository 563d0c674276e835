"""The history before a replayed window: what perfpilot's Prometheus holds when it is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from perfpilot.api.quantities import Duration
from perfpilot.api.spec import DEFAULT_PEAK_WINDOW_SECONDS
from perfpilot.cli import main
from perfpilot.commands import simulate as simulate_command
from perfpilot.sim import replay
from perfpilot.sim.prometheus import Prometheus
from perfpilot.sim.replay import simulate
from perfpilot.sim.scenarios import SCENARIOS, default_profile
from perfpilot.sim.trace import (
    Trace,
    bundled_history_path,
    bundled_trace_path,
    history_before,
    join_traces,
    load_trace,
)
from perfpilot.tuning.observations import Observations, Series, Unknown


def _trace(start: float, rates: list[float], *, step: float = 60.0, column: str = "rps") -> Trace:
    return Trace("t", column, start, step, tuple(rates))


def test_history_before_is_the_span_just_before_the_window() -> None:
    whole = _trace(0, [float(i) for i in range(10)])
    window = whole.window(start_seconds=360, hours=None)
    before = history_before(whole, window, seconds=180)
    assert before is not None
    assert (before.start_seconds, before.rates_per_second) == (180, (3.0, 4.0, 5.0))


def test_history_before_is_none_when_the_trace_starts_with_the_window() -> None:
    whole = _trace(0, [1.0, 2.0, 3.0])
    assert history_before(whole, whole, seconds=3600) is None


def test_history_before_is_cut_to_what_the_trace_holds() -> None:
    whole = _trace(0, [1.0, 2.0, 3.0, 4.0])
    before = history_before(whole, whole.window(start_seconds=120, hours=None), seconds=86400)
    assert before is not None and before.rates_per_second == (1.0, 2.0)


def test_join_traces_refuses_a_gap_or_another_column() -> None:
    first = _trace(0, [1.0, 2.0])
    assert join_traces(first, _trace(120, [3.0])).rates_per_second == (1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="does not start where"):
        join_traces(first, _trace(180, [3.0]))
    with pytest.raises(ValueError, match="cannot join"):
        join_traces(first, _trace(120, [3.0], column="other"))


def test_the_bundled_history_is_the_peak_window_just_before_the_bundled_slice() -> None:
    history = load_trace(bundled_history_path())
    bundled = load_trace(bundled_trace_path())
    joined = join_traces(history, bundled)
    assert history.duration_seconds == DEFAULT_PEAK_WINDOW_SECONDS
    assert joined.start_seconds == bundled.start_seconds - DEFAULT_PEAK_WINDOW_SECONDS


def test_simulate_warms_perfpilot_up_on_the_bundled_week_before(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The week before is replayed (handed to simulate() as `before`, scaled as the window), not only printed.
    handed: list[tuple[Trace, Trace | None]] = []
    run = simulate_command.simulate

    def capture(**arguments: Any) -> Any:
        handed.append((arguments["trace"], arguments["before"]))
        return run(**arguments)

    monkeypatch.setattr(simulate_command, "simulate", capture)
    assert main(["simulate", "--hours", "2"]) == 0
    assert "history before the window: 168.0 h" in capsys.readouterr().out
    [(window, before)] = handed
    assert before is not None
    assert before.duration_seconds == DEFAULT_PEAK_WINDOW_SECONDS
    assert before.start_seconds + before.duration_seconds == window.start_seconds
    history = load_trace(bundled_history_path())
    scale = window.rates_per_second[0] / load_trace(bundled_trace_path()).rates_per_second[0]
    assert before.rates_per_second[0] == pytest.approx(history.rates_per_second[0] * scale)


def test_simulate_says_when_a_trace_has_no_history_before_the_window(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "flat.csv"
    trace.write_text("timestamp_seconds,requests_per_second\n" + "".join(f"{60 * i},5\n" for i in range(180)))
    assert main(["simulate", "--trace", str(trace), "--hours", "2"]) == 0
    assert "history before the window: none" in capsys.readouterr().out


def test_perfpilots_prometheus_holds_the_peaks_and_cpu_history_of_the_warm_up_before_the_window() -> None:
    # Six hours with a 60 req/s burst before an hour at 10 req/s: after the window, perfpilot's Prometheus
    # answers the peak window's peak rate and CPU history from the warm-up too, not from the quiet hour alone.
    before = _trace(0, [10.0] * 180 + [60.0] * 30 + [10.0] * 150, column="requests_per_second")
    window = _trace(before.start_seconds + before.duration_seconds, [10.0] * 60, column="requests_per_second")
    end_seconds = window.start_seconds + window.duration_seconds
    profile = default_profile()

    def prometheus_after(warm_up: Trace | None) -> Prometheus:
        simulation = simulate(trace=window, scenario=SCENARIOS["right-sized"], profile=profile, runs=("perfpilot",),
                              before=warm_up)
        prometheus = simulation.runs["perfpilot"].prometheus
        assert prometheus is not None
        return prometheus

    warmed, cold = prometheus_after(before), prometheus_after(None)
    peak_window_seconds = DEFAULT_PEAK_WINDOW_SECONDS
    warmed_peak = warmed.peak("peak_request_rate_per_second", at_seconds=end_seconds,
                              window_seconds=peak_window_seconds)
    cold_peak = cold.peak("peak_request_rate_per_second", at_seconds=end_seconds, window_seconds=peak_window_seconds)
    assert warmed_peak == pytest.approx(60.0, rel=0.05)
    assert cold_peak == pytest.approx(10.0, rel=0.05)
    warmed_history = warmed.history("cpu_history_seconds", at_seconds=end_seconds, window_seconds=peak_window_seconds)
    assert isinstance(warmed_history, float) and warmed_history > 6 * 3600


def test_after_a_warm_up_the_first_decision_sees_a_covered_window(monkeypatch: pytest.MonkeyPatch) -> None:
    # Installed on a Prometheus that has run for hours, perfpilot reads a full window at its first cycle; with
    # no history it reads one step, which is no window.
    seen: list[Observations] = []
    decide = replay.decide

    def capture(profile: Any, observations: Observations, state: Any, at: Any) -> Any:
        seen.append(observations)
        return decide(profile, observations, state, at)

    monkeypatch.setattr(replay, "decide", capture)
    rates = [20.0 + (i % 7) for i in range(240)]
    before, window = _trace(0, rates[:180]), _trace(180 * 60, rates[180:])
    simulate(trace=window, scenario=SCENARIOS["right-sized"], profile=default_profile(), before=before,
             runs=("perfpilot",))
    first = seen[0]
    for signal in (first.latency_p95_seconds, first.request_rate_per_second, first.cpu_usage_millicores_per_pod):
        assert isinstance(signal, Series)
        assert len(signal.values) >= 30  # the 30-minute window's steps, all but one the warm-up's
    cold_start = len(seen)
    simulate(trace=window, scenario=SCENARIOS["right-sized"], profile=default_profile(), runs=("perfpilot",))
    assert isinstance(seen[cold_start].latency_p95_seconds, Unknown)
    # A 3-hour window: the warm-up keeps that much of its signals, not only the 64 steps it keeps by itself.
    long_window = default_profile().model_copy(update={
        "guardrails": default_profile().guardrails.model_copy(update={"window": Duration(3 * 3600)})})
    rates = [20.0 + (i % 7) for i in range(300)]
    long_start = len(seen)
    simulate(trace=_trace(240 * 60, rates[240:]), scenario=SCENARIOS["right-sized"], profile=long_window,
             before=_trace(0, rates[:240]), runs=("perfpilot",))
    first_long = seen[long_start].latency_p95_seconds
    assert isinstance(first_long, Series) and len(first_long.values) >= 180


def test_a_warm_up_that_evaluates_only_peaks_early_hands_over_what_a_full_evaluation_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A warm-up evaluates latency and throttling only at the steps it hands over; everything the next run
    # reads (every signal's kept steps, the peaks, the histories) must be what evaluating every step gives.
    trace = load_trace(bundled_trace_path()).window(start_seconds=14 * 3600, hours=4)
    trace = trace.scaled(80.0 / trace.peak_per_second)
    scenario = SCENARIOS["memory-growth"]  # limits set: the throttling query runs
    evaluate = Prometheus.evaluate
    peaks_only_steps = 0

    def counting(self: Prometheus, now: float, *, peaks_only: bool = False) -> None:
        nonlocal peaks_only_steps
        peaks_only_steps += peaks_only
        evaluate(self, now, peaks_only=peaks_only)

    def every_step(self: Prometheus, now: float, *, peaks_only: bool = False) -> None:
        evaluate(self, now)  # the whole evaluation, whatever the replay asks

    def warmed() -> Prometheus:
        return replay.warm_up(trace=trace, settings=scenario.settings, params=scenario.params, slo_seconds=0.5,
                              window_seconds=1800.0)

    monkeypatch.setattr(Prometheus, "evaluate", counting)
    fast = warmed()
    monkeypatch.setattr(Prometheus, "evaluate", every_step)
    full = warmed()
    assert peaks_only_steps == len(trace.rates_per_second) - fast.history_points > 0
    assert {name: list(kept) for name, kept in fast.signals.items()} == {
        name: list(kept) for name, kept in full.signals.items()}
    assert len(fast.signals["latency_p95_seconds"]) == fast.history_points
    assert len(fast.signals["cpu_throttled_ratio"]) == fast.history_points
    assert fast.peak_history == full.peak_history
    assert fast.history_steps == full.history_steps

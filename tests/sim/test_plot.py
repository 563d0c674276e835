"""`simulate --plot`: every tuned value is recorded and drawn, each in its own unit, and the figure reads."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from perfpilot.api.status import ScalingPolicy, ScalingRules
from perfpilot.sim import plot
from perfpilot.sim.replay import RunMetrics, RunResult, Simulation, Timeline, _tuned_values, simulate
from perfpilot.sim.scenarios import GIB, SCENARIOS, STATIC_SETTINGS, WorkloadSettings, default_profile
from perfpilot.sim.trace import Trace, bundled_trace_path, load_trace, scale_for_peak

SLOW = SCENARIOS["slow-scale-up"].settings  # scale-up: one pod per 60 s, a 180 s window
SLO = 0.5
NO_METRICS = RunMetrics(0, 0.0, 0.0, 0.0, 0, 0, 0, 0.0)


def _same(recorded: list[float], drawn: list[float]) -> bool:
    """Equal as series, NaN (a value not set) matching NaN."""
    return len(recorded) == len(drawn) and all(
        (math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(recorded, drawn, strict=True)
    )


def _simulation(*, start_seconds: float, settings: list[WorkloadSettings], p95: list[float]) -> Simulation:
    """A hand-made replay result (no replay run): perfpilot's settings minute by minute, and its p95."""
    timeline = Timeline()
    for minute, (each, latency) in enumerate(zip(settings, p95, strict=True)):
        timeline.at_seconds.append(start_seconds + 60.0 * (minute + 1))
        timeline.load_per_second.append(20.0 + minute % 7)
        timeline.replicas.append(2.0 + minute % 3)
        timeline.p95_seconds.append(latency)
        timeline.record_tuned(_tuned_values(each))
    timeline.events.append((start_seconds + 60.0 * len(settings) / 2, "change: hpa.scaleUp"))
    trace = Trace("t", "requests_per_second", start_seconds, 60.0, tuple(timeline.load_per_second))
    runs = {"perfpilot": RunResult("perfpilot", NO_METRICS, timeline)}
    return Simulation(trace, SCENARIOS["slow-scale-up"], SLO, runs)


@pytest.fixture
def drawn() -> Iterator[tuple[Figure, Simulation]]:
    """perfpilot moving from the slow-scale-up configuration (a Pods scale-up policy) to faster Percent ones,
    its limits and pool with it; p95 from 0.05 s to 10 s, a range wide enough for a decade-only log axis."""
    tuned = replace(
        SLOW,
        hpa=replace(SLOW.hpa, scale_up=ScalingRules(stabilization_window_seconds=0, policies=[
            ScalingPolicy(type="Percent", value=100, period_seconds=15)])),
        resources=SLOW.resources.model_copy(update={"cpu_limit_millicores": 4500, "memory_limit_bytes": 3 * GIB}),
        pool=SLOW.pool.model_copy(update={"default_pool_size": 30, "reserve_pool_size": 20}),
    )
    p95 = [0.05 + 0.3 * (m % 5) for m in range(60)]
    p95[30] = 10.0
    simulation = _simulation(start_seconds=898869600.0, settings=[SLOW] * 30 + [tuned] * 30, p95=p95)
    figure = plot.draw(simulation)
    figure.canvas.draw()  # lay it out, as savefig does
    yield figure, simulation
    plt.close(figure)


def _line(figure: Figure, label: str) -> tuple[Axes, Line2D]:
    found = [(axis, line) for axis in figure.axes for line in axis.get_lines() if line.get_label() == label]
    assert len(found) == 1, f"{label!r}: drawn {len(found)} times"
    return found[0]


def _ys(line: Line2D) -> list[float]:
    return [float(y) for y in np.asarray(line.get_ydata(), dtype=float)]


def test_limits_reserve_and_windows_are_recorded_next_to_the_old_values() -> None:
    values = _tuned_values(STATIC_SETTINGS)
    assert values["cpu request m"] == 1000 and values["cpu limit m"] == 2000
    assert values["memory request MiB"] == 1024 and values["memory limit MiB"] == 2048
    assert values["pool size"] == 20 and values["pool reserve"] == 10
    assert values["scale-up window s"] == 0 and values["scale-down window s"] == 300
    assert values["scale-up %/min"] == 100  # Moderate: 50 % per 30 s
    assert values["scale-down %/min"] == 10  # Moderate: 10 % per 60 s
    assert _tuned_values(SLOW)["scale-up window s"] == 180


def test_a_pods_policy_is_recorded_in_pods_per_minute_not_as_0_percent() -> None:
    values = _tuned_values(SLOW)
    assert values["scale-up pods/min"] == 1.0
    assert math.isnan(values["scale-up %/min"])  # no Percent policy: not drawn, rather than drawn at 0
    assert values["scale-up %/min"] != 0.0


def test_behaviour_is_recorded_as_kubernetes_defaults_it_and_disabled_is_0() -> None:
    no_behaviour = replace(STATIC_SETTINGS, hpa=replace(STATIC_SETTINGS.hpa, scale_up=None, scale_down=None))
    values = _tuned_values(no_behaviour)
    # The API server's defaults: up max(4 pods, 100 %) per 15 s, no window; down 100 % per 15 s, the
    # controller's 300 s window.
    assert (values["scale-up %/min"], values["scale-up pods/min"], values["scale-up window s"]) == (400, 16, 0)
    assert values["scale-down %/min"] == 400 and math.isnan(values["scale-down pods/min"])
    assert values["scale-down window s"] == 300
    disabled = ScalingRules(select_policy="Disabled", policies=[ScalingPolicy(type="Pods", value=2, period_seconds=60)])
    values = _tuned_values(replace(STATIC_SETTINGS, hpa=replace(STATIC_SETTINGS.hpa, scale_down=disabled)))
    assert values["scale-down %/min"] == 0 and values["scale-down pods/min"] == 0


def test_a_value_not_set_is_recorded_as_nan_not_0() -> None:
    unset = {"memory_request_bytes": None, "cpu_limit_millicores": None}
    resources = STATIC_SETTINGS.resources.model_copy(update=unset)
    values = _tuned_values(replace(STATIC_SETTINGS, resources=resources))
    assert math.isnan(values["memory request MiB"]) and math.isnan(values["cpu limit m"])


def test_a_replay_that_grows_the_pool_records_its_reserve() -> None:
    trace = load_trace(bundled_trace_path()).window(start_seconds=16 * 3600, hours=1)
    trace = trace.scaled(scale_for_peak(trace, cpu_demand_seconds=0.055, cpu_request_millicores=1000))
    simulation = simulate(trace=trace, scenario=SCENARIOS["small-pool"], profile=default_profile(),
                          runs=("perfpilot",))
    tuned = simulation.runs["perfpilot"].timeline.tuned
    assert len(tuned["pool reserve"]) == len(tuned["pool size"]) == len(trace.rates_per_second)
    assert (tuned["pool size"][0], tuned["pool reserve"][0]) == (8, 0)
    assert tuned["pool reserve"][-1] > 0  # the reserve grew with the pool, and the plot has it


def test_every_recorded_tuned_value_has_a_place_in_the_plot() -> None:
    drawn = {plot.MAX_REPLICAS.key} | {s.key for p in plot.TUNED_PANELS for s in (*p.left, *p.right)}
    assert set(_tuned_values(STATIC_SETTINGS)) <= drawn


def test_every_tuned_value_of_a_panel_that_moved_is_drawn_as_recorded(drawn: tuple[Figure, Simulation]) -> None:
    figure, simulation = drawn
    recorded = simulation.runs["perfpilot"].timeline.tuned
    moved = [p for p in plot.TUNED_PANELS if any(len(set(recorded[s.key])) > 1 for s in (*p.left, *p.right))]
    assert [p.ylabel for p in moved] == ["scale-up, Percent\npolicy (%/min)", "stabilisation\nwindow (s)",
                                         "CPU (millicores)", "memory (MiB)", "pgBouncer pool\n(connections)"]
    for series in (plot.MAX_REPLICAS, *(s for p in moved for s in (*p.left, *p.right))):
        if all(math.isnan(v) for v in recorded[series.key]):
            continue  # never set (here: a Pods scale-down policy): nothing to draw
        _, line = _line(figure, series.label)
        assert _same(recorded[series.key], _ys(line)), series.key
    # The ones perfpilot moved here move in the picture: limits, reserve, the scale-up window.
    for label in ("CPU limit", "memory limit", "reserve_pool_size", "scale-up window"):
        _, line = _line(figure, label)
        assert len(set(_ys(line))) == 2, label


def test_pods_and_percent_policies_each_have_their_own_axis(drawn: tuple[Figure, Simulation]) -> None:
    figure, _ = drawn
    percent_axis, percent = _line(figure, "scale-up: Percent policy")
    pods_axis, pods = _line(figure, "scale-up: Pods policy")
    assert pods_axis is not percent_axis
    assert "pods/min" in pods_axis.get_ylabel() and "%/min" in percent_axis.get_ylabel()
    assert _ys(pods)[:30] == [1.0] * 30  # one pod a minute, not 0 %/min
    assert all(math.isnan(y) for y in _ys(percent)[:30])


def test_legends_and_the_title_cover_no_panel(drawn: tuple[Figure, Simulation]) -> None:
    figure, _ = drawn
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    panels = [axis.get_window_extent(renderer) for axis in figure.axes]
    right_edge = max(p.x1 for p in panels)
    legends = [legend for axis in figure.axes if (legend := axis.get_legend()) is not None]
    assert len(legends) == 4 + 5  # load, pods, CPU, p95, and the five tuned panels that moved
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert box.x0 > right_edge  # in the margin, right of every panel and right-hand axis
        assert box.x1 <= figure.bbox.x1  # and inside the image
    title = figure.texts[0] if figure.texts else None
    assert title is not None and title.get_text() == figure.get_suptitle() != ""
    title_box = title.get_window_extent(renderer)
    assert title_box.y0 > max(p.y1 for p in panels)


def test_the_p95_axis_is_labelled_in_plain_seconds_around_the_slo(drawn: tuple[Figure, Simulation]) -> None:
    figure, _ = drawn
    axis, _ = _line(figure, f"SLO {SLO * 1000:.0f} ms")
    labels = [text.get_text() for text in axis.get_yticklabels()]
    assert "0.5" in labels and "0.1" in labels and "1" in labels and "10 (timeout)" in labels
    assert not any("10^" in label or "$" in label for label in labels)


@pytest.mark.parametrize(("low", "high", "slo"), [(0.04, 12.0, 0.5), (0.25, 0.6, 0.5), (0.2, 11.0, 0.3),
                                                  (0.43, 0.58, 0.5), (0.001, 100.0, 0.25)])
def test_p95_ticks_always_hold_the_slo_and_several_plain_values(low: float, high: float, slo: float) -> None:
    ticks = plot.p95_ticks(low, high, slo)
    assert slo in ticks
    assert len(ticks) >= 3
    assert all(low <= t <= high for t in ticks if t != slo)
    assert any(t < slo for t in ticks)  # a value below the SLO is labelled too
    assert all(len(f"{t:g}") <= 5 for t in ticks)  # 0.1, 0.25, 2, 10: no 0.30000000000000004


def test_a_trace_with_relative_timestamps_is_titled_from_t_0_not_1970() -> None:
    relative = _simulation(start_seconds=0.0, settings=[SLOW] * 3, p95=[0.3] * 3)
    title = plot.plot_title(relative)
    assert "1970" not in title
    assert "from t=0 s, relative timestamps" in title
    absolute = _simulation(start_seconds=898869600.0, settings=[SLOW] * 3, p95=[0.3] * 3)
    assert "from 1998-06-26 14:00 UTC" in plot.plot_title(absolute)


def test_write_plot_writes_one_png(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "out.png"
    plot.write_plot(_simulation(start_seconds=0.0, settings=[SLOW] * 10, p95=[0.3] * 10), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == []  # closed after writing


def test_values_that_never_moved_are_named_under_the_panels_not_drawn(drawn: tuple[Figure, Simulation]) -> None:
    figure, _ = drawn
    for label in ("CPU target", "memory target", "scale-down: Percent policy"):
        assert not [line for axis in figure.axes for line in axis.get_lines() if line.get_label() == label]
    xlabel = next(axis.get_xlabel() for axis in figure.axes if axis.get_xlabel())
    # A panel is drawn whole when any of its values moved (the scale-down window beside the scale-up one).
    assert xlabel.endswith("unchanged all window: CPU target 70%, memory target 80%, scale-down: Percent policy "
                           "10 %/min")


def _runs_simulation() -> Simulation:
    """Two runs on one minute grid: static with more, smaller pods and three minutes over the SLO."""
    def timeline(*, replicas: float, cores: float, p95: list[float]) -> Timeline:
        line = Timeline()
        for minute, latency in enumerate(p95):
            line.at_seconds.append(60.0 * (minute + 1))
            line.load_per_second.append(20.0)
            line.replicas.append(replicas)
            line.p95_seconds.append(latency)
            line.cpu_request_cores.append(cores)
            line.working_set_mib.append(400.0 + minute)
            line.pool_in_use.append(5.0)
            line.record_tuned(_tuned_values(STATIC_SETTINGS))
        return line
    pp = RunResult("perfpilot", RunMetrics(0, 1.0, 2.0, 0.0, 0, 0, 0, 0.3),
                   timeline(replicas=2, cores=4.0, p95=[0.3] * 10))
    static = RunResult("static", RunMetrics(3, 1.5, 1.5, 0.0, 0, 0, 0, 0.9),
                       timeline(replicas=3, cores=3.0, p95=[0.3, 0.3, 0.9, 0.9, 0.9, 0.3, 0.3, 0.3, 0.3, 0.3]))
    trace = Trace("t", "rps", 0.0, 60.0, (20.0,) * 10)
    return Simulation(trace, SCENARIOS["right-sized"], SLO, {"perfpilot": pp, "static": static})


def test_each_runs_requested_cpu_and_its_core_hours_are_drawn() -> None:
    figure = plot.draw(_runs_simulation())
    try:
        _, perfpilot = _line(figure, "perfpilot: 2 core-h")
        _, static = _line(figure, "static: 2 core-h")  # 1.5 core-h, rounded
        assert set(_ys(perfpilot)) == {4.0} and set(_ys(static)) == {3.0}
    finally:
        plt.close(figure)


def test_each_runs_minutes_over_the_slo_are_marked_in_its_own_row() -> None:
    figure = plot.draw(_runs_simulation())
    try:
        axis = next(a for a in figure.axes if a.get_ylabel() == "minutes\nover SLO")
        rows = {text.get_text(): index for index, text in enumerate(axis.get_yticklabels())}
        assert set(rows) == {"perfpilot (0)", "static (3)"}
        marked = {collection.get_facecolor()[0][:3].round(3).tobytes(): len(collection.get_paths())
                  for collection in axis.collections}
        static_colour = np.array(matplotlib.colors.to_rgb(plot.COLOURS["static"])).round(3).tobytes()
        perfpilot_colour = np.array(matplotlib.colors.to_rgb(plot.COLOURS["perfpilot"])).round(3).tobytes()
        assert marked[static_colour] == 3 and marked.get(perfpilot_colour, 0) == 0
        _, p95 = _line(figure, "static: 3 min over SLO")
        assert max(_ys(p95)) == 0.9
    finally:
        plt.close(figure)


def test_the_memory_panel_draws_the_working_set_perfpilot_sized_it_by() -> None:
    moving = replace(STATIC_SETTINGS, resources=STATIC_SETTINGS.resources.model_copy(
        update={"memory_request_bytes": 2 * GIB}))
    simulation = _simulation(start_seconds=0.0, settings=[STATIC_SETTINGS] * 5 + [moving] * 5, p95=[0.3] * 10)
    timeline = simulation.runs["perfpilot"].timeline
    timeline.working_set_mib.extend(500.0 + 10 * minute for minute in range(10))
    figure = plot.draw(simulation)
    try:
        memory_axis, working_set = _line(figure, "working set, largest pod")
        request_axis, _ = _line(figure, "memory request")
        assert memory_axis is request_axis
        assert _ys(working_set) == [500.0 + 10 * minute for minute in range(10)]
    finally:
        plt.close(figure)


def test_changes_are_listed_with_what_moved_from_what_to_what_and_why() -> None:
    moving = replace(STATIC_SETTINGS, hpa=replace(STATIC_SETTINGS.hpa, cpu_target_percent=60))
    simulation = _simulation(start_seconds=0.0, settings=[STATIC_SETTINGS] * 5 + [moving] * 5, p95=[0.3] * 10)
    run = simulation.runs["perfpilot"]
    run.timeline.events[:] = [(300.0, "change: hpa.cpuTarget")]  # recorded at minute 5's end, as the replay does
    run.decisions.append((300.0, "change hpa.cpuTarget: Bursty load (CV 0.99 > 0.30): CPU target row 60%"))
    assert plot.list_changes(simulation) == [plot.ListedChange(
        1, 300.0 / 3600, "change", "CPU target 70% -> 60%  (Bursty load (CV 0.99 > 0.30))")]


@pytest.mark.parametrize(("decision", "clause"), [
    ("change hpa.cpuTarget: Bursty load (CV 0.99 > 0.30): CPU target row 60%", "Bursty load (CV 0.99 > 0.30)"),
    # ": " inside the evidence's parentheses is not the clause's end
    ("change hpa.scaleDown: bursty load (request-rate CV 0.32 > 0.25 (staying Bursty: leave threshold)): row 'Slow'",
     "bursty load (request-rate CV 0.32 > 0.25 (staying Bursty: leave threshold))"),
    ("change pool.size: Pool utilisation peak 10% < 50%", "Pool utilisation peak 10% < 50%"),
    ("rollback", ""),
])
def test_the_change_list_gives_a_decisions_first_clause_whole(decision: str, clause: str) -> None:
    assert plot.first_clause(decision) == clause


def test_a_minute_at_the_timeout_is_marked_over_an_slo_longer_than_the_timeout() -> None:
    # SLO 20 s, timeout 10 s: a minute whose p95 is capped at the timeout had requests fail, a violation the
    # metrics count; one at 9 s met it.
    simulation = _runs_simulation()
    simulation = Simulation(simulation.trace, simulation.scenario, 20.0, {"static": simulation.runs["static"]})
    simulation.runs["static"].timeline.p95_seconds[:] = [10.0, 9.0] + [0.3] * 8
    figure = plot.draw(simulation)
    try:
        axis = next(a for a in figure.axes if a.get_ylabel() == "minutes\nover SLO")
        assert [len(collection.get_paths()) for collection in axis.collections] == [1]
    finally:
        plt.close(figure)

"""The simulation's picture: load, replicas, p95 against the SLO, and every value perfpilot tuned."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

from perfpilot.sim.replay import RUN_NAMES, Simulation

matplotlib.use("Agg")  # files only: no display on servers and in CI
import matplotlib.pyplot as plt  # after use(): the backend must be chosen before pyplot loads
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator
from matplotlib.transforms import offset_copy

COLOURS = {"perfpilot": "tab:blue", "static": "tab:orange", "k8s-default": "tab:green", "oracle": "tab:gray"}
# perfpilot on top, the oracle (a minute-by-minute bound that sits on the SLO) faint underneath: where the
# runs agree, the line seen is perfpilot's.
ZORDER = {"perfpilot": 4, "static": 3, "k8s-default": 2, "oracle": 1}
ALPHA = {"oracle": 0.45}
# A trace whose first timestamp is before 1980 counts seconds from its own start (alibaba, google, azure...),
# not Unix time: its title says "t=0 s", not "1970-01-01".
RELATIVE_BEFORE_SECONDS = datetime(1980, 1, 1, tzinfo=UTC).timestamp()
# Every legend sits in the margin right of its panel, this far from the frame (room for a right-hand axis's
# labels), so none covers a line or the SLO.
LEGEND_GAP_POINTS = 62.0


@dataclass(frozen=True)
class Series:
    """One recorded tuned value (a key of ``Timeline.tuned``) and how it is drawn."""

    key: str
    label: str
    colour: str
    linestyle: str = "-"


@dataclass(frozen=True)
class TunedPanel:
    """Tuned values that share a unit; ``right`` ones (another unit) get their own axis on the right."""

    ylabel: str
    left: tuple[Series, ...]
    right_ylabel: str = ""
    right: tuple[Series, ...] = ()
    from_zero: bool = False  # a rate: its axis starts at 0 (no scaling), so its size reads true


# Every value perfpilot tunes, one unit per axis. Max replicas is drawn on the pods panel, as the ceiling of
# the replica lines.
MAX_REPLICAS = Series("max replicas", "max replicas (perfpilot)", "tab:purple", "--")
TUNED_PANELS = (
    TunedPanel("HPA target\n(% of request)", (
        Series("cpu target %", "CPU target", "tab:blue"),
        Series("memory target %", "memory target", "tab:orange"),
    )),
    TunedPanel(
        "scale-up, Percent\npolicy (%/min)", (Series("scale-up %/min", "scale-up: Percent policy", "tab:blue"),),
        "Pods policy\n(pods/min)", (Series("scale-up pods/min", "scale-up: Pods policy", "tab:red", "--"),),
        from_zero=True,
    ),
    TunedPanel(
        "scale-down, Percent\npolicy (%/min)", (Series("scale-down %/min", "scale-down: Percent policy", "tab:blue"),),
        "Pods policy\n(pods/min)", (Series("scale-down pods/min", "scale-down: Pods policy", "tab:red", "--"),),
        from_zero=True,
    ),
    TunedPanel("stabilisation\nwindow (s)", (
        Series("scale-up window s", "scale-up window", "tab:blue"),
        Series("scale-down window s", "scale-down window", "tab:orange"),
    )),
    TunedPanel("CPU (millicores)", (
        Series("cpu request m", "CPU request", "tab:blue"),
        Series("cpu limit m", "CPU limit", "tab:orange", "--"),
    )),
    TunedPanel("memory (MiB)", (
        Series("memory request MiB", "memory request", "tab:blue"),
        Series("memory limit MiB", "memory limit", "tab:orange", "--"),
    )),
    TunedPanel("pgBouncer pool\n(connections)", (
        Series("pool size", "default_pool_size", "tab:blue"),
        Series("pool reserve", "reserve_pool_size", "tab:orange", "--"),
    )),
)
# The p95 axis is logarithmic: its labels are plain seconds from these (times powers of ten), never 10^k.
_COARSE = (1.0, 2.0, 5.0)
_FINE = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)
_HALVES = tuple(m / 2 for m in range(2, 20))


def check_plot_path(path: Path) -> str | None:
    """None when matplotlib can write ``path``, else why not: checked before a replay, not after it."""
    supported = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    suffix = path.suffix.lstrip(".").lower()
    if suffix not in supported:
        kind = f"a .{suffix} file" if suffix else "a file without a suffix"
        return f"--plot {path}: cannot draw {kind} (use one of: {', '.join(sorted(supported))})"
    return None


def plot_title(simulation: Simulation) -> str:
    """The figure's title: what was replayed, from when, against which SLO."""
    start_seconds = simulation.trace.start_seconds
    if start_seconds < RELATIVE_BEFORE_SECONDS:
        start = f"from t={start_seconds:.0f} s, relative timestamps"
    else:
        start = f"from {datetime.fromtimestamp(start_seconds, tz=UTC):%Y-%m-%d %H:%M} UTC"
    return (f"perfpilot simulate — scenario {simulation.scenario.name}, trace {simulation.trace.name} ({start}), "
            f"SLO p95 {simulation.slo_seconds * 1000:.0f} ms")


def p95_ticks(low: float, high: float, slo: float) -> list[float]:
    """Where the log p95 axis spanning ``low``..``high`` seconds is labelled, in plain seconds: the SLO, the
    1-2-5 steps, and other digits where they fit — everywhere on a narrow axis, below the SLO on a wide one,
    so the values near the SLO are readable. No two labels closer than a label's height."""
    decades = math.log10(high / low)
    gap = 0.075 * decades  # about a label's height on the p95 panel, in decades

    def steps(mantissas: tuple[float, ...]) -> list[float]:
        exponents = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        return [float(f"{m * 10.0**k:.6g}") for k in exponents for m in mantissas if low <= m * 10.0**k <= high]

    fine = steps(_FINE)
    candidates = [slo, *steps(_COARSE), *sorted((t for t in fine if decades < 1.0 or t < slo), reverse=True)]
    if decades < 0.3:  # a few tens of percent: half steps too
        candidates += steps(_HALVES)
    ticks: list[float] = []
    for tick in candidates:  # by priority: a tick too close to one kept is left out
        if all(abs(math.log10(tick / kept)) >= gap for kept in ticks):
            ticks.append(tick)
    return sorted(ticks)


def _tick_label(seconds: float) -> str:
    return f"{seconds:g}"


def _legend(axis: Axes, handles: Sequence[Line2D] | None = None) -> None:
    """The panel's legend in the margin right of it, clear of the data."""
    anchor = offset_copy(axis.transAxes, fig=axis.get_figure(root=True), x=LEGEND_GAP_POINTS, y=0.0, units="points")
    kwargs = {"handles": list(handles)} if handles is not None else {}
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), bbox_transform=anchor, borderaxespad=0.0,
                fontsize="small", frameon=False, **kwargs)


def _step_series(axis: Axes, series: Series, *, hours: list[float], values: list[float]) -> Line2D:
    """``values`` as steps, with a dot where each value starts: one held for a few minutes still shows."""
    label = series.label if any(math.isfinite(v) for v in values) else f"{series.label} (not set)"
    starts = [i for i, v in enumerate(values) if math.isfinite(v) and (i == 0 or v != values[i - 1])]
    (line,) = axis.step(hours[: len(values)], values, where="post", linewidth=1.3, color=series.colour,
                        linestyle=series.linestyle, label=label, marker="o", markersize=3.5, markevery=starts)
    return line


def _draw_p95(axis: Axes, simulation: Simulation, hours: list[float]) -> None:
    slo = simulation.slo_seconds
    seen = [slo]
    for name in RUN_NAMES:
        if name not in simulation.runs:
            continue
        p95 = [v if math.isfinite(v) and v > 0 else math.nan for v in simulation.runs[name].timeline.p95_seconds]
        seen.extend(v for v in p95 if not math.isnan(v))
        axis.plot(hours[: len(p95)], p95, linewidth=0.8, color=COLOURS[name], zorder=ZORDER[name],
                  alpha=ALPHA.get(name, 1.0), label=name)
    axis.axhline(slo, color="red", linestyle="--", linewidth=1.2, zorder=5, label=f"SLO {slo * 1000:.0f} ms")
    axis.set_yscale("log")
    low, high = min(seen) / 1.15, max(seen) * 1.15
    axis.set_ylim(low, high)
    ticks = p95_ticks(low, high, slo)
    axis.yaxis.set_major_locator(FixedLocator(ticks))
    axis.yaxis.set_minor_locator(NullLocator())
    axis.set_yticklabels([_tick_label(t) for t in ticks])
    for tick, text in zip(ticks, axis.get_yticklabels(), strict=True):
        if tick == slo:
            text.set_color("red")
    axis.set_ylabel("p95 (s, log)")
    _legend(axis)


def _draw_tuned(axis: Axes, panel: TunedPanel, *, tuned: dict[str, list[float]], hours: list[float]) -> None:
    axis.set_ylabel(panel.ylabel, fontsize="small")
    lines = [_step_series(axis, s, hours=hours, values=tuned.get(s.key, [])) for s in panel.left]
    drawn = [axis]
    # A Pods policy gets its own axis, in its own unit, only where one was ever set.
    right = [s for s in panel.right if any(math.isfinite(v) for v in tuned.get(s.key, []))]
    if right:
        twin = axis.twinx()
        twin.set_ylabel(panel.right_ylabel, fontsize="small", color=right[0].colour)
        twin.tick_params(axis="y", colors=right[0].colour)
        lines += [_step_series(twin, s, hours=hours, values=tuned.get(s.key, [])) for s in right]
        drawn.append(twin)
    for ax in drawn:
        ax.margins(y=0.15)  # a value that never moves is drawn inside the frame, not on it
        if panel.from_zero:
            ax.set_ylim(bottom=0)
    _legend(axis, lines)


def draw(simulation: Simulation) -> Figure:
    """The figure for ``simulation``: one column of panels on a shared hour axis (the caller closes it)."""
    first = next(iter(simulation.runs.values()))
    hours = [(t - simulation.trace.start_seconds) / 3600 for t in first.timeline.at_seconds]
    panels = 3 + len(TUNED_PANELS)
    heights = [1.5, 1.5, 1.9] + [1.1] * len(TUNED_PANELS)
    figure, axes = plt.subplots(panels, 1, figsize=(13, 1.6 * panels + 0.6), sharex=True, layout="constrained",
                                gridspec_kw={"height_ratios": heights})
    try:
        _draw_panels(figure, list(axes), simulation=simulation, hours=hours)
    except BaseException:
        plt.close(figure)
        raise
    return figure


def _draw_panels(figure: Figure, axes: list[Axes], *, simulation: Simulation, hours: list[float]) -> None:
    runs = simulation.runs
    first = next(iter(runs.values()))
    start_seconds = simulation.trace.start_seconds
    tuned = runs["perfpilot"].timeline if "perfpilot" in runs else None
    figure.suptitle(plot_title(simulation), fontsize="large")

    axes[0].plot(hours, first.timeline.load_per_second, color="black", linewidth=0.8, label="load")
    axes[0].set_ylabel("requests/s")
    axes[0].set_ylim(bottom=0)
    _legend(axes[0])
    for name in RUN_NAMES:
        if name not in runs:
            continue
        timeline = runs[name].timeline
        axes[1].step(hours[: len(timeline.replicas)], timeline.replicas, where="post", linewidth=1,
                     color=COLOURS[name], zorder=ZORDER[name], alpha=ALPHA.get(name, 1.0), label=name)
    if tuned is not None:
        _step_series(axes[1], MAX_REPLICAS, hours=hours, values=tuned.tuned.get(MAX_REPLICAS.key, []))
    axes[1].set_ylabel("pods")
    axes[1].margins(y=0.1)
    _legend(axes[1])
    _draw_p95(axes[2], simulation, hours)

    for axis, panel in zip(axes[3:], TUNED_PANELS, strict=True):
        if tuned is None:
            axis.set_ylabel(panel.ylabel, fontsize="small")
            axis.text(0.5, 0.5, "perfpilot not replayed: nothing tuned", transform=axis.transAxes, ha="center")
            axis.set_yticks([])
            continue
        _draw_tuned(axis, panel, tuned=tuned.tuned, hours=hours)
    if tuned is not None:
        for at, label in tuned.events:
            x = (at - start_seconds) / 3600
            colour = "red" if label.startswith("rollback") else "tab:blue"
            for axis in axes:
                axis.axvline(x, color=colour, alpha=0.25, linewidth=0.8, zorder=0)
    figure.align_ylabels(axes)
    axes[-1].set_xlabel("hours since the window's start (blue lines: perfpilot changes, red: rollbacks)")


def write_plot(simulation: Simulation, path: Path, *, image_format: str | None = None) -> None:
    """Draw ``simulation`` into ``path``, as ``image_format`` (default: from the path's suffix)."""
    figure = draw(simulation)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        figure.savefig(path, dpi=110, format=image_format)
    finally:
        plt.close(figure)

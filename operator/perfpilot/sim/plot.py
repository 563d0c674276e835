"""The simulation's picture: load, replicas, p95 against the SLO, and every value perfpilot tuned."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

from perfpilot.sim.replay import RUN_NAMES, Simulation, Timeline

matplotlib.use("Agg")  # files only: no display on servers and in CI
import matplotlib.pyplot as plt  # after use(): the backend must be chosen before pyplot loads
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, MaxNLocator, MultipleLocator, NullLocator
from matplotlib.transforms import offset_copy

# The Okabe-Ito palette, which stays apart under the common colour-vision deficiencies, and a line style per
# run as well, so runs differ without colour.
COLOURS = {"perfpilot": "#0072B2", "static": "#E69F00", "k8s-default": "#009E73", "oracle": "#666666"}
LINESTYLES = {"perfpilot": "-", "static": "--", "k8s-default": (0, (1, 1.2)), "oracle": "-."}
# perfpilot on top, the oracle (a minute-by-minute bound) faint underneath: where the runs agree, the line
# seen is perfpilot's.
ZORDER = {"perfpilot": 4, "static": 3, "k8s-default": 2, "oracle": 1}
ALPHA = {"oracle": 0.6}
LINEWIDTH = {"oracle": 0.8}
CHANGE_COLOUR, ROLLBACK_COLOUR = "#444444", "#D55E00"
# At most this many of perfpilot's changes are listed under the panels (the JSON has them all).
LISTED_CHANGES = 30
LISTED_CHANGE_CHARACTERS = 140  # what a line of the list holds across the figure's width
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
    # PGF is LaTeX drawing commands, written through a TeX installation (xelatex) this tool does not need.
    supported.pop("pgf", None)
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


def _run_names(simulation: Simulation) -> list[str]:
    return [name for name in RUN_NAMES if name in simulation.runs]


def _run_line(axis: Axes, name: str, *, hours: list[float], values: list[float], label: str) -> Line2D:
    """One run's per-minute values as steps, in its colour and line style."""
    (line,) = axis.step(hours[: len(values)], values, where="post", linewidth=LINEWIDTH.get(name, 1.1),
                        color=COLOURS[name], linestyle=LINESTYLES[name], zorder=ZORDER[name],
                        alpha=ALPHA.get(name, 1.0), label=label)
    return line


def _draw_p95(axis: Axes, simulation: Simulation, hours: list[float]) -> None:
    """The served runs' p95 against the SLO. The oracle is left out: it is a bound picked to sit at the SLO,
    and its line there read as a run about to breach it."""
    slo = simulation.slo_seconds
    timeout = simulation.scenario.params.request_timeout_seconds
    seen = [slo]
    for name in _run_names(simulation):
        if name == "oracle":
            continue
        run = simulation.runs[name]
        p95 = [v if math.isfinite(v) and v > 0 else math.nan for v in run.timeline.p95_seconds]
        seen.extend(v for v in p95 if not math.isnan(v))
        minutes = run.metrics.slo_violation_minutes
        # Solid for every run: a dashed line of a noisy series reads as gaps in it.
        axis.plot(hours[: len(p95)], p95, linewidth=0.8, color=COLOURS[name], zorder=ZORDER[name],
                  label=f"{name}: {minutes} min over SLO")
    axis.axhline(slo, color="black", linestyle="--", linewidth=1.2, zorder=5, label=f"SLO {slo * 1000:.0f} ms")
    axis.set_yscale("log")
    low, high = min(seen) / 1.15, max(seen) * 1.15
    axis.set_ylim(low, high)
    ticks = p95_ticks(low, high, slo)
    reaches_timeout = high >= timeout >= low
    if reaches_timeout and timeout not in ticks:
        ticks = sorted([t for t in ticks if abs(math.log10(t / timeout)) >= 0.075 * math.log10(high / low)]
                       + [timeout])
    axis.yaxis.set_major_locator(FixedLocator(ticks))
    axis.yaxis.set_minor_locator(NullLocator())
    axis.set_yticklabels([f"{_tick_label(t)} (timeout)" if reaches_timeout and t == timeout else _tick_label(t)
                          for t in ticks])
    for tick, text in zip(ticks, axis.get_yticklabels(), strict=True):
        if tick == slo:
            text.set_fontweight("bold")
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


def _draw_violations(axis: Axes, simulation: Simulation, hours: list[float]) -> None:
    """One row per run, a mark on each minute over the SLO: a breach hidden under another run's line in the
    p95 panel shows here."""
    names = _run_names(simulation)
    step_hours = simulation.trace.step_seconds / 3600
    slo, timeout = simulation.slo_seconds, simulation.scenario.params.request_timeout_seconds


    def over_slo(p95: float) -> bool:
        # As the replay counts a minute: over the SLO, or at the timeout (a p95 is capped there, and a request
        # that timed out is never within an SLO, however long).
        return math.isfinite(p95) and (p95 > slo if slo < timeout else p95 >= timeout)

    for row, name in enumerate(reversed(names)):
        p95 = simulation.runs[name].timeline.p95_seconds
        over = [(hours[i] - step_hours, step_hours) for i, v in enumerate(p95) if i < len(hours) and over_slo(v)]
        axis.broken_barh(over, (row + 0.15, 0.7), facecolors=COLOURS[name])
    axis.set_yticks([row + 0.5 for row in range(len(names))])
    axis.set_yticklabels([f"{name} ({simulation.runs[name].metrics.slo_violation_minutes})"
                          for name in reversed(names)], fontsize="small")
    axis.set_ylim(0, len(names))
    axis.set_ylabel("minutes\nover SLO", fontsize="small")


def _changing(panel: TunedPanel, tuned: dict[str, list[float]]) -> bool:
    """Whether any value of ``panel`` moved during the window."""
    for series in (*panel.left, *panel.right):
        values = [v for v in tuned.get(series.key, []) if math.isfinite(v)]
        if len(set(values)) > 1 or (values and len(values) != len(tuned.get(series.key, []))):
            return True
    return False


def _unit(key: str) -> str:
    last = key.rsplit(" ", 1)[-1]
    return last if last in ("%", "m", "MiB", "%/min", "pods/min", "s") else ""


def _value(key: str, value: float) -> str:
    if not math.isfinite(value):
        return "not set"
    unit = _unit(key)
    return f"{value:g}" + (f" {unit}" if unit and unit != "%" else unit)


def describe_unchanged(tuned: dict[str, list[float]], panels: Sequence[TunedPanel]) -> str:
    """The values of ``panels`` (none of which moved), on one line: "CPU request 1000 m, ..."."""
    parts = []
    for panel in panels:
        for series in (*panel.left, *panel.right):
            values = tuned.get(series.key, [])
            if values and math.isfinite(values[0]):
                parts.append(f"{series.label} {_value(series.key, values[0])}")
    return ", ".join(parts)


@dataclass(frozen=True)
class ListedChange:
    number: int
    hours: float
    kind: str  # "change" or "rollback"
    text: str  # "CPU target 70 -> 60; why: ..."


def list_changes(simulation: Simulation) -> list[ListedChange]:
    """perfpilot's changes in order: when, what moved from what to what (read off the recorded values, the
    minute before and after), and the first clause of its reason."""
    run = simulation.runs.get("perfpilot")
    if run is None:
        return []
    timeline = run.timeline
    index_at = {at: i for i, at in enumerate(timeline.at_seconds)}
    reasons = dict(run.decisions)
    labels = {s.key: s.label for p in TUNED_PANELS for s in (*p.left, *p.right)} | {MAX_REPLICAS.key: "max replicas"}
    listed = []
    for number, (at, label) in enumerate(timeline.events, start=1):
        kind = label.split(":", 1)[0]
        i = index_at.get(at)
        moves = []
        if i is not None and i + 1 < len(timeline.at_seconds):
            for key, values in timeline.tuned.items():
                before, after = values[i], values[i + 1]
                if before != after and not (math.isnan(before) and math.isnan(after)):
                    moves.append(f"{labels.get(key, key)} {_value(key, before)} -> {_value(key, after)}")
        what = "; ".join(moves) or label.split(":", 1)[-1].strip()
        why = first_clause(reasons.get(at, ""))
        text = f"{what}  ({why})" if why else what
        text = text if len(text) <= LISTED_CHANGE_CHARACTERS else text[: LISTED_CHANGE_CHARACTERS - 1] + "…"
        listed.append(ListedChange(number, (at - simulation.trace.start_seconds) / 3600, kind, text))
    return listed


def first_clause(decision: str) -> str:
    """The first clause of a decision's reason: "change hpa.cpuTarget: Bursty load (CV 0.99 > 0.30 (staying
    Bursty: leave threshold)): row ..." -> "Bursty load (CV 0.99 > 0.30 (staying Bursty: leave threshold))".
    Clauses end at ": " outside parentheses (the reasons nest their evidence in them)."""
    cuts, depth = [], 0
    for index, character in enumerate(decision):
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth == 0 and decision.startswith(": ", index):
            cuts.append(index)
    if not cuts:
        return ""
    end = cuts[1] if len(cuts) > 1 else len(decision)
    return decision[cuts[0] + 2:end]


def _draw_change_list(axis: Axes, changes: list[ListedChange]) -> None:
    axis.set_axis_off()
    shown = changes[:LISTED_CHANGES]
    lines = [f"{c.number:>3}  {c.hours:7.2f} h  {c.kind:<8}  {c.text}" for c in shown]
    if len(changes) > len(shown):
        lines.append(f"     ... and {len(changes) - len(shown)} more (simulate --json lists them all)")
    axis.text(0.0, 1.0, "perfpilot's changes (numbered as on the load panel):\n" + "\n".join(lines),
              transform=axis.transAxes, va="top", ha="left", family="monospace", fontsize="x-small")


def _mark_changes(axes: list[Axes], changes: list[ListedChange]) -> None:
    """A line through every panel at each change (dark grey; vermillion for a rollback), and its number
    above the load panel, staggered over three heights so that changes minutes apart stay legible."""
    for change in changes:
        colour = ROLLBACK_COLOUR if change.kind == "rollback" else CHANGE_COLOUR
        for axis in axes:
            axis.axvline(change.hours, color=colour, alpha=0.35, linewidth=0.8, zorder=0)
        axes[0].annotate(str(change.number), xy=(change.hours, 1.0), xycoords=("data", "axes fraction"),
                         xytext=(0, 2 + 8 * ((change.number - 1) % 3)), textcoords="offset points",
                         ha="center", va="bottom", fontsize="xx-small", color=colour)


def _hour_ticks(axis: Axes, hours: list[float]) -> None:
    span = hours[-1] - hours[0] if len(hours) > 1 else 1.0
    if span > 72:  # a long window: whole days, quarter days between
        axis.xaxis.set_major_locator(MultipleLocator(24))
        axis.xaxis.set_minor_locator(MultipleLocator(6))


def draw(simulation: Simulation) -> Figure:
    """The figure for ``simulation``: one column of panels on a shared hour axis (the caller closes it)."""
    first = next(iter(simulation.runs.values()))
    hours = [(t - simulation.trace.start_seconds) / 3600 for t in first.timeline.at_seconds]
    tuned = simulation.runs["perfpilot"].timeline.tuned if "perfpilot" in simulation.runs else None
    moving = [p for p in TUNED_PANELS if tuned is not None and _changing(p, tuned)]
    changes = list_changes(simulation)
    listed = min(len(changes), LISTED_CHANGES) + (1 if len(changes) > LISTED_CHANGES else 0)
    runs = len(_run_names(simulation))
    heights = [1.4, 1.5, 1.3, 1.9, 0.25 * runs + 0.2] + [1.1] * max(1, len(moving))
    if changes:
        heights.append(0.16 * (listed + 1))
    figure, axes = plt.subplots(len(heights), 1, figsize=(13, sum(heights) * 1.12 + 1.0), layout="constrained",
                                gridspec_kw={"height_ratios": heights})
    axes = list(axes)
    if changes:  # the list is text on its own axis, not a panel of the time axis
        plot_axes, list_axis = axes[:-1], axes[-1]
    else:
        plot_axes, list_axis = axes, None
    for axis in plot_axes[1:]:
        axis.sharex(plot_axes[0])
    for axis in plot_axes[:-1]:
        axis.tick_params(labelbottom=False)
    try:
        _draw_panels(figure, plot_axes, simulation=simulation, hours=hours, moving=moving, changes=changes)
        if list_axis is not None:
            _draw_change_list(list_axis, changes)
    except BaseException:
        plt.close(figure)
        raise
    return figure


def _draw_panels(figure: Figure, axes: list[Axes], *, simulation: Simulation, hours: list[float],
                 moving: list[TunedPanel], changes: list[ListedChange]) -> None:
    runs = simulation.runs
    first = next(iter(runs.values()))
    perfpilot = runs["perfpilot"].timeline if "perfpilot" in runs else None
    figure.suptitle(plot_title(simulation), fontsize="large")

    axes[0].plot(hours, first.timeline.load_per_second, color="black", linewidth=0.8, label="load")
    axes[0].set_ylabel("requests/s")
    axes[0].set_ylim(bottom=0)
    _legend(axes[0])

    for name in _run_names(simulation):
        _run_line(axes[1], name, hours=hours, values=runs[name].timeline.replicas, label=name)
    if perfpilot is not None:
        _step_series(axes[1], MAX_REPLICAS, hours=hours, values=perfpilot.tuned.get(MAX_REPLICAS.key, []))
    axes[1].set_ylabel("pods\n(with rollout surge)", fontsize="small")
    axes[1].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].margins(y=0.1)
    _legend(axes[1])

    # What the pods cost: pods alone hide their size (perfpilot's fewer, larger pods can cost more).
    for name in _run_names(simulation):
        timeline = runs[name].timeline
        _run_line(axes[2], name, hours=hours, values=timeline.cpu_request_cores,
                  label=f"{name}: {runs[name].metrics.cpu_core_hours:.0f} core-h")
    axes[2].set_ylabel("CPU requested\n(cores)", fontsize="small")
    axes[2].set_ylim(bottom=0)
    _legend(axes[2])

    _draw_p95(axes[3], simulation, hours)
    _draw_violations(axes[4], simulation, hours)

    tuned_axes = axes[5:]
    if perfpilot is None:
        tuned_axes[0].text(0.5, 0.5, "perfpilot not replayed: nothing tuned", transform=tuned_axes[0].transAxes,
                           ha="center")
        tuned_axes[0].set_yticks([])
    elif not moving:
        tuned_axes[0].text(0.5, 0.5, "perfpilot changed nothing", transform=tuned_axes[0].transAxes, ha="center")
        tuned_axes[0].set_yticks([])
    for axis, panel in zip(tuned_axes, moving, strict=False):
        _draw_tuned(axis, panel, tuned=perfpilot.tuned if perfpilot is not None else {}, hours=hours)
        if perfpilot is not None:
            _draw_signal(axis, panel, timeline=perfpilot, hours=hours)
    _mark_changes(axes, changes)
    figure.align_ylabels(axes)
    _hour_ticks(axes[-1], hours)
    unchanged = [p for p in TUNED_PANELS if p not in moving]
    note = ""
    if perfpilot is not None and unchanged:
        note = "\nunchanged all window: " + describe_unchanged(perfpilot.tuned, unchanged)
    axes[-1].set_xlabel("hours since the window's start (grey lines: perfpilot's changes, vermillion: rollbacks; "
                        "policies as their per-minute step)" + note, fontsize="small")


def _draw_signal(axis: Axes, panel: TunedPanel, *, timeline: Timeline, hours: list[float]) -> None:
    """What perfpilot's memory and pool rows act on, under the values they set."""
    keys = {s.key for s in panel.left}
    if "memory request MiB" in keys:
        values, label = timeline.working_set_mib, "working set, largest pod"
    elif "pool size" in keys:
        values, label = timeline.pool_in_use, "connections in use (most in a tick)"
    else:
        return
    axis.plot(hours[: len(values)], values, color="#999999", linewidth=0.8, zorder=1, label=label)
    handles = [line for line in axis.get_lines() if not str(line.get_label()).startswith("_")]
    _legend(axis, handles)


def write_plot(simulation: Simulation, path: Path, *, image_format: str | None = None) -> None:
    """Draw ``simulation`` into ``path``, as ``image_format`` (default: from the path's suffix)."""
    figure = draw(simulation)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        figure.savefig(path, dpi=110, format=image_format)
    finally:
        plt.close(figure)

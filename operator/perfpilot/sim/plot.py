"""The simulation's picture: load, replicas, p95 against the SLO, and every value perfpilot tuned."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

from perfpilot.sim.replay import RUN_NAMES, Simulation

matplotlib.use("Agg")  # files only: no display on servers and in CI
import matplotlib.pyplot as plt  # after use(): the backend must be chosen before pyplot loads

COLOURS = {"perfpilot": "tab:blue", "static": "tab:orange", "k8s-default": "tab:green", "oracle": "tab:gray"}
# perfpilot on top, the oracle (a minute-by-minute bound that sits on the SLO) faint underneath: where the
# runs agree, the line seen is perfpilot's.
ZORDER = {"perfpilot": 4, "static": 3, "k8s-default": 2, "oracle": 1}
ALPHA = {"oracle": 0.45}
# Tuned values drawn together because they share a unit.
TUNED_PANELS = (
    ("HPA targets (%)", ("cpu target %", "memory target %")),
    ("behaviour (% per minute)", ("scale-up %/min", "scale-down %/min")),
    ("CPU request (millicores)", ("cpu request m",)),
    ("memory request (MiB)", ("memory request MiB",)),
    ("pool size / max replicas", ("pool size", "max replicas")),
)


def check_plot_path(path: Path) -> str | None:
    """None when matplotlib can write ``path``, else why not: checked before a replay, not after it."""
    supported = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    suffix = path.suffix.lstrip(".").lower()
    if suffix not in supported:
        kind = f"a .{suffix} file" if suffix else "a file without a suffix"
        return f"--plot {path}: cannot draw {kind} (use one of: {', '.join(sorted(supported))})"
    return None


def write_plot(simulation: Simulation, path: Path, *, image_format: str | None = None) -> None:
    """Draw ``simulation`` into ``path``, as ``image_format`` (default: from the path's suffix)."""
    runs = simulation.runs
    first = next(iter(runs.values()))
    hours = [(t - simulation.trace.start_seconds) / 3600 for t in first.timeline.at_seconds]
    panels = 3 + len(TUNED_PANELS)
    figure, axes = plt.subplots(panels, 1, figsize=(13, 2.1 * panels), sharex=True)
    start = datetime.fromtimestamp(simulation.trace.start_seconds, tz=UTC)
    figure.suptitle(f"perfpilot simulate — scenario {simulation.scenario.name}, trace {simulation.trace.name} "
                    f"(from {start:%Y-%m-%d %H:%M} UTC), SLO p95 {simulation.slo_seconds * 1000:.0f} ms")

    axes[0].plot(hours, first.timeline.load_per_second, color="black", linewidth=0.8)
    axes[0].set_ylabel("requests/s")
    for name in RUN_NAMES:
        if name not in runs:
            continue
        timeline = runs[name].timeline
        style = {"color": COLOURS[name], "zorder": ZORDER[name], "alpha": ALPHA.get(name, 1.0), "label": name}
        axes[1].step(hours, timeline.replicas, where="post", linewidth=1, **style)
        p95 = [v if math.isfinite(v) else math.nan for v in timeline.p95_seconds]
        axes[2].plot(hours, p95, linewidth=0.8, **style)
    axes[1].set_ylabel("pods")
    axes[1].legend(loc="upper right", ncol=4, fontsize="small")
    axes[2].axhline(simulation.slo_seconds, color="red", linestyle="--", linewidth=1, label="SLO")
    axes[2].set_yscale("log")
    axes[2].set_ylabel("p95 (s)")
    axes[2].legend(loc="upper right", ncol=5, fontsize="small")

    tuned = runs["perfpilot"].timeline if "perfpilot" in runs else None
    for axis, (title, names) in zip(axes[3:], TUNED_PANELS, strict=True):
        axis.set_ylabel(title, fontsize="small")
        if tuned is None:
            continue
        for name in names:
            values = tuned.tuned.get(name, [])
            axis.step(hours[: len(values)], values, where="post", linewidth=1.2, label=name)
        axis.legend(loc="upper right", fontsize="small")
    if tuned is not None:
        for at, label in tuned.events:
            x = (at - simulation.trace.start_seconds) / 3600
            colour = "red" if label.startswith("rollback") else "tab:blue"
            for axis in axes:
                axis.axvline(x, color=colour, alpha=0.25, linewidth=0.8)
    axes[-1].set_xlabel("hours since the window's start (blue lines: perfpilot changes, red: rollbacks)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        figure.savefig(path, dpi=110, format=image_format)
    finally:
        plt.close(figure)

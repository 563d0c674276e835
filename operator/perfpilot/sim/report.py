"""The side-by-side table and the JSON document of a simulation."""

from __future__ import annotations

import math
from typing import Any

from perfpilot.sim.replay import RUN_NAMES, Simulation

ROWS = (
    ("slo_violation_minutes", "SLO violation minutes", "{:.0f}"),
    ("replica_hours", "replica-hours", "{:.1f}"),
    ("cpu_core_hours", "CPU request core-hours", "{:.1f}"),
    ("pool_connection_hours", "pool connection-hours", "{:.1f}"),
    ("scale_events", "scale events", "{:.0f}"),
    ("changes", "perfpilot changes", "{:.0f}"),
    ("rollbacks", "rollbacks", "{:.0f}"),
    ("p95_max_seconds", "worst minute p95 (s)", "{:.3f}"),
)


def describe_trace(simulation: Simulation, *, scale: float) -> dict[str, Any]:
    trace = simulation.trace
    return {
        "name": trace.name,
        "column": trace.column,
        "start_seconds": trace.start_seconds,
        "hours": round(trace.duration_seconds / 3600, 3),
        "scale": scale,
        "peak_rps": round(trace.peak_per_second, 3),
    }


def to_json(simulation: Simulation, *, scale: float) -> dict[str, Any]:
    """``{"trace": ..., "scenario": ..., "runs": {name: metrics}}``, plus the SLO it was judged against and
    perfpilot's applied changes and rollbacks with their reasons (``perfpilot_decisions``: the minute of the
    window each came at, and the decision), so what the plot shows can be checked against what was decided."""
    document: dict[str, Any] = {
        "trace": describe_trace(simulation, scale=scale),
        "scenario": simulation.scenario.name,
        "slo_p95_seconds": simulation.slo_seconds,
        "runs": {name: run.metrics.as_dict() for name, run in simulation.runs.items()},
    }
    perfpilot = simulation.runs.get("perfpilot")
    if perfpilot is not None:
        start = simulation.trace.start_seconds
        document["perfpilot_decisions"] = [{"minute": round((at - start) / 60), "decision": why}
                                           for at, why in perfpilot.decisions]
    return document


def format_table(simulation: Simulation) -> str:
    names = [name for name in RUN_NAMES if name in simulation.runs]
    label_width = max(len(label) for _, label, _ in ROWS)
    width = max(12, *(len(n) for n in names))
    lines = [" " * label_width + "  " + "  ".join(name.rjust(width) for name in names)]
    for key, label, fmt in ROWS:
        cells = []
        for name in names:
            value = getattr(simulation.runs[name].metrics, key)
            cells.append(("-" if isinstance(value, float) and not math.isfinite(value) else fmt.format(value))
                         .rjust(width))
        lines.append(label.ljust(label_width) + "  " + "  ".join(cells))
    return "\n".join(lines)

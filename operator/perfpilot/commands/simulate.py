"""`perfpilot simulate` — replay a request-rate trace through the model cluster with perfpilot in the loop.

Runs perfpilot, the guide's static configuration, Kubernetes' defaults and the oracle lower bound on the
same trace and scenario, prints them side by side, and optionally writes JSON and a PNG plot. With no
arguments it replays the bundled 2-day WorldCup98 slice on the ``right-sized`` scenario.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from perfpilot.api.quantities import Duration
from perfpilot.api.spec import Mode, PerformanceProfileSpec
from perfpilot.api.validate import field_path, show_value
from perfpilot.sim.replay import simulate
from perfpilot.sim.report import format_table, to_json
from perfpilot.sim.scenarios import SCENARIOS, STATIC_SETTINGS, default_profile
from perfpilot.sim.trace import (
    Trace,
    bundled_history_path,
    bundled_trace_path,
    history_before,
    join_traces,
    load_trace,
    scale_for_peak,
)

DEFAULT_HOURS = 48.0


def _finite(raw: str) -> float:
    try:
        return float(raw) if math.isfinite(float(raw)) else math.nan
    except ValueError:
        return math.nan


def positive_number(raw: str) -> float:
    """argparse ``type=``: a finite number > 0 (argparse names the flag; the message names the value)."""
    value = _finite(raw)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number (got {raw!r})")
    return value


def non_negative_number(raw: str) -> float:
    """argparse ``type=``: a finite number >= 0."""
    value = _finite(raw)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0 (got {raw!r})")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="replay a trace through a model cluster: perfpilot vs static vs k8s defaults vs oracle",
        description="Replay a request-rate trace (CSV with timestamp_seconds and a rate column) through a model "
        "cluster — Kubernetes' HPA controller, pods with start-up delay and rollouts, a queueing model of "
        "latency and the pgBouncer pool — with perfpilot's own decide() in the loop, next to the guide's "
        "static configuration, Kubernetes' defaults and the oracle lower bound. By default the trace is "
        "scaled so that its peak needs 8 of the static configuration's 10 replicas at 70% CPU. With no "
        "--trace it replays the bundled 2-day WorldCup98 slice.",
    )
    parser.add_argument("--trace", type=Path, help="trace CSV (default: the bundled WorldCup98 slice)")
    parser.add_argument("--column", help="rate column to replay (default: requests_per_second, else the first)")
    parser.add_argument("--start", type=non_negative_number,
                        help="window start: Unix seconds, or seconds from the trace start")
    parser.add_argument("--hours", type=positive_number, default=DEFAULT_HOURS, help="window length (default 48)")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="right-sized",
                        help="starting configuration (default right-sized)")
    parser.add_argument("--profile", type=Path, help="PerformanceProfile YAML whose spec perfpilot runs with")
    parser.add_argument("--slo-p95-ms", type=positive_number,
                        help="p95 latency objective in ms (default: the profile's)")
    scaling = parser.add_mutually_exclusive_group()
    scaling.add_argument("--peak-rps", type=positive_number,
                         help="scale the window so that its peak is this many req/s")
    scaling.add_argument("--scale", type=positive_number, help="multiply the trace's rate by this factor")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    parser.add_argument("--plot", type=Path, metavar="OUT.png", help="draw load, replicas, p95 and tuned values")
    parser.set_defaults(func=run)


def _profile(path: Path | None, slo_p95_ms: float | None) -> PerformanceProfileSpec:
    if path is None:
        return default_profile(slo_p95_ms=slo_p95_ms)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"--profile {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ValueError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', None) or error}") from None
    raw = document.get("spec", document) if isinstance(document, dict) else document
    try:
        spec = PerformanceProfileSpec.model_validate(raw)
    except ValidationError as error:
        raise ValueError("\n".join(
            f"{path}: spec.{field_path(detail['loc'])}: {detail['msg']} (got {show_value(detail.get('input'))})"
            for detail in error.errors(include_url=False)
        )) from None
    if spec.mode is not Mode.AUTO:
        # The simulator exists to show what perfpilot would do; Off/Recommend would only copy "static".
        print(f"perfpilot simulate: note: {path} has mode {spec.mode.value}; simulated as Auto", file=sys.stderr)
        spec = spec.model_copy(update={"mode": Mode.AUTO})
    if slo_p95_ms is not None:
        slo = spec.slo.model_copy(update={"latency_p95": Duration(slo_p95_ms / 1000)})
        spec = spec.model_copy(update={"slo": slo})
    return spec


def scale_factor(trace: Trace, *, peak_rps: float | None, scale: float | None, cpu_demand_seconds: float) -> float:
    if scale is not None:
        return scale
    if peak_rps is not None:
        if trace.peak_per_second <= 0:
            raise ValueError("--peak-rps: the trace window has no traffic to scale (its peak is 0)")
        return peak_rps / trace.peak_per_second
    return scale_for_peak(trace, cpu_demand_seconds=cpu_demand_seconds,
                          cpu_request_millicores=STATIC_SETTINGS.resources.cpu_request_millicores or 1000)


def check_writable(flag: str, path: Path) -> str | None:
    """None when ``path`` could be written (its folder created as needed), else why not; creates nothing."""
    if path.is_dir():
        return f"{flag} {path}: is a directory"
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return f"{flag} {path}: {folder} is not a directory"
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"{flag} {path}: not writable"
    return None


def check_outputs(args: argparse.Namespace) -> str | None:
    """None when the JSON and plot files can be written, else why not: a replay takes seconds, so a path
    it cannot write fails before it, not after."""
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        problem = check_writable(flag, path) if path is not None else None
        if problem is not None:
            return problem
    if args.plot is None:
        return None
    try:
        # matplotlib (the optional "sim" extra) is loaded only when a plot is asked for.
        from perfpilot.sim.plot import check_plot_path  # noqa: PLC0415
    except ImportError as error:
        return f"--plot needs matplotlib ({error}): pip install 'perfpilot[sim]'"
    return check_plot_path(args.plot)


def _load(flag: str, path: Path, *, column: str | None) -> Trace:
    try:
        return load_trace(path, column=column)
    except OSError as error:
        raise ValueError(f"{flag} {path}: {error.strerror or error}") from None


def run(args: argparse.Namespace) -> int:
    scenario = SCENARIOS[args.scenario]
    problem = check_outputs(args)
    if problem is not None:
        print(f"perfpilot simulate: {problem}", file=sys.stderr)
        return 2
    try:
        profile = _profile(args.profile, args.slo_p95_ms)
        trace = _load("--trace", args.trace or bundled_trace_path(), column=args.column)
        window = trace.window(start_seconds=args.start, hours=args.hours)
        if window.duration_seconds < args.hours * 3600 - window.step_seconds:  # not just a part of a step
            print(f"perfpilot simulate: note: the trace ends {window.duration_seconds / 3600:.1f} h after the "
                  f"window's start; --hours {args.hours:g} replays those {window.duration_seconds / 3600:.1f} h",
                  file=sys.stderr)
        # perfpilot is installed on a running service whose Prometheus already holds history: the peak
        # window before the replayed one warms it up (the bundled slice ships with its day before).
        history = trace if args.trace is not None else join_traces(
            load_trace(bundled_history_path(), column=window.column), trace)
        before = history_before(history, window, seconds=profile.guardrails.peak_window.seconds)
        factor = scale_factor(window, peak_rps=args.peak_rps, scale=args.scale,
                              cpu_demand_seconds=scenario.params.cpu_demand_seconds)
    except (OSError, ValueError) as error:
        print(f"perfpilot simulate: {error}", file=sys.stderr)
        return 2
    scaled = window.scaled(factor)
    started = time.perf_counter()
    simulation = simulate(trace=scaled, scenario=scenario, profile=profile,
                          before=before.scaled(factor) if before is not None else None)
    elapsed = time.perf_counter() - started
    print(f"trace {scaled.name} ({scaled.column} x {factor:.4g}, peak {scaled.peak_per_second:.1f} req/s), "
          f"{scaled.duration_seconds / 3600:.1f} h; scenario {scenario.name}: {scenario.description}; "
          f"SLO p95 {simulation.slo_seconds * 1000:.0f} ms")
    print(f"perfpilot's Prometheus history before the window: {before.duration_seconds / 3600:.1f} h"
          if before is not None else "perfpilot's Prometheus history before the window: none (the trace starts here)")
    print(format_table(simulation))
    print(f"replayed in {elapsed:.1f} s")
    try:
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(to_json(simulation, scale=factor), indent=2) + "\n")
        if args.plot is not None:
            # matplotlib (the optional "sim" extra) is loaded only when a plot is asked for.
            from perfpilot.sim.plot import write_plot  # noqa: PLC0415

            write_plot(simulation, args.plot)
    except OSError as error:  # checked before the replay; the disk can still fill or change under it
        print(f"perfpilot simulate: cannot write {error.filename}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0

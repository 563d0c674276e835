"""`perfpilot simulate` — replay a request-rate trace through the model cluster with perfpilot in the loop.

Runs perfpilot, the guide's static configuration, Kubernetes' defaults and the oracle lower bound on the
same trace and scenario, prints them side by side, and optionally writes JSON and a PNG plot. With no
arguments it replays the bundled 2-day WorldCup98 slice on the ``right-sized`` scenario.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.sim.replay import simulate
from perfpilot.sim.report import format_table, to_json
from perfpilot.sim.scenarios import SCENARIOS, STATIC_SETTINGS, default_profile
from perfpilot.sim.trace import Trace, bundled_trace_path, load_trace, scale_for_peak

DEFAULT_HOURS = 48.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="replay a trace through a model cluster: perfpilot vs static vs k8s defaults vs oracle",
        description="Replay a request-rate trace (CSV with timestamp_seconds and a rate column) through a model "
        "cluster — Kubernetes' HPA controller, pods with start-up delay and rollouts, a queueing model of "
        "latency and the pgBouncer pool — with perfpilot's own decide() in the loop, next to the guide's "
        "static configuration, Kubernetes' defaults and the oracle lower bound. By default the trace is "
        "scaled so that its peak needs 8 of the static configuration's 10 replicas at 70%% CPU. With no "
        "--trace it replays the bundled 2-day WorldCup98 slice.",
    )
    parser.add_argument("--trace", type=Path, help="trace CSV (default: the bundled WorldCup98 slice)")
    parser.add_argument("--column", help="rate column to replay (default: requests_per_second, else the first)")
    parser.add_argument("--start", type=float, help="window start: Unix seconds, or seconds from the trace start")
    parser.add_argument("--hours", type=float, default=DEFAULT_HOURS, help="window length (default 48)")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="right-sized",
                        help="starting configuration (default right-sized)")
    parser.add_argument("--profile", type=Path, help="PerformanceProfile YAML whose spec perfpilot runs with")
    parser.add_argument("--slo-p95-ms", type=float, help="p95 latency objective in ms (default: the profile's)")
    scaling = parser.add_mutually_exclusive_group()
    scaling.add_argument("--peak-rps", type=float, help="scale the window so that its peak is this many req/s")
    scaling.add_argument("--scale", type=float, help="multiply the trace's rate by this factor")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    parser.add_argument("--plot", type=Path, metavar="OUT.png", help="draw load, replicas, p95 and tuned values")
    parser.set_defaults(func=run)


def _profile(path: Path | None, slo_p95_ms: float | None) -> PerformanceProfileSpec:
    if path is None:
        return default_profile(slo_p95_ms=slo_p95_ms)
    document = yaml.safe_load(path.read_text())
    raw = document.get("spec", document) if isinstance(document, dict) else document
    spec = PerformanceProfileSpec.model_validate(raw)
    if slo_p95_ms is not None:
        spec = spec.model_copy(update={"slo": spec.slo.model_copy(update={"latency_p95": slo_p95_ms / 1000})})
        spec = PerformanceProfileSpec.model_validate(spec.model_dump(by_alias=True))
    return spec


def scale_factor(trace: Trace, *, peak_rps: float | None, scale: float | None, cpu_demand_seconds: float) -> float:
    if scale is not None:
        return scale
    if peak_rps is not None:
        return peak_rps / trace.peak_per_second
    return scale_for_peak(trace, cpu_demand_seconds=cpu_demand_seconds,
                          cpu_request_millicores=STATIC_SETTINGS.resources.cpu_request_millicores or 1000)


def run(args: argparse.Namespace) -> int:
    scenario = SCENARIOS[args.scenario]
    try:
        profile = _profile(args.profile, args.slo_p95_ms)
        trace = load_trace(args.trace or bundled_trace_path(), column=args.column)
        window = trace.window(start_seconds=args.start, hours=args.hours)
        factor = scale_factor(window, peak_rps=args.peak_rps, scale=args.scale,
                              cpu_demand_seconds=scenario.params.cpu_demand_seconds)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        print(f"perfpilot simulate: invalid profile: {problems}", file=sys.stderr)
        return 2
    except (OSError, ValueError, yaml.YAMLError) as error:
        print(f"perfpilot simulate: {error}", file=sys.stderr)
        return 2
    scaled = window.scaled(factor)
    started = time.perf_counter()
    simulation = simulate(trace=scaled, scenario=scenario, profile=profile)
    elapsed = time.perf_counter() - started
    print(f"trace {scaled.name} ({scaled.column} x {factor:.4g}, peak {scaled.peak_per_second:.1f} req/s), "
          f"{scaled.duration_seconds / 3600:.1f} h; scenario {scenario.name}: {scenario.description}; "
          f"SLO p95 {simulation.slo_seconds * 1000:.0f} ms")
    print(format_table(simulation))
    print(f"replayed in {elapsed:.1f} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(simulation, scale=factor), indent=2) + "\n")
    if args.plot is not None:
        # matplotlib (the optional "sim" extra) is loaded only when a plot is asked for.
        from perfpilot.sim.plot import write_plot  # noqa: PLC0415

        write_plot(simulation, args.plot)
    return 0

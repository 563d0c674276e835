"""`perfpilot simulate` — replay a request-rate trace through the model cluster with perfpilot in the loop.

Runs perfpilot, the guide's static configuration, Kubernetes' defaults and the oracle lower bound on the
same trace and scenario, prints them side by side, and optionally writes JSON and a PNG plot. With no
arguments it replays the bundled 2-day WorldCup98 slice on the ``right-sized`` scenario.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from perfpilot.api.quantities import Duration
from perfpilot.api.spec import API_VERSION, KIND, Mode, PerformanceProfile, PerformanceProfileSpec
from perfpilot.api.validate import prune_null_fields, validate_profile
from perfpilot.commands.inputs import load_yaml_documents
from perfpilot.observe.workload import flatten
from perfpilot.sim.baselines import compute_no_load_p95_seconds
from perfpilot.sim.cluster import CONTAINER
from perfpilot.sim.replay import Simulation, simulate
from perfpilot.sim.report import format_table, to_json
from perfpilot.sim.scenarios import (
    SCENARIOS,
    STATIC_SETTINGS,
    Scenario,
    default_profile,
)
from perfpilot.sim.trace import (
    PLAIN_NUMBER,
    PREFERRED_COLUMNS,
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
    """The finite number ``raw`` writes in plain ASCII decimals (NaN for anything else: 1_0, inf, 1e400, 48h)."""
    text = raw.strip()
    value = float(text) if PLAIN_NUMBER.fullmatch(text) else math.nan
    return value if math.isfinite(value) else math.nan


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


MAX_HOURS = 24.0 * 366  # a year: the replay keeps every minute in memory
MIN_SLO_P95_MS = 1.0  # far below the model's p95 with no queue (285 ms): anything less is a typing slip
MAX_SLO_P95_MS = 600_000.0  # ten minutes: beyond any request timeout the model has
MAX_SCALED_PEAK_PER_SECOND = 100_000.0  # beyond any one Deployment's peak (thousands of the guide's pods)
MIN_SCALED_PEAK_PER_SECOND = 1 / 60  # a request a minute: below it a minute-by-minute replay measures nothing


def bounded_number(*, upper: float, unit: str, lower: float = 0.0) -> Callable[[str], float]:
    """argparse ``type=``: a finite number > 0, >= ``lower`` and <= ``upper``."""

    def parse(raw: str) -> float:
        value = positive_number(raw)
        if not lower <= value <= upper:
            low = f"at least {lower:g} and " if lower > 0 else ""
            raise argparse.ArgumentTypeError(f"must be {low}at most {upper:g} {unit} (got {raw!r})")
        return value

    return parse


def output_path(raw: str) -> Path:
    """argparse ``type=`` for --json/--plot: ``-`` is standard output (as ``validate -`` reads standard input);
    an empty value names no file (``Path("")`` would be the current folder)."""
    if raw == "-":
        return Path("/dev/stdout")
    if not raw.strip():
        raise argparse.ArgumentTypeError(f"must name a file, or - for standard output (got {raw!r})")
    if os.path.basename(raw) in ("", ".", ".."):  # Path() drops them: "out/" and "out/." would be a file named out
        raise argparse.ArgumentTypeError(f"names a folder, not a file (got {raw!r})")
    return Path(raw)


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
    parser.add_argument("--column", help=f"rate column to replay (default: the first of "
                                         f"{', '.join(PREFERRED_COLUMNS)} in the header, else its first rate column)")
    parser.add_argument("--start", type=non_negative_number,
                        help="window start: Unix seconds, or seconds from the trace start")
    parser.add_argument("--hours", type=bounded_number(upper=MAX_HOURS, unit="hours"), default=DEFAULT_HOURS,
                        help=f"window length (default 48, at most {MAX_HOURS:g})")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="right-sized",
                        help="starting configuration (default right-sized)")
    parser.add_argument("--profile", type=Path,
                        help="the file's one PerformanceProfile (among other objects, in a List, or a bare spec) "
                             "whose spec perfpilot runs with, in Auto mode whatever its mode")
    parser.add_argument("--slo-p95-ms", type=bounded_number(lower=MIN_SLO_P95_MS, upper=MAX_SLO_P95_MS, unit="ms"),
                        help=f"p95 latency objective in ms, {MIN_SLO_P95_MS:g} to {MAX_SLO_P95_MS:g} (default: the "
                             f"profile's)")
    scaling = parser.add_mutually_exclusive_group()
    scaling.add_argument("--peak-rps", type=positive_number,
                         help="scale the window so that its peak is this many req/s")
    scaling.add_argument("--scale", type=positive_number, help="multiply the trace's rate by this factor")
    parser.add_argument("--json", type=output_path, metavar="OUT",
                        help="write the results as JSON (missing folders are created; - for standard output)")
    parser.add_argument("--plot", type=output_path, metavar="OUT.png",
                        help="draw load, replicas, p95 and tuned values (missing folders are created)")
    parser.set_defaults(func=run)


def _profile_document(path: Path) -> dict[str, Any]:
    """The file's one PerformanceProfile (``kind: List`` expanded, other objects ignored, as ``plan`` reads
    it), or a bare spec (a single mapping with no ``kind``, or only a ``spec:``), wrapped so it is checked
    like a profile."""
    documents = [document for document in load_yaml_documents(path, flag="--profile") if document is not None]
    objects = flatten(documents)
    profiles = [document for document in objects if document.get("kind") == KIND]
    if len(profiles) == 1:
        return profiles[0]
    if not profiles and len(documents) == 1 and isinstance(documents[0], dict) and "kind" not in documents[0]:
        bare = documents[0]
        if {"apiVersion", "metadata"} & set(bare):
            raise ValueError(f"--profile {path}: kind is required (kind: {KIND})")
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "simulated"},
                "spec": bare["spec"] if set(bare) == {"spec"} else bare}
    kinds = ", ".join(sorted({str(document.get("kind")) for document in objects})) or "none"
    raise ValueError(f"--profile {path}: expected one {KIND} (or a bare spec), found {len(profiles)} "
                     f"(kinds in the file: {kinds})")


def read_profile(path: Path | None, slo_p95_ms: float | None, *, notes: list[str] | None = None
                 ) -> PerformanceProfileSpec:
    """The spec perfpilot runs with: the file's profile (checked as `validate` checks it, made Auto, its containers
    mapped onto the model's one), or the default profile; ``slo_p95_ms`` overrides its SLO. What was made of
    the file is appended to ``notes``, for the caller to print once every input is known good."""
    notes = notes if notes is not None else []
    if path is None:
        return default_profile(slo_p95_ms=slo_p95_ms)
    document = _profile_document(path)
    problems = validate_profile(document)
    if problems:
        raise ValueError("\n".join(f"--profile {path}: {problem}" for problem in problems))
    spec = PerformanceProfile.model_validate(prune_null_fields(document)).spec
    if slo_p95_ms is None and not MIN_SLO_P95_MS <= spec.slo.latency_p95.seconds * 1000 <= MAX_SLO_P95_MS:
        raise ValueError(f"--profile {path}: spec.slo.latencyP95: the simulator needs {MIN_SLO_P95_MS:g} to "
                         f"{MAX_SLO_P95_MS:g} ms, as --slo-p95-ms does (got {spec.slo.latency_p95})")
    if spec.mode is not Mode.AUTO:
        # The simulator exists to show what perfpilot would do; Off/Recommend would only copy "static".
        notes.append(f"{path} has mode {spec.mode.value}; simulated as Auto")
        spec = spec.model_copy(update={"mode": Mode.AUTO})
    if spec.resources.enabled and spec.resources.containers and CONTAINER not in spec.resources.containers:
        # Left as it is, the profile would select no container of the model: its resources never tuned, silently.
        notes.append(f"{path} sizes containers {', '.join(spec.resources.containers)}; the model's pods have one "
                     f"container, {CONTAINER}, which is simulated as the one sized")
        resources = spec.resources.model_copy(update={"containers": [CONTAINER]})
        spec = spec.model_copy(update={"resources": resources})
    if spec.target_ref.kind != "Deployment":
        notes.append(f"{path} targets a {spec.target_ref.kind}; the model cluster rolls pods out as a Deployment "
                     f"does (maxSurge 25%, maxUnavailable 25%)")
    if slo_p95_ms is not None:
        raw = spec.model_dump(by_alias=True, mode="json")
        raw["slo"] = {**raw.get("slo", {}), "latencyP95": str(Duration(slo_p95_ms / 1000))}
        try:
            spec = PerformanceProfileSpec.model_validate(raw)
        except ValidationError as error:
            raise ValueError(f"--slo-p95-ms {slo_p95_ms:g}: not a usable latency objective: "
                             f"{error.errors(include_url=False)[0]['msg']}") from None
    return spec


# A column's unit from its name, as the traces in shared/traces name them: a request count per minute or hour
# is turned into requests per second (it matters only with --scale); a column named for a resource measures no
# request at all. Any other name (rps, qps, mcr_value) is taken as requests per second.
_PER_UNIT_SECONDS = (("_per_minute", 60.0), ("_per_hour", 3600.0))
_NOT_REQUESTS = re.compile(r"cpu|mem|util|percent|bytes|disk|net_|cycles", re.IGNORECASE)


def read_column_unit(column: str) -> tuple[float, str]:
    """What one unit of ``column`` is in requests per second, and a note when it is not one: a count per
    minute or hour is converted; a resource column (CPU %, memory, bytes) is replayed as the shape of the
    load, its scale set by the default peak or --peak-rps (--scale reads it as requests per second)."""
    if _NOT_REQUESTS.search(column):
        return 1.0, (f"column {column} is not a request rate: it is replayed as the shape of the load, in "
                     f"proportion to its values (--scale takes them as requests per second)")
    for suffix, seconds in _PER_UNIT_SECONDS:
        if column.endswith(suffix):
            return 1.0 / seconds, (f"column {column} counts per {suffix.removeprefix('_per_')}: read as "
                                   f"{column} / {seconds:g} requests per second")
    return 1.0, ""


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
    """None when ``path`` could be written (its folder created as needed), else why not; leaves nothing
    behind. Checked where ``write_outputs`` will write: beside the file a symlink points to."""
    try:
        return _check_writable(flag, path)
    except (OSError, RuntimeError) as error:  # a name too long, a symlink loop (RuntimeError from resolve())
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        return f"{flag} {path}: {reason}"


def _check_writable(flag: str, path: Path) -> str | None:
    if path.is_dir():
        return f"{flag} {path}: is a directory"
    if path.exists() and not path.is_file():
        # A device or pipe (/dev/null, /dev/stdout) is written as it is: opening it is the only test.
        return None if os.access(path, os.W_OK) else f"{flag} {path}: not writable"
    final = path.resolve() if path.is_symlink() else path.absolute()
    folder = final.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return f"{flag} {path}: {folder} is not a directory"
    if not os.access(folder, os.W_OK | os.X_OK) or (final.exists() and not os.access(final, os.W_OK)):
        return f"{flag} {path}: not writable"
    # os.access says yes to root everywhere, /sys and /proc included: a file made and removed at once where
    # the output is staged (or its missing folders would begin) asks the file system itself.
    try:
        descriptor, probe = tempfile.mkstemp(prefix=".perfpilot-probe-", dir=folder)
    except OSError as error:
        return f"{flag} {path}: not writable ({error.strerror or error})"
    os.close(descriptor)
    os.unlink(probe)
    return None


def check_outputs(args: argparse.Namespace) -> str | None:
    """None when the JSON and plot files can be written, else why not: a replay takes seconds, so a path
    it cannot write fails before it, not after."""
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        problem = check_writable(flag, path) if path is not None else None
        if problem is not None:
            return problem
    if args.json is not None and args.plot is not None and args.json.resolve() == args.plot.resolve():
        return f"--json and --plot name the same file ({args.json}): the plot would overwrite the JSON"
    for out_flag, output in (("--json", args.json), ("--plot", args.plot)):
        for in_flag, given in (("--trace", args.trace), ("--profile", args.profile)):
            if output is not None and given is not None and _same_file(output, given):
                return f"{out_flag} {output} is the {in_flag} file: writing it would destroy the input"
    if args.plot is None:
        return None
    if _standard_stream(args.plot) is not None:
        return f"--plot {args.plot}: is the table's standard output or error; an image between its lines is no image"
    try:
        # matplotlib (the optional "sim" extra) is loaded only when a plot is asked for.
        from perfpilot.sim.plot import check_plot_path  # noqa: PLC0415
    except ImportError as error:
        return f"--plot needs matplotlib ({error}): pip install 'perfpilot[sim]'"
    return check_plot_path(args.plot)


def _same_file(first: Path, second: Path) -> bool:
    try:
        return first.resolve() == second.resolve() or (first.exists() and second.exists()
                                                       and os.path.samefile(first, second))
    except (OSError, RuntimeError):
        return False


class OutputError(Exception):
    """A result file could not be written; the message names it."""


def _staging_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed over: beside it, so the rename is atomic. A device or
    pipe (``/dev/null``, ``/dev/stderr``) is written as it is: renaming over it would replace it."""
    if path.exists() and not path.is_file():
        return path
    # Not named after the file: a name near the file system's 255-byte limit would leave no room for more.
    return path.with_name(f".perfpilot-{os.getpid()}-{abs(hash(path.name)) % 10**8}.tmp")


def _standard_stream(path: Path) -> TextIO | None:
    """This process's standard output or error when ``path`` is it (``/dev/stdout``, or the pipe or file it
    goes to), else None."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if os.path.samestat(path.stat(), os.fstat(stream.fileno())):
                return stream
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):  # no such path; no fd behind
            continue
    return None


def write_outputs(simulation: Simulation, *, scale: float, json_path: Path | None, plot_path: Path | None) -> None:
    """Write the JSON and the plot asked for. Each goes to a file beside its final path (the file a symlink
    points to) and is renamed over it once both are complete: a full disk or a failing plot leaves no
    truncated file and no lone new JSON behind (only a failing second rename, rarer, could). Missing folders
    on the way are created. Standard output or error (``--json /dev/stdout``) gets its file after the table,
    through the stream: opening it anew would truncate a file it is redirected to, renaming over it replace
    it."""
    writers: list[tuple[Path, Callable[[Path], object]]] = []
    if json_path is not None:
        document = json.dumps(to_json(simulation, scale=scale), indent=2) + "\n"
        writers.append((json_path, lambda staging: staging.write_text(document)))
    if plot_path is not None:
        # matplotlib (the optional "sim" extra) is loaded only when a plot is asked for.
        from perfpilot.sim.plot import write_plot  # noqa: PLC0415

        image_format = plot_path.suffix.lstrip(".").lower()
        writers.append((plot_path, lambda staging: write_plot(simulation, staging, image_format=image_format)))
    staged: list[tuple[Path, Path]] = []
    to_streams: list[tuple[TextIO, Path]] = []
    created: list[Path] = []  # folders made on the way, removed again if the files cannot be written
    written = False
    try:
        for asked, write in writers:
            stream = _standard_stream(asked)
            if stream is not None:
                descriptor, name = tempfile.mkstemp(prefix="perfpilot-", suffix=asked.suffix)
                os.close(descriptor)
                to_streams.append((stream, Path(name)))
                try:
                    write(to_streams[-1][1])
                except OSError as error:
                    raise OutputError(f"cannot write {asked}: {error.strerror or error}") from None
                continue
            # The link stays a link; a device or pipe (/dev/stderr) is written as it is: its link may name a
            # "pipe:[...]" that no path reaches.
            device = asked.exists() and not asked.is_file()
            final = asked.resolve() if asked.is_symlink() and not device else asked
            staging = _staging_path(final)
            staged.append((staging, final))
            try:
                missing = [folder for folder in final.parent.absolute().parents if not folder.exists()]
                if not final.parent.exists():
                    missing.insert(0, final.parent.absolute())
                created += missing
                final.parent.mkdir(parents=True, exist_ok=True)
                write(staging)
            except OSError as error:
                raise OutputError(f"cannot write {asked}: {error.strerror or error}") from None
        for staging, final in staged:
            try:
                if staging != final:
                    if final.exists():  # the file replaced keeps its permissions (a 0600 JSON stays private)
                        os.chmod(staging, stat.S_IMODE(final.stat().st_mode))
                    staging.replace(final)
            except OSError as error:
                raise OutputError(f"cannot write {final}: {error.strerror or error}") from None
        for stream, copy in to_streams:
            try:
                stream.flush()
                stream.buffer.write(copy.read_bytes())
                stream.flush()
            except OSError as error:  # a reader of the pipe gone (EPIPE), a full disk under the redirect
                raise OutputError(f"cannot write {stream.name}: {error.strerror or error}") from None
        written = True
    finally:
        leftovers = [staging for staging, final in staged if staging != final] + [name for _, name in to_streams]
        for leftover in leftovers:
            with contextlib.suppress(OSError):  # the error being reported matters more than a leftover
                leftover.unlink(missing_ok=True)
        if not written:
            for folder in sorted(set(created), key=lambda path: len(path.parts), reverse=True):  # deepest first
                with contextlib.suppress(OSError):  # not empty (a file of someone else's): kept
                    folder.rmdir()


def _load(flag: str, path: Path, *, column: str | None) -> Trace:
    try:
        return load_trace(path, column=column)
    except OSError as error:
        raise ValueError(f"{flag} {path}: {error.strerror or error}") from None


def _span(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def check_window(trace: Trace, *, start: float | None, hours: float) -> None:
    """Raise ValueError naming the flag when the window asked for cannot be cut from ``trace``."""
    if hours * 3600 < trace.step_seconds:
        raise ValueError(f"--hours {hours:g}: shorter than one step of the trace ({trace.step_seconds:g} s)")
    if start is not None and trace.duration_seconds <= start < trace.start_seconds:
        raise ValueError(f"--start {start:.10g}: before the trace's first timestamp {trace.start_seconds:.0f} as a "
                         f"Unix time, and past its end ({_span(trace.duration_seconds)}) as seconds from its start")
    end = trace.start_seconds + trace.duration_seconds
    if start is not None and start >= end:
        raise ValueError(f"--start {start:.10g}: at or after the trace's end {end:.0f}")


def check_load(window: Trace, *, factor: float) -> None:
    """Raise ValueError naming the flags when the scaled load is beyond what the model cluster can serve."""
    peak = window.peak_per_second * factor
    if not peak <= MAX_SCALED_PEAK_PER_SECOND:
        raise ValueError(f"--scale/--peak-rps: the scaled peak {peak:.3g} req/s is beyond what the model cluster "
                         f"can serve (at most {MAX_SCALED_PEAK_PER_SECOND:g} req/s)")
    if not peak >= MIN_SCALED_PEAK_PER_SECOND:
        raise ValueError(f"--scale/--peak-rps: the scaled peak {peak:.3g} req/s is under one request a minute "
                         f"({MIN_SCALED_PEAK_PER_SECOND:.3g} req/s), too little for a minute-by-minute replay to "
                         f"measure")


def describe_unmeetable_slo(
    window: Trace, *, factor: float, scenario: Scenario, profile: PerformanceProfileSpec
) -> list[str]:
    """Why runs cannot meet the SLO, as notes (every minute there a violation): an SLO below the fastest
    request, or a peak the scenario's pods cannot carry, nor the most perfpilot may give them."""
    notes = []
    params = scenario.params
    slo_seconds = profile.slo.latency_p95.seconds
    resources = scenario.settings.resources
    fastest_seconds = compute_no_load_p95_seconds(params, cpu_millicores=params.effective_cpu_millicores(resources))
    if slo_seconds < fastest_seconds:
        notes.append(f"the SLO p95 {slo_seconds * 1000:g} ms is below the model's p95 with no queue at all "
                     f"({fastest_seconds * 1000:.0f} ms on the scenario's pods): every run violates it every minute, "
                     f"and the oracle is the fewest pods that keep up")
    peak_cores = window.peak_per_second * factor * params.cpu_demand_seconds
    static_cores = scenario.settings.hpa.max_replicas * params.effective_cpu_millicores(resources) / 1000.0
    if peak_cores <= static_cores:
        return notes
    # What perfpilot could reach: maxReplicas up to maxReplicasCeiling, requests up to resources.cpu.max.
    most_pods = max(scenario.settings.hpa.max_replicas, profile.hpa.max_replicas_ceiling if profile.hpa.enabled else 0)
    largest = resources.model_copy(update={
        "cpu_request_millicores": profile.resources.cpu.max.millicores, "cpu_limit_millicores": None,
    }) if profile.resources.enabled else resources
    pod_millicores = max(params.effective_cpu_millicores(largest), params.effective_cpu_millicores(resources))
    tuned_cores = most_pods * pod_millicores / 1000.0
    who = ("no run can meet the SLO there, perfpilot's bounds included" if peak_cores > tuned_cores
           else "static and k8s-default cannot meet the SLO there; perfpilot only by raising maxReplicas (up to "
                "maxReplicasCeiling) or the pods' CPU")
    notes.append(f"the peak {window.peak_per_second * factor:.0f} req/s needs {peak_cores:.1f} CPU cores, more than "
                 f"the scenario's {scenario.settings.hpa.max_replicas} pods get ({static_cores:.1f}): {who}")
    return notes


def describe_unshown_scenario(simulation: Simulation) -> str | None:
    """A note when the replayed load never showed the scenario's problem: static met the SLO all window in a
    scenario whose starting configuration breaches it wherever the problem shows, so the table says nothing
    about how perfpilot fixes it."""
    static = simulation.runs.get("static")
    scenario = simulation.scenario
    if not scenario.static_breaches_when_shown or static is None or static.metrics.slo_violation_minutes > 0:
        return None
    return (f"static met the SLO all window: this load never showed what the {scenario.name} scenario sets up "
            f"({scenario.description}); replay a load that does with --trace")


def run(args: argparse.Namespace) -> int:
    scenario = SCENARIOS[args.scenario]
    problem = check_outputs(args)
    if problem is not None:
        print(f"perfpilot simulate: {problem}", file=sys.stderr)
        return 2
    notes: list[str] = []
    try:
        profile = read_profile(args.profile, args.slo_p95_ms, notes=notes)
        trace = _load("--trace", args.trace or bundled_trace_path(), column=args.column)
        check_window(trace, start=args.start, hours=args.hours)
        window = trace.window(start_seconds=args.start, hours=args.hours)
        notes += [f"the trace has no sample from {gap_start:.0f} to {gap_end:.0f} ({_span(gap_end - gap_start)}); "
                  f"the window replays a straight line across it"  # made up: a result there says nothing
                  for gap_start, gap_end in window.gaps]
        if window.duration_seconds < args.hours * 3600 - window.step_seconds:  # not just a part of a step
            notes.append(f"the trace ends {_span(window.duration_seconds)} after the window's start; --hours "
                         f"{args.hours:g} replays those {_span(window.duration_seconds)}")
        per_second, column_note = read_column_unit(window.column)
        if column_note:
            notes.append(column_note)
        # perfpilot is installed on a running service whose Prometheus already holds history: the peak
        # window before the replayed one warms it up (the bundled slice ships with the week before it).
        history = trace if args.trace is not None else join_traces(
            load_trace(bundled_history_path(), column=window.column), trace)
        before = history_before(history, window, seconds=profile.guardrails.peak_window.seconds)
        factor = scale_factor(window, peak_rps=args.peak_rps, scale=None if args.scale is None else
                              args.scale * per_second, cpu_demand_seconds=scenario.params.cpu_demand_seconds)
        check_load(window, factor=factor)
    except (OSError, ValueError) as error:
        for line in str(error).splitlines():  # a profile with several problems: one prefixed line each
            print(f"perfpilot simulate: {line}", file=sys.stderr)
        return 2
    # Notes only once the input is known good: a refusal is not preceded by remarks on what it refused.
    for note in notes + describe_unmeetable_slo(window, factor=factor, scenario=scenario, profile=profile):
        print(f"perfpilot simulate: note: {note}", file=sys.stderr)
    scaled = window.scaled(factor)
    started = time.perf_counter()
    simulation = simulate(trace=scaled, scenario=scenario, profile=profile,
                          before=before.scaled(factor) if before is not None else None)
    elapsed = time.perf_counter() - started
    # JSON asked on standard output (--json -) is all of it, for a pipe into jq: the table goes to stderr.
    table = sys.stderr if args.json is not None and _standard_stream(args.json) is sys.stdout else sys.stdout
    print(f"trace {scaled.name} ({scaled.column} x {factor:.4g}, peak {scaled.peak_per_second:.1f} req/s), "
          f"{_span(scaled.duration_seconds)}; scenario {scenario.name}: {scenario.description}; "
          f"SLO p95 {simulation.slo_seconds * 1000:g} ms", file=table)
    print(f"perfpilot's Prometheus history before the window: {_span(before.duration_seconds)}"
          if before is not None else "perfpilot's Prometheus history before the window: none (the trace starts here)",
          file=table)
    print(format_table(simulation), file=table)
    print(f"replayed in {elapsed:.1f} s", file=table)
    unshown = describe_unshown_scenario(simulation)
    if unshown is not None:
        print(f"perfpilot simulate: note: {unshown}", file=sys.stderr)
    try:
        write_outputs(simulation, scale=factor, json_path=args.json, plot_path=args.plot)
    except OutputError as error:  # checked before the replay; the disk can still fill or change under it
        print(f"perfpilot simulate: {error}", file=sys.stderr)
        return 1
    return 0

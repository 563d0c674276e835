"""Decision-quality benchmark: every scenario on every trace window, perfpilot against the baselines.

Run ``python bench/decision_quality.py`` (or ``make bench``). It prints one table, the goals as
pass/fail, the time of each replay, and writes the numbers as JSON (``--json``, default
``bench/results/decision_quality.json``). Traces are read from ``shared/traces`` (``--traces``).
``--update-doc docs/benchmarks.md`` rewrites the measured table between the file's table markers, so the
published numbers are always this script's output. ``--held-out`` replays windows of the same traces that
the engine's rules were not tuned on (``HELD_OUT_WINDOWS``) and writes their own JSON and table;
``--further`` does the same for ten more (``FURTHER_WINDOWS``, two of which the last round of rules used), and
``--explored`` for sixteen more (``EXPLORED_WINDOWS``: eight days no round had replayed, eight that one round
replayed once and did not keep; some start off midnight).
``--objective Cost`` (or ``Reliability``) replays with that objective instead of Balanced, into its own JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfpilot.api.spec import Objective
from perfpilot.sim.replay import Simulation, simulate
from perfpilot.sim.report import to_json
from perfpilot.sim.scenarios import SCENARIOS, STATIC_SETTINGS, default_profile
from perfpilot.sim.trace import history_before, load_trace, scale_for_peak

DEFAULT_TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "decision_quality.json"
HELD_OUT_JSON = Path(__file__).resolve().parent / "results" / "decision_quality_held_out.json"
FURTHER_JSON = Path(__file__).resolve().parent / "results" / "decision_quality_further.json"
EXPLORED_JSON = Path(__file__).resolve().parent / "results" / "decision_quality_explored.json"
TIME_LIMIT_SECONDS = 30.0  # a 2-day, 1-minute-step replay of all four runs on one core
TABLE_START = "<!-- measured table: written by bench/decision_quality.py --update-doc -->"
TABLE_END = "<!-- end of measured table -->"
HELD_OUT_START = "<!-- held-out table: written by bench/decision_quality.py --held-out --update-doc -->"
HELD_OUT_END = "<!-- end of held-out table -->"
FURTHER_START = "<!-- further table: written by bench/decision_quality.py --further --update-doc -->"
FURTHER_END = "<!-- end of further table -->"
EXPLORED_START = "<!-- explored table: written by bench/decision_quality.py --explored --update-doc -->"
EXPLORED_END = "<!-- end of explored table -->"


@dataclass(frozen=True)
class Window:
    name: str
    path: str  # under the traces folder
    start_seconds: float | None  # absolute, or an offset from the trace's start
    hours: float | None
    history: str | None = None  # the whole trace the window file was cut from, for the warm-up before it


WINDOWS = (
    Window("worldcup98-06-25", "worldcup98/worldcup98_1998-06-25_2d.csv", None, 48, "worldcup98/worldcup98.csv"),
    Window("worldcup98-semifinal", "worldcup98/worldcup98_1998-07-07_semifinals_2d.csv", None, 48,
           "worldcup98/worldcup98.csv"),
    Window("nasa-07-05", "nasa_http_1995/nasa_http_1995.csv", 804902400, 48),  # 1995-07-05 00:00 UTC
    Window("twitter-day3", "twitter_stream_2021_08/twitter_stream_2021_08.csv", 3 * 86400, 48),
    Window("wikipedia-01-06", "wikipedia_en_2016_01_hourly/wikipedia_en_2016_01_hourly.csv", 1452038400, 48),
    Window("alibaba-ms", "alibaba2021_ms_6d9c26b9/alibaba2021_ms_6d9c26b9.csv", None, None),
)

# Windows of the same traces that the engine was not tuned on (its rules were tuned on WINDOWS): a check that
# the results carry over. Each has at least 4 days of history before it.
HELD_OUT_WINDOWS = (
    Window("worldcup98-06-30", "worldcup98/worldcup98.csv", 899164800, 48),  # 1998-06-30 00:00 UTC
    Window("worldcup98-07-03", "worldcup98/worldcup98.csv", 899424000, 48),  # quarter-finals
    Window("nasa-07-12", "nasa_http_1995/nasa_http_1995.csv", 805507200, 48),  # 1995-07-12 00:00 UTC
    Window("twitter-day10", "twitter_stream_2021_08/twitter_stream_2021_08.csv", 10 * 86400, 48),
    Window("wikipedia-01-20", "wikipedia_en_2016_01_hourly/wikipedia_en_2016_01_hourly.csv", 1453248000, 48),
)

# Ten more windows of the same traces, 2 days each: two of them (WorldCup98 07-13 and Twitter day 15) showed
# the misses the last round of rules addresses, so they are no longer unseen; the other eight still are.
FURTHER_WINDOWS = (
    Window("worldcup98-05-25", "worldcup98/worldcup98.csv", 896054400, 48),  # 1998-05-25 00:00 UTC
    Window("worldcup98-06-15", "worldcup98/worldcup98.csv", 897868800, 48),
    Window("worldcup98-07-13", "worldcup98/worldcup98.csv", 900288000, 48),  # the day after the final
    Window("nasa-08-08", "nasa_http_1995/nasa_http_1995.csv", 807840000, 48),
    Window("nasa-08-20", "nasa_http_1995/nasa_http_1995.csv", 808876800, 48),
    Window("twitter-day6", "twitter_stream_2021_08/twitter_stream_2021_08.csv", 6 * 86400, 48),
    Window("twitter-day15", "twitter_stream_2021_08/twitter_stream_2021_08.csv", 15 * 86400, 48),
    Window("twitter-day19", "twitter_stream_2021_08/twitter_stream_2021_08.csv", 19 * 86400, 48),
    Window("wikipedia-01-13", "wikipedia_en_2016_01_hourly/wikipedia_en_2016_01_hourly.csv", 1452643200, 48),
    Window("wikipedia-01-27", "wikipedia_en_2016_01_hourly/wikipedia_en_2016_01_hourly.csv", 1453852800, 48),
)

# Sixteen more: eight days no round had replayed, and eight that one round replayed once, unseen, without keeping
# them (docs/benchmarks.md, "Sixteen more windows"); five start at noon or another hour rather than midnight, and
# one is a 6-hour slice of the Alibaba trace.
EXPLORED_WINDOWS = (
    Window("worldcup98-06-05", "worldcup98/worldcup98.csv", 897004800, 48),  # 1998-06-05 00:00 UTC
    Window("worldcup98-06-20-12h", "worldcup98/worldcup98.csv", 898344000, 48),  # 1998-06-20 12:00 UTC
    Window("worldcup98-07-09", "worldcup98/worldcup98.csv", 899942400, 48),
    Window("nasa-07-19", "nasa_http_1995/nasa_http_1995.csv", 806112000, 48),
    Window("nasa-07-26-12h", "nasa_http_1995/nasa_http_1995.csv", 806760000, 48),
    # The July log ends 07-28 17:32 UTC and August's starts 08-01 04:00: 28 hours without a request, then 14 hours
    # of load up to the August outage (the trace's own gaps, replayed as no load).
    Window("nasa-07-31", "nasa_http_1995/nasa_http_1995.csv", 807148800, 48),
    Window("nasa-08-13", "nasa_http_1995/nasa_http_1995.csv", 808272000, 48),
    Window("nasa-08-25", "nasa_http_1995/nasa_http_1995.csv", 809308800, 48),
    Window("twitter-day1", "twitter_stream_2021_08/twitter_stream_2021_08.csv", 1 * 86400, 48),
    Window("twitter-day8", "twitter_stream_2021_08/twitter_stream_2021_08.csv", 8 * 86400, 48),
    Window("twitter-day12-12h", "twitter_stream_2021_08/twitter_stream_2021_08.csv", 12.5 * 86400, 48),
    Window("twitter-day17-06h", "twitter_stream_2021_08/twitter_stream_2021_08.csv", 17.25 * 86400, 48),
    Window("wikipedia-01-09", "wikipedia_en_2016_01_hourly/wikipedia_en_2016_01_hourly.csv", 1452297600, 48),
    Window("wikipedia-01-16-12h", "wikipedia_en_2016_01_hourly/wikipedia_en_2016_01_hourly.csv", 1452945600, 48),
    Window("wikipedia-01-24", "wikipedia_en_2016_01_hourly/wikipedia_en_2016_01_hourly.csv", 1453593600, 48),
    Window("alibaba-ms-03h-09h", "alibaba2021_ms_6d9c26b9/alibaba2021_ms_6d9c26b9.csv", 3 * 3600, 6),
)


@dataclass(frozen=True)
class WindowSet:
    """The windows one run replays, where its JSON goes and which table of the doc it rewrites."""

    name: str
    windows: tuple[Window, ...]
    json: Path
    markers: tuple[str, str]


WINDOW_SETS = {
    "measured": WindowSet("measured", WINDOWS, DEFAULT_JSON, (TABLE_START, TABLE_END)),
    "held-out": WindowSet("held-out", HELD_OUT_WINDOWS, HELD_OUT_JSON, (HELD_OUT_START, HELD_OUT_END)),
    "further": WindowSet("further", FURTHER_WINDOWS, FURTHER_JSON, (FURTHER_START, FURTHER_END)),
    "explored": WindowSet("explored", EXPLORED_WINDOWS, EXPLORED_JSON, (EXPLORED_START, EXPLORED_END)),
}


@dataclass(frozen=True)
class Goal:
    """One goal of one cell; ``passed`` is None when the cell cannot show it (static had no violation
    minute to halve), which is neither a pass nor a fail and is counted apart."""

    name: str
    passed: bool | None
    detail: str

    @property
    def verdict(self) -> str:
        return "N/A" if self.passed is None else "PASS" if self.passed else "FAIL"


# Products such as 0.7 x 3.0 land a hair below the decimal they stand for (2.0999999999999996): a value
# exactly at a goal's edge passes.
EDGE_TOLERANCE = 1e-9


def _at_most(value: float, limit: float) -> bool:
    return value <= limit * (1 + EDGE_TOLERANCE)


def _runs(simulation: Simulation) -> dict[str, Any]:
    return {name: run.metrics for name, run in simulation.runs.items()}


def cell_goals(scenario: str, simulation: Simulation, *, guide_pod_oracle_cpu_core_hours: float) -> list[Goal]:
    """The issue's goals for one cell. ``guide_pod_oracle_cpu_core_hours`` is the oracle's CPU on the same
    window with the guide's 1000m pods (the right-sized oracle): reported next to the over-provisioned goal,
    it says whether even an oracle free to resize the pods could reach 30% below static."""
    m = _runs(simulation)
    pp, static, oracle = m["perfpilot"], m["static"], m["oracle"]
    goals = [Goal(
        "violations <= static (5%)",
        _at_most(pp.slo_violation_minutes, static.slo_violation_minutes * 1.05),
        f"{pp.slo_violation_minutes} vs {static.slo_violation_minutes}",
    )]
    if scenario == "over-provisioned":
        ratio = pp.cpu_core_hours / static.cpu_core_hours
        bound = guide_pod_oracle_cpu_core_hours / static.cpu_core_hours
        goals.append(Goal("CPU >= 30% below static", _at_most(pp.cpu_core_hours, static.cpu_core_hours * 0.70),
                          f"{ratio:.2f}x static; oracle with 1000m pods {bound:.2f}x"))
    if scenario in ("small-pool", "slow-scale-up"):
        detail = f"{pp.slo_violation_minutes} vs {static.slo_violation_minutes}"
        if static.slo_violation_minutes == 0:
            # Nothing is 50% below zero: the window never stressed static, so it cannot show the goal.
            goals.append(Goal("violations >= 50% below static", None,
                              f"{detail}: static met the SLO all window, nothing to halve"))
        else:
            goals.append(Goal("violations >= 50% below static",
                              _at_most(pp.slo_violation_minutes, static.slo_violation_minutes * 0.5), detail))
    if scenario == "right-sized":
        ratio = pp.cpu_core_hours / oracle.cpu_core_hours
        static_ratio = static.cpu_core_hours / oracle.cpu_core_hours
        goals.append(Goal("CPU within 1.3x oracle", _at_most(pp.cpu_core_hours, oracle.cpu_core_hours * 1.3),
                          f"{ratio:.2f}x oracle; static {static_ratio:.2f}x"))
    return goals


@dataclass(frozen=True)
class GoalCount:
    passed: int
    shown: int  # goals a cell could show, passed or failed
    not_shown: int
    failed: list[str]

    @property
    def summary(self) -> str:
        extra = (f" ({self.not_shown} more not shown: static met the SLO all window, leaving nothing to halve)"
                 if self.not_shown else "")
        return f"{self.passed} of {self.shown} passed{extra}"


def count_goals(cells: list[dict[str, Any]]) -> GoalCount:
    """The goals of the cells' JSON documents, a goal not shown (``passed`` null) counted apart."""
    goals = [goal for cell in cells for goal in cell["goals"]]
    failed = [f"{cell['scenario']} on {cell['window']}: {goal['goal']} ({goal['detail']})"
              for cell in cells for goal in cell["goals"] if goal["passed"] is False]
    shown = sum(1 for goal in goals if goal["passed"] is not None)
    return GoalCount(passed=sum(1 for goal in goals if goal["passed"] is True), shown=shown,
                     not_shown=len(goals) - shown, failed=failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES, help="folder of the trace CSVs")
    parser.add_argument("--json", type=Path, help=f"where to write the results (default {DEFAULT_JSON.name}, "
                                                  f"with --held-out {HELD_OUT_JSON.name}, with --further "
                                                  f"{FURTHER_JSON.name}, with --explored {EXPLORED_JSON.name}, "
                                                  f"in bench/results)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="only these scenarios")
    parser.add_argument("--window", action="append",
                        choices=[w.name for chosen in WINDOW_SETS.values() for w in chosen.windows],
                        help="only these windows (of the set replayed)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--held-out", action="store_true",
                       help="replay the held-out windows (not used to tune the engine) instead of the named ones")
    which.add_argument("--further", action="store_true",
                       help="replay ten more windows (FURTHER_WINDOWS) instead of the named ones")
    which.add_argument("--explored", action="store_true",
                       help="replay sixteen more windows (EXPLORED_WINDOWS) instead of the named ones")
    parser.add_argument("--objective", choices=[o.value for o in Objective], default=Objective.BALANCED.value,
                        help="the profile's objective (default Balanced, the one the published tables use; another "
                             "writes the set's JSON name with _<objective> added, unless --json says where, and no "
                             "table)")
    parser.add_argument("--update-doc", type=Path, metavar="MARKDOWN",
                        help="rewrite the measured (or, with --held-out, --further or --explored, that) table "
                             "between its markers in this file (docs/benchmarks.md)")
    args = parser.parse_args(argv)
    chosen = WINDOW_SETS["held-out" if args.held_out else "further" if args.further
                         else "explored" if args.explored else "measured"]
    windows = chosen.windows
    others = sorted(set(args.window or ()) - {window.name for window in windows})
    if others:
        parser.error(f"--window {', '.join(others)}: not in the {chosen.name} set (its windows: "
                     f"{', '.join(window.name for window in windows)})")
    objective = Objective(args.objective)
    if objective is not Objective.BALANCED and args.update_doc is not None:
        parser.error("--update-doc writes the published tables, which are measured with objective Balanced")
    if args.json is None:
        args.json = chosen.json if objective is Objective.BALANCED else chosen.json.with_name(
            f"{chosen.json.stem}_{objective.value.lower()}.json")

    profile = default_profile().model_copy(update={"objective": objective})
    cells: list[dict[str, Any]] = []
    markdown_rows: list[str] = []
    header = (f"{'scenario':<17}{'trace window':<22}{'viol pp/st/k8s/or':>20}{'CPU core-h pp/st/or':>22}"
              f"{'pool conn-h pp/st':>19}{'chg/rb':>8}{'time':>7}  goals")
    print(header)
    print("-" * len(header))
    for window in windows:
        if args.window and window.name not in args.window:
            continue
        whole = load_trace(args.traces / window.path)
        trace = whole.window(start_seconds=window.start_seconds, hours=window.hours)
        if window.history is not None:
            whole = load_trace(args.traces / window.history)
        factor = scale_for_peak(trace, cpu_demand_seconds=SCENARIOS["right-sized"].params.cpu_demand_seconds,
                                cpu_request_millicores=STATIC_SETTINGS.resources.cpu_request_millicores or 1000)
        scaled = trace.scaled(factor)
        # The peak window before the window, where the trace has it: perfpilot's Prometheus is warmed up on it.
        before = history_before(whole, trace, seconds=profile.guardrails.peak_window.seconds)
        before = before.scaled(factor) if before is not None else None
        guide_pod_oracle = simulate(trace=scaled, scenario=SCENARIOS["right-sized"], profile=profile,
                                    runs=("oracle",)).runs["oracle"].metrics.cpu_core_hours
        for name, scenario in SCENARIOS.items():
            if args.scenario and name not in args.scenario:
                continue
            started = time.perf_counter()
            simulation = simulate(trace=scaled, scenario=scenario, profile=profile, before=before)
            elapsed = time.perf_counter() - started
            goals = cell_goals(name, simulation, guide_pod_oracle_cpu_core_hours=guide_pod_oracle)
            m = _runs(simulation)
            pp, st, k8s, orc = m["perfpilot"], m["static"], m["k8s-default"], m["oracle"]
            verdicts = "; ".join(f"{g.verdict} {g.name} ({g.detail})" for g in goals)
            violations = "/".join(str(r.slo_violation_minutes) for r in (pp, st, k8s, orc))
            cpu = "/".join(f"{r.cpu_core_hours:.0f}" for r in (pp, st, orc))
            pool = "/".join(f"{r.pool_connection_hours:.0f}" for r in (pp, st))
            moves = f"{pp.changes}/{pp.rollbacks}"
            print(f"{name:<17}{window.name:<22}{violations:>20}{cpu:>22}{pool:>19}{moves:>8}{elapsed:>6.1f}s  "
                  f"{verdicts}", flush=True)
            marked = "; ".join(f"**{g.verdict}** {g.name} ({g.detail})" for g in goals)
            markdown_rows.append(f"| {name} | {window.name} | {violations.replace('/', ' / ')} | "
                                 f"{cpu.replace('/', ' / ')} | {pool.replace('/', ' / ')} | "
                                 f"{moves.replace('/', ' / ')} | {elapsed:.1f}s | {marked} |")
            document = to_json(simulation, scale=factor)
            document["window"] = window.name
            document["elapsed_seconds"] = round(elapsed, 2)
            document["goals"] = [{"goal": g.name, "passed": g.passed, "detail": g.detail} for g in goals]
            cells.append(document)

    two_day = [c["elapsed_seconds"] for c in cells if c["trace"]["hours"] >= 47.9]
    slowest = max(two_day, default=0.0)
    count = count_goals(cells)
    counted, failed = count.summary, count.failed
    print()
    print(f"timing: slowest 2-day replay of all four runs {slowest:.1f} s "
          f"({'PASS' if slowest < TIME_LIMIT_SECONDS else 'FAIL'} < {TIME_LIMIT_SECONDS:.0f} s on one core)")
    print(f"goals: {counted}")
    for line in failed:
        print(f"  FAIL {line}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"cells": cells, "slowest_two_day_seconds": slowest,
                                     "goals_passed": count.passed, "goals_total": count.shown,
                                     "goals_not_shown": count.not_shown}, indent=1) + "\n")
    print(f"wrote {args.json}")
    if args.update_doc is not None:
        summary = (f"**Goals: {counted}.** Slowest 2-day replay "
                   f"of all four runs: {slowest:.1f} s on one core (goal < {TIME_LIMIT_SECONDS:.0f} s: "
                   f"{'PASS' if slowest < TIME_LIMIT_SECONDS else 'FAIL'}).")
        write_table(args.update_doc, rows=markdown_rows, summary=summary, markers=chosen.markers)
        print(f"updated the {chosen.name} table in {args.update_doc}")
    return 0


def write_table(path: Path, *, rows: list[str], summary: str,
                markers: tuple[str, str] = (TABLE_START, TABLE_END)) -> None:
    """Replace what stands between the table markers of ``path`` with ``rows`` and the summary line."""
    text = path.read_text()
    first, last = markers
    start, end = text.find(first), text.find(last)
    if start < 0 or end < start:
        raise SystemExit(f"{path}: the table markers are missing ({first!r} ... {last!r})")
    table = "\n".join([
        "| scenario | trace window | SLO-violation min (pp / static / k8s / oracle) "
        "| CPU core-h (pp / static / oracle) | pool conn-h (pp / static) | changes / rollbacks | time | goals |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        summary,
    ])
    path.write_text(text[: start + len(first)] + "\n" + table + "\n" + text[end:])


if __name__ == "__main__":
    sys.exit(main())

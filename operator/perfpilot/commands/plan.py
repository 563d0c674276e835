"""`perfpilot plan` — what perfpilot would change now, from live Prometheus; writes nothing anywhere.

Reads the profile, the live signals (one snapshot, the same queries the operator sends), optionally the
workload's manifests for requests/limits, the HPA and the pool; classifies, decides, and prints the
decision with its table row, values and bounds — as text, or as JSON with ``--json``. The tuning state
(pending change, history, barred moves, the wait for off-peak) comes from the profile's ``status`` when the file
carries one.

Exit status: 0 a plan was printed (even when some signals are unknown: the plan says which), 2 the input
could not be read or is invalid, 3 Prometheus could not be reached or answered no query with a result (nothing
to plan from).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from perfpilot.api.spec import KIND, PerformanceProfile, PerformanceProfileSpec
from perfpilot.api.status import Edit, ObservedStatus, Setting, TuningState, parse_tuning_state
from perfpilot.api.validate import prune_null_fields, validate_profile
from perfpilot.commands.inputs import (
    InputFileError,
    check_prometheus_files,
    load_yaml_documents,
    parse_header_flags,
)
from perfpilot.observe.observed import observed_status
from perfpilot.observe.reader import (
    DEFAULT_RATE_WINDOW_SECONDS,
    PrometheusError,
    PrometheusSettings,
)
from perfpilot.observe.snapshot import ProfileTarget, fetch_observations, unreachable_reason
from perfpilot.observe.workload import (
    WorkloadSpecError,
    flatten,
    live_config_from_manifests,
    live_config_without_manifests,
)
from perfpilot.tuning.decision import Classification, Decision, ProposedChange
from perfpilot.tuning.engine import decide
from perfpilot.tuning.observations import Observations

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3  # also when the server answered, but no query with a result: nothing to plan from either


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show what perfpilot would change now, from live Prometheus (writes nothing)",
        description="Read a PerformanceProfile's signals from Prometheus, classify them, decide, and print the "
        "change perfpilot would make now with its reason, table row and bounds. Nothing is written anywhere. "
        "Exit status: 0 a plan was printed (unknown signals say why), 2 bad input (named with its flag or field "
        "and value), 3 Prometheus unreachable or no query got a result.",
    )
    parser.add_argument("--profile", required=True, type=Path, metavar="FILE", help="PerformanceProfile YAML")
    parser.add_argument("--prometheus", default="", metavar="URL",
                        help="Prometheus base URL (default: the profile's spec.metrics.prometheusURL)")
    parser.add_argument("--at", default=None, metavar="TIME",
                        help="evaluation time: RFC 3339 (2023-11-14T23:00:00Z) or Unix seconds; default now")
    parser.add_argument("--workload-spec", type=Path, metavar="FILE",
                        help="YAML of the workload (Deployment/StatefulSet), its HPA, its Pods (for OOMKilled "
                        "terminations) and the pgBouncer ConfigMap or Pooler, e.g. from kubectl get -o yaml; "
                        "without it requests and the HPA are unknown")
    parser.add_argument("--json", action="store_true", help="print {observed, classification, decision} as JSON")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="per query, retries included (0.1 to 300)")
    parser.add_argument("--bearer-token-file", type=Path, metavar="FILE", help="file holding a bearer token")
    parser.add_argument("--ca-file", type=Path, metavar="FILE", help="CA bundle for the server's certificate")
    parser.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate")
    parser.add_argument("--header", action="append", default=[], metavar="NAME=VALUE",
                        help="extra HTTP header, repeatable (e.g. X-Scope-OrgID=tenant)")
    parser.add_argument("--step", type=int, default=60, metavar="SECONDS", help="query resolution (1 to 3600)")
    parser.add_argument("--rate-window", type=int, default=None, metavar="SECONDS",
                        help="range of rate() (1 to 3600, at least the step; default 120, or the step if longer)")
    parser.set_defaults(func=run)


class _BadInput(Exception):
    pass


def parse_time(raw: str | None) -> datetime:
    """``--at``: RFC 3339 or Unix seconds; the clock is read here, once, when it is not given."""
    if raw is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        try:
            return _within_reach(datetime.fromtimestamp(seconds, tz=UTC), raw)
        except (ValueError, OverflowError, OSError):
            raise _BadInput(f"--at: not a time this machine can represent (got {raw!r})") from None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as error:
        raise _BadInput(f"--at: not a time (use 2023-11-14T23:00:00Z or Unix seconds) (got {raw!r})") from error
    return _within_reach(parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC), raw)


# Prometheus keeps no sample before the Unix epoch, and none from the future: a plan "at" either would read
# nothing and call it not enough data. A day of slack for a clock set wrong.
AT_LATEST_AHEAD = timedelta(days=1)


def _within_reach(at: datetime, raw: str) -> datetime:
    if at < datetime(1970, 1, 1, tzinfo=UTC):
        raise _BadInput(f"--at: before 1970-01-01, where Prometheus holds no sample (got {raw!r})")
    if at > datetime.now(UTC) + AT_LATEST_AHEAD:
        raise _BadInput(f"--at: more than a day ahead of this machine's clock; Prometheus holds no sample from "
                        f"the future (got {raw!r})")
    return at


def _load_profile(path: Path) -> PerformanceProfile:
    profiles = [d for d in flatten(load_yaml_documents(path, flag="--profile")) if d.get("kind") == KIND]
    if len(profiles) != 1:
        raise _BadInput(f"--profile {path}: expected exactly one {KIND}, found {len(profiles)}")
    problems = validate_profile(profiles[0])
    if problems:
        raise _BadInput("\n".join(f"{path}: {problem}" for problem in problems))
    profile = PerformanceProfile.model_validate(prune_null_fields(profiles[0]))
    if not profile.metadata.namespace:
        raise _BadInput(f"{path}: metadata.namespace is required (the queries select by namespace)")
    return profile


def read_tuning_state(profile: PerformanceProfile) -> TuningState:
    """The engine's state machine as the profile's status holds it, or a fresh one when it holds none readable."""
    state = parse_tuning_state(profile.status)
    if state is None:
        print("warning: the profile's status has no readable tuning state; planning from a fresh state",
              file=sys.stderr)
        return TuningState()
    return state


def _seconds_rule(field: str) -> str:
    """What a seconds setting accepts, worded from the settings' own bounds so the two cannot drift apart."""
    info = PrometheusSettings.model_fields[field]
    bounds = {name: getattr(constraint, name) for constraint in info.metadata
              for name in ("gt", "ge", "lt", "le") if getattr(constraint, name, None) is not None}
    if "ge" in bounds and "le" in bounds:
        text = f"from {bounds['ge']:g} to {bounds['le']:g}"
    else:
        words = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
        text = " and ".join(f"{words[name]} {value:g}" for name, value in bounds.items())
    kind = "a whole number" if info.annotation is int else "a finite number"
    return f"must be {kind} of seconds {text}".rstrip()


def _default_rate_window(step_seconds: int) -> int:
    """The rate window when --rate-window is not given: the default, or the step when that is longer and usable
    (a step out of its bounds is reported on its own, not again as a rate window nobody gave)."""
    longest = PrometheusSettings.model_fields["rate_window_seconds"].metadata
    upper = min((bound.le for bound in longest if getattr(bound, "le", None) is not None), default=step_seconds)
    return max(DEFAULT_RATE_WINDOW_SECONDS, step_seconds) if step_seconds <= upper else DEFAULT_RATE_WINDOW_SECONDS


def _settings(args: argparse.Namespace, url: str) -> PrometheusSettings:
    try:
        headers = parse_header_flags(args.header)
        check_prometheus_files(bearer_token_file=args.bearer_token_file, ca_file=args.ca_file)
    except InputFileError as error:
        raise _BadInput(str(error)) from error
    try:
        return PrometheusSettings(
            url=url, timeout_seconds=args.timeout, bearer_token_file=args.bearer_token_file, ca_file=args.ca_file,
            insecure_skip_verify=args.insecure, headers=headers, step_seconds=args.step,
            rate_window_seconds=args.rate_window if args.rate_window is not None else _default_rate_window(args.step),
        )
    except ValidationError as error:
        url_source = "--prometheus" if args.prometheus else f"{args.profile}: spec.metrics.prometheusURL"
        flags = {"url": url_source, "timeout_seconds": "--timeout", "step_seconds": "--step",
                 "rate_window_seconds": "--rate-window"}
        messages = []
        for detail in error.errors(include_url=False):
            field = str(detail["loc"][0]) if detail["loc"] else ""
            # pydantic's bound messages ("less than or equal to 300" for nan) do not say what the flag takes.
            bound = field.endswith("_seconds") and detail["type"] != "rate_window_below_step"
            rule = _seconds_rule(field) if bound else detail["msg"]
            given = _shortened(repr(detail.get("input")), 80)
            if detail["type"] == "string_too_long":
                rule = f"must be at most {detail['ctx']['max_length']} characters"
                given = f"{len(detail['input'])} characters: {given}"
            messages.append(f"{flags.get(field, field or 'settings')}: {rule} (got {given})")
        raise _BadInput("; ".join(messages)) from error


def _with_prometheus_url(profile: PerformanceProfile, url: str) -> PerformanceProfile:
    """The profile asking ``url``: --prometheus wins over the profile's URL for this run (plan is pointed at a
    server on purpose). The reader's settings hold a URL to the profile field's rules, so this cannot fail."""
    pointed = profile.model_copy(deep=True)
    pointed.spec.metrics.prometheus_url = url
    return pointed


def _shortened(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _no_result_reason(url: str, failures: tuple[PrometheusError, ...]) -> str:
    """Why the cycle has nothing to plan from although the server was reached, on one line."""
    # Not a whole HTML error page: the first 200 characters of each cause say what answered.
    causes = list(dict.fromkeys(_shortened(" ".join(failure.cause.split())) for failure in failures))
    shown = "; ".join(causes[:3]) + (f"; and {len(causes) - 3} other errors" if len(causes) > 3 else "")
    return f"no query to prometheus {url} got a result ({len(failures)} failed), nothing to plan from: {shown}"


# --- output -------------------------------------------------------------------------------------------


def bounds_for(setting: Setting, spec: PerformanceProfileSpec) -> str:
    """The profile's bounds for a setting, as the plan shows them next to the move."""
    if setting is Setting.HPA_CPU_TARGET:
        return f"{spec.hpa.cpu_target.min}..{spec.hpa.cpu_target.max}%"
    if setting is Setting.HPA_MEMORY_TARGET:
        return f"{spec.hpa.memory_target.min}..{spec.hpa.memory_target.max}%"
    if setting is Setting.HPA_MAX_REPLICAS:
        return f"up to {spec.hpa.max_replicas_ceiling}" if spec.hpa.max_replicas_ceiling else "not raised"
    if setting is Setting.RESOURCES:
        cpu, memory = spec.resources.cpu, spec.resources.memory
        return f"cpu {cpu.min}..{cpu.max}, memory {memory.min}..{memory.max}, limits {spec.resources.limits.value}"
    if setting is Setting.POOL_SIZE:
        return f"{spec.pool.size.min}..{spec.pool.size.max}"
    return f"rows of the {setting.value} table"


def _edit_json(edit: Edit | None) -> dict[str, Any] | None:
    return None if edit is None else edit.model_dump(by_alias=True, mode="json")


def _change_json(change: ProposedChange | None, spec: PerformanceProfileSpec) -> dict[str, Any] | None:
    if change is None:
        return None
    return {
        "target": change.target,
        "setting": change.edit.setting.value,
        "edit": _edit_json(change.edit),
        "coupled": _edit_json(change.coupled),
        "coupledTarget": change.coupled_target or None,
        "tableRow": change.table_row,
        "reason": change.reason,
        "bounds": bounds_for(change.edit.setting, spec),
        "emergency": change.emergency,
        "rollback": change.rollback,
    }


def _classification_json(classification: Classification) -> dict[str, str]:
    return {
        "loadPattern": classification.load_pattern,
        "memory": classification.memory,
        "provisioning": classification.provisioning,
        "poolLoad": classification.pool_load,
    }


def plan_json(*, observed: ObservedStatus, classification: Classification, decision: Decision,
              spec: PerformanceProfileSpec) -> dict[str, Any]:
    observed_json = observed.model_dump(by_alias=True, mode="json")
    return {
        "observed": observed_json,
        "classification": _classification_json(classification),
        "decision": {
            "change": _change_json(decision.change, spec),
            "reason": decision.reason,
            "tableRow": decision.change.table_row if decision.change is not None else None,
            "wouldApply": decision.apply,
            "verdict": decision.verdict.value if decision.verdict is not None else None,
            "verdictReason": decision.verdict_reason or None,
            "blockedBy": list(decision.blocked_by),
            "written": False,  # plan never writes; "wouldApply" is what the operator would do in this mode
        },
    }


def _format_value(value: object) -> str:
    if isinstance(value, list):
        return "; ".join(_format_value(item) for item in value)
    if hasattr(value, "model_dump"):
        dumped = value.model_dump(by_alias=True, mode="json", exclude_none=True)
        return ", ".join(f"{k}={v}" for k, v in dumped.items())
    return "unset" if value is None else str(value)


def plan_text(*, profile: PerformanceProfile, observations: Observations, observed: ObservedStatus,
              classification: Classification, decision: Decision, url: str) -> str:
    spec = profile.spec
    lines = [
        f"profile {profile.metadata.namespace}/{profile.metadata.name} -> {spec.target_ref.kind.value}/"
        f"{spec.target_ref.name}, mode {spec.mode.value}, objective {spec.objective.value}",
        f"evaluated at {observations.at.isoformat()} over {spec.guardrails.window} "
        f"(step {observations.step_seconds:g}s) from {url}",
        "",
        "observed (latest value; unknown signals block the rules that need them):",
    ]
    dumped = observed.model_dump(by_alias=True, mode="json")
    keys = ("p95LatencySeconds", "requestRate", "errorRatio", "cpuUtilization", "memoryUtilization",
            "replicas", "poolUtilization", "poolWaitingClients", "poolSizeServedMin", "poolSizeServedMax")
    for key in keys:
        value = dumped[key]
        shown = f"{value:.4g}" if value is not None else f"unknown ({observed.unknown.get(key, '')})"
        lines.append(f"  {key:<20} {shown}")
    for key, reason in observed.unknown.items():  # a container's own series
        if key not in keys:
            lines.append(f"  {key:<20} unknown ({reason})")
    lines += [
        "",
        f"classification: load {classification.load_pattern}, memory {classification.memory}, "
        f"provisioning {classification.provisioning}, pool {classification.pool_load}",
        "",
    ]
    change = decision.change
    if change is None:
        lines.append(f"decision: no change — {decision.reason}")
    else:
        lines += [
            f"decision: change {change.target} {change.edit.setting.value}: "
            f"{_format_value(change.edit.from_value)} -> {_format_value(change.edit.to_value)}",
            f"  table row: {change.table_row}",
            f"  bounds:    {bounds_for(change.edit.setting, spec)}",
            f"  reason:    {change.reason}",
        ]
        if change.coupled is not None:
            lines.append(f"  coupled:   {change.coupled_target or change.target} {change.coupled.setting.value}: "
                         f"{_format_value(change.coupled.from_value)} -> {_format_value(change.coupled.to_value)}")
        if change.emergency:
            lines.append("  emergency: yes (allowed during cooldown)")
        mode_note = "yes, in Auto mode" if decision.apply else f"no ({spec.mode.value} mode: recommendation only)"
        lines.append(f"  the operator would write it: {mode_note}")
    if decision.blocked_by:
        lines.append(f"blocked by unknown signals: {', '.join(decision.blocked_by)}")
    if decision.verdict is not None:
        lines.append(f"verdict on the pending change: {decision.verdict.value} — {decision.verdict_reason}")
    lines.append("")
    lines.append("nothing was written (perfpilot plan only reads)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        profile = _load_profile(args.profile)
        at = parse_time(args.at)
        url = args.prometheus or profile.spec.metrics.prometheus_url
        if not url:
            raise _BadInput("no Prometheus URL: pass --prometheus or set spec.metrics.prometheusURL")
        settings = _settings(args, url)
        profile_for_run = _with_prometheus_url(profile, url)
        if args.workload_spec is not None:
            manifests = load_yaml_documents(args.workload_spec, flag="--workload-spec")
            try:
                live = live_config_from_manifests(manifests, profile, now=at)
            except WorkloadSpecError as error:
                raise _BadInput(f"--workload-spec {args.workload_spec}: {error}") from error
        else:
            live = live_config_without_manifests(profile)
    except (_BadInput, WorkloadSpecError, ValueError) as error:
        for line in str(error).splitlines():  # a profile with several problems: one prefixed line each
            print(f"perfpilot plan: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT

    cycle = fetch_observations([ProfileTarget(profile_for_run, live)], at=at, settings=settings)
    unreachable = cycle.unreachable.get(url)
    if unreachable is not None:  # no query got an answer: nothing to plan from
        print(f"perfpilot plan: {unreachable_reason(unreachable)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    failures = cycle.without_result.get(url)
    if failures is not None:
        print(f"perfpilot plan: {_no_result_reason(url, failures)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    observations = cycle[(profile.metadata.namespace, profile.metadata.name)]
    decision = decide(profile.spec, observations, read_tuning_state(profile), at)
    classification = decision.classification
    observed = observed_status(observations)
    if args.json:
        print(json.dumps(plan_json(observed=observed, classification=classification, decision=decision,
                                   spec=profile.spec), indent=2))
    else:
        print(plan_text(profile=profile, observations=observations, observed=observed,
                        classification=classification, decision=decision, url=url))
    return EXIT_OK

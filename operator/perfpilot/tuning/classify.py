"""Which row of each table the observations point at (DESIGN section 4), with the evidence in numbers.

``compute_classification_detail()`` returns each label with the numbers and the unknown signals, which the
rules quote in their reasons; its ``summary`` (what ``classify()`` returns) is the labels alone, as the
decision and status carry them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import ContainerResources, Setting, TuningState, Verdict
from perfpilot.tuning import signals
from perfpilot.tuning.decision import Classification
from perfpilot.tuning.guardrails import list_records
from perfpilot.tuning.observations import LiveConfig, Observations, Series, Signal, Unknown
from perfpilot.tuning.tables import CPU_TARGET_ROWS, POOL_TIERS
from perfpilot.tuning.thresholds import DEFAULT_THRESHOLDS, Thresholds
from perfpilot.tuning.values import format_container_prefix, selected_containers

UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Finding:
    label: str
    evidence: str  # the numbers behind the label, quoted in reasons
    blocked_by: tuple[str, ...] = ()  # signals whose absence made the label Unknown


@dataclass(frozen=True)
class ProvisioningFinding(Finding):
    # The containers whose CPU or memory is bound (or, for Over, over-provisioned): a move sizes those only.
    cpu_containers: tuple[str, ...] = ()
    memory_containers: tuple[str, ...] = ()

    @property
    def cpu_bound(self) -> bool:
        return self.label in ("CpuBound", "Under") and bool(self.cpu_containers)

    @property
    def memory_bound(self) -> bool:
        return self.label in ("MemoryBound", "Under") and bool(self.memory_containers)

    @property
    def cpu_over(self) -> bool:
        return self.label == "Over" and bool(self.cpu_containers)

    @property
    def memory_over(self) -> bool:
        return self.label == "Over" and bool(self.memory_containers)


@dataclass(frozen=True)
class ClassificationDetail:
    load: Finding
    memory: Finding
    provisioning: ProvisioningFinding
    pool: Finding

    @property
    def summary(self) -> Classification:
        return Classification(
            load_pattern=self.load.label,
            memory=self.memory.label,
            provisioning=self.provisioning.label,
            pool_load=self.pool.label,
        )


def classify(profile: PerformanceProfileSpec, observations: Observations) -> Classification:
    return compute_classification_detail(profile, observations).summary


def compute_classification_detail(
    profile: PerformanceProfileSpec, observations: Observations, *, thresholds: Thresholds = DEFAULT_THRESHOLDS,
    state: TuningState | None = None,
) -> ClassificationDetail:
    memory = classify_memory(observations, thresholds=thresholds)
    was_bursty = state is not None and find_bursty_decision(state, observations)
    return ClassificationDetail(
        load=classify_load(observations, thresholds=thresholds, was_bursty=was_bursty),
        memory=memory,
        provisioning=classify_provisioning(profile, observations, memory=memory, thresholds=thresholds),
        pool=classify_pool(profile, observations),
    )


def find_bursty_decision(state: TuningState, observations: Observations) -> bool:
    """Whether the live CPU target is perfpilot's own Bursty-row decision: the newest record that moved the
    target as its own move (not undone) set the live value from the Bursty row, or set it before a coupled
    move that only kept the replica count through a request change. Leaving Bursty then takes the (lower)
    leave thresholds: hysteresis. The live values alone do not say it: the latency feedback steps a 70%
    target to 60% too, and a Slow scale-down row answers flapping or is pinned."""
    hpa = observations.live.hpa
    if hpa is None or hpa.cpu_target_percent is None:
        return False
    coupled_since = False
    for record in reversed(list_records(state)):
        if record.verdict in (Verdict.ROLLED_BACK, Verdict.REVERTED):
            continue
        if record.coupled is not None and record.coupled.setting is Setting.HPA_CPU_TARGET:
            # A target moved with a request only keeps the replica count: the row decision is older.
            coupled_since = True
            continue
        if record.edit.setting is Setting.HPA_CPU_TARGET:
            return record.table_row == CPU_TARGET_ROWS["Bursty"].label and (
                coupled_since or record.edit.to_value == hpa.cpu_target_percent)
    return False


def classify_load(
    observations: Observations, *, thresholds: Thresholds = DEFAULT_THRESHOLDS, was_bursty: bool = False
) -> Finding:
    """Steady or Bursty; with ``was_bursty`` the load stays Bursty until it is under both leave thresholds."""
    rate = observations.request_rate_per_second
    if isinstance(rate, Unknown):
        return Finding(UNKNOWN, f"request rate unknown ({rate.reason})", ("request_rate_per_second",))
    if len(rate.values) < thresholds.min_samples_for_pattern:
        return Finding(
            UNKNOWN,
            f"only {len(rate.values)} request-rate samples (< {thresholds.min_samples_for_pattern})",
            ("request_rate_per_second",),
        )
    cv = signals.compute_cv(rate.values)
    median = signals.compute_median(rate.values)
    peak = rate.maximum
    cv_limit = thresholds.bursty_leave_cv if was_bursty else thresholds.bursty_cv
    ratio_limit = thresholds.bursty_leave_peak_to_median if was_bursty else thresholds.bursty_peak_to_median
    staying = " (staying Bursty: leave threshold)" if was_bursty else ""
    if cv > cv_limit:
        return Finding("Bursty", f"request-rate CV {cv:.2f} > {cv_limit:.2f}{staying}")
    if median > 0 and peak > ratio_limit * median:
        return Finding("Bursty", f"request-rate peak {peak / median:.2f} x median > {ratio_limit:g} x{staying}")
    ratio = f"{peak / median:.2f}" if median > 0 else "n/a"
    return Finding(
        "Steady",
        f"request-rate CV {cv:.2f} <= {cv_limit:.2f}, peak/median {ratio} <= {ratio_limit:g}",
    )


def classify_memory(observations: Observations, *, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Finding:
    working_set = observations.memory_working_set_bytes_per_pod
    if isinstance(working_set, Unknown):
        return Finding(UNKNOWN, f"memory unknown ({working_set.reason})", ("memory_working_set_bytes_per_pod",))
    request_bytes = observations.live.memory_request_bytes_per_pod
    if not request_bytes:
        return Finding(UNKNOWN, "a container has no memory request", ("live.memory_request",))
    if len(working_set.values) < thresholds.min_samples_for_pattern:
        return Finding(
            UNKNOWN,
            f"only {len(working_set.values)} memory samples (< {thresholds.min_samples_for_pattern})",
            ("memory_working_set_bytes_per_pod",),
        )
    growth = _describe_growth(working_set, request_bytes=request_bytes, thresholds=thresholds)
    if growth is not None:
        return Finding("Growing", growth)
    cv = signals.compute_cv(working_set.values)
    if cv > thresholds.memory_variable_cv:
        return Finding("Variable", f"working-set CV {cv:.2f} > {thresholds.memory_variable_cv:.2f}")
    return Finding("Stable", f"working-set CV {cv:.2f} <= {thresholds.memory_variable_cv:.2f}, no steady growth")


def _describe_growth(working_set: Series, *, request_bytes: int, thresholds: Thresholds) -> str | None:
    """How the working set rises when it grows steadily against ``request_bytes`` (a leak?), else None."""
    if working_set.span_seconds < thresholds.memory_growth_min_span_seconds:
        return None
    slope_bytes_per_second, r_squared = signals.compute_linear_fit(working_set)
    growth_percent_per_hour = slope_bytes_per_second * 3600 * 100 / request_bytes
    if (growth_percent_per_hour > thresholds.memory_growth_percent_of_request_per_hour
            and r_squared >= thresholds.memory_growth_min_r_squared):
        return (f"working set rising {growth_percent_per_hour:.1f}% of request/h "
                f"> {thresholds.memory_growth_percent_of_request_per_hour:g}% (R² {r_squared:.2f})")
    return None


def _is_container_growing(working_set: Signal, *, request_bytes: int, thresholds: Thresholds) -> bool:
    return isinstance(working_set, Series) and _describe_growth(
        working_set, request_bytes=request_bytes, thresholds=thresholds) is not None


def _slo_met_whole_window(latency: Series, slo_seconds: float) -> bool:
    return latency.maximum <= slo_seconds


def classify_provisioning(
    profile: PerformanceProfileSpec,
    observations: Observations,
    *,
    memory: Finding | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> ProvisioningFinding:
    live = observations.live
    hpa = live.hpa
    cpu_hpa = hpa is not None and hpa.cpu_target_percent is not None
    cpu_request = live.cpu_request_millicores_per_pod
    memory_request = live.memory_request_bytes_per_pod
    latency = observations.latency_p95_seconds
    # Each selected container is judged against its own request and limit (a pod's total would let an idle
    # sidecar's request hide a container at its own); a pod of one container reads the pod's series. Each
    # bound is found from the signals it needs: OOM kills are evidence whatever CPU says, and a container
    # with no CPU limit is never throttled (no CFS quota), so its throttling is not needed.
    selected = selected_containers(profile, live)
    cpu_judged = [c for c in selected if c.cpu_request_millicores]
    memory_judged = [c for c in selected if c.memory_request_bytes]
    named = len(selected) > 1
    usages = {c.name: observations.find_container_cpu_usage(c.name) for c in cpu_judged}
    throttling = {c.name: observations.find_container_throttled_ratio(c.name)
                  for c in cpu_judged if c.cpu_limit_millicores}
    working_sets = {c.name: observations.find_container_working_set(c.name) for c in memory_judged}

    cpu_bound_containers, cpu_evidence = _find_cpu_bound(cpu_judged, usages, throttling, named=named,
                                                         thresholds=thresholds)
    memory_bound_containers, memory_evidence = _find_memory_bound(memory_judged, working_sets, live, named=named,
                                                                  thresholds=thresholds)
    evidence = [*cpu_evidence, *memory_evidence]
    oom = live.oom_kills_in_window
    cpu_bound, memory_bound = bool(cpu_bound_containers), bool(memory_bound_containers)

    needed: dict[str, Signal] = {"latency_p95_seconds": latency}
    for signal_name, reading in (*usages.values(), *working_sets.values(), *throttling.values()):
        if signal_name not in needed or isinstance(reading, Unknown):
            needed[signal_name] = reading  # one entry per signal: unknown if any container's is
    if cpu_hpa:
        needed["replicas"] = observations.replicas
    missing = tuple(name for name, signal in needed.items() if isinstance(signal, Unknown))
    if not cpu_request:
        missing += ("live.cpu_request",)
    if not memory_request:
        missing += ("live.memory_request",)
    cpu_signals = ("cpu_usage_millicores_per_pod", "cpu_usage_millicores_by_container", "cpu_throttled_ratio",
                   "cpu_throttled_ratio_by_container", "live.cpu_request")
    memory_signals = ("memory_working_set_bytes_per_pod", "memory_working_set_bytes_by_container",
                      "live.memory_request")

    if cpu_bound or memory_bound:
        label = "Under" if cpu_bound and memory_bound else ("CpuBound" if cpu_bound else "MemoryBound")
        # A bound stands on its own signals (its move needs no others); the other side unknown is named, as it
        # could not be checked (an Under it would have made).
        other = [] if label == "Under" else [
            name for name in missing if name in (memory_signals if cpu_bound else cpu_signals)]
        reason = "; ".join(evidence) + (f" ({', '.join(other)} unknown)" if other else "")
        return ProvisioningFinding(label, reason, tuple(other), cpu_containers=tuple(cpu_bound_containers),
                                   memory_containers=tuple(memory_bound_containers))
    if missing:
        return ProvisioningFinding(UNKNOWN, "unknown: " + ", ".join(missing), missing)
    assert isinstance(latency, Series)
    assert cpu_request and memory_request

    slo_seconds = profile.slo.latency_p95.seconds
    if not _slo_met_whole_window(latency, slo_seconds):
        return ProvisioningFinding(
            "Right", f"not bound; p95 peak {latency.maximum * 1000:.0f}ms above SLO, so not over-provisioned"
        )
    over = thresholds.over_provisioned_usage_fraction
    at_min_replicas = True
    if cpu_hpa and hpa is not None:
        replicas = observations.replicas
        assert isinstance(replicas, Series)
        at_min_replicas = replicas.maximum <= hpa.min_replicas
    growing = memory is not None and memory.label == "Growing"
    # The pod's memory pattern unknown (its series failed while the containers' came back) may hide a leak.
    pattern_unknown = memory is not None and memory.label == UNKNOWN
    memory_may_cut = isinstance(oom, int) and oom == 0 and not growing and not pattern_unknown
    cpu_under, cpu_lines = _find_under(cpu_judged, usages, request=lambda c: c.cpu_request_millicores, what="CPU",
                                       named=named, fraction=over)
    memory_under, memory_lines = _find_under(memory_judged, working_sets, request=lambda c: c.memory_request_bytes,
                                             what="memory", named=named, fraction=over)
    parts = [*cpu_lines, *memory_lines]
    # A container leaking against its own request is left alone, though the pod's total (an idle sidecar's
    # request beside it) grows too slowly to call the pod Growing.
    requests = {c.name: c.memory_request_bytes or 1 for c in memory_judged}
    leaking = [name for name in memory_under if memory_may_cut and _is_container_growing(
        working_sets[name][1], request_bytes=requests[name], thresholds=thresholds)]
    for name in leaking:
        parts.append(f"{format_container_prefix(name, named=named)}memory left alone: growing")
    cpu_containers = tuple(cpu_under) if at_min_replicas else ()
    memory_containers = tuple(name for name in memory_under if name not in leaking) if memory_may_cut else ()
    if cpu_under and not at_min_replicas:
        parts.append("CPU left alone: HPA above minReplicas holds utilisation near its target")
    if memory_under and not memory_may_cut:
        if growing:
            why = "growing"
        elif pattern_unknown:
            assert memory is not None
            why = f"memory pattern unknown ({memory.evidence})"
        elif isinstance(oom, Unknown):
            why = f"OOM kills unknown ({oom.reason})"
        else:
            why = f"{oom} OOM kills in the window"
        parts.append(f"memory left alone: {why}")
    if cpu_containers or memory_containers:
        which = ([f"{name} CPU" for name in cpu_containers] + [f"{name} memory" for name in memory_containers]
                 if named else [])
        parts.append(f"under {over:.0%}{' (' + ', '.join(which) + ')' if which else ''} with the SLO met all window")
        return ProvisioningFinding("Over", "; ".join(parts), cpu_containers=cpu_containers,
                                   memory_containers=memory_containers)
    return ProvisioningFinding("Right", "; ".join(parts))


def _find_cpu_bound(
    containers: list[ContainerResources], usages: dict[str, tuple[str, Signal]],
    throttling: dict[str, tuple[str, Signal]], *, named: bool, thresholds: Thresholds,
) -> tuple[list[str], list[str]]:
    """The containers CPU-bound on their own limit (throttled, or usage near it), and the evidence."""
    bound_containers: list[str] = []
    evidence: list[str] = []
    for container in containers:
        label = format_container_prefix(container.name, named=named)
        _, throttled = throttling.get(container.name, ("", Unknown("no CPU limit")))
        _, usage = usages[container.name]
        limit = container.cpu_limit_millicores
        bound = False
        if isinstance(throttled, Series) and throttled.mean > thresholds.cpu_bound_throttled_ratio:
            bound = True
            evidence.append(f"{label}throttled {throttled.mean:.0%} of CFS periods "
                            f"> {thresholds.cpu_bound_throttled_ratio:.0%}")
        usage_q95 = usage.quantile(0.95) if isinstance(usage, Series) else None
        if usage_q95 is not None and limit and usage_q95 > thresholds.cpu_bound_limit_fraction * limit:
            bound = True
            evidence.append(f"{label}CPU p95 {usage_q95:.0f}m = {usage_q95 / limit:.0%} of limit "
                            f"> {thresholds.cpu_bound_limit_fraction:.0%}")
        if bound:
            bound_containers.append(container.name)
    return bound_containers, evidence


def _find_memory_bound(
    containers: list[ContainerResources], working_sets: dict[str, tuple[str, Signal]], live: LiveConfig, *,
    named: bool, thresholds: Thresholds,
) -> tuple[list[str], list[str]]:
    """The containers memory-bound (OOMKilled, or their working set near their own request), and the evidence."""
    oom = live.oom_kills_in_window
    bound_containers: list[str] = []
    evidence: list[str] = []
    if isinstance(oom, int) and oom > 0:
        killed = live.oom_kills_by_container
        if killed is None:
            # The pod's count only: every judged container gets the raise (a sidecar's kill costs the main
            # container memory it may not need, where the other way round would leave the killed one as it is).
            bound_containers = [c.name for c in containers]
            evidence.append(f"{oom} OOMKilled in the window")
        else:
            bound_containers = [c.name for c in containers if killed.get(c.name, 0) > 0]
            others = sorted(name for name, kills in killed.items() if kills > 0 and name not in bound_containers)
            for name in bound_containers:
                evidence.append(f"{format_container_prefix(name, named=named)}{killed[name]} OOMKilled in the window")
            if others:
                evidence.append(f"{', '.join(others)} OOMKilled in the window (not sized by this profile)")
    for container in containers:
        _, working_set = working_sets[container.name]
        request_bytes = container.memory_request_bytes or 0
        if (isinstance(working_set, Series)
                and working_set.maximum > thresholds.memory_bound_request_fraction * request_bytes):
            if container.name not in bound_containers:
                bound_containers.append(container.name)
            evidence.append(f"{format_container_prefix(container.name, named=named)}memory peak "
                            f"{working_set.maximum / request_bytes:.0%} of request "
                            f"> {thresholds.memory_bound_request_fraction:.0%}")
    return bound_containers, evidence


def _find_under(
    containers: list[ContainerResources], readings: dict[str, tuple[str, Signal]], *,
    request: Callable[[ContainerResources], int | None], what: str, named: bool, fraction: float,
) -> tuple[list[str], list[str]]:
    """The containers whose peak of the window is under ``fraction`` of their own request, and each one's
    share as a line of evidence."""
    under: list[str] = []
    lines: list[str] = []
    for container in containers:
        _, reading = readings[container.name]
        assert isinstance(reading, Series)  # an unknown one made the finding Unknown before this
        share = reading.maximum / (request(container) or 1)
        lines.append(f"{format_container_prefix(container.name, named=named)}{what} peak {share:.0%} of request")
        if share < fraction:
            under.append(container.name)
    return under, lines


def classify_pool(profile: PerformanceProfileSpec, observations: Observations) -> Finding:
    pool_live = observations.live.pool
    if not profile.pool.enabled or pool_live is None:
        return Finding("Off", "pool not tuned" if not profile.pool.enabled else "no live pool configuration")
    demand = signals.compute_pool_demand_connections(observations)
    if isinstance(demand, Unknown):
        blocked = tuple(
            name for name, signal in (("pool_server_active", observations.pool_server_active),
                                      ("pool_client_waiting", observations.pool_client_waiting))
            if isinstance(signal, Unknown)
        )
        return Finding(UNKNOWN, demand.reason, blocked)
    per_pooler = demand.maximum / max(1, pool_live.pooler_replicas)
    for tier in POOL_TIERS:
        if per_pooler <= tier.default_pool_size:
            return Finding(tier.name, f"peak demand {per_pooler:.0f} connections per pooler <= {tier.name} "
                                      f"{tier.default_pool_size}")
    peak = POOL_TIERS[-1]
    return Finding(peak.name, f"peak demand {per_pooler:.0f} connections per pooler > {peak.default_pool_size}")

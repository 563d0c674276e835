"""What the engine is told about a workload: signal series over the window, and its live configuration.

This is the contract between the readers (the Prometheus reader in ``perfpilot.observe``, the simulator
in ``perfpilot.sim``) and the pure engine. A signal is either a ``Series`` of samples or an ``Unknown``
carrying the reason — never a zero standing in for "no data" (KEDA's ``ignoreNullValues`` trap).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from perfpilot.api.spec import DEFAULT_PEAK_WINDOW_SECONDS
from perfpilot.api.status import ContainerResources, ScalingRules


@dataclass(frozen=True)
class Unknown:
    """A signal that could not be read, and why (``"no series"``, ``"stale: last sample 4m old"``…)."""

    reason: str


@dataclass(frozen=True)
class Series:
    """Samples of one signal over the observation window, oldest first; timestamps in Unix seconds."""

    timestamps_seconds: tuple[float, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.timestamps_seconds) != len(self.values):
            raise ValueError("a series needs one timestamp per value")
        if not self.values:
            raise ValueError("an empty series is Unknown, not a Series")
        if any(not math.isfinite(value) for value in self.values):
            raise ValueError("NaN or infinite samples make a signal Unknown, not a Series")

    @classmethod
    def of(cls, values: tuple[float, ...] | list[float], *, end_seconds: float, step_seconds: float) -> Series:
        """Regularly spaced samples ending at ``end_seconds`` (handy for tests and the simulator)."""
        count = len(values)
        stamps = tuple(end_seconds - step_seconds * (count - 1 - index) for index in range(count))
        return cls(stamps, tuple(float(value) for value in values))

    @property
    def latest(self) -> float:
        return self.values[-1]

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values)

    @property
    def maximum(self) -> float:
        return max(self.values)

    @property
    def minimum(self) -> float:
        return min(self.values)

    @property
    def span_seconds(self) -> float:
        return self.timestamps_seconds[-1] - self.timestamps_seconds[0]

    def since(self, start_seconds: float) -> Series | Unknown:
        """The samples at or after ``start_seconds``; Unknown when there are none."""
        pairs = [(t, v) for t, v in zip(self.timestamps_seconds, self.values, strict=True) if t >= start_seconds]
        if not pairs:
            return Unknown(f"no samples since {start_seconds:.0f}")
        return Series(tuple(t for t, _ in pairs), tuple(v for _, v in pairs))

    def quantile(self, q: float) -> float:
        """Linear-interpolated quantile, 0 <= q <= 1 (the same method as numpy's default)."""
        ordered = sorted(self.values)
        position = q * (len(ordered) - 1)
        low = math.floor(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


Signal = Series | Unknown
Peak = float | Unknown  # the largest value of a signal over guardrails.peakWindow
# The span of peak_request_rate_rise_per_second: the rate now minus the rate this long before. Five minutes
# covers a pod's start-up and the HPA's reaction to it; the flash-crowd threshold uses the same span. The
# reader's query is built with it, so it is a constant, not a threshold.
RISE_SPAN_SECONDS = 300


def _not_read() -> Unknown:
    return Unknown("not read")


@dataclass(frozen=True)
class HpaLive:
    """The HPA as the API server has it now (spec and status)."""

    name: str
    min_replicas: int
    max_replicas: int
    current_replicas: int
    desired_replicas: int
    cpu_target_percent: int | None
    memory_target_percent: int | None
    scale_up: ScalingRules | None = None  # None: the Kubernetes default behaviour
    scale_down: ScalingRules | None = None


@dataclass(frozen=True)
class PoolLive:
    """The pgBouncer pool as configured now, and how many pooler replicas share the server budget."""

    default_pool_size: int
    reserve_pool_size: int
    pooler_replicas: int = 1
    # The workloads whose pods mount a ConfigMap pool's ini (empty: a Pooler, or not known): the pool size
    # served is read from their pods alone, not from another pgBouncer of the namespace serving the database.
    pooler_workloads: tuple[str, ...] = ()


@dataclass(frozen=True)
class LiveConfig:
    """Configuration read from the Kubernetes API (never from Prometheus)."""

    hpa: HpaLive | None
    containers: tuple[ContainerResources, ...]
    pool: PoolLive | None = None
    oom_kills_in_window: int | Unknown = field(default_factory=lambda: Unknown("not read"))
    # The same kills by container name, where the reader tells them apart (None: the pod's count only).
    oom_kills_by_container: Mapping[str, int] | None = field(default=None, hash=False)
    paused: bool = False  # perfpilot.io/paused on the profile or on the workload
    # The workload's rollout has not finished (observedGeneration < generation, or updated/available
    # replicas below the desired count): a change of resources now would stack a second rollout on it.
    rollout_in_progress: bool = False
    # Why a new pod template would reach no pod by itself, and what would let it ("" when it rolls out): a
    # StatefulSet with updateStrategy OnDelete (its pods take it once deleted) or a partition at or above its
    # replicas (once the partition is lowered), a paused Deployment (once resumed). perfpilot does neither.
    template_held_by: str = ""

    def __post_init__(self) -> None:
        killed = self.oom_kills_by_container
        if killed is not None and killed and sum(killed.values()) != self.oom_kills_in_window:
            raise ValueError(f"OOM kills by container {dict(killed)} do not add up to the pod's "
                             f"{self.oom_kills_in_window}")

    @property
    def cpu_request_millicores_per_pod(self) -> int | None:
        """Sum of the containers' CPU requests, as the HPA divides by; None when any is unset."""
        return _pod_total([c.cpu_request_millicores for c in self.containers])

    @property
    def memory_request_bytes_per_pod(self) -> int | None:
        """Sum of the containers' memory requests; None when any is unset."""
        return _pod_total([c.memory_request_bytes for c in self.containers])

    @property
    def memory_limit_bytes_per_pod(self) -> int | None:
        """Sum of the containers' memory limits; None when any is unset."""
        return _pod_total([c.memory_limit_bytes for c in self.containers])


def _pod_total(values: list[int | None]) -> int | None:
    """A pod's total over its containers; None when any container leaves it unset (no total to speak of)."""
    if not values or any(value is None for value in values):
        return None
    return sum(value for value in values if value is not None)


@dataclass(frozen=True)
class Observations:
    """One evaluation's input: every signal over ``[at - window_seconds, at]`` and the live config."""

    at: datetime
    window_seconds: float
    step_seconds: float
    # Each rate-based sample (p95, request rate, CPU) averages the rate window before it: a sample within one
    # window after a change still holds what came before it.
    rate_window_seconds: float
    latency_p95_seconds: Signal
    request_rate_per_second: Signal
    error_ratio: Signal
    cpu_usage_millicores_per_pod: Signal  # mean over the workload's pods at each step
    cpu_throttled_ratio: Signal  # throttled CFS periods / periods, worst pod at each step
    memory_working_set_bytes_per_pod: Signal  # largest pod at each step
    replicas: Signal  # pods with CPU series at each step
    pool_server_active: Signal
    pool_client_waiting: Signal
    pool_max_wait_seconds: Signal
    live: LiveConfig
    # The pool size pgBouncer serves for the database (the exporter's SHOW DATABASES), the smallest and the
    # largest over the pooler pods at each step: the ConfigMap's ini is served only once something reloads it.
    # Unknown (an exporter without the series, the simulator) leaves the ConfigMap's size taken as served.
    pool_served_size_min: Signal = field(default_factory=_not_read)
    pool_served_size_max: Signal = field(default_factory=_not_read)
    # Peaks over guardrails.peakWindow (a week by default), so a shrink decided at night or on a quiet day
    # still covers the busy one. Unknown (the default) blocks every shrink that needs it.
    peak_window_seconds: float = DEFAULT_PEAK_WINDOW_SECONDS
    peak_cpu_usage_millicores_total: Peak = field(default_factory=_not_read)  # sum over the workload's pods
    # Seconds of the peak window with a CPU reading for the workload: how much history the peaks were read from.
    cpu_history_seconds: Peak = field(default_factory=_not_read)
    peak_memory_working_set_bytes_per_pod: Peak = field(default_factory=_not_read)  # largest pod
    peak_request_rate_per_second: Peak = field(default_factory=_not_read)
    # The largest rise of the request rate within RISE_SPAN_SECONDS: what the running pods must carry while
    # new ones start.
    peak_request_rate_rise_per_second: Peak = field(default_factory=_not_read)
    peak_pool_demand_connections: Peak = field(default_factory=_not_read)  # server active + clients waiting
    # Seconds of the peak window with a pool-demand reading: how much history the pool peak was read from.
    pool_history_seconds: Peak = field(default_factory=_not_read)
    # Per container of the pod template (by name): a container is bound or over-provisioned against its own
    # request and limit (DESIGN section 4), not the pod's total, which lets an idle sidecar's request hide a
    # main container at its own (and a cut sized on it could take that container under its usage).
    # That container's largest working set among the workload's pods at each step, and over the peak window:
    memory_working_set_bytes_by_container: Mapping[str, Signal] = field(default_factory=dict, hash=False)
    peak_memory_working_set_bytes_by_container: Mapping[str, Peak] = field(default_factory=dict, hash=False)
    # Its CPU usage averaged over the pods, and its throttled share of CFS periods in the worst pod:
    cpu_usage_millicores_by_container: Mapping[str, Signal] = field(default_factory=dict, hash=False)
    cpu_throttled_ratio_by_container: Mapping[str, Signal] = field(default_factory=dict, hash=False)

    # Each find_container_* gives the signal's name and one container's reading: its own series, or, in a pod
    # of that one container, the pod's (the same series).

    def find_container_working_set(self, container: str) -> tuple[str, Signal]:
        by = self.memory_working_set_bytes_by_container
        return _reading_for(
            container, self.live, by=("memory_working_set_bytes_by_container", by),
            pod=("memory_working_set_bytes_per_pod", self.memory_working_set_bytes_per_pod),
        )

    def find_container_peak_working_set(self, container: str) -> tuple[str, Peak]:
        by = self.peak_memory_working_set_bytes_by_container
        return _reading_for(
            container, self.live, by=("peak_memory_working_set_bytes_by_container", by),
            pod=("peak_memory_working_set_bytes_per_pod", self.peak_memory_working_set_bytes_per_pod),
        )

    def find_container_cpu_usage(self, container: str) -> tuple[str, Signal]:
        return _reading_for(
            container, self.live, by=("cpu_usage_millicores_by_container", self.cpu_usage_millicores_by_container),
            pod=("cpu_usage_millicores_per_pod", self.cpu_usage_millicores_per_pod),
        )

    def find_container_throttled_ratio(self, container: str) -> tuple[str, Signal]:
        return _reading_for(
            container, self.live, by=("cpu_throttled_ratio_by_container", self.cpu_throttled_ratio_by_container),
            pod=("cpu_throttled_ratio", self.cpu_throttled_ratio),
        )

    @classmethod
    def of_signals(
        cls, *, at: datetime, window_seconds: float, step_seconds: float, rate_window_seconds: float,
        live: LiveConfig, signals: Mapping[str, Signal], peak_window_seconds: float = DEFAULT_PEAK_WINDOW_SECONDS,
        peaks: Mapping[str, Peak] | None = None,
        signals_by_container: Mapping[str, Mapping[str, Signal]] | None = None,
        peaks_by_container: Mapping[str, Mapping[str, Peak]] | None = None,
    ) -> Observations:
        """Observations from signals (and peaks) keyed by field name; a missing one is Unknown("not read"),
        a missing per-container one empty (the pod's is read for a pod of one container)."""
        def signal(name: str) -> Signal:
            return signals.get(name, _not_read())

        def peak(name: str) -> Peak:
            return (peaks or {}).get(name, _not_read())

        def by_container(name: str) -> dict[str, Signal]:
            return dict((signals_by_container or {}).get(name, {}))

        return cls(
            at=at, window_seconds=window_seconds, step_seconds=step_seconds,
            rate_window_seconds=rate_window_seconds, live=live,
            latency_p95_seconds=signal("latency_p95_seconds"),
            request_rate_per_second=signal("request_rate_per_second"),
            error_ratio=signal("error_ratio"),
            cpu_usage_millicores_per_pod=signal("cpu_usage_millicores_per_pod"),
            cpu_throttled_ratio=signal("cpu_throttled_ratio"),
            memory_working_set_bytes_per_pod=signal("memory_working_set_bytes_per_pod"),
            replicas=signal("replicas"),
            pool_server_active=signal("pool_server_active"),
            pool_client_waiting=signal("pool_client_waiting"),
            pool_max_wait_seconds=signal("pool_max_wait_seconds"),
            pool_served_size_min=signal("pool_served_size_min"),
            pool_served_size_max=signal("pool_served_size_max"),
            peak_window_seconds=peak_window_seconds,
            peak_cpu_usage_millicores_total=peak("peak_cpu_usage_millicores_total"),
            cpu_history_seconds=peak("cpu_history_seconds"),
            pool_history_seconds=peak("pool_history_seconds"),
            peak_memory_working_set_bytes_per_pod=peak("peak_memory_working_set_bytes_per_pod"),
            peak_request_rate_per_second=peak("peak_request_rate_per_second"),
            peak_request_rate_rise_per_second=peak("peak_request_rate_rise_per_second"),
            peak_pool_demand_connections=peak("peak_pool_demand_connections"),
            memory_working_set_bytes_by_container=by_container("memory_working_set_bytes_by_container"),
            cpu_usage_millicores_by_container=by_container("cpu_usage_millicores_by_container"),
            cpu_throttled_ratio_by_container=by_container("cpu_throttled_ratio_by_container"),
            peak_memory_working_set_bytes_by_container=dict(
                (peaks_by_container or {}).get("peak_memory_working_set_bytes_by_container", {})),
        )


_Reading = TypeVar("_Reading", Signal, Peak)


def _reading_for(container: str, live: LiveConfig, *, by: tuple[str, Mapping[str, _Reading]],
                 pod: tuple[str, _Reading]) -> tuple[str, _Reading]:
    """(signal name, reading) of one container: its own (``by``), else the pod's (``pod``) when the pod has
    that one container only (the same series, read by another query: it stands in when the container's is
    missing or failed), else Unknown."""
    by_name, by_container = by
    only = len(live.containers) == 1 and live.containers[0].name == container
    own = by_container.get(container)
    if only and (own is None or (isinstance(own, Unknown) and not isinstance(pod[1], Unknown))):
        return pod
    return by_name, own if own is not None else Unknown(f"no series for container {container}")

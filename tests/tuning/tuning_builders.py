"""Small builders for the engine's inputs: a healthy, steady service that needs no change by default.

Every test changes only what it is about, so the default must be quiet: p95 350ms against a 500ms SLO
(not breached, not low enough to relax a target), steady 100 req/s, CPU at 70% of a 1000m request
against a 70% target, memory at ~59% of 1Gi, no throttling, the guide's Moderate/Moderate behaviour,
and a Normal 20/10 pool at 50% use.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from perfpilot.api.spec import DEFAULT_PEAK_WINDOW_SECONDS, PerformanceProfileSpec
from perfpilot.api.status import ContainerResources, ScalingPolicy, ScalingRules, TuningState
from perfpilot.tuning.observations import HpaLive, LiveConfig, Observations, Peak, PoolLive, Series, Signal, Unknown

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WINDOW_SECONDS = 1800.0
STEP_SECONDS = 60.0
RATE_WINDOW_SECONDS = 120.0  # the reader's default
SAMPLES = int(WINDOW_SECONDS / STEP_SECONDS) + 1
MI = 2**20
GI = 2**30

MODERATE_UP = ScalingRules(
    stabilization_window_seconds=0, policies=[ScalingPolicy(type="Percent", value=50, period_seconds=30)]
)
MODERATE_DOWN = ScalingRules(
    stabilization_window_seconds=300, policies=[ScalingPolicy(type="Percent", value=10, period_seconds=60)]
)


def series(values: float | list[float], *, at: datetime = NOW, count: int = SAMPLES) -> Series:
    """A series ending at ``at``, one sample per minute; a number repeats over the whole window."""
    samples = [float(values)] * count if isinstance(values, int | float) else [float(v) for v in values]
    return Series.of(samples, end_seconds=at.timestamp(), step_seconds=STEP_SECONDS)


def ramp(start: float, end: float, *, count: int = SAMPLES) -> list[float]:
    return [start + (end - start) * index / (count - 1) for index in range(count)]


def profile(**overrides: Any) -> PerformanceProfileSpec:
    """A profile from API-shaped (camelCase) overrides merged into a valid Auto profile with a pool."""
    base: dict[str, Any] = {
        "targetRef": {"kind": "Deployment", "name": "api"},
        "mode": "Auto",
        "pool": {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}}},
    }
    return PerformanceProfileSpec.model_validate(_merge(base, overrides))


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def hpa(**overrides: Any) -> HpaLive:
    base = HpaLive(
        name="api", min_replicas=2, max_replicas=10, current_replicas=4, desired_replicas=4,
        cpu_target_percent=70, memory_target_percent=80, scale_up=MODERATE_UP, scale_down=MODERATE_DOWN,
    )
    return replace(base, **overrides)


def container(name: str = "app", **overrides: Any) -> ContainerResources:
    values: dict[str, Any] = {
        "name": name, "cpu_request_millicores": 1000, "cpu_limit_millicores": 2000,
        "memory_request_bytes": GI, "memory_limit_bytes": 2 * GI,
    }
    values.update(overrides)
    return ContainerResources(**values)


def live(**overrides: Any) -> LiveConfig:
    base = LiveConfig(
        hpa=hpa(), containers=(container(),), pool=PoolLive(default_pool_size=20, reserve_pool_size=10),
        oom_kills_in_window=0,
    )
    return replace(base, **overrides)


def observations(*, at: datetime = NOW, **overrides: Signal | LiveConfig | Peak) -> Observations:
    base = Observations(
        at=at,
        window_seconds=WINDOW_SECONDS,
        step_seconds=STEP_SECONDS,
        rate_window_seconds=RATE_WINDOW_SECONDS,
        latency_p95_seconds=series(0.35, at=at),
        request_rate_per_second=series(100, at=at),
        error_ratio=series(0.001, at=at),
        cpu_usage_millicores_per_pod=series(700, at=at),
        cpu_throttled_ratio=series(0.0, at=at),
        memory_working_set_bytes_per_pod=series(600 * MI, at=at),
        replicas=series(4, at=at),
        pool_server_active=series(10, at=at),
        pool_client_waiting=series(0, at=at),
        pool_max_wait_seconds=series(0, at=at),
        live=live(),
        # A workload and a pooler Prometheus has seen for the whole week.
        cpu_history_seconds=DEFAULT_PEAK_WINDOW_SECONDS,
        pool_history_seconds=DEFAULT_PEAK_WINDOW_SECONDS,
    )
    return replace(base, **overrides)


def unknown(reason: str = "no series") -> Unknown:
    return Unknown(reason)


def minutes(count: float) -> timedelta:
    return timedelta(minutes=count)


EMPTY_STATE = TuningState()


def pool_observations(*, active: float | list[float], waiting: float | list[float] = 0,
                      default: int = 20, reserve: int = 10, replicas: int = 1,
                      peak_demand: float | Unknown | None = None) -> Observations:
    """Pool signals; the peak-window demand defaults to the window's own peak (a quiet day)."""
    active_series, waiting_series = series(active), series(waiting)
    if peak_demand is None:
        peak_demand = active_series.maximum + waiting_series.maximum
    return replace(observations(
        pool_server_active=active_series, pool_client_waiting=waiting_series,
        live=live(pool=PoolLive(default_pool_size=default, reserve_pool_size=reserve, pooler_replicas=replicas)),
    ), peak_pool_demand_connections=peak_demand)

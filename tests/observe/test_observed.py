"""status.observed: the latest value of each signal, or null and why (observe/observed.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from perfpilot.api.spec import PerformanceProfile
from perfpilot.api.status import ContainerResources, TuningState
from perfpilot.commands.plan import plan_text
from perfpilot.observe.observed import observed_status
from perfpilot.tuning.engine import decide
from perfpilot.tuning.observations import LiveConfig, Observations, Series, Unknown

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _series(value: float) -> Series:
    return Series.of([value] * 3, end_seconds=AT.timestamp(), step_seconds=60)


def test_a_containers_own_unknown_series_is_named_with_the_container_and_its_reason() -> None:
    # A provisioning blocked by one container's series must say which and why, not only the signal's name.
    live = LiveConfig(hpa=None, containers=(
        ContainerResources(name="app", cpu_request_millicores=1000, cpu_limit_millicores=2000,
                           memory_request_bytes=2**30),
        ContainerResources(name="sql-proxy", cpu_request_millicores=100, cpu_limit_millicores=200,
                           memory_request_bytes=2**31)))
    observations = Observations.of_signals(
        at=AT, window_seconds=1800, step_seconds=60, rate_window_seconds=120, live=live,
        signals={"cpu_usage_millicores_per_pod": _series(500), "memory_working_set_bytes_per_pod": _series(2**29)},
        signals_by_container={
            "cpu_usage_millicores_by_container": {"app": _series(450), "sql-proxy": _series(50)},
            "cpu_throttled_ratio_by_container": {"app": _series(0.0),
                                                 "sql-proxy": Unknown("no series for shop/api container sql-proxy")},
            "memory_working_set_bytes_by_container": {"app": _series(2**28), "sql-proxy": _series(2**28)},
        },
    )
    observed = observed_status(observations)
    assert observed.unknown["cpuThrottledRatioByContainer[sql-proxy]"] == "no series for shop/api container sql-proxy"
    assert not any(key.endswith("[app]") for key in observed.unknown)
    assert observed.cpu_utilization_percent == pytest.approx(45.4545, rel=1e-4)  # 500m of 1100m requested
    # perfpilot plan prints it among the observed signals.
    profile = PerformanceProfile.model_validate({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"targetRef": {"kind": "Deployment", "name": "api"}}})
    decision = decide(profile.spec, observations, TuningState(), AT)
    text = plan_text(profile=profile, observations=observations, observed=observed,
                     classification=decision.classification, decision=decision, url="http://prometheus:9090")
    assert "  cpuThrottledRatioByContainer[sql-proxy] unknown (no series for shop/api container sql-proxy)" in text

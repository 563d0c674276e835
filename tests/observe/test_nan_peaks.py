"""NaN samples in the peaks, on a real Prometheus: an exporter that writes NaN (a gauge it could not read).

Two namespaces of an hour each, a workload and its pgBouncer: in ``allnan`` the working set and the pooler's
server-active gauge are NaN at every scrape; in ``somenan`` only for the first half hour, then 300 MiB and 6
connections. ``max_over_time`` passes over NaN unless every point is NaN, so the second has a peak and the
first has none: a NaN peak must be Unknown, never read as a number (NaN compares false with every
threshold, so a cut checked against it would pass).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prom_scenarios import AT_SECONDS, COMMUNITY_NAMES, MIB, SCRAPE_SECONDS, START_SECONDS
from promharness import OpenMetricsWriter, PrometheusServer, running_prometheus

from perfpilot.api.spec import PerformanceProfile
from perfpilot.api.status import ContainerResources
from perfpilot.observe.reader import PrometheusSettings
from perfpilot.observe.snapshot import ProfileTarget, fetch_observations
from perfpilot.tuning.observations import LiveConfig, Observations, Unknown

pytestmark = pytest.mark.integration

AT = datetime.fromtimestamp(AT_SECONDS, tz=UTC)
HALF_HOUR_SECONDS = 1800
APP_POD = "api-7d9f8b6c4d-x2k9z"
POOLER_POD = "pgbouncer-6c8d9f7b5-k2j4m"
LIVE = LiveConfig(hpa=None, containers=(
    ContainerResources(name="app", cpu_request_millicores=500, memory_request_bytes=512 * MIB),))


def _written(t: int, *, nan_until_seconds: int, value: float) -> float:
    return math.nan if t < nan_until_seconds else value


def _cluster() -> OpenMetricsWriter:
    writer = OpenMetricsWriter()
    active_name, waiting_name, wait_name = COMMUNITY_NAMES
    for namespace, nan_until in (("allnan", AT_SECONDS + 1), ("somenan", START_SECONDS + HALF_HOUR_SECONDS)):
        cpu_seconds = 5000.0
        for t in range(START_SECONDS, AT_SECONDS + 1, SCRAPE_SECONDS):
            cpu_seconds += 0.3 * SCRAPE_SECONDS
            container = {"namespace": namespace, "pod": APP_POD, "container": "app", "job": "kubelet"}
            writer.counter("container_cpu_usage_seconds_total", container, at_seconds=t, value=cpu_seconds)
            writer.gauge("container_memory_working_set_bytes", container, at_seconds=t,
                         value=_written(t, nan_until_seconds=nan_until, value=300.0 * MIB))
            pool = {"namespace": namespace, "pod": POOLER_POD, "database": "app", "user": "app"}
            writer.gauge(active_name, pool, at_seconds=t, value=_written(t, nan_until_seconds=nan_until, value=6.0))
            writer.gauge(waiting_name, pool, at_seconds=t, value=0.0)
            writer.gauge(wait_name, pool, at_seconds=t, value=0.0)
    return writer


@pytest.fixture(scope="module")
def nan_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with running_prometheus(workdir=tmp_path_factory.mktemp("prometheus-nan"),
                            openmetrics=_cluster().render()) as server:
        yield server


def _target(namespace: str) -> ProfileTarget:
    profile = PerformanceProfile.model_validate({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": "api", "namespace": namespace},
        "spec": {"targetRef": {"kind": "Deployment", "name": "api"},
                 "guardrails": {"window": "30m", "interval": "60s", "peakWindow": "1h"},
                 "pool": {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}, "database": "app"}}},
    })
    return ProfileTarget(profile, LIVE)


@pytest.fixture(scope="module")
def observed(nan_prometheus: PrometheusServer) -> dict[str, Observations]:
    settings = PrometheusSettings(url=nan_prometheus.url, step_seconds=60, rate_window_seconds=120)
    cycle = fetch_observations([_target("allnan"), _target("somenan")], at=AT, settings=settings)
    return {namespace: cycle[(namespace, "api")] for namespace in ("allnan", "somenan")}


def test_a_peak_of_nan_at_every_scrape_is_unknown_never_a_number(observed: dict[str, Observations]) -> None:
    allnan = observed["allnan"]
    for name in ("peak_memory_working_set_bytes_per_pod", "peak_pool_demand_connections"):
        peak = getattr(allnan, name)
        assert isinstance(peak, Unknown), (name, peak)
        assert peak.reason.startswith("no finite peak for "), (name, peak)
    by_container = allnan.peak_memory_working_set_bytes_by_container["app"]
    assert isinstance(by_container, Unknown) and by_container.reason.startswith("no finite peak"), by_container
    # The CPU, read from a counter with real values, has its peak: only what was NaN is unknown.
    assert allnan.peak_cpu_usage_millicores_total == pytest.approx(300, rel=0.01)


def test_a_peak_over_nan_and_numbers_is_the_largest_number(observed: dict[str, Observations]) -> None:
    somenan = observed["somenan"]
    assert somenan.peak_memory_working_set_bytes_per_pod == 300.0 * MIB
    assert somenan.peak_memory_working_set_bytes_by_container["app"] == 300.0 * MIB
    assert somenan.peak_pool_demand_connections == 6.0

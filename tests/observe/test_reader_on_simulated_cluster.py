"""The Prometheus reader on data generated from the simulator's cluster model.

Fifty minutes of the bundled WorldCup98 slice (16:00-16:50 of the trace, where the load more than triples)
run through ``perfpilot.sim.cluster`` for two workloads, scraped every 15 s by the simulator's own
``sim.prometheus.Prometheus`` and written out as OpenMetrics (``sim_openmetrics.py``):

- ``shop/api``: six pods of 500m/1000m CPU (throttled as the load rises), a pgBouncer with the
  prometheus-community exporter's names;
- ``billing/checkout``: three pods scaled to six at minute 25, a 40 MiB/h memory climb, a CloudNativePG
  Pooler of 8 connections with no reserve, pushed past saturation: clients wait, requests time out.

A separate Prometheus (own port and data dir) is backfilled with them; the production ``fetch_observations``
reads every signal at the run's end and each is compared, step by step, with the ``Observations`` the
simulator computed from the same samples at the same time.

The simulator's ``rate()`` is Prometheus 2.42's ``extrapolatedRate`` (``sim.prometheus.extrapolated_rate``)
and the files hold its samples at the instants it took them, which fall on the reader's steps and on every
range's start. So every signal of every workload at every step must equal the simulator's own value to
floating-point rounding (a relative 1e-9) — also where the extrapolation does not cancel: a pod started by
the scale-up (a series beginning inside the range), a counter leaving zero inside the window (the timeouts,
the CFS throttled periods). The one exception is CloudNativePG's oldest wait, written as whole seconds
plus integer microseconds (to half a microsecond).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from promharness import OpenMetricsWriter, running_prometheus
from sim_openmetrics import LATENCY_HISTOGRAM, REQUESTS_TOTAL, SimRun, SimWorkload, run_workload

from perfpilot.api.spec import PerformanceProfile, PoolExporter
from perfpilot.api.status import ContainerResources, PoolSize
from perfpilot.observe.presets import CADVISOR
from perfpilot.observe.promql import DEPLOYMENT_POD_PATTERN, POOL_SIGNALS, STATEFULSET_POD_PATTERN, SignalName
from perfpilot.observe.reader import PrometheusSettings
from perfpilot.observe.snapshot import ProfileTarget, fetch_observations
from perfpilot.sim.cluster import MIB, Cluster, ClusterParams
from perfpilot.sim.trace import bundled_trace_path, load_trace
from perfpilot.tuning.observations import LiveConfig, Observations, PoolLive, Series

pytestmark = pytest.mark.integration

WINDOW_SECONDS = 1800
STEP_SECONDS = 60
RATE_WINDOW_SECONDS = 120
TRACE = load_trace(bundled_trace_path()).window(start_seconds=16 * 3600, hours=50 / 60)

SHOP = SimWorkload(
    namespace="shop", deployment="api", pooler="pgbouncer", exporter=PoolExporter.PROMETHEUS_COMMUNITY,
    resources=ContainerResources(name="app", cpu_request_millicores=500, cpu_limit_millicores=1000,
                                 memory_request_bytes=512 * MIB, memory_limit_bytes=1024 * MIB),
    pool=PoolSize(default_pool_size=20, reserve_pool_size=10), replicas=6,
    rate_factor=65.0 / TRACE.peak_per_second,
)
BILLING = SimWorkload(
    namespace="billing", deployment="checkout", pooler="checkout-pooler", exporter=PoolExporter.CLOUDNATIVE_PG,
    resources=ContainerResources(name="app", cpu_request_millicores=1000, cpu_limit_millicores=2000,
                                 memory_request_bytes=1024 * MIB, memory_limit_bytes=2048 * MIB),
    pool=PoolSize(default_pool_size=8, reserve_pool_size=0), replicas=3,
    params=ClusterParams(memory_growth_bytes_per_hour=40.0 * MIB),
    rate_factor=75.0 / TRACE.peak_per_second, scale_up=(25, 6),
)
WORKLOADS = (SHOP, BILLING)

# The counters each rate signal is computed from (container="app": the pod cgroup is not counted).
COUNTERS: dict[SignalName, tuple[str, ...]] = {
    SignalName.LATENCY_P95: (f"{LATENCY_HISTOGRAM}_bucket",),
    SignalName.REQUEST_RATE: (REQUESTS_TOTAL,),
    SignalName.ERROR_RATIO: (REQUESTS_TOTAL,),
    SignalName.CPU_USAGE: (CADVISOR.cpu_usage_seconds_total,),
    SignalName.CPU_THROTTLED: (CADVISOR.cfs_periods_total, CADVISOR.cfs_throttled_periods_total),
}
# CloudNativePG's oldest wait is whole seconds plus integer microseconds: half a microsecond of rounding.
MAX_WAIT_SPLIT_TOLERANCE_SECONDS = 0.5e-6


@dataclass
class Simulated:
    writer: OpenMetricsWriter
    runs: dict[str, SimRun]  # by namespace
    at_seconds: int
    reader: dict[str, Observations]  # by namespace, from the real Prometheus
    simulator: dict[str, Observations]  # by namespace, the simulator's own


def _profile(workload: SimWorkload) -> PerformanceProfile:
    pgbouncer: dict[str, object] = {"database": "app"}
    if workload.exporter is PoolExporter.CLOUDNATIVE_PG:
        pgbouncer["poolerRef"] = {"name": workload.pooler}
    else:
        pgbouncer["configMapRef"] = {"name": "pgbouncer"}
    return PerformanceProfile.model_validate({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": workload.deployment, "namespace": workload.namespace},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": workload.deployment},
            "guardrails": {"window": f"{WINDOW_SECONDS}s", "interval": "60s"},
            "pool": {"enabled": True, "pgbouncer": pgbouncer},
        },
    })


def _live(workload: SimWorkload) -> LiveConfig:
    return LiveConfig(hpa=None, containers=(workload.resources,),
                      pool=PoolLive(workload.pool.default_pool_size, workload.pool.reserve_pool_size))


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulated]:
    writer = OpenMetricsWriter()
    runs = {w.namespace: run_workload(w, TRACE, writer) for w in WORKLOADS}
    at_seconds = runs[SHOP.namespace].end_seconds
    assert {run.end_seconds for run in runs.values()} == {at_seconds}
    workdir = tmp_path_factory.mktemp("prometheus-sim")
    with running_prometheus(workdir=workdir, openmetrics=writer.render()) as server:
        settings = PrometheusSettings(url=server.url, step_seconds=STEP_SECONDS,
                                      rate_window_seconds=RATE_WINDOW_SECONDS)
        targets = [ProfileTarget(_profile(w), _live(w)) for w in WORKLOADS]
        observed = fetch_observations(targets, at=datetime.fromtimestamp(at_seconds, tz=UTC), settings=settings)
    reader = {namespace: observed[(namespace, run.workload.deployment)] for namespace, run in runs.items()}
    simulator = {
        namespace: run.prometheus.observations(at_seconds=at_seconds, window_seconds=WINDOW_SECONDS,
                                               live=_live(run.workload))
        for namespace, run in runs.items()
    }
    yield Simulated(writer, runs, at_seconds, reader, simulator)


Points = Sequence[tuple[int, float]]


def _series(simulated: Simulated, sample: str, namespace: str) -> list[tuple[dict[str, str], Points]]:
    return [(labels, points) for labels, points in simulated.writer.series(sample)
            if labels["namespace"] == namespace and labels.get("container", "app") == "app"]


def _steps(signal: Series) -> list[int]:
    return [round(t) for t in signal.timestamps_seconds]


def _as_series(observations: Observations, signal: SignalName, source: str) -> Series:
    value = getattr(observations, signal.value)
    assert isinstance(value, Series), f"{source}: {signal.value} is {value}, expected a series"
    return value


# --- the comparison -----------------------------------------------------------------------------------

CASES = [pytest.param(w.namespace, signal, id=f"{w.namespace}-{signal.value}")
         for w in (SHOP, BILLING) for signal in SignalName]


@pytest.mark.parametrize(("namespace", "signal"), CASES)
def test_reader_returns_the_signal_the_simulator_computed_from_the_same_samples(
    simulated: Simulated, namespace: str, signal: SignalName
) -> None:
    ours = _as_series(simulated.simulator[namespace], signal, "simulator")
    read = _as_series(simulated.reader[namespace], signal, "reader")
    assert read.timestamps_seconds == ours.timestamps_seconds
    assert len(read.values) == WINDOW_SECONDS // STEP_SECONDS + 1

    tolerance = 0.0
    cnpg = simulated.runs[namespace].workload.exporter is PoolExporter.CLOUDNATIVE_PG
    if signal is SignalName.POOL_MAX_WAIT and cnpg:
        tolerance = MAX_WAIT_SPLIT_TOLERANCE_SECONDS
    mismatches = [
        f"t-{simulated.at_seconds - at}s: simulator {sim_value!r}, reader {read_value!r}"
        for at, sim_value, read_value in zip(_steps(ours), ours.values, read.values, strict=True)
        if not math.isclose(read_value, sim_value, rel_tol=1e-9, abs_tol=tolerance)
    ]
    assert not mismatches, "\n".join(mismatches)


PEAKS = ("peak_cpu_usage_millicores_total", "peak_memory_working_set_bytes_per_pod", "peak_request_rate_per_second",
         "peak_request_rate_rise_per_second", "peak_pool_demand_connections", "cpu_history_seconds",
         "pool_history_seconds")


@pytest.mark.parametrize(("namespace", "peak"), [(w.namespace, peak) for w in WORKLOADS for peak in PEAKS])
def test_reader_returns_the_peak_the_simulator_computed_from_the_same_samples(
    simulated: Simulated, namespace: str, peak: str
) -> None:
    ours, read = getattr(simulated.simulator[namespace], peak), getattr(simulated.reader[namespace], peak)
    assert isinstance(ours, float), f"simulator: {peak} is {ours}"
    assert read == pytest.approx(ours, rel=1e-9)


def test_the_simulated_run_exercises_every_signal(simulated: Simulated) -> None:
    """Guards the scenario: a comparison of constant or empty signals would prove little."""

    def values(namespace: str, signal: SignalName) -> tuple[float, ...]:
        return _as_series(simulated.simulator[namespace], signal, "simulator").values

    assert values("billing", SignalName.REPLICAS)[0] == 3 and values("billing", SignalName.REPLICAS)[-1] == 6
    assert max(values("billing", SignalName.POOL_CLIENT_WAITING)) > 0
    assert max(values("billing", SignalName.POOL_MAX_WAIT)) > 1
    assert max(values("billing", SignalName.ERROR_RATIO)) > 0
    assert max(values("billing", SignalName.LATENCY_P95)) > 2 * min(values("billing", SignalName.LATENCY_P95))
    memory = values("billing", SignalName.MEMORY_WORKING_SET)
    assert memory[-1] > memory[0]
    assert max(values("shop", SignalName.CPU_THROTTLED)) > 0.01
    assert values("shop", SignalName.ERROR_RATIO) == (0.0,) * len(values("shop", SignalName.ERROR_RATIO))
    assert not any(labels["code"].startswith("5") for labels, _ in _series(simulated, REQUESTS_TOTAL, "shop")), (
        "shop never failed: it must have no 5xx series, so its error ratio comes from the `or (0 * total)` arm"
    )
    for signal in POOL_SIGNALS:
        assert isinstance(getattr(simulated.reader["billing"], signal.value), Series)

    # Where Prometheus' extrapolation does not cancel, inside the compared window (the ranges of its steps):
    window_start = simulated.at_seconds - WINDOW_SECONDS - RATE_WINDOW_SECONDS

    def inside_window(stamp: int) -> bool:
        return window_start < stamp < simulated.at_seconds

    def leaves_zero_inside_window(namespace: str, sample: str) -> bool:
        return any(points[0][1] == 0 and inside_window(next(t for t, v in points if v > 0))
                   for _, points in _series(simulated, sample, namespace) if points[-1][1] > 0)

    new_pods = [points for _, points in _series(simulated, CADVISOR.cpu_usage_seconds_total, "billing")
                if inside_window(points[0][0])]
    assert len(new_pods) == 3, "the scale-up's pods: series that begin inside a range"
    def begins_above_zero_inside_window(namespace: str, sample: str, code: str) -> bool:
        return any(labels["code"] == code and points[0][1] > 0 and inside_window(points[0][0])
                   for labels, points in _series(simulated, sample, namespace))

    # A client library creates a labelled series at its first increment: what the first scrape saw is not
    # in any rate, here as in Prometheus.
    assert begins_above_zero_inside_window("billing", REQUESTS_TOTAL, "503"), "the timeouts begin"
    assert begins_above_zero_inside_window("billing", REQUESTS_TOTAL, "200"), "the scale-up's pods serve"
    assert leaves_zero_inside_window("shop", CADVISOR.cfs_throttled_periods_total), "the throttling begins"


def test_the_simulators_pod_names_would_map_to_another_workload() -> None:
    """Why sim_openmetrics renames pods: the reader maps ``api-0-3`` to StatefulSet ``api-0``, not ``api``."""
    pod = Cluster.started(params=ClusterParams(), resources=SHOP.resources, pool=SHOP.pool, replicas=1,
                          now_seconds=0.0).pods[0]
    assert re.fullmatch(DEPLOYMENT_POD_PATTERN, pod.name) is None
    statefulset = re.fullmatch(STATEFULSET_POD_PATTERN, pod.name)
    assert statefulset is not None and statefulset.group(1) != "api"


@pytest.mark.parametrize("namespace", [w.namespace for w in (SHOP, BILLING)])
def test_every_rate_range_starts_and_ends_on_a_scrape(simulated: Simulated, namespace: str) -> None:
    """Guards the scenario: the scrapes fall on the reader's steps and on each range's start, so 2.x's closed
    range holds nine samples of a series scraped throughout, and a rate over the half-open range (Prometheus
    3's, eight samples over 105 s) would not match the simulator's."""
    steps = _steps(_as_series(simulated.reader[namespace], SignalName.CPU_USAGE, "reader"))
    assert len(steps) == WINDOW_SECONDS // STEP_SECONDS + 1
    checked = 0
    for sample in sorted({name for names in COUNTERS.values() for name in names}):
        for labels, points in _series(simulated, sample, namespace):
            stamps = [t for t, _ in points]
            for at in steps:
                if stamps[0] <= at - RATE_WINDOW_SECONDS and at <= stamps[-1]:  # scraped throughout the range
                    inside = [t for t in stamps if at - RATE_WINDOW_SECONDS <= t <= at]
                    assert (inside[0], inside[-1], len(inside)) == (at - RATE_WINDOW_SECONDS, at, 9), (sample, labels)
                    checked += 1
    assert checked >= len(steps) * len(COUNTERS)

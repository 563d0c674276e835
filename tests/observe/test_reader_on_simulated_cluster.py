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

The simulator's ``rate()`` is ``(last - first) / (t_last - t_first)`` over the samples in ``(t - 2m, t]``,
which is Prometheus' extrapolated rate only when the extrapolation to the range's edges cancels out. Where
it does not — and only there — the reader must give what Prometheus 2.42 computes (``promql_reference``):

1. the simulator scrapes at the very instants the reader evaluates (``shop-on-steps``); Prometheus 2.x's
   range is closed, so it holds one sample more than the simulator's half-open one, and its rate is the
   increase over 120 s where the simulator's is over 105 s;
2. a series that begins inside the range (a pod started by the scale-up): Prometheus extrapolates only
   half a scrape interval toward the range's start;
3. a counter that starts from zero inside the window (the timeout counter when requests first fail, CFS
   throttled periods when throttling starts, a new pod's CPU): Prometheus never extrapolates a counter
   below zero, so it stops short of the range's start.

``shop`` and ``billing`` are therefore stamped 1 s before the tick boundary (real scrapes have a phase of
their own), which removes (1); ``shop-on-steps`` is the same run at the simulator's own instants and pins (1).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest
from promharness import OpenMetricsWriter, running_prometheus
from promql_reference import rate_at
from sim_openmetrics import LATENCY_HISTOGRAM, REQUESTS_TOTAL, SimRun, SimWorkload, run_workload

from perfpilot.api.spec import PerformanceProfile, PoolExporter
from perfpilot.api.status import ContainerResources, PoolSize
from perfpilot.observe.presets import CADVISOR
from perfpilot.observe.promql import DEPLOYMENT_POD_PATTERN, POOL_SIGNALS, STATEFULSET_POD_PATTERN, SignalName
from perfpilot.observe.reader import PrometheusSettings
from perfpilot.observe.series import histogram_quantile
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
    rate_factor=65.0 / TRACE.peak_per_second, scrape_lead_seconds=1,
)
BILLING = SimWorkload(
    namespace="billing", deployment="checkout", pooler="checkout-pooler", exporter=PoolExporter.CLOUDNATIVE_PG,
    resources=ContainerResources(name="app", cpu_request_millicores=1000, cpu_limit_millicores=2000,
                                 memory_request_bytes=1024 * MIB, memory_limit_bytes=2048 * MIB),
    pool=PoolSize(default_pool_size=8, reserve_pool_size=0), replicas=3,
    params=ClusterParams(memory_growth_bytes_per_hour=40.0 * MIB),
    rate_factor=75.0 / TRACE.peak_per_second, scale_up=(25, 6), scrape_lead_seconds=1,
)
SHOP_ON_STEPS = replace(SHOP, namespace="shop-on-steps", scrape_lead_seconds=0)
WORKLOADS = (SHOP, BILLING, SHOP_ON_STEPS)

RATE_SIGNALS = (SignalName.LATENCY_P95, SignalName.REQUEST_RATE, SignalName.ERROR_RATIO, SignalName.CPU_USAGE,
                SignalName.CPU_THROTTLED)
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


# --- what Prometheus 2.42 computes from the written samples (promql_reference.rate_at) ------------------

Points = Sequence[tuple[int, float]]


def _series(simulated: Simulated, sample: str, namespace: str) -> list[tuple[dict[str, str], Points]]:
    return [(labels, points) for labels, points in simulated.writer.series(sample)
            if labels["namespace"] == namespace and labels.get("container", "app") == "app"]


def _rate(points: Points, at: int, *, half_open: bool) -> float | None:
    if half_open:  # the simulator's range, (at - 2m, at]; also Prometheus 3's
        points = [(t, v) for t, v in points if t > at - RATE_WINDOW_SECONDS]
    return rate_at(points, at_seconds=at, range_seconds=RATE_WINDOW_SECONDS)


def prometheus_value(simulated: Simulated, namespace: str, signal: SignalName, at: int, *,
                     half_open: bool = False) -> float | None:
    """The rate signal as PromQL computes it from the samples written (closed range, as in 2.42)."""

    def rates(sample: str, keep: Callable[[dict[str, str]], bool] = lambda _: True) -> list[tuple[str, float]]:
        found = [(labels, _rate(points, at, half_open=half_open)) for labels, points in
                 _series(simulated, sample, namespace) if keep(labels)]
        return [(labels.get("le") or labels["pod"], r) for labels, r in found if r is not None]

    if signal in (SignalName.REQUEST_RATE, SignalName.ERROR_RATIO):
        total = math.fsum(r for _, r in rates(REQUESTS_TOTAL))
        if signal is SignalName.REQUEST_RATE:
            return total
        return math.fsum(r for _, r in rates(REQUESTS_TOTAL, lambda la: la["code"].startswith("5"))) / total
    if signal is SignalName.LATENCY_P95:
        return histogram_quantile(0.95, [(float(le), r) for le, r in rates(f"{LATENCY_HISTOGRAM}_bucket")])
    if signal is SignalName.CPU_USAGE:
        per_pod = [r for _, r in rates(CADVISOR.cpu_usage_seconds_total)]
        return 1000.0 * math.fsum(per_pod) / len(per_pod)
    if signal is SignalName.CPU_THROTTLED:
        periods = dict(rates(CADVISOR.cfs_periods_total))
        return max(r / periods[pod] for pod, r in rates(CADVISOR.cfs_throttled_periods_total))
    raise AssertionError(f"{signal} is not a rate signal")


def extrapolation_cancels(points: Points, at: int, *, half_open: bool = False) -> bool:
    """Does Prometheus' rate over ``[at - 2m, at]`` (``(at - 2m, at]``) equal the simulator's first-to-last slope?"""
    inside = [(t, v) for t, v in points if at - RATE_WINDOW_SECONDS <= t <= at]
    if half_open:
        inside = [(t, v) for t, v in inside if t > at - RATE_WINDOW_SECONDS]
    if len(inside) < 2:
        return True  # no rate either way
    (t0, v0), (t1, v1) = inside[0], inside[-1]
    prometheus = rate_at(inside, at_seconds=at, range_seconds=RATE_WINDOW_SECONDS)
    return prometheus is not None and math.isclose(prometheus, (v1 - v0) / (t1 - t0), rel_tol=1e-9, abs_tol=1e-15)


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
    counters = [points for sample in COUNTERS.get(signal, ()) for _, points in _series(simulated, sample, namespace)]
    mismatches = []
    compared = 0
    for at, sim_value, read_value in zip(_steps(ours), ours.values, read.values, strict=True):
        if all(extrapolation_cancels(points, at) for points in counters):
            compared += 1
            if not math.isclose(read_value, sim_value, rel_tol=1e-9, abs_tol=max(tolerance, 1e-12)):
                mismatches.append(f"t-{simulated.at_seconds - at}s: simulator {sim_value!r}, reader {read_value!r}")
        else:  # causes 2 and 3 of the module docstring: the reader must give PromQL's value, not the model's
            expected = prometheus_value(simulated, namespace, signal, at)
            assert expected is not None
            if not math.isclose(read_value, expected, rel_tol=1e-9, abs_tol=1e-12):
                mismatches.append(f"t-{simulated.at_seconds - at}s: prometheus {expected!r}, reader {read_value!r}")
    assert not mismatches, "\n".join(mismatches)
    # The exceptions stay exceptions: almost every step is held to the simulator's own value.
    assert compared >= len(read.values) - 2


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


def test_the_simulators_pod_names_would_map_to_another_workload() -> None:
    """Why sim_openmetrics renames pods: the reader maps ``api-0-3`` to StatefulSet ``api-0``, not ``api``."""
    pod = Cluster.started(params=ClusterParams(), resources=SHOP.resources, pool=SHOP.pool, replicas=1,
                          now_seconds=0.0).pods[0]
    assert re.fullmatch(DEPLOYMENT_POD_PATTERN, pod.name) is None
    statefulset = re.fullmatch(STATEFULSET_POD_PATTERN, pod.name)
    assert statefulset is not None and statefulset.group(1) != "api"


@pytest.mark.parametrize("signal", RATE_SIGNALS, ids=[s.value for s in RATE_SIGNALS])
def test_scrapes_on_the_step_instants_give_prometheus_2_one_sample_more_than_the_simulator(
    simulated: Simulated, signal: SignalName
) -> None:
    """Cause 1: the model's scrapes land on the reader's steps, so 2.42's closed range holds 9 samples where
    the simulator's half-open one (Prometheus 3's) holds 8 — the rate over 120 s against the one over 105 s."""
    namespace = SHOP_ON_STEPS.namespace
    ours = _as_series(simulated.simulator[namespace], signal, "simulator")
    read = _as_series(simulated.reader[namespace], signal, "reader")
    assert read.timestamps_seconds == ours.timestamps_seconds
    steps = _steps(read)
    closed = [prometheus_value(simulated, namespace, signal, at) for at in steps]
    half_open = [prometheus_value(simulated, namespace, signal, at, half_open=True) for at in steps]
    assert list(read.values) == pytest.approx(closed, rel=1e-9, abs=1e-12)
    # The simulator's value is the half-open range's, wherever its extrapolation cancels (cause 3 aside).
    counters = [points for sample in COUNTERS[signal] for _, points in _series(simulated, sample, namespace)]
    cancels = [all(extrapolation_cancels(points, at, half_open=True) for points in counters) for at in steps]
    assert sum(cancels) >= len(steps) - 4
    assert [v for v, ok in zip(ours.values, cancels, strict=True) if ok] == pytest.approx(
        [v for v, ok in zip(half_open, cancels, strict=True) if ok], rel=1e-9, abs=1e-12)
    differing = [at for at, a, b in zip(steps, read.values, ours.values, strict=True)
                 if not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)]
    if signal is SignalName.ERROR_RATIO:  # shop never fails: 0 either way
        assert differing == []
    else:
        assert len(differing) >= len(steps) // 2, "the load changes every minute, so the two rates differ"

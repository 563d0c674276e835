"""The reader against a real Prometheus holding an hour of a small cluster (see prom_scenarios.py)."""

from __future__ import annotations

import http.server
import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prom_scenarios import (
    AT_SECONDS,
    LATENCY_HISTOGRAM,
    LIVE_NAMESPACE,
    LIVE_POD,
    LIVE_REQUESTS_PER_SECOND,
    MIB,
    POOLERS,
    REQUESTS_TOTAL,
    SPIKE_SECONDS,
    START_SECONDS,
    WORKLOADS,
    Workload,
    workload_named,
)
from promharness import OpenMetricsWriter, PrometheusServer, RecordingProxy, SilentServer, free_port
from promql_reference import instant_at, rate_at

import perfpilot.observe.reader as reader_module
from perfpilot.api.spec import PerformanceProfile
from perfpilot.api.status import ContainerResources
from perfpilot.observe.instrumentation import PROMQL_QUERIES, PROMQL_RETRIES
from perfpilot.observe.promql import DEPLOYMENT_POD_PATTERN, STATEFULSET_POD_PATTERN, SignalName
from perfpilot.observe.reader import (
    PrometheusError,
    PrometheusQueryError,
    PrometheusReader,
    PrometheusSettings,
    PrometheusUnreachable,
)
from perfpilot.observe.series import histogram_quantile
from perfpilot.observe.snapshot import (
    CycleObservations,
    ProfileKey,
    ProfileTarget,
    fetch_observations,
    unreachable_reason,
)
from perfpilot.tuning.observations import RISE_SPAN_SECONDS, LiveConfig, Observations, PoolLive, Series, Unknown

pytestmark = pytest.mark.integration

AT = datetime.fromtimestamp(AT_SECONDS, tz=UTC)
WINDOW_SECONDS = 1800
STEP_SECONDS = 60
RATE_WINDOW_SECONDS = 120
STEPS = [AT_SECONDS - WINDOW_SECONDS + STEP_SECONDS * k for k in range(WINDOW_SECONDS // STEP_SECONDS + 1)]


def make_profile(namespace: str, name: str, *, kind: str = "Deployment", pool: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None, window: str = "30m", interval: str = "60s",
                 url: str = "", peak_window: str = "24h") -> PerformanceProfile:
    spec: dict[str, Any] = {
        "targetRef": {"kind": kind, "name": name},
        "guardrails": {"window": window, "interval": interval, "peakWindow": peak_window},
        "metrics": {"prometheusURL": url, **(metrics or {})},
    }
    if pool is not None:
        spec["pool"] = {"enabled": True, "pgbouncer": pool}
    return PerformanceProfile.model_validate({
        "apiVersion": "perfpilot.io/v1alpha1", "kind": "PerformanceProfile",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec,
    })


COMMUNITY_POOL = {"configMapRef": {"name": "pgbouncer"}, "database": "app"}
CNPG_POOL = {"poolerRef": {"name": "warehouse"}, "database": "app"}
LIMITED = LiveConfig(hpa=None, containers=(
    ContainerResources(name="app", cpu_request_millicores=500, cpu_limit_millicores=1000,
                       memory_request_bytes=512 * 2**20),))
UNLIMITED = LiveConfig(hpa=None, containers=(
    ContainerResources(name="app", cpu_request_millicores=500, memory_request_bytes=512 * 2**20),))


def targets_for_cluster(url: str) -> list[ProfileTarget]:
    pools = {("shop", "api"): COMMUNITY_POOL, ("analytics", "reports"): CNPG_POOL, ("ledger", "books"): COMMUNITY_POOL}
    targets = [
        ProfileTarget(
            make_profile(w.namespace, w.name, kind="StatefulSet" if w.name == "index" else "Deployment",
                         pool=pools.get((w.namespace, w.name)), url=url),
            UNLIMITED if w.throttled_share is None else LIMITED,
        )
        for w in WORKLOADS
    ]
    targets.append(ProfileTarget(make_profile("ghost", "nothing", url=url), LIMITED))
    return targets


def settings_for(url: str, **changes: Any) -> PrometheusSettings:
    return PrometheusSettings(url=url, step_seconds=STEP_SECONDS, rate_window_seconds=RATE_WINDOW_SECONDS,
                              **changes)


def queries_sent(url: str, *, outcome: str | None = None) -> float:
    total = 0.0
    for metric in PROMQL_QUERIES.collect():
        for sample in metric.samples:
            if (sample.name.endswith("_total") and sample.labels["prometheus"] == url
                    and outcome in (None, sample.labels["outcome"])):
                total += sample.value
    return total


@pytest.fixture(scope="module")
def observed(prometheus: PrometheusServer) -> CycleObservations:
    return fetch_observations(targets_for_cluster(prometheus.url), at=AT, settings=settings_for(prometheus.url))


# --- what Prometheus must answer, computed from the samples written (promql_reference.py) -------------


def _series_of(cluster: OpenMetricsWriter, sample: str, workload: Workload,
               keep: Callable[[dict[str, str]], bool] = lambda labels: True) -> list[tuple[dict[str, str], Any]]:
    return [(labels, points) for labels, points in cluster.series(sample)
            if labels.get("namespace") == workload.namespace and labels.get("pod") in workload.pods and keep(labels)]


def _real_container(labels: dict[str, str]) -> bool:
    """A container of the pod template: every target's LiveConfig lists only "app", so shop/api's
    istio-proxy is a sidecar injected at admission and is not counted (nor the pod cgroup and pause)."""
    return labels.get("container") == "app"


def _sum_rates(series: list[tuple[dict[str, str], Any]], t: int) -> float | None:
    rates = [rate_at(points, at_seconds=t, range_seconds=RATE_WINDOW_SECONDS) for _, points in series]
    known = [r for r in rates if r is not None]
    return math.fsum(known) if known else None


def _per_pod(series: list[tuple[dict[str, str], Any]], value: Callable[[Any], float | None]) -> dict[str, float]:
    pods: dict[str, list[float]] = {}
    for labels, points in series:
        found = value(points)
        if found is not None:
            pods.setdefault(labels["pod"], []).append(found)
    return {pod: math.fsum(values) for pod, values in pods.items()}


def expected(cluster: OpenMetricsWriter, signal: SignalName, workload: Workload, t: int) -> float | None:
    def rate(points: Any) -> float | None:
        return rate_at(points, at_seconds=t, range_seconds=RATE_WINDOW_SECONDS)

    def instant(points: Any) -> float | None:
        return instant_at(points, at_seconds=t)

    if signal is SignalName.REQUEST_RATE:
        return _sum_rates(_series_of(cluster, REQUESTS_TOTAL, workload), t)
    if signal is SignalName.ERROR_RATIO:
        total = _sum_rates(_series_of(cluster, REQUESTS_TOTAL, workload), t)
        failed = _sum_rates(_series_of(cluster, REQUESTS_TOTAL, workload, lambda la: la["code"] == "500"), t)
        if total is None:
            return None
        return math.nan if total == 0 else (failed or 0.0) / total
    if signal is SignalName.LATENCY_P95:
        buckets = _series_of(cluster, f"{LATENCY_HISTOGRAM}_bucket", workload)
        by_bound: dict[float, float] = {}
        for labels, points in buckets:
            found = rate(points)
            if found is not None:
                bound = float(labels["le"])
                by_bound[bound] = by_bound.get(bound, 0.0) + found
        return histogram_quantile(0.95, list(by_bound.items())) if by_bound else None
    cpu = _series_of(cluster, "container_cpu_usage_seconds_total", workload, _real_container)
    if signal is SignalName.CPU_USAGE:
        per_pod = _per_pod(cpu, rate)
        return 1000 * math.fsum(per_pod.values()) / len(per_pod) if per_pod else None
    if signal is SignalName.REPLICAS:
        return float(len(_per_pod(cpu, instant))) or None
    if signal is SignalName.MEMORY_WORKING_SET:
        memory = _series_of(cluster, "container_memory_working_set_bytes", workload, _real_container)
        # Each container's largest series (a restarted one has two), summed per pod; the largest pod.
        by_container: dict[tuple[str, str], float] = {}
        for labels, points in memory:
            found = instant(points)
            if found is not None:
                key = (labels["pod"], labels["container"])
                by_container[key] = max(by_container.get(key, found), found)
        per_pod: dict[str, float] = {}
        for (pod, _), value in by_container.items():
            per_pod[pod] = per_pod.get(pod, 0.0) + value
        return max(per_pod.values()) if per_pod else None
    if signal is SignalName.CPU_THROTTLED:
        throttled = _per_pod(_series_of(cluster, "container_cpu_cfs_throttled_periods_total", workload,
                                        _real_container), rate)
        periods = _per_pod(_series_of(cluster, "container_cpu_cfs_periods_total", workload, _real_container), rate)
        ratios = [throttled[pod] / periods[pod] for pod in throttled if pod in periods]
        return max(ratios) if ratios else None
    raise AssertionError(f"no expectation for {signal}")


def assert_matches(signal: Any, expected_by_time: dict[int, float | None]) -> None:
    written = {t: v for t, v in expected_by_time.items() if v is not None and math.isfinite(v)}
    assert isinstance(signal, Series), f"expected a series, got {signal}"
    assert signal.timestamps_seconds == tuple(float(t) for t in written)
    assert signal.values == pytest.approx(list(written.values()), rel=1e-9, abs=1e-12)


APP_AND_CONTAINER = [s for s in SignalName if not s.value.startswith("pool_")]
KNOWN_WORKLOADS = [("shop", "api"), ("media", "stream"), ("billing", "invoices"), ("search", "index"),
                   ("analytics", "reports"), ("orders", "cart")]


# search/index has no CPU limit, so no throttling series: test_no_cpu_limit_means_throttling_is_unknown...
READ_BACK_CASES = [
    pytest.param(namespace, name, signal, id=f"{namespace}/{name}-{signal.value}")
    for namespace, name in KNOWN_WORKLOADS
    for signal in APP_AND_CONTAINER
    if not (signal is SignalName.CPU_THROTTLED and workload_named(namespace, name).throttled_share is None)
]


@pytest.mark.parametrize(("namespace", "name", "signal"), READ_BACK_CASES)
def test_each_signal_read_back_matches_what_was_written(
    observed: dict[ProfileKey, Observations], cluster: OpenMetricsWriter, namespace: str, name: str,
    signal: SignalName,
) -> None:
    workload = workload_named(namespace, name)
    read = getattr(observed[(namespace, name)], signal.value)
    assert_matches(read, {t: expected(cluster, signal, workload, t) for t in STEPS})


def _pool_expected(cluster: OpenMetricsWriter, names: tuple[str, ...], namespace: str, t: int,
                   combine: Callable[[list[float]], float], *, pooler: str | None = None) -> float:
    """The pool gauge the reader must return for database app: every pooler of the namespace, or only the pods
    of ``pooler`` (a Deployment's pods: name-hash-suffix)."""
    values: list[float] = []
    for labels, points in cluster.series(names[0]):
        if labels["namespace"] != namespace or labels["database"] != "app":
            continue
        if pooler is not None and labels["pod"].rsplit("-", 2)[0] != pooler:
            continue
        value = instant_at(points, at_seconds=t)
        assert value is not None
        for extra_name in names[1:]:  # CloudNativePG's microseconds part
            extra = next(p for la, p in cluster.series(extra_name) if la == labels)
            value += (instant_at(extra, at_seconds=t) or 0.0) / 1e6
        values.append(value)
    return combine(values)


@dataclass(frozen=True)
class PoolCase:
    profile: tuple[str, str]
    gauges: tuple[str, str]  # server active, clients waiting
    wait_names: tuple[str, ...]  # the oldest wait, and CloudNativePG's microseconds part
    pooler: str | None  # the Pooler a poolerRef names; None: every pgBouncer of the namespace


POOL_CASES = [
    # A configMapRef pool is every pgBouncer of the namespace serving the database; a poolerRef one is that
    # Pooler's alone (analytics has another, warehouse-ro, with more connections, waiting clients and wait).
    pytest.param(PoolCase(("shop", "api"), ("pgbouncer_pools_server_active_connections",
                                            "pgbouncer_pools_client_waiting_connections"),
                          ("pgbouncer_pools_client_maxwait_seconds",), None), id="prometheus-community"),
    pytest.param(PoolCase(("analytics", "reports"), ("cnpg_pgbouncer_pools_sv_active",
                                                     "cnpg_pgbouncer_pools_cl_waiting"),
                          ("cnpg_pgbouncer_pools_maxwait", "cnpg_pgbouncer_pools_maxwait_us"), "warehouse"),
                 id="cloudnative-pg"),
    pytest.param(PoolCase(("ledger", "books"), ("pgbouncer_pools_server_active_connections",
                                                "pgbouncer_pools_client_waiting_connections"),
                          ("pgbouncer_pools_client_maxwait_seconds",), None), id="two-pgbouncers"),
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_signals_read_back_matches_what_the_exporter_wrote(
    observed: dict[ProfileKey, Observations], cluster: OpenMetricsWriter, case: PoolCase
) -> None:
    namespace, name = case.profile
    active_name, waiting_name = case.gauges
    wait_names, pooler = case.wait_names, case.pooler
    observations = observed[(namespace, name)]
    assert_matches(observations.pool_server_active, {
        t: _pool_expected(cluster, (active_name,), namespace, t, math.fsum, pooler=pooler) for t in STEPS})
    assert_matches(observations.pool_client_waiting, {
        t: _pool_expected(cluster, (waiting_name,), namespace, t, math.fsum, pooler=pooler) for t in STEPS})
    assert_matches(observations.pool_max_wait_seconds, {
        t: _pool_expected(cluster, wait_names, namespace, t, max, pooler=pooler) for t in STEPS})


@pytest.mark.parametrize(("profile", "expected"), [
    # The second pod served 8 until its reload at minute 50: the smallest is 8 before, 10 after.
    (("shop", "api"), (lambda t: 8.0 if t < START_SECONDS + 50 * 60 else 10.0, lambda t: 10.0)),
    # ledger's pgBouncers at 6 and 7 (the second from minute 30), and the namespace's third at 3: with the
    # profile's pooler workloads not known (no pool in its LiveConfig), every one serving the database counts.
    (("ledger", "books"), (lambda t: 3.0, lambda t: 7.0 if t >= START_SECONDS + 30 * 60 else 6.0)),
])
def test_the_pool_size_served_is_read_by_the_database_name_clients_use_over_every_pooler_pod(
    observed: dict[ProfileKey, Observations], profile: tuple[str, str],
    expected: tuple[Callable[[int], float], Callable[[int], float]],
) -> None:
    # prometheus-community's exporter names the database in `name`; its `database` label is the server's
    # (app_db), and `reporting`, served at 3, must not count.
    observations = observed[profile]
    smallest, largest = expected
    assert_matches(observations.pool_served_size_min, {t: smallest(t) for t in STEPS})
    assert_matches(observations.pool_served_size_max, {t: largest(t) for t in STEPS})


def test_the_pool_size_served_is_read_from_the_workloads_mounting_the_profiles_config_map_alone(
    prometheus: PrometheusServer,
) -> None:
    # The ConfigMap's pgBouncers are pgbouncer-a and pgbouncer-b: the namespace's third, at 3, is not this pool.
    pool = PoolLive(default_pool_size=6, reserve_pool_size=0, pooler_replicas=1,
                    pooler_workloads=("pgbouncer-a", "pgbouncer-b"))
    target = ProfileTarget(make_profile("ledger", "books", pool=COMMUNITY_POOL), replace(LIMITED, pool=pool))
    observations = fetch_observations([target], at=AT, settings=settings_for(prometheus.url))[("ledger", "books")]
    assert_matches(observations.pool_served_size_min, {t: 6.0 for t in STEPS})
    assert_matches(observations.pool_served_size_max,
                   {t: 7.0 if t >= START_SECONDS + 30 * 60 else 6.0 for t in STEPS})
    # The other pool signals count every pgBouncer of the namespace serving the database, as documented.
    assert isinstance(observations.pool_server_active, Series)


def test_a_pooler_without_the_pool_size_series_reads_as_unknown(observed: dict[ProfileKey, Observations]) -> None:
    reports = observed[("analytics", "reports")]
    for reading in (reports.pool_served_size_min, reports.pool_served_size_max):
        assert isinstance(reading, Unknown) and reading.reason.startswith("no series for pool analytics/warehouse")


def test_the_scenarios_read_back_as_their_story(observed: dict[ProfileKey, Observations]) -> None:
    def series(namespace: str, name: str, field: str) -> Series:
        found = getattr(observed[(namespace, name)], field)
        assert isinstance(found, Series), found
        return found

    steady = series("shop", "api", "request_rate_per_second")
    assert steady.minimum > 48 and steady.maximum < 52
    bursty = series("media", "stream", "request_rate_per_second")
    assert bursty.minimum == pytest.approx(20) and bursty.maximum == pytest.approx(120)
    assert series("media", "stream", "replicas").values[0] == 2 and series("media", "stream", "replicas").latest == 4
    assert series("media", "stream", "error_ratio").values == tuple(0.0 for _ in STEPS)  # a measured zero
    regression = series("billing", "invoices", "latency_p95_seconds")
    assert regression.latest > 5 * regression.values[0]
    climb = series("search", "index", "memory_working_set_bytes_per_pod")
    assert climb.latest > climb.values[0] * 1.3
    waiting = series("shop", "api", "pool_client_waiting")
    assert waiting.values[0] == 0 and waiting.latest == 20.0  # 2 pooler pods x (60 - 40) / 2


def test_a_container_restart_reads_as_the_same_load_not_a_dip_or_a_spike(
    observed: dict[ProfileKey, Observations]
) -> None:
    # orders/cart: 40 req/s, 1% failed, 0.3 cores a pod, all the hour; its app container restarts in one pod at
    # minute 40 (the same series reset) and in the other at minute 44 (a new series under a new id). rate()
    # counts a reset as one, and the pod's sum takes the old series' share of the window and the new one's.
    cart = observed[("orders", "cart")]
    assert isinstance(cart.request_rate_per_second, Series) and isinstance(cart.error_ratio, Series)
    assert isinstance(cart.cpu_usage_millicores_per_pod, Series) and isinstance(cart.latency_p95_seconds, Series)
    assert isinstance(cart.replicas, Series)
    assert cart.request_rate_per_second.minimum == pytest.approx(40, rel=0.03)
    assert cart.request_rate_per_second.maximum == pytest.approx(40, rel=0.03)
    assert cart.error_ratio.minimum == pytest.approx(0.01, rel=0.03)
    assert cart.error_ratio.maximum == pytest.approx(0.01, rel=0.03)
    # rate() extrapolates the old series half a scrape past its last sample and the new one back to its zero:
    # the pod that restarted under a new id reads about 6% more for a rate window, 3% over the two pods.
    assert cart.cpu_usage_millicores_per_pod.minimum == pytest.approx(300, rel=0.05)
    assert cart.cpu_usage_millicores_per_pod.maximum == pytest.approx(300, rel=0.05)
    steady = cart.latency_p95_seconds.values[0]
    assert cart.latency_p95_seconds.minimum == pytest.approx(steady, rel=0.03)
    assert cart.latency_p95_seconds.maximum == pytest.approx(steady, rel=0.03)
    assert set(cart.replicas.values) == {2.0}  # two pods, whatever the series of their containers
    # The working set: the restarted container's old series still in the lookback is the same container.
    assert isinstance(cart.memory_working_set_bytes_per_pod, Series)
    assert set(cart.memory_working_set_bytes_per_pod.values) == {300.0 * MIB}
    assert cart.peak_memory_working_set_bytes_per_pod == 300.0 * MIB


def test_no_traffic_is_a_measured_zero_rate_and_an_unknown_latency(observed: dict[ProfileKey, Observations]) -> None:
    idle = observed[("quiet", "idle")]
    assert isinstance(idle.request_rate_per_second, Series)
    assert set(idle.request_rate_per_second.values) == {0.0}
    assert isinstance(idle.latency_p95_seconds, Unknown)
    assert idle.latency_p95_seconds.reason.startswith("NaN: latest sample is not a number")
    assert isinstance(idle.error_ratio, Unknown)
    assert idle.error_ratio.reason.startswith("NaN")
    # No CFS period ran (the kernel counts them only while there is work): throttled in none, not 0/0.
    for throttled in (idle.cpu_throttled_ratio, idle.cpu_throttled_ratio_by_container["app"]):
        assert isinstance(throttled, Series) and set(throttled.values) == {0.0}


def test_a_long_gap_leaves_too_few_samples(observed: dict[ProfileKey, Observations]) -> None:
    gappy = observed[("quiet", "gappy")]
    for field in ("request_rate_per_second", "latency_p95_seconds", "cpu_usage_millicores_per_pod"):
        signal = getattr(gappy, field)
        assert isinstance(signal, Unknown), (field, signal)
        assert signal.reason.startswith("too few samples"), (field, signal)


def test_series_that_stopped_are_stale(observed: dict[ProfileKey, Observations]) -> None:
    gone = observed[("quiet", "gone")]
    for field in ("request_rate_per_second", "memory_working_set_bytes_per_pod", "replicas"):
        signal = getattr(gone, field)
        assert isinstance(signal, Unknown), (field, signal)
        assert signal.reason.startswith("stale: last sample"), (field, signal)


def test_a_namespace_without_data_is_unknown_everywhere_never_zero(observed: dict[ProfileKey, Observations]) -> None:
    ghost = observed[("ghost", "nothing")]
    for signal in SignalName:
        value = getattr(ghost, signal.value)
        assert isinstance(value, Unknown)
        expected_reason = "pool tuning is off" if signal.value.startswith("pool_") else "no series for ghost/nothing"
        assert value.reason == expected_reason


def test_no_cpu_limit_means_throttling_is_unknown_with_that_reason(observed: dict[ProfileKey, Observations]) -> None:
    throttled = observed[("search", "index")].cpu_throttled_ratio
    assert throttled == Unknown("no CFS throttling series for search/index: a container has no CPU limit")


def test_one_cycle_for_many_profiles_issues_as_many_queries_as_for_one(prometheus: PrometheusServer) -> None:
    settings = settings_for(prometheus.url)
    one = [ProfileTarget(make_profile("shop", "api", pool=COMMUNITY_POOL), LIMITED)]
    many = [ProfileTarget(make_profile(f"team-{i}", f"svc-{i}", pool=COMMUNITY_POOL), LIMITED) for i in range(200)]
    many += one

    before = queries_sent(prometheus.url)
    fetch_observations(one, at=AT, settings=settings)
    for_one = queries_sent(prometheus.url) - before
    result = fetch_observations(many, at=AT, settings=settings)
    for_many = queries_sent(prometheus.url) - before - for_one

    # 3 application + 4 container + 5 pool signals, 2 + 2 + 1 peaks, 2 histories, 4 per container
    assert for_one == 23
    assert for_many == for_one
    assert isinstance(result[("shop", "api")].request_rate_per_second, Series)
    assert result[("team-7", "svc-7")].request_rate_per_second == Unknown("no series for team-7/svc-7")
    # How long a cycle takes for 1, 100 and 1,000 profiles is measured by bench/observe_cycle.py, not asserted.


def test_profiles_with_other_metric_names_share_queries_by_shape(prometheus: PrometheusServer) -> None:
    settings = settings_for(prometheus.url)
    renamed = {"latencyHistogram": "rpc_duration_seconds", "requestsTotal": "rpc_total"}
    targets = [
        ProfileTarget(make_profile("shop", "api", pool=COMMUNITY_POOL), LIMITED),
        ProfileTarget(make_profile("media", "stream", pool=COMMUNITY_POOL), LIMITED),
        ProfileTarget(make_profile("analytics", "reports", pool=CNPG_POOL), LIMITED),  # another pool shape
        ProfileTarget(make_profile("billing", "invoices", metrics=renamed), LIMITED),  # another app shape
        ProfileTarget(make_profile("search", "index", metrics=renamed), LIMITED),
    ]
    before = queries_sent(prometheus.url)
    result = fetch_observations(targets, at=AT, settings=settings)
    # 2 app shapes x (3 + 2 peaks) + (4 + 2 peaks + the CPU history + 4 per container) container
    # + 2 pool shapes x (5 + 1 peak + the pool history)
    assert queries_sent(prometheus.url) - before == 35
    assert result[("billing", "invoices")].latency_p95_seconds == Unknown("no series for billing/invoices")
    assert isinstance(result[("analytics", "reports")].pool_server_active, Series)


def test_a_refused_query_is_a_clear_error_and_not_retried(prometheus: PrometheusServer) -> None:
    retries_before = PROMQL_RETRIES.labels(prometheus=prometheus.url)._value.get()
    with PrometheusReader(settings_for(prometheus.url)) as reader, pytest.raises(PrometheusQueryError) as raised:
        reader.query_range("sum(", signal="test", end=AT, window_seconds=600, step_seconds=60)
    assert str(raised.value).startswith(f"prometheus {prometheus.url}: query refused: HTTP 400: ")
    assert PROMQL_RETRIES.labels(prometheus=prometheus.url)._value.get() == retries_before


def test_an_unreachable_prometheus_is_retried_with_doubling_backoff_then_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = PrometheusSettings(url=url, timeout_seconds=2.0, retries=2, backoff_seconds=0.1)
    sleeps: list[float] = []
    monkeypatch.setattr(reader_module.time, "sleep", sleeps.append)  # the waits, recorded instead of slept
    with PrometheusReader(settings) as reader, pytest.raises(PrometheusUnreachable) as raised:
        reader.query_range("up", signal="test", end=AT, window_seconds=600, step_seconds=60)
    assert sleeps == [0.1, 0.2]
    assert str(raised.value).startswith(f"prometheus {url}: connection refused (3 attempt(s) in ")


def test_a_slow_prometheus_uses_the_whole_deadline_on_one_attempt_and_is_a_clear_error() -> None:
    silent = SilentServer()
    timeout_seconds = 1.0
    try:
        settings = PrometheusSettings(url=silent.url, timeout_seconds=timeout_seconds, retries=3, backoff_seconds=0.1)
        with PrometheusReader(settings) as reader, pytest.raises(PrometheusUnreachable) as raised:
            reader.query_range("up", signal="test", end=AT, window_seconds=600, step_seconds=60)
        connections = silent.connections_accepted
    finally:
        silent.close()
    # The first attempt uses the whole deadline, so no retry is left: one connection, one attempt.
    assert connections == 1
    assert str(raised.value).startswith(f"prometheus {silent.url}: timed out (1 attempt(s) in ")


def test_an_unreachable_prometheus_makes_every_signal_unknown_after_one_query() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = settings_for(url, timeout_seconds=1.0, retries=0)
    targets = [ProfileTarget(make_profile("shop", "api", pool=COMMUNITY_POOL), LIMITED),
               ProfileTarget(make_profile("media", "stream"), LIMITED)]
    result = fetch_observations(targets, at=AT, settings=settings)
    for observations in result.values():
        for signal in SignalName:
            value = getattr(observations, signal.value)
            assert isinstance(value, Unknown)
            if not (observations.live is LIMITED and signal.value.startswith("pool_")
                    and value.reason == "pool tuning is off"):
                assert value.reason.startswith(f"prometheus unreachable: prometheus {url}: connection refused")
    assert queries_sent(url) == 1


def test_a_server_that_answered_no_query_is_reported_with_its_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    targets = [ProfileTarget(make_profile("shop", "api"), LIMITED)]
    result = fetch_observations(targets, at=AT, settings=settings_for(url, timeout_seconds=1.0, retries=0))
    assert set(result.unreachable) == {url}
    assert result.unreachable[url].url == url
    assert result.unreachable[url].cause.startswith("connection refused (1 attempt(s) in ")
    assert result[("shop", "api")].replicas == Unknown(unreachable_reason(result.unreachable[url]))


def test_a_reachable_server_is_not_reported_unreachable(observed: CycleObservations) -> None:
    assert observed.unreachable == {}


def test_server_errors_are_retried_with_backoff_and_then_answered(
    prometheus: PrometheusServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = RecordingProxy(prometheus.url)
    try:
        proxy.fail_next = 2
        settings = PrometheusSettings(url=proxy.url, retries=2, backoff_seconds=0.2)
        sleeps: list[float] = []
        monkeypatch.setattr(reader_module.time, "sleep", sleeps.append)
        with PrometheusReader(settings) as reader:
            result = reader.query_range(f'sum({REQUESTS_TOTAL}{{namespace="shop"}})', signal="test", end=AT,
                                        window_seconds=600, step_seconds=60)
    finally:
        proxy.close()
    assert len(proxy.headers_seen) == 3
    assert sleeps == [0.2, 0.4]  # backoff doubled between the attempts
    assert len(result) == 1 and len(result[0].samples) == 11
    assert PROMQL_RETRIES.labels(prometheus=proxy.url)._value.get() == 2


def test_bearer_token_from_file_and_extra_headers_are_sent(prometheus: PrometheusServer, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-token\n")
    proxy = RecordingProxy(prometheus.url)
    try:
        settings = PrometheusSettings(url=proxy.url, bearer_token_file=token_file,
                                      headers={"X-Scope-OrgID": "tenant-a"})
        with PrometheusReader(settings) as reader:
            reader.query_range("up", signal="test", end=AT, window_seconds=60, step_seconds=60)
            token_file.write_text("rotated-token\n")  # projected service-account tokens rotate
            reader.query_range("up", signal="test", end=AT, window_seconds=60, step_seconds=60)
    finally:
        proxy.close()
    assert [h["authorization"] for h in proxy.headers_seen] == ["Bearer first-token", "Bearer rotated-token"]
    assert {h["x-scope-orgid"] for h in proxy.headers_seen} == {"tenant-a"}


def test_the_evaluation_time_must_be_explicit_and_timezone_aware(prometheus: PrometheusServer) -> None:
    with PrometheusReader(settings_for(prometheus.url)) as reader, pytest.raises(ValueError, match="timezone"):
        reader.query_range("up", signal="test", end=datetime(2023, 11, 14, 23), window_seconds=60, step_seconds=60)


def test_a_live_scraped_prometheus_client_endpoint_reads_back(prometheus: PrometheusServer) -> None:
    workload = LIVE_POD.split("-")[0]
    settings = PrometheusSettings(url=prometheus.url, step_seconds=1, rate_window_seconds=3)
    target = ProfileTarget(make_profile(LIVE_NAMESPACE, workload, window="10s", interval="10s"), LIMITED)
    deadline = time.monotonic() + 40
    while True:
        # The evaluation time is always explicit, here "now" read once per attempt.
        observations = fetch_observations([target], at=datetime.now(UTC), settings=settings)[(LIVE_NAMESPACE, workload)]
        if isinstance(observations.latency_p95_seconds, Series) or time.monotonic() > deadline:
            break
        time.sleep(1)
    p95 = observations.latency_p95_seconds
    assert isinstance(p95, Series), p95
    # Every observation is 0.3 s, in the (0.25, 0.5] bucket: PromQL interpolates to 0.25 + 0.25 x 0.95.
    assert p95.latest == pytest.approx(0.4875)
    rate = observations.request_rate_per_second
    assert isinstance(rate, Series), rate
    assert 0.5 * LIVE_REQUESTS_PER_SECOND < rate.mean < 1.5 * LIVE_REQUESTS_PER_SECOND
    assert observations.cpu_usage_millicores_per_pod == Unknown(f"no series for {LIVE_NAMESPACE}/{workload}")


# --- peaks over guardrails.peakWindow (max_over_time subqueries, one point at the evaluation time) ----------

HOUR_STEPS = list(range(AT_SECONDS - 3600 + STEP_SECONDS, AT_SECONDS + 1, STEP_SECONDS))


def _largest(values: list[float | None]) -> float:
    known = [v for v in values if v is not None and math.isfinite(v)]
    assert known
    return max(known)


def _total_cpu_millicores(cluster: OpenMetricsWriter, workload: Workload, t: int) -> float | None:
    cpu = _series_of(cluster, "container_cpu_usage_seconds_total", workload, _real_container)
    per_pod = _per_pod(cpu, lambda points: rate_at(points, at_seconds=t, range_seconds=RATE_WINDOW_SECONDS))
    return 1000 * math.fsum(per_pod.values()) if per_pod else None


def test_peaks_over_the_peak_window_match_the_largest_step_of_what_was_written(
    observed: dict[ProfileKey, Observations], cluster: OpenMetricsWriter
) -> None:
    billing = workload_named("billing", "invoices")
    shop = workload_named("shop", "api")
    search = workload_named("search", "index")
    # The 24h peak window holds the whole hour: billing's burst at minutes 10-14 is in it.
    billing_peak = observed[("billing", "invoices")].peak_request_rate_per_second
    assert billing_peak == pytest.approx(
        _largest([expected(cluster, SignalName.REQUEST_RATE, billing, t) for t in HOUR_STEPS]), rel=1e-9)
    assert billing_peak == pytest.approx(90, rel=0.05)
    assert observed[("shop", "api")].peak_cpu_usage_millicores_total == pytest.approx(
        _largest([_total_cpu_millicores(cluster, shop, t) for t in HOUR_STEPS]), rel=1e-9)
    assert observed[("search", "index")].peak_memory_working_set_bytes_per_pod == pytest.approx(
        _largest([expected(cluster, SignalName.MEMORY_WORKING_SET, search, t) for t in HOUR_STEPS]), rel=1e-9)
    names = ("pgbouncer_pools_server_active_connections", "pgbouncer_pools_client_waiting_connections")
    demand = [_pool_expected(cluster, names[:1], "shop", t, math.fsum)
              + _pool_expected(cluster, names[1:], "shop", t, math.fsum) for t in HOUR_STEPS]
    assert observed[("shop", "api")].peak_pool_demand_connections == pytest.approx(max(demand), rel=1e-9)
    assert max(demand) == 40.0  # 2 pooler pods x (10 active + 10 waiting) at the end


def test_a_gauge_spike_between_two_steps_is_in_the_memory_and_pool_peaks(
    observed: dict[ProfileKey, Observations], cluster: OpenMetricsWriter
) -> None:
    # analytics/reports: 300 MiB, 900 MiB for two scrapes strictly between the steps of minute 20; its pooler's
    # connections in use 3-5 per pod, 20 more in those two scrapes. No step sees them, a cut must.
    reports = observed[("analytics", "reports")]
    assert all(t % STEP_SECONDS for t in SPIKE_SECONDS)
    largest_at_steps = _largest([expected(cluster, SignalName.MEMORY_WORKING_SET, workload_named(
        "analytics", "reports"), t) for t in HOUR_STEPS])
    assert largest_at_steps == 300 * MIB
    assert reports.peak_memory_working_set_bytes_per_pod == 900 * MIB
    assert reports.peak_memory_working_set_bytes_by_container["app"] == 900 * MIB
    # Minute 20: 3 + 20 % 3 = 5 in use, plus the spike's 20, nobody waiting (database app, one pooler pod).
    assert reports.peak_pool_demand_connections == 25.0


def test_the_cpu_history_is_the_steps_of_the_peak_window_with_a_cpu_reading(
    observed: dict[ProfileKey, Observations], cluster: OpenMetricsWriter
) -> None:
    shop = workload_named("shop", "api")
    observations = observed[("shop", "api")]
    window = int(observations.peak_window_seconds)
    steps = range(AT_SECONDS - window + STEP_SECONDS, AT_SECONDS + 1, STEP_SECONDS)  # (at - window, at]
    with_reading = [t for t in steps if _total_cpu_millicores(cluster, shop, t) is not None]
    assert observations.cpu_history_seconds == len(with_reading) * STEP_SECONDS
    assert 0 < len(with_reading) <= len(HOUR_STEPS)  # about an hour was written, in a window of a day
    assert observed[("ghost", "nothing")].cpu_history_seconds == Unknown("no series for ghost/nothing")


def test_the_pool_history_is_the_steps_of_the_peak_window_with_a_pool_demand_reading(
    observed: dict[ProfileKey, Observations], cluster: OpenMetricsWriter
) -> None:
    observations = observed[("shop", "api")]
    window = int(observations.peak_window_seconds)
    steps = range(AT_SECONDS - window + STEP_SECONDS, AT_SECONDS + 1, STEP_SECONDS)
    # shop has one pooler workload (two pods): a step counts when one of its server-active series has a point.
    shop_active = [points for labels, points in cluster.series("pgbouncer_pools_server_active_connections")
                   if labels["namespace"] == "shop" and labels["database"] == "app"]
    with_reading = [t for t in steps if any(instant_at(points, at_seconds=t) is not None for points in shop_active)]
    assert observations.pool_history_seconds == len(with_reading) * STEP_SECONDS
    assert 0 < len(with_reading) <= len(HOUR_STEPS) + 1  # the hour written, its first scrape included
    assert observed[("ghost", "nothing")].pool_history_seconds == Unknown("pool tuning is off")


def test_every_pod_of_the_scenario_maps_to_its_workload_as_the_queries_map_it() -> None:
    # A pod name outside the controllers' alphabets gets no workload label: its series would all merge under an
    # empty workload, and a test of how two poolers combine would prove nothing.
    for pods, workload in [*((w.pods, w.name) for w in WORKLOADS),
                           *((p.pods, p.pods[0].rsplit("-", 2)[0]) for p in POOLERS)]:
        for pod in pods:
            match = re.fullmatch(DEPLOYMENT_POD_PATTERN, pod) or re.fullmatch(STATEFULSET_POD_PATTERN, pod)
            assert match is not None and match.group(1) == workload, pod


def test_two_pgbouncers_of_a_pool_add_their_demand_and_the_pool_has_the_longer_watched_ones_history(
    observed: dict[ProfileKey, Observations]
) -> None:
    # ledger: pgbouncer-a watched the whole hour (5 in use), pgbouncer-b from minute 30 (2 in use, 1 waiting).
    books = observed[("ledger", "books")]
    shop = observed[("shop", "api")]
    assert books.peak_pool_demand_connections == 5 + 2 + 1
    # The pool is as old as its oldest pooler: adding the two would make an hour and a half of an hour.
    assert books.pool_history_seconds == shop.pool_history_seconds


def test_the_largest_rise_is_the_rate_minus_the_rate_five_minutes_before_at_its_largest_step(
    observed: dict[ProfileKey, Observations], cluster: OpenMetricsWriter
) -> None:
    billing = workload_named("billing", "invoices")
    rises: list[float | None] = []
    for t in HOUR_STEPS:
        now, before = (expected(cluster, SignalName.REQUEST_RATE, billing, t),
                       expected(cluster, SignalName.REQUEST_RATE, billing, t - RISE_SPAN_SECONDS))
        rises.append(now - before if now is not None and before is not None else None)
    rise = observed[("billing", "invoices")].peak_request_rate_rise_per_second
    assert rise == pytest.approx(_largest(rises), rel=1e-9)
    assert rise == pytest.approx(60, rel=0.05)  # the burst: ~30 -> ~90 requests/s within 5 minutes
    assert observed[("ghost", "nothing")].peak_request_rate_rise_per_second == Unknown("no series for ghost/nothing")


def test_a_peak_window_as_short_as_the_window_misses_an_earlier_burst(
    prometheus: PrometheusServer, cluster: OpenMetricsWriter
) -> None:
    billing = workload_named("billing", "invoices")
    target = ProfileTarget(make_profile("billing", "invoices", url=prometheus.url, peak_window="30m"), LIMITED)
    observations = fetch_observations([target], at=AT, settings=settings_for(prometheus.url))[("billing", "invoices")]
    assert observations.peak_window_seconds == 1800
    assert observations.peak_request_rate_per_second == pytest.approx(
        _largest([expected(cluster, SignalName.REQUEST_RATE, billing, t) for t in STEPS]), rel=1e-9)
    assert observations.peak_request_rate_per_second == pytest.approx(30, rel=0.01)


def test_peaks_are_unknown_without_series_never_zero(observed: dict[ProfileKey, Observations]) -> None:
    ghost = observed[("ghost", "nothing")]
    for field in ("peak_cpu_usage_millicores_total", "peak_memory_working_set_bytes_per_pod",
                  "peak_request_rate_per_second"):
        assert getattr(ghost, field) == Unknown("no series for ghost/nothing"), field
    assert ghost.peak_pool_demand_connections == Unknown("pool tuning is off")


# --- which containers count ------------------------------------------------------------------------------

WITH_SIDECAR_IN_TEMPLATE = LiveConfig(hpa=None, containers=(
    *LIMITED.containers, ContainerResources(name="istio-proxy", cpu_request_millicores=100)))


@pytest.mark.parametrize(("live", "counted"), [
    (LIMITED, ("app",)),  # istio-proxy was injected: its usage is not the template's requests' business
    (WITH_SIDECAR_IN_TEMPLATE, ("app", "istio-proxy")),  # the template names it: counted, like its request
    (LiveConfig(hpa=None, containers=()), ("app", "istio-proxy")),  # the template unknown: every container
])
def test_the_container_signals_count_the_containers_of_the_pod_template(
    prometheus: PrometheusServer, cluster: OpenMetricsWriter, live: LiveConfig, counted: tuple[str, ...]
) -> None:
    shop = next(w for w in WORKLOADS if (w.namespace, w.name) == ("shop", "api"))
    target = ProfileTarget(make_profile("shop", "api", url=prometheus.url), live)
    observations = fetch_observations([target], at=AT, settings=settings_for(prometheus.url))[("shop", "api")]
    cpu = observations.cpu_usage_millicores_per_pod
    assert isinstance(cpu, Series)
    series = _series_of(cluster, "container_cpu_usage_seconds_total", shop, lambda la: la["container"] in counted)
    per_pod = _per_pod(series, lambda points: rate_at(points, at_seconds=AT_SECONDS,
                                                           range_seconds=RATE_WINDOW_SECONDS))
    assert cpu.values[-1] == pytest.approx(1000 * math.fsum(per_pod.values()) / len(per_pod), rel=1e-9)


def _container_working_set(cluster: OpenMetricsWriter, workload: Workload, container: str, t: int) -> float | None:
    """The container's largest working set among the workload's pods at ``t``, as written."""
    values = [instant_at(points, at_seconds=t) for _, points in _series_of(
        cluster, "container_memory_working_set_bytes", workload, lambda la: la["container"] == container)]
    known = [value for value in values if value is not None]
    return max(known) if known else None


def test_each_container_of_the_template_has_its_own_cpu_throttling_working_set_and_peak(
    prometheus: PrometheusServer, cluster: OpenMetricsWriter
) -> None:
    shop = workload_named("shop", "api")
    live = replace(WITH_SIDECAR_IN_TEMPLATE, containers=(
        *WITH_SIDECAR_IN_TEMPLATE.containers, ContainerResources(name="migrations", memory_request_bytes=2**20)))
    target = ProfileTarget(make_profile("shop", "api", url=prometheus.url), live)
    observations = fetch_observations([target], at=AT, settings=settings_for(prometheus.url))[("shop", "api")]
    for container in ("app", "istio-proxy"):
        assert_matches(observations.memory_working_set_bytes_by_container[container],
                       {t: _container_working_set(cluster, shop, container, t) for t in STEPS})
        assert observations.peak_memory_working_set_bytes_by_container[container] == pytest.approx(
            _largest([_container_working_set(cluster, shop, container, t) for t in HOUR_STEPS]), rel=1e-9)
    app = observations.memory_working_set_bytes_by_container["app"]
    proxy = observations.memory_working_set_bytes_by_container["istio-proxy"]
    assert isinstance(app, Series) and isinstance(proxy, Series)
    assert proxy.maximum == pytest.approx(0.1 * app.maximum, rel=0.05)  # the sidecar's tenth of the app's
    for container in ("app", "istio-proxy"):  # CPU: the mean over pods; throttling: the worst pod
        def rate(points: Any) -> float | None:
            return rate_at(points, at_seconds=AT_SECONDS, range_seconds=RATE_WINDOW_SECONDS)

        def mine(labels: dict[str, str], name: str = container) -> bool:
            return labels["container"] == name

        cpu = _per_pod(_series_of(cluster, "container_cpu_usage_seconds_total", shop, mine), rate)
        usage = observations.cpu_usage_millicores_by_container[container]
        assert isinstance(usage, Series)
        assert usage.values[-1] == pytest.approx(1000 * math.fsum(cpu.values()) / len(cpu), rel=1e-9)
        throttled = _per_pod(_series_of(cluster, "container_cpu_cfs_throttled_periods_total", shop, mine), rate)
        periods = _per_pod(_series_of(cluster, "container_cpu_cfs_periods_total", shop, mine), rate)
        ratio = observations.cpu_throttled_ratio_by_container[container]
        assert isinstance(ratio, Series)
        assert ratio.values[-1] == pytest.approx(max(throttled[pod] / periods[pod] for pod in throttled), rel=1e-9)
    # A container of the template that never ran (no cAdvisor series) is unknown, never zero.
    missing = Unknown("no series for shop/api container migrations")
    assert observations.memory_working_set_bytes_by_container["migrations"] == missing
    assert observations.peak_memory_working_set_bytes_by_container["migrations"] == missing
    assert observations.cpu_usage_millicores_by_container["migrations"] == missing
    assert observations.cpu_throttled_ratio_by_container["migrations"] == Unknown(
        "no CFS throttling series for shop/api container migrations: it has no CPU limit")


def test_a_profile_with_an_unknown_template_does_not_unfilter_the_others(
    prometheus: PrometheusServer, cluster: OpenMetricsWriter
) -> None:
    shop = next(w for w in WORKLOADS if (w.namespace, w.name) == ("shop", "api"))
    targets = [ProfileTarget(make_profile("shop", "api", url=prometheus.url), LIMITED),
               ProfileTarget(make_profile("media", "stream", url=prometheus.url), LiveConfig(hpa=None, containers=()))]
    observed = fetch_observations(targets, at=AT, settings=settings_for(prometheus.url))
    cpu = observed[("shop", "api")].cpu_usage_millicores_per_pod
    assert isinstance(cpu, Series)
    assert isinstance(observed[("media", "stream")].cpu_usage_millicores_per_pod, Series)
    series = _series_of(cluster, "container_cpu_usage_seconds_total", shop, lambda la: la["container"] == "app")
    per_pod = _per_pod(series, lambda points: rate_at(points, at_seconds=AT_SECONDS,
                                                           range_seconds=RATE_WINDOW_SECONDS))
    assert cpu.values[-1] == pytest.approx(1000 * math.fsum(per_pod.values()) / len(per_pod), rel=1e-9)


# What Prometheus answers when a query runs past the timeout it was given (web/api/v1: errorTimeout -> 503).
def test_a_cycle_over_hundreds_of_namespaces_passes_a_proxy_with_nginx_default_url_limit(
    prometheus: PrometheusServer,
) -> None:
    # Each query names every namespace with a profile; 400 of them make queries of tens of KB, which a proxy
    # such as nginx (8 KB request line by default) answers with 414 when they travel in the URL.
    proxy = RecordingProxy(prometheus.url, max_request_line_bytes=8192)
    targets = [ProfileTarget(make_profile(f"team-{i:03d}-payments", "api"), LIMITED) for i in range(400)]
    targets.append(ProfileTarget(make_profile("shop", "api"), LIMITED))
    try:
        result = fetch_observations(targets, at=AT, settings=settings_for(proxy.url, retries=0))
    finally:
        proxy.close()
    longest_query_bytes = max(len(query["query"]) for query in proxy.queries_seen)
    assert longest_query_bytes > 8192
    assert result.unreachable == {}
    observations = result[("shop", "api")]
    assert isinstance(observations.request_rate_per_second, Series)
    assert isinstance(observations.peak_request_rate_per_second, float)
    assert isinstance(observations.cpu_usage_millicores_per_pod, Series)


@pytest.mark.parametrize("status", [301, 302, 307])
def test_a_redirect_is_a_failed_query_that_names_where_it_points_never_a_form_lost_on_the_way(
    prometheus: PrometheusServer, status: int
) -> None:
    # Following a 301-303 turns the POST into a GET without its form: Prometheus then answers "invalid parameter
    # start", which says nothing of the redirect. Not followed, it is named with where it points.
    target = f"{prometheus.url}/api/v1/query_range"

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(status)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with PrometheusReader(settings_for(url, retries=0)) as reader, pytest.raises(PrometheusQueryError) as raised:
            reader.query_range("up", signal="test", end=AT, window_seconds=60, step_seconds=60)
    finally:
        server.shutdown()
        server.server_close()
    assert str(raised.value) == (f"prometheus {url}: the server redirects (HTTP {status}) to {target}: set the "
                                 f"Prometheus URL to where it points")


_SERVER_TIMEOUT = (503, json.dumps({"status": "error", "errorType": "timeout",
                                    "error": "query timed out in expression evaluation"}).encode())


def _fetch_shop_through(proxy: RecordingProxy, *, at: datetime = AT, **settings: Any) -> CycleObservations:
    """shop/api's observations at ``at``, read through ``proxy`` (closed after) with these reader settings."""
    try:
        return fetch_observations([ProfileTarget(make_profile("shop", "api"), LIMITED)], at=at,
                                  settings=settings_for(proxy.url, **settings))
    finally:
        proxy.close()


def test_a_query_the_server_times_out_fails_alone_and_the_rest_of_the_cycle_is_still_asked(
    prometheus: PrometheusServer,
) -> None:
    # The 7-day peak subqueries are the heaviest: on a large cluster they are the ones to time out.
    proxy = RecordingProxy(prometheus.url)
    proxy.answer_for = lambda promql: _SERVER_TIMEOUT if promql.startswith("max_over_time(") else None
    result = _fetch_shop_through(proxy, retries=0)
    assert result.unreachable == {}
    observations = result[("shop", "api")]
    peak = observations.peak_request_rate_per_second
    assert isinstance(peak, Unknown) and "query timed out on the server" in peak.reason
    assert isinstance(observations.cpu_usage_millicores_per_pod, Series)  # asked after the peaks, answered
    assert isinstance(observations.replicas, Series)
    # The server is given a little less time than the client waits, so that it is the one to answer.
    sent = [float(query["timeout"].removesuffix("ms")) / 1000 for query in proxy.queries_seen]
    assert all(0 < seconds < settings_for(proxy.url).timeout_seconds for seconds in sent)


def test_an_answer_with_warnings_is_a_failed_query_not_partial_data(prometheus: PrometheusServer) -> None:
    # Thanos answers with the stores it could reach and a warning for the rest: a sum over a subset reads low.
    proxy = RecordingProxy(prometheus.url)

    def warn_on_replicas(answer: dict[str, Any], promql: str) -> dict[str, Any]:
        return {**answer, "warnings": ["No StoreAPIs matched for this query"]} if promql.startswith("count by") \
            else answer

    proxy.rewrite = warn_on_replicas
    result = _fetch_shop_through(proxy, retries=0)
    observations = result[("shop", "api")]
    assert isinstance(observations.replicas, Unknown)
    assert "answer with warnings (partial data?): No StoreAPIs matched" in observations.replicas.reason
    assert isinstance(observations.cpu_usage_millicores_per_pod, Series)
    assert {query.get("partial_response") for query in proxy.queries_seen} == {"false"}


def test_a_promql_info_note_among_the_warnings_is_not_a_failure(prometheus: PrometheusServer) -> None:
    # Prometheus 2.46-2.49 sent "PromQL info:" notes as warnings on ordinary answers (a counter whose name has
    # no _total, a histogram fixed for monotonicity): routine, no data missing.
    proxy = RecordingProxy(prometheus.url)
    proxy.rewrite = lambda answer, _: {
        **answer, "warnings": ['PromQL info: metric might not be a counter, name does not end in _total']}
    result = _fetch_shop_through(proxy, retries=0)
    assert isinstance(result[("shop", "api")].request_rate_per_second, Series)


@pytest.mark.parametrize(("rewritten", "said"), [
    ({"status": "error", "errorType": "execution", "error": "many-to-many matching not allowed"},
     "query refused: HTTP 200: execution: many-to-many matching not allowed"),
    ({"status": "success", "data": {"resultType": "vector", "result": []}},
     "unexpected answer: resultType 'vector', expected 'matrix'"),
])
def test_a_200_that_is_an_error_or_no_matrix_is_a_failed_query_that_says_so(
    prometheus: PrometheusServer, rewritten: dict[str, Any], said: str
) -> None:
    # A proxy or a look-alike that answers 200: an error's own text is kept, and a vector is not read as series
    # without samples ("no samples in the window" for every signal, the server counted as answering).
    proxy = RecordingProxy(prometheus.url)
    proxy.rewrite = lambda answer, promql: rewritten if promql.startswith("count by") else answer
    result = _fetch_shop_through(proxy, retries=0)
    observations = result[("shop", "api")]
    assert isinstance(observations.replicas, Unknown)
    assert said in observations.replicas.reason
    assert isinstance(observations.cpu_usage_millicores_per_pod, Series)


def test_a_window_too_long_for_one_range_query_leaves_that_profile_unknown_and_the_others_read(
    prometheus: PrometheusServer,
) -> None:
    # 192h at a 60 s step is 11,520 steps: Prometheus refuses the range, and widened to it the shared range
    # queries failed for every profile on the server. 11,000 steps (183h20m) are answered.
    targets = [ProfileTarget(make_profile("shop", "api", url=prometheus.url), LIMITED),
               ProfileTarget(make_profile("media", "stream", url=prometheus.url, window="192h",
                                          peak_window="192h"), LIMITED),
               ProfileTarget(make_profile("billing", "invoices", url=prometheus.url, window="183h20m",
                                          peak_window="192h"), LIMITED)]
    result = fetch_observations(targets, at=AT, settings=settings_for(prometheus.url))
    shop, media = result[("shop", "api")], result[("media", "stream")]
    assert isinstance(shop.request_rate_per_second, Series)
    assert isinstance(shop.cpu_usage_millicores_by_container["app"], Series)
    said = ("guardrails.window 192h at a 60s step is 11520 steps, more than the 11000 a Prometheus range query "
            "answers: shorten the window or raise the reader's step")
    assert media.request_rate_per_second == Unknown(said)
    assert media.cpu_usage_millicores_by_container["app"] == Unknown(said)
    assert isinstance(media.peak_request_rate_per_second, float)  # one point at the evaluation time
    # billing's 183h20m is the widest range the others share: answered (an hour of data in it is too little).
    billing_rate = result[("billing", "invoices")].request_rate_per_second
    assert isinstance(billing_rate, Unknown) and billing_rate.reason.startswith("too few samples: 60 of 11001")


def _observed_with_error_matcher(prometheus: PrometheusServer, key: ProfileKey, error_matcher: str) -> Observations:
    target = ProfileTarget(make_profile(*key, url=prometheus.url, metrics={"errorMatcher": error_matcher}), LIMITED)
    return fetch_observations([target], at=AT, settings=settings_for(prometheus.url))[key]


@pytest.mark.parametrize("error_matcher", ['status_class!="2xx"', 'code=~"5..", status_class!~"2.."'])
def test_an_error_matcher_that_matches_a_missing_label_on_a_counter_without_it_is_unknown_never_all_failed(
    prometheus: PrometheusServer, error_matcher: str
) -> None:
    # shop/api's counter carries `code`, not `status_class`: a matcher that also selects series without the
    # label would count every request as failed (a ratio of 1 where 0.5% fail), and roll back any change.
    observations = _observed_with_error_matcher(prometheus, ("shop", "api"), error_matcher)
    assert observations.error_ratio == Unknown(
        "no request series of shop/api carries the label(s) spec.metrics.errorMatcher also matches when missing "
        "(status_class): every request would read as failed")
    assert isinstance(observations.request_rate_per_second, Series)


@pytest.mark.parametrize("error_matcher", ['code!~"2..|3..|4.."', 'status_class="5xx"'])
def test_an_error_matcher_needs_no_label_of_a_series_that_did_not_fail(
    prometheus: PrometheusServer, error_matcher: str
) -> None:
    # media/stream never failed. A negated matcher on `code`, which its series carry, still reads a measured
    # 0; so does a positive one on a label no series has (a label only failures carry, as OpenTelemetry's
    # error_type, looks the same until the first failure).
    measured = _observed_with_error_matcher(prometheus, ("media", "stream"), error_matcher).error_ratio
    assert isinstance(measured, Series) and set(measured.values) == {0.0}


def _serve_once(answer: Callable[[http.server.BaseHTTPRequestHandler], None]) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            answer(self)

        def log_message(self, *_: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _query_with(server: http.server.ThreadingHTTPServer, **settings: Any) -> PrometheusError:
    """The error of one query to ``server`` (which is shut down after), retries off."""
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with PrometheusReader(settings_for(url, retries=0, **settings)) as reader, \
                pytest.raises(PrometheusError) as raised:
            reader.query_range("up", signal="test", end=AT, window_seconds=60, step_seconds=60)
    finally:
        server.shutdown()
        server.server_close()
    return raised.value


def _query_fails_with(server: http.server.ThreadingHTTPServer, **settings: Any) -> str:
    error = _query_with(server, **settings)
    assert isinstance(error, PrometheusQueryError)
    return error.cause


def test_an_answer_still_trickling_in_at_the_deadline_is_a_failed_query_not_a_held_cycle() -> None:
    # requests' timeout bounds each read of the socket: a byte every 0.2 s would never trip it.
    def trickle(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        try:
            for _ in range(200):
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(0.2)
        except OSError:
            return  # the reader hung up

    began = time.monotonic()
    cause = _query_fails_with(_serve_once(trickle), timeout_seconds=1.0)
    assert cause.startswith("answer still arriving at the deadline (")
    assert time.monotonic() - began < 20  # not the 40 s the trickle lasts


def test_an_answer_larger_than_the_reader_takes_is_a_failed_query(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_module, "MAX_ANSWER_BYTES", 1000)
    body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"pod": f"p{i}"}, "values": [[1, "1"]]} for i in range(100)]}}).encode()

    def large(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    assert len(body) > 2 * 1000
    assert _query_fails_with(_serve_once(large)) == "answer of more than 1,000 bytes: not read"


def test_a_server_that_stalls_mid_answer_is_a_timeout_never_a_crash_of_the_cycle() -> None:
    def stall(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b'{"status": ')
        handler.wfile.flush()
        time.sleep(3)

    error = _query_with(_serve_once(stall), timeout_seconds=0.5)
    assert isinstance(error, PrometheusUnreachable)
    assert error.cause.startswith("timed out (1 attempt(s) in ")


@pytest.mark.parametrize(("headers", "body"), [
    ({"Content-Length": "1000"}, b'{"status": "success"'),  # cut short
    ({"Content-Length": "20", "Content-Encoding": "gzip"}, b"not gzip at all, no."),
])
def test_an_answer_cut_short_or_undecodable_is_a_failed_query_never_a_crash_of_the_cycle(
    headers: dict[str, str], body: bytes
) -> None:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
        handler.close_connection = True

    error = _query_with(_serve_once(answer))
    assert isinstance(error, PrometheusQueryError)
    assert error.cause.startswith("unexpected answer: ")


def test_a_server_refusing_every_query_was_reached_and_gave_no_result(prometheus: PrometheusServer) -> None:
    # Reached, so not "unreachable"; but nothing to plan from, which plan reports apart (exit 3).
    proxy = RecordingProxy(prometheus.url)
    proxy.answer_for = lambda _: (400, b'{"status":"error","errorType":"bad_data","error":"parse error"}')
    result = _fetch_shop_through(proxy, retries=0)
    assert dict(result.unreachable) == {}
    assert set(result.without_result) == {proxy.url}
    assert all(isinstance(error, PrometheusQueryError) for error in result.without_result[proxy.url])


@pytest.mark.parametrize("first_answers", [None, (400, b'{"status":"error","error":"parse error"}')],
                         ids=["with-series", "refused"])
def test_a_server_gone_after_answering_some_queries_is_not_listed_as_unreachable(
    prometheus: PrometheusServer, first_answers: tuple[int, bytes] | None
) -> None:
    # Listed as unreachable, the whole cycle would read as "no Prometheus"; its lost signals say why one by one.
    # A refusal is an answer too: the server was there.
    proxy = RecordingProxy(prometheus.url)
    asked: list[str] = []

    def gone_after_three(promql: str) -> tuple[int, bytes] | None:
        asked.append(promql)
        return (502, b"bad gateway") if len(asked) > 3 else first_answers

    proxy.answer_for = gone_after_three
    result = _fetch_shop_through(proxy, retries=0)
    assert dict(result.unreachable) == {}
    replicas = result[("shop", "api")].replicas  # asked after the first three
    assert isinstance(replicas, Unknown) and replicas.reason.startswith(f"prometheus unreachable: prometheus "
                                                                        f"{proxy.url}: HTTP 502")


def test_the_evaluation_time_is_cut_to_whole_seconds_in_every_query_and_the_observations(
    prometheus: PrometheusServer,
) -> None:
    proxy = RecordingProxy(prometheus.url)
    result = _fetch_shop_through(proxy, at=AT + timedelta(microseconds=700_000))
    assert result[("shop", "api")].at == AT
    assert {query["end"] for query in proxy.queries_seen} == {str(round(AT.timestamp()))}
    assert isinstance(result[("shop", "api")].request_rate_per_second, Series)

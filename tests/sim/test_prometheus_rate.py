"""The simulated Prometheus computes rate() as Prometheus 2.42 does, and exposes what it scraped.

The hand-computed cases follow ``extrapolatedRate`` in Prometheus 2.42's promql/functions.go; each says
which of its rules it pins. All use ``rate(x[2m])`` evaluated at t = 120 s, i.e. the range [0 s, 120 s].
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import pytest

from perfpilot.api.status import ContainerResources, PoolSize
from perfpilot.observe.presets import CADVISOR
from perfpilot.sim.cluster import MIB, TICK_SECONDS, Cluster, ClusterParams
from perfpilot.sim.prometheus import (
    FAILED_CODE,
    OK_CODE,
    RATE_WINDOW_SECONDS,
    REQUESTS_METRIC,
    Prometheus,
    extrapolated_rate,
    extrapolated_rates,
)
from perfpilot.tuning.observations import Unknown

AT_SECONDS = 120.0
RANGE_SECONDS = 120.0


def _rate(samples: list[tuple[float, float]]) -> float | None:
    return extrapolated_rate(samples, at_seconds=AT_SECONDS, range_seconds=RANGE_SECONDS)


def test_a_sample_on_the_start_of_the_range_is_selected_as_prometheus_2_does() -> None:
    # [0, 120] holds all three: increase 60 over 120 s, both edges reached. A range without its start
    # (Prometheus 3) would hold the last two only, which did not move.
    assert _rate([(0.0, 100.0), (60.0, 160.0), (120.0, 160.0)]) == pytest.approx(0.5, rel=1e-12)


def test_samples_before_the_range_or_after_the_evaluation_are_not_selected() -> None:
    # 60 over 60 s; the 60 s gap back to the start is under 1.1 intervals (66 s), so it is extrapolated over.
    assert _rate([(-15.0, 0.0), (60.0, 160.0), (120.0, 220.0), (135.0, 10_000.0)]) == pytest.approx(1.0, rel=1e-12)


def test_counters_scraped_together_are_each_rated_exactly_as_on_their_own() -> None:
    # Three buckets scraped at the same instants, one before the range, one starting inside it, one reset: the
    # rates of the shared selection are the single-series rates, bit for bit (the replay's p95 rests on them).
    stamps = [-10.0, 5.0, 20.0, 35.0, 50.0, 65.0, 80.0, 95.0, 110.0, 125.0]
    columns = [[3.0 * k for k in range(10)], [0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 9.0, 9.0, 15.0, 20.0],
               [50.0, 60.0, 70.0, 2.0, 5.0, 9.0, 11.0, 20.0, 21.0, 40.0]]
    scrapes = [(stamp, tuple(column[k] for column in columns)) for k, stamp in enumerate(stamps)]
    together = extrapolated_rates(scrapes, at_seconds=AT_SECONDS, range_seconds=RANGE_SECONDS)
    alone = [_rate(list(zip(stamps, column, strict=True))) for column in columns]
    assert together == alone
    assert all(rate is not None and rate > 0 for rate in alone)
    assert extrapolated_rates(scrapes[:2], at_seconds=AT_SECONDS, range_seconds=RANGE_SECONDS) is None


def test_fewer_than_two_samples_in_the_range_give_no_rate() -> None:
    assert _rate([(-30.0, 10.0), (60.0, 20.0)]) is None
    assert _rate([]) is None


def test_gaps_to_the_edges_under_1_1_intervals_are_extrapolated_over() -> None:
    # Scrapes at 10, 25, ..., 115 s rising 2/s: 210 over 105 s, extended by 10 s and 5 s to the full 120 s.
    samples = [(10.0 + 15.0 * k, 1000.0 + 30.0 * k) for k in range(8)]
    assert _rate(samples) == pytest.approx(2.0, rel=1e-12)


def test_a_series_that_starts_inside_the_range_is_extrapolated_half_an_interval_back() -> None:
    # A pod created at 60 s: 60 over 60 s; the 60 s gap to the start is over 1.1 x 15 s, so only 7.5 s is
    # added: 60 x 67.5 / 60 / 120 = 0.5625 (the slope, 1.0, would claim the pod ran the whole range).
    samples = [(60.0 + 15.0 * k, 1000.0 + 15.0 * k) for k in range(5)]
    assert _rate(samples) == pytest.approx(0.5625, rel=1e-12)


def test_a_series_that_ends_inside_the_range_is_extrapolated_half_an_interval_forward() -> None:
    # A pod deleted after its scrape at 60 s: same numbers as a late start, mirrored.
    samples = [(15.0 * k, 1000.0 + 15.0 * k) for k in range(5)]
    assert _rate(samples) == pytest.approx(0.5625, rel=1e-12)


def test_a_counter_that_starts_at_zero_is_not_extrapolated_below_zero() -> None:
    # 0, 30, ..., 210 at 5, 20, ..., 110 s: the 5 s back to the start would go below zero, so only the 10 s
    # to the end are added: 210 x 115 / 105 / 120 (without the floor: 2.0).
    samples = [(5.0 + 15.0 * k, 30.0 * k) for k in range(8)]
    assert _rate(samples) == pytest.approx(210.0 * 115.0 / 105.0 / 120.0, rel=1e-12)


def test_the_extrapolation_back_stops_where_the_counter_would_have_been_zero() -> None:
    # 15, 45, ..., 225 at 10, ..., 115 s: zero lies 105 x 15 / 210 = 7.5 s back, short of the 10 s gap.
    samples = [(10.0 + 15.0 * k, 15.0 + 30.0 * k) for k in range(8)]
    assert _rate(samples) == pytest.approx(210.0 * (105.0 + 7.5 + 5.0) / 105.0 / 120.0, rel=1e-12)


def test_a_counter_reset_adds_the_value_before_the_drop() -> None:
    # 100 -> 145, restart, 5 -> 65: Prometheus counts 65 - 100 + 145 = 110 over the 120 s.
    values = [100.0, 115.0, 130.0, 145.0, 5.0, 20.0, 35.0, 50.0, 65.0]
    samples = [(15.0 * k, value) for k, value in enumerate(values)]
    assert _rate(samples) == pytest.approx(110.0 / 120.0, rel=1e-12)


def test_a_gap_just_over_1_1_intervals_gets_half_an_interval() -> None:
    # Scrapes every 10 s from 12 s to 112 s: 12 s back to the start is over 11 s, 8 s to the end is not.
    samples = [(12.0 + 10.0 * k, 500.0 + 10.0 * k) for k in range(11)]
    assert _rate(samples) == pytest.approx(100.0 * (100.0 + 5.0 + 8.0) / 100.0 / 120.0, rel=1e-12)


# --- the model's Prometheus: its signals are PromQL over the samples it exposes ----------------------


def _scraped_run() -> tuple[Prometheus, dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]],
                            list[float]]:
    """Ten minutes on 3 pods, 6 from minute 3, 2 from minute 6 (deleted pods), overloaded pool at the end."""
    resources = ContainerResources(name="app", cpu_request_millicores=500, cpu_limit_millicores=1000,
                                   memory_request_bytes=512 * MIB, memory_limit_bytes=1024 * MIB)
    cluster = Cluster.started(params=ClusterParams(), resources=resources,
                              pool=PoolSize(default_pool_size=2, reserve_pool_size=0), replicas=3, now_seconds=0.0)
    prometheus = Prometheus()
    written: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] = defaultdict(list)
    steps = []
    for minute in range(10):
        cluster.spec_replicas = {3: 6, 6: 2}.get(minute, cluster.spec_replicas)
        for _ in range(round(60 / TICK_SECONDS)):
            tick = cluster.advance(rate_per_second=20.0 + 10.0 * minute, dt_seconds=TICK_SECONDS)
            prometheus.scrape(cluster=cluster, tick=tick, now=cluster.now_seconds)
            for sample in prometheus.latest_samples():
                written[(sample.metric, tuple(sorted(sample.labels.items())))].append(
                    (sample.timestamp_seconds, sample.value))
        prometheus.evaluate(cluster.now_seconds)
        steps.append(cluster.now_seconds)
    return prometheus, written, steps


def test_the_signals_are_prometheus_rates_of_the_samples_the_model_exposes() -> None:
    prometheus, written, steps = _scraped_run()

    def rates(metric: str, at: float) -> dict[tuple[tuple[str, str], ...], float]:
        found = {labels: extrapolated_rate(points, at_seconds=at, range_seconds=RATE_WINDOW_SECONDS)
                 for (name, labels), points in written.items() if name == metric}
        return {labels: rate for labels, rate in found.items() if rate is not None}

    signals = {name: dict(values) for name, values in prometheus.signals.items()}
    deleted_pod_counted = False
    for at in steps[1:]:
        cpu = list(rates(CADVISOR.cpu_usage_seconds_total, at).values())
        assert signals["cpu_usage_millicores_per_pod"][at] == pytest.approx(1000.0 * math.fsum(cpu) / len(cpu),
                                                                          rel=1e-12)
        deleted_pod_counted = deleted_pod_counted or len(cpu) > signals["replicas"][at]
        by_code: dict[str, float] = defaultdict(float)  # sum by (code) over the pods' series
        for labels, rate in rates(REQUESTS_METRIC, at).items():
            by_code[dict(labels)["code"]] += rate
        total = by_code[OK_CODE] + by_code[FAILED_CODE]
        assert signals["request_rate_per_second"][at] == pytest.approx(total, rel=1e-12)
        assert signals["error_ratio"][at] == pytest.approx(by_code[FAILED_CODE] / total, rel=1e-12, abs=1e-15)
    assert deleted_pod_counted, "rate() still sees a deleted pod's samples in the range, as Prometheus does"
    assert max(signals["error_ratio"].values()) > 0, "the scenario must exercise the failed-requests counter"


def test_the_latest_samples_are_those_of_the_latest_scrape_only() -> None:
    prometheus, _, steps = _scraped_run()
    samples = list(prometheus.latest_samples())
    assert {sample.timestamp_seconds for sample in samples} == {steps[-1]}
    pods = {sample.labels["pod"] for sample in samples if sample.metric == CADVISOR.cpu_usage_seconds_total}
    assert len(pods) == 2
    assert list(Prometheus().latest_samples()) == []


def _write(prometheus: Prometheus, written: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]],
           ) -> None:
    for sample in prometheus.latest_samples():
        written[(sample.metric, tuple(sorted(sample.labels.items())))].append((sample.timestamp_seconds, sample.value))


def test_the_app_counters_never_decrease_when_more_requests_fail_than_arrive() -> None:
    # Every pod goes unready under a backlog: the backlog times out on top of the arrivals, so a tick fails
    # more requests than it receives. A counter that went down would read as a reset and inflate rate().
    resources = ContainerResources(name="app", cpu_request_millicores=500, cpu_limit_millicores=1000)
    cluster = Cluster.started(params=ClusterParams(), resources=resources,
                              pool=PoolSize(default_pool_size=20, reserve_pool_size=0), replicas=2, now_seconds=0.0)
    prometheus = Prometheus()
    written: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] = defaultdict(list)
    overfailed = False
    for tick_index in range(24):
        if tick_index == 12:
            for pod in cluster.pods:
                pod.ready_at_seconds = cluster.now_seconds + 600.0
        tick = cluster.advance(rate_per_second=400.0, dt_seconds=TICK_SECONDS)
        overfailed = overfailed or tick.failed > tick.requests
        prometheus.scrape(cluster=cluster, tick=tick, now=cluster.now_seconds)
        _write(prometheus, written)
    assert overfailed, "the scenario must fail more requests than arrive in a tick"
    for (metric, labels), points in written.items():
        if metric in (REQUESTS_METRIC, "http_request_duration_seconds_bucket"):
            values = [value for _, value in points]
            assert values == sorted(values), (metric, labels)


def test_a_container_restart_resets_its_pods_app_counters_and_rate_reads_it_as_prometheus_does() -> None:
    # Memory grows past the limit within minutes: the container is OOM-killed and restarts, its counters
    # from zero; the signals stay the rates of the written samples, resets included.
    resources = ContainerResources(name="app", cpu_request_millicores=1000, cpu_limit_millicores=2000,
                                   memory_request_bytes=400 * MIB, memory_limit_bytes=450 * MIB)
    params = ClusterParams(memory_growth_bytes_per_hour=600.0 * MIB, startup_seconds=15.0)
    cluster = Cluster.started(params=params, resources=resources,
                              pool=PoolSize(default_pool_size=20, reserve_pool_size=0), replicas=2, now_seconds=0.0)
    prometheus = Prometheus()
    written: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] = defaultdict(list)
    steps = []
    for _ in range(16):
        for _ in range(round(60 / TICK_SECONDS)):
            tick = cluster.advance(rate_per_second=20.0, dt_seconds=TICK_SECONDS)
            prometheus.scrape(cluster=cluster, tick=tick, now=cluster.now_seconds)
            _write(prometheus, written)
        prometheus.evaluate(cluster.now_seconds)
        steps.append(cluster.now_seconds)
    assert cluster.oom_kill_seconds, "the scenario must restart a container"
    ok_series = [points for (metric, labels), points in written.items()
                 if metric == REQUESTS_METRIC and dict(labels)["code"] == OK_CODE]
    resets = [later < earlier for points in ok_series for (_, earlier), (_, later) in itertools.pairwise(points)]
    assert any(resets), "a restarted container's ok counter starts again from zero"
    signals = dict(prometheus.signals["request_rate_per_second"])
    for at in steps[2:]:
        rates = [extrapolated_rate(points, at_seconds=at, range_seconds=RATE_WINDOW_SECONDS) for points in ok_series]
        assert signals[at] == pytest.approx(math.fsum(r for r in rates if r is not None), rel=1e-12)


def _evaluated_each_minute(cluster: Cluster, rates: list[float], *, unready_from_minute: int | None = None,
                           ) -> Prometheus:
    """``cluster`` scraped every tick at each minute's rate and evaluated at each minute's end; from
    ``unready_from_minute`` on, every pod goes unready for an hour (all requests time out)."""
    prometheus = Prometheus()
    for minute, rate in enumerate(rates):
        if minute == unready_from_minute:
            for pod in cluster.pods:
                pod.ready_at_seconds = cluster.now_seconds + 3600.0
        for _ in range(round(60 / TICK_SECONDS)):
            tick = cluster.advance(rate_per_second=rate, dt_seconds=TICK_SECONDS)
            prometheus.scrape(cluster=cluster, tick=tick, now=cluster.now_seconds)
        prometheus.evaluate(cluster.now_seconds)
    return prometheus


def _two_pods(replicas: int = 2) -> Cluster:
    resources = ContainerResources(name="app", cpu_request_millicores=1000, cpu_limit_millicores=2000,
                                   memory_request_bytes=1024 * MIB, memory_limit_bytes=2048 * MIB)
    return Cluster.started(params=ClusterParams(), resources=resources,
                           pool=PoolSize(default_pool_size=50, reserve_pool_size=0), replicas=replicas,
                           now_seconds=0.0)


def test_the_latency_p95_counts_the_timed_out_requests_in_the_inf_bucket() -> None:
    # From 120 s no pod is ready: every request times out, and the model books it in the +Inf bucket only
    # (it took the whole 10 s timeout, the largest finite bound). At 180 s the 2 m rate window holds a minute
    # served in well under a second and a minute failed (error ratio 0.5): the 95th percentile's rank falls
    # in +Inf, for which histogram_quantile returns the highest finite bound, 10.0 (Prometheus' rule).
    prometheus = _evaluated_each_minute(_two_pods(), [20.0] * 3, unready_from_minute=2)
    p95 = dict(prometheus.signals["latency_p95_seconds"])
    assert p95[120.0] < 0.5  # before: all served
    assert p95[180.0] == 10.0
    assert dict(prometheus.signals["error_ratio"])[180.0] == pytest.approx(0.5)


def test_the_request_rate_rise_is_the_rate_minus_the_rate_five_minutes_before() -> None:
    # `rate - rate offset 5m` (docs/simulator.md, Peaks): on ten pods that keep up, a load rising 2 req/s each
    # minute rises 5 x 2 = 10 req/s over any 5 minutes once the rates are settled (from 180 s on; the first
    # minutes' rates are short of the first scrapes).
    prometheus = _evaluated_each_minute(_two_pods(replicas=10), [20.0 + 2.0 * minute for minute in range(15)])
    assert prometheus.peak("peak_request_rate_rise_per_second", at_seconds=900.0,
                           window_seconds=480.0) == pytest.approx(10.0)


# --- proposed by the mutation audit. Extra import needed at the top of the file:
#     from perfpilot.tuning.observations import Unknown


def test_a_gap_to_the_start_of_exactly_1_1_intervals_gets_half_an_interval() -> None:
    # extrapolatedRate extrapolates only when the gap is strictly under 1.1 average intervals. Scrapes every
    # 10 s from 11 s to 111 s: 10 x 1.1 is 11.0 exactly in floats, so the 11 s back to the start is not under
    # it (half an interval, 5 s) and the 9 s to the end is: 100 x (100 + 5 + 9) / 100 / 120.
    samples = [(11.0 + 10.0 * k, 500.0 + 10.0 * k) for k in range(11)]
    assert _rate(samples) == pytest.approx(100.0 * (100.0 + 5.0 + 9.0) / 100.0 / 120.0, rel=1e-12)


def test_a_gap_to_the_end_of_exactly_1_1_intervals_gets_half_an_interval() -> None:
    # The same rule mirrored: scrapes every 10 s from 9 s to 109 s, 9 s to the start (under 11 s, extrapolated
    # over) and exactly 11 s to the end (not under it: 5 s).
    samples = [(9.0 + 10.0 * k, 500.0 + 10.0 * k) for k in range(11)]
    assert _rate(samples) == pytest.approx(100.0 * (100.0 + 9.0 + 5.0) / 100.0 / 120.0, rel=1e-12)


def test_a_counter_whose_first_value_is_negative_is_not_capped_at_its_zero_point() -> None:
    # The zero-point cap applies only when the first value is not negative. -15, 15, ..., 195 at 10, ..., 115 s:
    # both gaps (10 s, 5 s) are under 16.5 s and are extrapolated over in full, 210 x 120 / 105 / 120 = 2.0
    # (the cap would move the start 7.5 s past the first sample: 210 x 102.5 / 105 / 120).
    samples = [(10.0 + 15.0 * k, -15.0 + 30.0 * k) for k in range(8)]
    assert _rate(samples) == pytest.approx(2.0, rel=1e-12)


def test_a_falling_request_rate_has_a_negative_rise() -> None:
    # `rate - rate offset 5m` keeps its sign: a load falling 2 req/s each minute on ten pods that keep up falls
    # 10 req/s over any 5 minutes once the rates are settled (the steps from 480 s on), and the largest rise of
    # a window of falls is that fall, not its size.
    prometheus = _evaluated_each_minute(_two_pods(replicas=10), [60.0 - 2.0 * minute for minute in range(15)])
    assert prometheus.peak("peak_request_rate_rise_per_second", at_seconds=900.0,
                           window_seconds=420.0) == pytest.approx(-10.0)


def test_the_error_ratio_of_a_window_without_requests_is_nan_as_zero_over_zero_is() -> None:
    # Two minutes of load, then none: from 240 s the ok counters are flat over the whole 2 m range, so the
    # request rate is a measured 0 and the error ratio 0 / 0, NaN in PromQL (the reader turns it into
    # Unknown), not a measured 0.
    prometheus = _evaluated_each_minute(_two_pods(), [20.0, 20.0, 0.0, 0.0, 0.0])
    assert dict(prometheus.signals["request_rate_per_second"])[300.0] == 0.0
    assert math.isnan(dict(prometheus.signals["error_ratio"])[300.0])
    assert dict(prometheus.signals["error_ratio"])[120.0] == 0.0


def test_peaks_and_histories_have_no_value_before_their_first_step() -> None:
    # The windows are [at - window, at], closed at the end too: steps evaluated after ``at`` are not in them.
    prometheus = _evaluated_each_minute(_two_pods(), [20.0] * 3)
    assert isinstance(prometheus.peak("peak_cpu_usage_millicores_total", at_seconds=30.0, window_seconds=30.0),
                      Unknown)
    assert isinstance(prometheus.history("cpu_history_seconds", at_seconds=30.0, window_seconds=30.0), Unknown)

"""The replay runs the production decide() in the loop and is deterministic."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import ContainerResources, PoolSize
from perfpilot.sim import replay
from perfpilot.sim.cluster import CONTAINER, TICK_SECONDS, Cluster, ClusterParams
from perfpilot.sim.hpa import CPU, MEMORY, CalculatorConfig, Pod, PodMetric, _group_pods
from perfpilot.sim.prometheus import Prometheus
from perfpilot.sim.replay import (
    RUN_NAMES,
    _HpaDriver,
    build_hpa_spec,
    read_live_config,
    run_autoscaled,
    simulate,
    warm_up,
)
from perfpilot.sim.scenarios import GIB, SCENARIOS, WorkloadSettings, default_profile
from perfpilot.sim.trace import Trace, bundled_trace_path, load_trace, scale_for_peak
from perfpilot.tuning.engine import decide
from perfpilot.tuning.observations import Unknown


def _window(hours: float) -> Trace:
    trace = load_trace(bundled_trace_path()).window(start_seconds=16 * 3600, hours=hours)
    return trace.scaled(scale_for_peak(trace, cpu_demand_seconds=0.055, cpu_request_millicores=1000))


def test_the_same_inputs_give_the_same_outputs() -> None:
    trace = _window(2)
    first = simulate(trace=trace, scenario=SCENARIOS["small-pool"], profile=default_profile())
    second = simulate(trace=trace, scenario=SCENARIOS["small-pool"], profile=default_profile())
    for name in RUN_NAMES:
        assert first.runs[name].metrics == second.runs[name].metrics
        assert first.runs[name].timeline.p95_seconds == second.runs[name].timeline.p95_seconds


def test_perfpilot_grows_a_pool_that_makes_clients_wait() -> None:
    simulation = simulate(trace=_window(3), scenario=SCENARIOS["small-pool"], profile=default_profile(),
                          runs=("perfpilot", "static"))
    perfpilot = simulation.runs["perfpilot"]
    assert any("pool.size" in why for _, why in perfpilot.decisions)
    assert perfpilot.timeline.tuned["pool size"][-1] > 8
    assert simulation.runs["static"].timeline.tuned["pool size"][-1] == 8


def test_the_trace_peak_is_scaled_to_eight_static_pods_at_seventy_percent() -> None:
    trace = _window(6)
    # 8 pods x 70% x 1000m = 5600m of CPU; at 55 ms of CPU per request that is 101.8 req/s.
    assert abs(trace.peak_per_second - 5.6 / 0.055) < 1e-6


def test_the_oracle_meets_the_slo_with_no_more_pods_than_static() -> None:
    simulation = simulate(trace=_window(3), scenario=SCENARIOS["right-sized"], profile=default_profile(),
                          runs=("static", "oracle"))
    oracle, static = simulation.runs["oracle"].metrics, simulation.runs["static"].metrics
    assert oracle.slo_violation_minutes == 0
    assert oracle.replica_hours <= static.replica_hours


def test_the_peaks_are_the_largest_step_values_of_the_peak_window_and_a_warm_up_provides_them() -> None:
    history = Prometheus()
    for minute, value in enumerate([5.0, 9.0, 3.0, 4.0]):
        history._record_peak("peak_request_rate_per_second", 60.0 * minute, value)
    later = Prometheus()
    later.continue_from(history)
    assert later.peak("peak_request_rate_per_second", at_seconds=180.0, window_seconds=180.0) == 9.0
    assert later.peak("peak_request_rate_per_second", at_seconds=240.0, window_seconds=150.0) == 4.0
    # The step on the range's start counts, as max_over_time over a subquery keeps it (9.0 at 60 s).
    again = Prometheus()
    again.continue_from(history)
    assert again.peak("peak_request_rate_per_second", at_seconds=240.0, window_seconds=180.0) == 9.0
    assert again.peak("peak_request_rate_per_second", at_seconds=240.0, window_seconds=179.0) == 4.0
    assert isinstance(later.peak("peak_pool_demand_connections", at_seconds=240.0, window_seconds=150.0), Unknown)


def test_perfpilot_sees_the_warm_up_peak_before_the_window() -> None:
    whole = load_trace(bundled_trace_path())
    trace = whole.window(start_seconds=20 * 3600, hours=1)
    factor = scale_for_peak(trace, cpu_demand_seconds=0.055, cpu_request_millicores=1000)
    before = whole.window(start_seconds=14 * 3600, hours=6).scaled(factor)
    warm = warm_up(trace=before, settings=SCENARIOS["right-sized"].settings, params=SCENARIOS["right-sized"].params,
                   slo_seconds=0.5)
    peak = warm.peak("peak_request_rate_per_second", at_seconds=before.start_seconds + before.duration_seconds,
                     window_seconds=86400.0)
    assert isinstance(peak, float)
    assert abs(peak - max(before.rates_per_second)) < 0.1 * peak  # rate() over 2 minutes smooths a little


def test_the_largest_rise_is_the_request_rate_minus_the_rate_five_minutes_before() -> None:
    # 10 req/s for 20 minutes, then 60 req/s: once both ends of the 5 minutes are settled, rate - rate 5m ago
    # is 50; a 2-minute rate window only smooths the edge, it never adds to the step. The HPA's new pods
    # are ready about 4 minutes after the step and their series start then, so the last 10 minutes of 30
    # at 60 req/s are settled.
    trace = Trace("step", "rps", 0.0, 60.0, tuple([10.0] * 20 + [60.0] * 30))
    scenario = SCENARIOS["right-sized"]
    prometheus = warm_up(trace=trace, settings=scenario.settings, params=scenario.params, slo_seconds=0.5)
    rise = prometheus.peak("peak_request_rate_rise_per_second", at_seconds=trace.duration_seconds,
                           window_seconds=trace.duration_seconds)
    assert isinstance(rise, float)
    assert abs(rise - 50.0) < 0.5
    # Over the last 10 minutes the rate stood still: no rise.
    settled = prometheus.peak("peak_request_rate_rise_per_second", at_seconds=trace.duration_seconds,
                              window_seconds=600.0)
    assert isinstance(settled, float) and abs(settled) < 0.5


def _over_provisioned_cuts_in_four_hours_without_history(guardrails: dict[str, str]) -> list[float]:
    """When perfpilot's cuts come (seconds after the start) in 4 h of the bundled slice with no warm-up."""
    whole = load_trace(bundled_trace_path())
    trace = whole.window(start_seconds=0, hours=4)
    trace = trace.scaled(scale_for_peak(whole, cpu_demand_seconds=0.055, cpu_request_millicores=1000))
    raw = default_profile().model_dump(by_alias=True, mode="json")
    raw["guardrails"].update(guardrails)
    simulation = simulate(trace=trace, scenario=SCENARIOS["over-provisioned"],
                          profile=PerformanceProfileSpec.model_validate(raw), runs=("perfpilot",))
    return [at - trace.start_seconds for at, why in simulation.runs["perfpilot"].decisions
            if "Over-provisioned" in why]


def test_the_histories_count_the_warm_up_and_the_steps_since_within_the_peak_window() -> None:
    # 3 h of warm-up, then 1 h more: the week's history is 4 h of steps; a 2 h peak window holds 2 h of it.
    scenario = SCENARIOS["right-sized"]
    warm = warm_up(trace=Trace("before", "rps", 0.0, 60.0, (20.0,) * 180), settings=scenario.settings,
                   params=scenario.params, slo_seconds=0.5)
    later = Prometheus()
    later.continue_from(warm)
    warm_again = warm_up(trace=Trace("after", "rps", 3 * 3600.0, 60.0, (20.0,) * 60), settings=scenario.settings,
                         params=scenario.params, slo_seconds=0.5)
    later.continue_from(warm_again)
    later.continue_from(warm_again)  # handed over twice: counted once
    at = 4 * 3600.0
    for name in ("cpu_history_seconds", "pool_history_seconds"):
        week = later.history(name, at_seconds=at, window_seconds=7 * 86400.0)
        assert isinstance(week, float) and 3.9 * 3600 <= week <= 4 * 3600, name  # the first steps have no rate
        two_hours = later.history(name, at_seconds=at, window_seconds=2 * 3600.0)
        assert two_hours == 2 * 3600.0 + 60.0, name  # both ends count
        assert isinstance(Prometheus().history(name, at_seconds=at, window_seconds=3600.0), Unknown)


def test_a_window_longer_than_an_hour_is_covered_and_acted_on_once_it_has_passed() -> None:
    # The simulated Prometheus keeps what the profile's window needs: with a 2 h window (and a peak window as
    # short, all of whose history a cut needs), the first change that needs a covered window comes at 2 h.
    cuts = _over_provisioned_cuts_in_four_hours_without_history({"window": "2h", "peakWindow": "2h"})
    assert cuts
    assert cuts[0] >= 2 * 3600


def test_no_cut_comes_before_a_day_of_history_in_the_default_week() -> None:
    # The default peakWindow is a week: a replay with no history before it has 4 h of CPU readings, too few
    # for the peaks a cut relies on, however over-provisioned the pods are.
    assert _over_provisioned_cuts_in_four_hours_without_history({}) == []


def test_the_hpa_gets_no_metric_for_a_container_started_under_two_scrapes_ago(monkeypatch: pytest.MonkeyPatch) -> None:
    # metrics-server has no sample for a new container yet: the HPA must see its pod as missing (100% of its
    # request on a scale-down), not as a pod using what it uses while it starts.
    settings = SCENARIOS["right-sized"].settings
    cluster = Cluster.started(params=ClusterParams(), resources=settings.resources, pool=settings.pool, replicas=2,
                              now_seconds=0.0)
    driver = _HpaDriver()
    for _ in range(8):
        cluster.advance(rate_per_second=10.0)
        driver.sync(cluster=cluster, spec=build_hpa_spec(settings.hpa), now=cluster.now_seconds)
    cluster.spec_replicas = 4
    cluster.advance(rate_per_second=10.0)  # the two new pods are created at the tick's start: 15 s old
    reconcile = driver.controller.reconcile
    seen: dict[str, set[str]] = {}

    def capture(**arguments: Any) -> Any:
        seen.update({resource: set(by_pod) for resource, by_pod in arguments["metrics"].items()})
        return reconcile(**arguments)

    monkeypatch.setattr(driver.controller, "reconcile", capture)
    driver.sync(cluster=cluster, spec=build_hpa_spec(settings.hpa), now=cluster.now_seconds)
    new = {pod.name for pod in cluster.pods if cluster.now_seconds - pod.container_started_seconds < 30}
    old = {pod.name for pod in cluster.pods} - new
    assert len(new) == 2 and len(old) == 2
    assert seen[CPU] == old and seen[MEMORY] == old


def test_the_hpa_takes_a_limit_without_a_request_as_the_request_as_the_api_server_stores_it() -> None:
    # Three 1-core pods (a limit, no request) at 60 req/s need about 3.3 cores: the HPA scales them on the
    # defaulted request, where a missing request would leave it unable to compute any utilisation.
    limit_only = ContainerResources(name=CONTAINER, cpu_limit_millicores=1000, memory_limit_bytes=2 * GIB)
    settings = SCENARIOS["right-sized"].settings
    cluster = Cluster.started(params=ClusterParams(), resources=limit_only, pool=settings.pool, replicas=3,
                              now_seconds=0.0)
    driver = _HpaDriver()
    for _ in range(4):
        cluster.advance(rate_per_second=60.0)
        driver.sync(cluster=cluster, spec=build_hpa_spec(settings.hpa), now=cluster.now_seconds)
    assert cluster.spec_replicas > 3


def _metrics_seen_at_each_sync(driver: _HpaDriver, monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """The pods with a CPU metric at each of ``driver``'s syncs from now on."""
    seen: list[set[str]] = []
    reconcile = driver.controller.reconcile

    def capture(**arguments: Any) -> Any:
        seen.append(set(arguments["metrics"][CPU]))
        return reconcile(**arguments)

    monkeypatch.setattr(driver.controller, "reconcile", capture)
    return seen


def test_pods_running_before_the_first_sync_have_metrics_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = SCENARIOS["right-sized"].settings
    cluster = Cluster.started(params=ClusterParams(), resources=settings.resources, pool=settings.pool, replicas=3,
                              now_seconds=0.0)
    cluster.advance(rate_per_second=10.0)
    driver = _HpaDriver()
    seen = _metrics_seen_at_each_sync(driver, monkeypatch)
    driver.sync(cluster=cluster, spec=build_hpa_spec(settings.hpa), now=cluster.now_seconds)
    assert seen == [{pod.name for pod in cluster.pods}]


def test_a_restarted_container_has_no_metric_until_30_s_after_its_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    # An OOM kill restarts the container at the tick's start, the time of the sync before: that sync's sample
    # was the old container's and must not stand for the new one.
    settings = SCENARIOS["right-sized"].settings
    cluster = Cluster.started(params=ClusterParams(), resources=settings.resources, pool=settings.pool, replicas=2,
                              now_seconds=0.0)
    driver = _HpaDriver()
    spec = build_hpa_spec(settings.hpa)
    seen = _metrics_seen_at_each_sync(driver, monkeypatch)
    for _ in range(3):
        cluster.advance(rate_per_second=10.0)
        driver.sync(cluster=cluster, spec=spec, now=cluster.now_seconds)
    restarted = cluster.pods[0]
    restarted.container_started_seconds = cluster.now_seconds
    for _ in range(3):
        cluster.advance(rate_per_second=10.0)
        driver.sync(cluster=cluster, spec=spec, now=cluster.now_seconds)
    ages = [15.0, 30.0, 45.0]  # the restarted container's age at the three syncs after it
    assert [restarted.name in pods for pods in seen[3:]] == [age >= 30.0 for age in ages]


def test_the_hpa_sees_the_usage_metrics_server_scraped_one_tick_before_its_sync(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # metrics-server scrapes every 15 s and the HPA reads its latest sample: a jump in load shows in the
    # HPA's metric one sync after the tick it happened in, with that tick's timestamp.
    settings = SCENARIOS["right-sized"].settings
    cluster = Cluster.started(params=ClusterParams(), resources=settings.resources, pool=settings.pool, replicas=2,
                              now_seconds=0.0)
    driver = _HpaDriver()
    spec = build_hpa_spec(settings.hpa)
    seen: list[tuple[float, float]] = []
    reconcile = driver.controller.reconcile

    def capture(**arguments: Any) -> Any:
        samples = arguments["metrics"][CPU].values()
        if samples:  # none in the first 30 s of the pods
            seen.append((max(sample.timestamp_seconds for sample in samples),
                         sum(sample.value(CONTAINER) for sample in samples)))
        return reconcile(**arguments)

    monkeypatch.setattr(driver.controller, "reconcile", capture)
    usage: list[float] = []
    for rate in (5.0, 5.0, 5.0, 5.0, 20.0, 20.0):
        cluster.advance(rate_per_second=rate)
        usage.append(sum(pod.usage_millicores for pod in cluster.pods))
        driver.sync(cluster=cluster, spec=spec, now=cluster.now_seconds)
    assert seen[-2] == (cluster.now_seconds - 2 * TICK_SECONDS, pytest.approx(usage[3], abs=2))  # before the jump
    assert seen[-1] == (cluster.now_seconds - TICK_SECONDS, pytest.approx(usage[4], abs=2))
    assert usage[4] > 2 * usage[3]


@pytest.mark.parametrize(("usage_millicores", "seen_millicores"), [
    (769.6, 770),  # Quantity.MilliValue() rounds nanocores up
    (769.4, 770),  # up, not to the nearest: round() would read 769
    (769.0000000001, 769),  # float noise under a nanocore is not a millicore more
    (769.0, 769),
])
def test_the_hpa_reads_each_pods_cpu_rounded_up_to_a_millicore(usage_millicores: float, seen_millicores: int,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    settings = SCENARIOS["right-sized"].settings
    cluster = Cluster.started(params=ClusterParams(), resources=settings.resources, pool=settings.pool, replicas=2,
                              now_seconds=0.0)
    driver = _HpaDriver()
    seen: list[set[int]] = []
    reconcile = driver.controller.reconcile

    def capture(**arguments: Any) -> Any:
        seen.append({sample.value(CONTAINER) for sample in arguments["metrics"][CPU].values()})
        return reconcile(**arguments)

    monkeypatch.setattr(driver.controller, "reconcile", capture)
    for _ in range(3):
        cluster.advance(rate_per_second=10.0)
        for pod in cluster.pods:
            pod.usage_millicores = usage_millicores
        driver.sync(cluster=cluster, spec=build_hpa_spec(settings.hpa), now=cluster.now_seconds)
    assert seen[-1] == {seen_millicores}


def _run_with_no_pod_ready(*, minutes: int, slo_seconds: float) -> Any:
    """Pods whose memory limit is below what they use at start and whose container takes two hours to start:
    each is OOM-killed in the first tick and none is ready again in these minutes, so every request fails."""
    scenario = SCENARIOS["right-sized"]
    params = replace(scenario.params, startup_seconds=7200.0)
    tiny = scenario.settings.resources.model_copy(update={"memory_limit_bytes": params.base_memory_bytes // 2})
    trace = Trace("flat", "rps", 0.0, 60.0, tuple([20.0] * minutes))
    return run_autoscaled(name="static", trace=trace, settings=replace(scenario.settings, resources=tiny),
                          params=params, slo_seconds=slo_seconds)


def test_a_minute_whose_requests_all_time_out_has_the_timeout_as_its_p95() -> None:
    # A client sees each request fail at the timeout.
    params = SCENARIOS["right-sized"].params
    run = _run_with_no_pod_ready(minutes=10, slo_seconds=0.5)
    assert run.metrics.slo_violation_minutes == 10
    assert run.metrics.p95_max_seconds == pytest.approx(params.request_timeout_seconds, abs=1e-3)
    assert run.timeline.p95_seconds == [pytest.approx(params.request_timeout_seconds, abs=1e-3)] * 10


def test_a_minute_whose_requests_all_time_out_violates_an_slo_longer_than_the_timeout() -> None:
    # A failed request meets no latency objective: an SLO above the 10 s timeout does not make it one.
    run = _run_with_no_pod_ready(minutes=5, slo_seconds=30.0)
    assert run.metrics.slo_violation_minutes == 5


def test_no_minute_reports_a_p95_above_the_timeout() -> None:
    # 200m pods saturated: their backlog delay alone reaches the timeout, so every request a client waited
    # for that long has failed at it; the minute's p95 is the timeout, not the model's 15-40 s.
    scenario = SCENARIOS["right-sized"]
    small = ContainerResources(name=CONTAINER, cpu_request_millicores=200, cpu_limit_millicores=400,
                               memory_request_bytes=GIB, memory_limit_bytes=2 * GIB)
    settings = replace(scenario.settings, resources=small)
    trace = Trace("flat", "rps", 0.0, 60.0, tuple([200.0] * 5))
    run = run_autoscaled(name="static", trace=trace, settings=settings, params=scenario.params, slo_seconds=0.5)
    assert run.metrics.p95_max_seconds == pytest.approx(scenario.params.request_timeout_seconds, abs=1e-3)


def test_the_hpas_current_replicas_are_the_scale_its_last_sync_read_not_the_pods_that_exist() -> None:
    # status.currentReplicas is the Deployment's spec.replicas as the sync read it: a rollout's surge pods are
    # not counted, and a rescale at that sync shows in desiredReplicas only.
    settings = SCENARIOS["right-sized"].settings
    cluster = Cluster.started(params=ClusterParams(), resources=settings.resources, pool=settings.pool, replicas=4,
                              now_seconds=0.0)
    driver = _HpaDriver()
    cluster.set_resources(settings.resources.model_copy(update={"cpu_request_millicores": 1500}))
    cluster.advance(rate_per_second=20.0)  # the rollout's surge pod is up
    assert len(cluster.pods) == 5
    driver.sync(cluster=cluster, spec=build_hpa_spec(settings.hpa), now=cluster.now_seconds)
    assert driver.status_current_replicas == 4
    live = read_live_config(settings=settings, cluster=cluster, hpa=driver, window_seconds=1800.0)
    assert live.hpa is not None and (live.hpa.current_replicas, live.hpa.desired_replicas) == (4, 4)
    assert live.rollout_in_progress
    # Another Deployment, no rollout: at 150/s the first sync that rescales reads 4 and writes more.
    cluster = Cluster.started(params=ClusterParams(), resources=settings.resources, pool=settings.pool, replicas=4,
                              now_seconds=0.0)
    driver = _HpaDriver()
    for _ in range(20):
        cluster.advance(rate_per_second=150.0)
        if driver.sync(cluster=cluster, spec=build_hpa_spec(settings.hpa), now=cluster.now_seconds):
            break
    assert driver.status_current_replicas == 4 and cluster.spec_replicas > 4


def test_pool_connection_hours_count_the_reserves_connections_while_they_are_open() -> None:
    # 80/s x 120 ms = 9.6 connections on a pool of 8 + 10 reserve: the reserve opens within the first minutes
    # and stays open, so the hour holds nearly 18 connection-hours, not the pool size's 8.
    scenario = SCENARIOS["right-sized"]
    settings = replace(scenario.settings, pool=PoolSize(default_pool_size=8, reserve_pool_size=10))
    trace = Trace("flat", "rps", 0.0, 60.0, tuple([80.0] * 60))
    run = run_autoscaled(name="static", trace=trace, settings=settings, params=scenario.params, slo_seconds=0.5)
    assert 17.0 < run.metrics.pool_connection_hours < 18.0


def _leaking_pod() -> tuple[Cluster, WorkloadSettings]:
    """One pod whose working set grows 1500 MiB/h from 350 MiB against a 2 GiB limit: created an hour before
    t=0, it is OOM-killed 480 s in, then every 4080 s (1698 MiB / 1500 MiB/h) after its restart."""
    settings = SCENARIOS["right-sized"].settings
    params = replace(ClusterParams(), memory_growth_bytes_per_hour=1500.0 * 2**20)
    cluster = Cluster.started(params=params, resources=settings.resources, pool=settings.pool, replicas=1,
                              now_seconds=0.0)
    return cluster, settings


def test_a_container_oom_killed_twice_in_the_window_reaches_decide_as_one_kill() -> None:
    # The reader counts the container status's lastState.terminated (observe.workload.oom_kills_of): a
    # container killed twice shows its last kill only.
    cluster, settings = _leaking_pod()
    while len(cluster.oom_kill_seconds) < 2:
        cluster.advance(rate_per_second=1.0)
    assert cluster.oom_kill_seconds == [480.0, 4560.0]
    live = read_live_config(settings=settings, cluster=cluster, hpa=_HpaDriver(), window_seconds=7200.0)
    assert live.oom_kills_in_window == 1


def test_decide_reads_a_rollout_in_progress_while_its_last_new_pods_start_after_the_old_ones_are_gone() -> None:
    # The Deployment's Progressing condition stays ReplicaSetUpdated until the new pods are available
    # (docs/simulator.md, Rollouts), though no pod of the old template is left.
    settings = SCENARIOS["right-sized"].settings
    cluster = Cluster.started(params=ClusterParams(), resources=settings.resources, pool=settings.pool, replicas=2,
                              now_seconds=0.0)
    cluster.set_resources(settings.resources.model_copy(update={"cpu_request_millicores": 1500}))
    cluster.scale(4)  # the last old pod goes before two of the four new ones are ready
    for _ in range(40):
        if all(p.version == cluster.template_version for p in cluster.pods):
            break
        cluster.advance(rate_per_second=10.0)
    else:
        raise AssertionError("the old pods were never all deleted")
    assert len(cluster.pods) == 4 and not all(p.ready(cluster.now_seconds) for p in cluster.pods)
    live = read_live_config(settings=settings, cluster=cluster, hpa=_HpaDriver(), window_seconds=1800.0)
    assert live.rollout_in_progress is True


def _pods_seen_at_each_sync(driver: _HpaDriver, monkeypatch: pytest.MonkeyPatch,
                            ) -> list[tuple[float, list[Pod], dict[str, PodMetric]]]:
    """The sync time, the pods and their CPU metrics ``driver`` hands the controller at each of its syncs from
    now on."""
    seen: list[tuple[float, list[Pod], dict[str, PodMetric]]] = []
    reconcile = driver.controller.reconcile

    def capture(**arguments: Any) -> Any:
        seen.append((arguments["now_seconds"], list(arguments["pods"]), dict(arguments["metrics"][CPU])))
        return reconcile(**arguments)

    monkeypatch.setattr(driver.controller, "reconcile", capture)
    return seen


def test_a_pod_oom_restarted_after_its_cpu_initialisation_period_reaches_the_hpa_unready_since_its_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The pod's Ready condition went False at its restart (480 s): that is its lastTransitionTime. Past the
    # 300 s CPU initialisation period, the HPA's groupPods holds an unready pod's sample back only when it has
    # never been ready (startTime + 30 s, delayOfInitialReadinessStatus, after lastTransitionTime). This pod
    # was ready for an hour before the kill, so its sample counts: a ready pod to the calculation.
    cluster, settings = _leaking_pod()
    leaking = cluster.pods[0].name
    spec = build_hpa_spec(settings.hpa)
    driver = _HpaDriver()
    seen = _pods_seen_at_each_sync(driver, monkeypatch)
    while cluster.now_seconds < 480.0 + 45.0:
        cluster.advance(rate_per_second=1.0)
        driver.sync(cluster=cluster, spec=spec, now=cluster.now_seconds)
    assert cluster.oom_kill_seconds == [480.0]
    now, pods, metrics = seen[-1]
    [pod] = [pod for pod in pods if pod.name == leaking]
    assert now == 525.0 and now - pod.start_seconds > 300.0  # type: ignore[operator]
    assert (pod.ready, pod.ready_transition_seconds) == (False, 480.0)
    assert leaking in metrics  # 45 s after the restart, metrics-server has a sample of the new container
    ready, unready, missing, _ = _group_pods([pod], {leaking: metrics[leaking]}, resource=CPU,
                                             config=CalculatorConfig(), now_seconds=now)
    assert (ready, unready, missing) == (1, set(), set())


def test_a_pod_ready_at_exactly_a_sync_is_ready_to_the_hpa_as_to_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    # A scale-up's pod is created at a tick's start and ready 75 s later, which is the end of its fifth tick:
    # the sync at that instant sees it ready, as the Service does (SimPod.ready: ready_at <= now).
    settings = SCENARIOS["right-sized"].settings
    cluster = Cluster.started(params=ClusterParams(), resources=settings.resources, pool=settings.pool, replicas=2,
                              now_seconds=0.0)
    driver = _HpaDriver()
    seen = _pods_seen_at_each_sync(driver, monkeypatch)
    cluster.spec_replicas = 3
    for _ in range(6):
        cluster.advance(rate_per_second=10.0)
        driver.sync(cluster=cluster, spec=build_hpa_spec(settings.hpa), now=cluster.now_seconds)
    [new] = [pod for pod in cluster.pods if pod.created_seconds == 0.0]
    assert new.ready_at_seconds == 75.0
    readiness = [(now, next(pod.ready for pod in pods if pod.name == new.name)) for now, pods, _ in seen]
    assert readiness == [(15.0, False), (30.0, False), (45.0, False), (60.0, False), (75.0, True), (90.0, True)]


def test_decide_is_called_every_guardrails_interval_after_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    # guardrails.interval 5m: perfpilot's loop runs at t0 + 5 min, t0 + 10 min, not at the first minute.
    calls: list[float] = []

    def capture(profile: Any, observations: Any, state: Any, at: Any) -> Any:
        calls.append(at.timestamp())
        return decide(profile, observations, state, at)

    monkeypatch.setattr(replay, "decide", capture)
    raw = default_profile().model_dump(by_alias=True, mode="json")
    raw["guardrails"]["interval"] = "5m"
    t0 = 3600.0
    scenario = SCENARIOS["right-sized"]
    run_autoscaled(name="perfpilot", trace=Trace("flat", "rps", t0, 60.0, (20.0,) * 11), settings=scenario.settings,
                   params=scenario.params, slo_seconds=0.5, profile=PerformanceProfileSpec.model_validate(raw))
    assert calls == [t0 + 300.0, t0 + 600.0]


def test_a_baseline_run_without_the_model_prometheus_measures_the_same() -> None:
    # static and k8s-default run unscraped (nothing reads their observations): the scrapes and steps must
    # feed no metric, timeline value or random draw of the run, or the baselines would change with them.
    trace = _window(3)
    scenario = SCENARIOS["small-pool"]
    scraped = run_autoscaled(name="static", trace=trace, settings=scenario.settings, params=scenario.params,
                             slo_seconds=0.5)
    unscraped = run_autoscaled(name="static", trace=trace, settings=scenario.settings, params=scenario.params,
                               slo_seconds=0.5, scraped=False)
    assert scraped.metrics.slo_violation_minutes > 0  # the window shows the small pool's breaches
    assert unscraped.metrics == scraped.metrics
    assert unscraped.timeline == scraped.timeline
    assert scraped.prometheus is not None and unscraped.prometheus is None


def test_a_tuned_run_cannot_go_without_the_model_prometheus() -> None:
    scenario = SCENARIOS["right-sized"]
    with pytest.raises(ValueError, match="scraped must be True"):
        run_autoscaled(name="perfpilot", trace=_window(1), settings=scenario.settings, params=scenario.params,
                       slo_seconds=0.5, profile=default_profile(), scraped=False)


def test_only_a_run_read_at_its_end_skips_the_latency_of_early_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    # A scraped run that is not a warm-up (a test reading a static run's Prometheus) evaluates every step
    # whole; a warm-up's early steps skip latency and throttling, and the two flags that cannot go together
    # are refused.
    peaks_only_steps: list[bool] = []
    evaluate = Prometheus.evaluate

    def recording(self: Prometheus, now: float, *, peaks_only: bool = False) -> None:
        peaks_only_steps.append(peaks_only)
        evaluate(self, now, peaks_only=peaks_only)

    monkeypatch.setattr(Prometheus, "evaluate", recording)
    scenario = SCENARIOS["right-sized"]
    trace = _window(3)
    run_autoscaled(name="static", trace=trace, settings=scenario.settings, params=scenario.params, slo_seconds=0.5)
    assert len(peaks_only_steps) == 180 and not any(peaks_only_steps)
    peaks_only_steps.clear()
    warm_up(trace=trace, settings=scenario.settings, params=scenario.params, slo_seconds=0.5, window_seconds=1800.0)
    assert 0 < sum(peaks_only_steps) < 180 and not any(peaks_only_steps[sum(peaks_only_steps):])
    with pytest.raises(ValueError, match="read_only_at_end must be False"):
        run_autoscaled(name="perfpilot", trace=trace, settings=scenario.settings, params=scenario.params,
                       slo_seconds=0.5, profile=default_profile(), read_only_at_end=True)
    with pytest.raises(ValueError, match="an unscraped run has no Prometheus"):
        run_autoscaled(name="static", trace=trace, settings=scenario.settings, params=scenario.params,
                       slo_seconds=0.5, scraped=False, read_only_at_end=True)

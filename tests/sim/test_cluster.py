"""Pods start after a delay, requests changes roll out, memory growth ends in OOM restarts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from perfpilot.api.status import ContainerResources, PoolSize
from perfpilot.sim.baselines import latency_for
from perfpilot.sim.cluster import MIB, TICK_SECONDS, Cluster, ClusterParams, _throttled_share, timed_out_latency
from perfpilot.sim.queueing import compute_cpu_sojourn_mean_seconds, mixture_quantile
from perfpilot.sim.replay import _HpaDriver, build_hpa_spec
from perfpilot.sim.scenarios import SCENARIOS

RESOURCES = ContainerResources(name="app", cpu_request_millicores=1000, cpu_limit_millicores=2000,
                               memory_request_bytes=1024 * MIB, memory_limit_bytes=2048 * MIB)
PARAMS = ClusterParams()


def _cluster(replicas: int, params: ClusterParams = PARAMS) -> Cluster:
    pool = PoolSize(default_pool_size=20, reserve_pool_size=10)
    return Cluster.started(params=params, resources=RESOURCES, pool=pool, replicas=replicas, now_seconds=0.0)


def _ready(cluster: Cluster) -> int:
    return sum(1 for p in cluster.pods if p.ready(cluster.now_seconds))


def test_new_pods_become_ready_after_the_start_up_delay() -> None:
    cluster = _cluster(2)
    cluster.spec_replicas = 4
    cluster.advance(rate_per_second=10.0)
    assert len(cluster.pods) == 4
    assert _ready(cluster) == 2
    while cluster.now_seconds < PARAMS.startup_seconds:
        assert _ready(cluster) == 2
        cluster.advance(rate_per_second=10.0)
    cluster.advance(rate_per_second=10.0)
    assert _ready(cluster) == 4


def test_starting_pods_take_no_traffic_so_the_ready_ones_stay_busy() -> None:
    cluster = _cluster(2)
    before = cluster.advance(rate_per_second=40.0).latency.cdf(0.5)
    cluster.spec_replicas = 6
    during = cluster.advance(rate_per_second=40.0).latency.cdf(0.5)
    assert during == before


def test_a_request_change_rolls_out_without_dropping_below_three_quarters() -> None:
    cluster = _cluster(8)
    smaller = RESOURCES.model_copy(update={"cpu_request_millicores": 750, "cpu_limit_millicores": 1500})
    cluster.set_resources(smaller)
    lowest_ready = 8
    for _ in range(60):
        cluster.advance(rate_per_second=20.0)
        lowest_ready = min(lowest_ready, _ready(cluster))
        assert len(cluster.pods) <= 8 + 2  # maxSurge 25% of 8
    assert lowest_ready >= 6  # maxUnavailable 25% of 8
    assert len(cluster.pods) == 8
    assert all(p.resources == smaller for p in cluster.pods)


def test_growing_memory_ends_in_an_oom_kill_and_a_restart() -> None:
    fast_leak = replace(PARAMS, memory_growth_bytes_per_hour=2048.0 * MIB)  # the limit is reached within an hour
    cluster = Cluster(fast_leak, RESOURCES, PoolSize(default_pool_size=20, reserve_pool_size=10), 1, 0.0)
    cluster.advance(rate_per_second=1.0)  # creates the pod at t=0
    for _ in range(int(3600 / TICK_SECONDS)):
        cluster.advance(rate_per_second=1.0)
    assert cluster.oom_kill_seconds
    assert cluster.pods[0].restarts >= 1
    assert cluster.pods[0].working_set_bytes < RESOURCES.memory_limit_bytes  # type: ignore[operator]


def test_a_pool_below_the_offered_connections_builds_a_backlog_of_waiting_clients() -> None:
    cluster = _cluster(10)
    cluster.pool = PoolSize(default_pool_size=4, reserve_pool_size=0)
    outcome = cluster.advance(rate_per_second=60.0)  # 60/s x 0.12 s = 7.2 connections offered
    for _ in range(8):
        outcome = cluster.advance(rate_per_second=60.0)
    assert outcome.pool_client_waiting > 10
    assert outcome.latency.shift_seconds > PARAMS.db_seconds + 0.5


def test_the_pools_max_wait_is_the_oldest_clients_wait_with_the_saturated_backlog_included() -> None:
    # pgBouncer's maxwait is how long the oldest waiting client has waited. A pool of 4 serves at most
    # 4 / 0.12 s x 0.98 = 32.7/s of the 60/s: the backlog fills to the 10 s timeout's worth, 10 s x 32.7/s =
    # 326.7 clients, who arrived at 60/s, so the oldest has waited at least 326.7 / 60 = 5.44 s.
    cluster = _cluster(10)
    cluster.pool = PoolSize(default_pool_size=4, reserve_pool_size=0)
    ticks = [cluster.advance(rate_per_second=60.0) for _ in range(8)]
    assert cluster.pool_backlog_requests == pytest.approx(326.67, abs=0.01)
    assert ticks[-1].pool_max_wait_seconds >= 326.67 / 60.0


def test_a_new_pod_template_is_a_rollout_in_progress_until_no_pod_of_the_old_one_is_left() -> None:
    cluster = _cluster(4)
    cluster.advance(rate_per_second=10.0)
    assert not cluster.rollout_in_progress()
    cluster.set_resources(RESOURCES.model_copy(update={"cpu_request_millicores": 1500}))
    assert cluster.rollout_in_progress()
    for _ in range(200):
        cluster.advance(rate_per_second=10.0)
        if not cluster.rollout_in_progress():
            break
    assert not cluster.rollout_in_progress()
    assert all(p.resources.cpu_request_millicores == 1500 for p in cluster.pods)


def test_pods_starting_after_a_scale_up_are_no_rollout() -> None:
    cluster = _cluster(2)
    cluster.advance(rate_per_second=10.0)
    cluster.spec_replicas = 4
    cluster.advance(rate_per_second=10.0)
    assert len(cluster.pods) == 4 and not all(p.ready(cluster.now_seconds) for p in cluster.pods)
    assert not cluster.rollout_in_progress()


def test_the_pools_gauges_are_counts_at_the_scrape_not_the_mean_load() -> None:
    # 50 req/s x 120 ms = 6 connections offered on a pool of 20: pgBouncer's sv_active at a scrape is a
    # whole number around 6, and the largest of a half hour's readings sits well above it.
    cluster = _cluster(4)
    for _ in range(8):
        cluster.advance(rate_per_second=50.0)
    active = [cluster.advance(rate_per_second=50.0).pool_server_active for _ in range(120)]
    assert all(value == int(value) for value in active)
    assert 5.0 < sum(active) / len(active) < 7.0
    assert max(active) >= 10


BIG_POOL = PoolSize(default_pool_size=400, reserve_pool_size=0)  # no pool wait: the CPU side alone


def _sized(request_millicores: int, limit_millicores: int) -> ContainerResources:
    return RESOURCES.model_copy(update={"cpu_request_millicores": request_millicores,
                                        "cpu_limit_millicores": limit_millicores})


def _cpu_mean_seconds(cluster: Cluster, rate: float) -> float:
    rates = cluster.advance(rate_per_second=rate).latency.cpu_rates_per_second
    assert len(rates) == 1
    return 1.0 / rates[0]


def test_a_pod_with_more_cores_serves_faster_at_the_same_utilisation() -> None:
    # 70% of the CPU a pod gets: M/M/1 for a 1-core pod; a 4.5-core pod (3000m request, 1.5 x) shares its
    # cores among its requests, each on one core, and has far less queueing.
    one = Cluster.started(params=PARAMS, resources=_sized(1000, 1000), pool=BIG_POOL, replicas=4, now_seconds=0.0)
    big = Cluster.started(params=PARAMS, resources=_sized(3000, 6000), pool=BIG_POOL, replicas=4, now_seconds=0.0)
    demand = PARAMS.cpu_demand_seconds
    one_mean = _cpu_mean_seconds(one, 4 * 0.7 * 1.0 / demand)
    big_mean = _cpu_mean_seconds(big, 4 * 0.7 * 4.5 / demand)
    assert one_mean == pytest.approx(demand / 0.3)
    assert big_mean == pytest.approx(
        compute_cpu_sojourn_mean_seconds(demand_seconds=demand, cores=4.5, arrival_rate_per_second=0.7 * 4.5 / demand))
    assert big_mean < 0.5 * one_mean


def test_a_pod_under_one_core_never_serves_a_request_faster_than_its_demand_over_its_cores() -> None:
    # 300m request, 450m limit: 0.45 of a core, so one request alone takes 55 ms / 0.45 = 122 ms of CPU.
    small = Cluster.started(params=PARAMS, resources=_sized(300, 450), pool=BIG_POOL, replicas=2, now_seconds=0.0)
    demand = PARAMS.cpu_demand_seconds
    rho = 2 * 1.0 * demand / (2 * 0.45)
    assert _cpu_mean_seconds(small, 2.0) == pytest.approx(demand / (0.45 * (1.0 - rho)))
    assert _cpu_mean_seconds(small, 2.0) > demand / 0.45


@pytest.mark.parametrize(("request_millicores", "limit_millicores", "rate"),
                         [(1000, 2000, 60.0), (300, 450, 10.0), (3000, 6000, 200.0), (2000, 2000, 100.0)])
def test_the_oracle_and_the_cluster_give_a_pod_the_same_cpu_sojourn(request_millicores: int, limit_millicores: int,
                                                                     rate: float) -> None:
    resources = _sized(request_millicores, limit_millicores)
    cluster = Cluster.started(params=PARAMS, resources=resources, pool=BIG_POOL, replicas=5, now_seconds=0.0)
    oracle = latency_for(rate_per_second=rate, replicas=5, cpu_millicores=PARAMS.effective_cpu_millicores(resources),
                         pool_size=None, params=PARAMS)
    assert oracle is not None
    assert 1.0 / oracle.cpu_rates_per_second[0] == pytest.approx(_cpu_mean_seconds(cluster, rate), rel=1e-12)


def _half_rolled_to_smaller_pods() -> Cluster:
    """10 pods of 4500m (3000m request), 5 of them with 1500m (1000m request), as in the middle of a rollout
    (held there: the controller sees one template, so it neither creates nor deletes pods)."""
    big, small = _sized(3000, 6000), _sized(1000, 2000)
    cluster = Cluster.started(params=PARAMS, resources=big, pool=BIG_POOL, replicas=10, now_seconds=0.0)
    for pod in cluster.pods[5:]:
        pod.resources = small
    return cluster


def test_smaller_pods_given_more_than_they_can_serve_queue_their_excess_and_fail_it_past_the_timeout() -> None:
    # Round robin gives every pod 40 req/s (2.2 cores of work); a 1500m pod serves 26.7 at most (98%).
    cluster = _half_rolled_to_smaller_pods()
    demand, rate = PARAMS.cpu_demand_seconds, 10 * 2.2 / PARAMS.cpu_demand_seconds
    small_capacity = 5 * 1.5 / demand * PARAMS.utilisation_cap
    ticks = [cluster.advance(rate_per_second=rate) for _ in range(20)]
    assert set(cluster.cpu_backlogs) == {1500.0}  # the big pods keep up
    assert cluster.cpu_backlogs[1500.0].requests == pytest.approx(PARAMS.request_timeout_seconds * small_capacity)
    # Once the queue is full, what the small pods cannot serve fails, every tick.
    assert ticks[-1].failed == pytest.approx((rate / 2 - small_capacity) * TICK_SECONDS)
    usage = sorted({round(pod.usage_millicores, 6) for pod in cluster.pods})
    assert usage == [pytest.approx(1500 * PARAMS.utilisation_cap + 20), pytest.approx(2200 + 20)]
    # The small pods' requests wait for their backlog; the big pods' do not.
    latency = ticks[-1].latency
    assert latency.cdf(2.0) == pytest.approx(latency.group_weights[0], abs=0.02)
    assert mixture_quantile([(latency, 1.0)], 0.95) > PARAMS.request_timeout_seconds


def _overloaded_then_backlogged(replicas: int = 4) -> tuple[Cluster, float]:
    """1500m pods at 120 req/s for 3 ticks: above their 107 req/s, a backlog builds."""
    cluster = Cluster.started(params=PARAMS, resources=RESOURCES, pool=BIG_POOL, replicas=replicas, now_seconds=0.0)
    for _ in range(3):
        cluster.advance(rate_per_second=120.0)
    backlog = cluster.cpu_backlog_requests
    assert backlog > 100
    return cluster, backlog


def test_the_queue_of_pods_that_are_deleted_fails_with_them() -> None:
    cluster, backlog = _overloaded_then_backlogged()
    cluster.scale(2)
    tick = cluster.advance(rate_per_second=10.0)  # the two left drain their half at once
    assert tick.failed == pytest.approx(backlog / 2)
    assert cluster.cpu_backlog_requests == 0.0


def test_draining_a_backlog_uses_cpu() -> None:
    cluster, backlog = _overloaded_then_backlogged()
    cluster.advance(rate_per_second=10.0)  # 4 pods serve 107 req/s: the backlog drains within the tick
    served_per_pod = (10.0 + backlog / TICK_SECONDS) / 4
    expected = served_per_pod * PARAMS.cpu_demand_seconds * 1000.0 + PARAMS.idle_cpu_millicores
    assert [pod.usage_millicores for pod in cluster.pods] == [pytest.approx(expected)] * 4


def test_a_backlogs_delay_is_its_mean_over_the_tick_over_the_capacity() -> None:
    # One 1500m pod (1000m request x 1.5) serves 1.5 / 0.055 s x 0.98 = 26.7/s; at 100/s from an empty
    # backlog, the backlog reaches the timeout's worth (10 s x 26.7/s) within the tick. The model's rule
    # (docs/simulator.md: the backlog adds backlog / capacity to every request) over the tick is the mean
    # of the backlog before and after: (0 + 10 s) / 2 = 5 s.
    cluster = Cluster.started(params=PARAMS, resources=RESOURCES, pool=BIG_POOL, replicas=1, now_seconds=0.0)
    tick = cluster.advance(rate_per_second=100.0)
    assert tick.latency.group_shifts_seconds == pytest.approx((5.0,))


def test_a_starting_pod_burns_no_more_cpu_than_its_limit() -> None:
    # Start-up burns 300m, but a 250m limit is a CFS quota of 25 ms per 100 ms period: the pod uses 250m.
    cluster = Cluster(PARAMS, _sized(250, 250), BIG_POOL, 1, 0.0)
    cluster.advance(rate_per_second=1.0)  # creates the pod, which starts
    [pod] = cluster.pods
    assert not pod.ready(cluster.now_seconds)
    assert pod.usage_millicores == 250.0


def test_throttling_rises_quadratically_from_half_the_limit_to_every_period_at_it() -> None:
    # _throttled_share's documented rule: none at half the limit, ((u / limit - 0.5) / 0.5)^2 above it.
    assert _throttled_share(500.0, 1000) == 0.0
    assert _throttled_share(750.0, 1000) == pytest.approx(0.25)  # (0.25 / 0.5)^2; linear would be 0.5
    assert _throttled_share(1000.0, 1000) == 1.0
    assert _throttled_share(750.0, None) == 0.0  # no limit, no CFS quota


def test_a_request_that_times_out_is_seen_at_the_timeout() -> None:
    timeout = PARAMS.request_timeout_seconds
    mix = timed_out_latency(PARAMS)
    assert mix.cdf(timeout - 1e-6) == 0.0
    assert mix.cdf(timeout + 1e-6) == 1.0
    # No pod ready: every request fails, at the timeout.
    cluster = Cluster(PARAMS, RESOURCES, BIG_POOL, 2, 0.0)
    tick = cluster.advance(rate_per_second=10.0)
    assert tick.failed == pytest.approx(10.0 * TICK_SECONDS)
    assert mixture_quantile([(tick.latency, 1.0)], 0.95) == pytest.approx(timeout, abs=1e-3)


def _leaking(replicas: int) -> Cluster:
    # The newest pod has run for an hour, the others one start-up delay (75 s) apart before it; at 1500 MiB/h the
    # newest passes the 2 GiB limit 8 minutes in, then every 68 minutes.
    leak = replace(PARAMS, memory_growth_bytes_per_hour=1500.0 * MIB)
    return Cluster.started(params=leak, resources=RESOURCES, pool=BIG_POOL, replicas=replicas, now_seconds=0.0)


def test_a_container_killed_twice_shows_one_oom_kill() -> None:
    # A container status holds the last termination only (observe.workload.oom_kills_of counts that).
    cluster = _leaking(1)
    while len(cluster.oom_kill_seconds) < 2:
        cluster.advance(rate_per_second=1.0)
    assert cluster.oom_kill_seconds[0] > 0.0
    assert cluster.oom_kills_shown(since_seconds=0.0, until_seconds=cluster.now_seconds) == 1


def test_the_oom_kills_of_deleted_pods_are_not_shown() -> None:
    cluster = _leaking(4)
    while len(cluster.oom_kill_seconds) < 4:
        cluster.advance(rate_per_second=20.0)
    assert cluster.oom_kills_shown(since_seconds=0.0, until_seconds=cluster.now_seconds) == 4
    cluster.set_resources(RESOURCES.model_copy(update={"memory_limit_bytes": 8192 * MIB}))  # the raise rolls out
    while cluster.rollout_in_progress():
        cluster.advance(rate_per_second=20.0)
    assert cluster.oom_kill_seconds[-1] > cluster.now_seconds - 600  # killed minutes ago, by pods now gone
    assert cluster.oom_kills_shown(since_seconds=0.0, until_seconds=cluster.now_seconds) == 0


def test_an_oom_kill_is_shown_in_a_window_that_includes_either_end() -> None:
    cluster = _leaking(1)
    while not cluster.oom_kill_seconds:
        cluster.advance(rate_per_second=1.0)
    killed = cluster.oom_kill_seconds[0]
    assert cluster.oom_kills_shown(since_seconds=killed, until_seconds=killed + 60) == 1
    assert cluster.oom_kills_shown(since_seconds=killed - 60, until_seconds=killed) == 1
    assert cluster.oom_kills_shown(since_seconds=killed + 1e-3, until_seconds=killed + 60) == 0
    assert cluster.oom_kills_shown(since_seconds=killed - 60, until_seconds=killed - 1e-3) == 0


def test_an_hpa_scale_up_creates_its_pods_at_once_and_is_no_rollout() -> None:
    # decide() reads the Deployment right after the minute's last HPA sync: a real controller has created the
    # scale-up's pods by then, so updatedReplicas == spec.replicas.
    cluster = _cluster(2)
    driver = _HpaDriver()
    spec = build_hpa_spec(SCENARIOS["right-sized"].settings.hpa)
    for _ in range(20):
        cluster.advance(rate_per_second=60.0)
        if driver.sync(cluster=cluster, spec=spec, now=cluster.now_seconds):
            break
    else:
        raise AssertionError("the HPA never scaled up")
    assert cluster.spec_replicas > 2
    assert len(cluster.pods) == cluster.spec_replicas
    assert not cluster.rollout_in_progress()


def test_a_new_pod_of_the_same_size_takes_none_of_the_queue_of_the_pod_it_replaces() -> None:
    cluster, backlog = _overloaded_then_backlogged()
    # One backlogged pod goes and a fresh, ready pod of the same size takes its place within one tick.
    gone = cluster.pods[0]
    cluster.pods.remove(gone)
    cluster._create_pod(cluster.now_seconds - PARAMS.startup_seconds)
    tick = cluster.advance(rate_per_second=10.0)
    assert tick.failed == pytest.approx(backlog / 4)  # the gone pod's share, not carried by the new one


def test_an_hpa_rescale_during_a_rollout_leaves_the_rolling_update_to_its_own_pace() -> None:
    # docs/simulator.md (Rollouts): during a rollout the rescale waits for the next tick's rolling-update pass.
    # At 75 s the first new pods are ready, so a pass at the rescale's instant would delete old pods at once;
    # the rescale must touch no pod, and the rollout then goes as if the next pass had read spec.replicas 10.
    def rollout(*, rescale: bool) -> tuple[list[str], list[str], list[tuple[int, int]]]:
        cluster = _cluster(8)
        cluster.set_resources(_sized(1500, 3000))
        steps = []
        before = after = []
        for tick in range(12):
            if tick == 5:
                before = [p.name for p in cluster.pods]
                if rescale:
                    cluster.scale(10)  # the HPA writes a new count mid-rollout
                else:
                    cluster.spec_replicas = 10  # only the spec: the next pass reads it
                after = [p.name for p in cluster.pods]
            cluster.advance(rate_per_second=10.0)
            steps.append((sum(p.version != cluster.template_version for p in cluster.pods),
                          sum(p.version == cluster.template_version for p in cluster.pods)))
        return before, after, steps

    before, after, steps = rollout(rescale=True)
    assert len(before) == 10 and after == before  # 8 pods + 2 of surge (25% of 8): none created or deleted
    assert steps == rollout(rescale=False)[2]
    assert steps[-1] == (0, 10)  # the rescale took effect, on the new template


def test_a_container_with_a_limit_and_no_request_gets_the_limit_as_its_request() -> None:
    limit_only = ContainerResources(name="app", cpu_request_millicores=None, cpu_limit_millicores=800)
    assert PARAMS.effective_cpu_millicores(limit_only) == 800.0
    assert PARAMS.effective_cpu_millicores(ContainerResources(name="app")) == 0.0


def _pool_cluster(pool: PoolSize) -> Cluster:
    # Ten 1000m pods (15 cores with burst) carry 80/s x 55 ms = 4.4 cores: only the pool can hold requests up.
    return Cluster.started(params=PARAMS, resources=RESOURCES, pool=pool, replicas=10, now_seconds=0.0)


def test_the_reserves_connections_stay_open_while_the_pool_alone_would_be_saturated() -> None:
    # 80/s x 120 ms = 9.6 connections offered to a pool of 8 with a reserve of 10: clients wait past
    # reserve_pool_timeout once, pgBouncer opens the reserve, and those connections stay busy, so open.
    cluster = _pool_cluster(PoolSize(default_pool_size=8, reserve_pool_size=10))
    ticks = [cluster.advance(rate_per_second=80.0) for _ in range(int(1800 / TICK_SECONDS))]
    opened = next(i for i, tick in enumerate(ticks) if tick.pool_servers_open == 18)
    # pgBouncer's reserve_pool_timeout is 5 s. The pool of 8 serves 8 / 0.12 s x 0.98 = 65.3/s of the 80/s: the
    # backlog grows by 14.7/s x 15 s = 220 clients a tick, a wait of 220 / 65.3 = 3.4 s after the first tick
    # (under 5 s) and 6.7 s after the second: the third tick (index 2) is the first with the reserve open.
    assert opened == 2
    assert all(tick.pool_servers_open == 18 for tick in ticks[opened:])
    assert cluster.pool_backlog_requests == 0.0
    # Once the backlog drained, no client waits more than the M/M/18 queue's moments: no backlog rebuilt.
    assert all(tick.latency.shift_seconds < PARAMS.db_seconds + 0.5 for tick in ticks[opened + 8:])


def test_the_reserves_connections_close_once_unused_for_the_server_idle_timeout() -> None:
    cluster = _pool_cluster(PoolSize(default_pool_size=8, reserve_pool_size=10))
    while cluster.advance(rate_per_second=80.0).pool_servers_open != 18:
        pass
    # 20/s x 120 ms = 2.4 connections: the reserve's go idle (the tick that drains the wait may still use them).
    opened = [cluster.advance(rate_per_second=20.0).pool_servers_open for _ in range(80)]
    # pgBouncer's server_idle_timeout is 600 s: the reserve was last needed in the last tick at 80/s; it stays
    # open 600 s after that tick's end, i.e. 600 s / 15 s = 40 ticks at 20/s, and the tick starting exactly
    # 600 s later finds it closed.
    assert opened == [18] * 40 + [8] * 40


def test_a_reserve_closed_after_the_idle_timeout_opens_again_only_once_a_client_has_waited() -> None:
    # As above, the reserve is closed from the 41st tick at 20/s (600 s / 15 s = 40 ticks open). A return to
    # 80/s on that very tick saturates the pool, but no client has waited yet: pgBouncer opens the reserve again
    # only past reserve_pool_timeout (5 s), which as the first time is the third tick (3.4 s, then 6.7 s).
    cluster = _pool_cluster(PoolSize(default_pool_size=8, reserve_pool_size=10))
    while cluster.advance(rate_per_second=80.0).pool_servers_open != 18:
        pass
    quiet = [cluster.advance(rate_per_second=20.0).pool_servers_open for _ in range(40)]
    busy = [cluster.advance(rate_per_second=80.0).pool_servers_open for _ in range(4)]
    assert quiet == [18] * 40
    assert busy == [8, 8, 18, 18]


def test_a_pool_without_a_reserve_keeps_its_size_open_under_a_backlog() -> None:
    cluster = _pool_cluster(PoolSize(default_pool_size=8, reserve_pool_size=0))
    ticks = [cluster.advance(rate_per_second=80.0) for _ in range(40)]
    assert {tick.pool_servers_open for tick in ticks} == {8}
    assert cluster.pool_backlog_requests > 0


def test_the_starting_pods_were_rolled_out_one_start_up_delay_apart_so_a_leak_never_kills_them_together() -> None:
    cluster = _leaking(2)
    created = sorted(p.created_seconds for p in cluster.pods)
    assert created == [-3600.0 - PARAMS.startup_seconds, -3600.0]
    while len(cluster.oom_kill_seconds) < 2:
        cluster.advance(rate_per_second=1.0)
        assert _ready(cluster) >= 1
    assert cluster.oom_kill_seconds[1] - cluster.oom_kill_seconds[0] == PARAMS.startup_seconds


def test_a_rollout_deletes_no_more_unready_old_pods_than_availability_allows() -> None:
    # reconcileOldReplicaSets: at most allPods - minAvailable - new pods unavailable go, unready ones first.
    cluster = _cluster(4)
    cluster.scale(8)  # four pods of the old template start
    cluster.set_resources(_sized(1500, 3000))
    cluster.advance(rate_per_second=10.0)
    old = [p for p in cluster.pods if p.version != cluster.template_version]
    new = [p for p in cluster.pods if p.version == cluster.template_version]
    # 8 old (4 ready) + 2 new (surge 2) = 10; minAvailable 6; 2 new unavailable: 10 - 6 - 2 = 2 unready old go,
    # and the surge room they free is filled at once: 6 old (4 ready) and 4 new.
    assert (len(old), sum(p.ready(cluster.now_seconds) for p in old), len(new)) == (6, 4, 4)


def test_a_rollout_fills_the_surge_room_the_old_pods_free_in_the_same_reconcile() -> None:
    # Two replicas, maxSurge 1, maxUnavailable 0: a new pod, and when it is ready an old one goes and the next
    # new one is created at that instant. Done when the last new pod is ready: two start-up delays.
    cluster = _cluster(2)
    cluster.set_resources(_sized(1500, 3000))
    for _ in range(40):  # 10 minutes: far more than two start-up delays (a bug fails here, not hangs)
        if not cluster.rollout_in_progress():
            break
        cluster.advance(rate_per_second=10.0)
    else:
        raise AssertionError("the rollout never completed")
    assert cluster.now_seconds - TICK_SECONDS == 2 * PARAMS.startup_seconds


def test_a_rollout_is_in_progress_until_its_last_new_pod_is_ready_and_not_again_after() -> None:
    cluster = _cluster(2)
    cluster.set_resources(_sized(1500, 3000))
    cluster.scale(4)  # the HPA scales up as the rollout begins: the last old pod goes before two new ones are up
    while any(p.version != cluster.template_version for p in cluster.pods):
        cluster.advance(rate_per_second=10.0)
    # No old pod left, the counts done, but new pods still starting: the controller still reports the rollout.
    assert len(cluster.pods) == 4
    assert not all(p.ready(cluster.now_seconds) for p in cluster.pods)
    assert cluster.rollout_in_progress()
    while not all(p.ready(cluster.now_seconds) for p in cluster.pods):
        cluster.advance(rate_per_second=10.0)
    cluster.advance(rate_per_second=10.0)
    assert not cluster.rollout_in_progress()
    cluster.pods[0].ready_at_seconds = cluster.now_seconds + PARAMS.startup_seconds  # a restart after it
    cluster.advance(rate_per_second=10.0)
    assert not cluster.rollout_in_progress()


def test_a_scale_down_deletes_the_pod_ready_for_the_shortest_time_before_the_newest() -> None:
    # controller.ActivePods' ranking: not ready, then ready for less time, then more restarts, then newer.
    cluster = _cluster(3)
    oldest = min(cluster.pods, key=lambda p: p.created_seconds)
    oldest.ready_at_seconds = cluster.now_seconds - 60.0  # ready again a minute ago (a failed probe)
    newest = max(cluster.pods, key=lambda p: p.created_seconds)
    cluster.scale(2)
    assert oldest not in cluster.pods
    assert newest in cluster.pods


def test_of_pods_ready_as_long_a_scale_down_deletes_the_one_restarted_more_before_the_newest() -> None:
    cluster = _cluster(3)
    oldest = min(cluster.pods, key=lambda p: p.created_seconds)
    for pod in cluster.pods:
        pod.ready_at_seconds = -3000.0
    oldest.restarts = 2
    cluster.scale(2)
    assert oldest not in cluster.pods and len(cluster.pods) == 2


def test_a_rollout_scales_the_oldest_templates_pods_down_first() -> None:
    # A second template while the first still rolls out: when ready old pods may go, the oldest template's
    # ReplicaSet goes down first, though its pods have been ready longer than the first template's new ones.
    cluster = _cluster(8)
    cluster.set_resources(_sized(1500, 3000))
    while not any(p.version == 1 and p.ready(cluster.now_seconds) for p in cluster.pods):
        cluster.advance(rate_per_second=10.0)
    cluster.advance(rate_per_second=10.0)  # the pass that finds them ready: 2 of the first template left
    cluster.set_resources(_sized(2000, 4000))
    while not any(p.version == 2 and p.ready(cluster.now_seconds) for p in cluster.pods):
        cluster.advance(rate_per_second=10.0)
    cluster.advance(rate_per_second=10.0)  # the pass that finds them ready: four ready old pods may go
    versions = [p.version for p in cluster.pods]
    assert (versions.count(0), versions.count(1)) == (0, 2)


def test_a_reserve_set_to_zero_closes_its_connections_and_a_new_one_waits_again() -> None:
    cluster = _pool_cluster(PoolSize(default_pool_size=8, reserve_pool_size=10))
    while cluster.advance(rate_per_second=80.0).pool_servers_open != 18:
        pass
    cluster.pool = PoolSize(default_pool_size=8, reserve_pool_size=0)
    assert cluster.advance(rate_per_second=20.0).pool_servers_open == 8
    cluster.pool = PoolSize(default_pool_size=8, reserve_pool_size=10)
    assert cluster.advance(rate_per_second=20.0).pool_servers_open == 8  # no client has waited for it

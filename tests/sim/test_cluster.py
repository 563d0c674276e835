"""Pods start after a delay, requests changes roll out, memory growth ends in OOM restarts."""

from __future__ import annotations

from dataclasses import replace

from perfpilot.api.status import ContainerResources, PoolSize
from perfpilot.sim.cluster import MIB, TICK_SECONDS, Cluster, ClusterParams

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

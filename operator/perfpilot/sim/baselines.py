"""The oracle lower bound (DESIGN section 9): the fewest replicas meeting the SLO minute by minute.

It has no start-up delay and no autoscaler: every minute it picks the smallest replica count (never
below the scenario's ``minReplicas``, which a team keeps for availability, not for load) whose p95 meets
the SLO with the scenario's pod size, then the smallest pool that still meets it with those replicas.
The static and Kubernetes-default baselines are ordinary replays (see ``replay.py`` and
``scenarios.k8s_default_settings``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from perfpilot.sim.cluster import ClusterParams
from perfpilot.sim.queueing import LatencyMix, compute_cpu_sojourn_mean_seconds, erlang_c, mixture_quantile
from perfpilot.sim.scenarios import WorkloadSettings

SLO_QUANTILE = 0.95
# Far beyond any cluster (a Deployment of a million pods): the search doubles, so the cap costs nothing.
MAX_ORACLE_REPLICAS = 1_000_000
MAX_EXTRA_POOL = 400
MAX_EXTRA_REPLICAS = 1000


@dataclass(frozen=True)
class OracleMinute:
    replicas: int
    pool_size: int
    p95_seconds: float
    meets_slo: bool


def latency_for(*, rate_per_second: float, replicas: int, cpu_millicores: float, pool_size: int | None,
                params: ClusterParams) -> LatencyMix | None:
    """Steady-state latency of ``replicas`` ready pods (None when they or the pool cannot keep up)."""
    demand = params.cpu_demand_seconds
    rho = rate_per_second * demand * 1000.0 / (replicas * cpu_millicores)
    if rho >= params.utilisation_cap:
        return None
    wait_probability, wait_rate = 0.0, 1.0
    if pool_size is not None:
        offered = rate_per_second * params.db_seconds * params.connections_per_request
        if offered >= params.utilisation_cap * pool_size:
            return None
        wait_probability = erlang_c(pool_size, offered) if offered > 0 else 0.0
        wait_rate = (pool_size - offered) / params.db_seconds
    mean = compute_cpu_sojourn_mean_seconds(demand_seconds=demand, cores=cpu_millicores / 1000.0,
                                            arrival_rate_per_second=rate_per_second / replicas)
    return LatencyMix(params.db_seconds, (1.0 / mean,), (1.0,), wait_probability, wait_rate)


def compute_no_load_p95_seconds(params: ClusterParams, *, cpu_millicores: float) -> float:
    """The model's p95 with no queue at all (one request alone on a pod, a connection free): no SLO below it
    can be met, however many pods and connections."""
    mix = latency_for(rate_per_second=0.0, replicas=1, cpu_millicores=cpu_millicores, pool_size=None, params=params)
    assert mix is not None
    return mixture_quantile([(mix, 1.0)], SLO_QUANTILE)


def _meets(mix: LatencyMix | None, slo_seconds: float, params: ClusterParams) -> bool:
    # As the replay judges a minute: a request slower than the timeout has failed, never within the SLO.
    judged_seconds = min(slo_seconds, params.request_timeout_seconds)
    return mix is not None and mix.cdf(judged_seconds) >= SLO_QUANTILE


def _fewest_meeting(meets: Callable[[int], bool], *, lowest: int) -> int | None:
    """The smallest count from ``lowest`` up to MAX_ORACLE_REPLICAS that ``meets`` (which, once true, stays
    true for larger counts: more pods never slow a request); None when not even the cap does. Doubling, then
    halving, so a load needing thousands of pods costs a few dozen latency evaluations, not thousands."""
    if meets(lowest):
        return lowest
    low = high = lowest
    while not meets(high):
        if high >= MAX_ORACLE_REPLICAS:
            return None
        low, high = high, min(MAX_ORACLE_REPLICAS, 2 * high)
    while high - low > 1:  # meets(high) and not meets(low)
        middle = (low + high) // 2
        low, high = (low, middle) if meets(middle) else (middle, high)
    return high


def oracle_minute(*, rate_per_second: float, settings: WorkloadSettings, params: ClusterParams,
                  slo_seconds: float) -> OracleMinute:
    cpu = params.effective_cpu_millicores(settings.resources)
    floor = settings.hpa.min_replicas
    needed = rate_per_second * params.cpu_demand_seconds * 1000.0 / (params.utilisation_cap * cpu)
    offered = rate_per_second * params.db_seconds * params.connections_per_request
    first_pool = max(1, math.floor(offered / params.utilisation_cap) + 1)

    def meets_with_every_connection(replicas: int) -> bool:
        return _meets(latency_for(rate_per_second=rate_per_second, replicas=replicas, cpu_millicores=cpu,
                                  pool_size=None, params=params), slo_seconds, params)

    replicas = _fewest_meeting(meets_with_every_connection, lowest=max(1, floor, math.ceil(needed)))
    if replicas is None:
        # No replica count meets the SLO (it is below what a request takes with no queue at all, or needs
        # more than MAX_ORACLE_REPLICAS pods): the bound is the fewest pods and connections that keep up, the
        # minute a violation. Its p95 is reported as the cluster reports every run's: no client waits past the
        # request timeout.
        replicas = max(floor, math.floor(needed) + 1)
        mix = latency_for(rate_per_second=rate_per_second, replicas=replicas, cpu_millicores=cpu,
                          pool_size=first_pool, params=params)
        assert mix is not None
        p95 = min(mixture_quantile([(mix, 1.0)], SLO_QUANTILE), params.request_timeout_seconds)
        return OracleMinute(replicas, first_pool, p95, False)
    # A finite pool adds some wait to what every connection would give: a count meeting the SLO only just
    # may need one or more pods more, so that the pool's wait fits.
    for more_replicas in range(replicas, min(MAX_ORACLE_REPLICAS, replicas + MAX_EXTRA_REPLICAS) + 1):
        for pool in range(first_pool, first_pool + MAX_EXTRA_POOL):
            mix = latency_for(rate_per_second=rate_per_second, replicas=more_replicas, cpu_millicores=cpu,
                              pool_size=pool, params=params)
            if _meets(mix, slo_seconds, params):
                assert mix is not None
                p95 = min(mixture_quantile([(mix, 1.0)], SLO_QUANTILE), params.request_timeout_seconds)
                return OracleMinute(more_replicas, pool, p95, True)
    # Not even those meet the SLO: requests waiting past the timeout, reported as the cluster reports them.
    return OracleMinute(MAX_ORACLE_REPLICAS, settings.pool.default_pool_size, params.request_timeout_seconds, False)

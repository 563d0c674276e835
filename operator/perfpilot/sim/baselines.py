"""The oracle lower bound (DESIGN section 9): the fewest replicas meeting the SLO minute by minute.

It has no start-up delay and no autoscaler: every minute it picks the smallest replica count (never
below the scenario's ``minReplicas``, which a team keeps for availability, not for load) whose p95 meets
the SLO with the scenario's pod size, then the smallest pool that still meets it with those replicas.
The static and Kubernetes-default baselines are ordinary replays (see ``replay.py`` and
``scenarios.k8s_default_settings``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perfpilot.sim.cluster import ClusterParams
from perfpilot.sim.queueing import LatencyMix, compute_cpu_sojourn_mean_seconds, erlang_c, mixture_quantile
from perfpilot.sim.scenarios import WorkloadSettings

SLO_QUANTILE = 0.95
MAX_ORACLE_REPLICAS = 1000
MAX_EXTRA_POOL = 400


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


def _meets(mix: LatencyMix | None, slo_seconds: float) -> bool:
    return mix is not None and mix.cdf(slo_seconds) >= SLO_QUANTILE


def oracle_minute(*, rate_per_second: float, settings: WorkloadSettings, params: ClusterParams,
                  slo_seconds: float) -> OracleMinute:
    cpu = params.effective_cpu_millicores(settings.resources)
    floor = settings.hpa.min_replicas
    needed = rate_per_second * params.cpu_demand_seconds * 1000.0 / (params.utilisation_cap * cpu)
    if not _meets(latency_for(rate_per_second=rate_per_second, replicas=MAX_ORACLE_REPLICAS, cpu_millicores=cpu,
                              pool_size=None, params=params), slo_seconds):
        # No replica count meets the SLO (it is below what a request takes with no queue at all): the bound is
        # the fewest pods and connections that keep up, the minute a violation. Its p95 is reported as the
        # cluster reports every run's: no client waits past the request timeout.
        replicas = max(floor, math.floor(needed) + 1)
        offered = rate_per_second * params.db_seconds * params.connections_per_request
        pool = max(1, math.floor(offered / params.utilisation_cap) + 1)
        mix = latency_for(rate_per_second=rate_per_second, replicas=replicas, cpu_millicores=cpu, pool_size=pool,
                          params=params)
        assert mix is not None
        p95 = min(mixture_quantile([(mix, 1.0)], SLO_QUANTILE), params.request_timeout_seconds)
        return OracleMinute(replicas, pool, p95, False)
    replicas = max(floor, math.ceil(needed))
    while replicas <= MAX_ORACLE_REPLICAS:
        if _meets(latency_for(rate_per_second=rate_per_second, replicas=replicas, cpu_millicores=cpu,
                              pool_size=None, params=params), slo_seconds):
            offered = rate_per_second * params.db_seconds * params.connections_per_request
            first_pool = max(1, math.floor(offered / params.utilisation_cap) + 1)
            for pool in range(first_pool, first_pool + MAX_EXTRA_POOL):
                mix = latency_for(rate_per_second=rate_per_second, replicas=replicas, cpu_millicores=cpu,
                                  pool_size=pool, params=params)
                if _meets(mix, slo_seconds):
                    assert mix is not None
                    p95 = mixture_quantile([(mix, 1.0)], SLO_QUANTILE)
                    return OracleMinute(replicas, pool, p95, True)
        replicas += 1
    # Not even the cap meets the SLO: requests waiting past the timeout, reported as the cluster reports them.
    return OracleMinute(MAX_ORACLE_REPLICAS, settings.pool.default_pool_size, params.request_timeout_seconds, False)

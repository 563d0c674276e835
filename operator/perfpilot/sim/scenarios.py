"""Starting configurations a real team plausibly has, and the guide's static configuration.

Every run of a scenario starts from the same ``WorkloadSettings``: perfpilot tunes it, ``static`` keeps
it, ``k8s-default`` replaces the HPA with Kubernetes' defaults (CPU 80%, no ``behavior``), and the oracle
sizes replicas minute by minute with the scenario's pod size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from perfpilot.api.quantities import Duration
from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import ContainerResources, PoolSize, ScalingPolicy, ScalingRules
from perfpilot.sim.cluster import CONTAINER, MIB, ClusterParams
from perfpilot.tuning.tables import SCALE_DOWN_ROWS, SCALE_UP_ROWS

GIB = 1024 * MIB


@dataclass(frozen=True)
class HpaSettings:
    min_replicas: int
    max_replicas: int
    cpu_target_percent: int | None
    memory_target_percent: int | None
    scale_up: ScalingRules | None  # None with scale_down None: no spec.behavior at all
    scale_down: ScalingRules | None


@dataclass(frozen=True)
class WorkloadSettings:
    hpa: HpaSettings
    resources: ContainerResources
    pool: PoolSize


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    settings: WorkloadSettings
    params: ClusterParams
    # The starting configuration breaches the SLO wherever the load shows its problem (a pool too small for
    # the peak's connections, a rise faster than one pod a minute): static meeting the SLO all window means
    # the trace did not exercise the scenario.
    static_breaches_when_shown: bool = False


# DESIGN section 9: the guide's "current configuration".
STATIC_SETTINGS = WorkloadSettings(
    hpa=HpaSettings(
        min_replicas=2,
        max_replicas=10,
        cpu_target_percent=70,
        memory_target_percent=80,
        scale_up=SCALE_UP_ROWS["Moderate"].to_rules(),
        scale_down=SCALE_DOWN_ROWS["Moderate"].to_rules(),
    ),
    resources=ContainerResources(
        name=CONTAINER,
        cpu_request_millicores=1000,
        cpu_limit_millicores=2000,
        memory_request_bytes=1 * GIB,
        memory_limit_bytes=2 * GIB,
    ),
    pool=PoolSize(default_pool_size=20, reserve_pool_size=10),
)


def k8s_default_settings(settings: WorkloadSettings) -> WorkloadSettings:
    """Kubernetes' defaults for the HPA (CPU 80%, no behaviour); pods and pool as the scenario has them."""
    hpa = replace(settings.hpa, cpu_target_percent=80, memory_target_percent=None, scale_up=None, scale_down=None)
    return replace(settings, hpa=hpa)


PARAMS = ClusterParams()

SCENARIOS: dict[str, Scenario] = {
    "right-sized": Scenario(
        "right-sized",
        "the guide's static configuration on a workload it fits",
        STATIC_SETTINGS,
        PARAMS,
    ),
    "over-provisioned": Scenario(
        "over-provisioned",
        "requests about 3x what is used: 3 CPU / 3Gi per pod (limits kept at 2x)",
        replace(
            STATIC_SETTINGS,
            resources=ContainerResources(
                name=CONTAINER,
                cpu_request_millicores=3000,
                cpu_limit_millicores=6000,
                memory_request_bytes=3 * GIB,
                memory_limit_bytes=6 * GIB,
            ),
        ),
        PARAMS,
    ),
    "small-pool": Scenario(
        "small-pool",
        "pgBouncer pool of 8 (reserve 0), well below the ~12 connections the peak needs",
        replace(STATIC_SETTINGS, pool=PoolSize(default_pool_size=8, reserve_pool_size=0)),
        PARAMS,
        static_breaches_when_shown=True,
    ),
    "slow-scale-up": Scenario(
        "slow-scale-up",
        "conservative scale-up (3 min window, one pod a minute), which a load rising faster outruns",
        replace(
            STATIC_SETTINGS,
            hpa=replace(
                STATIC_SETTINGS.hpa,
                scale_up=ScalingRules(
                    stabilization_window_seconds=180,
                    select_policy="Max",
                    policies=[ScalingPolicy(type="Pods", value=1, period_seconds=60)],
                ),
            ),
        ),
        PARAMS,
        static_breaches_when_shown=True,
    ),
    "memory-growth": Scenario(
        "memory-growth",
        "working set rising 40 MiB/h per pod (synthesised leak on a real load trace)",
        STATIC_SETTINGS,
        replace(PARAMS, memory_growth_bytes_per_hour=40.0 * MIB),
    ),
}


def default_profile(*, slo_p95_ms: float | None = None) -> PerformanceProfileSpec:
    """The profile perfpilot runs with in the simulator: Auto, Balanced, the pool tuned, defaults elsewhere."""
    raw: dict[str, object] = {
        "targetRef": {"kind": "Deployment", "name": "api"},
        "mode": "Auto",
        "pool": {"enabled": True, "pgbouncer": {"configMapRef": {"name": "pgbouncer"}}},
    }
    if slo_p95_ms is not None:
        raw["slo"] = {"latencyP95": str(Duration(slo_p95_ms / 1000))}
    return PerformanceProfileSpec.model_validate(raw)

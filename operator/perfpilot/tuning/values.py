"""The live value of each Setting, the object it lives on, and semantic equality of values.

Behaviour rules are compared after filling in Kubernetes' defaults (an HPA without ``behavior`` scales
up by 100% or 4 pods per 15 s and down by 100% per 15 s after a 300 s window), so writing a row that
the HPA already behaves like is not a change.
"""

from __future__ import annotations

import math
from functools import lru_cache

from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import ContainerResources, PoolSize, ScalingRules, Setting, SettingValue
from perfpilot.tuning.observations import LiveConfig

# (stabilization window seconds, select policy, sorted (type, value, period seconds) policies)
NormalisedRules = tuple[int, str, tuple[tuple[str, int, int], ...]]

_K8S_DEFAULT_SCALE_UP: NormalisedRules = (0, "Max", (("Percent", 100, 15), ("Pods", 4, 15)))
_K8S_DEFAULT_SCALE_DOWN: NormalisedRules = (300, "Max", (("Percent", 100, 15),))


def normalise_rules(rules: ScalingRules | None, *, scale_up: bool) -> NormalisedRules:
    default = _K8S_DEFAULT_SCALE_UP if scale_up else _K8S_DEFAULT_SCALE_DOWN
    if rules is None:
        return default
    window = default[0] if rules.stabilization_window_seconds is None else rules.stabilization_window_seconds
    select = rules.select_policy or "Max"
    policies = (
        tuple(sorted((p.type, p.value, p.period_seconds) for p in rules.policies)) if rules.policies else default[2]
    )
    return window, select, policies


# The HPA controller's default --horizontal-pod-autoscaler-sync-period: how often it may move replicas.
HPA_SYNC_SECONDS = 15
# Largest replica count followed when comparing rules (a 100%/15 s policy doubles 120 times in 30 min).
_REPLICA_CEILING = 100_000


def compute_policy_limit(kind: str, value: int, *, period_start: int, scale_up: bool) -> int:
    """The replica count one HPA policy allows from ``period_start``, the count at the start of its period:
    ``calculateScaleUpLimitWithScalingRules`` and ``calculateScaleDownLimitWithBehaviors``. A Percent step is
    computed in float64 as the controller does, rounded up on a scale-up and truncated on a scale-down, so
    25 pods +12% is 29 (25 x 1.12 is 28.000000000000004) and 10 pods -80% is 1, as on a cluster."""
    if scale_up:
        return period_start + value if kind == "Pods" else math.ceil(period_start * (1 + value / 100))
    return period_start - value if kind == "Pods" else int(period_start * (1 - value / 100))


@lru_cache(maxsize=4096)
def compute_allowed_replicas(
    rules: NormalisedRules, *, scale_up: bool, start: int, horizon_seconds: int
) -> tuple[int, ...]:
    """Replicas an HPA moving as fast as ``rules`` allow reaches at each sync (every 15 s) up to the horizon.

    This is the controller's calculateScaleUpLimitWithScalingRules (and its scale-down twin): each policy
    allows a change relative to the replica count at the start of its period (Pods: +value, Percent:
    x(1 + value%)), ``selectPolicy`` Max takes the policy allowing the biggest change, Min the smallest,
    Disabled none. Comparing these counts is the only fair way to compare a Pods policy with a Percent one:
    Kubernetes' default Max(+4 pods, +100%) per 15 s takes 2 replicas to 6 where +100% alone reaches 4.
    """
    _window, select, policies = rules
    events: list[tuple[int, int]] = []  # (sync time, replicas added (+) or removed (-))
    current = start
    reached: list[int] = []
    for time in range(HPA_SYNC_SECONDS, horizon_seconds + 1, HPA_SYNC_SECONDS):
        if select != "Disabled" and policies:
            limits = []
            for kind, value, period in policies:
                changed = sum(delta for at, delta in events if at > time - period)
                limits.append(compute_policy_limit(kind, value, period_start=current - changed, scale_up=scale_up))
            if scale_up:
                limit = max(limits) if select == "Max" else min(limits)
                new = max(current, min(limit, _REPLICA_CEILING))
            else:
                limit = min(limits) if select == "Max" else max(limits)
                new = min(current, max(limit, 1))
            if new != current:
                events.append((time, new - current))
                current = new
        reached.append(current)
    return tuple(reached)


def selected_containers(profile: PerformanceProfileSpec, live: LiveConfig) -> list[ContainerResources]:
    """The containers perfpilot sizes, in the workload's order (``resources.containers`` empty = all)."""
    names = profile.resources.containers
    if not names:
        return list(live.containers)
    wanted = set(names)
    return [container for container in live.containers if container.name in wanted]


def format_container_prefix(name: str, *, named: bool) -> str:
    """A container's name before its figures in a reason when the pod has several; nothing when it has one."""
    return f"{name} " if named else ""


def compute_live_value(setting: Setting, *, profile: PerformanceProfileSpec, live: LiveConfig) -> SettingValue:
    hpa = live.hpa
    if setting is Setting.HPA_CPU_TARGET:
        return None if hpa is None else hpa.cpu_target_percent
    if setting is Setting.HPA_MEMORY_TARGET:
        return None if hpa is None else hpa.memory_target_percent
    if setting is Setting.HPA_MAX_REPLICAS:
        return None if hpa is None else hpa.max_replicas
    if setting is Setting.HPA_SCALE_UP:
        return None if hpa is None else hpa.scale_up
    if setting is Setting.HPA_SCALE_DOWN:
        return None if hpa is None else hpa.scale_down
    if setting is Setting.RESOURCES:
        return selected_containers(profile, live)
    if live.pool is None:
        return None
    return PoolSize(default_pool_size=live.pool.default_pool_size, reserve_pool_size=live.pool.reserve_pool_size)


def values_equal(setting: Setting, left: SettingValue, right: SettingValue) -> bool:
    """Equal as the object behaves: behaviour rules after defaults, everything else field by field."""
    if setting in (Setting.HPA_SCALE_UP, Setting.HPA_SCALE_DOWN):
        if not isinstance(left, ScalingRules | None) or not isinstance(right, ScalingRules | None):
            return False
        scale_up = setting is Setting.HPA_SCALE_UP
        return normalise_rules(left, scale_up=scale_up) == normalise_rules(right, scale_up=scale_up)
    return left == right


def compute_target_name(setting: Setting, *, profile: PerformanceProfileSpec, live: LiveConfig) -> str:
    """``kind/name`` of the object a Setting lives on."""
    if setting in (Setting.HPA_CPU_TARGET, Setting.HPA_MEMORY_TARGET, Setting.HPA_MAX_REPLICAS,
                   Setting.HPA_SCALE_UP, Setting.HPA_SCALE_DOWN):
        name = live.hpa.name if live.hpa is not None else profile.hpa.name
        return f"HorizontalPodAutoscaler/{name}"
    if setting is Setting.RESOURCES:
        return f"{profile.target_ref.kind.value}/{profile.target_ref.name}"
    pgbouncer = profile.pool.pgbouncer
    if pgbouncer is not None and pgbouncer.pooler_ref is not None:
        return f"Pooler/{pgbouncer.pooler_ref.name}"
    if pgbouncer is not None and pgbouncer.config_map_ref is not None:
        return f"ConfigMap/{pgbouncer.config_map_ref.name}"
    return "ConfigMap/"

"""Building a ``ProposedChange`` from a setting's live value: targets, behaviour, pool size, maxReplicas (a
resources change is ``resize.compute_resource_change``'s, with its coupled target)."""

from __future__ import annotations

from perfpilot.api.status import Edit, PoolSize, Setting
from perfpilot.tuning import guardrails
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.observations import HpaLive, PoolLive
from perfpilot.tuning.rules.context import RuleContext
from perfpilot.tuning.tables import BehaviourRow
from perfpilot.tuning.values import compute_target_name, normalise_rules


def build_target_change(
    ctx: RuleContext, *, setting: Setting, live_percent: int, new_percent: int, reason: str, table_row: str,
    emergency: bool = False,
) -> ProposedChange:
    return ProposedChange(
        target=compute_target_name(setting, profile=ctx.profile, live=ctx.observations.live),
        edit=Edit(setting=setting, from_value=live_percent, to_value=new_percent),
        reason=reason,
        table_row=table_row,
        emergency=emergency,
    )


def build_pool_change(
    ctx: RuleContext, pool: PoolLive, size: PoolSize, *, reason: str, table_row: str, emergency: bool = False
) -> ProposedChange:
    before = PoolSize(default_pool_size=pool.default_pool_size, reserve_pool_size=pool.reserve_pool_size)
    return ProposedChange(
        target=compute_target_name(Setting.POOL_SIZE, profile=ctx.profile, live=ctx.observations.live),
        edit=Edit(setting=Setting.POOL_SIZE, from_value=before, to_value=size),
        reason=reason,
        table_row=table_row,
        emergency=emergency,
    )


def build_behaviour_change(
    ctx: RuleContext, hpa: HpaLive, *, scale_up: bool, row: BehaviourRow, reason: str, emergency: bool = False
) -> ProposedChange | None:
    live_rules = hpa.scale_up if scale_up else hpa.scale_down
    wanted = (row.stabilization_window_seconds, "Max", (("Percent", row.percent, row.period_seconds),))
    if normalise_rules(live_rules, scale_up=scale_up) == wanted:
        return None
    setting = Setting.HPA_SCALE_UP if scale_up else Setting.HPA_SCALE_DOWN
    return ProposedChange(
        target=compute_target_name(setting, profile=ctx.profile, live=ctx.observations.live),
        edit=Edit(setting=setting, from_value=live_rules, to_value=row.to_rules()),
        reason=reason,
        table_row=row.name,
        emergency=emergency,
    )


def build_max_replicas_change(ctx: RuleContext, hpa: HpaLive, *, why: str, emergency: bool) -> ProposedChange | str:
    ceiling = ctx.profile.hpa.max_replicas_ceiling
    if ceiling <= hpa.max_replicas:
        return f"HPA at maxReplicas {hpa.max_replicas} and maxReplicasCeiling {ceiling} allows no more"
    new_max = guardrails.compute_max_replicas_step(
        live_max=hpa.max_replicas, ceiling=ceiling, max_step_percent=ctx.profile.guardrails.max_step_percent
    )
    return ProposedChange(
        target=compute_target_name(Setting.HPA_MAX_REPLICAS, profile=ctx.profile, live=ctx.observations.live),
        edit=Edit(setting=Setting.HPA_MAX_REPLICAS, from_value=hpa.max_replicas, to_value=new_max),
        reason=f"{why}: HPA saturated at maxReplicas {hpa.max_replicas}; raising to {new_max} "
               f"(ceiling {ceiling}, step {ctx.profile.guardrails.max_step_percent}%)",
        table_row="maxReplicasCeiling",
        emergency=emergency,
    )

"""A resources row applied to the selected containers: requests within bounds and step, limits per policy,
and the CPU target coupled so that the HPA keeps its replica count."""

from __future__ import annotations

from perfpilot.api.spec import LimitsPolicy
from perfpilot.api.status import ContainerResources, Edit, Setting
from perfpilot.tuning import guardrails
from perfpilot.tuning.classify import ProvisioningFinding
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.rules.context import RuleContext
from perfpilot.tuning.rules.targets import compute_cpu_target_row
from perfpilot.tuning.tables import ResourceRow
from perfpilot.tuning.values import compute_target_name, selected_containers

# Which selected containers a resources row moves, per resource: every one (True), none (False), or those named.
Sized = bool | tuple[str, ...]


def select_cpu_containers(provisioning: ProvisioningFinding, *, saturated: bool) -> Sized:
    """The containers a CPU raise grows: the CPU-bound ones, or every selected one when the HPA is saturated
    (the pods are too small, whichever container shows it)."""
    return provisioning.cpu_containers if provisioning.cpu_bound and not saturated else True


def _sizes(sized: Sized, container: str) -> bool:
    return sized if isinstance(sized, bool) else container in sized


def compute_resource_change(
    ctx: RuleContext, *, row: ResourceRow, cpu: Sized, memory: Sized, why: str, emergency: bool = False,
) -> ProposedChange | str:
    """Scale the requests of the selected containers that ``cpu`` and ``memory`` name (the ones found bound or
    over-provisioned, or all) by the row's factors; a string says why nothing moves."""
    profile = ctx.profile
    live = ctx.observations.live
    if not profile.resources.enabled:
        return "resources not tuned"
    before = selected_containers(profile, live)
    if not before:
        return "no selected container in the workload"
    guard = profile.guardrails
    bounds = profile.resources
    after: list[ContainerResources] = []
    for container in before:
        cpu_request = container.cpu_request_millicores
        cpu_limit = container.cpu_limit_millicores
        memory_request = container.memory_request_bytes
        memory_limit = container.memory_limit_bytes
        if row.cpu_factor is not None and cpu_request and _sizes(cpu, container.name):
            upper = bounds.cpu.max.millicores
            if profile.resources.limits is LimitsPolicy.REQUESTS_ONLY and cpu_limit is not None:
                upper = min(upper, cpu_limit)  # the API server rejects requests above limits
            new_cpu = guardrails.compute_scaled_quantity(
                cpu_request, factor=row.cpu_factor, lower=bounds.cpu.min.millicores, upper=upper,
                max_step_percent=guard.max_step_percent,
            )
            cpu_limit = _follow_limit(profile.resources.limits, limit=cpu_limit, old=cpu_request, new=new_cpu)
            cpu_request = new_cpu
        if row.memory_factor is not None and memory_request and _sizes(memory, container.name):
            upper = bounds.memory.max.bytes
            if profile.resources.limits is LimitsPolicy.REQUESTS_ONLY and memory_limit is not None:
                upper = min(upper, memory_limit)
            new_memory = guardrails.compute_scaled_quantity(
                memory_request, factor=row.memory_factor, lower=bounds.memory.min.bytes, upper=upper,
                max_step_percent=guard.max_step_percent, granularity=guardrails.MEBIBYTE,
            )
            memory_limit = _follow_limit(
                profile.resources.limits, limit=memory_limit, old=memory_request, new=new_memory
            )
            memory_request = new_memory
        after.append(ContainerResources(
            name=container.name,
            cpu_request_millicores=cpu_request,
            cpu_limit_millicores=cpu_limit,
            memory_request_bytes=memory_request,
            memory_limit_bytes=memory_limit,
        ))
    if after == before:
        return f"{row.label} row: requests already at their bounds"
    edit = Edit(setting=Setting.RESOURCES, from_value=before, to_value=after)
    sizes = ", ".join(_describe_resources(old, new) for old, new in zip(before, after, strict=True) if old != new)
    reason = f"{why}: resources row '{row.label}' ({_row_factors(row)}): {sizes}"
    coupled, coupled_note = _couple_cpu_target(ctx, before=before, after=after)
    return ProposedChange(
        target=compute_target_name(Setting.RESOURCES, profile=profile, live=live),
        edit=edit,
        reason=reason + coupled_note,
        table_row=row.label,
        coupled=coupled,
        coupled_target=(
            compute_target_name(Setting.HPA_CPU_TARGET, profile=profile, live=live) if coupled is not None else ""
        ),
        emergency=emergency,
    )


def _row_factors(row: ResourceRow) -> str:
    parts = []
    if row.cpu_factor is not None:
        parts.append(f"CPU {row.cpu_factor - 1:+.0%}")
    if row.memory_factor is not None:
        parts.append(f"memory {row.memory_factor - 1:+.0%}")
    return ", ".join(parts)


def _follow_limit(policy: LimitsPolicy, *, limit: int | None, old: int, new: int) -> int | None:
    if policy is LimitsPolicy.GUARANTEED:
        # Limits meet requests, but a raise never lowers a limit: a pod not yet Guaranteed (limit above
        # its request) would otherwise lose the room it already uses, an OOM kill for memory.
        if new == old:
            return limit  # a request this change does not move (at its bound) keeps its limit as well
        return limit if new > old and limit is not None and limit > new else new
    if policy is LimitsPolicy.REQUESTS_ONLY or limit is None:
        return limit
    return max(new, round(limit * new / old))


def _describe_resources(old: ContainerResources, new: ContainerResources) -> str:
    parts = []
    if old.cpu_request_millicores != new.cpu_request_millicores:
        parts.append(f"CPU {old.cpu_request_millicores}m -> {new.cpu_request_millicores}m")
    if old.memory_request_bytes != new.memory_request_bytes and old.memory_request_bytes and new.memory_request_bytes:
        parts.append(f"memory {old.memory_request_bytes / 2**20:.0f}Mi -> {new.memory_request_bytes / 2**20:.0f}Mi")
    return f"{new.name} " + " ".join(parts)


def _couple_cpu_target(
    ctx: RuleContext, *, before: list[ContainerResources], after: list[ContainerResources]
) -> tuple[Edit | None, str]:
    hpa = ctx.tuned_hpa
    if hpa is None or hpa.cpu_target_percent is None:
        return None, ""
    old_pod = ctx.observations.live.cpu_request_millicores_per_pod
    if not old_pod:
        return None, ""
    changed = {c.name: c.cpu_request_millicores or 0 for c in after}
    old_selected = sum(c.cpu_request_millicores or 0 for c in before)
    new_pod = old_pod - old_selected + sum(changed.values())
    if new_pod == old_pod or new_pod <= 0:
        return None, ""
    bounds = ctx.profile.hpa.cpu_target
    upper = bounds.max
    picked = compute_cpu_target_row(ctx)
    if new_pod < old_pod and picked is not None:
        # A cut raises the target at most to the objective's row (or keeps a live target above it).
        upper = min(upper, max(hpa.cpu_target_percent, picked[0].target_percent))
    new_target = guardrails.compute_coupled_cpu_target(
        live_target_percent=hpa.cpu_target_percent, old_request_millicores=old_pod, new_request_millicores=new_pod,
        lower=bounds.min, upper=upper, max_step_points=ctx.profile.guardrails.max_target_step_points,
    )
    if new_target == hpa.cpu_target_percent:
        if upper < bounds.max and hpa.cpu_target_percent >= upper:
            row = picked[0].target_percent if picked is not None else upper
            kept = "" if hpa.cpu_target_percent == row else f", and the live {hpa.cpu_target_percent}% is kept"
            return None, f"; CPU target stays: a cut raises it no higher than the objective's row ({row}%){kept}"
        return None, "; CPU target stays (coupled value clamped to its bounds/step)"
    if (new_target > hpa.cpu_target_percent) == (new_pod > old_pod):
        # A live target outside cpuTarget's bounds is clamped toward them, which can go the wrong way: a
        # raise with a higher target (or a cut with a lower one) would move the replica count, not keep it.
        return None, (f"; CPU target stays: live {hpa.cpu_target_percent}% is outside cpuTarget "
                      f"{bounds.min}-{bounds.max}%, and coupling would move it the wrong way")
    edit = Edit(setting=Setting.HPA_CPU_TARGET, from_value=hpa.cpu_target_percent, to_value=new_target)
    return edit, (f"; coupled CPU target {hpa.cpu_target_percent}% -> {new_target}% keeps the HPA's replica count "
                  f"(pod request {old_pod}m -> {new_pod}m)")

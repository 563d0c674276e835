"""DESIGN section 5: bounds, step limits, cooldown, emergencies only toward capacity, barred moves,
the Postgres connection budget and the maxReplicas ceiling — as pure functions the rules and tests share.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from perfpilot.api.spec import PerformanceProfileSpec
from perfpilot.api.status import (
    BarredMove,
    ChangeRecord,
    ContainerResources,
    Edit,
    PoolSize,
    ScalingRules,
    Setting,
    SettingValue,
    TuningState,
    Verdict,
)
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.tables import POOL_TIERS
from perfpilot.tuning.values import compute_percent_per_minute, normalise_rules, values_equal

MEBIBYTE = 2**20


def clamp(value: int, *, lower: int, upper: int) -> int:
    return max(lower, min(upper, value))


def compute_target_step(*, live_percent: int, goal_percent: int, lower: int, upper: int, max_step_points: int) -> int:
    """Move a utilisation target toward ``goal`` within the bounds and at most ``max_step_points``.

    A live value outside the bounds is brought back one step at a time (the step limit wins over the
    bounds), so a hand-set 95% does not jump to 80% in one write.
    """
    goal = clamp(goal_percent, lower=lower, upper=upper)
    return clamp(goal, lower=live_percent - max_step_points, upper=live_percent + max_step_points)


def compute_scaled_quantity(
    old: int, *, factor: float, lower: int, upper: int, max_step_percent: int, granularity: int = 1
) -> int:
    """Scale a request by ``factor`` within bounds and the step limit, never against the factor's direction.

    Results are rounded toward the old value to ``granularity`` (1 MiB for memory) when that still moves,
    so the step limit holds after rounding. An increase never lowers a value that is already above the
    upper bound, and a decrease never raises one below the lower bound.
    """
    step = max_step_percent / 100
    if factor >= 1:
        factor = min(factor, 1 + step)
        exact = min(old * factor, upper)
        rounded = math.floor(exact / granularity) * granularity
        new = rounded if rounded > old else math.floor(exact)
        return max(old, new)
    factor = max(factor, 1 - step)
    exact = max(old * factor, lower)
    rounded = math.ceil(exact / granularity) * granularity
    new = rounded if rounded < old else math.ceil(exact)
    return min(old, new)


def compute_coupled_cpu_target(
    *, live_target_percent: int, old_request_millicores: int, new_request_millicores: int,
    lower: int, upper: int, max_step_points: int,
) -> int:
    """The CPU target that keeps the HPA's replica count when the pod's CPU request changes.

    The HPA computes replicas from usage / request / target, so target x request is what must stay
    constant; the result is kept within the bounds and the target step limit (the HPA absorbs the rest).
    """
    ideal = round(live_target_percent * old_request_millicores / new_request_millicores)
    return compute_target_step(
        live_percent=live_target_percent, goal_percent=ideal, lower=lower, upper=upper, max_step_points=max_step_points
    )


def compute_pool_reserve(default_pool_size: int) -> int:
    """Reserve for a default size: the tier's own at a tier value, else the ratio of the tier at or below."""
    ratio_tier = POOL_TIERS[0]
    for tier in POOL_TIERS:
        if tier.default_pool_size == default_pool_size:
            return tier.reserve_pool_size
        if tier.default_pool_size <= default_pool_size:
            ratio_tier = tier
    return round(default_pool_size * ratio_tier.reserve_pool_size / ratio_tier.default_pool_size)


def fits_server_budget(*, default_pool_size: int, reserve_pool_size: int, pooler_replicas: int,
                       max_server_connections: int) -> bool:
    """(default + reserve) x pooler replicas within maxServerConnections (0 = not checked).

    The reserve counts because pgBouncer opens reserve connections to the server under load; a budget
    that ignores them is exceeded exactly when it matters.
    """
    if max_server_connections <= 0:
        return True
    return (default_pool_size + reserve_pool_size) * max(1, pooler_replicas) <= max_server_connections


def compute_max_replicas_step(*, live_max: int, ceiling: int, max_step_percent: int) -> int:
    if ceiling <= live_max:
        return live_max
    step = max(1, math.floor(live_max * max_step_percent / 100))
    return min(ceiling, live_max + step)


def is_barred(change: ProposedChange, *, barred: list[BarredMove], now: datetime) -> bool:
    return any(
        move.until > now and move.setting is change.edit.setting
        and values_equal(move.setting, move.to_value, change.edit.to_value)
        for move in barred
    )


def compute_cooldown_end(state: TuningState, profile: PerformanceProfileSpec) -> datetime | None:
    """When the next ordinary change may be made: cooldown after the last write (a rollback is a write)."""
    last = state.last_change
    if last is None:
        return None
    written_at = last.at
    if last.verdict is Verdict.ROLLED_BACK and last.verdict_at is not None:
        written_at = max(written_at, last.verdict_at)
    return written_at + timedelta(seconds=profile.guardrails.cooldown.seconds)


def _requests(value: SettingValue) -> list[tuple[int | None, int | None]]:
    if not isinstance(value, list):
        return []
    return [(c.cpu_request_millicores, c.memory_request_bytes) for c in value if isinstance(c, ContainerResources)]


def _resources_toward_capacity(edit: Edit) -> bool:
    before = _requests(edit.from_value)
    after = _requests(edit.to_value)
    if len(before) != len(after):
        return False
    grew = False
    for (cpu_before, memory_before), (cpu_after, memory_after) in zip(before, after, strict=True):
        for old, new in ((cpu_before, cpu_after), (memory_before, memory_after)):
            if old is None or new is None:
                if old != new:
                    return False
                continue
            if new < old:
                return False
            grew = grew or new > old
    return grew


def is_edit_toward_capacity(edit: Edit) -> bool:
    """Whether an edit only adds capacity (what an emergency may do while a change is held back)."""
    old, new = edit.from_value, edit.to_value
    setting = edit.setting
    if setting in (Setting.HPA_CPU_TARGET, Setting.HPA_MEMORY_TARGET):
        return isinstance(old, int) and isinstance(new, int) and new < old
    if setting is Setting.HPA_MAX_REPLICAS:
        return isinstance(old, int) and isinstance(new, int) and new > old
    if setting is Setting.POOL_SIZE:
        return (
            isinstance(old, PoolSize) and isinstance(new, PoolSize)
            and new.default_pool_size > old.default_pool_size
            and new.default_pool_size + new.reserve_pool_size >= old.default_pool_size + old.reserve_pool_size
        )
    if setting is Setting.HPA_SCALE_UP:
        if not isinstance(old, ScalingRules | None) or not isinstance(new, ScalingRules | None):
            return False
        before = normalise_rules(old, scale_up=True)
        after = normalise_rules(new, scale_up=True)
        faster_rate = compute_percent_per_minute(after) >= compute_percent_per_minute(before)
        return after != before and after[0] <= before[0] and faster_rate
    if setting is Setting.RESOURCES:
        return _resources_toward_capacity(edit)
    return False  # a slower or faster scale-down is never an emergency move


def is_toward_capacity(change: ProposedChange) -> bool:
    return is_edit_toward_capacity(change.edit) and (change.coupled is None or is_edit_toward_capacity(change.coupled))


def _scale_down_direction(edit: Edit) -> int:
    """+1 when a scale-down edit is slower (keeps pods longer: toward capacity), -1 when faster, 0 otherwise."""
    old, new = edit.from_value, edit.to_value
    if not isinstance(old, ScalingRules | None) or not isinstance(new, ScalingRules | None):
        return 0
    before = normalise_rules(old, scale_up=False)
    after = normalise_rules(new, scale_up=False)
    if before == after:
        return 0
    slower_window, faster_window = after[0] >= before[0], after[0] <= before[0]
    rate_before, rate_after = compute_percent_per_minute(before), compute_percent_per_minute(after)
    if slower_window and rate_after <= rate_before:
        return 1
    if faster_window and rate_after >= rate_before:
        return -1
    return 0


def compute_edit_direction(edit: Edit) -> int:
    """+1 for an edit toward more capacity, -1 for one toward less, 0 when it is neither (mixed)."""
    if edit.setting is Setting.HPA_SCALE_DOWN:
        return _scale_down_direction(edit)
    if is_edit_toward_capacity(edit):
        return 1
    reverse = Edit(setting=edit.setting, from_value=edit.to_value, to_value=edit.from_value)
    return -1 if is_edit_toward_capacity(reverse) else 0


def _edits_of(record: ChangeRecord) -> list[Edit]:
    return [record.edit] + ([record.coupled] if record.coupled is not None else [])


def find_reversal(
    change: ProposedChange, *, state: TuningState, now: datetime, hold_seconds: float
) -> tuple[Edit, ChangeRecord] | None:
    """A recent change (within ``hold_seconds``, not rolled back) that ``change`` would move back the other way.

    Returns the edit of ``change`` that reverses and the recorded change it reverses, or None.
    """
    records = [*state.history, *([state.last_change] if state.last_change is not None else [])]
    since = now - timedelta(seconds=hold_seconds)
    recent = [r for r in records if r.verdict is not Verdict.ROLLED_BACK and r.at > since]
    proposed = [change.edit] + ([change.coupled] if change.coupled is not None else [])
    for edit in proposed:
        direction = compute_edit_direction(edit)
        if direction == 0:
            continue
        for record in reversed(recent):
            for earlier in _edits_of(record):
                if earlier.setting is edit.setting and compute_edit_direction(earlier) == -direction:
                    return edit, record
    return None

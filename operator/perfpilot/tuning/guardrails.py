"""DESIGN section 5: bounds, step limits, cooldown, emergencies only toward capacity, barred moves,
the Postgres connection budget and the maxReplicas ceiling — as pure functions the rules and tests share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from perfpilot.api.quantities import format_cpu_millicores, format_memory_bytes
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
from perfpilot.tuning.observations import HpaLive
from perfpilot.tuning.tables import POOL_TIERS
from perfpilot.tuning.values import (
    HPA_SYNC_SECONDS,
    NormalisedRules,
    compute_allowed_replicas,
    normalise_rules,
    values_equal,
)

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


@dataclass(frozen=True)
class _BoundedNumber:
    what: str  # as a reason names it: "hpa.cpuTarget", "api CPU request"
    value: int | None
    lower: int
    upper: int
    show: Callable[[int], str] = str

    @property
    def shown(self) -> str:
        return "unset" if self.value is None else self.show(self.value)

    @property
    def distance_outside(self) -> int:
        return 0 if self.value is None else max(self.lower - self.value, self.value - self.upper, 0)


def _list_bounded_numbers(setting: Setting, value: SettingValue, *, profile: PerformanceProfileSpec
                          ) -> dict[str, _BoundedNumber]:
    """Each number of ``value`` that the profile bounds, by what it is; behaviour rows and maxReplicas
    (bounded by its ceiling only when raised) have none."""
    if setting in (Setting.HPA_CPU_TARGET, Setting.HPA_MEMORY_TARGET) and isinstance(value, int):
        bounds = profile.hpa.cpu_target if setting is Setting.HPA_CPU_TARGET else profile.hpa.memory_target
        return {setting.value: _BoundedNumber(setting.value, value, bounds.min, bounds.max, lambda n: f"{n}%")}
    if setting is Setting.POOL_SIZE and isinstance(value, PoolSize):
        size = profile.pool.size
        return {"default_pool_size": _BoundedNumber("default_pool_size", value.default_pool_size, size.min, size.max)}
    if setting is Setting.RESOURCES and isinstance(value, list):
        cpu, memory = profile.resources.cpu, profile.resources.memory
        numbers: dict[str, _BoundedNumber] = {}
        for container in value:
            for number in (
                _BoundedNumber(f"{container.name} CPU request", container.cpu_request_millicores,
                               cpu.min.millicores, cpu.max.millicores, format_cpu_millicores),
                _BoundedNumber(f"{container.name} memory request", container.memory_request_bytes,
                               memory.min.bytes, memory.max.bytes, format_memory_bytes),
            ):
                numbers[number.what] = number
        return numbers
    return {}


def find_bounds_left(setting: Setting, *, live: SettingValue, new: SettingValue,
                     profile: PerformanceProfileSpec) -> str | None:
    """What writing ``new`` over ``live`` would take outside the profile's bounds, or further outside than it
    is, or None. A value already outside (hand-set, or bounds narrowed since) may be brought back a step at a
    time, as the rules do, but no write takes it further away."""
    before = _list_bounded_numbers(setting, live, profile=profile)
    for what, after in _list_bounded_numbers(setting, new, profile=profile).items():
        was = before.get(what)
        if after.distance_outside > (was.distance_outside if was is not None else 0):
            now = f" (it is {was.shown} now)" if was is not None and was.distance_outside > 0 else ""
            bounds = f"{after.show(after.lower)}-{after.show(after.upper)}"
            return f"{what} {after.shown} is outside the bounds {bounds}{now}"
    return None


def compute_max_replicas_step(*, live_max: int, ceiling: int, max_step_percent: int) -> int:
    if ceiling <= live_max:
        return live_max
    step = max(1, math.floor(live_max * max_step_percent / 100))
    return min(ceiling, live_max + step)


def find_barred_edit(change: ProposedChange, *, barred: list[BarredMove], now: datetime) -> Edit | None:
    """The edit of the change, or the one coupled with it, that makes a barred move, or None. A resources
    move is barred per container request: an edit that moves a request the barred move changed the same way
    to the same value makes it again, whatever else it changes beside it."""
    for edit in list_edits(change):
        for move in barred:
            if move.until <= now or move.setting is not edit.setting:
                continue
            if values_equal(move.setting, move.to_value, edit.to_value):
                return edit
            if move.setting is Setting.RESOURCES and move.from_value is not None:
                barred_requests = _list_requests_set(Edit(setting=move.setting, from_value=move.from_value,
                                                          to_value=move.to_value))
                if barred_requests.items() & _list_requests_set(edit).items():
                    return edit
    return None


def _list_requests_set(edit: Edit) -> dict[tuple[str, str], tuple[int, bool]]:
    """Per (container, "cpu" | "memory"), the request a resources edit sets where it changes it, and whether
    it raises it."""
    def by_name(value: SettingValue) -> dict[str, ContainerResources]:
        return {c.name: c for c in value} if isinstance(value, list) else {}

    before, after = by_name(edit.from_value), by_name(edit.to_value)
    requests: dict[tuple[str, str], tuple[int, bool]] = {}
    for name, new in after.items():
        old = before.get(name)
        if old is None:
            continue
        for resource, old_value, new_value in (("cpu", old.cpu_request_millicores, new.cpu_request_millicores),
                                               ("memory", old.memory_request_bytes, new.memory_request_bytes)):
            if old_value is not None and new_value is not None and new_value != old_value:
                requests[(name, resource)] = (new_value, new_value > old_value)
    return requests


def compute_last_write(state: TuningState) -> datetime | None:
    """When perfpilot last wrote: the last change, or its rollback (a rollback is a write)."""
    last = state.last_change
    if last is None:
        return None
    if last.verdict is Verdict.ROLLED_BACK and last.verdict_at is not None:
        return max(last.at, last.verdict_at)
    return last.at


def compute_cooldown_end(state: TuningState, profile: PerformanceProfileSpec) -> datetime | None:
    """When the next ordinary change may be made: cooldown after the last write."""
    written_at = compute_last_write(state)
    if written_at is None:
        return None
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


def raises_pod_cpu(edit: Edit) -> bool:
    """Whether a resources edit raises the pod's total CPU request (what a rollout at maxReplicas needs)."""
    before = sum(cpu or 0 for cpu, _ in _requests(edit.from_value))
    after = sum(cpu or 0 for cpu, _ in _requests(edit.to_value))
    return after > before


def raises_pod_memory(edit: Edit) -> bool:
    """Whether a resources edit raises the pod's total memory request."""
    before = sum(memory or 0 for _, memory in _requests(edit.from_value))
    after = sum(memory or 0 for _, memory in _requests(edit.to_value))
    return after > before


# Replica counts at which two behaviours are compared when the live HPA is not known: small counts
# (where Pods policies matter most) up to large ones.
DEFAULT_REPLICA_COUNTS: tuple[int, ...] = (1, 2, 3, 4, 6, 10, 20, 50)
_LONGEST_COMPARED_SECONDS = 1800  # the longest period Kubernetes accepts for a scaling policy


def compute_replica_counts(hpa: HpaLive | None) -> tuple[int, ...]:
    """Where behaviours are compared: the live replica count and minReplicas (where a scale-up starts)."""
    if hpa is None:
        return DEFAULT_REPLICA_COUNTS
    return tuple(sorted({max(1, hpa.min_replicas), max(1, hpa.current_replicas)}))


def _movements(rules: NormalisedRules, *, scale_up: bool, counts: Sequence[int], horizon: int) -> list[int]:
    moved: list[int] = []
    for start in counts:
        reached = compute_allowed_replicas(rules, scale_up=scale_up, start=start, horizon_seconds=horizon)
        moved.extend(abs(count - start) for count in reached)
    return moved


def compute_behaviour_direction(
    old: ScalingRules | None, new: ScalingRules | None, *, scale_up: bool, replicas: Sequence[int]
) -> int:
    """+1 when ``new`` is toward capacity (a scale-up that never allows fewer replicas per period and no
    longer a window; a scale-down that never removes more and no shorter a window), -1 for the opposite,
    0 when equal or mixed. Counts come from the HPA controller's own limits, Pods and Percent policies and
    selectPolicy included (``values.compute_allowed_replicas``), at each of ``replicas`` as start."""
    before = normalise_rules(old, scale_up=scale_up)
    after = normalise_rules(new, scale_up=scale_up)
    if before == after:
        return 0
    periods = [period for _kind, _value, period in (*before[2], *after[2])]
    horizon = min(_LONGEST_COMPARED_SECONDS, max([4 * HPA_SYNC_SECONDS, *periods]))
    moved_before = _movements(before, scale_up=scale_up, counts=replicas, horizon=horizon)
    moved_after = _movements(after, scale_up=scale_up, counts=replicas, horizon=horizon)
    pairs = list(zip(moved_before, moved_after, strict=True))
    # Toward capacity: a shorter scale-up window / a longer scale-down window, more (up) / fewer (down) moved.
    sign = 1 if scale_up else -1
    more = all(sign * (a - b) >= 0 for b, a in pairs) and sign * (before[0] - after[0]) >= 0
    less = all(sign * (a - b) <= 0 for b, a in pairs) and sign * (before[0] - after[0]) <= 0
    if more and not less:
        return 1
    if less and not more:
        return -1
    return 0


def is_edit_toward_capacity(edit: Edit, *, replicas: Sequence[int] = DEFAULT_REPLICA_COUNTS) -> bool:
    """Whether an edit only adds capacity (what an emergency may do while a change is held back).

    ``replicas`` are the counts a scale-up edit is compared at (``compute_replica_counts``).
    """
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
        return compute_behaviour_direction(old, new, scale_up=True, replicas=replicas) > 0
    if setting is Setting.RESOURCES:
        return _resources_toward_capacity(edit)
    return False  # a slower or faster scale-down is never an emergency move


def is_toward_capacity(change: ProposedChange, *, replicas: Sequence[int] = DEFAULT_REPLICA_COUNTS) -> bool:
    return is_edit_toward_capacity(change.edit, replicas=replicas) and (
        change.coupled is None or is_edit_toward_capacity(change.coupled, replicas=replicas))


def compute_edit_direction(edit: Edit, *, replicas: Sequence[int] = DEFAULT_REPLICA_COUNTS) -> int:
    """+1 for an edit toward more capacity, -1 for one toward less, 0 when it is neither (mixed)."""
    if edit.setting in (Setting.HPA_SCALE_UP, Setting.HPA_SCALE_DOWN):
        old, new = edit.from_value, edit.to_value
        if not isinstance(old, ScalingRules | None) or not isinstance(new, ScalingRules | None):
            return 0
        return compute_behaviour_direction(
            old, new, scale_up=edit.setting is Setting.HPA_SCALE_UP, replicas=replicas)
    if is_edit_toward_capacity(edit, replicas=replicas):
        return 1
    reverse = Edit(setting=edit.setting, from_value=edit.to_value, to_value=edit.from_value)
    return -1 if is_edit_toward_capacity(reverse, replicas=replicas) else 0


def reduces_capacity(change: ProposedChange, *, replicas: Sequence[int] = DEFAULT_REPLICA_COUNTS) -> bool:
    """Whether any edit of ``change`` (the coupled one included) moves toward less capacity."""
    edits = list_edits(change)
    return any(compute_edit_direction(edit, replicas=replicas) < 0 for edit in edits)


def list_edits(change: ProposedChange | ChangeRecord) -> list[Edit]:
    """The edits of a change or a record of one: its own, then the coupled one."""
    return [change.edit] + ([change.coupled] if change.coupled is not None else [])


def _list_resource_moves(edit: Edit) -> dict[tuple[str, str], int]:
    """Per (container, "cpu" | "memory"), +1 for a request a resources edit raises, -1 for one it lowers."""
    return {request: 1 if raised else -1 for request, (_, raised) in _list_requests_set(edit).items()}


def _find_move_reversed(move: tuple[str, str], direction: int, recent: list[ChangeRecord]) -> ChangeRecord | None:
    """The recent record whose move of one container's request ``move`` would reverse (newest first: a raise
    reverses only the latest move of that request, a cut any recent raise), or None."""
    for record in reversed(recent):
        earlier = next((e for e in list_edits(record) if e.setting is Setting.RESOURCES), None)
        earlier_direction = _list_resource_moves(earlier).get(move) if earlier is not None else None
        if earlier_direction is None:
            continue
        if earlier_direction == -direction:
            return record
        if direction > 0:
            return None
    return None


def list_records(state: TuningState) -> list[ChangeRecord]:
    """Every recorded change, oldest first: the history, then the last change."""
    return [*state.history, *([state.last_change] if state.last_change is not None else [])]


@dataclass(frozen=True)
class Reversal:
    """A move of a proposed change that undoes a recent recorded one: the proposed edit, the record, and for a
    resources edit the (container, "cpu" | "memory") request moved back."""

    edit: Edit
    record: ChangeRecord
    move: tuple[str, str] | None = None


def find_reversal(
    change: ProposedChange, *, state: TuningState, now: datetime, hold_seconds: float,
    replicas: Sequence[int] = DEFAULT_REPLICA_COUNTS, allowed: Callable[[Reversal], bool] = lambda _: False,
) -> Reversal | None:
    """The first move of ``change`` that undoes a recent change (within ``hold_seconds``, not rolled back) and
    that ``allowed`` does not let through, or None. Every move is checked: one allowed (a container's memory
    raised for its OOM kills) does not carry another.

    A move toward less capacity undoes any recent move of the setting toward more. A move toward more capacity
    undoes only the latest move of the setting: going on in its direction undoes nothing, whatever an older
    move did (a pool grown in a shortage after yesterday's shrink may grow again).
    """
    since = now - timedelta(seconds=hold_seconds)
    recent = [r for r in list_records(state)
              if r.verdict not in (Verdict.ROLLED_BACK, Verdict.REVERTED) and r.at > since]
    for edit in list_edits(change):
        if edit.setting is Setting.RESOURCES:
            # Containers are sized apart: a sidecar's cut is not reversed by the main container's raise.
            for move, direction in _list_resource_moves(edit).items():
                record = _find_move_reversed(move, direction, recent)
                if record is not None and not allowed(found := Reversal(edit, record, move)):
                    return found
            continue
        direction = compute_edit_direction(edit, replicas=replicas)
        if direction == 0:
            continue
        # A target coupled to a request change only keeps the replica count through it: against another
        # coupled target it reverses nothing (the requests' own moves, above, say whether the resources change
        # reverses one), though it still is the setting's latest move.
        coupled = change.edit.setting is Setting.RESOURCES and edit is change.coupled
        for record in reversed(recent):
            earlier = next((e for e in list_edits(record) if e.setting is edit.setting), None)
            if earlier is None:
                continue
            earlier_direction = compute_edit_direction(earlier, replicas=replicas)
            if earlier_direction == -direction and not (coupled and record.edit.setting is Setting.RESOURCES):
                if not allowed(found := Reversal(edit, record)):
                    return found
                break
            if direction > 0 and earlier_direction == direction:
                break
    return None

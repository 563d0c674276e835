"""Guardrail functions on their own: what counts as a move toward capacity for HPA behaviour."""

from __future__ import annotations

from dataclasses import replace

import pytest
import tuning_builders as b

from perfpilot.api.status import BarredMove, Edit, ScalingPolicy, ScalingRules, Setting, TuningState
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.engine import decide
from perfpilot.tuning.guardrails import compute_behaviour_direction, find_barred_edit, is_edit_toward_capacity
from perfpilot.tuning.tables import SCALE_UP_ROWS
from perfpilot.tuning.values import compute_allowed_replicas, compute_policy_limit, normalise_rules

AGGRESSIVE = SCALE_UP_ROWS["Aggressive"].to_rules()
MODERATE = SCALE_UP_ROWS["Moderate"].to_rules()


def rules(*policies: tuple[str, int, int], select: str | None = None, window: int = 0) -> ScalingRules:
    return ScalingRules(
        stabilization_window_seconds=window, select_policy=select,
        policies=[ScalingPolicy(type=kind, value=value, period_seconds=period) for kind, value, period in policies],
    )


def test_kubernetes_default_scale_up_counts_its_pods_policy_like_the_controller() -> None:
    # Max(+4 pods, +100%) per 15 s: 2 -> 6 -> 12; +100% per 15 s alone: 2 -> 4 -> 8.
    default = compute_allowed_replicas(normalise_rules(None, scale_up=True), scale_up=True, start=2,
                                       horizon_seconds=30)
    aggressive = compute_allowed_replicas(normalise_rules(AGGRESSIVE, scale_up=True), scale_up=True, start=2,
                                          horizon_seconds=30)
    assert (default, aggressive) == ((6, 12), (4, 8))


def test_select_policy_min_takes_the_policy_allowing_the_smaller_change() -> None:
    slow = rules(("Pods", 4, 15), ("Percent", 100, 15), select="Min")
    assert compute_allowed_replicas(normalise_rules(slow, scale_up=True), scale_up=True, start=2,
                                    horizon_seconds=15) == (4,)


def test_a_percent_policy_counts_from_the_replicas_at_the_start_of_its_period() -> None:
    # +50% per 30 s from 2: 3 at 15 s, still 3 at 30 s (the period started at 2), 5 at 45 s.
    reached = compute_allowed_replicas(normalise_rules(MODERATE, scale_up=True), scale_up=True, start=2,
                                       horizon_seconds=45)
    assert reached == (3, 3, 5)


@pytest.mark.parametrize(("replicas", "direction"), [((2,), -1), ((3,), -1), ((4,), 0), ((10,), 0), ((2, 10), -1)])
def test_aggressive_is_not_toward_capacity_from_the_default_where_it_allows_fewer_pods(
    replicas: tuple[int, ...], direction: int,
) -> None:
    assert compute_behaviour_direction(None, AGGRESSIVE, scale_up=True, replicas=replicas) == direction
    edit = Edit(setting=Setting.HPA_SCALE_UP, from_value=None, to_value=AGGRESSIVE)
    assert is_edit_toward_capacity(edit, replicas=replicas) is False


def test_aggressive_is_toward_capacity_from_moderate_at_any_count() -> None:
    for count in (1, 2, 5, 40):
        assert compute_behaviour_direction(MODERATE, AGGRESSIVE, scale_up=True, replicas=(count,)) == 1
        assert compute_behaviour_direction(AGGRESSIVE, MODERATE, scale_up=True, replicas=(count,)) == -1


def test_a_pods_policy_added_to_aggressive_is_toward_capacity_only_where_it_adds_pods() -> None:
    with_pods = rules(("Percent", 100, 15), ("Pods", 4, 15))
    assert compute_behaviour_direction(AGGRESSIVE, with_pods, scale_up=True, replicas=(2,)) == 1
    assert compute_behaviour_direction(AGGRESSIVE, with_pods, scale_up=True, replicas=(8,)) == 0


def test_a_slower_scale_down_is_toward_capacity_and_a_disabled_one_slowest() -> None:
    moderate = rules(("Percent", 10, 60), window=300)
    assert compute_behaviour_direction(moderate, rules(("Percent", 10, 60), select="Disabled", window=300),
                                       scale_up=False, replicas=(10,)) == 1
    assert compute_behaviour_direction(moderate, rules(("Pods", 5, 15), window=300),
                                       scale_up=False, replicas=(10,)) == -1


def test_an_emergency_on_kubernetes_default_behaviour_at_two_replicas_does_not_write_aggressive() -> None:
    profile = b.profile(hpa={"cpuTarget": {"min": 70, "max": 80}})  # target already at min: no target move
    live = b.live(hpa=b.hpa(scale_up=None, scale_down=None, current_replicas=2, cpu_target_percent=70))
    decision = decide(profile, b.observations(live=live, latency_p95_seconds=b.series(1.5)), TuningState(), b.NOW)
    assert decision.change is None or not decision.change.emergency, decision.reason


def test_a_change_whose_coupled_edit_makes_a_barred_move_find_barred_edit() -> None:
    # The target 60% -> 70% was rolled back (or found reverted): a request cut coupled with the same move is
    # that move too.
    bar = BarredMove(setting=Setting.HPA_CPU_TARGET, to_value=70, until=b.NOW + b.minutes(30))
    cut = ProposedChange(
        target="Deployment/api", reason="", table_row="Over-provisioned",
        edit=Edit(setting=Setting.RESOURCES, from_value=[b.container()],
                  to_value=[b.container(cpu_request_millicores=750)]),
        coupled=Edit(setting=Setting.HPA_CPU_TARGET, from_value=60, to_value=70),
    )
    assert find_barred_edit(cut, barred=[bar], now=b.NOW) == cut.coupled
    assert find_barred_edit(cut, barred=[bar], now=b.NOW + b.minutes(31)) is None
    assert find_barred_edit(replace(cut, coupled=None), barred=[bar], now=b.NOW) is None


# Kubernetes computes a Percent policy's allowance in float64: math.Ceil(float64(start) * (1 + value/100)) on a
# scale-up, int32(float64(start) * (1 - value/100)) on a scale-down (horizontal.go); the simulator's HPA model
# and the engine's comparisons of behaviour rows share this one function.
@pytest.mark.parametrize(("kind", "value", "start", "scale_up", "allowed"), [
    ("Percent", 100, 4, True, 8),
    ("Percent", 12, 25, True, 29),  # 25 x 1.12 = 28.000000000000004 in float64: one more pod than exact
    ("Percent", 50, 3, True, 5),  # 4.5 rounded up
    ("Pods", 4, 2, True, 6),
    ("Percent", 10, 5, False, 4),  # 4.5 truncated
    ("Percent", 80, 10, False, 1),  # 10 x 0.19999999999999996 = 1.9999999999999996 truncated
    ("Pods", 1, 3, False, 2),
])
def test_a_policy_allows_what_the_controller_computes_in_float64(
    kind: str, value: int, start: int, scale_up: bool, allowed: int
) -> None:
    assert compute_policy_limit(kind, value, period_start=start, scale_up=scale_up) == allowed


def _resources_change(*, cpu: int, memory: int) -> ProposedChange:
    return ProposedChange(target="Deployment/api", reason="", table_row="Over-provisioned", edit=Edit(
        setting=Setting.RESOURCES, from_value=[b.container()],
        to_value=[b.container(cpu_request_millicores=cpu, memory_request_bytes=memory)]))


@pytest.mark.parametrize(("cpu", "memory", "barred"), [
    (750, 768 * b.MI, True),  # the barred memory cut, bundled with a CPU cut: the same move, barred
    (1000, 768 * b.MI, True),  # the barred move alone
    (750, b.GI, False),  # a CPU cut alone: not the barred move
    (1000, 512 * b.MI, False),  # memory cut to another value
])
def test_a_barred_resources_move_is_barred_per_request_whatever_it_is_bundled_with(
    cpu: int, memory: int, barred: bool
) -> None:
    # A memory cut 1Gi -> 768Mi was rolled back; the Over row then proposed CPU 750m with memory 768Mi, a list
    # no longer equal to the barred one, and the barred cut went out inside its bar.
    bar = BarredMove(setting=Setting.RESOURCES, from_value=[b.container()],
                     to_value=[b.container(memory_request_bytes=768 * b.MI)], until=b.NOW + b.minutes(30))
    change = _resources_change(cpu=cpu, memory=memory)
    assert (find_barred_edit(change, barred=[bar], now=b.NOW) == change.edit) is barred


def test_a_raise_to_the_value_a_barred_cut_went_to_is_not_that_cut() -> None:
    # The cut 1500m -> 1000m is barred; from 750m, a raise to 1000m (with memory raised beside it) moves the
    # other way.
    bar = BarredMove(setting=Setting.RESOURCES, from_value=[b.container(cpu_request_millicores=1500)],
                     to_value=[b.container(cpu_request_millicores=1000)], until=b.NOW + b.minutes(30))
    raise_ = ProposedChange(target="Deployment/api", reason="", table_row="Under-provisioned", edit=Edit(
        setting=Setting.RESOURCES, from_value=[b.container(cpu_request_millicores=750)],
        to_value=[b.container(cpu_request_millicores=1000, memory_request_bytes=1536 * b.MI)]))
    assert find_barred_edit(raise_, barred=[bar], now=b.NOW) is None

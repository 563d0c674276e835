"""Guardrail edges a mutation audit found unguarded: step limits and bounds of a cut, the server budget's
equality, bounds already left, the smallest maxReplicas step, behaviour directions, the reversal hold of a
raise, and which span of latency a rollback's shortage check and a verdict read."""

from __future__ import annotations

from collections.abc import Callable

import tuning_builders as b

from perfpilot.api.status import (
    Baseline,
    ChangeRecord,
    Edit,
    ScalingPolicy,
    ScalingRules,
    Setting,
    TuningState,
    Verdict,
)
from perfpilot.tuning.decision import ProposedChange
from perfpilot.tuning.guardrails import (
    DEFAULT_REPLICA_COUNTS,
    compute_behaviour_direction,
    compute_max_replicas_step,
    compute_replica_counts,
    compute_scaled_quantity,
    find_bounds_left,
    find_reversal,
    fits_server_budget,
    is_edit_toward_capacity,
)
from perfpilot.tuning.observations import Series
from perfpilot.tuning.tables import SCALE_UP_ROWS
from perfpilot.tuning.thresholds import DEFAULT_THRESHOLDS
from perfpilot.tuning.verify import decide_unfinished_write, decide_verdict

AGGRESSIVE = SCALE_UP_ROWS["Aggressive"].to_rules()
QUIET_BASELINE = Baseline(p95_latency_seconds=0.35, error_ratio=0.001, request_rate_per_second=100)


def latency_by_minute(value_at: Callable[[int], float]) -> Series:
    """A p95 series over the whole window whose sample ``minutes`` before NOW is ``value_at(minutes)``."""
    return b.series([value_at(b.SAMPLES - 1 - index) for index in range(b.SAMPLES)])


# --- compute_scaled_quantity: a cut ------------------------------------------------------------------


def test_a_cut_is_limited_by_the_profiles_max_step_percent() -> None:
    # The Over row asks for -25%; a profile allowing 10% steps gets 10%, not the row's whole cut.
    assert compute_scaled_quantity(1000, factor=0.75, lower=100, upper=4000, max_step_percent=10) == 900


def test_a_cut_never_goes_below_the_profiles_lower_bound() -> None:
    assert compute_scaled_quantity(1000, factor=0.75, lower=800, upper=4000, max_step_percent=50) == 800


def test_a_decrease_never_raises_a_value_already_below_the_lower_bound() -> None:
    # A hand-set 500m under a raised lower bound of 800m: a cut must not turn into a 60% raise.
    assert compute_scaled_quantity(500, factor=0.75, lower=800, upper=4000, max_step_percent=50) == 500


# --- the Postgres connection budget ------------------------------------------------------------------


def test_a_pool_that_fits_the_server_budget_exactly_is_allowed() -> None:
    # (20 + 10) x 2 pooler replicas = 60: the budget is a maximum, reaching it is within it.
    assert fits_server_budget(default_pool_size=20, reserve_pool_size=10, pooler_replicas=2,
                              max_server_connections=60) is True
    assert fits_server_budget(default_pool_size=20, reserve_pool_size=10, pooler_replicas=2,
                              max_server_connections=59) is False


# --- bounds ------------------------------------------------------------------------------------------


def test_a_value_already_outside_the_bounds_may_not_be_taken_even_one_further() -> None:
    profile = b.profile(hpa={"cpuTarget": {"min": 50, "max": 80}})
    left = find_bounds_left(Setting.HPA_CPU_TARGET, live=85, new=86, profile=profile)
    assert left == "hpa.cpuTarget 86% is outside the bounds 50%-80% (it is 85% now)"
    # Staying where it is, or a step back toward the bounds, is allowed.
    assert find_bounds_left(Setting.HPA_CPU_TARGET, live=85, new=85, profile=profile) is None
    assert find_bounds_left(Setting.HPA_CPU_TARGET, live=85, new=84, profile=profile) is None


# --- the maxReplicas ceiling -------------------------------------------------------------------------


def test_a_small_max_replicas_still_grows_by_at_least_one() -> None:
    # 25% of 3 floors to 0: without the one-replica minimum an emergency at maxReplicas could never raise it.
    assert compute_max_replicas_step(live_max=3, ceiling=10, max_step_percent=25) == 4
    assert compute_max_replicas_step(live_max=3, ceiling=3, max_step_percent=25) == 3


# --- behaviour directions ----------------------------------------------------------------------------


def test_a_scale_up_that_moves_more_pods_behind_a_longer_window_is_mixed_not_toward_capacity() -> None:
    faster_but_waits = ScalingRules(stabilization_window_seconds=60,
                                    policies=[ScalingPolicy(type="Percent", value=100, period_seconds=15)])
    assert compute_behaviour_direction(b.MODERATE_UP, faster_but_waits, scale_up=True,
                                       replicas=DEFAULT_REPLICA_COUNTS) == 0
    assert compute_behaviour_direction(faster_but_waits, b.MODERATE_UP, scale_up=True,
                                       replicas=DEFAULT_REPLICA_COUNTS) == 0
    edit = Edit(setting=Setting.HPA_SCALE_UP, from_value=b.MODERATE_UP, to_value=faster_but_waits)
    assert is_edit_toward_capacity(edit) is False


def test_behaviours_are_compared_at_min_replicas_too_where_kubernetes_default_outpaces_aggressive() -> None:
    # At 10 replicas +100% matches Kubernetes' Max(+4 pods, +100%); from minReplicas 2 the default reaches 6
    # where Aggressive reaches 4, so going back to the default is toward capacity for an HPA that starts at 2.
    counts = compute_replica_counts(b.hpa(min_replicas=2, current_replicas=10))
    assert counts == (2, 10)
    back_to_default = Edit(setting=Setting.HPA_SCALE_UP, from_value=AGGRESSIVE, to_value=None)
    assert is_edit_toward_capacity(back_to_default, replicas=counts) is True
    assert compute_behaviour_direction(None, AGGRESSIVE, scale_up=True, replicas=counts) == -1


# --- the reversal hold -------------------------------------------------------------------------------


def _resources_record(*, hours_ago: float, cpu_from: int, cpu_to: int) -> ChangeRecord:
    return ChangeRecord(
        at=b.NOW - b.minutes(60 * hours_ago), target="Deployment/api", setting=Setting.RESOURCES,
        from_value=[b.container(cpu_request_millicores=cpu_from)],
        to_value=[b.container(cpu_request_millicores=cpu_to)],
        baseline=QUIET_BASELINE, verdict=Verdict.KEPT, verdict_at=b.NOW - b.minutes(60 * hours_ago - 15),
    )


def _resize(*, cpu_from: int, cpu_to: int) -> ProposedChange:
    return ProposedChange(target="Deployment/api", reason="", table_row="", edit=Edit(
        setting=Setting.RESOURCES, from_value=[b.container(cpu_request_millicores=cpu_from)],
        to_value=[b.container(cpu_request_millicores=cpu_to)]))


def test_a_raise_after_a_cut_and_a_raise_goes_on_in_its_direction_and_reverses_nothing() -> None:
    # Cut 1500m -> 1000m, then raised back to 1250m: raising again continues the latest move; only the latest
    # move of a request counts against a raise, so the older cut does not hold it.
    state = TuningState(history=[_resources_record(hours_ago=3, cpu_from=1500, cpu_to=1000)],
                        last_change=_resources_record(hours_ago=1, cpu_from=1000, cpu_to=1250))
    hold = DEFAULT_THRESHOLDS.reversal_hold_seconds
    assert find_reversal(_resize(cpu_from=1250, cpu_to=1500), state=state, now=b.NOW, hold_seconds=hold) is None
    # A cut, by contrast, reverses the recent raise.
    found = find_reversal(_resize(cpu_from=1250, cpu_to=1000), state=state, now=b.NOW, hold_seconds=hold)
    assert found is not None and found.record == state.last_change and found.move == ("app", "cpu")


# --- rollbacks and verdicts --------------------------------------------------------------------------


def test_undoing_a_mixed_behaviour_change_waits_while_p95_is_above_the_slo() -> None:
    # More pods per period behind a longer window is neither more nor less capacity: undoing it may take
    # capacity away as well, so it must not run while users already wait.
    mixed = ScalingRules(stabilization_window_seconds=60,
                         policies=[ScalingPolicy(type="Percent", value=100, period_seconds=15)])
    record = ChangeRecord(at=b.NOW - b.minutes(16), target="HorizontalPodAutoscaler/api",
                          setting=Setting.HPA_SCALE_UP, from_value=b.MODERATE_UP, to_value=mixed,
                          baseline=QUIET_BASELINE)
    observations = b.observations(latency_p95_seconds=b.series(0.9), live=b.live(hpa=b.hpa(scale_up=mixed)))
    outcome = decide_verdict(b.profile(), observations, record, now=b.NOW)
    assert outcome.verdict is Verdict.INCONCLUSIVE, outcome.reason
    assert "still above the SLO" in outcome.reason and outcome.rollback is None
    # Within the SLO the same regression (errors up) is rolled back.
    calm = b.observations(error_ratio=b.series(0.05), live=b.live(hpa=b.hpa(scale_up=mixed)))
    assert decide_verdict(b.profile(), calm, record, now=b.NOW).verdict is Verdict.ROLLED_BACK


def test_a_verdict_reads_p95_after_the_rollout_settles_not_its_transient() -> None:
    # A CPU target raise 16 minutes ago: p95 spiked for the 4 minutes of its rollout, then went back to the
    # baseline. The first third of verifyFor is the rollout's; the change is judged on what follows.
    record = ChangeRecord(at=b.NOW - b.minutes(16), target="HorizontalPodAutoscaler/api",
                          setting=Setting.HPA_CPU_TARGET, from_value=60, to_value=70, baseline=QUIET_BASELINE)
    p95 = latency_by_minute(lambda minutes: 3.0 if 12 <= minutes <= 15 else 0.35)
    observations = b.observations(latency_p95_seconds=p95, live=b.live(hpa=b.hpa(cpu_target_percent=70)))
    outcome = decide_verdict(b.profile(), observations, record, now=b.NOW)
    assert outcome.verdict is Verdict.KEPT, outcome.reason


def test_a_verdict_after_a_short_verify_for_leaves_out_samples_whose_rate_window_reaches_back_past_the_change(
) -> None:
    # A CPU target raise 3 minutes ago, verifyFor 3m: a third of it has passed after one minute, but the
    # sample then still averages the minute before the write, when p95 was 1.5s. Judged on the samples
    # wholly after the change (the last two), p95 is back at the baseline: kept, not rolled back.
    record = ChangeRecord(at=b.NOW - b.minutes(3), target="HorizontalPodAutoscaler/api",
                          setting=Setting.HPA_CPU_TARGET, from_value=60, to_value=70, baseline=QUIET_BASELINE)
    p95 = latency_by_minute(lambda minutes: 1.5 if minutes >= 2 else 0.35)
    observations = b.observations(latency_p95_seconds=p95, live=b.live(hpa=b.hpa(cpu_target_percent=70)))
    outcome = decide_verdict(b.profile(guardrails={"verifyFor": "3m"}), observations, record, now=b.NOW)
    assert outcome.verdict is Verdict.KEPT, outcome.reason
    assert "350ms -> 350ms" in outcome.reason


def test_an_early_rollbacks_shortage_check_reads_the_last_five_minutes_not_the_span_since_the_change() -> None:
    # A resources raise with its coupled target 70% -> 60%, cut short after the target write 10 minutes ago.
    # p95 was above the SLO right after, and is back within it for the last 5 minutes: the shortage is over,
    # so undoing the coupled target (less capacity) may go now.
    small, big = [b.container()], [b.container(cpu_request_millicores=1500, cpu_limit_millicores=3000)]
    record = ChangeRecord(at=b.NOW - b.minutes(10), target="Deployment/api", setting=Setting.RESOURCES,
                          from_value=small, to_value=big,
                          coupled=Edit(setting=Setting.HPA_CPU_TARGET, from_value=70, to_value=60),
                          coupled_target="HorizontalPodAutoscaler/api", baseline=QUIET_BASELINE)
    p95 = latency_by_minute(lambda minutes: 1.5 if 6 <= minutes <= 10 else 0.3)
    observations = b.observations(latency_p95_seconds=p95,
                                  live=b.live(containers=tuple(small), hpa=b.hpa(cpu_target_percent=60)))
    outcome = decide_unfinished_write(b.profile(), observations, record, now=b.NOW)
    assert outcome is not None and outcome.verdict is Verdict.ROLLED_BACK, outcome
    assert outcome.rollback is not None and outcome.rollback.coupled == Edit(
        setting=Setting.HPA_CPU_TARGET, from_value=60, to_value=70)
    # The same shortage still on in the last 5 minutes holds the undo.
    still_short = b.observations(latency_p95_seconds=b.series(1.5),
                                 live=b.live(containers=tuple(small), hpa=b.hpa(cpu_target_percent=60)))
    held = decide_unfinished_write(b.profile(), still_short, record, now=b.NOW)
    assert held is not None and held.verdict is Verdict.INCONCLUSIVE and held.rollback is None

